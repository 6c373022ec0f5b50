package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// follow is a replica that moves to follow its source's rename: the
// replica from holds the history of source (its newest snapshot is one of
// source's versions, by guid), the dataset the job's mapping sends to from
// is gone from the source, and source's own target to does not exist yet.
// Renaming from to to (with its children) lets source go on incrementally
// instead of being sent again in full beside its old replica.
type follow struct {
	source   string
	from, to string
	// orig is from's name when the run started (an earlier follow of the
	// run may have moved it): the relationship ids of its cursors are
	// derived from it.
	orig string
	// guid is the guid of from's newest snapshot, checked again before
	// anything is changed.
	guid uint64
}

// planFollows finds, parents first, the renames that follow renamed
// sources: for every selected source whose target does not exist, the one
// replica below the target root that it continues and that no source of
// the job claims any more. A rename planned for a parent moves its
// children in the view the children are planned against, so a moved
// subtree is one rename. It asks src only to tell whether a dataset the
// job would replicate into a candidate still exists outside the listing.
//
// It never picks: a replica that this mapping did not receive into
// (OwnerProperty: another job's or a one-off's below the same root, or one
// received before zsync marked its replicas), a rotated copy or a
// placeholder (set aside or not), a replica whose newest snapshot the
// source does not have (it diverged; the source is sent afresh as before),
// a replica whose old source still exists with a shared snapshot (a copy
// of a dataset made with zfs send shares its guids) or existed before that
// snapshot (a promoted clone took its snapshots), a replica outside the
// job's mapping, an encrypted replica that inherits its key and would
// move to another parent (OpenZFS refuses to move it to another encryption
// root), or a replica with children another source claims. Two candidates
// for one source follow neither (a warning says so). The renames are
// returned in the order they must be made.
func (j *Job) planFollows(ctx context.Context, src Endpoint, stepRoot TargetID, selected []string, srcInfo map[string]zfs.Entry, bySource map[string][]zfs.Entry, dstInfo map[string]zfs.Entry, byTarget map[string][]zfs.Entry) []follow {
	if j.Unmap == nil || j.Map == nil || stepRoot == "" {
		return nil
	}
	mapped := map[string]string{}
	var need []string
	for _, s := range selected {
		t, err := j.Map(s)
		if err != nil {
			continue
		}
		mapped[s] = t
		if _, ok := dstInfo[t]; !ok {
			need = append(need, s)
		}
	}
	if len(need) == 0 {
		return nil
	}
	// the view of the target as planned renames leave it, and the name
	// each dataset of it had when the run started
	view := maps.Clone(dstInfo)
	origin := map[string]string{}
	for n := range view {
		origin[n] = n
	}
	snaps := map[string][]zfs.Entry{}
	for ds, es := range byTarget {
		if s := snapshotsOnly(es); len(s) > 0 {
			snaps[ds] = s
		}
	}
	move := func(from, to string) {
		for _, n := range slices.Collect(maps.Keys(view)) {
			if zfs.IsDescendant(n, from) {
				e, o := view[n], origin[n]
				delete(view, n)
				delete(origin, n)
				e.Name = to + n[len(from):]
				view[e.Name], origin[e.Name] = e, o
			}
		}
		for _, n := range slices.Collect(maps.Keys(snaps)) {
			if zfs.IsDescendant(n, from) {
				es := snaps[n]
				delete(snaps, n)
				snaps[to+n[len(from):]] = es
			}
		}
	}
	guids := func(es []zfs.Entry) map[uint64]bool {
		g := map[uint64]bool{}
		for _, e := range es {
			if e.GUID != 0 && (e.Type == zfs.Snapshot || e.Type == zfs.Bookmark) {
				g[e.GUID] = true
			}
		}
		return g
	}
	shares := func(source string, target []zfs.Entry) bool {
		g := guids(bySource[source])
		for _, e := range target {
			if g[e.GUID] {
				return true
			}
		}
		return false
	}
	// orphan: the job maps some source name to r (r is in its image), and
	// every such source is gone, or is another dataset now: no shared
	// snapshot, and created after r's newest snapshot (a name reused; a
	// promoted clone's origin existed before)
	orphan := func(r string) (bool, string) {
		found := false
		for _, c := range j.Unmap(r) {
			if t, err := j.Map(c); err != nil || t != r {
				continue
			}
			found = true
			if info, ok := srcInfo[c]; ok {
				if shares(c, snaps[r]) {
					return false, c + " still replicates into it"
				}
				if ss := snaps[r]; len(ss) == 0 || info.CreateTXG == 0 || info.CreateTXG <= sourceTXG(bySource, newestByTXG(ss).GUID) {
					return false, c + " existed before its newest snapshot was taken (a promoted clone?)"
				}
				continue
			}
			_, err := src.Get(ctx, []string{c}, []string{"guid"})
			switch {
			case errors.Is(err, zfs.ErrDatasetNotFound):
			case err != nil:
				return false, fmt.Sprintf("cannot tell whether %s, which replicates into it, still exists: %v", c, err)
			default:
				return false, c + " still exists on the source"
			}
		}
		if !found {
			return false, "the job does not replicate into it"
		}
		return true, ""
	}
	aside := func(n string) bool {
		return strings.Contains(n, RotatedInfix) || strings.Contains(n, AsideInfix)
	}
	owned := func(r string) bool {
		return view[r].User[OwnerProperty] == OwnerValue(stepRoot, origin[r])
	}
	taken := map[string]bool{}
	var out []follow
	for _, s := range need {
		t := mapped[s]
		if _, ok := view[t]; ok {
			continue // a parent's rename brought it, or it is there
		}
		g := guids(bySource[s])
		var cands []string
		for _, r := range slices.Sorted(maps.Keys(view)) {
			if r == j.TargetRoot || !zfs.IsDescendant(r, j.TargetRoot) || taken[r] || aside(r) || IsPlaceholder(view[r]) || !owned(r) {
				continue
			}
			ss := snaps[r]
			if len(ss) == 0 || !g[newestByTXG(ss).GUID] || zfs.IsDescendant(t, r) {
				continue
			}
			if ok, _ := orphan(r); ok {
				cands = append(cands, r)
			}
		}
		if len(cands) > 1 {
			j.emit(Event{Dataset: s, Target: t, Kind: "warning", Message: fmt.Sprintf("%s was renamed or moved, but %s all hold its history: none is renamed to follow it, %s is received afresh", s, strings.Join(cands, ", "), t)})
			continue
		}
		if len(cands) == 0 {
			continue
		}
		r := cands[0]
		if e := view[r]; e.Encrypted() && e.EncryptionRoot != origin[r] && parentOf(r) != parentOf(t) {
			j.emit(Event{Dataset: s, Target: t, Kind: "warning", Message: fmt.Sprintf("%s continues the encrypted replica %s, which inherits its key from %s: OpenZFS cannot move it below another parent's encryption root, so it is not renamed and %s is received afresh", s, r, e.EncryptionRoot, t)})
			continue
		}
		blocked := ""
		for _, c := range slices.Sorted(maps.Keys(view)) {
			if c == r || !zfs.IsDescendant(c, r) || aside(c) || IsPlaceholder(view[c]) {
				continue
			}
			if ok, why := orphan(c); !ok {
				blocked = c + ": " + why
				break
			}
		}
		if blocked != "" {
			j.emit(Event{Dataset: s, Target: t, Kind: "warning", Message: fmt.Sprintf("%s continues the replica %s, which is not renamed to follow it because a replica below it stays (%s); %s is received afresh", s, r, blocked, t)})
			continue
		}
		out = append(out, follow{source: s, from: r, to: t, orig: origin[r], guid: newestByTXG(snaps[r]).GUID})
		move(r, t)
		taken[t] = true
	}
	return out
}

// sourceTXG is the createtxg of the source version with guid (0 when none).
func sourceTXG(bySource map[string][]zfs.Entry, guid uint64) uint64 {
	for _, es := range bySource {
		for _, e := range es {
			if e.GUID == guid {
				return e.CreateTXG
			}
		}
	}
	return 0
}

// newestByTXG is the snapshot of es created last.
func newestByTXG(es []zfs.Entry) zfs.Entry {
	var n zfs.Entry
	for _, e := range es {
		if e.CreateTXG > n.CreateTXG || n.Name == "" {
			n = e
		}
	}
	return n
}

// follow renames f.from to f.to on the target, parents first made as
// placeholders, after moving the source's relationship objects over: the
// cursors and tentative cursors of the relationships of f.from and its
// children are copied to
// the names of the relationships they become, the old ones destroyed, and
// last-received holds of the old per-relationship tags become the root's.
// The order makes a kill anywhere harmless: until the rename, the next run
// plans the same follow again (copies that exist are kept), and after it
// nothing of the old names is left. A dry run only moves the run's view.
// d is a run of f.source; its maps are the run's, shared and not in use
// by any other dataset while this runs.
func (d *datasetRun) follow(ctx context.Context, f follow, selected []string) error {
	j := d.job
	d.mu.Lock()
	_, fromThere := d.dstInfo[f.from]
	_, toThere := d.dstInfo[f.to]
	var newest uint64
	if ss := snapshotsOnly(d.byTarget[f.from]); len(ss) > 0 {
		newest = newestByTXG(ss).GUID
	}
	d.mu.Unlock()
	if !fromThere || toThere || newest != f.guid {
		return errFollowStale
	}
	msg := fmt.Sprintf("%s was renamed or moved: renaming its replica %s to %s (with its children) to continue it incrementally", f.source, f.from, f.to)
	if j.DryRun {
		j.emit(Event{Dataset: f.source, Target: f.to, Kind: "rename", Message: "would rename: " + msg})
		d.renameView(f.from, f.to)
		return nil
	}
	j.emit(Event{Dataset: f.source, Target: f.to, Kind: "rename", Message: msg})
	if err := d.ensureParents(ctx, f.to); err != nil {
		return err
	}
	// the cursors: for every selected source in the moved subtree
	var stale []string
	for _, q := range selected {
		if !zfs.IsDescendant(q, f.source) {
			continue
		}
		nt, err := j.Map(q)
		if err != nil || !zfs.IsDescendant(nt, f.to) {
			continue
		}
		oldTID, newTID := j.relationID(d.rootTID, f.orig+nt[len(f.to):]), j.relationID(d.rootTID, nt)
		for _, b := range d.bySource(q) {
			if b.Type != zfs.Bookmark {
				continue
			}
			// cursors and tentative cursors alike: a tentative one may be
			// the only base left of a step a killed run did not finish
			var copied string
			switch b.Short() {
			case CursorName(oldTID, b.GUID):
				copied = q + "#" + CursorName(newTID, b.GUID)
			case TentativeName(oldTID, b.GUID):
				copied = q + "#" + TentativeName(newTID, b.GUID)
			default:
				continue
			}
			err := d.src.Bookmark(ctx, b.Name, copied)
			if errors.Is(err, zfs.ErrExists) {
				err = checkGUID(ctx, d.src, copied, b.GUID)
			}
			if err != nil {
				return fmt.Errorf("copy the bookmark %s to %s for the renamed replica %s (nothing was renamed; the next run tries again): %w", b.Name, copied, nt, err)
			}
			stale = append(stale, b.Name)
		}
	}
	if len(stale) > 0 {
		if err := d.src.DestroyBookmarks(ctx, stale); err != nil {
			return fmt.Errorf("destroy the old cursors %s (their copies are in place; nothing was renamed): %w", strings.Join(stale, ", "), err)
		}
	}
	if err := d.migrateLastHolds(ctx, f.from, f.orig); err != nil {
		return err
	}
	if err := d.dst.Rename(ctx, f.from, f.to); err != nil {
		return fmt.Errorf("rename the replica %s to %s to follow %s (nothing was sent; where the far side refuses renames, as under append_only, rename it there by hand, or run one push with append_only off): %w", f.from, f.to, f.source, err)
	}
	d.renameView(f.from, f.to)
	// the moved replicas' owner marks name where they are now, so that a
	// later rename is followed before they are received into again
	d.mu.Lock()
	var marks []string
	for n, e := range d.dstInfo {
		if zfs.IsDescendant(n, f.to) && e.User[OwnerProperty] == OwnerValue(d.stepRoot, f.orig+n[len(f.to):]) {
			marks = append(marks, n)
		}
	}
	d.mu.Unlock()
	slices.Sort(marks)
	for _, n := range marks {
		if err := d.dst.Set(ctx, n, map[string]string{OwnerProperty: OwnerValue(d.stepRoot, n)}); err != nil {
			d.warn(n, fmt.Errorf("mark the renamed %s as this job's replica (the next receive does): %w", n, err))
			continue
		}
		d.mu.Lock()
		e := d.dstInfo[n]
		e.User = maps.Clone(e.User)
		e.User[OwnerProperty] = OwnerValue(d.stepRoot, n)
		d.dstInfo[n] = e
		d.mu.Unlock()
	}
	return nil
}

// errFollowStale is follow's answer when the target is no longer as the
// plan saw it: nothing was changed, and the dataset is planned as usual.
var errFollowStale = errors.New("the replica is no longer where the plan found it")

// bySource is the listing of source dataset q (the run's, read-only).
func (d *datasetRun) bySource(q string) []zfs.Entry {
	if q == d.source {
		return d.srcVersions
	}
	return d.srcAll[q]
}

// migrateLastHolds gives the snapshots below from that carry the
// last-received hold of their relationship's own tag (placed by zsync
// before per-root tags) the root's tag instead: the relationship's id
// changes with the name, the root's tag follows the rename.
func (d *datasetRun) migrateLastHolds(ctx context.Context, from, orig string) error {
	if d.rootTID == "" {
		return nil
	}
	byTag := map[string][]string{}
	var all []string
	d.mu.Lock()
	for ds, es := range d.byTarget {
		if !zfs.IsDescendant(ds, from) {
			continue
		}
		tag := LastReceivedHoldTag(d.job.relationID(d.rootTID, orig+ds[len(from):]))
		for _, e := range es {
			if e.Type == zfs.Snapshot && slices.Contains(d.dstHolds[e.Name], tag) {
				byTag[tag] = append(byTag[tag], e.Name)
				all = append(all, e.Name)
			}
		}
	}
	d.mu.Unlock()
	if len(all) == 0 {
		return nil
	}
	held := map[string]bool{}
	for _, s := range holdBatch(ctx, d.dst, RootLastReceivedHoldTag(d.rootTID), all) {
		held[s] = true
	}
	for _, tag := range slices.Sorted(maps.Keys(byTag)) {
		var rel []string
		for _, s := range byTag[tag] {
			if held[s] {
				rel = append(rel, s)
			}
		}
		if len(rel) == 0 {
			continue
		}
		if err := d.dst.Release(ctx, tag, rel); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("release the old last-received holds %s of %s (nothing was renamed): %w", tag, from, err)
		}
		d.mu.Lock()
		for _, s := range rel {
			tags := slices.DeleteFunc(slices.Clone(d.dstHolds[s]), func(t string) bool { return t == tag })
			if root := RootLastReceivedHoldTag(d.rootTID); !slices.Contains(tags, root) {
				tags = append(tags, root)
			}
			d.dstHolds[s] = tags
		}
		d.mu.Unlock()
	}
	return nil
}

// renameView moves from (and its descendants) to to in the run's view of
// the target, holds included.
func (d *datasetRun) renameView(from, to string) {
	d.moveInMaps(from, to)
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, tags := range d.dstHolds {
		if ds := (zfs.Entry{Name: n}).Dataset(); zfs.IsDescendant(ds, from) {
			delete(d.dstHolds, n)
			d.dstHolds[to+n[len(from):]] = tags
		}
	}
}
