package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs"
)

// Flags shared by the commands that change things.
var (
	dryRunFlag = &cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "run only read-only zfs calls and print what would be done"}
	waitFlag   = &cli.BoolFlag{Name: "wait", Usage: "wait for the job lock instead of exiting 75 at once"}
	jsonFlag   = &cli.BoolFlag{Name: "json", Usage: "print the run report as JSON on stdout"}
)

// newZFS returns the local zfs CLI, logging every invocation at debug.
func (e *env) newZFS(cfg *Config) *zfs.CLI {
	opts := []zfs.Option{zfs.WithTrace(func(argv []string, d time.Duration, err error) {
		ev := e.log.Debug()
		if err != nil {
			ev = e.log.Debug().Err(err)
		}
		ev.Strs("argv", argv).Dur("duration", d).Msg("zfs")
	})}
	if cfg != nil && cfg.Global.ZFSBinary != "" {
		opts = append(opts, zfs.WithBinary(cfg.Global.ZFSBinary))
	}
	return zfs.New(opts...)
}

// forEachJob runs fn for every job under its lock, one after the other. A job
// whose lock is busy ends the command with exit 75 when no other job failed
// (the other jobs still run); a failing job does not stop the others, and
// its failure decides the exit code (1 or 3) over a busy lock. An
// interruption (SIGINT, SIGTERM) stops the loop before the next job; the
// jobs' failures so far are kept and joined with it, so that the command
// exits 130 only when nothing failed for real (see ExitCode): a job's
// error that came of the interruption is marked so (markInterrupted), any
// other stays a failure.
func (e *env) forEachJob(ctx context.Context, c *cli.Context, cfg *Config, jobs []*jobConfig, fn func(ctx context.Context, j *jobConfig, log zerolog.Logger) error) error {
	var errs []error
	var stopped error // the interruption, before the jobs not run
	ok := 0
	locked := false
	for i, j := range jobs {
		if ctx.Err() != nil {
			stopped = interruptedBefore(jobs[i:])
			break
		}
		log := e.log.With().Str("job", j.Name).Logger()
		lock, err := state.Acquire(ctx, cfg.Global.StateDir, j.Name, c.Bool("wait"))
		if err != nil {
			if errors.Is(err, state.ErrLocked) {
				// not logged here: the command's error carries it, and Run
				// logs that once
				locked = true
				errs = append(errs, err)
				continue
			}
			if ctx.Err() != nil { // while waiting for the lock (--wait)
				stopped = fmt.Errorf("%w: %w", interruptedBefore(jobs[i:]), err)
				break
			}
			// the state dir is unusable: so it is for every job
			errs = append(errs, err)
			break
		}
		err = fn(ctx, j, log)
		lock.Release()
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.Name, markInterrupted(ctx, err)))
			continue
		}
		ok++
	}
	err := jobsOutcome(errs, ok, locked)
	switch {
	case stopped == nil:
		return err
	case err == nil:
		return stopped
	default:
		return errors.Join(err, stopped)
	}
}

// jobsOutcome is the error of the jobs that ran: nil when none failed, the
// error itself when it is the only one and a busy lock or a *PartialError
// of datasets, else a *PartialError counting jobs.
func jobsOutcome(errs []error, ok int, locked bool) error {
	if len(errs) == 0 {
		return nil
	}
	var pe *PartialError
	if len(errs) == 1 && (locked || errors.As(errs[0], &pe)) {
		return errs[0]
	}
	return &PartialError{Failed: len(errs), Succeeded: ok, Unit: "jobs", Err: errors.Join(errs...)}
}

// interruptedBefore is the error of an interruption that came before the
// given jobs ran.
func interruptedBefore(jobs []*jobConfig) error {
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = j.Name
	}
	if len(names) == 1 {
		return fmt.Errorf("%w before job %s", errInterrupted, names[0])
	}
	return fmt.Errorf("%w before jobs %s", errInterrupted, strings.Join(names, ", "))
}
