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

// pruneJob prunes the sides of a job that have rules: the source (local for
// push and snap jobs) and the target (through the endpoint for push jobs,
// local for pull jobs).
func (e *env) pruneJob(ctx context.Context, cfg *Config, j *jobConfig, dryRun bool, now time.Time, log zerolog.Logger) error {
	z := e.newZFS(cfg)
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
			ep, closeEP, err := e.openTargetEndpoint(ctx, cfg, j)
			if err != nil {
				// the local target's prune below still runs: a far side
				// that is down must not let the backup disk fill up
				total.failed = append(total.failed, fmt.Errorf("prune far source: %w", err))
				break
			}
			defer closeEP()
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
			ep, closeEP, err := e.openTargetEndpoint(ctx, cfg, j)
			if err != nil {
				return fmt.Errorf("prune far target: %w", err)
			}
			defer closeEP()
			d = ep
		}
		inRoot := func(ds string) bool { return zfs.IsDescendant(ds, j.Root) && ds != j.Root }
		total.add(e.pruneSide(ctx, d, []string{j.Root}, inRoot, pol, targetSide, dryRun, now, log))
	}
	return total.err()
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
				kind, tid, guid, ok := zsync.ParseBookmark(x.Short())
				if !ok || guid != x.GUID || kind != zsync.Cursor {
					continue
				}
				txgs = append(txgs, x.CreateTXG)
				protect[x.GUID] = "replication cursor of target " + string(tid)
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
