package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

const releaseStaleHelp = `Inside every relationship it finds on the named jobs' datasets (the sources
and the target root of each job, on both sides), it removes what is provably
superseded: older cursors, tentative cursors and step holds the cursor has
passed, older last-received holds.

It also judges every relationship against ALL configured push and pull jobs
(whichever jobs are named), asking each job's far side which relationships the
job uses now:
   live       a configured job uses it: only superseded objects go
   orphaned   no configured job uses it: a one-off replication, or a job whose
              root, strip_components or datasets changed; its cursor keeps its
              snapshot and makes not_replicated keep the snapshots after it
   unknown    something that could own it cannot be checked from here: a job
              whose far side is down or whose target root is missing (a
              backup pool not imported now) or never made, the send area or
              receive_root of a [[serve.client]] of this host, any dataset on
              a far host (other hosts' jobs may use it), and every
              last-received hold (a push from another host may own it)

Orphaned and unknown relationships are only listed (dataset, id, objects, the
snapshots they pin, why), never touched, unless --orphaned is given: then the
orphaned ones (never the unknown ones) lose their zsync bookmarks and zsync
holds. Snapshots are never destroyed; objects whose names do not parse or
whose GUID does not match their name are never touched. One-off replications
(zsync push SRC DST), and jobs of other hosts that reach this one without a
[[serve.client]] entry, look orphaned: read the list (or run --orphaned
--dry-run) before --orphaned.
With --orphaned it takes the lock of every configured push and pull job, so no
run creates a relationship while it judges (--wait waits for them); one-off
runs have no such lock: do not use --orphaned while one runs. A job that
could not be checked makes --orphaned exit 3.`

func holdsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "holds",
		Usage: "list or release the holds and bookmarks zsync owns",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list every hold and bookmark zsync owns on both sides of the jobs",
				ArgsUsage: "[JOB...]",
				Action:    func(c *cli.Context) error { return e.holdsList(c) },
			},
			{
				Name:        "release-stale",
				Usage:       "release superseded holds and bookmarks; list orphaned relationships (release them with --orphaned)",
				ArgsUsage:   "[JOB...]",
				Description: releaseStaleHelp,
				Flags: []cli.Flag{dryRunFlag, waitFlag, &cli.BoolFlag{Name: "orphaned",
					Usage: "also release the orphaned relationships it lists: destroy their zsync bookmarks, release their zsync holds (never snapshots)"}},
				Action: func(c *cli.Context) error { return e.releaseStale(c) },
			},
		},
	}
}

func (e *env) holdsList(c *cli.Context) error {
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
				abs, foreign, _, err := listSide(c.Context, side.ep, side.roots, side.name == "target", job.StepResolver(rootTID(c.Context, job, dst)))
				if err != nil {
					return fmt.Errorf("%s: %w", side.name, err)
				}
				for _, a := range abs {
					fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\ttarget=%s\n", j.Name, side.name, a.Kind, a, a.Target)
				}
				for _, f := range foreign {
					fmt.Fprintf(e.stdout, "%s\t%s\tforeign\t%s\n", j.Name, side.name, f)
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

// rootTID reads the id of the job's target root from dst ("" when it has
// none or cannot be read: per-root step holds then keep the root's id).
func rootTID(ctx context.Context, job *zsync.Job, dst zsync.Endpoint) zsync.TargetID {
	props, err := dst.Get(ctx, []string{job.TargetRoot}, []string{zsync.TargetIDProperty})
	if err != nil {
		return ""
	}
	tid, err := zsync.ParseTargetID(props[job.TargetRoot][zsync.TargetIDProperty])
	if err != nil {
		return ""
	}
	return tid
}

// listSide lists roots recursively with the holds of held snapshots and
// finds zsync's abstractions there. With optional, roots that do not exist
// (a target root before the first run) are skipped.
func listSide(ctx context.Context, ep zsync.Endpoint, roots []string, optional bool, resolve zsync.StepResolver) ([]zsync.Abstraction, []string, []zfs.Entry, error) {
	types := zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume, zfs.Snapshot, zfs.Bookmark}}
	var list []zfs.Entry
	for _, r := range roots {
		l, err := ep.List(ctx, []string{r}, types)
		if errors.Is(err, zfs.ErrDatasetNotFound) && optional {
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		list = append(list, l...)
	}
	h, err := zsync.HoldsOf(ctx, ep, list)
	if err != nil {
		return nil, nil, nil, err
	}
	abs, foreign := zsync.ListAbstractionsWith(list, h, resolve)
	return abs, foreign, list, nil
}

// holdsScan is one place release-stale looks at: this host (every local
// root of the named jobs, listed once) or the far host of one job.
type holdsScan struct {
	where   string // "this host" or "<host> (far side of job J)"
	ep      zsync.Endpoint
	sources []string // roots that must exist
	targets []string // roots that may not exist yet (target roots)
	claims  []zsync.Claim
	closeEP func()
	openErr error
}

// holdsScans returns where release-stale looks for the named jobs: the
// sources and the target root of each job, on this host through the local
// zfs (each dataset once, whichever jobs share it) and on far hosts through
// each job's far side.
func (e *env) holdsScans(ctx context.Context, cfg *Config, jobs []*jobConfig, lv *liveness) []*holdsScan {
	local := &holdsScan{where: "this host", ep: e.newZFS(cfg), claims: lv.local, closeEP: func() {}}
	var scans []*holdsScan
	for _, j := range jobs {
		f, err := zfs.ParseFilter(j.Datasets)
		if err != nil {
			scans = append(scans, &holdsScan{where: "job " + j.Name, openErr: err})
			continue
		}
		srcRoots, dstRoots := f.Roots(), []string{j.Root}
		localSrc, localDst := j.Type == "push" || j.Remote == nil, j.Type == "pull" || j.Remote == nil
		if localSrc {
			local.sources = append(local.sources, srcRoots...)
		}
		if localDst {
			local.targets = append(local.targets, dstRoots...)
		}
		if localSrc && localDst {
			continue
		}
		s := &holdsScan{where: fmt.Sprintf("%s (far side of job %s)", j.Remote.Host, j.Name), claims: farClaims(j)}
		if localSrc {
			s.targets = dstRoots
		} else {
			s.sources = srcRoots
		}
		s.ep, s.closeEP, s.openErr = e.openTargetEndpoint(ctx, cfg, j)
		scans = append(scans, s)
	}
	local.sources, local.targets = minimalRoots(local.sources, local.targets)
	return append([]*holdsScan{local}, scans...)
}

// minimalRoots drops duplicates and the roots below another root (of either
// kind), whose recursive listing already shows them.
func minimalRoots(sources, targets []string) (src, dst []string) {
	all := slices.Concat(sources, targets)
	covered := func(r string) bool {
		for _, o := range all {
			if o != r && zfs.IsDescendant(r, o) {
				return true
			}
		}
		return false
	}
	for _, r := range sources {
		if !covered(r) && !slices.Contains(src, r) {
			src = append(src, r)
		}
	}
	for _, r := range targets {
		if !covered(r) && !slices.Contains(src, r) && !slices.Contains(dst, r) {
			dst = append(dst, r)
		}
	}
	slices.Sort(src)
	slices.Sort(dst)
	return src, dst
}

func (e *env) releaseStale(c *cli.Context) error {
	cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
	if err != nil {
		return err
	}
	ctx := c.Context
	orphaned, dryRun := c.Bool("orphaned"), c.Bool("dry-run")
	if orphaned && !dryRun {
		unlock, err := lockReplicationJobs(ctx, cfg, c.Bool("wait"))
		if err != nil {
			return err
		}
		defer unlock()
	}
	lv := e.liveness(ctx, cfg)
	for _, err := range lv.unchecked {
		e.log.Warn().Err(err).Msg("cannot learn which relationships this job uses: what it could own is kept as unknown")
	}
	var failures []error
	if orphaned {
		// asked to release orphans but some jobs could not be asked: what
		// they could own was kept, and the exit code says the work is partial
		failures = append(failures, lv.unchecked...)
	}
	ok, kept := 0, 0
	for _, s := range e.holdsScans(ctx, cfg, jobs, lv) {
		if s.openErr != nil {
			failures = append(failures, fmt.Errorf("%s: %w", s.where, s.openErr))
			continue
		}
		n, err := e.releaseScan(ctx, s, lv, orphaned, dryRun)
		s.closeEP()
		kept += n
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", s.where, err))
			continue
		}
		ok++
	}
	if kept > 0 && !orphaned {
		fmt.Fprintf(e.stdout, "%d orphaned relationship(s) listed and kept: `zsync holds release-stale --orphaned` releases them (--dry-run first)\n", kept)
	}
	return outcome(ok, failures)
}

// lockReplicationJobs takes the lock of every configured push and pull job,
// so no run creates or moves a relationship while release-stale judges and
// releases. A busy lock ends the command (exit 75) before anything changed.
func lockReplicationJobs(ctx context.Context, cfg *Config, wait bool) (func(), error) {
	var names []string
	for _, j := range cfg.Jobs {
		if j.Type == "push" || j.Type == "pull" {
			names = append(names, j.Name)
		}
	}
	slices.Sort(names)
	var locks []*state.Lock
	unlock := func() {
		for _, l := range locks {
			l.Release()
		}
	}
	for _, n := range names {
		l, err := state.Acquire(ctx, cfg.Global.StateDir, n, wait)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("--orphaned needs the lock of every push and pull job: %w", err)
		}
		locks = append(locks, l)
	}
	return unlock, nil
}

// releaseScan judges and cleans one scan: superseded objects of every
// relationship go; orphaned and unknown relationships are listed; with
// orphaned the orphaned ones go entirely. It returns how many orphaned
// relationships it listed but kept.
func (e *env) releaseScan(ctx context.Context, s *holdsScan, lv *liveness, orphaned, dryRun bool) (int, error) {
	var abs []zsync.Abstraction
	var foreign []string
	var list []zfs.Entry
	for _, part := range []struct {
		roots    []string
		optional bool
	}{{s.sources, false}, {s.targets, true}} {
		a, f, l, err := listSide(ctx, s.ep, part.roots, part.optional, lv.resolve)
		if err != nil {
			return 0, err
		}
		abs, foreign, list = append(abs, a...), append(foreign, f...), append(list, l...)
	}
	type action struct {
		a   zsync.Abstraction
		why string
	}
	var todo []action
	gone := map[zsync.Abstraction]bool{}
	kept := 0
	for _, r := range zsync.Relations(abs) {
		verdict, why := zsync.Judge(r, lv.live, s.claims)
		if verdict == zsync.Live {
			continue
		}
		protects, keeps := relationPins(r, abs, list)
		fmt.Fprintf(e.stdout, "%s relationship %s on %s (%s side, %s): %s\n", verdict, r.ID, r.Dataset, r.Side, s.where, why)
		fmt.Fprintf(e.stdout, "  owns: %s\n", strings.Join(describeObjects(r), ", "))
		fmt.Fprintf(e.stdout, "  pins: %s\n", describePins(protects, keeps))
		if verdict != zsync.Orphaned {
			fmt.Fprintf(e.stdout, "  kept: it may still be in use\n")
			continue
		}
		if !orphaned {
			kept++
			fmt.Fprintf(e.stdout, "  kept: --orphaned releases it\n")
			continue
		}
		for _, a := range r.Abstractions {
			todo = append(todo, action{a, "orphaned"})
			gone[a] = true
		}
	}
	for _, a := range zsync.StaleAll(abs, nil) {
		if !gone[a] {
			todo = append(todo, action{a, "stale"})
		}
	}
	for _, f := range foreign {
		fmt.Fprintf(e.stdout, "kept foreign %s on %s: uses zsync's prefix but its name does not parse or its GUID does not match, so it is never touched\n", f, s.where)
	}
	var bookmarks []string
	rel := map[string][]string{}
	var tags []string
	for _, t := range todo {
		verb := "destroy"
		if t.a.Kind.IsHold() {
			verb = "release"
			if _, ok := rel[t.a.Tag]; !ok {
				tags = append(tags, t.a.Tag)
			}
			rel[t.a.Tag] = append(rel[t.a.Tag], t.a.Name)
		} else {
			bookmarks = append(bookmarks, t.a.Name)
		}
		if dryRun {
			verb = "would " + verb
		}
		fmt.Fprintf(e.stdout, "%s %s (%s, %s)\n", verb, t.a, t.a.Kind, t.why)
	}
	if dryRun {
		return kept, nil
	}
	// Only names ListAbstractions parsed (zsync's prefixes, a valid target
	// id, and for bookmarks the GUID their name carries): never a snapshot,
	// never a foreign object.
	if len(bookmarks) > 0 {
		if err := s.ep.DestroyBookmarks(ctx, bookmarks); err != nil {
			return kept, fmt.Errorf("destroy bookmarks: %w", err)
		}
	}
	for _, tag := range tags {
		if err := s.ep.Release(ctx, tag, rel[tag]); err != nil && !errors.Is(err, zfs.ErrNoSuchHold) {
			return kept, fmt.Errorf("release %s: %w", tag, err)
		}
	}
	return kept, nil
}
