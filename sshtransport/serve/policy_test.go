package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

func testPolicy(t *testing.T, mod func(*Policy)) *Policy {
	t.Helper()
	f, err := zfs.ParseFilter([]string{"tank/data<", "!tank/data/secret<"})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Client: "laptop", ReceiveRoot: "backup/laptop", Send: f.Match}
	if mod != nil {
		mod(p)
	}
	return p
}

const goodToken = "1-c740b4e79-e0-789c63640000"

// TestPolicy runs each request over a raw connection (so the Client's own
// validation cannot hide a server-side gap) and checks the outcome and
// that a refused request ran nothing.
func TestPolicy(t *testing.T) {
	appendOnly := func(p *Policy) { p.AppendOnly = true }
	pruneSend := func(p *Policy) { p.PruneSend = true }
	noReceive := func(p *Policy) { p.ReceiveRoot = "" }
	allowHeal := func(p *Policy) { p.AllowHeal = true }
	healAppendOnly := func(p *Policy) { p.AllowHeal, p.AppendOnly = true, true }
	ok, forbidden, invalid, invalidProp, badToken := error(nil), wire.ErrForbidden, zfs.ErrInvalidName, zfs.ErrInvalidProperty, zfs.ErrResumeTokenCorrupt
	for _, tc := range []struct {
		name string
		mod  func(*Policy)
		op   string
		args any
		want error
		msg  string // substring of the refusal
	}{
		// Reading.
		{"list send area", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank/data"}}, ok, ""},
		{"list receive area", nil, wire.OpList, wire.ListArgs{Roots: []string{"backup/laptop"}}, ok, ""},
		{"list parent of send area", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank"}}, forbidden, "client laptop may not list tank: not among its send datasets and outside receive_root backup/laptop"},
		{"list excluded", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank/data/secret"}}, forbidden, ""},
		{"list all pools", nil, wire.OpList, wire.ListArgs{}, forbidden, "must name"},
		{"list sibling prefix", nil, wire.OpList, wire.ListArgs{Roots: []string{"backup/laptopx"}}, forbidden, ""},
		{"get", nil, wire.OpGet, wire.GetArgs{Names: []string{"tank/data@s", "backup/laptop/x"}, Props: []string{"guid"}}, ok, ""},
		{"get foreign", nil, wire.OpGet, wire.GetArgs{Names: []string{"tank/data", "tank/other"}, Props: []string{"guid"}}, forbidden, "tank/other"},
		{"holds", nil, wire.OpHolds, wire.HoldsArgs{Snaps: []string{"tank/data/child@s"}}, ok, ""},
		{"holds foreign", nil, wire.OpHolds, wire.HoldsArgs{Snaps: []string{"tank/other@s"}}, forbidden, ""},
		// Holds and bookmarks on both sides.
		{"hold send area", nil, wire.OpHold, wire.HoldArgs{Tag: "zsync_step_T0123456789abcdef", Snaps: []string{"tank/data@s"}}, ok, ""},
		{"release receive area", nil, wire.OpRelease, wire.HoldArgs{Tag: "zsync_last_T0123456789abcdef", Snaps: []string{"backup/laptop/x@s"}}, ok, ""},
		{"hold foreign", nil, wire.OpHold, wire.HoldArgs{Tag: "t", Snaps: []string{"tank/data@s", "tank/other@s"}}, forbidden, ""},
		{"bookmark", nil, wire.OpBookmark, wire.BookmarkArgs{Source: "tank/data@s", Bookmark: "tank/data#zsync_cursor_T0123456789abcdef_G00000000000000a1"}, ok, ""},
		{"bookmark foreign", nil, wire.OpBookmark, wire.BookmarkArgs{Source: "tank/other@s", Bookmark: "tank/other#b"}, forbidden, ""},
		// Destroying.
		{"destroy in receive area", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop/x", Names: []string{"s1"}}, ok, ""},
		{"destroy receive root itself", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop", Names: []string{"s1"}}, ok, ""},
		{"destroy in send area", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "tank/data", Names: []string{"s1"}}, forbidden, "may send but not prune"},
		{"destroy in send area with prune_send", pruneSend, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "tank/data", Names: []string{"s1"}}, ok, ""},
		{"destroy foreign", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "tank/other", Names: []string{"s1"}}, forbidden, ""},
		{"destroy append-only", appendOnly, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop/x", Names: []string{"s1"}}, forbidden, "append_only"},
		{"destroy own bookmark in send area", nil, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/data#zsync_cursor_T0123456789abcdef_G00000000000000a1"}}, ok, ""},
		{"destroy manual bookmark in send area", nil, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/data#manual"}}, forbidden, "only its own zsync bookmarks"},
		{"destroy any bookmark in receive area", nil, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"backup/laptop/x#manual"}}, ok, ""},
		{"destroy manual bookmark append-only", appendOnly, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"backup/laptop/x#manual"}}, forbidden, ""},
		{"destroy own bookmark append-only", appendOnly, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"backup/laptop/x#zsync_cursor_T0123456789abcdef_G00000000000000a1"}}, ok, ""},
		{"destroy foreign bookmark", nil, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: []string{"tank/other#zsync_cursor"}}, forbidden, ""},
		// Managing the receive area.
		{"create", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/tank", Parents: true}, ok, ""},
		{"create outside", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/other"}, forbidden, "outside receive_root backup/laptop"},
		{"create above", nil, wire.OpCreate, wire.CreateArgs{Name: "backup"}, forbidden, ""},
		{"set", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop", Props: map[string]string{"readonly": "on"}}, ok, ""},
		{"set in send area", nil, wire.OpSet, wire.SetArgs{Name: "tank/data", Props: map[string]string{"zsync:x": "1"}}, forbidden, ""},
		{"set append-only zsync prop", appendOnly, wire.OpSet, wire.SetArgs{Name: "backup/laptop", Props: map[string]string{"zsync:target-id": "0123456789abcdef"}}, ok, ""},
		{"set append-only other prop", appendOnly, wire.OpSet, wire.SetArgs{Name: "backup/laptop/x", Props: map[string]string{"mountpoint": "/"}}, forbidden, "append_only allows setting only zsync's own properties"},
		{"rename", nil, wire.OpRename, wire.RenameArgs{From: "backup/laptop/a", To: "backup/laptop/a.old"}, ok, ""},
		{"rename out", nil, wire.OpRename, wire.RenameArgs{From: "backup/laptop/a", To: "tank/a"}, forbidden, ""},
		{"rename in", nil, wire.OpRename, wire.RenameArgs{From: "tank/data", To: "backup/laptop/data"}, forbidden, ""},
		{"rename append-only", appendOnly, wire.OpRename, wire.RenameArgs{From: "backup/laptop/a", To: "backup/laptop/b"}, forbidden, "append_only"},
		{"abort receive", nil, wire.OpAbortReceive, wire.DatasetArgs{Dataset: "backup/laptop/x"}, ok, ""},
		{"abort receive foreign", nil, wire.OpAbortReceive, wire.DatasetArgs{Dataset: "tank/data"}, forbidden, ""},
		{"decode token", nil, wire.OpDecodeResumeToken, wire.TokenArgs{Token: goodToken}, ok, ""},
		// Streams.
		{"send", nil, wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{From: "tank/data#c", To: "tank/data@s"}}, ok, ""},
		{"send foreign", nil, wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{To: "tank/other@s"}}, forbidden, "client laptop may not send tank/other@s: not among its send datasets"},
		{"send excluded", nil, wire.OpSend, wire.SendArgs{Options: zfs.SendOptions{To: "tank/data/secret@s"}}, forbidden, ""},
		{"send from receive area", nil, wire.OpSend, wire.SendArgs{Options: zfs.SendOptions{To: "backup/laptop/x@s"}}, forbidden, ""},
		{"receive", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/tank/data", Resumable: true}}, ok, ""},
		{"receive outside", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "tank/other"}}, forbidden, "client laptop may not receive into tank/other: outside receive_root backup/laptop"},
		{"receive without receive_root", noReceive, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x"}}, forbidden, "it has no receive_root"},
		{"receive force", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Force: true}}, ok, ""},
		{"receive force append-only", appendOnly, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Force: true}}, forbidden, "append_only"},
		{"receive append-only", appendOnly, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x"}}, ok, ""},
		// Checksums, pool errors and repairs (zsync verify --data, heal).
		{"checksum send area", nil, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: "tank/data@s"}, ok, ""},
		{"checksum receive area", nil, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: "backup/laptop/x@s", Limit: 8 << 20, Sample: 10}, ok, ""},
		{"checksum foreign", nil, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: "tank/other@s"}, forbidden, "not among its send datasets"},
		{"checksum too slowly", nil, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: "tank/data@s", Limit: 1000}, forbidden, "at least"},
		{"checksum bad sample", nil, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: "tank/data@s", Sample: 101}, wire.ErrProtocol, ""},
		{"pool errors", nil, wire.OpPoolErrors, wire.DatasetArgs{Dataset: "backup/laptop/x"}, ok, ""},
		{"pool errors foreign", nil, wire.OpPoolErrors, wire.DatasetArgs{Dataset: "tank/other"}, forbidden, ""},
		{"repair", allowHeal, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x@s", Corrective: true}}, ok, ""},
		{"repair append-only", healAppendOnly, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x@s", Corrective: true}}, ok, ""},
		{"repair without allow_heal", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x@s", Corrective: true}}, forbidden, "allow_heal"},
		{"repair a filesystem", allowHeal, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Corrective: true}}, forbidden, "repairs a snapshot"},
		{"repair outside", allowHeal, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "tank/data@s", Corrective: true}}, forbidden, "outside receive_root"},
		{"repair with options", allowHeal, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x@s", Corrective: true, Set: map[string]string{"readonly": "on"}}}, forbidden, "takes none"},
		// Names that must never reach zfs.
		{"dotdot root", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank/data/../other"}}, invalid, ""},
		{"empty component", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank//data"}}, invalid, ""},
		{"leading slash", nil, wire.OpList, wire.ListArgs{Roots: []string{"/tank/data"}}, invalid, ""},
		{"snapshot as root", nil, wire.OpList, wire.ListArgs{Roots: []string{"tank/data@s"}}, invalid, ""},
		{"option as root", nil, wire.OpList, wire.ListArgs{Roots: []string{"-r"}}, invalid, ""},
		{"dotdot receive", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/../../tank"}}, invalid, ""},
		{"newline in name", nil, wire.OpGet, wire.GetArgs{Names: []string{"backup/laptop/x\nrm -rf /"}, Props: []string{"guid"}}, invalid, ""},
		{"empty hold tag", nil, wire.OpHold, wire.HoldArgs{Tag: "", Snaps: []string{"tank/data@s"}}, invalid, ""},
		{"comma in short name", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop/x", Names: []string{"a,b"}}, invalid, ""},
		{"percent range", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop/x", Names: []string{"a%b"}}, invalid, ""},
		{"empty short name", nil, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: "backup/laptop/x", Names: []string{""}}, invalid, ""},
		{"trailing slash", nil, wire.OpCreate, wire.CreateArgs{Name: "backup/laptop/x/"}, invalid, ""},
		{"rename to dotdot", nil, wire.OpRename, wire.RenameArgs{From: "backup/laptop/a", To: "backup/laptop/a/.."}, invalid, ""},
		{"bookmark as snapshot", nil, wire.OpHolds, wire.HoldsArgs{Snaps: []string{"tank/data#b"}}, invalid, ""},
		{"option as property", nil, wire.OpSet, wire.SetArgs{Name: "backup/laptop", Props: map[string]string{"-o": "x"}}, invalidProp, ""},
		{"equals in property", nil, wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/laptop/x", Exclude: []string{"a=b"}}}, invalidProp, ""},
		{"empty send", nil, wire.OpSend, wire.SendArgs{Options: zfs.SendOptions{To: "tank/data@"}}, invalid, ""},
		{"bad token", nil, wire.OpDecodeResumeToken, wire.TokenArgs{Token: "-nv; rm -rf /"}, badToken, ""},
		{"bad token in send", nil, wire.OpSend, wire.SendArgs{Options: zfs.SendOptions{ResumeToken: "../../etc/passwd"}}, badToken, ""},
		// Also without a policy: names are validated all the same.
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := servetest.NewFake()
			var logged []error
			r := newRaw(t, h, Options{Policy: testPolicy(t, tc.mod), Log: func(op string, args map[string]any, err error) {
				if op != "hello" {
					logged = append(logged, err)
				}
			}})
			resp := r.call(tc.op, tc.args)
			var err error
			if resp.Error != nil {
				err = resp.Error.Decode()
			}
			calls := h.Calls()
			if tc.want == nil {
				if err != nil && (errors.Is(err, wire.ErrForbidden) || errors.Is(err, zfs.ErrInvalidName)) {
					t.Fatalf("refused: %v", err)
				}
				if len(calls) == 0 && tc.op != wire.OpReceive {
					t.Fatalf("allowed but the handler did not run")
				}
				if tc.op == wire.OpReceive {
					// Finish the stream so the server answers.
					head := wholeStream(t, "fs-full.head")
					if err := wire.WriteFrame(r.conn, wire.FrameData, head); err != nil {
						t.Fatal(err)
					}
					if err := wire.WriteFrame(r.conn, wire.FrameEnd, []byte(fmt.Sprintf(`{"bytes":%d}`, len(head)))); err != nil {
						t.Fatal(err)
					}
					resp := r.readResponse()
					if resp.Error != nil {
						t.Fatalf("receive: %v", resp.Error.Decode())
					}
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err, tc.msg)
			}
			if len(calls) != 0 {
				t.Errorf("refused, yet the handler ran: %v", calls)
			}
			if len(logged) != 1 || !errors.Is(logged[0], tc.want) {
				t.Errorf("Log got %v", logged)
			}
		})
	}
}

func TestPolicyResumeTokenNamingForeignDataset(t *testing.T) {
	h := servetest.NewFake()
	h.Token = zfs.ResumeToken{ToGUID: 7, ToName: "tank/other@s"}
	r := newRaw(t, h, Options{Policy: testPolicy(t, nil)})
	resp := r.call(wire.OpSend, wire.SendArgs{Options: zfs.SendOptions{ResumeToken: goodToken}})
	if resp.Error == nil || !errors.Is(resp.Error.Decode(), wire.ErrForbidden) {
		t.Fatalf("response = %+v", resp)
	}
	if !strings.Contains(resp.Error.Message, "may not send tank/other@s") {
		t.Errorf("message %q", resp.Error.Message)
	}
	if calls := h.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "DecodeResumeToken ") {
		t.Errorf("handler calls = %v, want only the token decode", calls)
	}

	// A token of an allowed dataset goes through.
	h.Token.ToName = "tank/data/child@s"
	h.Props = map[string]map[string]string{"tank/data/child@s": {"guid": "7"}}
	resp = r.call(wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{ResumeToken: goodToken}})
	if resp.Error != nil {
		t.Fatalf("allowed token refused: %v", resp.Error.Decode())
	}
	// A token that does not decode is refused with the decode error.
	h.Errs["DecodeResumeToken"] = zfs.ErrResumeTokenCorrupt
	resp = r.call(wire.OpSendSize, wire.SendArgs{Options: zfs.SendOptions{ResumeToken: goodToken}})
	if resp.Error == nil || !errors.Is(resp.Error.Decode(), zfs.ErrResumeTokenCorrupt) {
		t.Fatalf("corrupt token: %+v", resp)
	}
	if n := len(h.Calls()); n != 5 {
		t.Errorf("calls = %v", h.Calls())
	}
}

// zfs send -t sends the snapshot with the token's toguid, wherever zfs
// finds it, and the incremental source with its fromguid: the far side
// binds both to the toname the policy checked, on send and send_size.
func TestPolicyResumeTokenBoundByGUID(t *testing.T) {
	const to = "tank/data@s"
	guids := map[string]map[string]string{to: {"guid": "7"}}
	versions := []zfs.Entry{
		{Name: "tank/data@a", Type: zfs.Snapshot, GUID: 0xa},
		{Name: "tank/data#zsync_cursor_T" + tidA + "_G000000000000000b_Claptop", Type: zfs.Bookmark, GUID: 0xb},
		{Name: to, Type: zfs.Snapshot, GUID: 7},
		// the fake lists every entry whatever the root: these are
		// another dataset's, and must not count
		{Name: "tank/other@x", Type: zfs.Snapshot, GUID: 0xc},
		{Name: "tank/data/secret#y", Type: zfs.Bookmark, GUID: 0xd},
	}
	stale, forbidden := zfs.ErrResumeTokenStale, wire.ErrForbidden
	for _, tc := range []struct {
		name  string
		token zfs.ResumeToken
		props map[string]map[string]string
		get   error
		want  error
		msg   string
	}{
		{"full", zfs.ResumeToken{ToGUID: 7, ToName: to}, guids, nil, nil, ""},
		{"from a snapshot", zfs.ResumeToken{FromGUID: 0xa, ToGUID: 7, ToName: to}, guids, nil, nil, ""},
		{"from a bookmark", zfs.ResumeToken{FromGUID: 0xb, ToGUID: 7, ToName: to}, guids, nil, nil, ""},
		{"another snapshot's guid", zfs.ResumeToken{ToGUID: 8, ToName: to}, guids, nil, forbidden, "the token's snapshot guid 0x8 is not the guid of tank/data@s"},
		{"no guid read", zfs.ResumeToken{ToGUID: 7, ToName: to}, map[string]map[string]string{"tank/data@t": {"guid": "7"}}, nil, forbidden, "not the guid"},
		{"from another dataset", zfs.ResumeToken{FromGUID: 0xc, ToGUID: 7, ToName: to}, guids, nil, forbidden, "incremental source guid 0xc is no snapshot or bookmark of tank/data"},
		{"from an excluded dataset", zfs.ResumeToken{FromGUID: 0xd, ToGUID: 7, ToName: to}, guids, nil, forbidden, "0xd"},
		{"from nowhere", zfs.ResumeToken{FromGUID: 0xe, ToGUID: 7, ToName: to}, guids, nil, forbidden, "0xe"},
		{"snapshot gone", zfs.ResumeToken{ToGUID: 7, ToName: to}, nil, zfs.ErrDatasetNotFound, stale, "no longer exists"},
		{"get fails", zfs.ResumeToken{ToGUID: 7, ToName: to}, nil, errors.New("zfs get: boom"), nil, "boom"},
	} {
		for _, op := range []string{wire.OpSend, wire.OpSendSize} {
			t.Run(tc.name+" "+op, func(t *testing.T) {
				h := servetest.NewFake()
				h.Token, h.Props, h.Entries = tc.token, tc.props, versions
				if tc.get != nil {
					h.Errs["Get"] = tc.get
				}
				r := newRaw(t, h, Options{Policy: testPolicy(t, nil)})
				ok := tc.want == nil && tc.msg == ""
				if ok && op == wire.OpSend {
					h.SendData = []byte("stream")
				}
				resp := r.call(op, wire.SendArgs{Options: zfs.SendOptions{ResumeToken: goodToken}})
				var sent bool
				for _, c := range h.Calls() {
					sent = sent || strings.HasPrefix(c, "Send")
				}
				if ok {
					if resp.Error != nil {
						t.Fatalf("refused: %v", resp.Error.Decode())
					}
					if !sent {
						t.Fatalf("allowed, yet no send ran: %v", h.Calls())
					}
					return
				}
				if resp.Error == nil {
					t.Fatalf("granted: %v", h.Calls())
				}
				err := resp.Error.Decode()
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("message %q lacks %q", err, tc.msg)
				}
				if sent {
					t.Errorf("refused, yet a send ran: %v", h.Calls())
				}
			})
		}
	}
}

func TestNoPolicyStillValidates(t *testing.T) {
	h := servetest.NewFake()
	r := newRaw(t, h, Options{})
	for _, a := range []wire.ListArgs{{Roots: []string{"tank/../x"}}, {Roots: []string{""}}, {Options: zfs.ListOptions{UserProps: []string{"a,b"}}}} {
		if resp := r.call(wire.OpList, a); resp.Error == nil {
			t.Errorf("%+v accepted", a)
		}
	}
	if resp := r.call(wire.OpList, wire.ListArgs{}); resp.Error != nil {
		t.Errorf("full rights: listing all pools refused: %v", resp.Error.Decode())
	}
	if calls := h.Calls(); len(calls) != 1 {
		t.Errorf("calls = %v", calls)
	}
}

// TestEveryRequestIsGranted: every operation of the requests table
// decodes, validates and, without a policy, is granted exactly one thing
// to run; with the test policy, it is granted or refused, never both.
func TestEveryRequestIsGranted(t *testing.T) {
	valid := map[string]string{
		wire.OpList:              `{"roots":["tank/data"],"options":{}}`,
		wire.OpGet:               `{"names":["tank/data"],"props":["guid"]}`,
		wire.OpHolds:             `{"snaps":["tank/data@s"]}`,
		wire.OpHold:              `{"tag":"t","snaps":["tank/data@s"]}`,
		wire.OpRelease:           `{"tag":"t","snaps":["tank/data@s"]}`,
		wire.OpBookmark:          `{"source":"tank/data@s","bookmark":"tank/data#b"}`,
		wire.OpDestroySnapshots:  `{"dataset":"backup/laptop/x","names":["s"]}`,
		wire.OpDestroyBookmarks:  `{"bookmarks":["backup/laptop/x#b"]}`,
		wire.OpCreate:            `{"name":"backup/laptop/x"}`,
		wire.OpSet:               `{"name":"backup/laptop/x","props":{"zsync:x":"1"}}`,
		wire.OpRename:            `{"from":"backup/laptop/a","to":"backup/laptop/b"}`,
		wire.OpSend:              `{"options":{"To":"tank/data@s"}}`,
		wire.OpSendSize:          `{"options":{"To":"tank/data@s"}}`,
		wire.OpReceive:           `{"options":{"Target":"backup/laptop/x"}}`,
		wire.OpAbortReceive:      `{"dataset":"backup/laptop/x"}`,
		wire.OpDecodeResumeToken: `{"token":"` + goodToken + `"}`,
		wire.OpSnapshotDigest:    `{"snapshot":"tank/data@s"}`,
		wire.OpPoolErrors:        `{"dataset":"tank/data"}`,
	}
	for op, decode := range requests {
		args, ok := valid[op]
		if !ok {
			t.Errorf("%s: no test arguments", op)
			continue
		}
		r, err := decode(json.RawMessage(args))
		if err != nil {
			t.Fatalf("%s: decoding %s: %v", op, args, err)
		}
		if err := r.validate(); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		for _, p := range []*Policy{nil, testPolicy(t, nil)} {
			g, err := r.authorize(context.Background(), gateFor(p, servetest.NewFake()))
			parts := 0
			for _, set := range []bool{g.call != nil, g.send != nil, g.recv != nil} {
				if set {
					parts++
				}
			}
			switch {
			case err == nil && parts != 1:
				t.Errorf("%s (policy %v): granted %d things to run, want 1", op, p != nil, parts)
			case err != nil && parts != 0:
				t.Errorf("%s (policy %v): refused (%v) and granted", op, p != nil, err)
			case err != nil && p == nil:
				t.Errorf("%s: refused without a policy: %v", op, err)
			}
		}
	}
}

// streamHead returns the head of a real send stream recorded in the zfs
// package's testdata.
func streamHead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../zfs/testdata/streams/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wholeStream makes a complete stream of a recorded head: its records up
// to the first substream's BEGIN (without payload), then that substream's
// END and, for a compound stream, the stream's last END.
func wholeStream(t *testing.T, name string) []byte {
	t.Helper()
	head := streamHead(t, name)
	const rec = 312
	end := make([]byte, rec)
	end[0] = 5 // END, little-endian
	n := rec
	if head[16]&3 == 2 { // compound: its BEGIN, its END, the substream's BEGIN
		n = 3 * rec
	}
	out := append([]byte(nil), head[:n]...)
	out[n-rec+4], out[n-rec+5], out[n-rec+6], out[n-rec+7] = 0, 0, 0, 0 // no payload
	out = append(out, end...)
	if n > rec {
		out = append(out, end...)
	}
	return out
}
