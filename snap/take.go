package snap

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/zsync-dev/zsync/zfs"
)

// Snapshotter creates snapshots. *zfs.CLI satisfies it.
//
// Snapshot must create all of snaps (full names, all in one pool) in one
// atomic operation, `zfs snapshot` with several names: either all exist
// afterwards or none does. props may be nil.
type Snapshotter interface {
	Snapshot(ctx context.Context, snaps []string, props map[string]string) error
}

// Take executes a plan made by [NewPlan] with the same options:
//
//  1. The pre-hook runs once per due dataset (argv without a shell, with
//     ZSYNC_DATASET, ZSYNC_SNAPSHOT and ZSYNC_HOOK=pre added to the
//     environment, bounded by the hook timeout). A dataset whose pre-hook
//     fails (non-zero exit, timeout, not startable) is skipped.
//  2. One Snapshot call per pool creates the snapshots of all remaining due
//     datasets of that pool atomically.
//  3. The post-hook runs for every dataset whose pre-hook stage was reached,
//     whether or not its snapshot was taken (ZSYNC_SNAPSHOT_OK=1 or 0), so a
//     post-hook can undo what a pre-hook did (thaw a frozen database). It
//     runs even when ctx is cancelled by then, still bounded by the hook
//     timeout. Its failure is reported and undoes nothing.
//
// When ctx is cancelled, datasets not yet snapshotted fail with the context
// error. With o.DryRun no hook runs and Snapshot is not called; the report
// marks the datasets that would be snapshotted as [WouldTake]. Invalid
// options or snapshot names fail the datasets concerned before anything runs.
// Take never panics on bad input; everything it has to say is in the report.
func Take(ctx context.Context, s Snapshotter, p Plan, o Options) Report {
	rep := Report{Time: p.Time, Name: p.Name, DryRun: o.DryRun, NotDue: p.NotDue}
	rep.Results = make([]Result, len(p.Due))
	for i, d := range p.Due {
		rep.Results[i] = Result{Dataset: d.Dataset, Snapshot: d.Snapshot}
	}

	// Validation: nothing runs for a dataset that fails here.
	optErr := o.Validate()
	if optErr == nil && s == nil && !o.DryRun {
		optErr = errors.New("no snapshotter")
	}
	if optErr == nil {
		if _, ok := ParseName(o.Prefix, p.Name); !ok {
			optErr = fmt.Errorf("plan name %q does not carry prefix %q", p.Name, o.Prefix)
		}
	}
	var pending []*Result
	for i := range rep.Results {
		r := &rep.Results[i]
		switch {
		case optErr != nil:
			r.fail(optErr)
		case r.Snapshot != r.Dataset+"@"+p.Name:
			r.fail(fmt.Errorf("snapshot %q is not %s@%s", r.Snapshot, r.Dataset, p.Name))
		default:
			if err := zfs.ValidateSnapshot(r.Snapshot); err != nil {
				r.fail(fmt.Errorf("invalid snapshot name: %w", err))
			} else {
				pending = append(pending, r)
			}
		}
	}
	if o.DryRun {
		for _, r := range pending {
			r.Outcome = WouldTake
		}
		return rep
	}

	// Pre-hooks.
	var hooked []*Result // datasets whose hook stage was reached
	var ready []*Result
	for _, r := range pending {
		if err := ctx.Err(); err != nil {
			r.fail(fmt.Errorf("interrupted before snapshot: %w", err))
			continue
		}
		hooked = append(hooked, r)
		if len(o.PreHook) > 0 {
			r.PreHook = runHook(ctx, HookPre, o.PreHook,
				hookEnv(EnvDataset+"="+r.Dataset, EnvSnapshot+"="+r.Snapshot, EnvHook+"="+HookPre),
				o.hookTimeout())
			if r.PreHook.Err != nil {
				r.Outcome, r.Err = Skipped, r.PreHook.Err
				continue
			}
		}
		ready = append(ready, r)
	}

	// One atomic snapshot call per pool.
	byPool := map[string][]*Result{}
	for _, r := range ready {
		pool := zfs.Pool(r.Dataset)
		byPool[pool] = append(byPool[pool], r)
	}
	pools := make([]string, 0, len(byPool))
	for pool := range byPool {
		pools = append(pools, pool)
	}
	sort.Strings(pools)
	for _, pool := range pools {
		rs := byPool[pool]
		if err := ctx.Err(); err != nil {
			for _, r := range rs {
				r.fail(fmt.Errorf("interrupted before snapshot: %w", err))
			}
			continue
		}
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Snapshot
		}
		if err := s.Snapshot(ctx, names, nil); err != nil {
			for _, r := range rs {
				r.fail(fmt.Errorf("snapshot of %d dataset(s) in pool %s: %w", len(rs), pool, err))
			}
			continue
		}
		for _, r := range rs {
			r.Outcome = Taken
		}
	}

	// Post-hooks, even after cancellation: they may undo a pre-hook.
	if len(o.PostHook) > 0 {
		hctx := context.WithoutCancel(ctx)
		for _, r := range hooked {
			ok := "0"
			if r.Outcome == Taken {
				ok = "1"
			}
			r.PostHook = runHook(hctx, HookPost, o.PostHook,
				hookEnv(EnvDataset+"="+r.Dataset, EnvSnapshot+"="+r.Snapshot, EnvHook+"="+HookPost, EnvSnapshotOK+"="+ok),
				o.hookTimeout())
		}
	}
	return rep
}
