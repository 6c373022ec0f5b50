package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"

	"github.com/zsync-dev/zsync/zfs"
)

// datasetRun replicates one source dataset to its target: plan, steps,
// reconciliation.
type datasetRun struct {
	job      *Job
	src, dst Endpoint
	res      *Result
	rootTID  TargetID
	// stepRoot is the job's StepRootID below rootTID: the id the
	// step holds of all the job's datasets carry, so that one call per
	// pool places or releases them.
	stepRoot TargetID
	// batch, when set, collects the releases of finish's reconcile, which
	// the level then makes in one call per pool and tag.
	batch *releaseBatch

	source      string
	srcInfo     zfs.Entry
	srcVersions []zfs.Entry
	srcAll      map[string][]zfs.Entry // every source dataset's versions: read-only, shared
	srcHolds    map[string][]string    // read-only, shared
	dstHolds    map[string][]string    // read-only, shared

	mu       *stdsync.Mutex // guards dstInfo and byTarget
	dstInfo  map[string]zfs.Entry
	byTarget map[string][]zfs.Entry

	// stepHeld are the source snapshots this run's steps gave the step
	// hold. They keep it until the cursor has moved past them, which
	// reconciliation does after the level's data (see finish).
	stepHeld []string
	// prep is what prepare planned, for transfer.
	prep *prepared
	// pending is set when steps ran: what finish verifies and reconciles.
	pending *pendingFinish
	// kept is set when the target was up to date: the newest common
	// version, where housekeeping reconciles after the level's plans.
	kept *pendingFinish
	// keptSrc is the source's versions with the cursor keepUp made for
	// kept, if it made one.
	keptSrc []zfs.Entry
	// lastHeld is set when the level placed the last-received hold on the
	// To of pending or kept (batchLastHolds), so that it is not placed
	// again.
	lastHeld bool
}

// finishing is where the level reconciles the run: after steps at their
// last To, or, up to date, at the newest common version.
func (d *datasetRun) finishing() *pendingFinish {
	if d.pending != nil {
		return d.pending
	}
	return d.kept
}

// resolve is the run's StepResolver: a step hold with its step root on a
// source dataset belongs to the relationship of that dataset's target.
func (d *datasetRun) resolve(root TargetID, dataset string) TargetID {
	return d.job.resolver(d.rootTID)(root, dataset)
}

// pendingFinish is what a dataset whose steps succeeded still has to do
// after the data of its level: check that the target's newest snapshot is
// the last step's To, then reconcile at it.
type pendingFinish struct {
	tid    TargetID
	target string
	to     zfs.Entry
}

func (d *datasetRun) fail(err error) {
	d.res.Status, d.res.Err = StatusFailed, err
}

func (d *datasetRun) raw() bool {
	switch d.job.Raw {
	case RawAlways:
		return true
	case RawNever:
		return false
	default:
		return d.srcInfo.Encrypted()
	}
}

// run replicates the dataset: prepare, then transfer when there are steps.
func (d *datasetRun) run(ctx context.Context) {
	if d.prepare(ctx) {
		d.transfer(ctx)
	}
}

// prepared is what prepare planned for transfer.
type prepared struct {
	plan                          Plan
	tid                           TargetID
	target                        string
	raw, force, converted, exists bool
	tinfo                         zfs.Entry
}

// prepare maps and plans the dataset and readies its target (rotation, an
// aborted resume, a placeholder's conversion, missing parents). It reports
// whether there are steps to run; their plan is in d.prep. An up-to-date
// dataset is reconciled here; a failure fails the dataset.
func (d *datasetRun) prepare(ctx context.Context) bool {
	j := d.job
	target, err := j.Map(d.source)
	if err != nil {
		d.fail(err)
		return false
	}
	d.res.Target = target
	tid := j.relationID(d.rootTID, target)
	raw := d.raw()
	if d.srcInfo.Encrypted() && !raw {
		if err := d.checkPlainIntoEncrypted(target); err != nil {
			d.fail(err)
			return false
		}
	}

	d.mu.Lock()
	tinfo, exists := d.dstInfo[target]
	recv := snapshotsOnly(d.byTarget[target])
	d.mu.Unlock()
	if exists && tinfo.ResumeToken != "" {
		recv = append(recv, tinfo) // the planner takes the token text from here
	}

	tok, tokReason, err := d.decodeToken(ctx, tinfo)
	if err != nil {
		d.fail(err)
		return false
	}
	// The kernel marks a stream raw only when the dataset is encrypted
	// (send -w of an unencrypted dataset is a plain stream), and so is the
	// resume token of its receive: compare raw-ness the way it sets it.
	opts := PlanOptions{Initial: j.Initial, SnapshotFilter: j.SnapshotFilter, Raw: raw && d.srcInfo.Encrypted()}
	plan, err := PlanDataset(d.srcVersions, recv, tok, opts)
	if tokReason != "" {
		plan.AbortResume, plan.AbortReason = true, tokReason
	}
	var conflict *DivergedError
	var nocommon *NoCommonError
	if err != nil && j.Rotate && exists && (errors.As(err, &conflict) || errors.As(err, &nocommon)) {
		rotated := target + RotatedInfix + j.now().UTC().Format("20060102T150405Z")
		j.emit(Event{Dataset: d.source, Target: target, Kind: "rotate", Message: fmt.Sprintf("%v; renaming the target aside to %s and starting fresh", err, rotated)})
		if j.DryRun {
			d.res.Rotated = rotated
			exists, recv, tok = false, nil, nil
		} else {
			if err := d.rotate(ctx, tid, target, rotated, tinfo); err != nil {
				d.fail(err)
				return false
			}
			d.res.Rotated = rotated
			exists, recv, tok = false, nil, nil
		}
		plan, err = PlanDataset(d.srcVersions, nil, nil, opts)
	}
	var nosnap *NoSenderSnapshotsError
	if err != nil && j.DryRun && errors.As(err, &nosnap) && !nosnap.Filtered {
		// `run --dry-run` on a dataset not yet snapshotted: the run would
		// take the snapshot before replicating, which a dry run does not
		d.res.Status = StatusPlanned
		d.res.Pending = d.source + " has no snapshot yet: the first one is sent in full"
		j.emit(Event{Dataset: d.source, Target: target, Kind: "dry-run", Message: "nothing to send yet: " + d.res.Pending})
		return false
	}
	if err != nil {
		d.fail(err)
		return false
	}
	if plan.AbortResume && exists && tinfo.ResumeToken != "" {
		d.res.AbortedResume = plan.AbortReason
		j.emit(Event{Dataset: d.source, Target: target, Kind: "abort-resume", Message: "aborting the partial receive on " + target + ": " + plan.AbortReason})
		if !j.DryRun {
			if err := d.dst.AbortReceive(ctx, target); err != nil {
				d.fail(fmt.Errorf("abort stale partial receive on %s: %w", target, err))
				return false
			}
		}
	}

	if j.DryRun {
		d.dryRun(ctx, plan, raw, target)
		return false
	}
	if len(plan.Steps) == 0 {
		d.res.Status = StatusUpToDate
		var base uint64
		if plan.Base != nil {
			base = plan.Base.GUID
			d.res.Last = *plan.Base
		}
		d.afterData(ctx, target, tinfo)
		// reconciled after the level's plans, the missing cursors and
		// holds of all its up-to-date datasets made together (keepUp)
		if tid != "" && base != 0 {
			d.kept = &pendingFinish{tid: tid, target: target, to: *plan.Base}
		}
		return false
	}
	force, converted := false, false
	if exists && IsPlaceholder(tinfo) && len(snapshotsOnly(recv)) == 0 && plan.Steps[0].Full() {
		// A placeholder we created becomes the real replica: its source
		// joined the job. recv -F onto it keeps its children (zrepl does
		// the same), but OpenZFS refuses -F for raw streams and for
		// encrypted placeholders: those are set aside, received fresh, and
		// the children moved back in (adoptChildren). Nothing is destroyed.
		// A conversion that cannot be done leaves the placeholder as it is,
		// so its children keep replicating into it.
		if plan.Steps[0].ResumeToken == "" && (opts.Raw || tinfo.Encrypted()) {
			if err := d.checkMovable(target); err != nil {
				d.failKeepingChildren(err)
				return false
			}
			if err := d.setAside(ctx, target); err != nil {
				d.failKeepingChildren(err)
				return false
			}
			exists, tinfo = false, zfs.Entry{}
		} else {
			force, converted = true, true
		}
	}
	if !exists {
		if err := d.ensureParents(ctx, target); err != nil {
			d.fail(err)
			return false
		}
	}
	d.prep = &prepared{plan: plan, tid: tid, target: target, raw: raw, force: force, converted: converted, exists: exists, tinfo: tinfo}
	return true
}

// transfer runs the steps prepare planned, then leaves the dataset to its
// level's finish.
func (d *datasetRun) transfer(ctx context.Context) {
	p := d.prep
	plan, tid, target, raw, force, converted, exists, tinfo := p.plan, p.tid, p.target, p.raw, p.force, p.converted, p.exists, p.tinfo
	var last Step
	for _, s := range plan.Steps {
		n, err := d.step(ctx, s, tid, target, raw, force && s.Full())
		d.res.Bytes += n
		if err != nil {
			if converted {
				// recv -F into the placeholder failed (refused under
				// append_only, or cut): it and its children are intact
				d.failKeepingChildren(fmt.Errorf("%s: %w (the placeholder %s and its children are unchanged and keep replicating; to convert it, run one push with append_only off on the far side)", s, err, target))
				return
			}
			d.fail(fmt.Errorf("%s: %w", s, err))
			return
		}
		d.res.Steps = append(d.res.Steps, s.String())
		last = s
		d.res.Last = s.To
	}
	d.res.Status = StatusReplicated
	if !exists {
		// children of this run must see it (no placeholder for it)
		d.mu.Lock()
		d.dstInfo[target] = zfs.Entry{Name: target, Type: d.srcInfo.Type}
		d.mu.Unlock()
	}
	if d.res.Rotated != "" {
		d.rotateBack(ctx, target, d.res.Rotated)
	}
	if converted {
		tinfo.User = map[string]string{PlaceholderProperty: target}
	}
	d.afterData(ctx, target, tinfo)
	// verified and reconciled after the level's data, from one listing per
	// side for all its datasets (finish)
	d.pending = &pendingFinish{tid: tid, target: target, to: last.To}
}

// afterData finishes a placeholder's conversion into the real replica, on
// every run that finds it unfinished (so a kill in between is repaired):
// the zsync:placeholder marker of a replica that has snapshots is cleared
// (else prune and cascaded pulls would skip it; failing that is a warning),
// and the children of a placeholder set aside are moved back in (failing
// that fails the dataset, so that its children are skipped rather than
// received afresh beside their old replicas).
func (d *datasetRun) afterData(ctx context.Context, target string, tinfo zfs.Entry) {
	if IsPlaceholder(tinfo) && tinfo.Name == target {
		if err := d.dst.Set(ctx, target, map[string]string{PlaceholderProperty: ""}); err != nil {
			d.warn(target, fmt.Errorf("clear %s of %s, which is a replica now: %w", PlaceholderProperty, target, err))
		} else {
			d.mu.Lock()
			if e, ok := d.dstInfo[target]; ok {
				e.User = nil
				d.dstInfo[target] = e
			}
			d.mu.Unlock()
		}
	}
	if err := d.adoptChildren(ctx, target); err != nil {
		// a child left in the aside would be received afresh below target
		// and its history split: skip the children until it is resolved
		d.fail(err)
	}
}

// setAside renames the placeholder target to a sibling, with its children,
// so that a fresh full receive can create target.
func (d *datasetRun) setAside(ctx context.Context, target string) error {
	aside := target + AsideInfix + d.job.now().UTC().Format("20060102T150405Z")
	d.job.emit(Event{Dataset: d.source, Target: target, Kind: "placeholder", Message: fmt.Sprintf("the placeholder %s becomes the replica of %s: setting it aside as %s, its children move back after the receive", target, d.source, aside)})
	if err := d.dst.Rename(ctx, target, aside); err != nil {
		return fmt.Errorf("set the placeholder %s aside to receive %s in its place (the placeholder and its children are unchanged; where the far side refuses renames, as under append_only, run one push with append_only off on the far side): %w", target, d.source, err)
	}
	d.moveInMaps(target, aside)
	d.mu.Lock()
	d.dstInfo[aside] = zfs.Entry{Name: aside, Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: target}}
	d.mu.Unlock()
	return nil
}

// checkMovable refuses to set the placeholder target aside when one of its
// children could not be moved back below the new replica: OpenZFS moves an
// encrypted dataset to another encryption root only when it is its own
// encryption root.
func (d *datasetRun) checkMovable(target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var stuck []string
	for name, e := range d.dstInfo {
		if parentOf(name) == target && e.Encrypted() && e.EncryptionRoot != "" && e.EncryptionRoot != name {
			stuck = append(stuck, name)
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	slices.Sort(stuck)
	return fmt.Errorf("cannot make the placeholder %s the replica of %s: its children %s inherit their encryption from above, and OpenZFS cannot move them below a new encryption root; the placeholder and its children are unchanged and keep replicating (to replicate %s, give it another target, or recreate those children as their own encryption roots)", target, d.source, strings.Join(stuck, ", "), d.source)
}

// failKeepingChildren fails the dataset but lets its children run: the
// target subtree is intact and usable as it is.
func (d *datasetRun) failKeepingChildren(err error) {
	d.fail(err)
	d.res.ChildrenMayRun = true
}

// adoptChildren moves the children of every placeholder set aside for
// target (named target+AsideInfix+..., still marked as target's
// placeholder) into target, and then marks each emptied aside as a
// placeholder of its own (so prune and cascaded pulls skip it); it holds no
// data and may be destroyed. A child that cannot be moved (its name is
// taken in target, the far side refuses) is an error naming it.
func (d *datasetRun) adoptChildren(ctx context.Context, target string) error {
	var asides []string
	d.mu.Lock()
	for name, e := range d.dstInfo {
		if strings.HasPrefix(name, target+AsideInfix) && !strings.Contains(name[len(target):], "/") && e.User[PlaceholderProperty] == target {
			asides = append(asides, name)
		}
	}
	d.mu.Unlock()
	slices.Sort(asides)
	var errs []error
	for _, aside := range asides {
		left, err := d.moveChildren(ctx, aside, target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("the placeholder %s set aside for %s still holds %s: move them below %s by hand (zfs rename) or resolve the conflict; until then the children of %s are skipped", aside, target, strings.Join(left, ", "), target, d.source))
			continue
		}
		if err := d.dst.Set(ctx, aside, map[string]string{PlaceholderProperty: aside}); err != nil {
			errs = append(errs, fmt.Errorf("mark the emptied %s as a placeholder: %w", aside, err))
			continue
		}
		d.mu.Lock()
		d.dstInfo[aside] = zfs.Entry{Name: aside, Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: aside}}
		d.mu.Unlock()
		d.job.emit(Event{Dataset: d.source, Target: target, Kind: "placeholder", Message: fmt.Sprintf("the children of %s are below %s again; %s is an empty placeholder now (no data, no children) and may be destroyed", aside, target, aside)})
	}
	return errors.Join(errs...)
}

// moveChildren renames every direct child of from to the same name below
// to, unless that name is taken, updating the run's view. It returns the
// children it could not move (with why); err is a failed listing.
func (d *datasetRun) moveChildren(ctx context.Context, from, to string) (left []string, err error) {
	kids, err := d.dst.List(ctx, []string{from}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Filesystem, zfs.Volume}})
	if err != nil {
		return nil, fmt.Errorf("list the children of %s: %w", from, err)
	}
	// what to holds now (the run's listing predates the renames)
	present, err := d.dst.List(ctx, []string{to}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Filesystem, zfs.Volume}})
	if err != nil {
		return nil, fmt.Errorf("list the children of %s: %w", to, err)
	}
	taken := map[string]bool{}
	for _, e := range present {
		taken[e.Name] = true
	}
	for _, k := range kids {
		if k.Name == from || parentOf(k.Name) != from {
			continue
		}
		dest := to + k.Name[len(from):]
		if taken[dest] {
			left = append(left, fmt.Sprintf("%s (%s exists)", k.Name, dest))
			continue
		}
		if err := d.dst.Rename(ctx, k.Name, dest); err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", k.Name, err))
			continue
		}
		taken[dest] = true
		d.moveInMaps(k.Name, dest)
	}
	return left, nil
}

// moveInMaps renames dataset from (and its descendants) to to in the run's
// view of the target, so children planned later see where they are now.
func (d *datasetRun) moveInMaps(from, to string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rename := func(name string) string {
		if name == from || strings.HasPrefix(name, from+"/") || strings.HasPrefix(name, from+"@") || strings.HasPrefix(name, from+"#") {
			return to + name[len(from):]
		}
		return name
	}
	for ds, e := range d.dstInfo {
		if n := rename(ds); n != ds {
			delete(d.dstInfo, ds)
			e.Name = n
			d.dstInfo[n] = e
		}
	}
	for ds, es := range d.byTarget {
		if n := rename(ds); n != ds {
			delete(d.byTarget, ds)
			moved := make([]zfs.Entry, len(es))
			for i, e := range es {
				e.Name = rename(e.Name)
				moved[i] = e
			}
			d.byTarget[n] = moved
		}
	}
}

// housekeeping reconciles after the data path succeeded. A failure here
// leaves the data safe (the next run repairs abstractions idempotently), so
// it is a warning on the dataset, never a failure that would skip its
// children.
func (d *datasetRun) housekeeping(ctx context.Context) {
	k := d.kept
	if k == nil {
		return
	}
	var l *finishListing
	if d.keptSrc != nil {
		l = &finishListing{src: d.keptSrc}
	}
	if err := d.reconcile(ctx, k.tid, k.target, k.to.GUID, false, l); err != nil {
		d.warn(k.target, err)
	}
}

// finishListing is what the level's listings after the data found of one
// dataset: the source's snapshots and bookmarks, the target's snapshots.
// A nil *finishListing means that those listings failed: finish lists the
// dataset itself.
type finishListing struct {
	src, dst []zfs.Entry
}

// finish verifies a dataset whose steps succeeded (the target's newest
// snapshot must be the last step's To) and reconciles it there: the
// last-received hold and the cursor move to it, the step holds are
// released, and the old cursor and hold go. A failed verification fails
// the dataset (its children are skipped); the step holds stay until a run
// verifies.
func (d *datasetRun) finish(ctx context.Context, l *finishListing) {
	p := d.pending
	if p == nil {
		return
	}
	d.pending = nil
	if l == nil {
		dst, err := d.dst.List(ctx, []string{p.target}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
		if err != nil {
			d.failAfter(fmt.Errorf("verify: list %s (the data was received; the next run verifies and reconciles it, and this run's step holds stay until then): %w", p.target, err))
			return
		}
		l = &finishListing{dst: dst}
	}
	if err := p.verify(l.dst); err != nil {
		d.failAfter(err)
		return
	}
	if l.src == nil {
		src, err := d.src.List(ctx, []string{d.source}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot, zfs.Bookmark}})
		if err != nil {
			d.failAfter(fmt.Errorf("the target has %s, but its cursor and holds were not moved (the next run does it; this run's step holds stay until then): list %s: %w", p.to.Name, d.source, err))
			return
		}
		l.src = src
	}
	err := d.reconcile(ctx, p.tid, p.target, p.to.GUID, true, l)
	var move *moveError
	switch {
	case errors.As(err, &move):
		d.failAfter(fmt.Errorf("the target has %s, but %w (the next run tries again, and this run's step holds stay until then; if this repeats, check that zsync may bookmark, hold and release on both sides, see zfs allow)", p.to.Name, err))
	case err != nil:
		d.warn(p.target, err)
	}
}

// verify checks that the newest snapshot among the target's snapshots dst
// is the last step's To.
func (p *pendingFinish) verify(dst []zfs.Entry) error {
	var newest *zfs.Entry
	for i := range dst {
		if dst[i].Type == zfs.Snapshot && (newest == nil || dst[i].CreateTXG > newest.CreateTXG) {
			newest = &dst[i]
		}
	}
	if newest == nil || newest.GUID != p.to.GUID {
		have := "nothing"
		if newest != nil {
			have = fmt.Sprintf("%s (guid %016x)", newest.Name, newest.GUID)
		}
		return fmt.Errorf("verify: the target's newest snapshot is %s, want guid %016x of %s", have, p.to.GUID, p.to.Name)
	}
	return nil
}

// failAfter fails a dataset whose data was received, keeping an earlier
// failure of the run (such as moving a placeholder's children back).
func (d *datasetRun) failAfter(err error) {
	if d.res.Status == StatusFailed && d.res.Err != nil {
		err = errors.Join(d.res.Err, err)
	}
	d.fail(err)
}

func (d *datasetRun) warn(target string, err error) {
	d.res.Warnings = append(d.res.Warnings, err.Error())
	d.job.emit(Event{Dataset: d.source, Target: target, Kind: "warning", Message: err.Error()})
}

func snapshotsOnly(es []zfs.Entry) []zfs.Entry {
	var out []zfs.Entry
	for _, e := range es {
		if e.Type == zfs.Snapshot {
			out = append(out, e)
		}
	}
	return out
}

// decodeToken decodes the target's resume token. A token proven corrupt
// (zfs cannot decode it), or one that names another dataset, is returned as
// nil with the reason to abort it. Any other failure (a dropped connection,
// a timeout, a refusal) is an error: the partial receive may still be good,
// so it is kept for the next run.
func (d *datasetRun) decodeToken(ctx context.Context, t zfs.Entry) (*zfs.ResumeToken, string, error) {
	if t.ResumeToken == "" {
		return nil, "", nil
	}
	tok, err := d.dst.DecodeResumeToken(ctx, t.ResumeToken)
	if errors.Is(err, zfs.ErrResumeTokenCorrupt) || errors.Is(err, zfs.ErrResumeTokenStale) {
		return nil, fmt.Sprintf("its resume token cannot be decoded (%v)", err), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("decode the resume token of %s (the partial receive is kept): %w", t.Name, err)
	}
	if tok.ToName != "" {
		if ds, _, _ := zfs.SplitName(tok.ToName); ds != d.source {
			// the same snapshot GUID under another name is still fine for
			// the planner; a token for another dataset is not
			found := false
			for _, v := range d.srcVersions {
				if v.GUID == tok.ToGUID {
					found = true
				}
			}
			if !found {
				return nil, fmt.Sprintf("its resume token is for %s, not %s", tok.ToName, d.source), nil
			}
		}
	}
	return &tok, "", nil
}

// checkPlainIntoEncrypted refuses to store an encrypted dataset's data
// decrypted below an unencrypted target unless raw = "never" was chosen
// explicitly (then the caller has decided; we only get here with RawNever).
func (d *datasetRun) checkPlainIntoEncrypted(target string) error {
	if d.job.Raw == RawNever {
		return nil
	}
	return fmt.Errorf("%s is encrypted but would be sent decrypted into %s; set raw = \"auto\" (default) or \"never\" explicitly", d.source, target)
}

// ensureParents creates the missing datasets between the target root and
// target as placeholders (not mounted, encryption inherited), parents first.
func (d *datasetRun) ensureParents(ctx context.Context, target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	existing := map[string]bool{}
	for n := range d.dstInfo {
		existing[n] = true
	}
	existing[d.job.TargetRoot] = true
	for _, p := range Placeholders(d.job.TargetRoot, []string{target}, existing) {
		err := d.dst.Create(ctx, p, placeholderProps(p, zfs.Filesystem), false)
		if errors.Is(err, zfs.ErrExists) {
			continue // made meanwhile by someone else: not ours to call a placeholder
		}
		if err != nil {
			return fmt.Errorf("create placeholder %s: %w", p, err)
		}
		d.dstInfo[p] = zfs.Entry{Name: p, Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: p}}
		d.job.emit(Event{Dataset: d.source, Target: p, Kind: "placeholder", Message: "created placeholder " + p})
	}
	return nil
}

// rotate renames a diverged target aside (nothing is destroyed) and drops
// zsync's last-received holds on the renamed copy, which no longer belongs
// to the relationship.
func (d *datasetRun) rotate(ctx context.Context, tid TargetID, target, rotated string, t zfs.Entry) error {
	if t.ResumeToken != "" {
		if err := d.dst.AbortReceive(ctx, target); err != nil {
			return fmt.Errorf("abort partial receive before rotating %s: %w", target, err)
		}
	}
	if err := d.dst.Rename(ctx, target, rotated); err != nil {
		return fmt.Errorf("rotate %s to %s: %w", target, rotated, err)
	}
	// The whole subtree moved. This relationship's last-received holds now
	// sit on the rotated copy, which belongs to no relationship any more.
	// The children's entries follow them in the run's view; rotated children
	// come back below the fresh replica after its receive (rotateBack).
	held := map[string][]string{} // tag -> snapshots in the rotated copy
	d.mu.Lock()
	for _, e := range d.byTarget[target] {
		if e.Type != zfs.Snapshot {
			continue
		}
		for _, tag := range d.lastTags(tid) {
			if slices.Contains(d.dstHolds[e.Name], tag) {
				held[tag] = append(held[tag], rotated+"@"+e.Short())
			}
		}
	}
	d.mu.Unlock()
	d.moveInMaps(target, rotated)
	for _, tag := range slices.Sorted(maps.Keys(held)) {
		if err := d.dst.Release(ctx, tag, held[tag]); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("release holds on rotated %s: %w", rotated, err)
		}
	}
	return nil
}

// rotateBack moves the children of the rotated copy (they did not diverge;
// a child that did is rotated in its own turn) back below the fresh replica
// target, so they go on incrementally, other jobs' replicas below a shared
// root included. A child that cannot be moved (OpenZFS refuses to move an
// encrypted dataset that inherits its key to another encryption root)
// stays in the rotated copy and is received afresh: its zsync last-received
// holds there are released, as they belong to no relationship any more.
func (d *datasetRun) rotateBack(ctx context.Context, target, rotated string) {
	left, err := d.moveChildren(ctx, rotated, target)
	if err != nil {
		d.warn(target, err)
	}
	if len(left) > 0 {
		d.job.emit(Event{Dataset: d.source, Target: target, Kind: "rotate", Message: fmt.Sprintf("children stay in the rotated %s and are replicated afresh: %s", rotated, strings.Join(left, "; "))})
	}
	held := map[string][]string{} // tag -> snapshots in the rotated copy
	d.mu.Lock()
	for ds, es := range d.byTarget {
		if !zfs.IsDescendant(ds, rotated) || ds == rotated {
			continue
		}
		orig := target + ds[len(rotated):]
		for _, e := range es {
			if e.Type != zfs.Snapshot {
				continue
			}
			for _, tag := range d.lastTags(d.job.relationID(d.rootTID, orig)) {
				if slices.Contains(d.dstHolds[orig+"@"+e.Short()], tag) {
					held[tag] = append(held[tag], e.Name)
				}
			}
		}
	}
	d.mu.Unlock()
	for _, tag := range slices.Sorted(maps.Keys(held)) {
		if err := d.dst.Release(ctx, tag, held[tag]); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			d.warn(target, fmt.Errorf("release holds in the rotated %s: %w", rotated, err))
		}
	}
}

// lastTags are the tags a last-received hold of relationship tid may
// carry: the root's (placed now) and the relationship's own (placed by
// zsync before per-root tags, still honoured and released).
func (d *datasetRun) lastTags(tid TargetID) []string {
	return []string{RootLastReceivedHoldTag(d.rootTID), LastReceivedHoldTag(tid)}
}

func (d *datasetRun) dryRun(ctx context.Context, plan Plan, raw bool, target string) {
	d.res.Status = StatusPlanned
	for _, s := range plan.Steps {
		var size int64
		if o, err := sendOptions(s, raw); err == nil {
			if v, err := o.Validate(); err == nil {
				if n, err := d.src.SendSize(ctx, v); err == nil {
					size = n
				}
			}
		}
		st := s
		d.res.Steps = append(d.res.Steps, s.String())
		d.res.Bytes += size
		d.job.emit(Event{Dataset: d.source, Target: target, Kind: "dry-run", Step: &st, Total: size, Message: "would send " + s.String() + " to " + target})
	}
	if len(plan.Steps) == 0 {
		d.res.Status = StatusUpToDate
	}
}

func sendOptions(s Step, raw bool) (zfs.SendOptions, error) {
	if s.ResumeToken != "" {
		return zfs.SendOptions{ResumeToken: s.ResumeToken}, nil
	}
	o := zfs.SendOptions{To: s.To.Name, From: s.From.Name, Intermediates: s.Intermediates, Raw: raw, LargeBlocks: true}
	if !raw {
		o.Compressed, o.EmbeddedData = true, true
	}
	return o, nil
}

// recvOptions are the receive-side safe defaults: resumable, not mounted,
// filesystems canmount=noauto and never the sender's mountpoint, volumes
// volmode=none; then the job's overrides and exclusions.
func (d *datasetRun) recvOptions(target string, force bool) zfs.RecvOptions {
	o := zfs.RecvOptions{Target: target, Resumable: true, NoMount: true, Force: force, Set: map[string]string{}}
	if d.srcInfo.Type == zfs.Volume {
		o.Set["volmode"] = "none"
	} else {
		o.Set["canmount"] = "noauto"
		o.Exclude = append(o.Exclude, "mountpoint")
	}
	for k, v := range d.job.PropsOverride {
		o.Set[k] = v
	}
	for _, k := range d.job.PropsExclude {
		if !slices.Contains(o.Exclude, k) {
			o.Exclude = append(o.Exclude, k)
		}
	}
	if d.stepRoot != "" {
		o.Set[OwnerProperty] = OwnerValue(d.stepRoot, target)
		o.Exclude = slices.DeleteFunc(o.Exclude, func(k string) bool { return k == OwnerProperty })
	}
	return o
}

// step runs the data part of one step: protect (step holds or tentative
// cursors), then send | receive. Verifying the received GUID, moving the
// cursor and the last-received hold and releasing the step holds follow
// for all the dataset's steps at once, after its level's data (finish).
// Every transition tolerates having been done already, so a run killed
// anywhere is repaired by the next one.
func (d *datasetRun) step(ctx context.Context, s Step, tid TargetID, target string, raw, force bool) (int64, error) {
	j := d.job
	level := j.Protection
	// Everything the step may deliver to the target (with -I that is every
	// snapshot after From up to To, each committed on the target as it
	// arrives) stays protected on the source until the cursor passes it:
	// a step killed anywhere must find its base again, whatever prune runs
	// in between.
	delivered := d.delivers(s)
	var stepSnaps []string
	if level == ProtectionResumability {
		if s.From.Type == zfs.Snapshot {
			stepSnaps = append(stepSnaps, s.From.Name)
		}
		for _, e := range delivered {
			stepSnaps = append(stepSnaps, e.Name)
		}
		// not d.srcHolds: that listing predates this run's steps, whose
		// holds stay until finish; a snapshot an earlier step held (its
		// To is this step's From) is not held again
		stepSnaps = slices.DeleteFunc(stepSnaps, func(s string) bool { return slices.Contains(d.stepHeld, s) })
		if err := d.hold(ctx, d.src, RootStepHoldTag(d.stepRoot), stepSnaps, nil); err != nil {
			return 0, fmt.Errorf("step hold: %w", err)
		}
		d.stepHeld = append(d.stepHeld, stepSnaps...)
	} else if level.Allows(Tentative) {
		marks := delivered
		if s.From.Type == zfs.Snapshot {
			// the base too: it may have no cursor of this relationship yet
			// (the first run after protection = "nothing", a lost cursor)
			marks = append([]zfs.Entry{s.From}, delivered...)
		}
		for _, e := range marks {
			bm := d.source + "#" + TentativeName(tid, e.GUID)
			if err := d.src.Bookmark(ctx, e.Name, bm); err != nil && !errors.Is(err, zfs.ErrExists) {
				return 0, fmt.Errorf("tentative cursor: %w", err)
			}
		}
	}

	so, _ := sendOptions(s, raw)
	v, err := so.Validate()
	if err != nil {
		return 0, err
	}
	var total int64
	if j.EstimateSizes {
		if n, err := d.src.SendSize(ctx, v); err == nil {
			total = n
		}
	}
	st := s
	j.emit(Event{Dataset: d.source, Target: target, Kind: "step", Step: &st, Total: total, Message: "sending " + s.String() + " to " + target})
	ended := func(n int64, err error) {
		t := total
		if err == nil {
			t = n
		}
		j.emit(Event{Dataset: d.source, Target: target, Kind: "progress", Step: &st, Bytes: n, Total: t, Done: true, Err: err})
	}
	stream, err := d.src.Send(ctx, v)
	if err != nil {
		err = fmt.Errorf("send: %w", err)
		ended(0, err)
		return 0, err
	}
	pr := &progressReader{r: stream, emit: func(n int64) {
		j.emit(Event{Dataset: d.source, Target: target, Kind: "progress", Step: &st, Bytes: n, Total: total})
	}}
	recvErr := d.dst.Receive(ctx, d.recvOptions(target, force), pr.feed())
	sendErr := stream.Close()
	if recvErr != nil {
		err := fmt.Errorf("receive into %s: %w", target, recvErr)
		if sendErr != nil && !errors.Is(recvErr, zfs.ErrDestinationModified) && pr.n == 0 {
			err = fmt.Errorf("send: %w (receive: %v)", sendErr, recvErr)
		}
		ended(pr.n, err)
		return pr.n, err
	}
	ended(pr.n, nil)
	// The target's last-received hold, the cursor and the release of the
	// step holds follow after the level's data (finish), from one listing
	// per side: until then the old hold and cursor keep the relationship's
	// base, and the step holds what this step delivered.
	return pr.n, nil
}

// delivers returns the sender snapshots that step s may leave on the
// target, oldest first: To, and with -I every snapshot between From and To.
// A resumed step delivers only To (the token's stream).
func (d *datasetRun) delivers(s Step) []zfs.Entry {
	if !s.Intermediates || s.ResumeToken != "" {
		return []zfs.Entry{s.To}
	}
	var out []zfs.Entry
	for _, e := range d.srcVersions {
		if e.Type == zfs.Snapshot && e.CreateTXG > s.From.CreateTXG && e.CreateTXG < s.To.CreateTXG {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, compareVersions)
	return append(out, s.To)
}

// hold places tag on the snapshots that do not carry it yet (known from the
// listing, when given); a hold that exists already is success.
func (d *datasetRun) hold(ctx context.Context, e Endpoint, tag string, snaps []string, known map[string][]string) error {
	var todo []string
	for _, s := range snaps {
		if known == nil || !slices.Contains(known[s], tag) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	err := e.Hold(ctx, tag, todo)
	if errors.Is(err, zfs.ErrHoldExists) {
		// some had it already; hold the rest one by one
		for _, s := range todo {
			if err := e.Hold(ctx, tag, []string{s}); err != nil && !errors.Is(err, zfs.ErrHoldExists) {
				return err
			}
		}
		return nil
	}
	return err
}

// reconcile makes the abstractions of (dataset, target) exactly what the
// protection level wants, with cursorGUID the snapshot the target confirmed:
// it creates a missing cursor and last-received hold (after steps, and
// repairing a run killed between steps), then destroys and releases every
// stale one in batches, this run's step holds among them. fresh means
// steps ran: l holds both sides as they are now (l nil: list them);
// otherwise the run's first listing is used, with the source's from l
// where l is given (the cursor keepUp made added).
func (d *datasetRun) reconcile(ctx context.Context, tid TargetID, target string, cursorGUID uint64, fresh bool, l *finishListing) error {
	if tid == "" || cursorGUID == 0 {
		return nil
	}
	level := d.job.Protection
	srcEntries, srcHolds := d.srcVersions, d.srcHolds
	d.mu.Lock()
	dstEntries, dstHolds := d.byTarget[target], d.dstHolds
	d.mu.Unlock()
	if fresh {
		// Both sides as they are now. The holds are known without asking:
		// the run's first listing had them, and this run's steps changed
		// only its own (step holds placed; the target's holds are changed
		// only below). A snapshot whose hold count disagrees with that
		// (someone else held or released meanwhile) is asked for.
		if l == nil {
			es, err := d.src.List(ctx, []string{d.source}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot, zfs.Bookmark}})
			if err != nil {
				return fmt.Errorf("reconcile: list %s: %w", d.source, err)
			}
			ts, err := d.dst.List(ctx, []string{target}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
			if err != nil {
				return fmt.Errorf("reconcile: list %s: %w", target, err)
			}
			l = &finishListing{src: es, dst: ts}
		}
		stepTag := RootStepHoldTag(d.stepRoot)
		srcStart, dstStart := srcHolds, dstHolds
		var err error
		if srcHolds, err = holdsNow(ctx, d.src, l.src, func(snap string) []string {
			tags := srcStart[snap]
			if slices.Contains(d.stepHeld, snap) && !slices.Contains(tags, stepTag) {
				tags = append(slices.Clone(tags), stepTag)
			}
			return tags
		}); err != nil {
			return fmt.Errorf("reconcile: holds of %s: %w", d.source, err)
		}
		if dstHolds, err = holdsNow(ctx, d.dst, l.dst, func(snap string) []string { return dstStart[snap] }); err != nil {
			return fmt.Errorf("reconcile: holds of %s: %w", target, err)
		}
		srcEntries, dstEntries = l.src, l.dst
	} else if l != nil && l.src != nil {
		srcEntries = l.src
	}
	abs, foreign := ListAbstractionsWith(srcEntries, srcHolds, d.resolve)
	for _, f := range foreign {
		d.job.emit(Event{Dataset: d.source, Kind: "reconcile", Message: "ignoring a zsync-looking name that does not check out (renamed or tinkered with?): " + f})
	}
	// New before old, both sides first: the cursor at cursorGUID, then the
	// target's last-received hold on it; only then does anything older go.
	// These two and the release of the step holds are what moves the
	// relationship on: their failure is returned as a *moveError.
	if level.Allows(Cursor) && !hasAbstraction(abs, tid, Cursor, cursorGUID) {
		if from := versionWithGUID(srcEntries, cursorGUID); from != nil {
			bm := d.source + "#" + CursorName(tid, cursorGUID)
			err := d.src.Bookmark(ctx, from.Name, bm)
			if errors.Is(err, zfs.ErrExists) {
				// made meanwhile, or a copy under the name (which the
				// listing found foreign): only the right guid counts
				err = checkGUID(ctx, d.src, bm, cursorGUID)
			}
			if err != nil {
				return &moveError{fmt.Errorf("create cursor %s: %w", bm, err)}
			}
			abs = append(abs, Abstraction{Kind: Cursor, Name: bm, Target: tid, GUID: cursorGUID, CreateTXG: from.CreateTXG})
		}
	}
	tabs, _ := ListAbstractions(dstEntries, dstHolds)
	lastTag := RootLastReceivedHoldTag(d.rootTID)
	if level.Allows(LastReceivedHold) && !hasAbstraction(tabs, tid, LastReceivedHold, cursorGUID) {
		if snap := versionWithGUID(snapshotsOnly(dstEntries), cursorGUID); snap != nil {
			if !d.lastHeld {
				if err := d.hold(ctx, d.dst, lastTag, []string{snap.Name}, nil); err != nil {
					return &moveError{fmt.Errorf("last-received hold on %s: %w", snap.Name, err)}
				}
			}
			tabs = append(tabs, Abstraction{Kind: LastReceivedHold, Name: snap.Name, Tag: lastTag, Target: tid, GUID: cursorGUID, CreateTXG: snap.CreateTXG})
		}
	}
	var bookmarks []string
	releases := map[string][]string{}
	for _, a := range Stale(tid, level, d.source, abs, cursorGUID, nil) {
		if a.Kind.IsHold() {
			releases[a.Tag] = append(releases[a.Tag], a.Name)
		} else {
			bookmarks = append(bookmarks, a.Name)
		}
	}
	if fresh && d.batch != nil {
		// the level releases them, in one call per pool and tag, after
		// every dataset of it has its new cursor and hold
		d.batch.add(d, true, releases)
	} else {
		for _, tag := range slices.Sorted(maps.Keys(releases)) {
			if err := d.src.Release(ctx, tag, releases[tag]); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
				return &moveError{fmt.Errorf("release %s: %w", tag, err)}
			}
		}
	}
	if fresh && d.batch != nil {
		// with the level's releases, in one call
		d.batch.addBookmarks(d, bookmarks)
	} else if len(bookmarks) > 0 {
		if err := d.src.DestroyBookmarks(ctx, bookmarks); err != nil {
			return fmt.Errorf("reconcile: destroy stale bookmarks: %w", err)
		}
	}
	rel := map[string][]string{}
	for _, a := range StaleTarget(tid, level, target, tabs, cursorGUID) {
		rel[a.Tag] = append(rel[a.Tag], a.Name)
	}
	if fresh && d.batch != nil {
		d.batch.add(d, false, rel)
		return nil
	}
	for _, tag := range slices.Sorted(maps.Keys(rel)) {
		if err := d.dst.Release(ctx, tag, rel[tag]); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("reconcile: release old last-received holds: %w", err)
		}
	}
	return nil
}

// checkGUID reports an error unless the bookmark name exists with guid.
func checkGUID(ctx context.Context, e Endpoint, name string, guid uint64) error {
	props, err := e.Get(ctx, []string{name}, []string{"guid"})
	if err != nil {
		return fmt.Errorf("it exists, and its guid cannot be read: %w", err)
	}
	if v := props[name]["guid"]; v != strconv.FormatUint(guid, 10) {
		return fmt.Errorf("a bookmark of that name exists with guid %s, not %d (a copy or tinkering: destroy or rename it; the old cursor is kept until then)", v, guid)
	}
	return nil
}

// moveError is a failure of reconcile to move a relationship on: to create
// its new cursor, place its new last-received hold, or release its step
// holds. After steps that fails the dataset (see finish): left alone, every
// run would add step holds that are never released.
type moveError struct{ err error }

func (e *moveError) Error() string { return "reconcile: " + e.err.Error() }
func (e *moveError) Unwrap() error { return e.err }

func hasAbstraction(abs []Abstraction, tid TargetID, k AbstractionKind, guid uint64) bool {
	for _, a := range abs {
		if a.Target == tid && a.Kind == k && a.GUID == guid {
			return true
		}
	}
	return false
}

// versionWithGUID returns the snapshot with guid (preferred) or else the
// bookmark with guid.
func versionWithGUID(es []zfs.Entry, guid uint64) *zfs.Entry {
	var bm *zfs.Entry
	for i := range es {
		if es[i].GUID != guid {
			continue
		}
		if es[i].Type == zfs.Snapshot {
			return &es[i]
		}
		if es[i].Type == zfs.Bookmark && bm == nil && !strings.Contains(es[i].Short(), "zsync_tentative") {
			bm = &es[i]
		}
	}
	return bm
}

// holdsNow returns the tags held on the listed snapshots: known(snapshot)
// where the listing's hold count (userrefs) agrees with it, and otherwise
// what e says, asked in one call for all that disagree.
func holdsNow(ctx context.Context, e Endpoint, list []zfs.Entry, known func(string) []string) (map[string][]string, error) {
	out := map[string][]string{}
	var ask []zfs.Entry
	for _, x := range list {
		if x.Type != zfs.Snapshot {
			continue
		}
		tags := known(x.Name)
		if uint64(len(tags)) != x.UserRefs {
			ask = append(ask, x)
			continue
		}
		if len(tags) > 0 {
			out[x.Name] = tags
		}
	}
	asked, err := HoldsOf(ctx, e, ask)
	if err != nil {
		return nil, err
	}
	maps.Copy(out, asked)
	return out, nil
}

// progressReader counts bytes and reports about every 4 MiB.
type progressReader struct {
	r    io.Reader
	n    int64
	last int64
	emit func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.count(n)
	return n, err
}

func (p *progressReader) count(n int) {
	p.n += int64(n)
	if p.n-p.last >= 4<<20 {
		p.last = p.n
		p.emit(p.n)
	}
}

// feed is what the receive reads: p itself, or, when the stream can write
// itself out (the SSH transport's send stream hands each frame's payload
// to the writer), p with that WriteTo, so that io.Copy into zfs recv skips
// the copy through its own buffer.
func (p *progressReader) feed() io.Reader {
	if _, ok := p.r.(io.WriterTo); ok {
		return progressWriterTo{p}
	}
	return p
}

type progressWriterTo struct{ *progressReader }

func (p progressWriterTo) WriteTo(w io.Writer) (int64, error) {
	return p.r.(io.WriterTo).WriteTo(progressWriter{w: w, p: p.progressReader})
}

// progressWriter counts what its stream writes to w.
type progressWriter struct {
	w io.Writer
	p *progressReader
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.count(n)
	return n, err
}
