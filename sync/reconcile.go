package sync

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// AbstractionKind is the kind of a ZFS object zsync creates for continuity.
type AbstractionKind int

// The abstraction kinds. The zero value is not a kind.
const (
	// Cursor is the replication cursor bookmark on the source: the last
	// snapshot the target confirmed.
	Cursor AbstractionKind = iota + 1
	// Tentative is a tentative cursor bookmark on the source, made before a
	// step when step holds are off (protection level incremental).
	Tentative
	// StepHold is a hold on a source snapshot used by a step in progress.
	StepHold
	// LastReceivedHold is the hold on the target's newest received snapshot.
	LastReceivedHold
)

// String returns a stable lowercase name for logs and JSON.
func (k AbstractionKind) String() string {
	switch k {
	case Cursor:
		return "cursor"
	case Tentative:
		return "tentative-cursor"
	case StepHold:
		return "step-hold"
	case LastReceivedHold:
		return "last-received-hold"
	}
	return fmt.Sprintf("AbstractionKind(%d)", int(k))
}

// IsHold reports whether the kind is a hold (as opposed to a bookmark).
func (k AbstractionKind) IsHold() bool { return k == StepHold || k == LastReceivedHold }

// Protection is how much continuity a job maintains (SPEC §5).
type Protection int

// The protection levels, strongest first. The zero value is
// ProtectionResumability, the default.
const (
	// ProtectionResumability keeps every abstraction: step holds on a
	// step's from and to (so an interrupted step can always be resumed),
	// the cursor, tentative cursors and the last-received hold.
	ProtectionResumability Protection = iota
	// ProtectionIncremental keeps an incremental base but not resumability:
	// the cursor, tentative cursors (made instead of step holds) and the
	// last-received hold.
	ProtectionIncremental
	// ProtectionNothing keeps no abstraction at all.
	ProtectionNothing
)

// ParseProtection parses the configuration spelling of a level:
// "resumability", "incremental" or "nothing".
func ParseProtection(s string) (Protection, error) {
	switch s {
	case "resumability":
		return ProtectionResumability, nil
	case "incremental":
		return ProtectionIncremental, nil
	case "nothing":
		return ProtectionNothing, nil
	}
	return 0, fmt.Errorf("unknown protection level %q (want resumability, incremental or nothing)", s)
}

// String returns the configuration spelling of the level.
func (p Protection) String() string {
	switch p {
	case ProtectionResumability:
		return "resumability"
	case ProtectionIncremental:
		return "incremental"
	case ProtectionNothing:
		return "nothing"
	}
	return fmt.Sprintf("Protection(%d)", int(p))
}

// Allows reports whether abstractions of kind k may exist at level p.
// Anything of a kind the level does not allow is stale.
func (p Protection) Allows(k AbstractionKind) bool {
	switch p {
	case ProtectionResumability:
		return true
	case ProtectionIncremental:
		return k == Cursor || k == Tentative || k == LastReceivedHold
	}
	return false
}

// Abstraction is one bookmark or hold that zsync created, as found in a
// listing.
type Abstraction struct {
	Kind AbstractionKind
	// Name is the full bookmark name for Cursor and Tentative, and the full
	// name of the held snapshot for StepHold and LastReceivedHold.
	Name string
	// Tag is the hold tag of a hold; empty for a bookmark.
	Tag string
	// Target is the target id the name carries.
	Target TargetID
	// GUID and CreateTXG are those of the bookmark or the held snapshot.
	GUID, CreateTXG uint64
}

// Dataset returns the dataset the abstraction lives on.
func (a Abstraction) Dataset() string {
	ds, _, _ := zfs.SplitName(a.Name)
	return ds
}

// String describes the abstraction for logs: the bookmark name, or the
// snapshot name and the hold tag.
func (a Abstraction) String() string {
	if a.Kind.IsHold() {
		return fmt.Sprintf("%s (hold %s)", a.Name, a.Tag)
	}
	return a.Name
}

// compareAbstractions orders by dataset, kind, target, createtxg, name, tag.
func compareAbstractions(a, b Abstraction) int {
	return cmp.Or(
		compareDatasets(a.Dataset(), b.Dataset()),
		cmp.Compare(a.Kind, b.Kind),
		strings.Compare(string(a.Target), string(b.Target)),
		cmp.Compare(a.CreateTXG, b.CreateTXG),
		strings.Compare(a.Name, b.Name),
		strings.Compare(a.Tag, b.Tag),
	)
}

// ListAbstractions finds zsync's abstractions in a listing: the cursor and
// tentative bookmarks among entries, and the step and last-received holds
// in holds (full snapshot name -> hold tags, as `zfs holds` reports them
// for the snapshots with userrefs > 0). Held snapshots missing from entries
// get GUID and CreateTXG 0.
//
// foreign lists what uses zsync's prefixes but cannot be trusted: a
// bookmark or tag that does not parse, and a cursor or tentative bookmark
// whose embedded GUID differs from its actual guid (copied or tinkered
// with). Bookmarks are listed by name, holds as "<snapshot> (hold <tag>)".
// Foreign objects are never returned as abstractions, so they are never
// judged stale or destroyed; the caller reports them.
//
// Both results are sorted (found by dataset, kind, target, createtxg).
//
// A per-root last-received hold (zsync_last_R<root id>) on a snapshot of
// dataset X gets Target RelationID(root id, X). A per-root step hold gets
// Target StepRootID's id itself: ListAbstractionsWith can tell whose it is.
func ListAbstractions(entries []zfs.Entry, holds map[string][]string) (found []Abstraction, foreign []string) {
	return ListAbstractionsWith(entries, holds, nil)
}

// StepResolver returns the id of the relationship that source dataset has
// below the target root whose step holds carry root (see StepRootID), or
// "" when the caller does not know it.
type StepResolver func(root TargetID, dataset string) TargetID

// ListAbstractionsWith is ListAbstractions with per-root step holds given
// the Target resolve returns for them (when it returns one).
func ListAbstractionsWith(entries []zfs.Entry, holds map[string][]string, resolve StepResolver) (found []Abstraction, foreign []string) {
	snaps := make(map[string]zfs.Entry)
	for _, e := range entries {
		switch e.Type {
		case zfs.Snapshot:
			snaps[e.Name] = e
		case zfs.Bookmark:
			short := e.Short()
			if !looksLikeZsyncBookmark(short) {
				continue
			}
			if base, _, bound := SplitClient(short); bound {
				if _, _, guid, ok := ParseBookmark(base); ok && guid == e.GUID {
					continue // a serve client's, in this host's send area
				}
			}
			kind, tid, guid, ok := ParseBookmark(short)
			if !ok || guid != e.GUID {
				foreign = append(foreign, e.Name)
				continue
			}
			found = append(found, Abstraction{Kind: kind, Name: e.Name, Target: tid, GUID: e.GUID, CreateTXG: e.CreateTXG})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(holds)) {
		for _, tag := range holds[name] {
			if !looksLikeZsyncHold(tag) {
				continue
			}
			if base, _, bound := SplitClient(tag); bound {
				if _, _, _, ok := ParseHoldTag(base); ok {
					continue // a serve client's, in this host's send area
				}
			}
			kind, tid, root, ok := ParseHoldTag(tag)
			if !ok {
				foreign = append(foreign, fmt.Sprintf("%s (hold %s)", name, tag))
				continue
			}
			if root {
				ds, _, _ := zfs.SplitName(name)
				switch {
				case kind == LastReceivedHold:
					tid = RelationID(tid, ds)
				case resolve != nil:
					if t := resolve(tid, ds); t != "" {
						tid = t
					}
				}
			}
			s := snaps[name]
			found = append(found, Abstraction{Kind: kind, Name: name, Tag: tag, Target: tid, GUID: s.GUID, CreateTXG: s.CreateTXG})
		}
	}
	slices.SortFunc(found, compareAbstractions)
	found = slices.CompactFunc(found, func(a, b Abstraction) bool { return a == b })
	slices.Sort(foreign)
	return found, slices.Compact(foreign)
}

// InFlight names an interrupted step by the GUIDs of its source and
// destination, as the target's receive resume token gives them (FromGUID 0
// for a full send). It is what step holds and tentative cursors protect.
type InFlight struct {
	FromGUID, ToGUID uint64
}

func (f *InFlight) covers(guid uint64) bool {
	return f != nil && guid != 0 && (guid == f.FromGUID || guid == f.ToGUID)
}

// Stale returns the abstractions of target tid on the SOURCE dataset
// dataset that must go, given what the caller knows after planning or a
// run. Abstractions of other targets or other datasets, and last-received
// holds (which live on the target; see StaleTarget), are never returned.
//
//   - cursorGUID is the GUID of the snapshot the target has confirmed: the
//     last completed step's To, or the plan's Base; 0 when unknown (the
//     target has no snapshots).
//   - inFlight is the interrupted step the target's resume token names, nil
//     when the target has no token (nothing to resume).
//
// Rules, after the level (kinds level does not allow are all stale):
//
//   - Cursors: the live cursor is the one with cursorGUID (the newest cursor
//     when cursorGUID is 0); all others are stale. When no cursor has
//     cursorGUID yet, none is stale: the new cursor is created before old
//     ones are destroyed.
//   - Tentative cursors: stale when the live cursor is at or after them
//     (createtxg), and otherwise unless they are for cursorGUID or for the
//     in-flight step's from or to.
//   - Step holds: stale unless they are on the in-flight step's from or to.
func Stale(tid TargetID, level Protection, dataset string, abs []Abstraction, cursorGUID uint64, inFlight *InFlight) []Abstraction {
	var mine []Abstraction
	for _, a := range abs {
		if a.Target == tid && a.Dataset() == dataset && a.Kind != LastReceivedHold {
			mine = append(mine, a)
		}
	}
	return staleSource(level, mine, cursorGUID, inFlight, true)
}

// staleSource applies the source rules to the abstractions of one (dataset,
// target). With known false nothing is known about the target (release-stale
// without planning): the newest cursor is live, tentatives are stale only
// when the live cursor is at or after them, and step holds only when their
// snapshot is before the live cursor.
func staleSource(level Protection, mine []Abstraction, cursorGUID uint64, inFlight *InFlight, known bool) []Abstraction {
	var live *Abstraction
	for i, a := range mine {
		if a.Kind != Cursor {
			continue
		}
		if cursorGUID != 0 {
			if a.GUID == cursorGUID {
				live = &mine[i]
			}
		} else if live == nil || compareAbstractions(*live, a) < 0 {
			live = &mine[i]
		}
	}
	var stale []Abstraction
	for _, a := range mine {
		if !level.Allows(a.Kind) {
			stale = append(stale, a)
			continue
		}
		var isStale bool
		switch a.Kind {
		case Cursor:
			isStale = live != nil && a != *live
		case Tentative:
			isStale = live != nil && live.CreateTXG >= a.CreateTXG ||
				known && a.GUID != cursorGUID && !inFlight.covers(a.GUID)
		case StepHold:
			if known {
				isStale = !inFlight.covers(a.GUID)
			} else {
				isStale = live != nil && a.CreateTXG < live.CreateTXG
			}
		}
		if isStale {
			stale = append(stale, a)
		}
	}
	return stale
}

// StaleTarget returns the last-received holds of target tid on the TARGET
// dataset dataset that must go. receivedGUID is the GUID of the target's
// newest received snapshot (0 when unknown). The live hold is the one on
// the snapshot with receivedGUID (the newest hold when receivedGUID is 0);
// all others are stale. When no hold is on receivedGUID yet, none is stale:
// the new hold is placed before old ones are released. Every hold is stale
// when level does not allow last-received holds. Other kinds, targets and
// datasets are never returned.
func StaleTarget(tid TargetID, level Protection, dataset string, abs []Abstraction, receivedGUID uint64) []Abstraction {
	var mine []Abstraction
	for _, a := range abs {
		if a.Target == tid && a.Dataset() == dataset && a.Kind == LastReceivedHold {
			mine = append(mine, a)
		}
	}
	return staleReceived(level, mine, receivedGUID)
}

func staleReceived(level Protection, mine []Abstraction, receivedGUID uint64) []Abstraction {
	if !level.Allows(LastReceivedHold) {
		return mine
	}
	var live *Abstraction
	for i, a := range mine {
		if receivedGUID != 0 {
			if a.GUID == receivedGUID {
				live = &mine[i]
			}
		} else if live == nil || compareAbstractions(*live, a) < 0 {
			live = &mine[i]
		}
	}
	if live == nil {
		return nil
	}
	var stale []Abstraction
	for _, a := range mine {
		if a != *live {
			stale = append(stale, a)
		}
	}
	return stale
}

// StaleAll judges every (dataset, target) found in abs, for `zsync holds
// release-stale`, which does not know the targets' state. levels gives the
// protection level per target id; a target id missing from it is treated
// as ProtectionResumability, so only what is provably superseded goes
// (pass ProtectionNothing for a relationship that no longer exists to
// release all of it). Without knowledge of the target the rules are the
// conservative ones:
//
//   - the newest cursor is live, older ones are stale;
//   - a tentative cursor is stale when the newest cursor is at or after it;
//   - a step hold is stale when its snapshot is before the newest cursor
//     (the cursor's own snapshot may be the from of a step in flight; with
//     no cursor, an interrupted initial step keeps its holds);
//   - the newest last-received hold is live, older ones are stale.
//
// The result is sorted like ListAbstractions' output.
func StaleAll(abs []Abstraction, levels map[TargetID]Protection) []Abstraction {
	type key struct {
		dataset string
		tid     TargetID
	}
	groups := make(map[key][]Abstraction)
	for _, a := range abs {
		k := key{a.Dataset(), a.Target}
		groups[k] = append(groups[k], a)
	}
	var stale []Abstraction
	for k, g := range groups {
		level := levels[k.tid] // zero value: ProtectionResumability
		var src, dst []Abstraction
		for _, a := range g {
			if a.Kind == LastReceivedHold {
				dst = append(dst, a)
			} else {
				src = append(src, a)
			}
		}
		stale = append(stale, staleSource(level, src, 0, nil, false)...)
		stale = append(stale, staleReceived(level, dst, 0)...)
	}
	slices.SortFunc(stale, compareAbstractions)
	return stale
}
