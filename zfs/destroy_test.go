package zfs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDestroySnapshotsRetriesWithoutFailedOnes(t *testing.T) {
	tests := []struct {
		name    string
		stderr  string
		retry   []string // argv of the retried batch
		failed  []string
		wantErr error
	}{
		{"held 2.1 wording", "destroy_held_2.1.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"held is-held wording", "destroy_held_isheld.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"held being-held wording", "destroy_held_beingheld.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"two held", "destroy_held_two_2.1.txt", []string{"zfs", "destroy", "tank/a@s1"}, []string{"s2", "s3"}, ErrSnapshotHeld},
		{"cloned", "destroy_cloned.txt", []string{"zfs", "destroy", "tank/a@s1,s2"}, []string{"s3"}, ErrSnapshotCloned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			first := []string{"zfs", "destroy", "tank/a@s1,s2,s3"}
			f.Expect(first, fail(t, tt.stderr))
			f.Expect(tt.retry, FakeResponse{})
			err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2", "s3"})
			var de *DestroyError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DestroyError", err)
			}
			if de.Dataset != "tank/a" {
				t.Errorf("Dataset = %q", de.Dataset)
			}
			if got := sortedKeys(de.Failed); !reflect.DeepEqual(got, tt.failed) {
				t.Errorf("Failed = %q, want %q", got, tt.failed)
			}
			for _, e := range de.Failed {
				if !errors.Is(e, tt.wantErr) {
					t.Errorf("failed entry %v does not wrap %v", e, tt.wantErr)
				}
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("failed entry %v does not wrap *Error", e)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantErr)
			}
			wantArgv(t, f, first, tt.retry)
		})
	}
}

func TestDestroySnapshotsIdempotent(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@gone1,gone2"}, fail(t, "destroy_nothing.txt"))
	if err := c.DestroySnapshots(context.Background(), "tank/a", []string{"gone1", "gone2"}); err != nil {
		t.Errorf("destroying missing snapshots: %v", err)
	}
	// Nothing to do: no call at all.
	if err := c.DestroySnapshots(context.Background(), "tank/a", nil); err != nil {
		t.Errorf("empty list: %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestDestroySnapshotsHeldThenAllGone(t *testing.T) {
	// The retry finds the remaining snapshots already destroyed by someone
	// else: the held one is still reported.
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s2,s3"}, fail(t, "destroy_held_2.1.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s3"}, fail(t, "destroy_nothing.txt"))
	err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2", "s3"})
	var de *DestroyError
	if !errors.As(err, &de) || len(de.Failed) != 1 || de.Failed["s2"] == nil {
		t.Fatalf("err = %v, want DestroyError for s2", err)
	}
}

func TestDestroySnapshotsUnattributedFailure(t *testing.T) {
	tests := []struct {
		stderr string
		want   error
	}{
		{"open_notfound.txt", ErrDatasetNotFound},
		{"destroy_other_dataset.txt", nil}, // names another dataset: generic
	}
	for _, tt := range tests {
		c, f := newFake(t)
		f.Expect([]string{"zfs", "destroy", "tank/nope@s1"}, fail(t, tt.stderr))
		err := c.DestroySnapshots(context.Background(), "tank/nope", []string{"s1"})
		var de *DestroyError
		var ce *Error
		if err == nil || errors.As(err, &de) || !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a plain *Error", tt.stderr, err)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.stderr, err, tt.want)
		}
		if tt.want == nil && errors.Is(err, ErrSnapshotHeld) {
			t.Errorf("%s: a held snapshot of another dataset was attributed", tt.stderr)
		}
	}
}

func TestDestroyBookmarksIdempotent(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a#gone"}, fail(t, "bookmark_missing.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a#b"}, FakeResponse{})
	if err := c.DestroyBookmarks(context.Background(), []string{"tank/a#gone", "tank/a#b"}); err != nil {
		t.Fatalf("err = %v", err)
	}
	// A missing message about another bookmark is a failure.
	f.Expect([]string{"zfs", "destroy", "tank/a#other"}, fail(t, "bookmark_missing.txt"))
	if err := c.DestroyBookmarks(context.Background(), []string{"tank/a#other"}); err == nil {
		t.Error("unrelated message taken as success")
	}
}

// TestDestroyBookmarksConcurrent: one zfs destroy per bookmark, up to
// destroyBookmarkProcs at a time; every bookmark is tried, and the error
// names each one that failed.
func TestDestroyBookmarksConcurrent(t *testing.T) {
	c, f := newFake(t)
	var (
		mu             sync.Mutex
		running, peak  int
		names, release = []string{}, make(chan struct{})
	)
	for i := 0; i < 20; i++ {
		names = append(names, fmt.Sprintf("tank/d%02d#zsync_cursor_x", i))
	}
	f.Fallback = func(cmd Cmd) (FakeResponse, bool) {
		mu.Lock()
		running++
		peak = max(peak, running)
		if running == destroyBookmarkProcs {
			select {
			case <-release:
			default:
				close(release)
			}
		}
		mu.Unlock()
		// the first calls wait until eight run at once (or a while: a
		// sequential implementation fails on peak below)
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		mu.Lock()
		running--
		mu.Unlock()
		switch cmd.Argv[len(cmd.Argv)-1] {
		case names[3]:
			return FakeResponse{Stderr: "cannot destroy bookmark: permission denied\n", ExitCode: 1}, true
		case names[17]:
			return FakeResponse{Stderr: "cannot destroy bookmark: dataset does not exist\n", ExitCode: 1}, true
		}
		return FakeResponse{}, true
	}
	err := c.DestroyBookmarks(context.Background(), names)
	if err == nil || !strings.Contains(err.Error(), names[3]) || !strings.Contains(err.Error(), names[17]) {
		t.Fatalf("err = %v, want both failures named", err)
	}
	if strings.Index(err.Error(), names[3]) > strings.Index(err.Error(), names[17]) {
		t.Errorf("failures out of order: %v", err)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Errorf("err = %v, want a *zfs.Error inside", err)
	}
	got := argvOf(f.Calls())
	if len(got) != len(names) {
		t.Fatalf("%d calls, want %d", len(got), len(names))
	}
	seen := map[string]bool{}
	for _, a := range got {
		if len(a) != 3 || a[1] != "destroy" {
			t.Fatalf("call %q", a)
		}
		seen[a[2]] = true
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("%s was not destroyed", n)
		}
	}
	if peak != destroyBookmarkProcs {
		t.Errorf("at most %d calls ran at once, want %d", peak, destroyBookmarkProcs)
	}
}

func TestDestroySnapshotsKeepsFailuresWhenRetryFailsOtherwise(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s2"}, fail(t, "destroy_held_2.1.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a@s1"}, FakeResponse{Stderr: "internal error: Invalid argument\n", ExitCode: 1})
	err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2"})
	var de *DestroyError
	var ce *Error
	if !errors.As(err, &de) || de.Failed["s2"] == nil || !errors.As(err, &ce) || !errors.Is(err, ErrSnapshotHeld) {
		t.Errorf("err = %v, want the DestroyError for s2 and the generic error", err)
	}
	// s1 was not destroyed either (the retry failed as a whole): the
	// DestroyError names it, so that no caller counts it as destroyed.
	if de == nil || !errors.As(de.Failed["s1"], &ce) || !reflect.DeepEqual(sortedKeys(de.Failed), []string{"s1", "s2"}) {
		t.Errorf("Failed = %v, want s1 (the generic error) and s2", de)
	}
}

func TestDestroyFailureParsing(t *testing.T) {
	tests := []struct {
		line          string
		short, reason string
		ok            bool
	}{
		{"cannot destroy snapshot tank/a@s2: dataset is busy", "s2", "dataset is busy", true},
		{"cannot destroy snapshot tank/a@x: y: dataset is busy", "x: y", "dataset is busy", true},
		{"cannot destroy snapshot tank/a@x: snapshot is cloned", "x", "snapshot is cloned", true},
		{"cannot destroy snapshot tank/b@s2: dataset is busy", "", "", false},
		{"cannot destroy snapshot tank/a@zz: dataset is busy", "", "", false},
		{"warning: cannot destroy snapshot tank/a@s2: dataset is busy", "", "", false},
	}
	for _, tt := range tests {
		short, reason, ok := destroyFailure(tt.line, "tank/a", []string{"s2", "x", "x: y"})
		if short != tt.short || reason != tt.reason || ok != tt.ok {
			t.Errorf("destroyFailure(%q) = %q, %q, %v", tt.line, short, reason, ok)
		}
	}
}

func TestDestroyReason(t *testing.T) {
	const snap = "tank/a@s2"
	tests := []struct {
		reason string
		want   error
	}{
		{"dataset is busy", ErrSnapshotHeld},
		{"it's being held. Run 'zfs holds -r tank/a@s2' to see holders.", ErrSnapshotHeld},
		{"it's being held. Run 'zfs holds -r tank/a@s3' to see holders.", nil},
		{"it's being held. Run 'zfs holds -r tank/a@s2' to see holders", nil},
		{"it's being held", nil},
		{"snapshot has dependent clones", ErrSnapshotCloned},
		{"snapshot is cloned", ErrSnapshotCloned},
		{"dataset is busy now", nil},
	}
	for _, tt := range tests {
		if got := destroyReason(tt.reason, snap); got != tt.want {
			t.Errorf("destroyReason(%q) = %v, want %v", tt.reason, got, tt.want)
		}
	}
}

// longNames returns n short names of 99 bytes: "tank/a@" and 655 of them
// make an argument of 7 + 655*100 - 1 = 65506 bytes; 656 would be 65606,
// past 64 KiB.
func longNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%04d_%s", i, strings.Repeat("x", 93))
	}
	return out
}

func destroyArgv(dataset string, names []string) []string {
	return []string{"zfs", "destroy", dataset + "@" + strings.Join(names, ",")}
}

func TestDestroyBatches(t *testing.T) {
	names := longNames(655)
	tests := []struct {
		name  string
		last  string // appended to names
		sizes []int
	}{
		// 65506 + ",<29 bytes>" = 65536 = 64 KiB exactly: one argument
		{"exactly 64 KiB", strings.Repeat("y", 29), []int{656}},
		// one byte more: the last name starts the next batch
		{"one byte over", strings.Repeat("y", 30), []int{655, 1}},
	}
	for _, tt := range tests {
		all := append(append([]string(nil), names...), tt.last)
		got := destroyBatches("tank/a", all, maxDestroyArg)
		var sizes []int
		var joined []string
		for _, b := range got {
			sizes = append(sizes, len(b))
			joined = append(joined, b...)
			if arg := "tank/a@" + strings.Join(b, ","); len(arg) > maxDestroyArg {
				t.Errorf("%s: argument of %d bytes", tt.name, len(arg))
			}
		}
		if !reflect.DeepEqual(sizes, tt.sizes) || !reflect.DeepEqual(joined, all) {
			t.Errorf("%s: batches of %v, want %v, in order", tt.name, sizes, tt.sizes)
		}
	}
	if got := destroyBatches("tank/a", []string{"s1", "s2"}, maxDestroyArg); !reflect.DeepEqual(got, [][]string{{"s1", "s2"}}) {
		t.Errorf("small list: %q", got)
	}
}

// Past the kernel's per-argument limit the destroy is split into several
// calls, each argument at most 64 KiB (golden argv).
func TestDestroySnapshotsSplitsLongLists(t *testing.T) {
	names := longNames(1400)
	b1, b2, b3 := names[:655], names[655:1310], names[1310:]
	c, f := newFake(t)
	for _, b := range [][]string{b1, b2, b3} {
		f.Expect(destroyArgv("tank/a", b), FakeResponse{})
	}
	// duplicates are destroyed once
	if err := c.DestroySnapshots(context.Background(), "tank/a", append(names, names[3])); err != nil {
		t.Fatalf("err = %v", err)
	}
	wantArgv(t, f, destroyArgv("tank/a", b1), destroyArgv("tank/a", b2), destroyArgv("tank/a", b3))
	for _, call := range f.Calls() {
		if n := len(call.Argv[2]); n > 64<<10 {
			t.Errorf("argument of %d bytes", n)
		}
	}
}

// The per-snapshot failures of every batch are merged, exactly.
func TestDestroySnapshotsMergesBatchFailures(t *testing.T) {
	names := longNames(1400)
	b1, b2, b3 := names[:655], names[655:1310], names[1310:]
	held, cloned := b1[3], b2[0]
	c, f := newFake(t)
	f.Expect(destroyArgv("tank/a", b1), FakeResponse{Stderr: "cannot destroy snapshot tank/a@" + held + ": dataset is busy\n", ExitCode: 1})
	f.Expect(destroyArgv("tank/a", without(b1, held)), FakeResponse{})
	f.Expect(destroyArgv("tank/a", b2), FakeResponse{Stderr: "cannot destroy snapshot tank/a@" + cloned + ": snapshot is cloned\n", ExitCode: 1})
	f.Expect(destroyArgv("tank/a", without(b2, cloned)), FakeResponse{})
	f.Expect(destroyArgv("tank/a", b3), FakeResponse{})
	err := c.DestroySnapshots(context.Background(), "tank/a", names)
	var de *DestroyError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DestroyError", err)
	}
	if got := sortedKeys(de.Failed); !reflect.DeepEqual(got, []string{held, cloned}) {
		t.Errorf("Failed = %q, want exactly the held and the cloned one", got)
	}
	if !errors.Is(de.Failed[held], ErrSnapshotHeld) || !errors.Is(de.Failed[cloned], ErrSnapshotCloned) {
		t.Errorf("Failed = %v: wrong kinds", de.Failed)
	}
	if len(f.Calls()) != 5 {
		t.Errorf("%d calls, want 5", len(f.Calls()))
	}
}

// A batch that fails without naming snapshots stops the destroy: the
// DestroyError names every snapshot of it and of the later batches (none of
// them was destroyed), and none of the earlier, destroyed ones.
func TestDestroySnapshotsStopsAfterUnattributedBatchFailure(t *testing.T) {
	names := longNames(1400)
	b1, b2, b3 := names[:655], names[655:1310], names[1310:]
	c, f := newFake(t)
	f.Expect(destroyArgv("tank/a", b1), FakeResponse{})
	f.Expect(destroyArgv("tank/a", b2), FakeResponse{Stderr: "internal error: Invalid argument\n", ExitCode: 1})
	err := c.DestroySnapshots(context.Background(), "tank/a", names)
	var de *DestroyError
	var ce *Error
	if !errors.As(err, &de) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *DestroyError and the generic *Error", err)
	}
	want := append(append([]string(nil), b2...), b3...)
	if got := sortedKeys(de.Failed); !reflect.DeepEqual(got, want) {
		t.Errorf("Failed names %d snapshots, want the %d of batches 2 and 3", len(got), len(want))
	}
	for _, n := range want {
		if !errors.As(de.Failed[n], &ce) {
			t.Errorf("Failed[%s] = %v, does not wrap the failure", n, de.Failed[n])
			break
		}
	}
	wantArgv(t, f, destroyArgv("tank/a", b1), destroyArgv("tank/a", b2))

	// the first batch failing so: nothing was destroyed, the plain error
	c, f = newFake(t)
	f.Expect(destroyArgv("tank/a", b1), fail(t, "open_notfound.txt"))
	err = c.DestroySnapshots(context.Background(), "tank/a", names)
	if errors.As(err, &de) || !errors.As(err, &ce) {
		t.Errorf("err = %v, want the plain *Error", err)
	}
	wantArgv(t, f, destroyArgv("tank/a", b1))
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
