package cmd

import (
	"strings"
	"time"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs"
)

// How status and check found a dataset's last replicated snapshot
// (datasetStatus.LastSnapshotBasis).
const (
	// basisSource: the newest target snapshot whose GUID is a snapshot or a
	// bookmark of the source now.
	basisSource = "source"
	// basisHold: the target snapshot that carries the relationship's
	// last-received hold (zsync_last_R<root id>, or zsync_last_T<id>), newer than any the source
	// still has a version of (the source pruned it).
	basisHold = "last_received_hold"
	// basisReport: the last run report's replicated mark, when the target
	// has nothing that either of the above identifies.
	basisReport = "last_run_report"
)

// replicatedSnapshot is the last snapshot replicated into a target
// dataset, as status and check judge lag by it.
type replicatedSnapshot struct {
	Name    string    // a target snapshot, or the mark's (source) name for basisReport
	Created time.Time // its creation: lag is now minus this
	Basis   string    // basisSource, basisHold or basisReport
}

// lastReplicated finds the last snapshot replicated from the source dataset
// src into the target dataset t: the newest (by createtxg) snapshot of t
// whose GUID is a snapshot or bookmark of src in sl, or that carries the
// relationship's last-received hold (held: full snapshot names). A target
// snapshot that is neither, such as one the backup host takes of its own
// pool, was never replicated and is never the answer, however new.
//
// When the target has nothing of the kind, mark (the last run report's
// replicated mark for src, may be nil) is used while t exists: its snapshot
// on t when t has one of that name, else the mark's own name and time.
// ok is false when the target holds no replicated snapshot as far as can
// be told.
func lastReplicated(src, t string, sl, dl []zfs.Entry, held map[string]bool, mark *state.SnapshotMark) (r replicatedSnapshot, ok bool) {
	versions := map[uint64]bool{}
	for _, v := range sl {
		if v.Dataset() == src && (v.Type == zfs.Snapshot || v.Type == zfs.Bookmark) {
			versions[v.GUID] = true
		}
	}
	var best *zfs.Entry
	basis := ""
	exists := false
	for i, v := range dl {
		if v.Name == t {
			exists = true
		}
		if v.Type != zfs.Snapshot || v.Dataset() != t {
			continue
		}
		b := ""
		switch {
		case versions[v.GUID]:
			b = basisSource
		case held[v.Name]:
			b = basisHold
		default:
			continue // not from the source
		}
		if best == nil || v.CreateTXG > best.CreateTXG {
			best, basis = &dl[i], b
		}
	}
	if best != nil {
		return replicatedSnapshot{Name: best.Name, Created: best.Creation, Basis: basis}, true
	}
	if mark == nil || !exists {
		return replicatedSnapshot{}, false
	}
	r = replicatedSnapshot{Name: mark.Snapshot, Created: mark.Time, Basis: basisReport}
	if _, short, ok := strings.Cut(mark.Snapshot, "@"); ok {
		for _, v := range dl {
			if v.Type == zfs.Snapshot && v.Name == t+"@"+short {
				r.Name, r.Created = v.Name, v.Creation
			}
		}
	}
	return r, true
}

// sourceSnapshotPrefix is the prefix the newest source snapshot of a push
// or pull job must have to count for snapshot age: the job's own prefix
// when it takes snapshots (a push job with an interval), since then its
// snapshots stopping is what snapshot age is to catch, whatever else
// snapshots the dataset. Empty (any snapshot counts) for a push job without
// an interval, which replicates what others take, and for a pull job, whose
// far side takes the snapshots under a prefix of its own.
func sourceSnapshotPrefix(j *jobConfig) string {
	if j.Type != "push" || j.Snapshot.Interval.Duration <= 0 {
		return ""
	}
	if j.Snapshot.Prefix == "" {
		return defaultPrefix
	}
	return j.Snapshot.Prefix
}

// newestSourceSnapshot is the newest (by createtxg) snapshot of ds in sl,
// among those named prefix+time as zsync snap names them when prefix is
// set; nil when there is none.
func newestSourceSnapshot(ds string, sl []zfs.Entry, prefix string) *zfs.Entry {
	var newest *zfs.Entry
	for i, v := range sl {
		if v.Type != zfs.Snapshot || v.Dataset() != ds {
			continue
		}
		if prefix != "" {
			if _, ok := snap.ParseName(prefix, v.Short()); !ok {
				continue
			}
		}
		if newest == nil || v.CreateTXG > newest.CreateTXG {
			newest = &sl[i]
		}
	}
	return newest
}
