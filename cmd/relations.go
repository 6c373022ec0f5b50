package cmd

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// liveness is what the configured jobs say about which replication
// relationships are in use, for `holds release-stale` and `status`.
type liveness struct {
	// live maps the relation id of every relationship a configured
	// push or pull job uses now to "job NAME: SOURCE -> TARGET".
	live map[zsync.TargetID]string
	// steps maps the step root id and source dataset of every such
	// relationship to its id: the owner of a per-root step hold there.
	steps map[stepKey]zsync.TargetID
	// local are the claims on relationships found on this host: the
	// datasets of jobs that could not be checked, and the areas of this
	// host's [[serve.client]] entries.
	local []zsync.Claim
	// unchecked says which jobs could not be checked, and why.
	unchecked []error
}

// liveness asks every configured push and pull job (whichever jobs the
// command names) which relationships it uses now: the target root's id is
// read where the root is (the far side for push, here for pull) and the
// sources are listed where they are (here for push, the far side for
// pull). A job that cannot be asked makes everything it could own Unknown.
func (e *env) liveness(ctx context.Context, cfg *Config) *liveness {
	lv := &liveness{live: map[zsync.TargetID]string{}, steps: map[stepKey]zsync.TargetID{}}
	for i := range cfg.Jobs {
		j := &cfg.Jobs[i]
		if j.Type != "push" && j.Type != "pull" {
			continue
		}
		rels, err := e.jobRelations(ctx, cfg, j)
		if err != nil {
			lv.unchecked = append(lv.unchecked, fmt.Errorf("job %s: %w", j.Name, err))
			lv.local = append(lv.local, uncheckedClaims(j, err)...)
			continue
		}
		for _, r := range rels {
			lv.live[r.ID] = fmt.Sprintf("job %s: %s -> %s", j.Name, r.Source, r.Target)
			lv.steps[stepKey{r.StepRoot, r.Source}] = r.ID
		}
	}
	lv.local = append(lv.local, serveClaims(cfg)...)
	// A last-received hold on this host may belong to a push from another
	// host (a shared root, a far side without [[serve.client]]), which no
	// configuration here names: never judge one orphaned. They pin one
	// snapshot of a replica each; the source side is what pins retention.
	lv.local = append(lv.local, zsync.Claim{Side: zsync.ReceiverSide,
		Reason: "a last-received hold on a replica: a push from another host may own it, which cannot be checked from here (release it by hand with zfs release if that relationship is gone)"})
	return lv
}

type stepKey struct {
	root    zsync.TargetID
	dataset string
}

// resolve is a zsync.StepResolver over the configured jobs' relationships
// (nil lv resolves nothing): a per-root step hold whose owner is not found
// keeps the root's id as its relation id, which no job uses, so it is
// judged like any relationship no job uses.
func (lv *liveness) resolve(root zsync.TargetID, dataset string) zsync.TargetID {
	if lv == nil {
		return ""
	}
	return lv.steps[stepKey{root, dataset}]
}

func (e *env) jobRelations(ctx context.Context, cfg *Config, j *jobConfig) ([]zsync.LiveRelation, error) {
	job, cleanup, err := e.buildJob(cfg, j, true, e.log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	return job.LiveRelations(ctx)
}

// below covers root and its descendants.
func below(root string) func(string) bool {
	return func(ds string) bool { return zfs.IsDescendant(ds, root) }
}

// uncheckedClaims are the claims of a job whose relationships could not be
// learned, on this host: the sources it selects (for push, and for a pull
// from this host) and the datasets below its root (for pull, and for a push
// to this host).
func uncheckedClaims(j *jobConfig, err error) []zsync.Claim {
	why := fmt.Sprintf("job %s, which could own it, could not be checked: %v", j.Name, err)
	f, ferr := zfs.ParseFilter(j.Datasets)
	if ferr != nil {
		return []zsync.Claim{{Reason: why}}
	}
	sources := zsync.Claim{Side: zsync.SenderSide, Covers: f.Match, Reason: why}
	targets := zsync.Claim{Side: zsync.ReceiverSide, Covers: below(j.Root), Reason: why}
	switch {
	case j.Remote == nil:
		return []zsync.Claim{sources, targets}
	case j.Type == "push":
		return []zsync.Claim{sources}
	default:
		return []zsync.Claim{targets}
	}
}

// serveClaims are the areas of this host's [[serve.client]] entries: jobs on
// the clients' hosts replicate from and into them, and those jobs cannot be
// checked from here.
func serveClaims(cfg *Config) []zsync.Claim {
	var out []zsync.Claim
	for _, cl := range cfg.Serve.Clients {
		if len(cl.Send) > 0 {
			if f, err := zfs.ParseFilter(cl.Send); err == nil {
				out = append(out, zsync.Claim{Side: zsync.SenderSide, Covers: f.Match,
					Reason: fmt.Sprintf("inside the send area of [[serve.client]] %q: a pull job on that client's host may own it, which cannot be checked from here", cl.Name)})
			} else {
				out = append(out, zsync.Claim{Side: zsync.SenderSide,
					Reason: fmt.Sprintf("[[serve.client]] %q has an unreadable send list (%v): a pull job on that client's host may own it", cl.Name, err)})
			}
		}
		if cl.ReceiveRoot != "" {
			out = append(out, zsync.Claim{Side: zsync.ReceiverSide, Covers: below(cl.ReceiveRoot),
				Reason: fmt.Sprintf("inside receive_root of [[serve.client]] %q: a push job on that client's host may own it, which cannot be checked from here", cl.Name)})
		}
	}
	return out
}

// farClaims are the claims on relationships found on the far host of a job
// with a [job.remote]: other hosts' jobs may replicate from or into the
// same datasets, and this host cannot see them.
func farClaims(j *jobConfig) []zsync.Claim {
	return []zsync.Claim{{Reason: fmt.Sprintf("on %s, the far side of job %s: jobs of other hosts may replicate there too, which cannot be checked from here", j.Remote.Host, j.Name)}}
}

// claimsAt returns the claims for relationships found on one side of job j:
// the far host's when that side is across [job.remote], this host's
// otherwise.
func (lv *liveness) claimsAt(j *jobConfig, side zsync.RelationSide) []zsync.Claim {
	farSide := (j.Type == "push") == (side == zsync.ReceiverSide)
	if farSide && j.Remote != nil {
		return farClaims(j)
	}
	return lv.local
}

// relationPins says what relationship r keeps from prune on its dataset.
// entries is the listing r was found in and abs every abstraction found
// there.
//
//   - protects: the snapshots prune never destroys because of r, those its
//     cursors point at and those it holds;
//   - keeps: the snapshots the not_replicated rule keeps only because of r:
//     when r's cursor is the oldest of the dataset and another relationship
//     has a newer one, the snapshots after r's cursor up to that one count as
//     not replicated. (With no cursor at all every snapshot counts as not
//     replicated, so the only cursor of a dataset keeps nothing this way.)
//
// Both are full snapshot names in createtxg order.
func relationPins(r zsync.Relation, abs []zsync.Abstraction, entries []zfs.Entry) (protects, keeps []string) {
	var snaps []zfs.Entry
	for _, x := range entries {
		if x.Type == zfs.Snapshot && x.Dataset() == r.Dataset {
			snaps = append(snaps, x)
		}
	}
	slices.SortFunc(snaps, func(a, b zfs.Entry) int { return cmp.Compare(a.CreateTXG, b.CreateTXG) })
	pinned := map[string]bool{}
	var mine uint64
	for _, a := range r.Abstractions {
		switch {
		case a.Kind == zsync.Cursor:
			if mine == 0 || a.CreateTXG < mine {
				mine = a.CreateTXG
			}
			for _, s := range snaps {
				if s.GUID == a.GUID {
					pinned[s.Name] = true
				}
			}
		case a.Kind.IsHold():
			pinned[a.Name] = true
		}
	}
	var others uint64
	for _, a := range abs {
		if a.Kind == zsync.Cursor && a.Dataset() == r.Dataset && a.Target != r.ID && (others == 0 || a.CreateTXG < others) {
			others = a.CreateTXG
		}
	}
	for _, s := range snaps {
		if pinned[s.Name] {
			protects = append(protects, s.Name)
			delete(pinned, s.Name)
		}
		if mine != 0 && others > mine && s.CreateTXG > mine && s.CreateTXG <= others {
			keeps = append(keeps, s.Name)
		}
	}
	// held snapshots missing from the listing (they were destroyed since)
	protects = append(protects, slices.Sorted(maps.Keys(pinned))...)
	return protects, keeps
}

// describeObjects lists a relationship's abstractions for people.
func describeObjects(r zsync.Relation) []string {
	var out []string
	for _, a := range r.Abstractions {
		if a.Kind.IsHold() {
			out = append(out, fmt.Sprintf("%s %s on %s", a.Kind, a.Tag, a.Name))
		} else {
			out = append(out, fmt.Sprintf("%s %s", a.Kind, a.Name))
		}
	}
	return out
}

// describePins renders relationPins for people.
func describePins(protects, keeps []string) string {
	var parts []string
	if len(protects) > 0 {
		parts = append(parts, "prune never destroys "+strings.Join(protects, ", "))
	}
	if len(keeps) > 0 {
		parts = append(parts, "not_replicated keeps "+strings.Join(keeps, ", "))
	}
	if len(parts) == 0 {
		return "no snapshot"
	}
	return strings.Join(parts, "; ")
}
