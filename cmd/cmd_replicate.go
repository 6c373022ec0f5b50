package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/sshtransport"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// oneOffFlags are the job settings that matter for one-off replication from a
// shell (no config file needed), like syncoid.
func oneOffFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "one-off: replicate the whole subtree"},
		&cli.BoolFlag{Name: "snapshot", Usage: "one-off: take a snapshot (prefix zsync_) of the source first"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "one-off: ssh identity `FILE`", TakesFile: true},
		&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Usage: "one-off: ssh port"},
		&cli.StringFlag{Name: "known-hosts", Usage: "one-off: known_hosts `FILE` (default ~/.ssh/known_hosts)", TakesFile: true},
		&cli.StringFlag{Name: "host-key-policy", Value: "strict", Usage: "one-off: strict, accept-new or insecure"},
		&cli.StringFlag{Name: "jump", Aliases: []string{"J"}, Usage: "one-off: jump `HOSTS`, [user@]host[:port],... as ssh -J takes them (none: ignore ~/.ssh/config's ProxyJump)"},
		&cli.StringFlag{Name: "remote-command", Value: "zsync serve --stdio", Usage: "one-off: the far side's zsync command"},
		&cli.StringFlag{Name: "raw", Value: "auto", Usage: "one-off: auto (raw for encrypted datasets), always or never"},
		&cli.StringFlag{Name: "initial", Value: "most_recent", Usage: "one-off: most_recent, all or fail"},
		&cli.StringFlag{Name: "protection", Value: "resumability", Usage: "one-off: resumability, incremental or nothing"},
		&cli.BoolFlag{Name: "rotate", Usage: "one-off: rename a diverged target aside and start fresh (destroys nothing)"},
		&cli.StringFlag{Name: "compress", Value: "none", Usage: "one-off: on-the-wire compression: none or zstd"},
		&cli.StringFlag{Name: "bwlimit", Value: "0", Usage: "one-off: bandwidth limit per second, e.g. 50MiB (0 = unlimited)"},
		&cli.StringFlag{Name: "state-dir", Value: "/var/lib/zsync", Usage: "one-off: where the lock lives"},
	}
}

func pushCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "replicate local datasets to the job's target (or one-off: zsync push SRC [user@]host:DST)",
		ArgsUsage: "[JOB...] | SRC DST",
		Flags:     append([]cli.Flag{dryRunFlag, waitFlag, jsonFlag}, oneOffFlags()...),
		Action:    func(c *cli.Context) error { return e.replicateCommand(c, "push") },
	}
}

func pullCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "replicate a remote job's datasets into a local root (or one-off: zsync pull [user@]host:SRC DST)",
		ArgsUsage: "[JOB...] | SRC DST",
		Flags:     append([]cli.Flag{dryRunFlag, waitFlag, jsonFlag}, oneOffFlags()...),
		Action:    func(c *cli.Context) error { return e.replicateCommand(c, "pull") },
	}
}

func runCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "snap, replicate and prune in one run under one lock per job",
		ArgsUsage: "[JOB...]",
		Flags:     []cli.Flag{dryRunFlag, waitFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(*jobConfig) bool { return true })
			if err != nil {
				return err
			}
			dry := c.Bool("dry-run")
			var reports []jobResult
			err = e.forEachJob(c.Context, c, cfg, jobs, func(ctx context.Context, j *jobConfig, log zerolog.Logger) error {
				var errs, others []error // others: snap and prune, for the run report
				var so *snapOutcome
				var snapErr error
				if j.Type != "pull" {
					so, snapErr = e.snapJob(ctx, e.newZFS(cfg), j, dry, time.Now(), log)
					if snapErr != nil {
						errs = append(errs, fmt.Errorf("snap: %w", snapErr))
					}
				}
				var res *jobResult
				if j.Type == "snap" {
					// the snapshots are the job: its report counts them per dataset
					r := snapJobResult(j, so, snapErr)
					res = &r
				} else {
					others = append(others, errs...)
					rep, err := e.replicateJob(ctx, cfg, j, dry, log)
					if rep != nil {
						res = &jobResult{rep: rep, err: err, snap: so}
					}
					if err != nil {
						errs = append(errs, err)
					}
				}
				if err := e.pruneJob(ctx, cfg, j, dry, time.Now(), log); err != nil {
					errs = append(errs, fmt.Errorf("prune: %w", err))
					others = append(others, errs[len(errs)-1])
				}
				if res != nil {
					res.others = others
					reports = append(reports, *res)
				}
				return errors.Join(errs...)
			})
			e.finishReports(c, cfg, reports, err)
			return err
		},
	}
}

// isOneOff reports whether the arguments are a one-off SRC DST pair rather
// than job names: two arguments of which at least one has a '/' or a host.
func isOneOff(args []string) bool {
	if len(args) != 2 {
		return false
	}
	for _, a := range args {
		if strings.ContainsAny(a, "/:@") {
			return true
		}
	}
	return false
}

func (e *env) replicateCommand(c *cli.Context, kind string) error {
	args := c.Args().Slice()
	if isOneOff(args) {
		return e.oneOff(c, kind, args[0], args[1])
	}
	cfg, jobs, err := loadJobs(c, args, func(j *jobConfig) bool { return j.Type == kind })
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		return usageErrorf("no %s job in %s", kind, cfg.Path)
	}
	var reports []jobResult
	err = e.forEachJob(c.Context, c, cfg, jobs, func(ctx context.Context, j *jobConfig, log zerolog.Logger) error {
		rep, err := e.replicateJob(ctx, cfg, j, c.Bool("dry-run"), log)
		if rep != nil {
			reports = append(reports, jobResult{rep: rep, err: err})
		}
		return err
	})
	e.finishReports(c, cfg, reports, err)
	return err
}

// replicateJob runs one configured push or pull job.
func (e *env) replicateJob(ctx context.Context, cfg *Config, j *jobConfig, dryRun bool, log zerolog.Logger) (*zsync.Report, error) {
	job, cleanup, err := e.buildJob(cfg, j, dryRun, log)
	if err != nil {
		return &zsync.Report{Job: j.Name}, err // reported as a failed run
	}
	defer cleanup()
	job.Listings = newListingCache(cfg.Global.StateDir, j)
	return e.runSyncJob(ctx, job, log)
}

// runSyncJob runs a sync.Job and turns its report into the command's error.
func (e *env) runSyncJob(ctx context.Context, job *zsync.Job, log zerolog.Logger) (*zsync.Report, error) {
	prog := newProgress(e, log)
	job.Events = prog.event
	// a size estimate is one more zfs call per step: only for the bars
	job.EstimateSizes = prog.live != nil
	restoreProcs := sshtransport.SetStreamProcs(max(job.Concurrency, 1))
	rep, err := job.Run(ctx)
	restoreProcs()
	prog.done()
	if err != nil {
		return rep, err
	}
	var failures []error
	ok := 0
	for _, d := range rep.Datasets {
		l := log.With().Str("dataset", d.Source).Str("target", d.Target).Logger()
		switch d.Status {
		case zsync.StatusFailed, zsync.StatusSkipped:
			withErrorKind(l.Error().Err(d.Err), d.Err).Msg(string(d.Status))
			failures = append(failures, fmt.Errorf("%s: %w", d.Source, d.Err))
		default:
			ok++
			l.Info().Str("status", string(d.Status)).Int64("bytes", d.Bytes).Dur("duration", d.Duration).Strs("steps", d.Steps).Msg(string(d.Status))
		}
		if job.DryRun {
			if d.Renamed != "" {
				fmt.Fprintf(e.stdout, "%s -> %s: would rename the replica %s to %s (its source was renamed or moved; nothing is sent again)\n", d.Source, d.Target, d.Renamed, d.Target)
			}
			switch {
			case d.Pending != "":
				fmt.Fprintf(e.stdout, "%s -> %s: nothing to send yet (%s)\n", d.Source, d.Target, d.Pending)
			case len(d.Steps) == 0 && d.Status != zsync.StatusFailed && d.Status != zsync.StatusSkipped:
				fmt.Fprintf(e.stdout, "%s -> %s: up to date\n", d.Source, d.Target)
			}
			for _, s := range d.Steps {
				fmt.Fprintf(e.stdout, "%s -> %s: would send %s\n", d.Source, d.Target, s)
			}
			if d.Bytes > 0 {
				fmt.Fprintf(e.stdout, "%s -> %s: estimated %s\n", d.Source, d.Target, ibytes(d.Bytes))
			}
		}
	}
	return rep, outcome(ok, failures)
}

// buildJob maps a configured push/pull job onto a sync.Job.
func (e *env) buildJob(cfg *Config, j *jobConfig, dryRun bool, log zerolog.Logger) (*zsync.Job, func(), error) {
	filter, err := zfs.ParseFilter(j.Datasets)
	if err != nil {
		return nil, nil, err
	}
	job := &zsync.Job{Name: j.Name, Datasets: filter, TargetRoot: j.Root, DryRun: dryRun}
	strip := j.Replication.StripComponents
	root := j.Root
	job.Map = func(src string) (string, error) { return zsync.TargetName(root, src, strip) }
	job.MapID = fmt.Sprintf("strip=%d", strip)
	roots := filter.Roots()
	job.Unmap = func(t string) []string { return zsync.SourceNames(root, t, strip, roots) }
	if err := applyReplication(job, j.Replication); err != nil {
		return nil, nil, err
	}
	local := zsync.Static(e.newZFS(cfg))
	far := e.newFarSide(j)
	if j.Type == "push" {
		job.Source, job.Target = local, far.open
	} else {
		job.Source, job.Target = far.open, local
	}
	return job, far.close, nil
}

func applyReplication(job *zsync.Job, r replicationConfig) error {
	switch r.Initial {
	case "all":
		job.Initial = zsync.InitialAll
	case "fail":
		job.Initial = zsync.InitialFail
	default:
		job.Initial = zsync.InitialMostRecent
	}
	p, err := zsync.ParseProtection(r.Protection)
	if err != nil {
		return usageErrorf("%v", err)
	}
	job.Protection = p
	switch r.Raw {
	case "always":
		job.Raw = zsync.RawAlways
	case "never":
		job.Raw = zsync.RawNever
	default:
		job.Raw = zsync.RawAuto
	}
	job.Rotate = r.OnDiverged == "rotate"
	if r.SnapshotFilter != "" {
		re, err := regexp.Compile(r.SnapshotFilter)
		if err != nil {
			return usageErrorf("snapshot_filter: %v", err)
		}
		job.SnapshotFilter = re
	}
	job.PropsOverride = r.PropertiesOverride
	job.PropsExclude = r.PropertiesExclude
	job.Concurrency = r.Concurrency
	return nil
}

// splitRemote splits "[user@]host:dataset". Dataset names may contain ':',
// so only a prefix without '/' before the first ':' counts as a host.
func splitRemote(s string) (user, host, dataset string) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.Contains(s[:i], "/") {
		return "", "", s
	}
	host, dataset = s[:i], s[i+1:]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		user, host = host[:at], host[at+1:]
	}
	return user, host, dataset
}

// oneOff replicates SRC to DST from the command line: the same engine, holds
// and cursors as configured jobs.
func (e *env) oneOff(c *cli.Context, kind, srcArg, dstArg string) error {
	ju, jh, jd := splitRemote(srcArg)
	if kind == "push" {
		ju, jh, jd = splitRemote(dstArg)
		if _, h, _ := splitRemote(srcArg); h != "" {
			return usageErrorf("push: the source %q must be local (use pull to fetch from a host)", srcArg)
		}
	} else if _, h, _ := splitRemote(dstArg); h != "" {
		return usageErrorf("pull: the destination %q must be local (use push to send to a host)", dstArg)
	}
	src, dst := srcArg, dstArg
	if kind == "push" {
		dst = jd
	} else {
		src = jd
	}
	for _, n := range []string{src, dst} {
		if err := zfs.ValidateDataset(n); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if !strings.Contains(dst, "/") {
		return usageErrorf("the destination %q is a pool; name a dataset below it (e.g. %s/data)", dst, dst)
	}
	pattern := src
	if c.Bool("recursive") {
		pattern += "<"
	}
	filter, err := zfs.ParseFilter([]string{pattern})
	if err != nil {
		return usageErrorf("%v", err)
	}
	j := &jobConfig{Name: "oneoff", Type: kind, Datasets: []string{pattern}, Root: dst}
	j.Replication = replicationConfig{Initial: c.String("initial"), Protection: c.String("protection"), Raw: c.String("raw"),
		OnDiverged: "fail", Compression: c.String("compress")}
	if c.Bool("rotate") {
		j.Replication.OnDiverged = "rotate"
	}
	if err := oneOf(j.Replication.Initial, "most_recent", "all", "fail"); err != nil {
		return usageErrorf("--initial: %v", err)
	}
	if err := oneOf(j.Replication.Raw, "auto", "always", "never"); err != nil {
		return usageErrorf("--raw: %v", err)
	}
	if err := oneOf(j.Replication.Compression, "none", "zstd"); err != nil {
		return usageErrorf("--compress: %v", err)
	}
	bw, err := ParseSize(c.String("bwlimit"))
	if err != nil {
		return usageErrorf("--bwlimit: %v", err)
	}
	j.Replication.BandwidthLimit.Bytes = bw
	if jh != "" {
		j.Remote = &remoteConfig{Host: jh, User: ju, Port: c.Int("port"), IdentityFile: c.String("identity"),
			KnownHosts: c.String("known-hosts"), HostKeyPolicy: c.String("host-key-policy"), Command: c.String("remote-command"),
			ProxyJump: c.String("jump")}
		if err := oneOf(j.Remote.HostKeyPolicy, "strict", "accept-new", "insecure"); err != nil {
			return usageErrorf("--host-key-policy: %v", err)
		}
		if _, err := sshtransport.ParseProxyJump(j.Remote.ProxyJump); err != nil {
			return usageErrorf("--jump: %v", err)
		}
	}
	// as a job whose file sets no concurrency
	j.Replication.Concurrency = defaultConcurrency(j.Remote)
	h := sha256.Sum256([]byte(kind + "\x00" + srcArg + "\x00" + dstArg))
	j.Name = "oneoff-" + hex.EncodeToString(h[:6])
	cfg := &Config{Path: "(command line)"}
	cfg.Global.StateDir = c.String("state-dir")
	e.oneOffStateDir(c, cfg)
	dry := c.Bool("dry-run")
	var reports []jobResult
	err = e.forEachJob(c.Context, c, cfg, []*jobConfig{j}, func(ctx context.Context, _ *jobConfig, log zerolog.Logger) error {
		if c.Bool("snapshot") {
			if kind != "push" {
				return usageErrorf("--snapshot: pull cannot snapshot the far side")
			}
			if err := e.oneOffSnapshot(ctx, cfg, filter, dry, log); err != nil {
				return err
			}
		}
		job := &zsync.Job{Name: j.Name, Datasets: filter, TargetRoot: parentDataset(dst), DryRun: dry}
		job.Map = func(ds string) (string, error) { return zsync.OneOffTarget(src, dst, ds) }
		job.MapID = "one-off " + src + " " + dst
		job.Unmap = func(t string) []string { return zsync.OneOffSource(src, dst, t) }
		if err := applyReplication(job, j.Replication); err != nil {
			return err
		}
		local := zsync.Static(e.newZFS(cfg))
		far := e.newFarSide(j)
		defer far.close()
		if kind == "push" {
			job.Source, job.Target = local, far.open
		} else {
			job.Source, job.Target = far.open, local
		}
		rep, err := e.runSyncJob(ctx, job, log)
		if rep != nil {
			reports = append(reports, jobResult{rep: rep, err: err})
		}
		return err
	})
	e.finishReports(c, cfg, reports, err)
	return err
}

// oneOffStateDir takes the config file's state_dir for a one-off run
// without --state-dir. A one-off run needs no config file, so none at the
// default path is fine; a file that is there (or named by --config /
// ZSYNC_CONFIG) but cannot be loaded is logged at warn, each problem once,
// and the run goes on with --state-dir or its default (where its lock and
// report then are).
func (e *env) oneOffStateDir(c *cli.Context, cfg *Config) {
	path := globalString(c, "config")
	named := false
	for _, x := range c.Lineage() {
		named = named || x.IsSet("config")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !named {
		return
	}
	fc, err := loadConfigFlag(c)
	if err == nil {
		if !c.IsSet("state-dir") {
			cfg.Global.StateDir = fc.Global.StateDir
		}
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, err := range errs {
		e.log.Warn().Msgf("config not used by this one-off run (state dir %s): %v", cfg.Global.StateDir, err)
	}
}

func parentDataset(ds string) string {
	if i := strings.LastIndexByte(ds, '/'); i > 0 {
		return ds[:i]
	}
	return ds
}

// oneOffSnapshot takes a zsync_ snapshot of every selected source dataset
// now (one atomic call per pool).
func (e *env) oneOffSnapshot(ctx context.Context, cfg *Config, filter zfs.Filter, dryRun bool, log zerolog.Logger) error {
	j := &jobConfig{Name: "oneoff", Datasets: filter.Patterns()}
	j.Snapshot.Prefix = "zsync_"
	j.Snapshot.Interval.Duration = time.Second
	_, err := e.snapJob(ctx, e.newZFS(cfg), j, dryRun, time.Now(), log)
	return err
}
