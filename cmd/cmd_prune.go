package cmd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/prune"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

func pruneCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "apply retention on the source side and, for push jobs, on the target side",
		ArgsUsage: "[JOB...]",
		Description: "A snapshot is destroyed only when no rule keeps it; no rules destroy nothing.\n" +
			"Never destroyed: held snapshots, the snapshots replication cursors point at, snapshots\n" +
			"outside every rule's regex, anything outside the job's datasets, bookmarks.\n" +
			"The target prune touches only the replicas of the job's own selected sources (where\n" +
			"replication puts them below root): never another job's replicas below a shared root,\n" +
			"never copies renamed aside by on_diverged = \"rotate\" (*.zsync-rotated-*), never other\n" +
			"datasets below root. A pull job lists its sources on the far side; when that fails,\n" +
			"its target is not pruned in that run (an error): a name below root does not prove\n" +
			"whose replica a dataset is.\n" +
			"--dry-run prints every decision with the rule that kept or condemned each snapshot.",
		Flags: []cli.Flag{dryRunFlag, waitFlag},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(*jobConfig) bool { return true })
			if err != nil {
				return err
			}
			return e.forEachJob(c.Context, c, cfg, jobs, func(ctx context.Context, j *jobConfig, log zerolog.Logger) error {
				return e.pruneJob(ctx, cfg, j, c.Bool("dry-run"), time.Now(), log)
			})
		},
	}
}

// lazyFar opens the far endpoint of a job once, on first use, and
// remembers a failure to open it.
type lazyFar struct {
	open   func(ctx context.Context) (zsync.Endpoint, func(), error)
	tried  bool
	ep     zsync.Endpoint
	err    error
	closer func()
}

func (f *lazyFar) get(ctx context.Context) (zsync.Endpoint, error) {
	if !f.tried {
		f.tried = true
		f.ep, f.closer, f.err = f.open(ctx)
	}
	return f.ep, f.err
}

func (f *lazyFar) close() {
	if f.closer != nil {
		f.closer()
	}
}

// pruneJob prunes the sides of a job that have rules: the source (local for
// push and snap jobs) and the target (through the endpoint for push jobs,
// local for pull jobs).
func (e *env) pruneJob(ctx context.Context, cfg *Config, j *jobConfig, dryRun bool, now time.Time, log zerolog.Logger) error {
	z := e.newZFS(cfg)
	far := &lazyFar{open: func(ctx context.Context) (zsync.Endpoint, func(), error) { return e.openTargetEndpoint(ctx, cfg, j) }}
	defer far.close()
	var total pruneTotals
	if len(j.Prune.Source) > 0 {
		pol, err := buildPrunePolicy(j.Prune.Source)
		if err != nil {
			return err
		}
		filter, err := zfs.ParseFilter(j.Datasets)
		if err != nil {
			return err
		}
		switch j.Type {
		case "push", "snap":
			total.add(e.pruneSide(ctx, z, filter.Roots(), filter.Match, pol, sourceSide, dryRun, now, log))
		case "pull":
			// the far side's snapshots, through serve (its [[serve.client]]
			// must allow it with prune_send = true)
			ep, err := far.get(ctx)
			if err != nil {
				// the local target's prune below still runs: a far side
				// that is down must not let the backup disk fill up
				total.failed = append(total.failed, fmt.Errorf("prune far source: %w", err))
				break
			}
			total.add(e.pruneSide(ctx, ep, filter.Roots(), filter.Match, pol, sourceSide, dryRun, now, log))
		}
	}
	if len(j.Prune.Target) > 0 && j.Type != "snap" {
		pol, err := buildPrunePolicy(j.Prune.Target)
		if err != nil {
			return err
		}
		var d prune.Destroyer = z
		if j.Type == "push" {
			ep, err := far.get(ctx)
			if err != nil {
				// keep the source prune's outcome: exit 3 when it went well
				total.failed = append(total.failed, fmt.Errorf("prune far target: %w", err))
				return total.err()
			}
			d = ep
		}
		own, err := e.ownTargets(ctx, z, far, j, log)
		if err != nil {
			total.failed = append(total.failed, fmt.Errorf("prune target: %w", err))
			return total.err()
		}
		total.add(e.pruneSide(ctx, d, []string{j.Root}, own, pol, targetSide, dryRun, now, log))
	}
	return total.err()
}

// ownTargets returns which datasets the target prune of job j may touch:
// the targets its own selected sources map to, as replication maps them
// (sync.TargetName below root, after strip_components; sources that are
// zsync placeholders are not replicated and do not count). The sources of
// a push job are local; a pull job's are listed on the far side. When that
// listing fails, ownTargets fails: guessing a replica's source from its
// name below root would take other jobs' replicas below a shared or nested
// root (and datasets that are no replicas) for this job's.
func (e *env) ownTargets(ctx context.Context, z *zfs.CLI, far *lazyFar, j *jobConfig, log zerolog.Logger) (func(string) bool, error) {
	filter, err := zfs.ParseFilter(j.Datasets)
	if err != nil {
		return nil, err
	}
	strip := j.Replication.StripComponents
	opts := zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume}, UserProps: []string{zsync.PlaceholderProperty}}
	roots := filter.Roots()
	var sources []zfs.Entry
	if j.Type == "pull" {
		ep, err := far.get(ctx)
		if err == nil {
			sources, err = ep.List(ctx, roots, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("the far side's datasets cannot be listed, so which datasets below %s are this job's replicas cannot be told and nothing there is pruned in this run: %w", j.Root, err)
		}
	} else {
		sources, err = z.List(ctx, roots, opts)
		if err != nil {
			return nil, fmt.Errorf("list the job's sources %s: %w", strings.Join(roots, ", "), err)
		}
	}
	return targetsOf(sources, filter, j.Root, strip), nil
}

// targetsOf returns the set of targets below root that the selected,
// non-placeholder datasets of sources map to.
func targetsOf(sources []zfs.Entry, filter zfs.Filter, root string, strip int) func(string) bool {
	own := map[string]bool{}
	for _, x := range sources {
		if !x.IsDataset() || !filter.Match(x.Name) || zsync.IsPlaceholder(x) {
			continue
		}
		// a source that cannot be mapped is not replicated either
		if t, err := zsync.TargetName(root, x.Name, strip); err == nil {
			own[t] = true
		}
	}
	return func(ds string) bool { return own[ds] }
}

type pruneSideKind int

const (
	sourceSide pruneSideKind = iota
	targetSide
)

func (k pruneSideKind) String() string {
	if k == sourceSide {
		return "source"
	}
	return "target"
}

type pruneTotals struct {
	ok     int
	failed []error
}

func (t *pruneTotals) add(o pruneTotals) {
	t.ok += o.ok
	t.failed = append(t.failed, o.failed...)
}

func (t pruneTotals) err() error { return outcome(t.ok, t.failed) }

// pruneSide applies pol to every dataset below roots that match selects.
// On the source, snapshots at or before the oldest cursor of any target are
// "replicated" and the cursor snapshots are protected; on the target, each
// dataset's newest snapshot (the next incremental base) is protected.
func (e *env) pruneSide(ctx context.Context, d prune.Destroyer, roots []string, selects func(string) bool, pol prune.Policy, side pruneSideKind, dryRun bool, now time.Time, log zerolog.Logger) pruneTotals {
	var t pruneTotals
	types := []zfs.Type{zfs.Filesystem, zfs.Volume, zfs.Snapshot, zfs.Bookmark}
	list, err := d.List(ctx, roots, zfs.ListOptions{Types: types, UserProps: []string{zsync.PlaceholderProperty}})
	if err != nil {
		t.failed = append(t.failed, fmt.Errorf("%s: list %s: %w", side, strings.Join(roots, ", "), err))
		return t
	}
	var datasets []string
	byDS := map[string][]zfs.Entry{}
	for _, x := range list {
		if x.IsDataset() {
			if selects(x.Name) && !zsync.IsPlaceholder(x) {
				datasets = append(datasets, x.Name)
			}
			continue
		}
		byDS[x.Dataset()] = append(byDS[x.Dataset()], x)
	}
	sort.Strings(datasets)
	for _, ds := range datasets {
		snaps := prune.SnapshotsFromEntries(ds, byDS[ds])
		protect := map[uint64]string{}
		if side == sourceSide {
			var txgs []uint64
			for _, x := range byDS[ds] {
				if x.Type != zfs.Bookmark {
					continue
				}
				short, owner := x.Short(), ""
				if base, client, bound := zsync.SplitClient(short); bound {
					short, owner = base, " (of serve client "+client+")"
				}
				kind, tid, guid, ok := zsync.ParseBookmark(short)
				if !ok || guid != x.GUID || kind != zsync.Cursor {
					continue
				}
				txgs = append(txgs, x.CreateTXG)
				protect[x.GUID] = "replication cursor of target " + string(tid) + owner
			}
			snaps = prune.MarkReplicated(snaps, txgs)
		} else {
			var newest *prune.Snapshot
			for i := range snaps {
				if newest == nil || snaps[i].CreateTXG > newest.CreateTXG {
					newest = &snaps[i]
				}
			}
			if newest != nil {
				protect[newest.GUID] = "newest snapshot: the next incremental base"
			}
		}
		decisions := prune.Apply(snaps, pol, protect, now)
		dlog := log.With().Str("dataset", ds).Str("side", side.String()).Logger()
		for _, dec := range decisions {
			if dec.Keep && len(dec.Reasons) == 1 && strings.HasPrefix(dec.Reasons[0], "held") {
				dlog.Info().Str("snapshot", ds+"@"+dec.Snapshot.Name).Msg("kept only because it is held")
			}
		}
		if dryRun {
			for _, dec := range decisions {
				verb := "keep"
				if !dec.Keep {
					verb = "destroy"
				}
				fmt.Fprintf(e.stdout, "%s %s@%s (%s)\n", verb, ds, dec.Snapshot.Name, strings.Join(dec.Reasons, "; "))
			}
		}
		if len(prune.Destroying(decisions)) == 0 {
			t.ok++
			continue
		}
		if !dryRun {
			// said before the destroy: a run killed mid-destroy still leaves
			// a record of what retention condemned
			dlog.Info().Strs("snapshots", destroyingNames(decisions)).Msg("pruning")
		}
		rep := prune.Execute(ctx, d, ds, decisions, dryRun)
		for name, why := range rep.Skipped {
			dlog.Warn().Str("snapshot", ds+"@"+name).Msg("kept: " + why)
		}
		if len(rep.Destroyed) > 0 {
			dlog.Info().Int("destroyed", len(rep.Destroyed)).Strs("snapshots", rep.Destroyed).Msg("pruned")
		}
		if !rep.OK() {
			var errs []error
			for name, err := range rep.Failed {
				dlog.Error().Err(err).Str("snapshot", ds+"@"+name).Msg("destroy failed")
				errs = append(errs, fmt.Errorf("%s@%s: %w", ds, name, err))
			}
			t.failed = append(t.failed, fmt.Errorf("%s %s: %w", side, ds, errors.Join(errs...)))
			continue
		}
		t.ok++
	}
	return t
}

// destroyingNames are the short names of the snapshots decisions destroy.
func destroyingNames(decisions []prune.Decision) []string {
	var names []string
	for _, d := range prune.Destroying(decisions) {
		names = append(names, d.Snapshot.Name)
	}
	return names
}
