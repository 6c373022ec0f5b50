package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// recordEP is an Endpoint over a fixed set of entries that records the calls
// that change something, in order, and fails the methods named in fail.
type recordEP struct {
	Endpoint
	items []zfs.Entry
	fail  map[string]error
	// failArg fails any call that names one of its keys
	failArg map[string]error
	guids   map[string]string // for Get of guid
	// props are the values Get returns of each name (besides guids)
	props map[string]map[string]string
	// listed are the roots of every List, in order
	listed [][]string
	lists  int
	calls  []string
}

func (e *recordEP) Get(_ context.Context, names []string, props []string) (map[string]map[string]string, error) {
	e.calls = append(e.calls, "Get "+strings.Join(names, " "))
	if err := e.fail["Get"]; err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, n := range names {
		out[n] = map[string]string{}
		maps.Copy(out[n], e.props[n])
		if g, ok := e.guids[n]; ok {
			out[n]["guid"] = g
		}
	}
	return out, nil
}

func (e *recordEP) List(_ context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	e.lists++
	e.listed = append(e.listed, roots)
	if err := e.fail["List"]; err != nil {
		return nil, err
	}
	var out []zfs.Entry
	for _, it := range e.items {
		if slices.Contains(roots, it.Dataset()) && !it.IsDataset() && slices.Contains(o.Types, it.Type) {
			out = append(out, it)
		}
	}
	return out, nil
}

func (e *recordEP) Holds(_ context.Context, snaps []string) (map[string][]string, error) {
	return nil, fmt.Errorf("holds of %v asked for: the known holds should have sufficed", snaps)
}

func (e *recordEP) do(method string, args ...string) error {
	e.calls = append(e.calls, method+" "+strings.Join(args, " "))
	for _, a := range args {
		if err := e.failArg[a]; err != nil {
			return err
		}
	}
	return e.fail[method]
}

func (e *recordEP) Hold(_ context.Context, tag string, snaps []string) error {
	return e.do("Hold", append([]string{tag}, snaps...)...)
}

func (e *recordEP) Release(_ context.Context, tag string, snaps []string) error {
	return e.do("Release", append([]string{tag}, snaps...)...)
}

func (e *recordEP) Bookmark(_ context.Context, from, bm string) error {
	return e.do("Bookmark", from, bm)
}

func (e *recordEP) DestroyBookmarks(_ context.Context, bms []string) error {
	return e.do("DestroyBookmarks", bms...)
}

// finishCase is a dataset whose one step sent tank/a@s2 (guid 2) on top of
// s1 (guid 1), the relationship's cursor and last-received hold still at
// s1, the step holds of the run on s1 and s2.
func finishCase(t *testing.T) (d *datasetRun, src, dst *recordEP, tid TargetID) {
	t.Helper()
	src, dst = &recordEP{}, &recordEP{}
	d, tid = addFinishCase(src, dst, "a")
	src.items = append(src.items, zfs.Entry{Name: "tank/ab@s9", Type: zfs.Snapshot, GUID: 9, CreateTXG: 30})
	return d, src, dst, tid
}

// addFinishCase adds to src and dst the dataset tank/<name> of finishCase,
// replicated to backup/<name>, and returns its run.
func addFinishCase(src, dst *recordEP, name string) (*datasetRun, TargetID) {
	root := TargetID("0123456789abcdef")
	s, t := "tank/"+name, "backup/"+name
	tid := RelationID(root, t)
	src.items = append(src.items,
		zfs.Entry{Name: s + "@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 10, UserRefs: 1},
		zfs.Entry{Name: s + "@s2", Type: zfs.Snapshot, GUID: 2, CreateTXG: 20, UserRefs: 1},
		zfs.Entry{Name: s + "#" + CursorName(tid, 1), Type: zfs.Bookmark, GUID: 1, CreateTXG: 10},
	)
	dst.items = append(dst.items,
		zfs.Entry{Name: t + "@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 5, UserRefs: 1},
		zfs.Entry{Name: t + "@s2", Type: zfs.Snapshot, GUID: 2, CreateTXG: 6},
	)
	d := &datasetRun{
		job: testFinishJob(), src: src, dst: dst, res: &Result{Source: s, Target: t, Status: StatusReplicated}, rootTID: root,
		stepRoot: StepRootID(root, "backup", ""),
		source:   s,
		srcHolds: map[string][]string{},
		dstHolds: map[string][]string{t + "@s1": {LastReceivedHoldTag(tid)}},
		mu:       &stdsync.Mutex{}, dstInfo: map[string]zfs.Entry{}, byTarget: map[string][]zfs.Entry{},
		stepHeld: []string{s + "@s1", s + "@s2"},
		pending:  &pendingFinish{tid: tid, target: t, to: zfs.Entry{Name: s + "@s2", Type: zfs.Snapshot, GUID: 2, CreateTXG: 20}},
	}
	return d, tid
}

// twoFinishCases are the datasets tank/a and tank/b of finishCase on one
// source and one target.
func twoFinishCases() (src, dst *recordEP, a, b *datasetRun) {
	src, dst = &recordEP{}, &recordEP{}
	a, _ = addFinishCase(src, dst, "a")
	b, _ = addFinishCase(src, dst, "b")
	return src, dst, a, b
}

// testFinishJob maps tank/X to backup/X.
func testFinishJob() *Job {
	return &Job{TargetRoot: "backup", Map: func(s string) (string, error) { return "backup/" + strings.TrimPrefix(s, "tank/"), nil }}
}

// After the data, the relationship moves new before old on both sides, and
// only then do the step holds and the old cursor and hold go.
func TestFinishMovesNewBeforeOld(t *testing.T) {
	d, src, dst, tid := finishCase(t)
	d.finish(context.Background(), nil)
	if d.res.Status != StatusReplicated || d.res.Err != nil || len(d.res.Warnings) > 0 {
		t.Fatalf("status %s, err %v, warnings %q", d.res.Status, d.res.Err, d.res.Warnings)
	}
	wantSrc := []string{
		"Bookmark tank/a@s2 tank/a#" + CursorName(tid, 2),
		"Release " + RootStepHoldTag(d.stepRoot) + " tank/a@s1 tank/a@s2",
		"DestroyBookmarks tank/a#" + CursorName(tid, 1),
	}
	// the old hold has the relationship's own tag (placed by an older
	// zsync): it is released under it
	wantDst := []string{
		"Hold " + RootLastReceivedHoldTag(d.rootTID) + " backup/a@s2",
		"Release " + LastReceivedHoldTag(tid) + " backup/a@s1",
	}
	if !slices.Equal(src.calls, wantSrc) {
		t.Errorf("source calls:\n%s\nwant:\n%s", strings.Join(src.calls, "\n"), strings.Join(wantSrc, "\n"))
	}
	if !slices.Equal(dst.calls, wantDst) {
		t.Errorf("target calls:\n%s\nwant:\n%s", strings.Join(dst.calls, "\n"), strings.Join(wantDst, "\n"))
	}
	if src.lists != 1 || dst.lists != 1 {
		t.Errorf("finish without the level's listing listed %d times on the source and %d on the target, want 1 each", src.lists, dst.lists)
	}
}

// A target whose newest snapshot is not the step's To fails the dataset,
// and nothing moves: the step holds stay.
func TestFinishVerifyMismatchFails(t *testing.T) {
	d, src, dst, _ := finishCase(t)
	dst.items = dst.items[:1] // the target has only s1
	d.finish(context.Background(), nil)
	if d.res.Status != StatusFailed || d.res.Err == nil || !strings.Contains(d.res.Err.Error(), "verify: the target's newest snapshot is backup/a@s1") {
		t.Fatalf("status %s, err %v; want a failed verification", d.res.Status, d.res.Err)
	}
	if len(src.calls)+len(dst.calls) > 0 {
		t.Errorf("calls after a failed verification: %q %q", src.calls, dst.calls)
	}
}

// When the new cursor cannot be made, the dataset fails (every run would
// otherwise add step holds that are never released) and nothing old goes.
func TestFinishMoveFailureFailsTheDataset(t *testing.T) {
	for _, c := range []struct {
		side, method string
	}{{"source", "Bookmark"}, {"target", "Hold"}, {"source", "Release"}} {
		t.Run(c.side+" "+c.method, func(t *testing.T) {
			d, src, dst, tid := finishCase(t)
			ep := src
			if c.side == "target" {
				ep = dst
			}
			ep.fail = map[string]error{c.method: errors.New("permission denied")}
			d.finish(context.Background(), nil)
			if d.res.Status != StatusFailed || d.res.Err == nil || !strings.Contains(d.res.Err.Error(), "permission denied") {
				t.Fatalf("status %s, err %v; want the dataset failed", d.res.Status, d.res.Err)
			}
			for _, call := range append(slices.Clone(src.calls), dst.calls...) {
				if strings.HasPrefix(call, "DestroyBookmarks") || strings.HasPrefix(call, "Release "+LastReceivedHoldTag(tid)) {
					t.Errorf("%s after the failure to move on", call)
				}
			}
		})
	}
}

// The level's listings are one call per side for all its datasets, and
// each dataset gets exactly its own entries (tank/a is a prefix of tank/ab).
func TestFinishListings(t *testing.T) {
	d, src, dst, _ := finishCase(t)
	d2, _, _, _ := finishCase(t)
	d2.source = "tank/ab"
	d2.pending = &pendingFinish{target: "backup/ab"}
	dst.items = append(dst.items, zfs.Entry{Name: "backup/ab@s9", Type: zfs.Snapshot, GUID: 9, CreateTXG: 7})
	got := (&Job{}).finishListings(context.Background(), src, dst, []*datasetRun{d, d2})
	if src.lists != 1 || dst.lists != 1 {
		t.Errorf("%d listings of the source and %d of the target, want 1 each", src.lists, dst.lists)
	}
	names := func(es []zfs.Entry) string {
		var n []string
		for _, e := range es {
			n = append(n, e.Name)
		}
		return strings.Join(n, " ")
	}
	if s := names(got["tank/a"].src); s != "tank/a@s1 tank/a@s2 tank/a#"+CursorName(d.pending.tid, 1) {
		t.Errorf("tank/a's source entries: %s", s)
	}
	if s := names(got["tank/a"].dst); s != "backup/a@s1 backup/a@s2" {
		t.Errorf("tank/a's target entries: %s", s)
	}
	if s := names(got["tank/ab"].src) + " | " + names(got["tank/ab"].dst); s != "tank/ab@s9 | backup/ab@s9" {
		t.Errorf("tank/ab's entries: %s", s)
	}

	src.fail = map[string]error{"List": zfs.ErrDatasetNotFound}
	if got := (&Job{}).finishListings(context.Background(), src, dst, []*datasetRun{d, d2}); got != nil {
		t.Errorf("a failed listing gave %v, want nil (each finish lists its own)", got)
	}
}

// A target whose step was an incremental into the replica the run listed
// at its start is not listed again: its new snapshot is looked up by name
// and added to that listing. A target created, received with force, or
// whose lookup does not find the step's guid is listed; so are all when the
// lookup fails.
func TestFinishListingsByName(t *testing.T) {
	incremental := func(d *datasetRun, from string) {
		d.prep = &prepared{exists: true, plan: Plan{Steps: []Step{{From: zfs.Entry{Name: from, Type: zfs.Snapshot, GUID: 1}, To: d.pending.to}}}}
		// the run's first listing of the target: s1, with its hold
		d.byTarget[d.pending.target] = []zfs.Entry{{Name: d.pending.target + "@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 5, UserRefs: 1}}
	}
	names := func(es []zfs.Entry) string {
		var n []string
		for _, e := range es {
			n = append(n, fmt.Sprintf("%s/%d/%d", e.Name, e.GUID, e.CreateTXG))
		}
		return strings.Join(n, " ")
	}
	cases := []struct {
		name    string
		setup   func(a, b, c *datasetRun, dst *recordEP)
		listed  string // the targets listed
		aByName bool   // backup/a's entries come from the lookup
		failed  string // the run whose verification fails
	}{
		{"incrementals", func(a, b, c *datasetRun, dst *recordEP) {}, "", true, ""},
		{"created, forced, full", func(a, b, c *datasetRun, dst *recordEP) {
			b.prep.exists = false
			c.prep.force = true
		}, "backup/b backup/c", true, ""},
		{"full step", func(a, b, c *datasetRun, dst *recordEP) {
			b.prep.plan.Steps[0].From = zfs.Entry{}
		}, "backup/b", true, ""},
		{"rotated", func(a, b, c *datasetRun, dst *recordEP) { b.res.Rotated = "backup/b-old" }, "backup/b", true, ""},
		{"another guid", func(a, b, c *datasetRun, dst *recordEP) { dst.props["backup/b@s2"]["guid"] = "77" }, "backup/b", true, ""},
		// a snapshot made on the replica after the receive (by hand, or
		// another run into the same target)
		{"newer snapshot", func(a, b, c *datasetRun, dst *recordEP) {
			dst.props["backup/b"]["prevsnap"] = "backup/b@s3"
			dst.items = append(dst.items, zfs.Entry{Name: "backup/b@s3", Type: zfs.Snapshot, GUID: 3, CreateTXG: 9})
		}, "backup/b", true, "tank/b"},
		{"no prevsnap", func(a, b, c *datasetRun, dst *recordEP) { delete(dst.props["backup/c"], "prevsnap") }, "backup/c", true, ""},
		// prevsnap names another dataset's snapshot (a clone's origin)
		{"origin", func(a, b, c *datasetRun, dst *recordEP) { dst.props["backup/c"]["prevsnap"] = "backup/a@s2" }, "backup/c", true, ""},
		{"lookup fails", func(a, b, c *datasetRun, dst *recordEP) {
			dst.fail = map[string]error{"Get": fmt.Errorf("zfs get: %w", zfs.ErrDatasetNotFound)}
		}, "backup/a backup/b backup/c", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := &recordEP{}, &recordEP{props: map[string]map[string]string{}}
			var runs []*datasetRun
			for _, n := range []string{"a", "b", "c"} {
				d, _ := addFinishCase(src, dst, n)
				incremental(d, "tank/"+n+"@s1")
				// what zfs get shows of the received snapshot (the listing
				// would show createtxg 6)
				dst.props["backup/"+n+"@s2"] = map[string]string{"guid": "2", "createtxg": "8", "creation": "1700000000", "userrefs": "0"}
				dst.props["backup/"+n] = map[string]string{"prevsnap": "backup/" + n + "@s2"}
				runs = append(runs, d)
			}
			tc.setup(runs[0], runs[1], runs[2], dst)
			got := runs[0].job.finishListings(context.Background(), src, dst, runs)
			if got == nil {
				t.Fatal("no listings")
			}
			var listed []string
			for _, roots := range dst.listed {
				listed = append(listed, roots...)
			}
			if s := strings.Join(listed, " "); s != tc.listed {
				t.Errorf("targets listed: %q, want %q", s, tc.listed)
			}
			want := "backup/a@s1/1/5 backup/a@s2/2/8"
			if !tc.aByName {
				want = "backup/a@s1/1/5 backup/a@s2/2/6"
			}
			if s := names(got["tank/a"].dst); s != want {
				t.Errorf("backup/a: %s, want %s", s, want)
			}
			for _, r := range runs {
				r.finish(context.Background(), got[r.source])
				if r.source == tc.failed {
					if r.res.Status != StatusFailed {
						t.Errorf("%s: %s, want failed", r.source, r.res.Status)
					}
					continue
				}
				if r.res.Status != StatusReplicated || len(r.res.Warnings) > 0 {
					t.Errorf("%s: %s %v %q", r.source, r.res.Status, r.res.Err, r.res.Warnings)
				}
			}
			if !slices.Contains(dst.calls, "Hold "+RootLastReceivedHoldTag(runs[0].rootTID)+" backup/a@s2") {
				t.Errorf("no last-received hold on backup/a@s2: %q", dst.calls)
			}
		})
	}
}

// Another run of the relationship (a one-off push into the same target)
// received s3 after this run's s2 and moved the cursor there: the target is
// listed, the verification fails as it did with a listing, and nothing
// moves (the other run's cursor stays).
func TestFinishByNameSeesANewerSnapshot(t *testing.T) {
	src, dst := &recordEP{}, &recordEP{props: map[string]map[string]string{}}
	d, tid := addFinishCase(src, dst, "a")
	d.prep = &prepared{exists: true, plan: Plan{Steps: []Step{{From: zfs.Entry{Name: "tank/a@s1", Type: zfs.Snapshot, GUID: 1}, To: d.pending.to}}}}
	d.byTarget["backup/a"] = []zfs.Entry{{Name: "backup/a@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 5, UserRefs: 1}}
	dst.props["backup/a@s2"] = map[string]string{"guid": "2", "createtxg": "6", "creation": "1700000000", "userrefs": "0"}
	dst.props["backup/a"] = map[string]string{"prevsnap": "backup/a@s3"}
	dst.items = append(dst.items, zfs.Entry{Name: "backup/a@s3", Type: zfs.Snapshot, GUID: 3, CreateTXG: 7})
	other := "tank/a#" + CursorName(tid, 3)
	src.items = append(src.items, zfs.Entry{Name: "tank/a@s3", Type: zfs.Snapshot, GUID: 3, CreateTXG: 30},
		zfs.Entry{Name: other, Type: zfs.Bookmark, GUID: 3, CreateTXG: 30})
	listed := d.job.finishListings(context.Background(), src, dst, []*datasetRun{d})
	d.batch = newReleaseBatch()
	d.finish(context.Background(), listed[d.source])
	d.batch.flush(context.Background(), src, dst)
	if d.res.Status != StatusFailed || !strings.Contains(fmt.Sprint(d.res.Err), "newest snapshot is backup/a@s3") {
		t.Errorf("status %s, err %v; want the verification failed on s3", d.res.Status, d.res.Err)
	}
	if len(src.calls) > 0 {
		t.Errorf("source calls after a failed verification: %q", src.calls)
	}
}

// batchEP is a source that runs channel programs, recording each, or
// refuses them as a delegated user's zfs does.
type batchEP struct {
	*recordEP
	programs    [][]zfs.NewBookmark
	unavailable bool
}

func (e *batchEP) CreateBookmarks(_ context.Context, bms []zfs.NewBookmark) (map[string]error, error) {
	if e.unavailable {
		return nil, fmt.Errorf("zfs program: %w: permission denied", zfs.ErrProgramUnavailable)
	}
	e.programs = append(e.programs, bms)
	return nil, nil
}

// As root, a level's new cursors are made in one call before the
// finishes; the rest of each finish is as before. A delegated user's run
// makes each by itself.
func TestBatchedCursors(t *testing.T) {
	for _, unavailable := range []bool{false, true} {
		t.Run(fmt.Sprintf("unavailable=%v", unavailable), func(t *testing.T) {
			src, dst, a, b := twoFinishCases()
			tidA, tidB := a.pending.tid, b.pending.tid
			runs := []*datasetRun{a, b}
			j := a.job
			be := &batchEP{recordEP: src, unavailable: unavailable}
			touched := newTouchSet()
			listed := j.finishListings(context.Background(), src, dst, runs)
			err := j.batchCursors(context.Background(), be, runs, listed, touched)
			if unavailable != (err != nil) {
				t.Fatalf("batchCursors: %v", err)
			}
			for _, r := range runs {
				r.finish(context.Background(), listed[r.source])
				if r.res.Status != StatusReplicated || len(r.res.Warnings) > 0 {
					t.Fatalf("%s: %s %v %q", r.source, r.res.Status, r.res.Err, r.res.Warnings)
				}
			}
			var made, destroyed []string
			for _, c := range src.calls {
				switch {
				case strings.HasPrefix(c, "Bookmark "):
					made = append(made, c)
				case strings.HasPrefix(c, "DestroyBookmarks "):
					destroyed = append(destroyed, c)
				}
			}
			if len(destroyed) != 2 {
				t.Errorf("old cursors destroyed: %q, want one call for each dataset", destroyed)
			}
			if unavailable {
				if len(be.programs) != 0 || len(made) != 2 {
					t.Errorf("without programs: %d programs, bookmark calls %q; want none and 2", len(be.programs), made)
				}
				return
			}
			want := [][]zfs.NewBookmark{{
				{Bookmark: "tank/a#" + CursorName(tidA, 2), From: "tank/a@s2"},
				{Bookmark: "tank/b#" + CursorName(tidB, 2), From: "tank/b@s2"},
			}}
			if fmt.Sprint(be.programs) != fmt.Sprint(want) {
				t.Errorf("programs:\n%v\nwant\n%v", be.programs, want)
			}
			if len(made) > 0 {
				t.Errorf("bookmarks made beside the program: %q", made)
			}
			if !touched.has("tank/a") || !touched.has("tank/b") {
				t.Errorf("the program's datasets are not marked changed")
			}
		})
	}
}

// A bookmark under the new cursor's name that exists already counts only
// when it has the snapshot's guid: a copy pointing elsewhere fails the
// dataset and the old cursor stays.
func TestFinishCursorNameTaken(t *testing.T) {
	for _, c := range []struct {
		guid string
		ok   bool
	}{{"2", true}, {"77", false}} {
		t.Run("guid "+c.guid, func(t *testing.T) {
			d, src, _, tid := finishCase(t)
			bm := "tank/a#" + CursorName(tid, 2)
			src.fail = map[string]error{"Bookmark": fmt.Errorf("zfs bookmark: %w", zfs.ErrExists)}
			src.guids = map[string]string{bm: c.guid}
			d.finish(context.Background(), nil)
			destroyed := slices.ContainsFunc(src.calls, func(s string) bool { return strings.HasPrefix(s, "DestroyBookmarks") })
			if c.ok && (d.res.Status != StatusReplicated || !destroyed) {
				t.Errorf("status %s (%v), old cursor destroyed %v; want replicated and destroyed", d.res.Status, d.res.Err, destroyed)
			}
			if !c.ok && (d.res.Status != StatusFailed || destroyed || !strings.Contains(fmt.Sprint(d.res.Err), "guid 77")) {
				t.Errorf("status %s (%v), old cursor destroyed %v; want failed and kept", d.res.Status, d.res.Err, destroyed)
			}
		})
	}
}

// A level's holds and releases are one call per side, pool and tag: the
// new last-received holds of all its datasets before any finish, the
// releases of step holds and old holds after every finish made its new
// cursor. A failed release of step holds fails every dataset it was for.
func TestLevelBatchesHoldsAndReleases(t *testing.T) {
	for _, failRelease := range []bool{false, true} {
		t.Run(fmt.Sprintf("failRelease=%v", failRelease), func(t *testing.T) {
			src, dst, a, b := twoFinishCases()
			lastTag, stepTag := RootLastReceivedHoldTag(a.rootTID), RootStepHoldTag(a.stepRoot)
			for _, r := range []*datasetRun{a, b} {
				r.dstHolds = map[string][]string{r.pending.target + "@s1": {lastTag}}
			}
			if failRelease {
				src.fail = map[string]error{"Release": errors.New("permission denied")}
			}
			runs := []*datasetRun{a, b}
			j := a.job
			listed := j.finishListings(context.Background(), src, dst, runs)
			j.batchLastHolds(context.Background(), dst, a.rootTID, runs, listed)
			batch := newReleaseBatch()
			for _, r := range runs {
				r.batch = batch
				r.finish(context.Background(), listed[r.source])
			}
			batch.flush(context.Background(), src, dst)
			wantDst := []string{
				"Hold " + lastTag + " backup/a@s2 backup/b@s2",
				"Release " + lastTag + " backup/a@s1 backup/b@s1",
			}
			if !slices.Equal(dst.calls, wantDst) {
				t.Errorf("target calls:\n%s\nwant:\n%s", strings.Join(dst.calls, "\n"), strings.Join(wantDst, "\n"))
			}
			var releases []string
			lastNew := -1
			for i, c := range src.calls {
				switch {
				case strings.HasPrefix(c, "Release "):
					releases = append(releases, c)
				case strings.HasPrefix(c, "Bookmark "):
					lastNew = i
				}
			}
			if want := []string{"Release " + stepTag + " tank/a@s1 tank/a@s2 tank/b@s1 tank/b@s2"}; !slices.Equal(releases, want) {
				t.Errorf("source releases %q, want %q", releases, want)
			}
			if i := slices.IndexFunc(src.calls, func(c string) bool { return strings.HasPrefix(c, "Release ") }); i < lastNew {
				t.Errorf("a step hold released before every new cursor was made: %q", src.calls)
			}
			for _, r := range runs {
				failed := r.res.Status == StatusFailed && strings.Contains(fmt.Sprint(r.res.Err), "permission denied")
				if failed != failRelease || (!failRelease && (r.res.Status != StatusReplicated || len(r.res.Warnings) > 0)) {
					t.Errorf("%s: %s %v %q", r.source, r.res.Status, r.res.Err, r.res.Warnings)
				}
			}
		})
	}
}

// A level's old cursors go in one DestroyBookmarks call, after every new
// cursor was made; when it fails, each dataset's are tried on their own and
// only a dataset whose old cursor stays gets the warning.
func TestLevelDestroysOldCursorsOnce(t *testing.T) {
	for _, failB := range []bool{false, true} {
		t.Run(fmt.Sprintf("failB=%v", failB), func(t *testing.T) {
			src, dst, a, b := twoFinishCases()
			oldA := "tank/a#" + CursorName(RelationID(a.rootTID, "backup/a"), 1)
			oldB := "tank/b#" + CursorName(RelationID(b.rootTID, "backup/b"), 1)
			if failB {
				src.failArg = map[string]error{oldB: errors.New("permission denied")}
			}
			runs := []*datasetRun{a, b}
			j := a.job
			listed := j.finishListings(context.Background(), src, dst, runs)
			batch := newReleaseBatch()
			for _, r := range runs {
				r.batch = batch
				r.finish(context.Background(), listed[r.source])
			}
			batch.flush(context.Background(), src, dst)
			var destroys []string
			lastNew, firstDestroy := -1, -1
			for i, c := range src.calls {
				switch {
				case strings.HasPrefix(c, "DestroyBookmarks "):
					destroys = append(destroys, c)
					if firstDestroy < 0 {
						firstDestroy = i
					}
				case strings.HasPrefix(c, "Bookmark "):
					lastNew = i
				}
			}
			want := []string{"DestroyBookmarks " + oldA + " " + oldB}
			if failB {
				want = append(want, "DestroyBookmarks "+oldA, "DestroyBookmarks "+oldB)
			}
			if !slices.Equal(destroys, want) {
				t.Errorf("destroys:\n%s\nwant:\n%s", strings.Join(destroys, "\n"), strings.Join(want, "\n"))
			}
			if firstDestroy < lastNew {
				t.Errorf("an old cursor destroyed before every new one was made: %q", src.calls)
			}
			for _, r := range runs {
				warned := len(r.res.Warnings) == 1 && strings.Contains(r.res.Warnings[0], "permission denied")
				if r.res.Status != StatusReplicated || warned != (failB && r == b) || (!warned && len(r.res.Warnings) > 0) {
					t.Errorf("%s: %s %v %q", r.source, r.res.Status, r.res.Err, r.res.Warnings)
				}
			}
		})
	}
}

// Per-root step holds belong to the relationship of the dataset they are
// on, for the job whose root they name; anyone else's stay apart.
func TestStepRootResolves(t *testing.T) {
	j := testFinishJob()
	root := TargetID("0123456789abcdef")
	r := j.resolver(root)
	step := StepRootID(root, "backup", "")
	if got, want := r(step, "tank/a"), RelationID(root, "backup/a"); got != want {
		t.Errorf("resolved to %q, want %q", got, want)
	}
	if got := r(StepRootID(root, "backup2", ""), "tank/a"); got != "" {
		t.Errorf("another root's step hold resolved to %q", got)
	}
	holds := map[string][]string{"tank/a@s1": {RootStepHoldTag(step), RootStepHoldTag(StepRootID(root, "other", ""))}, "backup/a@s1": {RootLastReceivedHoldTag(root)}}
	abs, foreign := ListAbstractionsWith([]zfs.Entry{{Name: "tank/a@s1", Type: zfs.Snapshot, GUID: 1}, {Name: "backup/a@s1", Type: zfs.Snapshot, GUID: 1}}, holds, r)
	if len(foreign) > 0 {
		t.Fatalf("foreign: %q", foreign)
	}
	var got []string
	for _, a := range abs {
		got = append(got, fmt.Sprintf("%s %s %s", a.Kind, a.Name, a.Target))
	}
	want := []string{
		"last-received-hold backup/a@s1 " + string(RelationID(root, "backup/a")),
		"step-hold tank/a@s1 " + string(RelationID(root, "backup/a")),
		"step-hold tank/a@s1 " + string(StepRootID(root, "other", "")),
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("abstractions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The step holds of a level's steps are one call per pool before any data:
// every step's from and what it delivers, minus what carries the tag
// already (counted as held), and the steps then hold nothing themselves.
func TestBatchStepHolds(t *testing.T) {
	src := &recordEP{}
	root := TargetID("0123456789abcdef")
	j := testFinishJob()
	step := StepRootID(root, "backup", "")
	tag := RootStepHoldTag(step)
	snap := func(ds string, g uint64) zfs.Entry {
		return zfs.Entry{Name: fmt.Sprintf("%s@s%d", ds, g), Type: zfs.Snapshot, GUID: g, CreateTXG: g * 10}
	}
	mk := func(ds string, steps ...Step) *datasetRun {
		return &datasetRun{job: j, source: ds, rootTID: root, stepRoot: step, res: &Result{Source: ds},
			srcVersions: []zfs.Entry{snap(ds, 1), snap(ds, 2), snap(ds, 3)},
			srcHolds:    map[string][]string{"tank/b@s1": {tag}},
			prep:        &prepared{plan: Plan{Steps: steps}}}
	}
	a := mk("tank/a", Step{From: snap("tank/a", 1), To: snap("tank/a", 3), Intermediates: true})
	b := mk("tank/b", Step{From: snap("tank/b", 1), To: snap("tank/b", 2)}, Step{From: snap("tank/b", 2), To: snap("tank/b", 3)})
	c := mk("other/c", Step{To: snap("other/c", 1)})
	j.batchStepHolds(context.Background(), src, step, []*datasetRun{a, b, c})
	want := []string{
		"Hold " + tag + " other/c@s1",
		"Hold " + tag + " tank/a@s1 tank/a@s2 tank/a@s3 tank/b@s2 tank/b@s3",
	}
	if !slices.Equal(src.calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(src.calls, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range []*datasetRun{a, b, c} {
		slices.Sort(r.stepHeld)
	}
	if got := fmt.Sprint(a.stepHeld, b.stepHeld, c.stepHeld); got != "[tank/a@s1 tank/a@s2 tank/a@s3] [tank/b@s1 tank/b@s2 tank/b@s3] [other/c@s1]" {
		t.Errorf("held: %s", got)
	}
	// a failed call marks nothing: the steps hold for themselves
	src2 := &recordEP{fail: map[string]error{"Hold": errors.New("permission denied")}}
	d := mk("tank/a", Step{From: snap("tank/a", 1), To: snap("tank/a", 2)})
	j.batchStepHolds(context.Background(), src2, step, []*datasetRun{d})
	if len(d.stepHeld) != 0 {
		t.Errorf("held after a failed call: %v", d.stepHeld)
	}
	// not at protection incremental
	j.Protection = ProtectionIncremental
	src3 := &recordEP{}
	j.batchStepHolds(context.Background(), src3, step, []*datasetRun{mk("tank/a", Step{To: snap("tank/a", 1)})})
	if len(src3.calls) != 0 {
		t.Errorf("calls at level incremental: %q", src3.calls)
	}
}

// A batched release that names the snapshots it failed on fails only their
// datasets (zfs releases the others one by one); one that names none fails
// all of the call's.
func TestFlushAttributesFailures(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		wantFailed string
	}{
		{"named", &zfs.HoldError{Op: "release", Tag: "t", Failed: map[string]error{
			"tank/a@s1": errors.New("permission denied"),
			"tank/b@s2": fmt.Errorf("x: %w", zfs.ErrNoSuchHold),
		}}, "tank/a"},
		{"unnamed", errors.New("connection lost"), "tank/a tank/b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, dst, a, b := twoFinishCases()
			batch := newReleaseBatch()
			tag := RootStepHoldTag(a.stepRoot)
			batch.add(a, true, map[string][]string{tag: {"tank/a@s1", "tank/a@s2"}})
			batch.add(b, true, map[string][]string{tag: {"tank/b@s1", "tank/b@s2"}})
			src.fail = map[string]error{"Release": c.err}
			batch.flush(context.Background(), src, dst)
			var failed []string
			for _, r := range []*datasetRun{a, b} {
				if r.res.Status == StatusFailed {
					failed = append(failed, r.source)
				}
			}
			if got := strings.Join(failed, " "); got != c.wantFailed {
				t.Errorf("failed %q, want %q", got, c.wantFailed)
			}
			if len(src.calls) != 1 {
				t.Errorf("calls %q, want one release", src.calls)
			}
		})
	}
}

// blockingReleaseEP holds its Release until release is closed; its calls
// are recorded under mu.
type blockingReleaseEP struct {
	*recordEP
	release chan struct{}
	mu      stdsync.Mutex
}

func (e *blockingReleaseEP) Release(ctx context.Context, tag string, snaps []string) error {
	select {
	case <-e.release:
	case <-time.After(10 * time.Second):
		return errors.New("never let go")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recordEP.Release(ctx, tag, snaps)
}

// notifyReleaseEP closes released at its first Release.
type notifyReleaseEP struct {
	*recordEP
	released chan struct{}
}

func (e *notifyReleaseEP) Release(ctx context.Context, tag string, snaps []string) error {
	close(e.released)
	return e.recordEP.Release(ctx, tag, snaps)
}

// The target's releases do not wait for the source's calls (another host):
// the source's release here waits until the target's has been made.
func TestFlushReleasesBothSidesAtOnce(t *testing.T) {
	src, dst, a, b := twoFinishCases()
	batch := newReleaseBatch()
	step, last := RootStepHoldTag(a.stepRoot), RootLastReceivedHoldTag(a.rootTID)
	batch.add(a, true, map[string][]string{step: {"tank/a@s1"}})
	batch.add(b, false, map[string][]string{last: {"backup/b@s1"}})
	batch.addBookmarks(a, []string{"tank/a#old"})
	gate := make(chan struct{})
	batch.flush(context.Background(), &blockingReleaseEP{recordEP: src, release: gate}, &notifyReleaseEP{dst, gate})
	for _, r := range []*datasetRun{a, b} {
		if r.res.Status != StatusReplicated || len(r.res.Warnings) > 0 {
			t.Errorf("%s: %s %v %q", r.source, r.res.Status, r.res.Err, r.res.Warnings)
		}
	}
	if want := []string{"Release " + step + " tank/a@s1", "DestroyBookmarks tank/a#old"}; !slices.Equal(src.calls, want) {
		t.Errorf("source calls %q, want %q", src.calls, want)
	}
	if want := []string{"Release " + last + " backup/b@s1"}; !slices.Equal(dst.calls, want) {
		t.Errorf("target calls %q, want %q", dst.calls, want)
	}
}

// gatedSource is a source safe for concurrent use whose Release waits
// until DestroyBookmarks has been called.
type gatedSource struct{ *blockingReleaseEP }

func (e gatedSource) DestroyBookmarks(ctx context.Context, bms []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.release)
	return e.recordEP.DestroyBookmarks(ctx, bms)
}

// A local source (Static, a *zfs.CLI) releases the step holds while the
// old cursors are destroyed; another source does one after the other
// (TestFlushReleasesBothSidesAtOnce).
func TestFlushLocalSourceAtOnce(t *testing.T) {
	src, dst, a, _ := twoFinishCases()
	batch := newReleaseBatch()
	batch.add(a, true, map[string][]string{RootStepHoldTag(a.stepRoot): {"tank/a@s1"}})
	batch.addBookmarks(a, []string{"tank/a#old"})
	gated := gatedSource{&blockingReleaseEP{recordEP: src, release: make(chan struct{})}}
	batch.flush(context.Background(), touching{nopCloser{gated}, newTouchSet()}, dst)
	if a.res.Status != StatusReplicated {
		t.Errorf("tank/a: %s %v", a.res.Status, a.res.Err)
	}
	if len(src.calls) != 2 {
		t.Errorf("source calls %q, want a release and a destroy", src.calls)
	}
}

// Two jobs below one root that map a source dataset differently (another
// strip, a one-off beside a job) keep their step holds apart.
func TestStepRootSeparatesMappings(t *testing.T) {
	root := TargetID("0123456789abcdef")
	if StepRootID(root, "backup", "strip=0") == StepRootID(root, "backup", "strip=1") {
		t.Fatal("two mappings share a step root")
	}
	a := testFinishJob()
	a.MapID = "strip=0"
	b := testFinishJob()
	b.MapID = "one-off tank/a backup/copy"
	if got := a.resolver(root)(b.stepRootID(root), "tank/a"); got != "" {
		t.Errorf("job a resolves job b's step hold to %q", got)
	}
	if got := a.resolver(root)(a.stepRootID(root), "tank/a"); got == "" {
		t.Error("job a does not resolve its own step hold")
	}
}

// A batched hold whose failure names snapshots held the others (and one
// that had the tag already counts as held); one whose failure names none
// held nothing that can be counted on.
func TestHoldBatchFailures(t *testing.T) {
	snaps := []string{"tank/a@s1", "tank/b@s1", "tank/c@s1"}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"ok", nil, "[tank/a@s1 tank/b@s1 tank/c@s1]"},
		{"named", &zfs.HoldError{Op: "hold", Tag: "t", Failed: map[string]error{
			"tank/a@s1": errors.New("permission denied"),
			"tank/b@s1": fmt.Errorf("x: %w", zfs.ErrHoldExists),
		}}, "[tank/b@s1 tank/c@s1]"},
		{"unnamed", errors.New("connection lost"), "[]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ep := &recordEP{fail: map[string]error{"Hold": c.err}}
			if got := fmt.Sprint(holdBatch(context.Background(), ep, "t", snaps)); got != c.want {
				t.Errorf("held %s, want %s", got, c.want)
			}
			if len(ep.calls) != 1 {
				t.Errorf("calls %q, want one", ep.calls)
			}
		})
	}
}

// A level's stale bookmarks go in one destroy per pool and chunk of
// holdChunk; a cancelled run destroys nothing more.
func TestBatchedBookmarkDestroysChunked(t *testing.T) {
	d, src, dst, _ := finishCase(t)
	batch := newReleaseBatch()
	var names []string
	for i := 0; i < holdChunk+44; i++ {
		names = append(names, fmt.Sprintf("tank/a#zsync_cursor_%03d", i))
	}
	batch.addBookmarks(d, append(names, "other/x#zsync_cursor_1", "other/y#zsync_cursor_2"))
	batch.flush(context.Background(), src, dst)
	var sizes []int
	for _, c := range src.calls {
		if strings.HasPrefix(c, "DestroyBookmarks ") {
			sizes = append(sizes, len(strings.Fields(c))-1)
		}
	}
	if !slices.Equal(sizes, []int{2, holdChunk, 44}) {
		t.Errorf("destroy calls of %v bookmarks, want [2 %d 44]", sizes, holdChunk)
	}
	src.calls = nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	batch.flush(ctx, src, dst)
	if len(src.calls) != 0 {
		t.Errorf("a cancelled run still called %q", src.calls)
	}
}

// addKeptCase adds tank/<name>, up to date on backup/<name> at s2 (guid 2),
// as a run's plan leaves it: kept at s2. Unless adopted, it has neither
// the cursor nor the last-received hold (a replica seeded by hand).
func addKeptCase(src, dst *recordEP, dstHolds map[string][]string, name string, adopted bool) *datasetRun {
	root := TargetID("0123456789abcdef")
	s, t := "tank/"+name, "backup/"+name
	tid := RelationID(root, t)
	versions := []zfs.Entry{
		{Name: s + "@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 10},
		{Name: s + "@s2", Type: zfs.Snapshot, GUID: 2, CreateTXG: 20},
	}
	replica := []zfs.Entry{
		{Name: t + "@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 5},
		{Name: t + "@s2", Type: zfs.Snapshot, GUID: 2, CreateTXG: 6},
	}
	if adopted {
		versions = append(versions, zfs.Entry{Name: s + "#" + CursorName(tid, 2), Type: zfs.Bookmark, GUID: 2, CreateTXG: 20})
		replica[1].UserRefs = 1
		dstHolds[t+"@s2"] = []string{RootLastReceivedHoldTag(root)}
	}
	src.items = append(src.items, versions...)
	dst.items = append(dst.items, replica...)
	return &datasetRun{
		job: testFinishJob(), src: src, dst: dst, res: &Result{Source: s, Target: t, Status: StatusUpToDate}, rootTID: root,
		stepRoot: StepRootID(root, "backup", ""),
		source:   s, srcVersions: versions,
		srcHolds: map[string][]string{},
		dstHolds: dstHolds,
		mu:       &stdsync.Mutex{}, dstInfo: map[string]zfs.Entry{}, byTarget: map[string][]zfs.Entry{t: replica},
		kept: &pendingFinish{tid: tid, target: t, to: versions[1]},
	}
}

// Up-to-date replicas without zsync's cursor and last-received hold (seeded
// by hand) get them together: as root one program for the cursors, and one
// hold call, whatever the number of datasets; a replica that has both is
// left alone. A delegated user's run makes each cursor by itself but still
// holds them in one call. Nothing is made twice, and a run with nothing to
// adopt makes no call at all.
func TestKeepUpAdoptsTogether(t *testing.T) {
	for _, unavailable := range []bool{false, true} {
		t.Run(fmt.Sprintf("unavailable=%v", unavailable), func(t *testing.T) {
			src, dst := &recordEP{}, &recordEP{}
			holds := map[string][]string{}
			a := addKeptCase(src, dst, holds, "a", false)
			b := addKeptCase(src, dst, holds, "b", false)
			c := addKeptCase(src, dst, holds, "c", true)
			kept := []*datasetRun{a, b, c}
			be := &batchEP{recordEP: src, unavailable: unavailable}
			j := a.job
			touched := newTouchSet()
			left := j.keepUp(context.Background(), be, dst, a.rootTID, kept, touched)
			if unavailable != (left == nil) {
				t.Errorf("keepUp returned the batcher %v, with programs unavailable %v", left, unavailable)
			}
			for _, r := range kept {
				r.housekeeping(context.Background())
				if len(r.res.Warnings) > 0 || r.res.Err != nil {
					t.Fatalf("%s: %v %q", r.source, r.res.Err, r.res.Warnings)
				}
			}
			wantDst := []string{"Hold " + RootLastReceivedHoldTag(a.rootTID) + " backup/a@s2 backup/b@s2"}
			if !slices.Equal(dst.calls, wantDst) {
				t.Errorf("target calls:\n%s\nwant:\n%s", strings.Join(dst.calls, "\n"), strings.Join(wantDst, "\n"))
			}
			var wantSrc []string
			if unavailable {
				wantSrc = []string{
					"Bookmark tank/a@s2 tank/a#" + CursorName(a.kept.tid, 2),
					"Bookmark tank/b@s2 tank/b#" + CursorName(b.kept.tid, 2),
				}
			} else {
				want := [][]zfs.NewBookmark{{
					{Bookmark: "tank/a#" + CursorName(a.kept.tid, 2), From: "tank/a@s2"},
					{Bookmark: "tank/b#" + CursorName(b.kept.tid, 2), From: "tank/b@s2"},
				}}
				if fmt.Sprint(be.programs) != fmt.Sprint(want) {
					t.Errorf("programs:\n%v\nwant\n%v", be.programs, want)
				}
				if !touched.has("tank/a") || !touched.has("tank/b") || touched.has("tank/c") {
					t.Errorf("changed datasets marked wrong")
				}
			}
			if !slices.Equal(src.calls, wantSrc) {
				t.Errorf("source calls:\n%s\nwant:\n%s", strings.Join(src.calls, "\n"), strings.Join(wantSrc, "\n"))
			}
			if len(c.srcVersions) != 3 || len(a.srcVersions) != 2 {
				t.Errorf("the runs' listings changed: %v %v", a.srcVersions, c.srcVersions)
			}
		})
	}
	// adopted already: nothing to do, not a call
	src, dst := &recordEP{}, &recordEP{}
	holds := map[string][]string{}
	kept := []*datasetRun{addKeptCase(src, dst, holds, "a", true), addKeptCase(src, dst, holds, "b", true)}
	be := &batchEP{recordEP: src}
	kept[0].job.keepUp(context.Background(), be, dst, kept[0].rootTID, kept, newTouchSet())
	for _, r := range kept {
		r.housekeeping(context.Background())
	}
	if len(src.calls)+len(dst.calls)+len(be.programs) > 0 {
		t.Errorf("calls with nothing to adopt: %q %q %v", src.calls, dst.calls, be.programs)
	}
}
