package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// RelationSide says on which side of a relationship an abstraction lives.
type RelationSide int

// The sides. The zero value is not a side.
const (
	// SenderSide is the source dataset: cursors, tentative cursors and
	// step holds.
	SenderSide RelationSide = iota + 1
	// ReceiverSide is the target dataset: last-received holds.
	ReceiverSide
)

// String returns "source" or "target".
func (s RelationSide) String() string {
	switch s {
	case SenderSide:
		return "source"
	case ReceiverSide:
		return "target"
	}
	return fmt.Sprintf("RelationSide(%d)", int(s))
}

// Side returns the side of a relationship where abstractions of kind k live.
func (k AbstractionKind) Side() RelationSide {
	if k == LastReceivedHold {
		return ReceiverSide
	}
	return SenderSide
}

// Relation is what one relationship (one relation id, see RelationID) owns
// on one dataset: its abstractions of one side there.
type Relation struct {
	Dataset      string
	ID           TargetID
	Side         RelationSide
	Abstractions []Abstraction // sorted like ListAbstractions' output
}

// Relations groups abstractions (as ListAbstractions returns them) by
// dataset, side and relation id, sorted by dataset, side, id.
func Relations(abs []Abstraction) []Relation {
	type key struct {
		dataset string
		id      TargetID
		side    RelationSide
	}
	var out []Relation
	index := map[key]int{}
	for _, a := range abs {
		k := key{a.Dataset(), a.Target, a.Kind.Side()}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, Relation{Dataset: k.dataset, ID: k.id, Side: k.side})
		}
		out[i].Abstractions = append(out[i].Abstractions, a)
	}
	for i := range out {
		slices.SortFunc(out[i].Abstractions, compareAbstractions)
	}
	slices.SortFunc(out, func(a, b Relation) int {
		return cmp.Or(compareDatasets(a.Dataset, b.Dataset), cmp.Compare(a.Side, b.Side), strings.Compare(string(a.ID), string(b.ID)))
	})
	return out
}

// Liveness is the verdict on a relationship found on a dataset.
type Liveness int

// The verdicts. The zero value is not a verdict.
const (
	// Live: a configured job uses the relationship now.
	Live Liveness = iota + 1
	// Orphaned: no configured job uses it, and every job that could own
	// it was checked.
	Orphaned
	// Unknown: no configured job that could be checked uses it, but
	// something that could own it could not be checked from here.
	Unknown
)

// String returns "live", "orphaned" or "unknown".
func (l Liveness) String() string {
	switch l {
	case Live:
		return "live"
	case Orphaned:
		return "orphaned"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Liveness(%d)", int(l))
}

// OrphanReason explains an Orphaned verdict.
const OrphanReason = "no configured job uses it: a one-off replication, or a job whose root, strip_components or datasets changed"

// Claim is something that may own relationships whose ids cannot be known
// from here: a configured job that could not be checked (its far side is
// down), the area a serve client of another host replicates from or into,
// the datasets of a far host that other hosts' jobs may use too. A
// relationship on a dataset a claim covers is never Orphaned.
type Claim struct {
	// Side restricts the claim to one side; 0 covers both.
	Side RelationSide
	// Covers reports whether the claim covers a dataset; nil covers all.
	Covers func(dataset string) bool
	// Reason says why a covered relationship is Unknown.
	Reason string
}

func (c Claim) covers(r Relation) bool {
	return (c.Side == 0 || c.Side == r.Side) && (c.Covers == nil || c.Covers(r.Dataset))
}

// Judge decides whether relationship r is in use. live maps every relation
// id the configured jobs use now to a description of its user (see
// LiveRelations); claims are what may own relationships found where r was
// found. The reason is live's description for Live, the covering claims'
// reasons for Unknown, and OrphanReason for Orphaned.
//
// Orphaned is the only verdict on which anything may be released, and only
// when the caller asked for it: it also describes one-off replications,
// which no configuration names.
func Judge(r Relation, live map[TargetID]string, claims []Claim) (Liveness, string) {
	if who, ok := live[r.ID]; ok {
		return Live, who
	}
	var why []string
	for _, c := range claims {
		if c.covers(r) && !slices.Contains(why, c.Reason) {
			why = append(why, c.Reason)
		}
	}
	if len(why) > 0 {
		return Unknown, strings.Join(why, "; ")
	}
	return Orphaned, OrphanReason
}

// ErrRelationsUnknown is wrapped by LiveRelations when the job's target root
// cannot tell which relationships it has.
var ErrRelationsUnknown = errors.New("the job's relationships cannot be known")

// LiveRelation is one relationship a job uses now.
type LiveRelation struct {
	ID             TargetID
	Source, Target string
	// StepRoot is the id its step holds carry (see StepRootID); a step
	// hold with it on Source belongs to ID.
	StepRoot TargetID
}

// LiveRelations returns the relationships the job uses now: for every
// selected source dataset (placeholders excluded, as Run does), the id
// RelationID(target root's id, Map(source)). It only reads: it opens the
// job's Source and Target, reads the target root's id (a root or id that
// does not exist is an error wrapping ErrRelationsUnknown: the root may be
// on a pool that is not imported right now), lists the source and closes
// both. Any error means the job's relationships are not known; the caller
// must then treat whatever the job could own as Unknown.
func (j *Job) LiveRelations(ctx context.Context) ([]LiveRelation, error) {
	src, err := j.Source(ctx)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	defer closeEndpoint(src)
	dst, err := j.Target(ctx)
	if err != nil {
		return nil, fmt.Errorf("open target: %w", err)
	}
	defer closeEndpoint(dst)
	ro := *j
	ro.DryRun = true // read the id, never create the root or the id
	rootTID, err := ro.targetID(ctx, dst)
	if err != nil {
		return nil, err
	}
	if rootTID == "" {
		// a root that is missing (an exported backup pool, a far pool not
		// imported yet) or has no id yet tells nothing about the
		// relationships that exist: they must not look orphaned
		return nil, fmt.Errorf("the target root %s does not exist or has no %s (yet): %w", j.TargetRoot, TargetIDProperty, ErrRelationsUnknown)
	}
	roots := j.Datasets.Roots()
	list, err := src.List(ctx, roots, zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume}, UserProps: []string{PlaceholderProperty}})
	if err != nil {
		return nil, fmt.Errorf("list source %s: %w", strings.Join(roots, ", "), err)
	}
	var out []LiveRelation
	for _, e := range list {
		if !e.IsDataset() || !j.Datasets.Match(e.Name) || IsPlaceholder(e) {
			continue
		}
		t, err := j.Map(e.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, LiveRelation{ID: j.relationID(rootTID, t), Source: e.Name, Target: t, StepRoot: j.stepRootID(rootTID)})
	}
	return out, nil
}
