package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

const (
	tidA   = "0123456789abcdef"
	tagA   = "zsync_step_T" + tidA
	curA   = "zsync_cursor_T" + tidA + "_G00000000000000a1"
	diskA  = tagA + "_Claptop"
	diskBm = "tank/data#" + curA + "_Claptop"
)

// callRaw runs one request as client laptop over a raw connection and
// returns the decoded error and the handler's calls.
func callRaw(t *testing.T, h *servetest.Fake, mod func(*Policy), op string, args any) (wire.Response, error, []string) {
	t.Helper()
	r := newRaw(t, h, Options{Policy: testPolicy(t, mod)})
	resp := r.call(op, args)
	var err error
	if resp.Error != nil {
		err = resp.Error.Decode()
	}
	return resp, err, h.Calls()
}

// The property allowlist, the far side's own properties and control
// characters, on every request that sets properties.
func TestJailProperties(t *testing.T) {
	withChecksum := func(p *Policy) { p.AllowProperties = []string{"checksum"} }
	for _, c := range []struct {
		name string
		mod  func(*Policy)
		op   string
		args any
		want error
		msg  string
	}{
		{"create setuid", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/x", Props: map[string]string{"setuid": "on"}}, wire.ErrForbidden, `add "setuid" to allow_properties in [[serve.client]] laptop on this host, or drop it from the job's properties_override)`},
		{"create mountpoint", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/x", Props: map[string]string{"mountpoint": "/etc"}}, wire.ErrForbidden, "mountpoint is decided by the far side: received and created datasets inherit it from below the receive root (drop it from the job's properties_override)"},
		{"create canmount on", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/x", Props: map[string]string{"canmount": "on"}}, wire.ErrForbidden, "canmount is decided by the far side"},
		{"set mountpoint", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"mountpoint": "/tmp/evil"}}, wire.ErrForbidden, "mountpoint"},
		{"set sharenfs", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"sharenfs": "rw=@0.0.0.0/0"}}, wire.ErrForbidden, "sharenfs"},
		{"set reservation", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"reservation": "100G"}}, wire.ErrForbidden, "reservation"},
		{"set checksum default", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"checksum": "sha256"}}, wire.ErrForbidden, "checksum"},
		{"set checksum allowed", withChecksum, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"checksum": "sha256"}}, nil, ""},
		{"set readonly", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"readonly": "on"}}, nil, ""},
		{"set newline value", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"zsync:x": "a\nb"}}, zfs.ErrInvalidProperty, "control character"},
		{"set tab value", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"zsync:x": "a\tb"}}, zfs.ErrInvalidProperty, "control character"},
		{"set DEL value", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"zsync:x": "a\x7f"}}, zfs.ErrInvalidProperty, "control character"},
		{"receive mountpoint", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Set: map[string]string{"mountpoint": "/tmp/evil", "canmount": "on"}}}, wire.ErrForbidden, "decided by the far side"},
		{"receive origin", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Set: map[string]string{"origin": "backup/other@s"}}}, wire.ErrForbidden, "origin"},
		{"receive exec", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Set: map[string]string{"exec": "on"}}}, wire.ErrForbidden, "exec"},
		{"receive newline", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Set: map[string]string{"zsync:a": "x\n"}}}, zfs.ErrInvalidProperty, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := servetest.NewFake()
			_, err, calls := callRaw(t, h, c.mod, c.op, c.args)
			if c.want == nil {
				if err != nil || len(calls) != 1 {
					t.Fatalf("err %v, calls %v; want one call", err, calls)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v; want %v with %q", err, c.want, c.msg)
			}
			if len(calls) != 0 {
				t.Errorf("refused, yet the handler ran: %v", calls)
			}
		})
	}
	// create forces canmount=noauto unless off was asked for
	h := servetest.NewFake()
	if _, err, calls := callRaw(t, h, nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/x", Props: map[string]string{"zsync:placeholder": "backup/laptop/x"}}); err != nil || len(calls) != 1 || !strings.Contains(calls[0], "canmount:noauto") {
		t.Errorf("create: %v %v", err, calls)
	}
}

// receiveStream runs a receive with a restricted client's options and the
// given stream; it returns the final response's error and the calls.
func receiveStream(t *testing.T, o zfs.RecvOptions, stream []byte) (error, []string) {
	t.Helper()
	h := servetest.NewFake()
	r := newRaw(t, h, Options{Policy: testPolicy(t, nil)})
	resp := r.call(wire.OpReceive, wire.ReceiveArgs{Options: o})
	if resp.Error != nil {
		t.Fatalf("receive refused up front: %v", resp.Error.Decode())
	}
	if len(stream) > 0 {
		if err := wire.WriteFrame(r.conn, wire.FrameData, stream); err != nil {
			t.Fatal(err)
		}
	}
	if err := wire.WriteFrame(r.conn, wire.FrameEnd, []byte(fmt.Sprintf(`{"bytes":%d}`, len(stream)))); err != nil {
		t.Fatal(err)
	}
	final := r.readResponse()
	var err error
	if final.Error != nil {
		err = final.Error.Decode()
	}
	return err, h.Calls()
}

// The far side decides how a stream lands from the stream's head.
func TestJailReceiveLanding(t *testing.T) {
	asked := zfs.RecvOptions{Target: "backup/laptop/x", Resumable: true, NoMount: false, Set: map[string]string{"canmount": "noauto", "compression": "lz4"}}
	err, calls := receiveStream(t, asked, wholeStream(t, "fs-full.head"))
	if err != nil || len(calls) != 1 {
		t.Fatalf("filesystem: %v %v", err, calls)
	}
	for _, want := range []string{"NoMount:true", "canmount:noauto", "volmode:none", "compression:lz4", "mountpoint", "setuid", "exec", "devices"} {
		if !strings.Contains(calls[0], want) {
			t.Errorf("filesystem receive %s lacks %s", calls[0], want)
		}
	}
	err, calls = receiveStream(t, asked, wholeStream(t, "vol-I.head"))
	if err != nil || len(calls) != 1 || strings.Contains(calls[0], "canmount") || !strings.Contains(calls[0], "volmode:none") || !strings.Contains(calls[0], "NoMount:true") {
		t.Errorf("volume: %v %v", err, calls)
	}
	for _, c := range []struct {
		file string
		want error
	}{{"fs-props.head", wire.ErrForbidden}, {"fs-R.head", wire.ErrForbidden}} {
		err, calls := receiveStream(t, asked, streamHead(t, c.file))
		if !errors.Is(err, c.want) || len(calls) != 0 {
			t.Errorf("%s: %v, calls %v", c.file, err, calls)
		}
	}
	err, calls = receiveStream(t, asked, []byte(strings.Repeat("not a stream ", 40)))
	if !errors.Is(err, zfs.ErrStreamHeader) || len(calls) != 0 {
		t.Errorf("garbage: %v, calls %v", err, calls)
	}
	err, calls = receiveStream(t, asked, nil)
	if err == nil || len(calls) != 0 {
		t.Errorf("empty stream: %v, calls %v", err, calls)
	}
}

// In the send area a client's holds and bookmarks are bound to it.
func TestJailOwnership(t *testing.T) {
	// what it sends gets its suffix
	for _, c := range []struct {
		op   string
		args any
		call string
	}{
		{wire.OpHold, wire.HoldArgs{Tag: tagA, Snaps: []string{"tank/data@s"}}, "Hold " + diskA + " [tank/data@s]"},
		{wire.OpRelease, wire.HoldArgs{Tag: tagA, Snaps: []string{"tank/data@s"}}, "Release " + diskA + " [tank/data@s]"},
		{wire.OpBookmark, wire.BookmarkArgs{Source: "tank/data@s", Bookmark: "tank/data#" + curA}, "Bookmark tank/data@s " + diskBm},
		{wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/data#" + curA}}, "DestroyBookmarks [" + diskBm + "]"},
		{wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{From: "tank/data#" + curA, To: "tank/data@t"}}, diskBm},
		{wire.OpGet, wire.GetArgs{Names: []string{"tank/data#" + curA}, Props: []string{"guid"}}, "Get [" + diskBm + "]"},
		// in the receive area too: the host's own jobs may keep holds
		// and cursors on the client's replicas
		{wire.OpHold, wire.HoldArgs{Tag: "zsync_last_T" + tidA, Snaps: []string{"backup/laptop/x@s"}}, "Hold zsync_last_T" + tidA + "_Claptop [backup/laptop/x@s]"},
		{wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"backup/laptop/x#" + curA}}, "DestroyBookmarks [backup/laptop/x#" + curA + "_Claptop]"},
	} {
		h := servetest.NewFake()
		_, err, calls := callRaw(t, h, nil, c.op, c.args)
		if err != nil || len(calls) == 0 || !strings.Contains(calls[len(calls)-1], c.call) {
			t.Errorf("%s: %v, calls %v; want %q", c.op, err, calls, c.call)
		}
	}
	// what it may not name
	for _, c := range []struct {
		op   string
		args any
	}{
		{wire.OpRelease, wire.HoldArgs{Tag: "admin-keep", Snaps: []string{"tank/data@s"}}},
		{wire.OpRelease, wire.HoldArgs{Tag: tagA + "_Cdesk", Snaps: []string{"tank/data@s"}}},
		{wire.OpRelease, wire.HoldArgs{Tag: "admin-keep", Snaps: []string{"backup/laptop/x@s"}}},
		{wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"backup/laptop/x#" + curA + "_Chost"}}},
		{wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/data#" + curA + "_Cdesk"}}},
		{wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/data#zsync_cursor"}}},
		{wire.OpBookmark, wire.BookmarkArgs{Source: "tank/data@s", Bookmark: "tank/data#mine"}},
		{wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{From: "tank/data#" + curA + "_Cdesk", To: "tank/data@t"}}},
	} {
		h := servetest.NewFake()
		_, err, calls := callRaw(t, h, nil, c.op, c.args)
		if !errors.Is(err, wire.ErrForbidden) || len(calls) != 0 {
			t.Errorf("%s %+v: %v, calls %v; want refused, nothing run", c.op, c.args, err, calls)
		}
	}
	// what it sees: its own names without the suffix; others' zsync names hidden
	h := servetest.NewFake()
	h.HoldTags = map[string][]string{"tank/data@s": {diskA, tagA + "_Cdesk", tagA, "admin-keep"}, "backup/laptop/x@s": {"zsync_last_T" + tidA, "zsync_last_T" + tidA + "_Claptop", tagA}}
	resp, err, _ := callRaw(t, h, nil, wire.OpHolds, wire.HoldsArgs{Snaps: []string{"tank/data@s", "backup/laptop/x@s"}})
	var holds map[string][]string
	if err != nil || json.Unmarshal(resp.Result, &holds) != nil {
		t.Fatalf("holds: %v", err)
	}
	// in its receive area an unsuffixed last-received hold is its own from
	// before names were bound; an unsuffixed step hold is the host's
	if want := map[string][]string{"tank/data@s": {tagA, "admin-keep"}, "backup/laptop/x@s": {"zsync_last_T" + tidA, "zsync_last_T" + tidA}}; !reflect.DeepEqual(holds, want) {
		t.Errorf("holds seen %v, want %v", holds, want)
	}
	h = servetest.NewFake()
	h.Entries = []zfs.Entry{
		{Name: "tank/data", Type: zfs.Filesystem},
		{Name: diskBm, Type: zfs.Bookmark},
		{Name: "tank/data#" + curA + "_Cdesk", Type: zfs.Bookmark},
		{Name: "tank/data#" + curA, Type: zfs.Bookmark},
		{Name: "tank/data#manual", Type: zfs.Bookmark},
	}
	resp, err, _ = callRaw(t, h, nil, wire.OpList, wire.ListArgs{Roots: []string{"tank/data"}})
	var entries []zfs.Entry
	if err != nil || json.Unmarshal(resp.Result, &entries) != nil {
		t.Fatalf("list: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if want := []string{"tank/data", "tank/data#" + curA, "tank/data#manual"}; !reflect.DeepEqual(names, want) {
		t.Errorf("list seen %v, want %v", names, want)
	}
}

// max_holds caps the holds a client has on one dataset's snapshots.
func TestJailHoldCap(t *testing.T) {
	h := servetest.NewFake()
	h.Entries = []zfs.Entry{
		{Name: "tank/data@a", Type: zfs.Snapshot, UserRefs: 1},
		{Name: "tank/data@b", Type: zfs.Snapshot, UserRefs: 2},
		{Name: "tank/data@c", Type: zfs.Snapshot},
	}
	h.HoldTags = map[string][]string{"tank/data@a": {diskA}, "tank/data@b": {tagA + "_Cdesk", "admin"}}
	capTwo := func(p *Policy) { p.MaxHolds = 2 }
	_, err, calls := callRaw(t, h, capTwo, wire.OpHold, wire.HoldArgs{Tag: tagA, Snaps: []string{"tank/data@b"}})
	if err != nil || !strings.HasPrefix(calls[len(calls)-1], "Hold ") {
		t.Fatalf("a second hold under a cap of 2: %v %v", err, calls)
	}
	h2 := servetest.NewFake()
	h2.Entries, h2.HoldTags = h.Entries, h.HoldTags
	_, err, calls = callRaw(t, h2, capTwo, wire.OpHold, wire.HoldArgs{Tag: tagA, Snaps: []string{"tank/data@b", "tank/data@c"}})
	if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "max_holds") {
		t.Fatalf("a third hold under a cap of 2: %v", err)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "Hold ") {
			t.Errorf("held past the cap: %v", calls)
		}
	}
}

// max_holds counts hold objects, (snapshot, tag) pairs: one snapshot
// carrying many of the client's tags counts once per tag.
func TestJailHoldCapCountsTags(t *testing.T) {
	const (
		tagB  = "zsync_last_T" + tidA
		tagC  = "zsync_step_Tfedcba9876543210"
		diskB = tagB + "_Claptop"
	)
	entries := []zfs.Entry{
		{Name: "tank/data@a", Type: zfs.Snapshot, UserRefs: 5},
		{Name: "tank/data@b", Type: zfs.Snapshot},
		// another dataset's (the fake lists everything): not counted
		{Name: "tank/data/child@a", Type: zfs.Snapshot, UserRefs: 1},
	}
	tags := map[string][]string{
		"tank/data@a":       {diskA, diskB, tagA + "_Cdesk", "admin", tagA},
		"tank/data/child@a": {diskA},
	}
	capTwo := func(p *Policy) { p.MaxHolds = 2 }
	for _, c := range []struct {
		name  string
		tag   string
		snaps []string
		ok    bool
	}{
		{"a third tag on a held snapshot", tagC, []string{"tank/data@a"}, false},
		{"a third pair elsewhere", tagC, []string{"tank/data@b"}, false},
		{"a pair it has already", tagA, []string{"tank/data@a"}, true},
		{"two new pairs", tagA, []string{"tank/data@a", "tank/data@b"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := servetest.NewFake()
			h.Entries, h.HoldTags = entries, tags
			_, err, calls := callRaw(t, h, capTwo, wire.OpHold, wire.HoldArgs{Tag: c.tag, Snaps: c.snaps})
			held := len(calls) > 0 && strings.HasPrefix(calls[len(calls)-1], "Hold ")
			if c.ok {
				if err != nil || !held {
					t.Fatalf("refused: %v %v", err, calls)
				}
				return
			}
			if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "have 3 holds on the snapshots of tank/data") || !strings.Contains(err.Error(), "max_holds") {
				t.Fatalf("err = %v", err)
			}
			if held {
				t.Errorf("held past the cap: %v", calls)
			}
		})
	}
	if got := (&Policy{}).maxHolds(); got != DefaultMaxHolds || DefaultMaxHolds != 100000 {
		t.Errorf("default cap %d", got)
	}
}

// create with parents: the far side makes each missing parent itself, a
// never-mounted placeholder, instead of `zfs create -p` (default
// properties, canmount=on, mounted).
func TestJailCreateParents(t *testing.T) {
	const noauto = "map[canmount:noauto]"
	deeper := func(p *Policy) { p.ReceiveRoot = "backup/clients/laptop" }
	for _, c := range []struct {
		name  string
		mod   func(*Policy)
		args  wire.CreateArgs
		err   error // of every Create
		want  []string
		fails bool
	}{
		{"below the root", nil, wire.CreateArgs{Name: "backup/laptop/tank/data", Parents: true, Props: map[string]string{"compression": "lz4"}}, nil, []string{
			"Create backup/laptop " + noauto + " false",
			"Create backup/laptop/tank " + noauto + " false",
			"Create backup/laptop/tank/data map[canmount:noauto compression:lz4] false",
		}, false},
		{"the root's own parents", deeper, wire.CreateArgs{Name: "backup/clients/laptop/x", Parents: true}, nil, []string{
			"Create backup/clients " + noauto + " false",
			"Create backup/clients/laptop " + noauto + " false",
			"Create backup/clients/laptop/x " + noauto + " false",
		}, false},
		{"canmount off kept", nil, wire.CreateArgs{Name: "backup/laptop/x", Parents: true, Props: map[string]string{"canmount": "off"}}, nil, []string{
			"Create backup/laptop " + noauto + " false",
			"Create backup/laptop/x map[canmount:off] false",
		}, false},
		{"everything exists", nil, wire.CreateArgs{Name: "backup/laptop/a/b", Parents: true}, zfs.ErrExists, []string{
			"Create backup/laptop " + noauto + " false",
			"Create backup/laptop/a " + noauto + " false",
			"Create backup/laptop/a/b " + noauto + " false",
		}, false},
		{"a parent fails", nil, wire.CreateArgs{Name: "backup/laptop/a/b", Parents: true}, zfs.ErrDatasetNotFound, []string{
			"Create backup/laptop " + noauto + " false",
		}, true},
		{"without parents", nil, wire.CreateArgs{Name: "backup/laptop/a/b"}, nil, []string{
			"Create backup/laptop/a/b " + noauto + " false",
		}, false},
		{"without parents, exists", nil, wire.CreateArgs{Name: "backup/laptop/a"}, zfs.ErrExists, []string{
			"Create backup/laptop/a " + noauto + " false",
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := servetest.NewFake()
			if c.err != nil {
				h.Errs["Create"] = c.err
			}
			_, err, calls := callRaw(t, h, c.mod, wire.OpCreate, c.args)
			if (err != nil) != c.fails {
				t.Errorf("err = %v, want failure %v", err, c.fails)
			}
			if c.fails && !errors.Is(err, c.err) {
				t.Errorf("err = %v, want %v", err, c.err)
			}
			if !reflect.DeepEqual(calls, c.want) {
				t.Errorf("calls:\n got  %q\n want %q", calls, c.want)
			}
		})
	}
	// unrestricted: zfs create -p as asked
	h := servetest.NewFake()
	r := newRaw(t, h, Options{})
	if resp := r.call(wire.OpCreate, wire.CreateArgs{Name: "any/where/x", Parents: true}); resp.Error != nil {
		t.Fatal(resp.Error.Decode())
	}
	if calls := h.Calls(); len(calls) != 1 || calls[0] != "Create any/where/x map[] true" {
		t.Errorf("unrestricted create: %q", calls)
	}
}

func TestAncestors(t *testing.T) {
	for name, want := range map[string][]string{
		"pool":         nil,
		"pool/a":       nil,
		"pool/a/b":     {"pool/a"},
		"pool/a/b/c/d": {"pool/a", "pool/a/b", "pool/a/b/c"},
	} {
		if got := ancestors(name); !reflect.DeepEqual(got, want) {
			t.Errorf("ancestors(%q) = %q, want %q", name, got, want)
		}
	}
}

// A last-received hold made before names were bound to clients is released
// when the client releases its tag and the bound one is not there.
func TestJailLegacyLastHoldRelease(t *testing.T) {
	tag := "zsync_last_T" + tidA
	h := servetest.NewFake()
	h.Errs["Release"] = zfs.ErrNoSuchHold
	_, err, calls := callRaw(t, h, nil, wire.OpRelease, wire.HoldArgs{Tag: tag, Snaps: []string{"backup/laptop/x@s"}})
	want := []string{"Release " + tag + "_Claptop [backup/laptop/x@s]", "Release " + tag + " [backup/laptop/x@s]"}
	if !reflect.DeepEqual(calls, want) || !errors.Is(err, zfs.ErrNoSuchHold) {
		t.Errorf("receive area: %v, calls %v; want %v and the first error", err, calls, want)
	}
	// not in the send area, not for other kinds
	for _, c := range []wire.HoldArgs{{Tag: tag, Snaps: []string{"tank/data@s"}}, {Tag: tagA, Snaps: []string{"backup/laptop/x@s"}}} {
		h := servetest.NewFake()
		h.Errs["Release"] = zfs.ErrNoSuchHold
		_, _, calls := callRaw(t, h, nil, wire.OpRelease, c)
		if len(calls) != 1 {
			t.Errorf("%+v: calls %v; want only the bound tag", c, calls)
		}
	}
}

// A release of several snapshots falls back to the unbound tag on those in
// the receive area that lacked the bound one, and reports only what is
// still failed after that.
func TestJailLegacyLastHoldReleaseBatch(t *testing.T) {
	tag := "zsync_last_T" + tidA
	noHold := fmt.Errorf("x: %w", zfs.ErrNoSuchHold)
	h := servetest.NewFake()
	h.ErrQueue = map[string][]error{"Release": {
		&zfs.HoldError{Op: "release", Tag: tag + "_Claptop", Failed: map[string]error{"backup/laptop/x@s": noHold, "backup/laptop/y@s": noHold}},
		nil,
	}}
	_, err, calls := callRaw(t, h, nil, wire.OpRelease, wire.HoldArgs{Tag: tag, Snaps: []string{"backup/laptop/x@s", "backup/laptop/y@s", "backup/laptop/z@s"}})
	want := []string{
		"Release " + tag + "_Claptop [backup/laptop/x@s backup/laptop/y@s backup/laptop/z@s]",
		"Release " + tag + " [backup/laptop/x@s backup/laptop/y@s]",
	}
	if !reflect.DeepEqual(calls, want) || err != nil {
		t.Errorf("%v, calls %v; want %v and success", err, calls, want)
	}
}

// A compound stream (zfs send -I) is received one substream at a time,
// each with the far side's options: zfs recv applies -o only to the first
// dataset of a package.
func TestJailCompoundSplit(t *testing.T) {
	whole := wholeStream(t, "vol-I.head") // compound BEGIN, END, BEGIN, END, END
	const rec = 312
	sub := whole[2*rec : 4*rec]
	stream := append(append(append(append([]byte(nil), whole[:2*rec]...), sub...), sub...), whole[4*rec:]...)
	asked := zfs.RecvOptions{Target: "backup/laptop/v", Resumable: true}
	err, calls := receiveStream(t, asked, stream)
	if err != nil || len(calls) != 2 {
		t.Fatalf("%v, calls %v; want two receives", err, calls)
	}
	for _, c := range calls {
		if !strings.Contains(c, "NoMount:true") || !strings.Contains(c, "volmode:none") || !strings.Contains(c, "Target:backup/laptop/v ") {
			t.Errorf("a substream received with %s", c)
		}
	}
}
