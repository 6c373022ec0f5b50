package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/zfs"
)

func snapCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "snap",
		Usage:     "take the snapshots that are due for the jobs (all push and snap jobs when none named)",
		ArgsUsage: "[JOB...]",
		Description: "A dataset is due when its newest snapshot with the job's prefix is at least the job's\n" +
			"interval old, so cron may run this every minute. All due datasets of a pool are\n" +
			"snapshotted in one atomic zfs snapshot call.",
		Flags: []cli.Flag{dryRunFlag, waitFlag},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "pull" })
			if err != nil {
				return err
			}
			z := e.newZFS(cfg)
			// snap jobs get a run report (and their samples in the metrics
			// textfile); a push job's report is its replication's, which
			// a snapshot alone must not replace
			var reports []jobResult
			err = e.forEachJob(c.Context, c, cfg, jobs, func(ctx context.Context, j *jobConfig, log zerolog.Logger) error {
				so, err := e.snapJob(ctx, z, j, c.Bool("dry-run"), time.Now(), log)
				if j.Type == "snap" {
					reports = append(reports, snapJobResult(j, so, err))
				}
				return err
			})
			e.finishReports(c, cfg, reports, err)
			return err
		},
	}
}

// snapJob takes the job's due snapshots and says what it found and did
// (nil when the job takes no snapshots or the listing failed).
func (e *env) snapJob(ctx context.Context, z *zfs.CLI, j *jobConfig, dryRun bool, now time.Time, log zerolog.Logger) (*snapOutcome, error) {
	if j.Snapshot.Interval.Duration <= 0 {
		log.Info().Msg("no [job.snapshot] interval: this job takes no snapshots")
		return nil, nil
	}
	filter, err := zfs.ParseFilter(j.Datasets)
	if err != nil {
		return nil, err
	}
	list, err := z.List(ctx, filter.Roots(), zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume, zfs.Snapshot}})
	if err != nil {
		return nil, fmt.Errorf("list %v: %w", filter.Roots(), err)
	}
	opts := snapOptions(j, dryRun)
	plan := snap.NewPlan(list, filter, opts, now)
	for _, d := range plan.NotDue {
		if d.FutureDated {
			// every run, until someone acts: no snapshot is taken until
			// the clock passes it, maybe for years
			log.Warn().Str("dataset", d.Dataset).Str("snapshot", d.Dataset+"@"+d.Newest).Msg(futureDatedWarning(d))
			continue
		}
		log.Debug().Str("dataset", d.Dataset).Msg("not due: " + d.Reason)
	}
	if len(plan.Due) == 0 {
		log.Info().Int("datasets", len(plan.NotDue)).Msg("no snapshot due")
		return newSnapOutcome(plan, nil), nil
	}
	rep := snap.Take(ctx, z, plan, opts)
	so := newSnapOutcome(plan, &rep)
	for _, r := range rep.Results {
		ev := log.Info()
		if !r.OK() {
			ev = log.Error().Err(r.Err)
		}
		ev.Str("dataset", r.Dataset).Str("snapshot", r.Snapshot).Msg(r.Outcome.String())
		if dryRun {
			fmt.Fprintf(e.stdout, "%s %s\n", r.Outcome, r.Snapshot)
		}
	}
	if err := rep.Err(); err != nil {
		failed, ok := 0, 0
		for _, r := range rep.Results {
			if r.OK() {
				ok++
			} else {
				failed++
			}
		}
		return so, &PartialError{Failed: failed, Succeeded: ok, Err: err}
	}
	return so, nil
}

// futureDatedWarning says that a dataset gets no snapshot because its newest
// one is dated in the future (snap.Decision.FutureDated), and what to do.
// The due rule stays as it is (a clock that jumps must not bring a burst of
// snapshots, see snap.NewPlan); instead every run warns, the run report
// carries the warning and the metrics say so (state.Metrics).
func futureDatedWarning(d snap.Decision) string {
	return fmt.Sprintf("snapshots stopped: %s; rename %s@%s to a name without the job's prefix (or destroy it) to resume them",
		d.Reason, d.Dataset, d.Newest)
}
