package serve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// fuzzClient is the client of FuzzPolicy, and fuzzSuffix what binds a name
// in its send area to it on disk.
const (
	fuzzClient = "laptop"
	fuzzSuffix = "_C" + fuzzClient
)

// fuzzTokenNames are the snapshots the gate's decodeToken says a resume
// token sends, by the fuzzed token mode (mode 0, and any mode past the
// list, decodes with an error).
var fuzzTokenNames = []string{"", "tank/data@s", "tank/other@s", "backup/laptop/x@s", "tank/data@-x", "tank/data"}

// policySeed is one seed of FuzzPolicy.
type policySeed struct {
	op   string
	args string
	tok  uint8
}

const (
	fzTag   = "zsync_step_T0123456789abcdef"
	fzBm    = "zsync_cursor_T0123456789abcdef_G00000000000000a1"
	fzToken = "1-c740b4e79-e0-789c63640000"
)

var policySeeds = []policySeed{
	// What zsync's own client sends.
	{wire.OpList, `{"roots":["tank/data"],"options":{"Depth":-1,"Types":["snapshot","bookmark"]}}`, 0},
	{wire.OpList, `{"roots":["backup/laptop"],"options":{"Depth":1}}`, 0},
	{wire.OpGet, `{"names":["tank/data@s","tank/data#` + fzBm + `","backup/laptop/x"],"props":["guid"]}`, 0},
	{wire.OpHolds, `{"snaps":["tank/data@s","backup/laptop/x@s"]}`, 0},
	{wire.OpHold, `{"tag":"` + fzTag + `","snaps":["tank/data@s","tank/data/child@s"]}`, 0},
	{wire.OpRelease, `{"tag":"` + fzTag + `","snaps":["tank/data@s"]}`, 0},
	{wire.OpHold, `{"tag":"zsync_last_T1","snaps":["backup/laptop/x@s"]}`, 0},
	{wire.OpBookmark, `{"source":"tank/data@s","bookmark":"tank/data#` + fzBm + `"}`, 0},
	{wire.OpBookmark, `{"source":"tank/data#` + fzBm + `","bookmark":"tank/data#zsync_tentative_T0123456789abcdef_G00000000000000a2"}`, 0},
	{wire.OpDestroySnapshots, `{"dataset":"backup/laptop/x","names":["s1","s2"]}`, 0},
	{wire.OpDestroyBookmarks, `{"bookmarks":["tank/data#` + fzBm + `","backup/laptop/x#manual"]}`, 0},
	{wire.OpCreate, `{"name":"backup/laptop/tank/data","props":{"canmount":"noauto","zsync:placeholder":"on"},"parents":true}`, 0},
	{wire.OpSet, `{"name":"backup/laptop/x","props":{"zsync:job":"a","compression":"lz4"}}`, 0},
	{wire.OpRename, `{"from":"backup/laptop/a","to":"backup/laptop/b"}`, 0},
	{wire.OpSend, `{"options":{"From":"tank/data#` + fzBm + `","To":"tank/data@s","Raw":true},"compress":"zstd"}`, 0},
	{wire.OpSendSize, `{"options":{"From":"tank/data@a","To":"tank/data@b","Intermediates":true}}`, 0},
	{wire.OpSend, `{"options":{"ResumeToken":"` + fzToken + `"}}`, 1},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x","Resumable":true,"NoMount":true,"Set":{"canmount":"noauto","volmode":"none"},"Exclude":["mountpoint"]},"compress":"zstd"}`, 0},
	{wire.OpAbortReceive, `{"dataset":"backup/laptop/x"}`, 0},
	{wire.OpDecodeResumeToken, `{"token":"` + fzToken + `"}`, 0},
	// Hostile: other clients' names, shapes, areas.
	{wire.OpHold, `{"tag":"zsync_step_T0123456789abcdef_Cdesk","snaps":["tank/data@s"]}`, 0},
	{wire.OpRelease, `{"tag":"zsync_step_T0123456789abcdef_Cdesk","snaps":["tank/data@s"]}`, 0},
	{wire.OpRelease, `{"tag":"admin","snaps":["tank/data@s"]}`, 0},
	{wire.OpHold, `{"tag":"` + fzTag + `","snaps":["tank/data@s","backup/laptop/x@s"]}`, 0},
	{wire.OpHold, `{"tag":"-r","snaps":["backup/laptop/x@s"]}`, 0},
	{wire.OpHold, `{"tag":"` + fzTag + `\n","snaps":["tank/data@s"]}`, 0},
	{wire.OpHold, `{"tag":"` + fzTag + `","snaps":["tank/data@s@t","tank/dat@s","tank/data/../other@s"]}`, 0},
	{wire.OpBookmark, `{"source":"tank/data#` + fzBm + `_Cdesk","bookmark":"tank/data#` + fzBm + `"}`, 0},
	{wire.OpBookmark, `{"source":"tank/data@s","bookmark":"tank/data#manual"}`, 0},
	{wire.OpBookmark, `{"source":"tank/data@s","bookmark":"backup/laptop/x#` + fzBm + `"}`, 0},
	{wire.OpDestroyBookmarks, `{"bookmarks":["tank/data#` + fzBm + `_Cdesk"]}`, 0},
	{wire.OpDestroyBookmarks, `{"bookmarks":["tank/data#manual","tank/other#` + fzBm + `"]}`, 0},
	{wire.OpGet, `{"names":["tank/data#zsync_x","tank/data#` + fzBm + `_Cdesk"],"props":["guid"]}`, 0},
	{wire.OpGet, `{"names":["tank/secret"],"props":["keylocation"]}`, 0},
	{wire.OpSend, `{"options":{"From":"tank/data#` + fzBm + `_Cdesk","To":"tank/data@s"}}`, 0},
	{wire.OpSend, `{"options":{"From":"tank/other@a","To":"tank/data@s"}}`, 0},
	{wire.OpSend, `{"options":{"To":"tank/other@s"}}`, 0},
	{wire.OpSend, `{"options":{"ResumeToken":"` + fzToken + `"}}`, 2},
	{wire.OpSendSize, `{"options":{"ResumeToken":"` + fzToken + `"}}`, 3},
	{wire.OpSend, `{"options":{"ResumeToken":"` + fzToken + `"}}`, 4},
	{wire.OpSend, `{"options":{"ResumeToken":"` + fzToken + `"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x","Set":{"mountpoint":"/etc","canmount":"on"}}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x","Set":{"volmode":"dev"},"Exclude":["canmount","volmode"]}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x","Set":{"zsync:x":"a\nb"}}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x","Set":{"canmount":"off"},"Force":true}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x@s","Corrective":true}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x@s","Corrective":true,"Force":true,"Set":{"mountpoint":"/etc"}}}`, 0},
	{wire.OpSnapshotDigest, `{"snapshot":"backup/laptop/x@s","limit":1,"sample":50}`, 0},
	{wire.OpPoolErrors, `{"dataset":"tank/other"}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/x@s","NoMount":false}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptopx"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/../x"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"-backup/laptop"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/a b"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/a%b"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/a\u0000b"}}`, 0},
	{wire.OpReceive, `{"options":{"Target":"backup/laptop/` + strings.Repeat("x", 300) + `"}}`, 0},
	{wire.OpCreate, `{"name":"backup/laptop/x","props":{"canmount":"on","setuid":"on"}}`, 0},
	{wire.OpCreate, `{"name":"backup/laptop/x","props":{"mountpoint":"/"}}`, 0},
	{wire.OpCreate, `{"name":"backup/laptop/x","props":{"zsync:x":"\u007f"}}`, 0},
	{wire.OpCreate, `{"name":"backup","parents":true}`, 0},
	{wire.OpSet, `{"name":"backup/laptop/x@s","props":{"canmount":"on"}}`, 0},
	{wire.OpSet, `{"name":"backup/laptop#b","props":{"zsync:x":"y"}}`, 0},
	{wire.OpSet, `{"name":"tank/data","props":{"zsync:x":"y"}}`, 0},
	{wire.OpRename, `{"from":"backup/laptop/a","to":"tank/data/a"}`, 0},
	{wire.OpRename, `{"from":"backup/laptop/a@s","to":"backup/laptop/a@t"}`, 0},
	{wire.OpDestroySnapshots, `{"dataset":"tank/data","names":["s"]}`, 0},
	{wire.OpDestroySnapshots, `{"dataset":"backup/laptop/x","names":["s@t","-r",".."]}`, 0},
	{wire.OpAbortReceive, `{"dataset":"tank/data"}`, 0},
	{wire.OpList, `{"roots":[]}`, 0},
	{wire.OpList, `{"roots":["tank"]}`, 0},
	{wire.OpList, `{"roots":["tank/data"],"options":{"Depth":-2}}`, 0},
	{wire.OpList, `{"roots":["tank/data"],"sudo":true}`, 0},
	{wire.OpList, `{"roots":["tank/data"]} {}`, 0},
	{"rm", `{}`, 0},
	{"", `null`, 0},
	{"list\x00", `{"roots":["tank/data"]}`, 0},
}

// fuzzRecorder is the Handler the grants of FuzzPolicy run against: it
// checks every call against the properties, then answers as a Fake.
type fuzzRecorder struct {
	*servetest.Fake
	t     *testing.T
	p     *Policy
	token string // the snapshot a resume token names
}

func (r *fuzzRecorder) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf(format, args...)
}

// readable: name is valid and in one of the client's areas.
func (r *fuzzRecorder) readable(what, name string) {
	r.t.Helper()
	if err := fuzzValidName(name); err != nil {
		r.fail("%s: zfs gets the invalid name %q: %v", what, name, err)
	}
	if ds := datasetOf(name); !r.p.inSend(ds) && !r.p.inReceive(ds) {
		r.fail("%s: zfs gets %q, outside the client's areas", what, name)
	}
	// A zsync-shaped bookmark in the send area is always the client's own.
	if ds, sep, short := zfs.SplitName(name); sep == '#' && !r.p.inReceive(ds) && strings.HasPrefix(short, zsyncBookmarkPrefix) {
		r.ownBookmark(what, name)
	}
}

// writable: name is valid and in the client's receive area.
func (r *fuzzRecorder) writable(what, name string) {
	r.t.Helper()
	r.readable(what, name)
	if !r.p.inReceive(datasetOf(name)) {
		r.fail("%s: zfs gets %q, outside the receive area", what, name)
	}
}

// ownBookmark: a bookmark name that must carry the client's suffix on a
// zsync shape.
func (r *fuzzRecorder) ownBookmark(what, name string) {
	r.t.Helper()
	_, sep, short := zfs.SplitName(name)
	base, ok := strings.CutSuffix(short, fuzzSuffix)
	if sep != '#' || !ok || !reZsyncBookmark.MatchString(base) {
		r.fail("%s: bookmark %q in the send area is not the client's own", what, name)
	}
}

// tagOn: a hold tag on snaps: in the send area, the client's own.
func (r *fuzzRecorder) tagOn(what, tag string, snaps []string) {
	r.t.Helper()
	if err := zfs.ValidateHoldTag(tag); err != nil {
		r.fail("%s: zfs gets the invalid tag %q: %v", what, tag, err)
	}
	for _, s := range snaps {
		r.readable(what, s)
		if !r.p.inReceive(datasetOf(s)) {
			base, ok := strings.CutSuffix(tag, fuzzSuffix)
			if !ok || !reZsyncTag.MatchString(base) {
				r.fail("%s: tag %q on %s in the send area is not the client's own", what, tag, s)
			}
		}
	}
}

// props: no control character in a value, nothing that mounts or exposes.
func (r *fuzzRecorder) props(what string, props map[string]string) {
	r.t.Helper()
	for k, v := range props {
		if err := zfs.ValidatePropertyName(k); err != nil {
			r.fail("%s: invalid property name %q: %v", what, k, err)
		}
		if strings.IndexFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
			r.fail("%s: property %s has the value %q with a control character", what, k, v)
		}
		switch {
		case k == "mountpoint":
			r.fail("%s: mountpoint=%q reaches zfs", what, v)
		case k == "canmount" && v != "noauto" && v != "off":
			r.fail("%s: canmount=%q reaches zfs", what, v)
		case k == "volmode" && v != "none":
			r.fail("%s: volmode=%q reaches zfs", what, v)
		}
	}
}

func fuzzValidName(name string) error {
	if strings.ContainsAny(name, "@#") {
		return zfs.ValidateVersion(name)
	}
	return zfs.ValidateDataset(name)
}

func (r *fuzzRecorder) List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	if len(roots) == 0 {
		r.fail("List of every pool")
	}
	for _, n := range roots {
		r.readable("List", n)
	}
	return r.Fake.List(ctx, roots, o)
}

func (r *fuzzRecorder) Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error) {
	for _, n := range names {
		r.readable("Get", n)
	}
	return r.Fake.Get(ctx, names, props)
}

func (r *fuzzRecorder) Holds(ctx context.Context, snaps []string) (map[string][]string, error) {
	for _, n := range snaps {
		r.readable("Holds", n)
	}
	return r.Fake.Holds(ctx, snaps)
}

func (r *fuzzRecorder) Hold(ctx context.Context, tag string, snaps []string) error {
	r.tagOn("Hold", tag, snaps)
	return r.Fake.Hold(ctx, tag, snaps)
}

func (r *fuzzRecorder) Release(ctx context.Context, tag string, snaps []string) error {
	r.tagOn("Release", tag, snaps)
	return r.Fake.Release(ctx, tag, snaps)
}

func (r *fuzzRecorder) Bookmark(ctx context.Context, source, bookmark string) error {
	r.readable("Bookmark source", source)
	r.readable("Bookmark", bookmark)
	if !r.p.inReceive(datasetOf(bookmark)) {
		r.ownBookmark("Bookmark", bookmark)
	}
	return r.Fake.Bookmark(ctx, source, bookmark)
}

func (r *fuzzRecorder) DestroySnapshots(ctx context.Context, dataset string, names []string) error {
	r.writable("DestroySnapshots", dataset)
	for _, n := range names {
		if err := zfs.ValidateComponent(n); err != nil {
			r.fail("DestroySnapshots: invalid short name %q: %v", n, err)
		}
	}
	return r.Fake.DestroySnapshots(ctx, dataset, names)
}

func (r *fuzzRecorder) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	for _, b := range bookmarks {
		r.readable("DestroyBookmarks", b)
		if !r.p.inReceive(datasetOf(b)) {
			r.ownBookmark("DestroyBookmarks", b)
		}
	}
	return r.Fake.DestroyBookmarks(ctx, bookmarks)
}

func (r *fuzzRecorder) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	r.writable("Create", name)
	r.props("Create", props)
	if props["canmount"] == "" {
		r.fail("Create of %s without canmount", name)
	}
	return r.Fake.Create(ctx, name, props, parents)
}

func (r *fuzzRecorder) Set(ctx context.Context, name string, props map[string]string) error {
	r.writable("Set", name)
	r.props("Set", props)
	return r.Fake.Set(ctx, name, props)
}

func (r *fuzzRecorder) Rename(ctx context.Context, from, to string) error {
	r.writable("Rename from", from)
	r.writable("Rename to", to)
	return r.Fake.Rename(ctx, from, to)
}

func (r *fuzzRecorder) send(what string, s zfs.ValidatedSend, tokenName string) {
	r.t.Helper()
	o := s.Options()
	to := o.To
	if o.ResumeToken != "" {
		to = tokenName
	}
	r.readable(what, to)
	if !r.p.inSend(datasetOf(to)) {
		r.fail("%s of %q, not in the send area", what, to)
	}
	if o.From != "" {
		r.readable(what+" from", o.From)
		if datasetOf(o.From) != datasetOf(to) {
			r.fail("%s from %q to %q", what, o.From, to)
		}
	}
}

func (r *fuzzRecorder) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	r.send("Send", s, r.token)
	return r.Fake.Send(ctx, s)
}

func (r *fuzzRecorder) SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error) {
	r.send("SendSize", s, r.token)
	return r.Fake.SendSize(ctx, s)
}

func (r *fuzzRecorder) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	r.writable("Receive", o.Target)
	if o.Corrective {
		if !r.p.AllowHeal {
			r.fail("a corrective receive into %s without allow_heal", o.Target)
		}
		return r.Fake.Receive(ctx, o, stream)
	}
	if !o.NoMount {
		r.fail("Receive into %s without NoMount", o.Target)
	}
	r.props("Receive", o.Set)
	for _, x := range o.Exclude {
		if err := zfs.ValidatePropertyName(x); err != nil {
			r.fail("Receive: invalid -x %q: %v", x, err)
		}
	}
	return r.Fake.Receive(ctx, o, stream)
}

func (r *fuzzRecorder) SnapshotDigest(ctx context.Context, snapshot string, o zfs.DigestOptions) (zfs.Digest, error) {
	r.readable("SnapshotDigest", snapshot)
	if o.Limit != 0 && o.Limit < minDigestRate {
		r.fail("SnapshotDigest of %s at %d bytes/s", snapshot, o.Limit)
	}
	return r.Fake.SnapshotDigest(ctx, snapshot, o)
}

func (r *fuzzRecorder) PoolErrors(ctx context.Context, dataset string) (zfs.PoolErrors, error) {
	r.readable("PoolErrors", dataset)
	return r.Fake.PoolErrors(ctx, dataset)
}

func (r *fuzzRecorder) AbortReceive(ctx context.Context, dataset string) error {
	r.writable("AbortReceive", dataset)
	return r.Fake.AbortReceive(ctx, dataset)
}

// fuzzHead is a recorded stream head and what it says.
type fuzzHead struct {
	name string
	h    zfs.StreamHeader
}

func loadHeads(f *testing.F) []fuzzHead {
	paths, err := filepath.Glob(filepath.Join("..", "..", "zfs", "testdata", "streams", "*.head"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no recorded stream heads: %v", err)
	}
	var heads []fuzzHead
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		h, _, err := zfs.ReadStreamHeader(bytes.NewReader(b))
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		heads = append(heads, fuzzHead{filepath.Base(p), h})
	}
	return heads
}

// FuzzPolicy decodes a fuzzed operation and arguments through the server's
// own requests table, runs validate and authorize for the client laptop
// (receive_root backup/laptop, send filter tank/data<) with a gate whose
// token decoding fails or names a fixed snapshot, and runs whatever is
// granted against a recording Fake (a receive once per recorded stream
// head). Properties: no panic; a decoding failure wraps wire.ErrProtocol;
// every name zfs gets is valid and in the client's areas (writes in its
// receive area, a send's snapshot in its send area); every hold tag and
// zsync bookmark in the send area is the client's own (a zsync shape with
// "_Claptop"); a receive is never mounted, never of a stream with
// properties, and filesystems land with canmount noauto or off; no
// property value has a control character, and mountpoint, canmount=on and
// volmode other than none never reach zfs.
func FuzzPolicy(f *testing.F) {
	for _, s := range policySeeds {
		f.Add(s.op, []byte(s.args), s.tok)
	}
	filter, err := zfs.ParseFilter([]string{"tank/data<"})
	if err != nil {
		f.Fatal(err)
	}
	heads := loadHeads(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, op string, args []byte, tok uint8) {
		decode, ok := requests[op]
		if !ok {
			return
		}
		req, err := decode(args)
		if err != nil {
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("decoding %s: %v does not wrap wire.ErrProtocol", op, err)
			}
			return
		}
		if req.validate() != nil {
			return
		}
		_ = req.logArgs()
		p := &Policy{Client: fuzzClient, ReceiveRoot: "backup/laptop", Send: filter.Match}
		tokenName := ""
		if int(tok) < len(fuzzTokenNames) {
			tokenName = fuzzTokenNames[tok]
		}
		g := &gate{policy: p, decodeToken: func(context.Context, string) (zfs.ResumeToken, error) {
			if tokenName == "" {
				return zfs.ResumeToken{}, zfs.ErrResumeTokenCorrupt
			}
			return zfs.ResumeToken{ToName: tokenName, ToGUID: 1}, nil
		}, get: func(_ context.Context, names []string, _ []string) (map[string]map[string]string, error) {
			out := map[string]map[string]string{}
			for _, n := range names {
				out[n] = map[string]string{"guid": "1"}
			}
			return out, nil
		}, list: func(context.Context, []string, zfs.ListOptions) ([]zfs.Entry, error) { return nil, nil }}
		gr, err := req.authorize(ctx, g)
		if err != nil {
			return
		}
		rec := &fuzzRecorder{Fake: servetest.NewFake(), t: t, p: p, token: tokenName}
		switch {
		case gr.call != nil:
			_, _ = gr.call(ctx, rec)
			if len(rec.Calls()) == 0 {
				t.Fatalf("%s: the grant ran nothing", op)
			}
		case gr.send != nil:
			rec.send(op, gr.send.send, tokenName)
			if gr.send.compress != "" && gr.send.compress != wire.CompressZstd {
				t.Fatalf("send with compression %q", gr.send.compress)
			}
		case gr.recv != nil:
			if gr.recv.land == nil {
				t.Fatalf("a restricted receive without land")
			}
			for _, h := range heads {
				o, err := gr.recv.land(h.h)
				if h.h.Properties {
					if err == nil {
						t.Fatalf("%s: a stream with properties lands", h.name)
					}
					continue
				}
				if err != nil {
					continue
				}
				if o.Corrective {
					// a repair of an existing snapshot: nothing is created
					// or mounted, it takes no property, and only from the
					// full stream of one snapshot
					if _, sep, _ := zfs.SplitName(o.Target); sep != '@' || len(o.Set) > 0 || len(o.Exclude) > 0 || o.Force || o.Resumable {
						t.Fatalf("%s: a corrective receive lands as %+v", h.name, o)
					}
					if h.h.Compound || h.h.FromGUID != 0 {
						t.Fatalf("%s: a corrective receive from a compound or incremental stream", h.name)
					}
					_ = rec.Receive(ctx, o, bytes.NewReader(nil))
					continue
				}
				if h.h.Type == zfs.Filesystem {
					if v := o.Set["canmount"]; v != "noauto" && v != "off" {
						t.Fatalf("%s: a filesystem lands with canmount=%q", h.name, v)
					}
					if !slices.Contains(o.Exclude, "mountpoint") {
						t.Fatalf("%s: a filesystem lands without -x mountpoint", h.name)
					}
				}
				if o.Set["volmode"] != "none" {
					t.Fatalf("%s: lands with volmode=%q", h.name, o.Set["volmode"])
				}
				_ = rec.Receive(ctx, o, bytes.NewReader(nil))
			}
		default:
			t.Fatalf("%s: an empty grant", op)
		}
	})
}
