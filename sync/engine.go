package sync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// RawMode decides when steps are sent raw (zfs send -w).
type RawMode int

// The raw modes of [job.replication] raw.
const (
	RawAuto   RawMode = iota // raw for encrypted datasets, plain otherwise
	RawAlways                // raw always (fails for unencrypted datasets? no: -w of unencrypted is a plain send)
	RawNever                 // never raw: encrypted data is sent decrypted (the key must be loaded)
)

// Job is one replication run: which source datasets go where, and how.
type Job struct {
	// Name is used in logs and reports only; abstractions carry the target id.
	Name string
	// Source and Target open the two sides. The source is where the datasets
	// are read (the local host for push, the far side for pull).
	Source, Target Opener
	// Datasets selects the source datasets (filesystems and volumes).
	Datasets zfs.Filter
	// TargetRoot is where replicas land. It holds the target id.
	TargetRoot string
	// Map returns the target dataset of a selected source dataset.
	Map func(source string) (string, error)
	// MapID names Map among the mappings into TargetRoot ("strip=1", a
	// one-off's source and target): jobs with different mappings into one
	// root keep their step holds apart (see StepRootID).
	MapID string
	// Unmap returns the source datasets Map sends to target (strip leaves
	// the dropped components open, so there may be one per root of the
	// job's datasets); nil or none means target is not the job's. With it,
	// a replica whose source was renamed or moved is renamed to follow it
	// (see planFollows); without it, such a source is sent afresh.
	Unmap func(target string) []string

	Initial        InitialPolicy
	Protection     Protection
	Raw            RawMode
	Rotate         bool           // on_diverged = rotate: rename a diverged target aside and start fresh
	SnapshotFilter *regexp.Regexp // nil: every snapshot is sent
	PropsOverride  map[string]string
	PropsExclude   []string
	Concurrency    int
	DryRun         bool
	// EstimateSizes asks zfs for each step's size (zfs send -nP, one more
	// zfs call per step) before sending it, for a progress display with a
	// percentage and an ETA. A dry run always estimates.
	EstimateSizes bool
	// Listings, when set, keeps snapshot listings between runs so that a
	// dataset whose snapshots did not change is not listed again (OpenZFS
	// 2.2+, see listcache.go).
	Listings ListingCache

	// Now gives the time for rotate names; nil means time.Now.
	Now func() time.Time
	// Events receives progress and decisions; nil discards them.
	Events func(Event)
}

// Event is something a run wants the user to know, for logs and progress.
type Event struct {
	Dataset string // source dataset
	Target  string // target dataset
	Kind    string // "plan", "listing", "step", "progress", "abort-resume", "rotate", "placeholder", "rename", "reconcile", "warning", "dry-run"
	Message string
	Step    *Step
	Bytes   int64 // progress: bytes so far; step: bytes of the step
	Total   int64 // estimated size of the step, 0 when unknown
	// Done marks a step's last "progress" event: its stream ended, Bytes is
	// final. Every "step" event is followed by exactly one, from the same
	// goroutine. Err is nil when the stream was received whole (Total is
	// then Bytes), else why it was not (Total is still the estimate).
	Done bool
	Err  error
}

// Result is the outcome of one dataset.
type Result struct {
	Source, Target string
	Status         Status
	Steps          []string
	Bytes          int64
	AbortedResume  string // reason, when a stale token was aborted
	Rotated        string // where a diverged target was renamed to
	Renamed        string // the replica's name before it was renamed to follow its source
	// Pending is set by a dry run when there is nothing to send yet because
	// the sender has no snapshot at all: a real run that snapshots first
	// sends that snapshot in full (a real run without one fails).
	Pending string
	// Last is the newest source version the target has after the run (the
	// last step's To, or the common base when up to date); zero when unknown.
	Last zfs.Entry
	// Warnings are housekeeping failures after a good receive (reconciling
	// cursors and holds): the data is safe and the next run repairs them.
	Warnings []string
	// ChildrenMayRun is set on a failure that left the target's subtree
	// intact and usable (a refused placeholder conversion): the children
	// are not skipped.
	ChildrenMayRun bool
	Err            error
	Duration       time.Duration
}

// Status of one dataset after a run.
type Status string

// The statuses of Result.
const (
	StatusReplicated Status = "replicated"
	StatusUpToDate   Status = "up-to-date"
	StatusPlanned    Status = "planned" // dry run
	StatusFailed     Status = "failed"
	StatusSkipped    Status = "skipped" // its parent failed
)

// Report is the outcome of a Job.
type Report struct {
	Job      string
	TargetID TargetID
	Datasets []Result
}

// Failed counts the datasets that failed or were skipped because of a failure.
func (r *Report) Failed() (failed, ok int) {
	for _, d := range r.Datasets {
		if d.Status == StatusFailed || d.Status == StatusSkipped {
			failed++
		} else {
			ok++
		}
	}
	return failed, ok
}

func (j *Job) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

func (j *Job) emit(ev Event) {
	if j.Events != nil {
		j.Events(ev)
	}
}

// Run replicates every selected dataset, parents before children, and
// reconciles the abstractions of each. A failing dataset does not stop the
// others (its children are skipped). The returned error is for failures of
// the whole job (listing, target id); per-dataset failures are in the report.
func (j *Job) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Job: j.Name}
	src, err := j.Source(ctx)
	if err != nil {
		return rep, fmt.Errorf("open source: %w", err)
	}
	defer closeEndpoint(src)
	dst, err := j.Target(ctx)
	if err != nil {
		return rep, fmt.Errorf("open target: %w", err)
	}
	defer closeEndpoint(dst)

	var cache ListingState
	if j.Listings != nil {
		if c, err := j.Listings.Load(); err == nil && c.Sides != nil {
			cache = c
		} else if err != nil {
			j.emit(Event{Kind: "warning", Message: fmt.Sprintf("listing cache unreadable, listing every dataset in full (nothing is lost; delete the file if this repeats): %v", err)})
		}
	}
	roots := j.Datasets.Roots()
	srcSide, err := j.listSide(ctx, src, roots, cache.Sides["source"], true, func(e zfs.Entry) bool {
		return j.Datasets.Match(e.Name) && !IsPlaceholder(e)
	}, nil)
	if err != nil {
		return rep, fmt.Errorf("list source %s: %w", strings.Join(roots, ", "), err)
	}
	srcList := srcSide.entries
	j.emit(Event{Kind: "listing", Message: "source: " + srcSide.String()})
	var selected []string
	bySource := map[string][]zfs.Entry{}
	srcInfo := map[string]zfs.Entry{}
	for _, e := range srcList {
		if e.IsDataset() {
			if j.Datasets.Match(e.Name) && !IsPlaceholder(e) {
				selected = append(selected, e.Name)
				srcInfo[e.Name] = e
			}
			continue
		}
		bySource[e.Dataset()] = append(bySource[e.Dataset()], e)
	}
	if len(selected) == 0 {
		return rep, fmt.Errorf("no dataset on the source matches %v", j.Datasets)
	}
	selected = OrderParentsFirst(selected)

	rootTID, err := j.targetID(ctx, dst)
	if err != nil {
		return rep, err
	}
	rep.TargetID = rootTID
	stepRoot := j.stepRootID(rootTID)

	quiet := j.quietTargets(cache.Sides["source"], cache.Sides["target"], rootTID, selected, srcInfo, bySource)
	dstSide, err := j.listSide(ctx, dst, []string{j.TargetRoot}, cache.Sides["target"], false, nil, func(t string) bool { return quiet[t] })
	if err != nil && !errors.Is(err, zfs.ErrDatasetNotFound) {
		return rep, fmt.Errorf("list target %s: %w", j.TargetRoot, err)
	}
	var dstList []zfs.Entry
	if dstSide != nil {
		dstList = dstSide.entries
		j.emit(Event{Kind: "listing", Message: "target: " + dstSide.String()})
	}
	byTarget := map[string][]zfs.Entry{}
	dstInfo := map[string]zfs.Entry{}
	for _, e := range dstList {
		if e.IsDataset() {
			dstInfo[e.Name] = e
		} else {
			byTarget[e.Dataset()] = append(byTarget[e.Dataset()], e)
		}
	}
	srcHolds, err := HoldsOf(ctx, src, srcList)
	if err != nil {
		return rep, fmt.Errorf("source holds: %w", err)
	}
	dstHolds, err := HoldsOf(ctx, dst, dstList)
	if err != nil {
		return rep, fmt.Errorf("target holds: %w", err)
	}

	// replicas whose sources were renamed: renamed in the order planned,
	// before any dataset is planned (a new dataset may reuse an old name)
	follows := j.planFollows(ctx, src, stepRoot, selected, srcInfo, bySource, dstInfo, byTarget)

	// what the datasets' runs change, so that their listings are not kept
	srcTouched, dstTouched := newTouchSet(), newTouchSet()
	if j.Listings != nil && !j.DryRun {
		// until the run ends, the cache holds no listing: a run killed
		// after changing holds or snapshots must not leave one that
		// predates the change (the values are kept, so the next run's
		// listings settle at once)
		all := func(string) bool { return true }
		state := ListingState{Sides: map[string]*SideListing{"source": srcSide.update(all, nil)}}
		if dstSide != nil {
			state.Sides["target"] = dstSide.update(all, nil)
		}
		if err := j.Listings.Save(state); err != nil {
			j.emit(Event{Kind: "warning", Message: fmt.Sprintf("listing cache not saved, the next run lists every dataset in full (nothing is lost; check that the state directory is writable): %v", err)})
		}
	}

	// Work, level by level: a child starts only after its parent finished,
	// datasets of one depth run concurrently.
	results := make(map[string]*Result, len(selected))
	// sources that map to one target fail before anything is done to it
	for ds, res := range j.sharedTargets(selected) {
		results[ds] = res
	}
	// the snapshots of the targets whose finish verified them, as the
	// finish knew them: kept for the next run, checked by name
	finished := map[string][]zfs.Entry{}
	var mu stdsync.Mutex
	levels := map[int][]string{}
	maxDepth := 0
	for _, ds := range selected {
		d := strings.Count(ds, "/")
		levels[d] = append(levels[d], ds)
		if d > maxDepth {
			maxDepth = d
		}
	}
	conc := j.Concurrency
	if conc < 1 {
		conc = 1
	}
	workers := make(chan *worker, conc)
	workers <- &worker{src: src, dst: dst}
	for i := 1; i < conc; i++ {
		workers <- &worker{lazy: true}
	}
	var opened []*worker
	// a level's new cursors are made in one call per pool where the
	// source can (a channel program, as root)
	programs := batcherOf(src)
	if j.DryRun {
		programs = nil
	}
	// the renames, one after another, before any dataset is planned: in
	// the order planned, which is the order the view they were planned
	// against came about
	for _, f := range follows {
		if r := results[f.source]; r != nil && r.Status == StatusFailed || failedAncestor(f.source, results) != "" {
			continue
		}
		res := &Result{Source: f.source, Target: f.to}
		r := &datasetRun{
			job: j, src: touching{src, srcTouched}, dst: touching{dst, dstTouched}, res: res, rootTID: rootTID, stepRoot: stepRoot,
			source: f.source, srcInfo: srcInfo[f.source], srcVersions: bySource[f.source], srcAll: bySource,
			srcHolds: srcHolds, dstHolds: dstHolds, dstInfo: dstInfo, byTarget: byTarget, mu: &mu,
		}
		switch err := r.follow(ctx, f, selected); {
		case errors.Is(err, errFollowStale):
			j.emit(Event{Dataset: f.source, Target: f.to, Kind: "warning", Message: fmt.Sprintf("not renaming %s to %s: %v", f.from, f.to, err)})
		case err != nil:
			r.fail(err)
			results[f.source] = res
		default:
			res.Renamed = f.from
			results[f.source] = res
		}
	}
	for d := 0; d <= maxDepth; d++ {
		var wg stdsync.WaitGroup
		var prepped, kept, runs []*datasetRun
		opening := func(w *worker) error {
			if err := w.open(ctx, j); err != nil {
				return err
			}
			mu.Lock()
			if w.lazy && !w.counted {
				w.counted = true
				opened = append(opened, w)
			}
			mu.Unlock()
			return nil
		}
		for _, ds := range levels[d] {
			res := results[ds]
			if res != nil && res.Status == StatusFailed {
				continue // its rename failed
			}
			renamed := ""
			if res != nil {
				renamed = res.Renamed
			}
			res = &Result{Source: ds, Renamed: renamed}
			mu.Lock()
			results[ds] = res
			mu.Unlock()
			if p := failedAncestor(ds, results); p != "" {
				res.Status, res.Err = StatusSkipped, fmt.Errorf("skipped: parent %s failed", p)
				continue
			}
			onWorker(workers, &wg, func(w *worker) {
				t0 := time.Now()
				if err := opening(w); err != nil {
					res.Status, res.Err = StatusFailed, err
					return
				}
				d := &datasetRun{
					job: j, src: touching{w.src, srcTouched}, dst: touching{w.dst, dstTouched}, res: res, rootTID: rootTID, stepRoot: stepRoot,
					source: ds, srcInfo: srcInfo[ds], srcVersions: bySource[ds], srcAll: bySource,
					srcHolds: srcHolds, dstHolds: dstHolds, dstInfo: dstInfo, byTarget: byTarget, mu: &mu,
				}
				ok := d.prepare(ctx)
				res.Duration = time.Since(t0)
				mu.Lock()
				if ok {
					prepped = append(prepped, d)
				} else if d.kept != nil {
					kept = append(kept, d)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(kept) > 0 {
			// the up-to-date datasets' missing cursors and last-received
			// holds (a replica made by other means, adopted), one call per
			// pool; then each reconciles the rest by itself
			programs = j.keepUp(ctx, programs, touching{dst, dstTouched}, rootTID, kept, srcTouched)
			onOpenWorkers(workers, conc, kept, func(w *worker, r *datasetRun) {
				t0 := time.Now()
				r.src, r.dst = touching{w.src, srcTouched}, touching{w.dst, dstTouched}
				r.housekeeping(ctx)
				r.res.Duration += time.Since(t0)
			})
		}
		if len(prepped) == 0 {
			continue
		}
		// the step holds of the whole level, one call per pool; then the
		// data, on whichever worker is free
		j.batchStepHolds(ctx, touching{src, srcTouched}, stepRoot, prepped)
		for _, r := range prepped {
			onWorker(workers, &wg, func(w *worker) {
				t0 := time.Now()
				if err := opening(w); err != nil {
					r.fail(err)
					return
				}
				r.src, r.dst = touching{w.src, srcTouched}, touching{w.dst, dstTouched}
				r.transfer(ctx)
				r.res.Duration += time.Since(t0)
				if r.pending != nil {
					mu.Lock()
					runs = append(runs, r)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(runs) == 0 {
			continue
		}
		// Verify and reconcile the level's datasets whose steps ran, from
		// one listing per side for all of them: they run again on the
		// workers, which hold no other dataset now.
		listed := j.finishListings(ctx, src, dst, runs)
		if programs != nil && listed != nil {
			if err := j.batchCursors(ctx, programs, runs, listed, srcTouched); err != nil {
				programs = nil // not root: one call per bookmark from now on
			}
		}
		// the new last-received holds, one call per pool; then each
		// finish collects what it releases, and the level releases it
		// all at the end, one call per pool and tag
		if listed != nil {
			j.batchLastHolds(ctx, touching{dst, dstTouched}, rootTID, runs, listed)
		}
		batch := newReleaseBatch()
		onOpenWorkers(workers, conc, runs, func(w *worker, r *datasetRun) {
			t0 := time.Now()
			r.src, r.dst = touching{w.src, srcTouched}, touching{w.dst, dstTouched}
			r.batch = batch
			target, l := r.pending.target, listed[r.source]
			r.finish(ctx, l)
			if l != nil && r.res.Status == StatusReplicated {
				mu.Lock()
				finished[target] = l.dst
				mu.Unlock()
			}
			r.res.Duration += time.Since(t0)
		})
		t0 := time.Now()
		batch.flush(ctx, touching{src, srcTouched}, touching{dst, dstTouched})
		if len(runs) > 0 {
			// shared by the level's datasets: each gets its share
			share := time.Since(t0) / time.Duration(len(runs))
			for _, r := range runs {
				r.res.Duration += share
			}
		}
	}
	for _, w := range opened {
		closeEndpoint(w.src)
		closeEndpoint(w.dst)
	}
	for _, ds := range selected {
		rep.Datasets = append(rep.Datasets, *results[ds])
	}
	if j.Listings != nil && !j.DryRun {
		j.saveListings(srcSide, dstSide, results, srcTouched, dstTouched, finished)
	}
	return rep, nil
}

// finishChunk is how many datasets one listing call of finishListings
// names, so that argv and protocol frames stay small.
const finishChunk = 256

// finishListings lists, after a level's data, the sources of runs (their
// snapshots and bookmarks) in one call, and returns what each run's finish
// needs by source dataset. A target whose steps were plain incrementals
// into the replica the run listed at its start is not listed again: its new
// snapshot is looked up by name (targetsByName), which costs a few
// milliseconds where listing all of a replica's snapshots costs many per
// snapshot. The other targets are listed in one call. When a side's listing
// fails (a dataset destroyed meanwhile makes the whole call fail), it
// returns nothing: each finish lists its own dataset.
func (j *Job) finishListings(ctx context.Context, src, dst Endpoint, runs []*datasetRun) map[string]*finishListing {
	bySrc, byDst := map[string][]zfs.Entry{}, map[string][]zfs.Entry{}
	for chunk := range slices.Chunk(runs, finishChunk) {
		// the two sides at once (each side's calls one after another)
		var srcErr error
		var wg stdsync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			sources := make([]string, 0, len(chunk))
			for _, r := range chunk {
				sources = append(sources, r.source)
			}
			var ses []zfs.Entry
			ses, srcErr = src.List(ctx, sources, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot, zfs.Bookmark}})
			for _, e := range ses {
				if !e.IsDataset() {
					bySrc[e.Dataset()] = append(bySrc[e.Dataset()], e)
				}
			}
		}()
		named, rest := targetsByName(ctx, dst, chunk)
		maps.Copy(byDst, named)
		var dstErr error
		if len(rest) > 0 {
			var tes []zfs.Entry
			tes, dstErr = dst.List(ctx, rest, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
			for _, e := range tes {
				if e.Type == zfs.Snapshot {
					byDst[e.Dataset()] = append(byDst[e.Dataset()], e)
				}
			}
		}
		wg.Wait()
		if srcErr != nil || dstErr != nil {
			return nil
		}
	}
	out := make(map[string]*finishListing, len(runs))
	for _, r := range runs {
		out[r.source] = &finishListing{src: bySrc[r.source], dst: byDst[r.pending.target]}
	}
	return out
}

// targetsByName returns the target snapshots of the runs whose steps were
// all incrementals received into the replica as the run's first listing
// found it (not created, rotated, converted or received with force): that
// listing, with the step's new snapshot looked up by name, in one call for
// all of them. The same call reads each target's prevsnap, the name of its
// newest snapshot (a property zfs keeps per dataset, not shown by zfs get
// all), which must be the new snapshot: so the finish's verification (the
// target's newest snapshot is the step's To) stands as with a listing, and
// a snapshot made on the replica since the receive, by hand or by another
// run into the same target, sends the target to be listed. What else the
// stand-in lacks plays no part in the finish: snapshots received between
// (-I) carry none of zsync's holds, and the hold counts of the first
// listing's snapshots are the holds the run read at its start (the run's
// view of them, as with a fresh listing of unchanged holds). The targets
// of the other runs, and of those whose lookup does not match, are
// returned in rest, to be listed.
func targetsByName(ctx context.Context, dst Endpoint, runs []*datasetRun) (named map[string][]zfs.Entry, rest []string) {
	named = map[string][]zfs.Entry{}
	want := map[string]*datasetRun{}
	var names []string
	for _, r := range runs {
		if n := r.lookupName(); n != "" {
			want[n] = r
			names = append(names, n, r.pending.target)
		} else {
			rest = append(rest, r.pending.target)
		}
	}
	if len(names) == 0 {
		return named, rest
	}
	got, err := dst.Get(ctx, names, []string{"guid", "createtxg", "creation", "userrefs", "prevsnap"})
	for n, r := range want {
		e, ok := zfs.Entry{Name: n, Type: zfs.Snapshot}, err == nil
		if ok {
			e, ok = snapshotFromProps(n, got[n])
		}
		if !ok || e.GUID != r.pending.to.GUID || got[r.pending.target]["prevsnap"] != n {
			rest = append(rest, r.pending.target)
			continue
		}
		r.mu.Lock()
		before := snapshotsOnly(r.byTarget[r.pending.target])
		r.mu.Unlock()
		es := slices.DeleteFunc(before, func(b zfs.Entry) bool { return b.Name == n })
		for i := range es {
			es[i].UserRefs = uint64(len(r.dstHolds[es[i].Name]))
		}
		named[r.pending.target] = append(es, e)
	}
	slices.Sort(rest)
	return named, rest
}

// lookupName is the name of the target snapshot whose lookup stands for a
// listing of d's target after its steps (see targetsByName), or "".
func (d *datasetRun) lookupName() string {
	p, pr := d.pending, d.prep
	if p == nil || pr == nil || !pr.exists || pr.force || pr.converted || d.res.Rotated != "" || p.to.GUID == 0 || p.to.Short() == "" {
		return ""
	}
	for _, s := range pr.plan.Steps {
		if s.Full() {
			return ""
		}
	}
	return p.target + "@" + p.to.Short()
}

// snapshotFromProps makes the entry of snapshot name from its zfs get
// values (guid, createtxg, creation, userrefs), reporting whether they
// were all there and numbers.
func snapshotFromProps(name string, p map[string]string) (zfs.Entry, bool) {
	e := zfs.Entry{Name: name, Type: zfs.Snapshot}
	var err error
	num := func(k string) uint64 {
		v, perr := strconv.ParseUint(p[k], 10, 64)
		if perr != nil {
			err = perr
		}
		return v
	}
	e.GUID, e.CreateTXG, e.UserRefs = num("guid"), num("createtxg"), num("userrefs")
	if c := num("creation"); c != 0 {
		e.Creation = time.Unix(int64(c), 0).UTC()
	}
	return e, err == nil && e.GUID != 0
}

// quietTargets returns the targets of the selected source datasets whose
// snapshots are what an earlier run kept in the cache (see listSide), and
// whose relationship's cursor is at the newest snapshot kept for the target
// and nowhere else: a run that moved the replica on since (a one-off push
// into the same target, a run whose cache was not saved) moved the cursor
// too. Without a cursor (protection "nothing") no target is quiet.
func (j *Job) quietTargets(prevSrc, prevDst *SideListing, rootTID TargetID, selected []string, info map[string]zfs.Entry, bySource map[string][]zfs.Entry) map[string]bool {
	out := map[string]bool{}
	if prevSrc == nil || prevDst == nil || j.Listings == nil || rootTID == "" {
		return out
	}
	for _, ds := range selected {
		c, ok := prevSrc.Datasets[ds]
		if !ok || c.GUID != info[ds].GUID || c.Origin != info[ds].Origin || !c.sameSnapshots(bySource[ds]) {
			continue
		}
		t, err := j.Map(ds)
		if err != nil {
			continue
		}
		newest := prevDst.Datasets[t].newest()
		if newest == nil || !cursorOnlyAt(bySource[ds], j.relationID(rootTID, t), newest.GUID) {
			continue
		}
		out[t] = true
	}
	return out
}

// cursorOnlyAt reports whether the bookmarks among es hold relationship
// tid's cursor at guid and no other cursor or tentative cursor of it.
func cursorOnlyAt(es []zfs.Entry, tid TargetID, guid uint64) bool {
	abs, _ := ListAbstractions(es, nil)
	found := false
	for _, a := range abs {
		if a.Target != tid {
			continue
		}
		if a.Kind != Cursor || a.GUID != guid {
			return false
		}
		found = true
	}
	return found
}

// saveListings stores what the run's listings are worth to the next run:
// nothing of a dataset the run changed anything on, nor of a dataset that
// did not end up to date or replicated (nor of its target), but for the
// targets the run replicated into and verified (finished): their snapshots
// as the finish knew them, which the next run checks by name (namedReuse)
// before it reuses them.
func (j *Job) saveListings(src, dst *sideListing, results map[string]*Result, srcTouched, dstTouched *touchSet, finished map[string][]zfs.Entry) {
	bad, badTarget := map[string]bool{}, map[string]bool{}
	for ds, r := range results {
		if r.Status != StatusUpToDate && r.Status != StatusReplicated {
			bad[ds] = true
			if r.Target != "" {
				badTarget[r.Target] = true
			}
		}
	}
	state := ListingState{Sides: map[string]*SideListing{}}
	state.Sides["source"] = src.update(func(ds string) bool { return bad[ds] || srcTouched.has(ds) }, nil)
	if dst != nil {
		kept := map[string][]zfs.Entry{}
		for t, es := range finished {
			if !badTarget[t] {
				kept[t] = es
			}
		}
		state.Sides["target"] = dst.update(func(ds string) bool { return badTarget[ds] || dstTouched.has(ds) }, kept)
	}
	if err := j.Listings.Save(state); err != nil {
		j.emit(Event{Kind: "warning", Message: fmt.Sprintf("listing cache not saved, the next run lists every dataset in full (nothing is lost; check that the state directory is writable): %v", err)})
	}
}

// sharedTargets returns a failed Result for every selected source whose
// target another selected source maps to as well (strip_components over
// two roots whose lower names are alike): neither may replicate, or both
// are sent to one replica (at once, with concurrency) and it holds
// whichever source got there first, the other's runs failing on it.
func (j *Job) sharedTargets(selected []string) map[string]*Result {
	if j.Map == nil {
		return nil
	}
	by := map[string][]string{}
	for _, ds := range selected {
		if t, err := j.Map(ds); err == nil {
			by[t] = append(by[t], ds)
		}
	}
	out := map[string]*Result{}
	for t, sources := range by {
		if len(sources) < 2 {
			continue
		}
		for _, ds := range sources {
			others := slices.DeleteFunc(slices.Clone(sources), func(o string) bool { return o == ds })
			out[ds] = &Result{Source: ds, Target: t, Status: StatusFailed,
				Err: fmt.Errorf("not replicated: %s maps to the target %s, and so does %s; nothing was sent to it (lower strip_components so that their names stay apart, or leave one of them out of the job's datasets)", ds, t, strings.Join(others, ", "))}
		}
	}
	return out
}

// onWorker takes a worker from pool and runs fn on it in a goroutine that
// wg counts; the worker goes back to pool when fn returns.
// onOpenWorkers runs fn for each of runs on the pool's workers that are
// open, never opening one (work after a level's plan needs no new session),
// and returns when all are done, the workers back in the pool.
func onOpenWorkers(pool chan *worker, conc int, runs []*datasetRun, fn func(w *worker, r *datasetRun)) {
	open := make(chan *worker, conc)
	var closed []*worker
	for range conc {
		if w := <-pool; w.src != nil {
			open <- w
		} else {
			closed = append(closed, w)
		}
	}
	var wg stdsync.WaitGroup
	for _, r := range runs {
		onWorker(open, &wg, func(w *worker) { fn(w, r) })
	}
	wg.Wait()
	for len(open) > 0 {
		pool <- <-open
	}
	for _, w := range closed {
		pool <- w
	}
}

func onWorker(pool chan *worker, wg *stdsync.WaitGroup, fn func(w *worker)) {
	w := <-pool
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { pool <- w }()
		fn(w)
	}()
}

type worker struct {
	src, dst Endpoint
	lazy     bool
	counted  bool
}

func (w *worker) open(ctx context.Context, j *Job) error {
	if w.src != nil {
		return nil
	}
	s, err := j.Source(ctx)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	d, err := j.Target(ctx)
	if err != nil {
		closeEndpoint(s)
		return fmt.Errorf("open target: %w", err)
	}
	w.src, w.dst = s, d
	return nil
}

func failedAncestor(ds string, results map[string]*Result) string {
	for p := parentOf(ds); p != ""; p = parentOf(p) {
		if r, ok := results[p]; ok && (r.Status == StatusFailed && !r.ChildrenMayRun || r.Status == StatusSkipped) {
			return p
		}
	}
	return ""
}

func parentOf(ds string) string {
	if i := strings.LastIndexByte(ds, '/'); i >= 0 {
		return ds[:i]
	}
	return ""
}

// HoldsOf asks for the holds of the listed snapshots that have any (userrefs
// > 0), in one batched call: snapshot full name -> tags.
func HoldsOf(ctx context.Context, e Endpoint, list []zfs.Entry) (map[string][]string, error) {
	var held []string
	for _, x := range list {
		if x.Type == zfs.Snapshot && x.UserRefs > 0 {
			held = append(held, x.Name)
		}
	}
	if len(held) == 0 {
		return map[string][]string{}, nil
	}
	return e.Holds(ctx, held)
}

// targetID reads the target id from the target root, creating the root (as a
// placeholder) and the id at first contact. In a dry run nothing is created
// and a missing id is reported as "(new)".
func (j *Job) targetID(ctx context.Context, dst Endpoint) (TargetID, error) {
	props, err := dst.Get(ctx, []string{j.TargetRoot}, []string{TargetIDProperty})
	switch {
	case errors.Is(err, zfs.ErrDatasetNotFound):
		if j.DryRun {
			return "", nil
		}
		if err := dst.Create(ctx, j.TargetRoot, placeholderProps(j.TargetRoot, zfs.Filesystem), true); err != nil && !errors.Is(err, zfs.ErrExists) {
			return "", fmt.Errorf("create target root %s: %w", j.TargetRoot, err)
		}
		j.emit(Event{Target: j.TargetRoot, Kind: "placeholder", Message: "created target root " + j.TargetRoot})
	case err != nil:
		return "", fmt.Errorf("read %s of %s: %w", TargetIDProperty, j.TargetRoot, err)
	default:
		if v := props[j.TargetRoot][TargetIDProperty]; v != "" && v != "-" {
			tid, err := ParseTargetID(v)
			if err != nil {
				return "", fmt.Errorf("target root %s has a malformed %s %q: %w", j.TargetRoot, TargetIDProperty, v, err)
			}
			return tid, nil
		}
		if j.DryRun {
			return "", nil
		}
	}
	tid, err := NewTargetID(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := dst.Set(ctx, j.TargetRoot, map[string]string{TargetIDProperty: string(tid)}); err != nil {
		return "", fmt.Errorf("store target id on %s: %w", j.TargetRoot, err)
	}
	return tid, nil
}

// relationID is the target id of one (dataset, target) relationship: derived
// from the root's id and the target dataset's name. Each relationship gets
// its own id even when two of them share a root, or when a root inherits
// its zsync:target-id property from an ancestor, so two targets of one
// source never share state. Renaming the job changes nothing.
func (j *Job) relationID(root TargetID, target string) TargetID {
	return RelationID(root, target)
}

// RelationID is the id carried by the abstractions of the relationship
// between a source dataset and target, below a root with id root.
func RelationID(root TargetID, target string) TargetID {
	if root == "" {
		return ""
	}
	h := sha256.Sum256([]byte(string(root) + "\x00" + target))
	return TargetID(hex.EncodeToString(h[:])[:16])
}

// placeholderProps are the properties of a placeholder dataset: not mounted,
// encryption inherited, and zsync:placeholder set to its own name. User
// properties are inherited by children, so the value names the dataset it
// was set on: a received child inherits it but is not a placeholder.
func placeholderProps(name string, t zfs.Type) map[string]string {
	p := map[string]string{PlaceholderProperty: name}
	if t == zfs.Filesystem {
		p["canmount"] = "off"
	}
	return p
}

// IsPlaceholder reports whether e is a placeholder zsync created: its
// zsync:placeholder property (listed with ListOptions.UserProps) names e
// itself, not an ancestor it was inherited from.
func IsPlaceholder(e zfs.Entry) bool {
	return e.IsDataset() && e.User[PlaceholderProperty] == e.Name
}
