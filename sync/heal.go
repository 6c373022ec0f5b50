package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/zsync-dev/zsync/zfs"
)

// Repair is one corrective receive zsync heal makes: the snapshot Damaged,
// on side Side ("source" or "target"), repaired in place from Twin, the
// snapshot with its guid on the other side.
type Repair struct {
	Side    string
	Damaged string
	Twin    string
	// Why says what zpool reported: the snapshot itself, or files of its
	// dataset (the newest snapshot with a twin shares most of its blocks).
	Why string
}

// Unrepairable is damage zpool reports in a job's dataset that heal cannot
// repair, and why.
type Unrepairable struct {
	Side, Name, Why string
}

// PlanRepairs matches the damaged datasets and snapshots each side's pool
// reports (zfs.PoolErrors.Damaged) with their twins: pairs maps each of
// the job's source datasets to its target; src and dst are the two sides'
// listings. A damaged snapshot is repaired from the snapshot with its guid
// on the other side; damaged files of a dataset itself from the newest of
// its snapshots that has a twin (the files' blocks are that snapshot's
// where they did not change since). Damage outside the job's datasets is
// not the job's and is left out.
func PlanRepairs(pairs map[string]string, src, dst []zfs.Entry, srcDamaged, dstDamaged []string) ([]Repair, []Unrepairable) {
	snaps := func(es []zfs.Entry) map[string][]zfs.Entry {
		m := map[string][]zfs.Entry{}
		for _, e := range es {
			if e.Type == zfs.Snapshot {
				m[e.Dataset()] = append(m[e.Dataset()], e)
			}
		}
		for _, s := range m {
			slices.SortFunc(s, func(a, b zfs.Entry) int { return cmp.Compare(a.CreateTXG, b.CreateTXG) })
		}
		return m
	}
	srcSnaps, dstSnaps := snaps(src), snaps(dst)
	twinOf := map[string]string{} // target dataset -> source dataset
	for s, t := range pairs {
		twinOf[t] = s
	}
	var repairs []Repair
	var left []Unrepairable
	plan := func(side, name string, own, other map[string][]zfs.Entry, otherDS string) {
		ds, sep, _ := zfs.SplitName(name)
		byGUID := map[uint64]string{}
		for _, e := range other[otherDS] {
			byGUID[e.GUID] = e.Name
		}
		if sep == '@' {
			for _, e := range own[ds] {
				if e.Name == name {
					if twin, ok := byGUID[e.GUID]; ok {
						repairs = append(repairs, Repair{Side: side, Damaged: name, Twin: twin, Why: "zpool reports damage in " + name})
						return
					}
				}
			}
			left = append(left, Unrepairable{Side: side, Name: name, Why: "the other side has no snapshot with its guid, so nothing can repair it: zpool status -v names the damaged files; restore them from another copy, or destroy the snapshot if it is not needed"})
			return
		}
		s := own[ds]
		for i := len(s) - 1; i >= 0; i-- {
			if twin, ok := byGUID[s[i].GUID]; ok {
				repairs = append(repairs, Repair{Side: side, Damaged: s[i].Name, Twin: twin, Why: "zpool reports damaged files in " + ds + " itself; its newest snapshot with a twin shares their blocks unless they changed since"})
				return
			}
		}
		left = append(left, Unrepairable{Side: side, Name: name, Why: "none of its snapshots has a twin on the other side, so nothing can repair it: zpool status -v names the damaged files; restore them from another copy"})
	}
	seen := map[string]bool{}
	for _, n := range srcDamaged {
		ds, _, _ := zfs.SplitName(n)
		if t, ok := pairs[ds]; ok && !seen["s"+n] {
			seen["s"+n] = true
			plan("source", n, srcSnaps, dstSnaps, t)
		}
	}
	for _, n := range dstDamaged {
		ds, _, _ := zfs.SplitName(n)
		if s, ok := twinOf[ds]; ok && !seen["t"+n] {
			seen["t"+n] = true
			plan("target", n, dstSnaps, srcSnaps, s)
		}
	}
	// one repair per damaged snapshot, whichever entries led to it
	out := repairs[:0]
	done := map[string]bool{}
	for _, r := range repairs {
		if !done[r.Side+r.Damaged] {
			done[r.Side+r.Damaged] = true
			out = append(out, r)
		}
	}
	return out, left
}

// RunRepair makes one corrective receive: the full plain stream of r.Twin
// from healthy into r.Damaged on damaged (zfs recv -c, which rewrites only
// blocks that read back damaged, from stream data that matches their
// checksums; it destroys and rolls back nothing). It fails with
// errors.ErrUnsupported where the damaged side's OpenZFS is older than 2.2.
func RunRepair(ctx context.Context, damaged, healthy Endpoint, r Repair) error {
	v, err := zfs.SendOptions{To: r.Twin}.Validate()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := healthy.Send(ctx, v)
	if err != nil {
		return fmt.Errorf("send %s: %w", r.Twin, err)
	}
	rerr := damaged.Receive(ctx, zfs.RecvOptions{Target: r.Damaged, Corrective: true}, rc)
	// Close stops a send that need not run on and waits for it to end (a
	// far side's zfs send too: cancelling ctx first would break the
	// connection and leave the far send running after this returns)
	cerr := rc.Close()
	switch {
	case rerr != nil:
		return fmt.Errorf("repair %s from %s: %w", r.Damaged, r.Twin, rerr)
	case cerr != nil && !errors.Is(cerr, context.Canceled) && !errors.Is(cerr, io.ErrClosedPipe):
		return fmt.Errorf("repair %s from %s: the send of %s failed: %w", r.Damaged, r.Twin, r.Twin, cerr)
	}
	return nil
}
