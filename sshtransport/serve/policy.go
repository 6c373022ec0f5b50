package serve

import (
	"context"
	"fmt"
	"strings"

	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// Policy restricts what one client of `zsync serve --client NAME` may do
// (SPEC §8). Serve with a nil *Policy grants the full rights of the user it
// runs as, as zfs itself would; names are validated either way.
//
// Two areas are defined. The send area is the datasets Send matches; the
// client may list them, read their properties and holds, send them, and
// hold, release and bookmark their snapshots (the sending side of a pull
// job, which also destroys its own stale bookmarks there). The receive area
// is ReceiveRoot and everything below it; the client may do everything
// there (the receiving side of a push job): receive, create, set, rename,
// destroy, hold, release, bookmark. Anything outside both areas is refused
// with an error wrapping wire.ErrForbidden, and nothing runs. (Create with
// parents may still create missing ancestors of ReceiveRoot itself, empty
// filesystems, as `zfs create -p` of a dataset below it does.)
//
// AppendOnly means received data can only grow: it refuses DestroySnapshots,
// Rename and Receive with Force (a rollback) everywhere, and Set of
// anything but zsync's own user properties ("zsync:*"). It still allows
// receiving, creating placeholders, holds and releases, aborting a partial
// receive (which discards no snapshot), and destroying zsync's own
// bookmarks (names starting with "zsync_"): bookmarks hold no data, and the
// replication cursors must be able to move.
type Policy struct {
	// Client names the client in refusals and logs ("laptop").
	Client string
	// ReceiveRoot is the dataset at or below which the client may
	// receive and manage datasets; "" means it may not receive at all.
	ReceiveRoot string
	// Send reports whether the client may read and send dataset (the
	// lead passes zfs.Filter.Match); nil means no dataset.
	Send func(dataset string) bool
	// AppendOnly refuses destroying and rolling back data (see above).
	AppendOnly bool
	// PruneSend lets the client destroy snapshots in the send area (a
	// pull job pruning its source). Off by default: a client that may
	// read data may not destroy it. AppendOnly overrides it.
	PruneSend bool
}

// zsyncBookmarkPrefix starts the short name of every bookmark zsync
// creates (package sync's cursors and tentative cursors).
const zsyncBookmarkPrefix = "zsync_"

// zsyncPropertyPrefix starts zsync's own user properties.
const zsyncPropertyPrefix = "zsync:"

// forbiddenError is a policy refusal.
type forbiddenError struct {
	client, action, reason string
}

func (e *forbiddenError) Error() string {
	return fmt.Sprintf("client %s may not %s: %s", e.client, e.action, e.reason)
}

func (e *forbiddenError) Unwrap() error { return wire.ErrForbidden }

func (p *Policy) forbid(action, reason string) error {
	name := p.Client
	if name == "" {
		name = "(unnamed)"
	}
	return &forbiddenError{client: name, action: action, reason: reason}
}

func (p *Policy) inSend(dataset string) bool { return p.Send != nil && p.Send(dataset) }

func (p *Policy) inReceive(dataset string) bool {
	return p.ReceiveRoot != "" && zfs.IsDescendant(dataset, p.ReceiveRoot)
}

func (p *Policy) readable(dataset string) bool { return p.inSend(dataset) || p.inReceive(dataset) }

// outside explains why a dataset is not in the receive area.
func (p *Policy) outside() string {
	if p.ReceiveRoot == "" {
		return "it has no receive_root"
	}
	return "outside receive_root " + p.ReceiveRoot
}

// unreadable explains why a dataset is in neither area.
func (p *Policy) unreadable() string {
	return "not among its send datasets and " + p.outside()
}

// needReadable checks that the dataset part of every name is in an area.
func (p *Policy) needReadable(verb string, names ...string) error {
	for _, n := range names {
		if ds := datasetOf(n); !p.readable(ds) {
			return p.forbid(verb+" "+n, p.unreadable())
		}
	}
	return nil
}

// needReceive checks that the dataset part of every name is in the
// receive area.
func (p *Policy) needReceive(verb string, names ...string) error {
	for _, n := range names {
		if ds := datasetOf(n); !p.inReceive(ds) {
			return p.forbid(verb+" "+n, p.outside())
		}
	}
	return nil
}

func datasetOf(name string) string {
	ds, _, _ := zfs.SplitName(name)
	return ds
}

// authorize validates a request's names and applies the policy to it. For a
// send resuming a token, it decodes the token with h to learn which dataset
// it sends. A nil policy only validates.
func (p *Policy) authorize(ctx context.Context, h Handler, args validator) error {
	if err := args.Validate(); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	switch a := args.(type) {
	case wire.ListArgs:
		if len(a.Roots) == 0 {
			return p.forbid("list all pools", "a restricted client must name the datasets it lists")
		}
		return p.needReadable("list", a.Roots...)
	case wire.GetArgs:
		return p.needReadable("read properties of", a.Names...)
	case wire.HoldsArgs:
		return p.needReadable("read the holds of", a.Snaps...)
	case wire.HoldArgs:
		return p.needReadable("hold or release", a.Snaps...)
	case wire.BookmarkArgs:
		return p.needReadable("bookmark", a.Source, a.Bookmark)
	case wire.DestroySnapshotsArgs:
		action := "destroy snapshots of " + a.Dataset
		switch {
		case p.AppendOnly:
			return p.forbid(action, "append_only is set")
		case p.inReceive(a.Dataset):
			return nil
		case p.inSend(a.Dataset) && p.PruneSend:
			return nil
		case p.inSend(a.Dataset):
			return p.forbid(action, "it may send but not prune its send datasets (set prune_send = true in its [[serve.client]] on this host, or drop prune.source from the pull job)")
		}
		return p.forbid(action, p.outside())
	case wire.DestroyBookmarksArgs:
		for _, b := range a.Bookmarks {
			ds, _, short := zfs.SplitName(b)
			switch {
			case p.inReceive(ds) && !p.AppendOnly:
			case p.readable(ds) && strings.HasPrefix(short, zsyncBookmarkPrefix):
			case p.readable(ds):
				return p.forbid("destroy bookmark "+b, "only zsync's own bookmarks ("+zsyncBookmarkPrefix+"*) may be destroyed there")
			default:
				return p.forbid("destroy bookmark "+b, p.unreadable())
			}
		}
		return nil
	case wire.CreateArgs:
		return p.needReceive("create", a.Name)
	case wire.SetArgs:
		if err := p.needReceive("set properties on", a.Name); err != nil {
			return err
		}
		if p.AppendOnly {
			for k := range a.Props {
				if !strings.HasPrefix(k, zsyncPropertyPrefix) {
					return p.forbid("set "+k+" on "+a.Name, "append_only allows setting only zsync's own properties ("+zsyncPropertyPrefix+"*)")
				}
			}
		}
		return nil
	case wire.RenameArgs:
		if p.AppendOnly {
			return p.forbid("rename "+a.From, "append_only is set")
		}
		return p.needReceive("rename", a.From, a.To)
	case wire.SendArgs:
		return p.authorizeSend(ctx, h, a.Options)
	case wire.ReceiveArgs:
		if err := p.needReceive("receive into", a.Options.Target); err != nil {
			return err
		}
		if a.Options.Force && p.AppendOnly {
			return p.forbid("receive with force (rollback) into "+a.Options.Target, "append_only is set")
		}
		return nil
	case wire.DatasetArgs:
		return p.needReceive("abort the partial receive of", a.Dataset)
	case wire.TokenArgs:
		// Decoding tells only what the token itself contains; the
		// receiving side of a push decodes tokens naming the sender's
		// snapshots, which are in no area here.
		return nil
	}
	return fmt.Errorf("%w: no policy rule for %T", wire.ErrForbidden, args)
}

// authorizeSend checks that a send reads only the send area. A resume
// token is decoded first: it names the snapshot it sends.
func (p *Policy) authorizeSend(ctx context.Context, h Handler, o zfs.SendOptions) error {
	to := o.To
	if o.ResumeToken != "" {
		t, err := h.DecodeResumeToken(ctx, o.ResumeToken)
		if err != nil {
			return fmt.Errorf("checking the resume token: %w", err)
		}
		if err := zfs.ValidateSnapshot(t.ToName); err != nil {
			return fmt.Errorf("checking the resume token: %w", err)
		}
		to = t.ToName
	}
	if ds := datasetOf(to); !p.inSend(ds) {
		return p.forbid("send "+to, "not among its send datasets")
	}
	return nil
}

// filter keeps the entries of a listing the client may see.
func (p *Policy) filter(entries []zfs.Entry) []zfs.Entry {
	if p == nil {
		return entries
	}
	out := entries[:0]
	for _, e := range entries {
		if p.readable(e.Dataset()) {
			out = append(out, e)
		}
	}
	return out
}
