package sshtransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// The Client has the method set of *zfs.CLI: it is a Handler too (a far
// side could serve through another).
var _ serve.Handler = (*Client)(nil)

func TestRoundTripEveryOp(t *testing.T) {
	h := servetest.NewFake()
	created := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	h.Entries = []zfs.Entry{
		{Name: "tank/data", Type: zfs.Filesystem, GUID: 1<<63 + 5, CreateTXG: 10, Creation: created,
			Encryption: "aes-256-gcm", EncryptionRoot: "tank/data", KeyStatus: "available",
			ResumeToken: "1-abc-10-789c", User: map[string]string{"zsync:target-id": "0123456789abcdef"}},
		{Name: "tank/data@zsync_20261122T050000Z", Type: zfs.Snapshot, GUID: 42, CreateTXG: 11, Creation: created, UserRefs: 2},
		{Name: "tank/data#zsync_cursor", Type: zfs.Bookmark, GUID: 42, CreateTXG: 11, Creation: created},
	}
	h.Props = map[string]map[string]string{"tank/data": {"zsync:target-id": "0123456789abcdef", "mounted": "no"}}
	h.HoldTags = map[string][]string{"tank/data@s1": {"zsync_step_T1", "keep"}}
	h.Size = 123456789
	h.Token = zfs.ResumeToken{FromGUID: 1, ToGUID: 2, ToName: "tank/data@s2", Raw: true, Bytes: 99}
	s := newSession(t, h, serve.Options{}, ClientOptions{SoftwareVersion: "v1.2.3"})
	c, ctx := s.c, context.Background()

	if p := c.Peer(); p.Protocol != ProtocolVersion || p.Software != "v-test" {
		t.Errorf("Peer() = %+v", p)
	}
	entries, err := c.List(ctx, []string{"tank/data"}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}, UserProps: []string{"zsync:target-id"}, SnapshotsChanged: true})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !reflect.DeepEqual(entries, h.Entries) {
		t.Errorf("List = %+v\nwant %+v", entries, h.Entries)
	}
	props, err := c.Get(ctx, []string{"tank/data"}, []string{"zsync:target-id", "mounted"})
	if err != nil || !reflect.DeepEqual(props, h.Props) {
		t.Errorf("Get = %v, %v", props, err)
	}
	holds, err := c.Holds(ctx, []string{"tank/data@s1"})
	if err != nil || !reflect.DeepEqual(holds, h.HoldTags) {
		t.Errorf("Holds = %v, %v", holds, err)
	}
	check := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	check("Hold", c.Hold(ctx, "zsync_step_T1", []string{"tank/data@s1", "tank/data@s2"}))
	check("Release", c.Release(ctx, "zsync_step_T1", []string{"tank/data@s1"}))
	check("Bookmark", c.Bookmark(ctx, "tank/data@s1", "tank/data#zsync_cursor"))
	check("DestroySnapshots", c.DestroySnapshots(ctx, "tank/data", []string{"s1", "s2"}))
	check("DestroyBookmarks", c.DestroyBookmarks(ctx, []string{"tank/data#old"}))
	check("Create", c.Create(ctx, "backup/tank", map[string]string{"canmount": "noauto"}, true))
	check("Set", c.Set(ctx, "backup/tank", map[string]string{"zsync:target-id": "0123456789abcdef"}))
	check("Rename", c.Rename(ctx, "backup/tank", "backup/tank.old"))
	vs, err := zfs.SendOptions{From: "tank/data@s1", To: "tank/data@s2", Raw: true}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.SendSize(ctx, vs)
	if err != nil || n != h.Size {
		t.Errorf("SendSize = %d, %v", n, err)
	}
	check("AbortReceive", c.AbortReceive(ctx, "backup/tank"))
	tok, err := c.DecodeResumeToken(ctx, "1-abc-10-789c")
	if err != nil || tok != h.Token {
		t.Errorf("DecodeResumeToken = %+v, %v", tok, err)
	}

	want := []string{
		"List [tank/data] {Depth:1 Types:[snapshot] UserProps:[zsync:target-id] SnapshotsChanged:true}",
		"Get [tank/data] [zsync:target-id mounted]",
		"Holds [tank/data@s1]",
		"Hold zsync_step_T1 [tank/data@s1 tank/data@s2]",
		"Release zsync_step_T1 [tank/data@s1]",
		"Bookmark tank/data@s1 tank/data#zsync_cursor",
		"DestroySnapshots tank/data [s1 s2]",
		"DestroyBookmarks [tank/data#old]",
		"Create backup/tank map[canmount:noauto] true",
		"Set backup/tank map[zsync:target-id:0123456789abcdef]",
		"Rename backup/tank backup/tank.old",
		"SendSize {From:tank/data@s1 To:tank/data@s2 Intermediates:false Raw:true Compressed:false LargeBlocks:false EmbeddedData:false Props:false ResumeToken:}",
		"AbortReceive backup/tank",
		"DecodeResumeToken 1-abc-10-789c",
	}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("handler calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	logged := s.log.get()
	if len(logged) != len(want)+1 || logged[0] != "hello <nil>" || logged[1] != "list <nil>" {
		t.Errorf("Log calls = %q, want hello and one per request", logged)
	}
}

func TestListInSeveralFrames(t *testing.T) {
	h := servetest.NewFake()
	for i := 0; i < 40000; i++ {
		h.Entries = append(h.Entries, zfs.Entry{
			Name: fmt.Sprintf("tank/data/with/a/rather/long/path@zsync_%08d_and_some_more_text", i),
			Type: zfs.Snapshot, GUID: uint64(i) + 1<<60, CreateTXG: uint64(i),
		})
	}
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	got, err := s.c.List(context.Background(), []string{"tank/data"}, zfs.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(h.Entries) || got[39999].Name != h.Entries[39999].Name || got[0].GUID != h.Entries[0].GUID {
		t.Fatalf("got %d entries, want %d", len(got), len(h.Entries))
	}
	// The connection is in step afterwards.
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyListIsNotNilError(t *testing.T) {
	s := newSession(t, servetest.NewFake(), serve.Options{}, ClientOptions{})
	got, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{})
	if err != nil || len(got) != 0 {
		t.Fatalf("List = %v, %v", got, err)
	}
}

// zfsFailure builds an error like the zfs package's: a sentinel next to the
// generic *zfs.Error with zfs's stderr.
func zfsFailure(kind error, stderr string, argv ...string) error {
	return fmt.Errorf("zfs %s: %w", argv[1], errors.Join(kind, &zfs.Error{Args: argv, Stderr: stderr, ExitCode: 1}))
}

func TestTypedErrorsCrossTheWire(t *testing.T) {
	h := servetest.NewFake()
	stderr := "cannot open 'tank/nope': dataset does not exist\n"
	h.Errs["List"] = zfsFailure(zfs.ErrDatasetNotFound, stderr, "zfs", "list", "-H", "-p", "tank/nope")
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	_, err := s.c.List(context.Background(), []string{"tank/nope"}, zfs.ListOptions{})
	if !errors.Is(err, zfs.ErrDatasetNotFound) {
		t.Fatalf("errors.Is(%v, ErrDatasetNotFound) = false", err)
	}
	if errors.Is(err, zfs.ErrExists) {
		t.Errorf("error also claims ErrExists")
	}
	var ze *zfs.Error
	if !errors.As(err, &ze) || ze.Stderr != stderr || ze.ExitCode != 1 || ze.Args[1] != "list" {
		t.Errorf("errors.As *zfs.Error = %+v", ze)
	}
	if want := h.Errs["List"].Error(); err.Error() != want {
		t.Errorf("message = %q, want the far message verbatim %q", err.Error(), want)
	}
	if !strings.Contains(err.Error(), "cannot open 'tank/nope': dataset does not exist") {
		t.Errorf("message %q lacks zfs's stderr", err)
	}
	// The connection stays usable after an error.
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatal(err)
	}
}

// TestEverySentinelCrosses: each kind of wire.Kinds survives the trip, and
// every exported Err* of package zfs has a kind (so a sentinel added there
// without a wire name fails here).
func TestEverySentinelCrosses(t *testing.T) {
	for _, k := range wire.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			h := servetest.NewFake()
			h.Errs["Hold"] = fmt.Errorf("zfs hold: %w", k.Err)
			s := newSession(t, h, serve.Options{}, ClientOptions{})
			err := s.c.Hold(context.Background(), "tag", []string{"tank/a@b"})
			if !errors.Is(err, k.Err) {
				t.Fatalf("errors.Is(%v, %v) = false", err, k.Err)
			}
			for _, other := range wire.Kinds() {
				if other.Err != k.Err && errors.Is(err, other.Err) {
					t.Errorf("error also claims %s", other.Name)
				}
			}
		})
	}

	files, err := filepath.Glob("../zfs/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no zfs sources: %v", err)
	}
	known := map[string]bool{}
	for _, k := range wire.Kinds() {
		known[k.Err.Error()] = true
	}
	exported := map[string]error{
		"ErrDatasetNotFound": zfs.ErrDatasetNotFound, "ErrExists": zfs.ErrExists, "ErrSnapshotHeld": zfs.ErrSnapshotHeld,
		"ErrSnapshotCloned": zfs.ErrSnapshotCloned, "ErrHoldExists": zfs.ErrHoldExists, "ErrNoSuchHold": zfs.ErrNoSuchHold,
		"ErrDestinationModified": zfs.ErrDestinationModified, "ErrIncrementalMismatch": zfs.ErrIncrementalMismatch,
		"ErrDestinationHasSnapshots": zfs.ErrDestinationHasSnapshots, "ErrPartialReceive": zfs.ErrPartialReceive,
		"ErrStreamIncomplete": zfs.ErrStreamIncomplete, "ErrResumeTokenCorrupt": zfs.ErrResumeTokenCorrupt,
		"ErrResumeTokenStale": zfs.ErrResumeTokenStale, "ErrNotMostRecent": zfs.ErrNotMostRecent, "ErrBusy": zfs.ErrBusy,
		"ErrPermissionDenied": zfs.ErrPermissionDenied, "ErrNoSpace": zfs.ErrNoSpace, "ErrInvalidName": zfs.ErrInvalidName,
		"ErrInvalidProperty": zfs.ErrInvalidProperty, "ErrStreamHeader": zfs.ErrStreamHeader,
		"ErrProgramUnavailable": zfs.ErrProgramUnavailable,
		"ErrDigestStream":       zfs.ErrDigestStream,
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if !n.IsExported() || !strings.HasPrefix(n.Name, "Err") {
						continue
					}
					e, ok := exported[n.Name]
					if !ok {
						t.Errorf("zfs.%s has no wire kind: add it to wireKinds (and to this test)", n.Name)
						continue
					}
					if !known[e.Error()] {
						t.Errorf("zfs.%s is not in wireKinds", n.Name)
					}
				}
			}
		}
	}
}

func TestDestroyErrorCrosses(t *testing.T) {
	h := servetest.NewFake()
	h.Errs["DestroySnapshots"] = &zfs.DestroyError{Dataset: "tank/data", Failed: map[string]error{
		"held":   zfsFailure(zfs.ErrSnapshotHeld, "cannot destroy snapshot tank/data@held: dataset is busy\n", "zfs", "destroy", "tank/data@held,cloned"),
		"cloned": fmt.Errorf("@cloned: %w", zfs.ErrSnapshotCloned),
	}}
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	err := s.c.DestroySnapshots(context.Background(), "tank/data", []string{"held", "cloned", "ok"})
	var de *zfs.DestroyError
	if !errors.As(err, &de) {
		t.Fatalf("errors.As(%v, *DestroyError) = false", err)
	}
	if de.Dataset != "tank/data" || len(de.Failed) != 2 {
		t.Fatalf("DestroyError = %+v", de)
	}
	if !errors.Is(de.Failed["held"], zfs.ErrSnapshotHeld) || errors.Is(de.Failed["held"], zfs.ErrSnapshotCloned) {
		t.Errorf("Failed[held] = %v: wrong kinds", de.Failed["held"])
	}
	if !errors.Is(de.Failed["cloned"], zfs.ErrSnapshotCloned) || errors.Is(de.Failed["cloned"], zfs.ErrSnapshotHeld) {
		t.Errorf("Failed[cloned] = %v: wrong kinds", de.Failed["cloned"])
	}
	var ze *zfs.Error
	if !errors.As(de.Failed["held"], &ze) || !strings.Contains(ze.Stderr, "dataset is busy") {
		t.Errorf("Failed[held] lost zfs's stderr: %+v", ze)
	}
	if !errors.Is(err, zfs.ErrSnapshotHeld) {
		t.Errorf("the whole error does not wrap ErrSnapshotHeld")
	}
	if err.Error() != h.Errs["DestroySnapshots"].Error() {
		t.Errorf("message %q, want %q", err, h.Errs["DestroySnapshots"])
	}
}

func TestHoldErrorAndNameErrorCross(t *testing.T) {
	h := servetest.NewFake()
	h.Errs["Hold"] = &zfs.HoldError{Op: "hold", Tag: "t", Failed: map[string]error{"tank/a@x": fmt.Errorf("x: %w", zfs.ErrHoldExists)}}
	h.Errs["Create"] = fmt.Errorf("create: %w", &zfs.NameError{Name: "tank/a", Reason: "too deep"})
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	err := s.c.Hold(context.Background(), "t", []string{"tank/a@x"})
	var he *zfs.HoldError
	if !errors.As(err, &he) || he.Op != "hold" || he.Tag != "t" || !errors.Is(he.Failed["tank/a@x"], zfs.ErrHoldExists) {
		t.Errorf("HoldError = %+v (%v)", he, err)
	}
	err = s.c.Create(context.Background(), "tank/a", nil, false)
	var ne *zfs.NameError
	if !errors.As(err, &ne) || ne.Reason != "too deep" || !errors.Is(err, zfs.ErrInvalidName) {
		t.Errorf("NameError = %+v (%v)", ne, err)
	}
}

func TestFarCancellationIsNotLocal(t *testing.T) {
	h := servetest.NewFake()
	h.Errs["Set"] = fmt.Errorf("zfs set: %w", context.Canceled)
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	err := s.c.Set(context.Background(), "tank/a", map[string]string{"zsync:x": "1"})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v: a far cancellation must not look like a local one", err)
	}
}

func TestClientValidatesBeforeSending(t *testing.T) {
	h := servetest.NewFake()
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	ctx := context.Background()
	for name, err := range map[string]error{
		"List":    func() error { _, err := s.c.List(ctx, []string{"tank/../etc"}, zfs.ListOptions{}); return err }(),
		"Hold":    s.c.Hold(ctx, "", []string{"tank/a@b"}),
		"Destroy": s.c.DestroySnapshots(ctx, "tank/a", []string{"b,c"}),
		"Set":     s.c.Set(ctx, "tank/a", map[string]string{"-o": "x"}),
		"Rename":  s.c.Rename(ctx, "tank/a", "tank/a@b"),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("handler ran: %v", calls)
	}
}

func TestContextCancelUnblocksACall(t *testing.T) {
	h := servetest.NewFake()
	h.Block = true
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.c.List(ctx, []string{"tank"}, zfs.ListOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	_, err = s.c.Holds(context.Background(), []string{"tank/a@b"})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("after a cancelled call: %v, want ErrClosed", err)
	}
	select {
	case err := <-s.serveErr:
		s.serveErr <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Error("Serve did not end after the client dropped the connection")
	}
}

func TestClosedClient(t *testing.T) {
	s := newSession(t, servetest.NewFake(), serve.Options{}, ClientOptions{})
	if err := s.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.c.AbortReceive(context.Background(), "tank/a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	select {
	case err := <-s.serveErr:
		if err != nil {
			t.Errorf("Serve after a clean close: %v", err)
		}
		s.serveErr <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestConcurrentCallsAreSerialized(t *testing.T) {
	h := servetest.NewFake()
	h.HoldTags = map[string][]string{"tank/a@b": {"x"}}
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			got, err := s.c.Holds(context.Background(), []string{"tank/a@b"})
			if err == nil && len(got["tank/a@b"]) != 1 {
				err = fmt.Errorf("got %v", got)
			}
			errs <- err
		}()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCompressionOptionIsChecked(t *testing.T) {
	a, b := io.Pipe()
	defer a.Close()
	_, err := NewClient(context.Background(), struct {
		io.Reader
		io.Writer
		io.Closer
	}{a, io.Discard, b}, ClientOptions{Compression: "lz4"})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
}

// childEnv makes the test binary act as a child process for StartLocal.
const childEnv = "ZSYNC_SSHTRANSPORT_TEST_CHILD"

// TestMain runs the test binary as a StartLocal child when childEnv says
// so: "serve" serves a fake handler on stdin/stdout, "garbage" prints a
// line that is not a banner, "die" fails before any banner.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		h := servetest.NewFake()
		h.HoldTags = map[string][]string{"tank/a@b": {"child"}}
		h.SendData = testData(2<<20 + 1)
		fmt.Fprintln(os.Stderr, "child: serving")
		if err := serve.Serve(context.Background(), os.Stdin, os.Stdout, h, serve.Options{SoftwareVersion: "child-1.0"}); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "garbage":
		fmt.Println("Welcome to the machine")
		os.Exit(0)
	case "die":
		fmt.Fprintln(os.Stderr, "zsync: cannot read /etc/zsync/zsync.toml: permission denied")
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "unknown", childEnv)
	os.Exit(3)
}

func TestStartLocal(t *testing.T) {
	t.Setenv(childEnv, "serve")
	var stderr bytes.Buffer
	ctx := context.Background()
	c, err := StartLocal(ctx, []string{os.Args[0]}, ClientOptions{Stderr: &syncWriter{w: &stderr}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Peer(); p.Software != "child-1.0" {
		t.Errorf("Peer = %+v", p)
	}
	holds, err := c.Holds(ctx, []string{"tank/a@b"})
	if err != nil || holds["tank/a@b"][0] != "child" {
		t.Fatalf("Holds = %v, %v", holds, err)
	}
	rc, err := c.Send(ctx, mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, testData(2<<20+1)) {
		t.Fatalf("Send through the child: %d bytes, %v", len(got), err)
	}
	_ = rc.Close()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !strings.Contains(stderr.String(), "child: serving") {
		t.Errorf("child's stderr not copied: %q", stderr.String())
	}
}

func TestStartLocalNotZsync(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"garbage", []string{`far side did not answer as zsync serve (got "Welcome to the machine")`}},
		{"die", []string{"far side did not answer as zsync serve", "exit status 2", "permission denied"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv(childEnv, tc.mode)
			start := time.Now()
			_, err := StartLocal(context.Background(), []string{os.Args[0]}, ClientOptions{})
			if !errors.Is(err, ErrNotZsync) {
				t.Fatalf("err = %v, want ErrNotZsync", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	_, err := StartLocal(context.Background(), []string{"/nonexistent/zsync", "serve", "--stdio"}, ClientOptions{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/zsync") {
		t.Errorf("missing binary: %v", err)
	}
	if _, err := StartLocal(context.Background(), nil, ClientOptions{}); err == nil {
		t.Error("empty argv accepted")
	}
}

// syncWriter serialises writes (the child's stderr is copied from another
// goroutine).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
