package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

const healDescription = `Repairs damaged snapshots of the push and pull jobs (or of the named ones) from their twins
on the other side. For every pool of a job, on both sides, it reads the permanent errors
'zpool status -v' lists; a damaged snapshot of one of the job's datasets is repaired from
the snapshot with its GUID on the other side by a corrective receive (zfs receive -c,
OpenZFS 2.2 and later): only blocks that read back damaged are rewritten, from data that
matches the checksums the pool has for them. Damaged files of a dataset itself are repaired
from its newest snapshot that has a twin, which shares their blocks unless they changed
since. Nothing is destroyed or rolled back, on either side.

Afterwards run 'zpool scrub' on the pool: a scrub finds any damage left, and the list of
permanent errors clears once scrubs find none. Exit codes: 0 every repair made (or
nothing to repair), 3 some made and some not (a repair failed, or damage has no twin),
1 none made, or the job cannot be looked at. An OpenZFS older than 2.2 on the damaged
side is refused with a message.

--dry-run lists the repairs it would make.`

func healCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "heal",
		Usage:       "repair snapshots zpool reports damaged from their twins on the other side (zfs receive -c, OpenZFS 2.2+)",
		ArgsUsage:   "[JOB...]",
		Description: healDescription,
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list the repairs, make none"}},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if j.Type == "snap" {
					return usageErrorf("%s is a snap job: heal repairs replicated snapshots (push and pull jobs)", j.Name)
				}
			}
			// under the job's lock: no run receives into what is repaired
			return e.forEachJob(c.Context, c, cfg, jobs, func(ctx context.Context, j *jobConfig, _ zerolog.Logger) error {
				n, failures, err := e.healJob(ctx, cfg, j, c.Bool("dry-run"))
				if err != nil {
					return err
				}
				return outcome(n, failures)
			})
		},
	}
}

// healJob plans and makes one job's repairs; it returns how many were made
// and what failed (repairs, and damage without a twin).
func (e *env) healJob(ctx context.Context, cfg *Config, j *jobConfig, dryRun bool) (int, []error, error) {
	job, cleanup, err := e.buildJob(cfg, j, true, e.log)
	if err != nil {
		return 0, nil, err
	}
	defer cleanup()
	src, err := job.Source(ctx)
	if err != nil {
		return 0, nil, err
	}
	dst, err := job.Target(ctx)
	if err != nil {
		return 0, nil, err
	}
	sl, err := src.List(ctx, job.Datasets.Roots(), zfs.ListOptions{})
	if err != nil {
		return 0, nil, fmt.Errorf("list source: %w", err)
	}
	dl, err := dst.List(ctx, []string{job.TargetRoot}, zfs.ListOptions{})
	if err != nil && !errors.Is(err, zfs.ErrDatasetNotFound) {
		return 0, nil, fmt.Errorf("list target: %w", err)
	}
	pairs := map[string]string{}
	for _, x := range sl {
		if x.IsDataset() && job.Datasets.Match(x.Name) && !zsync.IsPlaceholder(x) {
			if t, err := job.Map(x.Name); err == nil {
				pairs[x.Name] = t
			}
		}
	}
	// each pool once, by a dataset of the job in it
	damage := func(ep zsync.Endpoint, side string, datasets []string) ([]string, error) {
		seen := map[string]bool{}
		var out []string
		for _, ds := range datasets {
			if seen[zfs.Pool(ds)] {
				continue
			}
			seen[zfs.Pool(ds)] = true
			pe, err := ep.PoolErrors(ctx, ds)
			if err != nil {
				return nil, fmt.Errorf("the permanent errors of pool %s (%s): %w", zfs.Pool(ds), side, olderFarSide(err))
			}
			if pe.Other > 0 {
				fmt.Fprintf(e.stdout, "%s: pool %s (%s) has %d damaged object(s) outside the job's datasets (pool metadata, others' datasets): not the job's to repair\n", j.Name, zfs.Pool(ds), side, pe.Other)
			}
			out = append(out, pe.Damaged...)
		}
		return out, nil
	}
	srcDamaged, err := damage(src, "source", job.Datasets.Roots())
	if err != nil {
		return 0, nil, err
	}
	dstDamaged, err := damage(dst, "target", []string{job.TargetRoot})
	if err != nil {
		return 0, nil, err
	}
	repairs, left := zsync.PlanRepairs(pairs, sl, dl, srcDamaged, dstDamaged)
	var failures []error
	for _, u := range left {
		fmt.Fprintf(e.stdout, "%s: cannot repair %s (%s): %s\n", j.Name, u.Name, u.Side, u.Why)
		failures = append(failures, fmt.Errorf("%s (%s): %s", u.Name, u.Side, u.Why))
	}
	if len(repairs) == 0 && len(left) == 0 {
		fmt.Fprintf(e.stdout, "%s: no damage reported in its datasets\n", j.Name)
	}
	made := 0
	slices.SortFunc(repairs, func(a, b zsync.Repair) int { return strings.Compare(a.Damaged, b.Damaged) })
	for _, r := range repairs {
		if dryRun {
			fmt.Fprintf(e.stdout, "%s: would repair %s (%s) from %s: %s\n", j.Name, r.Damaged, r.Side, r.Twin, r.Why)
			continue
		}
		damaged, healthy := src, dst
		if r.Side == "target" {
			damaged, healthy = dst, src
		}
		if err := zsync.RunRepair(ctx, damaged, healthy, r); err != nil {
			fmt.Fprintf(e.stdout, "%s: failed to repair %s (%s): %v\n", j.Name, r.Damaged, r.Side, err)
			failures = append(failures, err)
			continue
		}
		made++
		fmt.Fprintf(e.stdout, "%s: repaired %s (%s) from %s; run zpool scrub %s to confirm\n", j.Name, r.Damaged, r.Side, r.Twin, zfs.Pool(r.Damaged))
	}
	return made, failures, nil
}
