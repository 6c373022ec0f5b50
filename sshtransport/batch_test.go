package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/zfs"
)

// snapNames returns n short snapshot names of about 100 bytes.
func snapNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%05d_%s", i, strings.Repeat("x", 94))
	}
	return out
}

func keysOf(m map[string]error) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// The far side reports every snapshot it could not destroy, however many:
// each with its kind, the first ones with zfs's stderr too, even when each
// failure carries a 64 KiB argv (as a batched zfs destroy's do).
func TestDestroyErrorListsEveryFailure(t *testing.T) {
	// more than older servers listed (1000); with their argv, far more
	// than a frame holds (1200 * 64 KiB)
	names := snapNames(1200)
	arg := "tank/data@" + strings.Join(names[:640], ",") // ~64 KiB, like a batch's argument
	failed := map[string]error{}
	for i, n := range names {
		kind := zfs.ErrSnapshotHeld
		if i%2 == 1 {
			kind = zfs.ErrSnapshotCloned
		}
		failed[n] = zfsFailure(kind, "cannot destroy snapshot tank/data@"+n+": dataset is busy", "zfs", "destroy", arg)
	}
	h := servetest.NewFake()
	h.Errs["DestroySnapshots"] = &zfs.DestroyError{Dataset: "tank/data", Failed: failed}
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	err := s.c.DestroySnapshots(context.Background(), "tank/data", append([]string{"destroyed"}, names...))
	var de *zfs.DestroyError
	if !errors.As(err, &de) {
		t.Fatalf("err = %.300v, want a *DestroyError", err)
	}
	if got := keysOf(de.Failed); !reflect.DeepEqual(got, sorted(names)) {
		t.Fatalf("Failed names %d snapshots, want all %d failures (and not the destroyed one)", len(got), len(names))
	}
	for i, n := range names {
		want, other := zfs.ErrSnapshotHeld, zfs.ErrSnapshotCloned
		if i%2 == 1 {
			want, other = other, want
		}
		if f := de.Failed[n]; !errors.Is(f, want) || errors.Is(f, other) || errors.Is(f, ErrUnreported) {
			t.Fatalf("Failed[%s] = %.200v: wrong kinds", n, f)
		}
	}
	var ze *zfs.Error
	if !errors.As(de.Failed[names[0]], &ze) || !strings.Contains(ze.Stderr, "dataset is busy") || len(ze.Args[2]) > 1<<10+16 /* wire bounds an argument to 1 KiB */ {
		t.Errorf("Failed[first] lost zfs's stderr or carries the whole argv: %+v", ze)
	}
}

// A nil error in the far side's Failed map still names the snapshot.
func TestDestroyNilFailureCrosses(t *testing.T) {
	h := servetest.NewFake()
	h.Errs["DestroySnapshots"] = &zfs.DestroyError{Dataset: "tank/data", Failed: map[string]error{"a": nil}}
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	err := s.c.DestroySnapshots(context.Background(), "tank/data", []string{"a", "b"})
	var de *zfs.DestroyError
	if !errors.As(err, &de) || de.Failed["a"] == nil || len(de.Failed) != 1 {
		t.Fatalf("err = %v, want a DestroyError naming a", err)
	}
}

// More snapshots than one request carries go in several requests; their
// results merge exactly.
func TestDestroySnapshotsSplitsRequests(t *testing.T) {
	names := snapNames(10000)
	r1, r2, r3 := names[:4096], names[4096:8192], names[8192:]
	run := func(t *testing.T, answer func(call int, names []string) error) (error, [][]string) {
		h := servetest.NewFake()
		var mu sync.Mutex
		var calls [][]string
		h.Destroy = func(_ string, names []string) error {
			mu.Lock()
			calls = append(calls, names)
			n := len(calls)
			mu.Unlock()
			return answer(n, names)
		}
		s := newSession(t, h, serve.Options{}, ClientOptions{})
		return s.c.DestroySnapshots(context.Background(), "tank/data", names), calls
	}
	t.Run("all destroyed", func(t *testing.T) {
		err, calls := run(t, func(int, []string) error { return nil })
		if err != nil || !reflect.DeepEqual(calls, [][]string{r1, r2, r3}) {
			t.Errorf("err = %v, %d requests", err, len(calls))
		}
	})
	t.Run("per-snapshot failures", func(t *testing.T) {
		err, calls := run(t, func(n int, names []string) error {
			if n == 1 {
				return nil
			}
			return &zfs.DestroyError{Dataset: "tank/data", Failed: map[string]error{names[5]: fmt.Errorf("held: %w", zfs.ErrSnapshotHeld)}}
		})
		var de *zfs.DestroyError
		if !errors.As(err, &de) || !reflect.DeepEqual(keysOf(de.Failed), []string{r2[5], r3[5]}) || len(calls) != 3 {
			t.Fatalf("err = %.300v, %d requests", err, len(calls))
		}
		if !errors.Is(de.Failed[r2[5]], zfs.ErrSnapshotHeld) {
			t.Errorf("Failed[%s] = %v", r2[5], de.Failed[r2[5]])
		}
	})
	t.Run("a request fails as a whole", func(t *testing.T) {
		err, calls := run(t, func(n int, _ []string) error {
			if n == 2 {
				return fmt.Errorf("no: %w", zfs.ErrPermissionDenied)
			}
			return nil
		})
		var de *zfs.DestroyError
		if !errors.As(err, &de) || len(calls) != 2 {
			t.Fatalf("err = %.300v, %d requests", err, len(calls))
		}
		if got := keysOf(de.Failed); !reflect.DeepEqual(got, sorted(append(append([]string(nil), r2...), r3...))) {
			t.Errorf("Failed names %d snapshots, want the %d of requests 2 and 3", len(got), len(r2)+len(r3))
		}
		if !errors.Is(de.Failed[r3[0]], zfs.ErrPermissionDenied) || !errors.Is(err, zfs.ErrPermissionDenied) {
			t.Errorf("the failure is lost: %v", de.Failed[r3[0]])
		}
	})
	t.Run("the first request fails", func(t *testing.T) {
		err, calls := run(t, func(int, []string) error { return fmt.Errorf("no: %w", zfs.ErrPermissionDenied) })
		var de *zfs.DestroyError
		if errors.As(err, &de) || !errors.Is(err, zfs.ErrPermissionDenied) || len(calls) != 1 {
			t.Errorf("err = %.300v, %d requests; want the plain error after one", err, len(calls))
		}
	})
}
