package sshtransport

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/zfs"
)

func testPolicy(t *testing.T, mod func(*serve.Policy)) *serve.Policy {
	t.Helper()
	f, err := zfs.ParseFilter([]string{"tank/data<", "!tank/data/secret<"})
	if err != nil {
		t.Fatal(err)
	}
	p := &serve.Policy{Client: "laptop", ReceiveRoot: "backup/laptop", Send: f.Match}
	if mod != nil {
		mod(p)
	}
	return p
}

func TestPolicyFiltersListings(t *testing.T) {
	h := servetest.NewFake()
	for _, n := range []string{"tank/data", "tank/data@s", "tank/data#zsync_cursor", "tank/data/child", "tank/data/child@s",
		"tank/data/secret", "tank/data/secret@s", "tank/data/secret/deeper"} {
		h.Entries = append(h.Entries, zfs.Entry{Name: n})
	}
	s := newSession(t, h, serve.Options{Policy: testPolicy(t, nil)}, ClientOptions{})
	got, err := s.c.List(context.Background(), []string{"tank/data"}, zfs.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Name)
	}
	want := "tank/data tank/data@s tank/data#zsync_cursor tank/data/child tank/data/child@s"
	if strings.Join(names, " ") != want {
		t.Errorf("List = %v, want %s", names, want)
	}
}

func TestPolicyRefusalThroughClient(t *testing.T) {
	h := servetest.NewFake()
	s := newSession(t, h, serve.Options{Policy: testPolicy(t, func(p *serve.Policy) { p.AppendOnly = true })}, ClientOptions{})
	err := s.c.DestroySnapshots(context.Background(), "backup/laptop/tank/data", []string{"zsync_1"})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v", err)
	}
	if want := "client laptop may not destroy snapshots of backup/laptop/tank/data: append_only is set"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if len(h.Calls()) != 0 {
		t.Errorf("handler ran: %v", h.Calls())
	}
	// A refusal leaves the connection usable.
	if err := s.c.Hold(context.Background(), "zsync_last_T0123456789abcdef", []string{"backup/laptop/x@s"}); err != nil {
		t.Fatal(err)
	}
}
