package serve

import (
	"context"
	"encoding/json"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// request is one decoded request: a type per operation, defined on the
// operation's argument struct of package wire (so its JSON is exactly the
// wire's). The server runs a request only through the grant its authorize
// method returns (policy.go), after validate (validate.go) accepted it: a
// request type without both cannot enter the requests table below, and
// nothing else reaches the Handler.
type request interface {
	// validate checks the request's names and values (OpenZFS name rules,
	// property names, compression); it runs before authorize.
	validate() error
	// authorize applies the client's policy (g.policy, nil when
	// unrestricted) and returns what may run: the grant holds the handler
	// call with the zfs arguments the policy built.
	authorize(ctx context.Context, g *gate) (grant, error)
	// logArgs renders the request for Options.Log.
	logArgs() map[string]any
}

// The request types, one per operation (hold and release, send and
// send_size share their arguments but not their grants).
type (
	listRequest             wire.ListArgs
	getRequest              wire.GetArgs
	holdsRequest            wire.HoldsArgs
	holdRequest             wire.HoldArgs
	releaseRequest          wire.HoldArgs
	bookmarkRequest         wire.BookmarkArgs
	destroySnapshotsRequest wire.DestroySnapshotsArgs
	destroyBookmarksRequest wire.DestroyBookmarksArgs
	createRequest           wire.CreateArgs
	setRequest              wire.SetArgs
	renameRequest           wire.RenameArgs
	sendRequest             wire.SendArgs
	sendSizeRequest         wire.SendArgs
	receiveRequest          wire.ReceiveArgs
	abortReceiveRequest     wire.DatasetArgs
	decodeTokenRequest      wire.TokenArgs
	digestRequest           wire.DigestArgs
	poolErrorsRequest       wire.DatasetArgs
)

// requests decodes the arguments of each operation into its request type.
// An operation missing here is answered as unsupported.
var requests = map[string]func(json.RawMessage) (request, error){
	wire.OpList:              decodeRequest[listRequest],
	wire.OpGet:               decodeRequest[getRequest],
	wire.OpHolds:             decodeRequest[holdsRequest],
	wire.OpHold:              decodeRequest[holdRequest],
	wire.OpRelease:           decodeRequest[releaseRequest],
	wire.OpBookmark:          decodeRequest[bookmarkRequest],
	wire.OpDestroySnapshots:  decodeRequest[destroySnapshotsRequest],
	wire.OpDestroyBookmarks:  decodeRequest[destroyBookmarksRequest],
	wire.OpCreate:            decodeRequest[createRequest],
	wire.OpSet:               decodeRequest[setRequest],
	wire.OpRename:            decodeRequest[renameRequest],
	wire.OpSend:              decodeRequest[sendRequest],
	wire.OpSendSize:          decodeRequest[sendSizeRequest],
	wire.OpReceive:           decodeRequest[receiveRequest],
	wire.OpAbortReceive:      decodeRequest[abortReceiveRequest],
	wire.OpDecodeResumeToken: decodeRequest[decodeTokenRequest],
	wire.OpSnapshotDigest:    decodeRequest[digestRequest],
	wire.OpPoolErrors:        decodeRequest[poolErrorsRequest],
}

// decodeRequest decodes arguments strictly (unknown fields and trailing
// data are protocol errors) into the request type R.
func decodeRequest[R request](raw json.RawMessage) (request, error) {
	var r R
	if err := wire.DecodeStrict(raw, &r); err != nil {
		return nil, err
	}
	return r, nil
}

func (r listRequest) logArgs() map[string]any {
	return map[string]any{"roots": r.Roots, "depth": r.Options.Depth, "types": r.Options.Types}
}

func (r getRequest) logArgs() map[string]any {
	return map[string]any{"names": r.Names, "props": r.Props}
}

func (r holdsRequest) logArgs() map[string]any { return map[string]any{"snapshots": r.Snaps} }

func (r holdRequest) logArgs() map[string]any {
	return map[string]any{"tag": r.Tag, "snapshots": r.Snaps}
}

func (r releaseRequest) logArgs() map[string]any { return holdRequest(r).logArgs() }

func (r bookmarkRequest) logArgs() map[string]any {
	return map[string]any{"source": r.Source, "bookmark": r.Bookmark}
}

func (r destroySnapshotsRequest) logArgs() map[string]any {
	return map[string]any{"dataset": r.Dataset, "snapshots": r.Names}
}

func (r destroyBookmarksRequest) logArgs() map[string]any {
	return map[string]any{"bookmarks": r.Bookmarks}
}

func (r createRequest) logArgs() map[string]any {
	return map[string]any{"dataset": r.Name, "props": r.Props, "parents": r.Parents}
}

func (r setRequest) logArgs() map[string]any {
	return map[string]any{"name": r.Name, "props": r.Props}
}

func (r renameRequest) logArgs() map[string]any { return map[string]any{"from": r.From, "to": r.To} }

func (r sendRequest) logArgs() map[string]any {
	o := r.Options
	m := map[string]any{"from": o.From, "to": o.To, "raw": o.Raw, "compress": r.Compress}
	if o.ResumeToken != "" {
		m["resume_token"] = o.ResumeToken
	}
	return m
}

func (r sendSizeRequest) logArgs() map[string]any { return sendRequest(r).logArgs() }

func (r receiveRequest) logArgs() map[string]any {
	o := r.Options
	m := map[string]any{"target": o.Target, "resumable": o.Resumable, "force": o.Force, "compress": r.Compress}
	if o.Corrective {
		m["corrective"] = true
	}
	return m
}

func (r abortReceiveRequest) logArgs() map[string]any { return map[string]any{"dataset": r.Dataset} }

func (r decodeTokenRequest) logArgs() map[string]any { return map[string]any{"token": r.Token} }

func (r poolErrorsRequest) logArgs() map[string]any { return map[string]any{"dataset": r.Dataset} }

func (r digestRequest) logArgs() map[string]any {
	return map[string]any{"snapshot": r.Snapshot, "limit": r.Limit, "sample": r.Sample}
}
