package prune

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// Snapshot is what retention needs to know about one snapshot of a dataset.
type Snapshot struct {
	Name       string // short name, after the '@'
	GUID       uint64
	CreateTXG  uint64
	Created    time.Time // the creation property
	Held       bool      // has at least one user hold (userrefs > 0)
	Replicated bool      // every target has it (see MarkReplicated)
}

// Decision is the verdict on one snapshot and why.
type Decision struct {
	Snapshot Snapshot
	Keep     bool
	// Reasons lists everything that keeps the snapshot, in this order:
	// "protected: <why>", "held", "newer than now", "no retention rules" or
	// "outside every rule's regex", then what each rule said in policy order
	// ("grid 24x1h bucket 3 (age 2h40m)", "last_n 3", `regex "^manual_"`,
	// "not_replicated", "invalid rule ..."). A snapshot to destroy has the
	// single reason "no rule keeps it".
	Reasons []string
}

// Reason strings that are not rule descriptions.
const (
	ReasonHeld        = "held"
	ReasonFuture      = "newer than now"
	ReasonNoRules     = "no retention rules"
	ReasonOutOfScope  = "outside every rule's regex"
	ReasonNoRuleKeeps = "no rule keeps it"
)

// Policy is a list of retention rules; see the package documentation for how
// they combine.
type Policy struct {
	Rules []Rule
}

// Validate reports every rule that cannot be evaluated, naming its position
// and the rule. Apply does not need a valid policy (an invalid rule keeps
// everything), but callers should refuse one before pruning.
func (p Policy) Validate() error {
	var errs []error
	for i, r := range p.Rules {
		if _, err := normalize(r); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// normalize turns pointer rules into values and validates the rule.
func normalize(r Rule) (Rule, error) {
	switch rr := r.(type) {
	case nil:
		return nil, errors.New("nil rule")
	case *Grid:
		if rr == nil {
			return nil, errors.New("nil grid rule")
		}
		r = *rr
	case *LastN:
		if rr == nil {
			return nil, errors.New("nil last_n rule")
		}
		r = *rr
	case *RegexRule:
		if rr == nil {
			return nil, errors.New("nil regex rule")
		}
		r = *rr
	case *NotReplicated:
		r = NotReplicated{}
	}
	if err := r.validate(); err != nil {
		return r, fmt.Errorf("%s: %w", r, err)
	}
	return r, nil
}

// Apply decides, for every snapshot of one dataset, whether the policy keeps
// it, and says why. It is pure: the same arguments always give the same
// decisions, and nothing is destroyed here (see Execute).
//
// protect maps snapshot GUIDs to a reason they must survive (a target still
// needs them, a cursor points at them); those are kept whatever the rules
// say. now is the current time: snapshots created after it are kept, and
// grid reasons give ages relative to it. The result is sorted by createtxg
// (then creation, then name), one Decision per input snapshot.
//
// An invalid rule (one Policy.Validate rejects) keeps every snapshot, so a
// configuration mistake can never widen what gets destroyed.
func Apply(snaps []Snapshot, p Policy, protect map[uint64]string, now time.Time) []Decision {
	sorted := append([]Snapshot(nil), snaps...)
	sort.SliceStable(sorted, func(a, b int) bool {
		sa, sb := sorted[a], sorted[b]
		if sa.CreateTXG != sb.CreateTXG {
			return sa.CreateTXG < sb.CreateTXG
		}
		if !sa.Created.Equal(sb.Created) {
			return sa.Created.Before(sb.Created)
		}
		return sa.Name < sb.Name
	})
	v := &verdicts{
		snaps: sorted,
		now:   now,
		scope: make([]bool, len(sorted)),
		keep:  make([][]string, len(sorted)),
	}
	for _, r := range p.Rules {
		rule, err := normalize(r)
		if err != nil {
			for i := range sorted {
				v.keepWith(i, "invalid rule "+err.Error())
			}
			continue
		}
		rule.judge(v)
	}

	out := make([]Decision, len(sorted))
	for i, s := range sorted {
		var reasons []string
		if why, ok := protect[s.GUID]; ok {
			reasons = append(reasons, "protected: "+why)
		}
		if s.Held {
			reasons = append(reasons, ReasonHeld)
		}
		if s.Created.After(now) {
			reasons = append(reasons, ReasonFuture)
		}
		switch {
		case len(p.Rules) == 0:
			reasons = append(reasons, ReasonNoRules)
		case !v.scope[i]:
			reasons = append(reasons, ReasonOutOfScope)
		}
		reasons = append(reasons, v.keep[i]...)
		d := Decision{Snapshot: s, Keep: len(reasons) > 0, Reasons: reasons}
		if !d.Keep {
			d.Reasons = []string{ReasonNoRuleKeeps}
		}
		out[i] = d
	}
	return out
}

// MarkReplicated returns a copy of snaps with Replicated set on exactly the
// snapshots every target has: those whose createtxg is at most the oldest of
// cursorTXGs, the createtxg each target's replication cursor points at. With
// no cursors nothing counts as replicated. The cursor snapshot itself counts
// as replicated (the cursor bookmark, not the snapshot, is the incremental
// base); callers that must keep it while no cursor bookmark exists protect
// its GUID in Apply.
func MarkReplicated(snaps []Snapshot, cursorTXGs []uint64) []Snapshot {
	out := append([]Snapshot(nil), snaps...)
	if len(cursorTXGs) == 0 {
		for i := range out {
			out[i].Replicated = false
		}
		return out
	}
	oldest := cursorTXGs[0]
	for _, t := range cursorTXGs[1:] {
		oldest = min(oldest, t)
	}
	for i := range out {
		out[i].Replicated = out[i].CreateTXG <= oldest
	}
	return out
}

// SnapshotsFromEntries picks the snapshots of dataset (not of its children)
// out of a zfs listing, with Held set from userrefs. Replicated is false; see
// MarkReplicated.
func SnapshotsFromEntries(dataset string, entries []zfs.Entry) []Snapshot {
	var out []Snapshot
	for _, e := range entries {
		if e.Type != zfs.Snapshot || e.Dataset() != dataset {
			continue
		}
		out = append(out, Snapshot{
			Name:      e.Short(),
			GUID:      e.GUID,
			CreateTXG: e.CreateTXG,
			Created:   e.Creation,
			Held:      e.UserRefs > 0,
		})
	}
	return out
}

// Destroying returns the decisions that destroy a snapshot, in order.
func Destroying(decisions []Decision) []Decision {
	var out []Decision
	for _, d := range decisions {
		if !d.Keep {
			out = append(out, d)
		}
	}
	return out
}
