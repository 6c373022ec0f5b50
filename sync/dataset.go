package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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

	source      string
	srcInfo     zfs.Entry
	srcVersions []zfs.Entry
	srcHolds    map[string][]string // read-only, shared
	dstHolds    map[string][]string // read-only, shared

	mu       *stdsync.Mutex // guards dstInfo and byTarget
	dstInfo  map[string]zfs.Entry
	byTarget map[string][]zfs.Entry
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

func (d *datasetRun) run(ctx context.Context) {
	j := d.job
	target, err := j.Map(d.source)
	if err != nil {
		d.fail(err)
		return
	}
	d.res.Target = target
	tid := j.relationID(d.rootTID, target)
	raw := d.raw()
	if d.srcInfo.Encrypted() && !raw {
		if err := d.checkPlainIntoEncrypted(target); err != nil {
			d.fail(err)
			return
		}
	}

	d.mu.Lock()
	tinfo, exists := d.dstInfo[target]
	recv := snapshotsOnly(d.byTarget[target])
	d.mu.Unlock()
	if exists && tinfo.ResumeToken != "" {
		recv = append(recv, tinfo) // the planner takes the token text from here
	}

	tok, tokReason := d.decodeToken(ctx, tinfo)
	opts := PlanOptions{Initial: j.Initial, SnapshotFilter: j.SnapshotFilter, Raw: raw}
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
				return
			}
			d.res.Rotated = rotated
			exists, recv, tok = false, nil, nil
		}
		plan, err = PlanDataset(d.srcVersions, nil, nil, opts)
	}
	if err != nil {
		d.fail(err)
		return
	}
	if plan.AbortResume && exists && tinfo.ResumeToken != "" {
		d.res.AbortedResume = plan.AbortReason
		j.emit(Event{Dataset: d.source, Target: target, Kind: "abort-resume", Message: "aborting the partial receive on " + target + ": " + plan.AbortReason})
		if !j.DryRun {
			if err := d.dst.AbortReceive(ctx, target); err != nil {
				d.fail(fmt.Errorf("abort stale partial receive on %s: %w", target, err))
				return
			}
		}
	}

	if j.DryRun {
		d.dryRun(ctx, plan, raw, target)
		return
	}
	if len(plan.Steps) == 0 {
		d.res.Status = StatusUpToDate
		var base uint64
		if plan.Base != nil {
			base = plan.Base.GUID
			d.res.Last = *plan.Base
		}
		if err := d.reconcile(ctx, tid, target, base, false); err != nil {
			d.fail(err)
		}
		return
	}
	force := false
	if exists && IsPlaceholder(tinfo) && len(recv) == 0 {
		force = true // a placeholder we created: a full receive replaces it (zrepl does the same)
	}
	if !exists {
		if err := d.ensureParents(ctx, target); err != nil {
			d.fail(err)
			return
		}
	}
	var last Step
	for _, s := range plan.Steps {
		n, err := d.step(ctx, s, tid, target, raw, force && s.Full())
		d.res.Bytes += n
		if err != nil {
			d.fail(fmt.Errorf("%s: %w", s, err))
			return
		}
		d.res.Steps = append(d.res.Steps, s.String())
		last = s
		d.res.Last = s.To
	}
	d.res.Status = StatusReplicated
	if err := d.reconcile(ctx, tid, target, last.To.GUID, true); err != nil {
		d.fail(err)
	}
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

// decodeToken decodes the target's resume token. A token that cannot be
// decoded, or that names another dataset, is returned as nil with the reason
// to abort it.
func (d *datasetRun) decodeToken(ctx context.Context, t zfs.Entry) (*zfs.ResumeToken, string) {
	if t.ResumeToken == "" {
		return nil, ""
	}
	tok, err := d.dst.DecodeResumeToken(ctx, t.ResumeToken)
	if err != nil {
		return nil, fmt.Sprintf("its resume token cannot be decoded (%v)", err)
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
				return nil, fmt.Sprintf("its resume token is for %s, not %s", tok.ToName, d.source)
			}
		}
	}
	return &tok, ""
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
		if err := d.dst.Create(ctx, p, placeholderProps(p, zfs.Filesystem), false); err != nil && !errors.Is(err, zfs.ErrExists) {
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
	tag := LastReceivedHoldTag(tid)
	var held []string
	d.mu.Lock()
	for _, e := range d.byTarget[target] {
		if slices.Contains(d.dstHolds[e.Name], tag) {
			held = append(held, rotated+"@"+e.Short())
		}
	}
	d.mu.Unlock()
	if len(held) > 0 {
		if err := d.dst.Release(ctx, tag, held); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("release holds on rotated %s: %w", rotated, err)
		}
	}
	return nil
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
	return o
}

// step runs one step's lifecycle: protect (step holds or tentative cursor),
// send | receive, verify the received GUID, move the last-received hold (new
// before old), move the cursor (new before old; old ones go in reconcile),
// release the step holds. Every transition tolerates having been done
// already, so a run killed anywhere is repaired by the next one.
func (d *datasetRun) step(ctx context.Context, s Step, tid TargetID, target string, raw, force bool) (int64, error) {
	j := d.job
	level := j.Protection
	var stepSnaps []string
	if level == ProtectionResumability {
		stepSnaps = append(stepSnaps, s.To.Name)
		if s.From.Type == zfs.Snapshot {
			stepSnaps = append(stepSnaps, s.From.Name)
		}
		if err := d.hold(ctx, d.src, StepHoldTag(tid), stepSnaps, d.srcHolds); err != nil {
			return 0, fmt.Errorf("step hold: %w", err)
		}
	} else if level.Allows(Tentative) && s.From.Type == zfs.Snapshot {
		bm := d.source + "#" + TentativeName(tid, s.From.GUID)
		if err := d.src.Bookmark(ctx, s.From.Name, bm); err != nil && !errors.Is(err, zfs.ErrExists) {
			return 0, fmt.Errorf("tentative cursor: %w", err)
		}
	}

	so, _ := sendOptions(s, raw)
	v, err := so.Validate()
	if err != nil {
		return 0, err
	}
	var total int64
	if j.Events != nil {
		if n, err := d.src.SendSize(ctx, v); err == nil {
			total = n
		}
	}
	st := s
	j.emit(Event{Dataset: d.source, Target: target, Kind: "step", Step: &st, Total: total, Message: "sending " + s.String() + " to " + target})
	stream, err := d.src.Send(ctx, v)
	if err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	pr := &progressReader{r: stream, emit: func(n int64) {
		j.emit(Event{Dataset: d.source, Target: target, Kind: "progress", Step: &st, Bytes: n, Total: total})
	}}
	recvErr := d.dst.Receive(ctx, d.recvOptions(target, force), pr)
	sendErr := stream.Close()
	if recvErr != nil {
		if sendErr != nil && !errors.Is(recvErr, zfs.ErrDestinationModified) && pr.n == 0 {
			return pr.n, fmt.Errorf("send: %w (receive: %v)", sendErr, recvErr)
		}
		return pr.n, fmt.Errorf("receive into %s: %w", target, recvErr)
	}
	j.emit(Event{Dataset: d.source, Target: target, Kind: "progress", Step: &st, Bytes: pr.n, Total: pr.n})

	// verify
	got, err := d.dst.List(ctx, []string{target}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
	if err != nil {
		return pr.n, fmt.Errorf("verify: list %s: %w", target, err)
	}
	var newest *zfs.Entry
	for i := range got {
		if got[i].Type == zfs.Snapshot && (newest == nil || got[i].CreateTXG > newest.CreateTXG) {
			newest = &got[i]
		}
	}
	if newest == nil || newest.GUID != s.To.GUID {
		have := "nothing"
		if newest != nil {
			have = fmt.Sprintf("%s (guid %016x)", newest.Name, newest.GUID)
		}
		return pr.n, fmt.Errorf("verify: the target's newest snapshot is %s, want guid %016x of %s", have, s.To.GUID, s.To.Name)
	}

	if level.Allows(LastReceivedHold) {
		if err := d.hold(ctx, d.dst, LastReceivedHoldTag(tid), []string{newest.Name}, nil); err != nil {
			return pr.n, fmt.Errorf("last-received hold: %w", err)
		}
	}
	if level.Allows(Cursor) {
		bm := d.source + "#" + CursorName(tid, s.To.GUID)
		if err := d.src.Bookmark(ctx, s.To.Name, bm); err != nil && !errors.Is(err, zfs.ErrExists) {
			return pr.n, fmt.Errorf("cursor: %w", err)
		}
	}
	if len(stepSnaps) > 0 {
		if err := d.src.Release(ctx, StepHoldTag(tid), stepSnaps); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return pr.n, fmt.Errorf("release step holds: %w", err)
		}
	}
	return pr.n, nil
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
// it creates a missing cursor and last-received hold (repairing a run killed
// between steps), then destroys and releases every stale one in batches.
// fresh re-lists both sides (after steps ran); otherwise the run's listing
// is used.
func (d *datasetRun) reconcile(ctx context.Context, tid TargetID, target string, cursorGUID uint64, fresh bool) error {
	if tid == "" || cursorGUID == 0 {
		return nil
	}
	level := d.job.Protection
	srcEntries, srcHolds := d.srcVersions, d.srcHolds
	d.mu.Lock()
	dstEntries, dstHolds := d.byTarget[target], d.dstHolds
	d.mu.Unlock()
	if fresh {
		var err error
		if srcEntries, srcHolds, err = listWithHolds(ctx, d.src, d.source); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		if dstEntries, dstHolds, err = listWithHolds(ctx, d.dst, target); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	abs, foreign := ListAbstractions(srcEntries, srcHolds)
	for _, f := range foreign {
		d.job.emit(Event{Dataset: d.source, Kind: "reconcile", Message: "ignoring a zsync-looking name that does not check out (renamed or tinkered with?): " + f})
	}
	// repair: the cursor at cursorGUID
	if level.Allows(Cursor) && !hasAbstraction(abs, tid, Cursor, cursorGUID) {
		if from := versionWithGUID(srcEntries, cursorGUID); from != nil {
			bm := d.source + "#" + CursorName(tid, cursorGUID)
			if err := d.src.Bookmark(ctx, from.Name, bm); err != nil && !errors.Is(err, zfs.ErrExists) {
				return fmt.Errorf("reconcile: create cursor %s: %w", bm, err)
			}
			abs = append(abs, Abstraction{Kind: Cursor, Name: bm, Target: tid, GUID: cursorGUID, CreateTXG: from.CreateTXG})
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
	if len(bookmarks) > 0 {
		if err := d.src.DestroyBookmarks(ctx, bookmarks); err != nil {
			return fmt.Errorf("reconcile: destroy stale bookmarks: %w", err)
		}
	}
	for tag, snaps := range releases {
		if err := d.src.Release(ctx, tag, snaps); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("reconcile: release %s: %w", tag, err)
		}
	}
	// target side: the last-received hold on the snapshot with cursorGUID
	tabs, _ := ListAbstractions(dstEntries, dstHolds)
	if level.Allows(LastReceivedHold) && !hasAbstraction(tabs, tid, LastReceivedHold, cursorGUID) {
		if snap := versionWithGUID(snapshotsOnly(dstEntries), cursorGUID); snap != nil {
			if err := d.hold(ctx, d.dst, LastReceivedHoldTag(tid), []string{snap.Name}, nil); err != nil {
				return fmt.Errorf("reconcile: last-received hold: %w", err)
			}
			tabs = append(tabs, Abstraction{Kind: LastReceivedHold, Name: snap.Name, Tag: LastReceivedHoldTag(tid), Target: tid, GUID: cursorGUID, CreateTXG: snap.CreateTXG})
		}
	}
	var rel []string
	for _, a := range StaleTarget(tid, level, target, tabs, cursorGUID) {
		rel = append(rel, a.Name)
	}
	if len(rel) > 0 {
		if err := d.dst.Release(ctx, LastReceivedHoldTag(tid), rel); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("reconcile: release old last-received holds: %w", err)
		}
	}
	return nil
}

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

// listWithHolds lists one dataset's snapshots and bookmarks and the holds of
// its held snapshots.
func listWithHolds(ctx context.Context, e Endpoint, dataset string) ([]zfs.Entry, map[string][]string, error) {
	es, err := e.List(ctx, []string{dataset}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot, zfs.Bookmark}})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", dataset, err)
	}
	h, err := HoldsOf(ctx, e, es)
	if err != nil {
		return nil, nil, fmt.Errorf("holds of %s: %w", dataset, err)
	}
	return es, h, nil
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
	p.n += int64(n)
	if p.n-p.last >= 4<<20 {
		p.last = p.n
		p.emit(p.n)
	}
	return n, err
}
