package prune

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// fakeDestroyer answers List from entries and records every call.
type fakeDestroyer struct {
	entries    []zfs.Entry
	listErr    error
	destroyErr error

	lists     []listCall
	destroyed [][]string // one element per DestroySnapshots call
	datasets  []string
}

type listCall struct {
	roots []string
	opts  zfs.ListOptions
}

func (f *fakeDestroyer) List(ctx context.Context, roots []string, opts zfs.ListOptions) ([]zfs.Entry, error) {
	f.lists = append(f.lists, listCall{roots, opts})
	if f.listErr != nil {
		return nil, f.listErr
	}
	return f.entries, nil
}

func (f *fakeDestroyer) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	f.datasets = append(f.datasets, dataset)
	f.destroyed = append(f.destroyed, append([]string(nil), shortNames...))
	return f.destroyErr
}

const ds = "tank/data"

// planned returns destroy decisions for the names, with GUIDs 100, 101, ...
// in the order given, plus one kept snapshot that must never be touched.
func planned(names ...string) []Decision {
	out := []Decision{{Snapshot: Snapshot{Name: "kept", GUID: 99, CreateTXG: 1}, Keep: true, Reasons: []string{"last_n 1"}}}
	for i, n := range names {
		out = append(out, Decision{
			Snapshot: Snapshot{Name: n, GUID: uint64(100 + i), CreateTXG: uint64(10 + i)},
			Reasons:  []string{ReasonNoRuleKeeps},
		})
	}
	return out
}

// snapEntry is a listing line for tank/data@name.
func snapEntry(name string, guid, userrefs uint64) zfs.Entry {
	return zfs.Entry{Name: ds + "@" + name, Type: zfs.Snapshot, GUID: guid, CreateTXG: guid - 90,
		Creation: time.Unix(0, 0).UTC(), UserRefs: userrefs}
}

func TestExecuteRecheck(t *testing.T) {
	f := &fakeDestroyer{entries: []zfs.Entry{
		{Name: ds, Type: zfs.Filesystem, GUID: 1},
		snapEntry("kept", 99, 0),
		snapEntry("a", 100, 0),
		snapEntry("b", 101, 1), // held since planning
		// c vanished
		snapEntry("d", 999, 0), // destroyed and re-created under the same name
		snapEntry("e", 104, 0),
		// Same short names elsewhere must not count.
		{Name: ds + "#c", Type: zfs.Bookmark, GUID: 102},
		{Name: ds + "/child@c", Type: zfs.Snapshot, GUID: 102},
	}}
	rep := Execute(context.Background(), f, ds, planned("a", "b", "c", "d", "e"), false)

	wantList := []listCall{{[]string{ds}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}}}}
	if !reflect.DeepEqual(f.lists, wantList) {
		t.Errorf("List calls = %+v, want %+v", f.lists, wantList)
	}
	if !reflect.DeepEqual(f.destroyed, [][]string{{"a", "e"}}) || !reflect.DeepEqual(f.datasets, []string{ds}) {
		t.Errorf("DestroySnapshots calls = %v on %v, want one call with [a e] on %s", f.destroyed, f.datasets, ds)
	}
	want := Report{
		Dataset:   ds,
		Planned:   []string{"a", "e"},
		Destroyed: []string{"a", "e"},
		Skipped: map[string]string{
			"b": "held (1 holds)",
			"c": "no longer exists",
			"d": "guid changed from 103 to 999",
		},
	}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report = %+v\nwant     %+v", rep, want)
	}
	if !rep.OK() {
		t.Error("OK() = false without failures")
	}
}

func TestExecutePartialFailure(t *testing.T) {
	cloned := fmt.Errorf("cannot destroy snapshot %s@b: snapshot is cloned: %w", ds, zfs.ErrSnapshotCloned)
	held := fmt.Errorf("cannot destroy snapshot %s@c: dataset is busy: %w", ds, zfs.ErrSnapshotHeld)
	f := &fakeDestroyer{
		entries: []zfs.Entry{snapEntry("a", 100, 0), snapEntry("b", 101, 0), snapEntry("c", 102, 0), snapEntry("d", 103, 0)},
		destroyErr: fmt.Errorf("pruning: %w", &zfs.DestroyError{Dataset: ds, Failed: map[string]error{
			"b": cloned,
			"c": held,
		}}),
	}
	rep := Execute(context.Background(), f, ds, planned("a", "b", "c", "d"), false)
	if len(f.destroyed) != 1 || !reflect.DeepEqual(f.destroyed[0], []string{"a", "b", "c", "d"}) {
		t.Fatalf("DestroySnapshots calls = %v, want one batch of all four", f.destroyed)
	}
	if !reflect.DeepEqual(rep.Destroyed, []string{"a", "d"}) {
		t.Errorf("Destroyed = %v, want [a d]", rep.Destroyed)
	}
	if len(rep.Failed) != 1 || !errors.Is(rep.Failed["b"], zfs.ErrSnapshotCloned) {
		t.Errorf("Failed = %v, want b failing with ErrSnapshotCloned", rep.Failed)
	}
	if rep.OK() {
		t.Error("OK() = true with a failure")
	}
	if !strings.Contains(rep.Failed["b"].Error(), ds+"@b") {
		t.Errorf("failure %q does not name the snapshot", rep.Failed["b"])
	}
	// A hold that appeared between the re-check and the destroy is not a
	// failure: the snapshot is protected as it should be.
	if !reflect.DeepEqual(rep.Skipped, map[string]string{"c": "held (zfs refused to destroy it)"}) {
		t.Errorf("Skipped = %v", rep.Skipped)
	}
}

func TestExecuteDryRun(t *testing.T) {
	f := &fakeDestroyer{entries: []zfs.Entry{snapEntry("a", 100, 0), snapEntry("b", 101, 2)}}
	rep := Execute(context.Background(), f, ds, planned("a", "b"), true)
	if len(f.destroyed) != 0 {
		t.Fatalf("dry run called DestroySnapshots: %v", f.destroyed)
	}
	if len(f.lists) != 1 {
		t.Errorf("dry run listed %d times, want 1 (read-only re-check)", len(f.lists))
	}
	want := Report{Dataset: ds, DryRun: true, Planned: []string{"a"}, Skipped: map[string]string{"b": "held (2 holds)"}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
}

func TestExecuteErrors(t *testing.T) {
	listErr := errors.New("zfs list exploded")
	destroyErr := fmt.Errorf("zfs destroy: %w", zfs.ErrPermissionDenied)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		f           *fakeDestroyer
		wantErr     error
		wantDestroy int
	}{
		{"listing fails", context.Background(), &fakeDestroyer{listErr: listErr}, listErr, 0},
		{"whole batch fails", context.Background(),
			&fakeDestroyer{entries: []zfs.Entry{snapEntry("a", 100, 0), snapEntry("b", 101, 0)}, destroyErr: destroyErr},
			zfs.ErrPermissionDenied, 1},
		{"canceled", canceled,
			&fakeDestroyer{entries: []zfs.Entry{snapEntry("a", 100, 0), snapEntry("b", 101, 0)}}, context.Canceled, 0},
		{"empty DestroyError", context.Background(),
			&fakeDestroyer{entries: []zfs.Entry{snapEntry("a", 100, 0), snapEntry("b", 101, 0)}, destroyErr: &zfs.DestroyError{Dataset: ds}},
			nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Execute(tt.ctx, tt.f, ds, planned("a", "b"), false)
			if len(tt.f.destroyed) != tt.wantDestroy {
				t.Errorf("%d DestroySnapshots calls, want %d", len(tt.f.destroyed), tt.wantDestroy)
			}
			if len(rep.Destroyed) != 0 || len(rep.Failed) != 2 {
				t.Fatalf("report = %+v, want both snapshots failed", rep)
			}
			for name, err := range rep.Failed {
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("%s: error %v does not wrap %v", name, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), ds) {
					t.Errorf("%s: error %q does not name the dataset", name, err)
				}
			}
		})
	}
}

func TestExecuteNothingToDo(t *testing.T) {
	f := &fakeDestroyer{}
	rep := Execute(context.Background(), f, ds, planned(), false)
	if len(f.lists)+len(f.destroyed) != 0 {
		t.Errorf("calls made with nothing to destroy: %v %v", f.lists, f.destroyed)
	}
	if !reflect.DeepEqual(rep, Report{Dataset: ds}) {
		t.Errorf("report = %+v", rep)
	}
	// Duplicate decisions for one name destroy it once.
	f = &fakeDestroyer{entries: []zfs.Entry{snapEntry("a", 100, 0)}}
	decs := planned("a")
	decs = append(decs, decs[1])
	rep = Execute(context.Background(), f, ds, decs, false)
	if !reflect.DeepEqual(f.destroyed, [][]string{{"a"}}) || !reflect.DeepEqual(rep.Destroyed, []string{"a"}) {
		t.Errorf("duplicates: calls %v, report %+v", f.destroyed, rep)
	}
	// A nil Destroyer is an error, not a panic.
	rep = Execute(context.Background(), nil, ds, planned("a"), false)
	if len(rep.Failed) != 1 {
		t.Errorf("nil destroyer: report %+v", rep)
	}
}

// Apply then Execute: held and out-of-scope snapshots from a real listing
// never reach DestroySnapshots.
func TestApplyThenExecute(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var entries []zfs.Entry
	for i, name := range []string{"zsync_1", "zsync_2", "manual", "zsync_3", "zsync_4"} {
		e := zfs.Entry{Name: ds + "@" + name, Type: zfs.Snapshot, GUID: uint64(500 + i), CreateTXG: uint64(10 + i),
			Creation: now.Add(-time.Duration(5-i) * time.Hour)}
		if name == "zsync_2" {
			e.UserRefs = 1
		}
		entries = append(entries, e)
	}
	entries = append(entries, zfs.Entry{Name: ds + "#zsync_1", Type: zfs.Bookmark, GUID: 500, CreateTXG: 10})
	snaps := SnapshotsFromEntries(ds, entries)
	if len(snaps) != 5 || !snaps[1].Held {
		t.Fatalf("SnapshotsFromEntries = %+v", snaps)
	}
	p := Policy{Rules: []Rule{must(NewLastN(1, "^zsync_"))}}
	f := &fakeDestroyer{entries: entries}
	decisions := Apply(snaps, p, nil, now)
	var doomed []string
	for _, d := range Destroying(decisions) {
		doomed = append(doomed, d.Snapshot.Name)
	}
	if !reflect.DeepEqual(doomed, []string{"zsync_1", "zsync_3"}) {
		t.Errorf("Destroying = %v", doomed)
	}
	rep := Execute(context.Background(), f, ds, decisions, false)
	if !reflect.DeepEqual(f.destroyed, [][]string{{"zsync_1", "zsync_3"}}) {
		t.Errorf("destroyed %v, want [[zsync_1 zsync_3]]", f.destroyed)
	}
	if !rep.OK() || len(rep.Skipped) != 0 {
		t.Errorf("report %+v", rep)
	}
}
