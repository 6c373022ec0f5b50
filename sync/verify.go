package sync

import (
	"cmp"
	"regexp"
	"slices"

	"github.com/zsync-dev/zsync/zfs"
)

// Verification compares one source dataset with its replica by snapshot
// guid (zsync verify, level 1): what they share, what either lacks, and
// whether the relationship's cursor and last-received hold are where a
// run leaves them. Names are full snapshot names, oldest first.
type Verification struct {
	Source, Target string
	// Common counts the target's snapshots whose guid the source has, as
	// a snapshot or (pruned there) as a bookmark.
	Common int
	// NewestCommon is the newest of them on the target ("" when none):
	// the last snapshot replicated, where the next run goes on from.
	NewestCommon string
	// Missing are wanted source snapshots between the oldest and the
	// newest common one that the target does not have: replicated once
	// and deleted there, or never sent.
	Missing []string
	// Pending are wanted source snapshots newer than the newest common
	// one: the next run sends them.
	Pending []string
	// Foreign are target snapshots the source has no version of that are
	// newer than the newest common snapshot (made on the target after the
	// last receive, or all of them when nothing is common): the next run
	// refuses the replica as diverged.
	Foreign []string
	// Pruned are older target snapshots the source has no version of any
	// more: pruned on the source, kept longer on the target.
	Pruned []string
	// Mismatched are target snapshots with the name of a source snapshot
	// and another guid: the same name for other data.
	Mismatched []string
	// Cursors counts the relationship's cursors on the source; CursorAt is
	// whether one of them has the guid of NewestCommon.
	Cursors  int
	CursorAt bool
	// LastHolds counts the relationship's last-received holds on the
	// target; LastHoldAt is whether one is on NewestCommon.
	LastHolds  int
	LastHoldAt bool
}

// Verify compares source dataset src (its snapshots and bookmarks, srcVersions,
// and the abstractions found on it) with target dataset dst (its snapshots
// and abstractions), for relationship tid. filter selects the wanted source
// snapshots by short name (nil: all), as the job's snapshot filter does.
func Verify(src, dst string, srcVersions, dstVersions []zfs.Entry, srcAbs, dstAbs []Abstraction, tid TargetID, filter *regexp.Regexp) Verification {
	v := Verification{Source: src, Target: dst}
	byTXG := func(a, b zfs.Entry) int { return cmp.Compare(a.CreateTXG, b.CreateTXG) }
	srcSnaps := slices.SortedFunc(slices.Values(snapshotsOnly(srcVersions)), byTXG)
	dstSnaps := slices.SortedFunc(slices.Values(snapshotsOnly(dstVersions)), byTXG)
	srcGUID := map[uint64]zfs.Entry{} // snapshots win over bookmarks
	srcName := map[string]uint64{}
	for _, e := range srcVersions {
		if e.Type == zfs.Bookmark {
			if _, ok := srcGUID[e.GUID]; !ok {
				srcGUID[e.GUID] = e
			}
		}
	}
	for _, e := range srcSnaps {
		srcGUID[e.GUID] = e
		srcName[e.Short()] = e.GUID
	}
	var oldest, newest *zfs.Entry // the source's versions of the common ones
	dstGUID := map[uint64]bool{}
	for _, t := range dstSnaps {
		dstGUID[t.GUID] = true
		if s, ok := srcGUID[t.GUID]; ok {
			v.Common++
			v.NewestCommon = t.Name
			if oldest == nil {
				oldest = &s
			}
			newest = &s
		}
	}
	var newestCommonTXG uint64
	var newestCommonGUID uint64
	for _, t := range dstSnaps {
		if t.Name == v.NewestCommon {
			newestCommonTXG, newestCommonGUID = t.CreateTXG, t.GUID
		}
	}
	for _, t := range dstSnaps {
		if _, ok := srcGUID[t.GUID]; ok {
			continue
		}
		if g, ok := srcName[t.Short()]; ok && g != t.GUID {
			v.Mismatched = append(v.Mismatched, t.Name)
			continue
		}
		if v.NewestCommon == "" || t.CreateTXG > newestCommonTXG {
			v.Foreign = append(v.Foreign, t.Name)
		} else {
			v.Pruned = append(v.Pruned, t.Name)
		}
	}
	for _, s := range srcSnaps {
		if dstGUID[s.GUID] || (filter != nil && !filter.MatchString(s.Short())) {
			continue
		}
		switch {
		case newest == nil || s.CreateTXG > newest.CreateTXG:
			v.Pending = append(v.Pending, s.Name)
		case s.CreateTXG > oldest.CreateTXG:
			v.Missing = append(v.Missing, s.Name)
		}
	}
	for _, a := range srcAbs {
		if a.Kind == Cursor && a.Target == tid && a.Dataset() == src {
			v.Cursors++
			v.CursorAt = v.CursorAt || (newestCommonGUID != 0 && a.GUID == newestCommonGUID)
		}
	}
	for _, a := range dstAbs {
		if a.Kind == LastReceivedHold && a.Target == tid && a.Dataset() == dst {
			v.LastHolds++
			v.LastHoldAt = v.LastHoldAt || a.Name == v.NewestCommon
		}
	}
	return v
}
