package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	stdsync "sync"

	"github.com/zsync-dev/zsync/zfs"
)

// BookmarkBatcher is an Endpoint that can make many bookmarks of one pool
// in one call: *zfs.CLI does it with a channel program, which needs root.
// Where that fails with zfs.ErrProgramUnavailable (a delegated user), the
// run goes on with one call per bookmark.
type BookmarkBatcher interface {
	CreateBookmarks(ctx context.Context, bms []zfs.NewBookmark) (map[string]error, error)
}

// batcherOf returns e as a BookmarkBatcher, or nil.
func batcherOf(e Endpoint) BookmarkBatcher {
	if n, ok := e.(nopCloser); ok {
		e = n.Endpoint
	}
	b, _ := e.(BookmarkBatcher)
	return b
}

// byPool groups bookmarks by pool, in pool order, in chunks of at most
// programChunk.
func byPool(changes []zfs.NewBookmark) [][]zfs.NewBookmark {
	groups := map[string][]zfs.NewBookmark{}
	for _, c := range changes {
		p := zfs.Pool(c.Bookmark)
		groups[p] = append(groups[p], c)
	}
	var out [][]zfs.NewBookmark
	for _, p := range slices.Sorted(maps.Keys(groups)) {
		out = slices.AppendSeq(out, slices.Chunk(groups[p], programChunk))
	}
	return out
}

// programChunk is how many bookmarks one channel program makes at most,
// well inside zfs program's default instruction and memory limits.
const programChunk = 256

// batchCursors creates the new cursors of a level's runs whose targets
// verify, in one call per pool, and adds each one made to the run's
// listing so that its finish does not make it again. What fails here is
// left to finish, which makes the cursor with one call and reports its
// failure. An error wrapping zfs.ErrProgramUnavailable means nothing was
// made and the batcher should not be asked again.
func (j *Job) batchCursors(ctx context.Context, b BookmarkBatcher, runs []*datasetRun, listed map[string]*finishListing, touched *touchSet) error {
	if !j.Protection.Allows(Cursor) {
		return nil
	}
	type made struct {
		l     *finishListing
		entry zfs.Entry
	}
	var changes []zfs.NewBookmark
	want := map[string]made{}
	for _, r := range runs {
		p, l := r.finishing(), listed[r.source]
		if p == nil || p.tid == "" || p.to.GUID == 0 || l == nil || l.src == nil || p.verify(l.dst) != nil {
			continue
		}
		abs, _ := ListAbstractions(l.src, nil)
		if hasAbstraction(abs, p.tid, Cursor, p.to.GUID) {
			continue
		}
		from := versionWithGUID(l.src, p.to.GUID)
		if from == nil {
			continue
		}
		bm := r.source + "#" + CursorName(p.tid, p.to.GUID)
		changes = append(changes, zfs.NewBookmark{Bookmark: bm, From: from.Name})
		want[bm] = made{l, zfs.Entry{Name: bm, Type: zfs.Bookmark, GUID: p.to.GUID, CreateTXG: from.CreateTXG}}
	}
	for _, group := range byPool(changes) {
		for _, c := range group {
			touched.mark(false, c.Bookmark)
		}
		failed, err := b.CreateBookmarks(ctx, group)
		if err != nil {
			if errors.Is(err, zfs.ErrProgramUnavailable) {
				return err
			}
			continue
		}
		for _, c := range group {
			// one that exists already (made meanwhile) is not known to
			// point at the right snapshot: finish tries it again
			if failed[c.Bookmark] == nil {
				m := want[c.Bookmark]
				m.l.src = append(m.l.src, m.entry)
			}
		}
	}
	return nil
}

// keepUp makes the missing cursors and last-received holds of a level's
// up-to-date runs (kept) in one call per pool where it can: replicas made
// by other means (zfs send -R, another tool) are adopted at a constant
// number of calls, not two per dataset. It returns the batcher to use from
// now on (nil once the source turned out not to run channel programs).
// A run whose target's newest snapshot is not its kept version, or that
// has both already, is left alone; what fails here is left to the run's
// housekeeping, which makes it by itself and warns when that fails.
func (j *Job) keepUp(ctx context.Context, programs BookmarkBatcher, dst Endpoint, rootTID TargetID, kept []*datasetRun, touched *touchSet) BookmarkBatcher {
	listed := map[string]*finishListing{}
	var holds []*datasetRun
	for _, r := range kept {
		k := r.kept
		r.mu.Lock()
		dstEntries := snapshotsOnly(r.byTarget[k.target])
		r.mu.Unlock()
		// a copy: the made cursor is added to it, not to the shared listing
		l := &finishListing{src: slices.Clone(r.srcVersions), dst: dstEntries}
		listed[r.source] = l
		tabs, _ := ListAbstractions(dstEntries, r.dstHolds)
		if !hasAbstraction(tabs, k.tid, LastReceivedHold, k.to.GUID) {
			holds = append(holds, r)
		}
	}
	if programs != nil {
		if err := j.batchCursors(ctx, programs, kept, listed, touched); err != nil {
			programs = nil
		}
		for _, r := range kept {
			if l := listed[r.source]; len(l.src) > len(r.srcVersions) {
				r.keptSrc = l.src
			}
		}
	}
	j.batchLastHolds(ctx, dst, rootTID, holds, listed)
	return programs
}

// StepResolver returns the StepResolver of the job's runs below a target
// root with id rootTID: a step hold with the root's step id on a source
// dataset the job maps belongs to that dataset's relationship.
func (j *Job) StepResolver(rootTID TargetID) StepResolver {
	return j.resolver(rootTID)
}

// stepRootID is the id the job's step holds carry below a root with id
// rootTID.
func (j *Job) stepRootID(rootTID TargetID) TargetID {
	return StepRootID(rootTID, j.TargetRoot, j.MapID)
}

func (j *Job) resolver(rootTID TargetID) StepResolver {
	step := j.stepRootID(rootTID)
	return func(root TargetID, dataset string) TargetID {
		if root != step || step == "" || j.Map == nil {
			return ""
		}
		t, err := j.Map(dataset)
		if err != nil {
			return ""
		}
		return j.relationID(rootTID, t)
	}
}

// holdChunk is how many snapshots one batched hold or release names, and
// how many bookmarks one batched destroy does.
const holdChunk = 256

// byPoolNames groups snapshot names by pool, in pool order, in chunks of
// at most holdChunk.
func byPoolNames(names []string) [][]string {
	groups := map[string][]string{}
	for _, n := range names {
		p := zfs.Pool(n)
		groups[p] = append(groups[p], n)
	}
	var out [][]string
	for _, p := range slices.Sorted(maps.Keys(groups)) {
		slices.Sort(groups[p])
		out = slices.AppendSeq(out, slices.Chunk(groups[p], holdChunk))
	}
	return out
}

// failedNames returns the snapshots a failed batched `zfs hold` or `zfs
// release` names as failed, except for the reasons in ignore. known is
// false when the error names none (a dropped connection, a refusal of the
// whole request): then nothing of the call can be taken as done. When it
// names them (a *zfs.HoldError), the others succeeded: zfs holds or
// releases the snapshots it is given one by one.
func failedNames(err error, ignore ...error) (failed map[string]bool, known bool) {
	var he *zfs.HoldError
	if !errors.As(err, &he) || len(he.Failed) == 0 {
		return nil, false
	}
	failed = map[string]bool{}
	for s, e := range he.Failed {
		if !slices.ContainsFunc(ignore, func(k error) bool { return errors.Is(e, k) }) {
			failed[s] = true
		}
	}
	return failed, true
}

// batchLastHolds places the new last-received hold on the target of every
// run of a level whose target verifies, in one call per pool (all carry the
// root's tag), and marks each run held so that its finish does not place it
// again. A snapshot the call failed on (or every one, when the failure
// names none) is left to finish, which holds it by itself and reports a
// failure there.
func (j *Job) batchLastHolds(ctx context.Context, dst Endpoint, rootTID TargetID, runs []*datasetRun, listed map[string]*finishListing) {
	if !j.Protection.Allows(LastReceivedHold) || rootTID == "" {
		return
	}
	owner := map[string]*datasetRun{}
	var snaps []string
	for _, r := range runs {
		p, l := r.finishing(), listed[r.source]
		if p == nil || p.tid == "" || p.to.GUID == 0 || l == nil || p.verify(l.dst) != nil {
			continue
		}
		snap := versionWithGUID(snapshotsOnly(l.dst), p.to.GUID)
		if snap == nil {
			continue
		}
		owner[snap.Name] = r
		snaps = append(snaps, snap.Name)
	}
	for _, s := range holdBatch(ctx, dst, RootLastReceivedHoldTag(rootTID), snaps) {
		owner[s].lastHeld = true
	}
}

// holdBatch places tag on snaps, one call per pool, and returns those that
// carry it afterwards: all of a call that succeeded, those a failure does
// not name (zfs holds its arguments one by one; one that had the tag
// already counts as held), none of a call whose failure names nothing.
func holdBatch(ctx context.Context, e Endpoint, tag string, snaps []string) []string {
	var held []string
	for _, group := range byPoolNames(snaps) {
		failed, known := map[string]bool(nil), true
		if err := e.Hold(ctx, tag, group); err != nil {
			failed, known = failedNames(err, zfs.ErrHoldExists)
		}
		for _, s := range group {
			if known && !failed[s] {
				held = append(held, s)
			}
		}
	}
	return held
}

// releaseBatch collects the releases of a level's finishes: per side, tag
// -> snapshot -> the run it is for.
type releaseBatch struct {
	mu       stdsync.Mutex
	src, dst map[string]map[string]*datasetRun
	// bookmarks are the source's stale bookmarks (old cursors) -> the run
	// they are for
	bookmarks map[string]*datasetRun
}

func newReleaseBatch() *releaseBatch {
	return &releaseBatch{src: map[string]map[string]*datasetRun{}, dst: map[string]map[string]*datasetRun{}, bookmarks: map[string]*datasetRun{}}
}

// addBookmarks collects stale bookmarks of d's source.
func (b *releaseBatch) addBookmarks(d *datasetRun, bookmarks []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bm := range bookmarks {
		b.bookmarks[bm] = d
	}
}

func (b *releaseBatch) add(d *datasetRun, source bool, byTag map[string][]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.dst
	if source {
		m = b.src
	}
	for tag, snaps := range byTag {
		if m[tag] == nil {
			m[tag] = map[string]*datasetRun{}
		}
		for _, s := range snaps {
			m[tag][s] = d
		}
	}
}

// flush makes the collected releases, one call per side, tag and pool,
// then destroys the stale bookmarks, one call per pool (zfs destroys them
// one at a time, several at once: see zfs.CLI.DestroyBookmarks). The target
// side's releases run meanwhile (another host or endpoint: each side's
// calls stay one after another, as an Endpoint needs). Every bookmark
// collected is the old cursor of a dataset whose new cursor and
// last-received hold exist, so it goes even when the release of that
// dataset's step holds fails below. A
// release that fails on the source (the snapshots the failure names, or
// all of the call's when it names none) fails its dataset (its step holds would
// never go: see moveError); on the target it is a warning (the next run
// releases the old hold). A hold that is gone already is success.
func (b *releaseBatch) flush(ctx context.Context, src, dst Endpoint) {
	var wg stdsync.WaitGroup
	at := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	at(func() { b.release(ctx, dst, false, b.dst) })
	if concurrentSafe(src) {
		// a local source (a *zfs.CLI): its releases and the bookmarks'
		// destroys at once too
		at(func() { b.release(ctx, src, true, b.src) })
	} else {
		b.release(ctx, src, true, b.src)
	}
	b.destroyBookmarks(ctx, src)
	wg.Wait()
}

// concurrentSafe reports whether e may be called from several goroutines
// at once: an Endpoint of Static (a *zfs.CLI), also behind touching.
func concurrentSafe(e Endpoint) bool {
	if t, ok := e.(touching); ok {
		e = t.Endpoint
	}
	_, ok := e.(nopCloser)
	return ok
}

// release makes the releases of one side (see flush).
func (b *releaseBatch) release(ctx context.Context, e Endpoint, source bool, m map[string]map[string]*datasetRun) {
	for _, tag := range slices.Sorted(maps.Keys(m)) {
		byRun := m[tag]
		for _, group := range byPoolNames(slices.Collect(maps.Keys(byRun))) {
			err := e.Release(ctx, tag, group)
			if err == nil {
				continue
			}
			// a hold that is gone, or a snapshot, is released
			failed, known := failedNames(err, zfs.ErrNoSuchHold, zfs.ErrDatasetNotFound)
			seen := map[*datasetRun]bool{}
			for _, s := range group {
				d := byRun[s]
				if d == nil || seen[d] || known && !failed[s] {
					continue
				}
				seen[d] = true
				b.mu.Lock()
				if source {
					d.failAfter(fmt.Errorf("the target has %s, but reconcile: release %s: %w (the next run tries again, and this run's step holds stay until then; if this repeats, check that zsync may release on the source, see zfs allow)", d.res.Last.Name, tag, err))
				} else {
					d.warn(d.res.Target, fmt.Errorf("reconcile: release old last-received holds %s: %w (they pin older replica snapshots until a later run releases them; if this repeats, check that zsync may release on the target, see zfs allow)", tag, err))
				}
				b.mu.Unlock()
			}
		}
	}
}

// destroyBookmarks destroys the collected stale bookmarks, one call per
// pool and chunk of holdChunk (each zfs destroy waits for a transaction
// group; a bounded call stays well within the idle timeout). When a call
// fails, the datasets of that chunk are tried again on their own (a
// bookmark that is gone counts as destroyed), so that the warning goes to
// the datasets whose bookmarks stay: a stale cursor only costs space in
// the bookmark list until a later run destroys it. A cancelled run tries
// nothing more.
func (b *releaseBatch) destroyBookmarks(ctx context.Context, src Endpoint) {
	for _, chunk := range byPoolNames(slices.Collect(maps.Keys(b.bookmarks))) {
		if ctx.Err() != nil {
			return
		}
		if err := src.DestroyBookmarks(ctx, chunk); err == nil {
			continue
		}
		byRun := map[*datasetRun][]string{}
		var runs []*datasetRun
		for _, bm := range chunk {
			d := b.bookmarks[bm]
			if byRun[d] == nil {
				runs = append(runs, d)
			}
			byRun[d] = append(byRun[d], bm)
		}
		for _, d := range runs {
			if ctx.Err() != nil {
				return
			}
			if err := src.DestroyBookmarks(ctx, byRun[d]); err != nil {
				b.mu.Lock()
				d.warn(d.res.Target, fmt.Errorf("reconcile: destroy stale bookmarks: %w", err))
				b.mu.Unlock()
			}
		}
	}
}

// batchStepHolds places the step holds of every step of a level's prepared
// runs in one call per pool, before any of their data moves, and records
// them in each run's stepHeld so that its steps do not hold them again. A
// snapshot the run's listing shows held already (a killed run's) counts as
// held. What a call fails on (everything, when the failure names nothing)
// is left to the steps, which hold it one dataset at a time and fail the
// step if that fails.
func (j *Job) batchStepHolds(ctx context.Context, src Endpoint, stepRoot TargetID, runs []*datasetRun) {
	if j.Protection != ProtectionResumability || stepRoot == "" {
		return
	}
	tag := RootStepHoldTag(stepRoot)
	owner := map[string]*datasetRun{}
	var snaps []string
	for _, r := range runs {
		if r.prep == nil {
			continue
		}
		for _, s := range r.prep.plan.Steps {
			var want []string
			if s.From.Type == zfs.Snapshot {
				want = append(want, s.From.Name)
			}
			for _, e := range r.delivers(s) {
				want = append(want, e.Name)
			}
			for _, n := range want {
				if _, dup := owner[n]; dup || slices.Contains(r.stepHeld, n) {
					continue
				}
				if slices.Contains(r.srcHolds[n], tag) {
					r.stepHeld = append(r.stepHeld, n)
					continue
				}
				owner[n] = r
				snaps = append(snaps, n)
			}
		}
	}
	for _, n := range holdBatch(ctx, src, tag, snaps) {
		owner[n].stepHeld = append(owner[n].stepHeld, n)
	}
}
