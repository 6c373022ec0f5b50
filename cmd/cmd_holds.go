package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

func holdsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "holds",
		Usage: "list or release the holds and bookmarks zsync owns",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list every hold and bookmark zsync owns on both sides of the jobs",
				ArgsUsage: "[JOB...]",
				Action:    func(c *cli.Context) error { return e.holds(c, false) },
			},
			{
				Name:      "release-stale",
				Usage:     "release the stale holds and destroy the stale bookmarks (older cursors, finished steps)",
				ArgsUsage: "[JOB...]",
				Flags:     []cli.Flag{dryRunFlag},
				Action:    func(c *cli.Context) error { return e.holds(c, true) },
			},
		},
	}
}

func (e *env) holds(c *cli.Context, release bool) error {
	cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
	if err != nil {
		return err
	}
	var failures []error
	ok := 0
	for _, j := range jobs {
		job, cleanup, err := e.buildJob(cfg, j, true, e.log)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		err = func() error {
			defer cleanup()
			src, err := job.Source(c.Context)
			if err != nil {
				return err
			}
			dst, err := job.Target(c.Context)
			if err != nil {
				return err
			}
			for _, side := range []struct {
				name  string
				ep    zsync.Endpoint
				roots []string
			}{{"source", src, job.Datasets.Roots()}, {"target", dst, []string{job.TargetRoot}}} {
				if err := e.holdsSide(c.Context, j.Name, side.name, side.ep, side.roots, release, c.Bool("dry-run")); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			failures = append(failures, fmt.Errorf("job %s: %w", j.Name, err))
		} else {
			ok++
		}
	}
	return outcome(ok, failures)
}

func (e *env) holdsSide(ctx context.Context, job, side string, ep zsync.Endpoint, roots []string, release, dryRun bool) error {
	list, err := ep.List(ctx, roots, zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume, zfs.Snapshot, zfs.Bookmark}})
	if errors.Is(err, zfs.ErrDatasetNotFound) && side == "target" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	h, err := zsync.HoldsOf(ctx, ep, list)
	if err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	abs, foreign := zsync.ListAbstractions(list, h)
	if !release {
		for _, a := range abs {
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\ttarget=%s\n", job, side, a.Kind, a, a.Target)
		}
		for _, f := range foreign {
			fmt.Fprintf(e.stdout, "%s\t%s\tforeign\t%s\n", job, side, f)
		}
		return nil
	}
	stale := zsync.StaleAll(abs, nil)
	var bookmarks []string
	rel := map[string][]string{}
	for _, a := range stale {
		verb := "destroy"
		if a.Kind.IsHold() {
			verb = "release"
			rel[a.Tag] = append(rel[a.Tag], a.Name)
		} else {
			bookmarks = append(bookmarks, a.Name)
		}
		if dryRun {
			verb = "would " + verb
		}
		fmt.Fprintf(e.stdout, "%s %s %s (%s, stale)\n", verb, side, a, a.Kind)
	}
	if dryRun {
		return nil
	}
	if len(bookmarks) > 0 {
		if err := ep.DestroyBookmarks(ctx, bookmarks); err != nil {
			return fmt.Errorf("%s: destroy stale bookmarks: %w", side, err)
		}
	}
	for tag, snaps := range rel {
		if err := ep.Release(ctx, tag, snaps); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return fmt.Errorf("%s: release %s: %w", side, tag, err)
		}
	}
	return nil
}
