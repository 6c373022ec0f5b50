package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs"
)

// 130 (and 75) count as success for systemd units: an interruption may
// decide the exit code only when nothing failed for real.
func TestExitCodeInterrupted(t *testing.T) {
	t.Parallel()
	locked := &state.LockedError{Name: "a", Path: "/var/lib/zsync/locks/a.lock"}
	noSpace := fmt.Errorf("job a: snap: %w", zfs.ErrNoSpace)
	before := fmt.Errorf("%w before job b", errInterrupted)
	canceled := fmt.Errorf("zfs list: %w", context.Canceled)
	for _, c := range []struct {
		name string
		err  error
		code int
		kind string
	}{
		{"interrupted", context.Canceled, ExitInterrupted, "interrupted"},
		{"interrupted, wrapped", canceled, ExitInterrupted, "interrupted"},
		{"interrupted before a job", before, ExitInterrupted, "interrupted"},
		{"marked", &interruptedError{errors.New("signal: killed")}, ExitInterrupted, "interrupted"},
		{"a job interrupted, then the others", errors.Join(&PartialError{Failed: 1, Succeeded: 1, Unit: "jobs", Err: errors.Join(canceled)}, before), ExitInterrupted, "interrupted"},
		{"a dial interrupted", fmt.Errorf("open target: %w", fmt.Errorf("%w: %w", sshtransport.ErrConnect, context.Canceled)), ExitInterrupted, "interrupted"},
		{"snapshots interrupted", fmt.Errorf("%w (2 of 2 datasets): %w", snap.ErrFailed, errors.Join(canceled, canceled)), ExitInterrupted, "interrupted"},
		{"busy lock, then interrupted", errors.Join(locked, before), ExitInterrupted, "interrupted"},
		{"busy lock alone", locked, ExitLocked, "locked"},
		{"a failure, then interrupted", errors.Join(noSpace, before), ExitFailure, "zfs_no_space"},
		{"the reviewer's join", errors.Join(&PartialError{Failed: 1, Err: zfs.ErrNoSpace}, context.Canceled), ExitFailure, "zfs_no_space"},
		{"an unclassified failure, then interrupted", errors.Join(errors.New("job a: exit status 1"), before), ExitFailure, ""},
		{"some datasets failed, then interrupted", errors.Join(&PartialError{Failed: 1, Succeeded: 2, Err: errors.Join(noSpace)}, before), ExitPartial, "zfs_no_space"},
		{"one job done, one failed, then interrupted", errors.Join(&PartialError{Failed: 1, Succeeded: 1, Unit: "jobs", Err: errors.Join(noSpace)}, before), ExitPartial, "zfs_no_space"},
		{"a snapshot failed, another interrupted", fmt.Errorf("%w (2 of 2 datasets): %w", snap.ErrFailed, errors.Join(noSpace, canceled)), ExitFailure, "zfs_no_space"},
		{"busy lock, a failure, interrupted", errors.Join(&PartialError{Failed: 2, Unit: "jobs", Err: errors.Join(locked, noSpace)}, before), ExitFailure, "zfs_no_space"},
		{"a config error", usageErrorf("no job named %q", "x"), ExitUsage, "config"},
	} {
		if got := ExitCode(c.err); got != c.code {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.code)
		}
		if got := errorKind(c.err); got != c.kind {
			t.Errorf("%s: error_kind %q, want %q", c.name, got, c.kind)
		}
	}
}

// markInterrupted decides, once the context is cancelled, which errors the
// interruption caused: only those with no classified failure in them.
func TestMarkInterrupted(t *testing.T) {
	t.Parallel()
	signal := errors.New("terminated signal received") // what signal.NotifyContext's cause says
	ctx, cancel := context.WithCancelCause(context.Background())
	broken := errors.New("write |1: broken pipe")
	if err := markInterrupted(ctx, broken); err != broken {
		t.Errorf("not cancelled: %v, want the error as it is", err)
	}
	cancel(signal)
	zfsFailed := &zfs.Error{Args: []string{"zfs", "snapshot", "tank/a@x"}, Stderr: "cannot create snapshot 'tank/a@x': dataset is busy", ExitCode: 1}
	hookFailed := &snap.HookError{Kind: snap.HookPre, Argv: []string{"/bin/false"}, ExitCode: 1, Err: errors.New("exit status 1")}
	for _, c := range []struct {
		name   string
		err    error
		marked bool
		code   int
	}{
		{"unclassified: the interruption killed it", fmt.Errorf("zfs send: %w", broken), true, ExitInterrupted},
		{"the signal itself", fmt.Errorf("read frame: %w", signal), true, ExitInterrupted},
		{"unclassified and interrupted", errors.Join(broken, fmt.Errorf("x: %w", context.Canceled)), true, ExitInterrupted},
		{"classified", fmt.Errorf("snap: %w", zfs.ErrNoSpace), false, ExitFailure},
		{"zfs failed on its own", fmt.Errorf("snap: %w", zfsFailed), false, ExitFailure},
		{"a hook failed", fmt.Errorf("tank/a: skipped: %w", hookFailed), false, ExitFailure},
		{"classified and unclassified", errors.Join(fmt.Errorf("job a: %w", zfs.ErrNoSpace), fmt.Errorf("job b: %w", broken)), false, ExitFailure},
		{"a dial that failed before", fmt.Errorf("%w: dial 10.0.0.1:22: connection refused", sshtransport.ErrConnect), false, ExitFailure},
		{"a config error", &ConfigError{Msg: "bad"}, false, ExitUsage},
	} {
		err := markInterrupted(ctx, c.err)
		var ie *interruptedError
		if marked := errors.As(err, &ie); marked != c.marked {
			t.Errorf("%s: %v: marked %v, want %v", c.name, err, marked, c.marked)
		}
		if !c.marked && err != c.err {
			t.Errorf("%s: %v, want the error as it is", c.name, err)
		}
		if got := ExitCode(err); got != c.code {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.code)
		}
	}
	// already the interruption (or a busy lock): as it is, not marked twice
	for _, err := range []error{context.Canceled, fmt.Errorf("%w before job b", errInterrupted), &state.LockedError{Name: "a"}} {
		if got := markInterrupted(ctx, err); got != err {
			t.Errorf("%v: %v, want it as it is", err, got)
		}
	}
	if got := ExitCode(markInterrupted(ctx, &state.LockedError{Name: "a"})); got != ExitLocked {
		t.Errorf("busy lock after a signal: exit %d, want 75", got)
	}
	// a deadline is the context's own error too
	dctx, dcancel := context.WithTimeout(context.Background(), 0)
	defer dcancel()
	<-dctx.Done()
	if got := ExitCode(markInterrupted(dctx, fmt.Errorf("waiting for lock: %w", dctx.Err()))); got != ExitInterrupted {
		t.Errorf("deadline: exit %d, want 130", got)
	}
}

// runJobs runs forEachJob over jobs named by names with fn, the way a
// command does, and returns its error.
func runJobs(t *testing.T, ctx context.Context, stateDir string, names []string, fn func(ctx context.Context, j *jobConfig, log zerolog.Logger) error) error {
	t.Helper()
	cfg := &Config{}
	cfg.Global.StateDir = stateDir
	var jobs []*jobConfig
	for _, n := range names {
		jobs = append(jobs, &jobConfig{Name: n})
	}
	e := &env{log: zerolog.Nop()}
	// flags of its own and no help flag (cli.HelpFlag is a package
	// variable): urfave/cli writes into the flags it applies, and the
	// subtests run in parallel
	app := &cli.App{HideHelp: true, Flags: []cli.Flag{&cli.BoolFlag{Name: waitFlag.Name, Usage: waitFlag.Usage}}}
	var err error
	app.Action = func(c *cli.Context) error {
		err = e.forEachJob(ctx, c, cfg, jobs, fn)
		return nil
	}
	if rerr := app.Run([]string{"zsync"}); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

// A signal between or during jobs: the jobs' failures so far are kept, and
// decide the exit code over the interruption.
func TestForEachJobInterrupted(t *testing.T) {
	t.Parallel()
	type step struct {
		cancel bool  // the signal comes while the job runs
		err    error // what the job returns
	}
	noSpace := fmt.Errorf("snap: %w", zfs.ErrNoSpace)
	for _, c := range []struct {
		name   string
		jobs   map[string]step // a, b and c run in this order; a missing job succeeds
		locked string          // a job whose lock another run holds
		code   int
		kind   string
		has    []string
		ran    string
	}{
		{name: "interrupted during a", jobs: map[string]step{"a": {cancel: true, err: fmt.Errorf("snap: list: %w", context.Canceled)}},
			code: ExitInterrupted, kind: "interrupted", has: []string{"job a: snap: list: context canceled", "interrupted before jobs b, c"}, ran: "a"},
		{name: "interrupted after a", jobs: map[string]step{"a": {cancel: true}},
			code: ExitInterrupted, kind: "interrupted", has: []string{"interrupted before jobs b, c"}, ran: "a"},
		{name: "a process the interruption killed", jobs: map[string]step{"b": {cancel: true, err: errors.New("signal: killed")}},
			code: ExitInterrupted, kind: "interrupted", has: []string{"job b: interrupted: signal: killed", "interrupted before job c"}, ran: "ab"},
		{name: "a failed, then the signal", jobs: map[string]step{"a": {cancel: true, err: noSpace}},
			code: ExitFailure, kind: "zfs_no_space", has: []string{"job a: snap: zfs: out of space", "interrupted before jobs b, c"}, ran: "a"},
		{name: "a failed, then the signal during b", jobs: map[string]step{"a": {err: noSpace}, "b": {cancel: true, err: context.Canceled}},
			code: ExitFailure, kind: "zfs_no_space", has: []string{"job a: snap: zfs: out of space", "job b: context canceled", "interrupted before job c"}, ran: "ab"},
		{name: "a done, b failed, then the signal", jobs: map[string]step{"b": {cancel: true, err: noSpace}},
			code: ExitPartial, kind: "zfs_no_space", has: []string{"1 of 2 jobs failed", "job b: snap: zfs: out of space", "interrupted before job c"}, ran: "ab"},
		{name: "some of a's datasets failed, then the signal", jobs: map[string]step{"a": {cancel: true, err: &PartialError{Failed: 1, Succeeded: 1, Err: errors.Join(noSpace)}}},
			code: ExitPartial, kind: "zfs_no_space", has: []string{"1 of 2 datasets failed", "interrupted before jobs b, c"}, ran: "a"},
		{name: "a busy, then the signal", locked: "a", jobs: map[string]step{"b": {cancel: true}},
			code: ExitInterrupted, kind: "interrupted", has: []string{"another zsync run holds the lock", "interrupted before job c"}, ran: "b"},
		{name: "a busy, b failed, then the signal", locked: "a", jobs: map[string]step{"b": {cancel: true, err: noSpace}},
			code: ExitFailure, kind: "zfs_no_space", has: []string{"holds the lock", "job b: snap", "interrupted before job c"}, ran: "b"},
		{name: "a busy, no signal", locked: "a",
			code: ExitLocked, kind: "locked", has: []string{"holds the lock"}, ran: "bc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if c.locked != "" {
				l, err := state.Acquire(context.Background(), dir, c.locked, false)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ran := ""
			err := runJobs(t, ctx, dir, []string{"a", "b", "c"}, func(ctx context.Context, j *jobConfig, _ zerolog.Logger) error {
				ran += j.Name
				s := c.jobs[j.Name]
				if s.cancel {
					cancel()
				}
				return s.err
			})
			if got := ExitCode(err); got != c.code {
				t.Errorf("exit %d, want %d (%v)", got, c.code, err)
			}
			if got := errorKind(err); got != c.kind {
				t.Errorf("error_kind %q, want %q", got, c.kind)
			}
			msg := fmt.Sprint(err)
			for _, s := range c.has {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			if ran != c.ran {
				t.Errorf("jobs run: %q, want %q", ran, c.ran)
			}
		})
	}
	// no signal, no failure
	if err := runJobs(t, context.Background(), t.TempDir(), []string{"a", "b"}, func(context.Context, *jobConfig, zerolog.Logger) error { return nil }); err != nil {
		t.Errorf("all ok: %v", err)
	}
}

// Run does not take a failure for the interruption's doing once the
// context is cancelled: a snapshot that failed, then SIGTERM while the next
// job waited for its lock, exits 1 (systemd's OnFailure= fires), with the
// failure's error_kind; the same run without the failure exits 130.
func TestRunFailedThenInterrupted(t *testing.T) {
	for _, c := range []struct {
		name     string
		snapshot string // the fake zfs snapshot's shell code
		code     int
		has      []string
	}{
		{"failed", "echo \"cannot create snapshots : out of space\" >&2; exit 1", ExitFailure,
			[]string{" ERROR ", "exit=1", "error_kind=zfs_no_space", "job a: ", "out of space", "interrupted before job b"}},
		{"ok", "exit 0", ExitInterrupted,
			[]string{" WARN ", "exit=130", "error_kind=interrupted", "interrupted before job b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			listing := monListing(monFS("tank", 1), monFS("tank/a", 2), monFS("tank/b", 3))
			lp, marker := filepath.Join(dir, "listing"), filepath.Join(dir, "snapshot-called")
			if err := os.WriteFile(lp, []byte(listing), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(dir, "zfs")
			script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\nlist) cat %q ;;\nsnapshot) touch %q; %s ;;\n*) exit 1 ;;\nesac\n", lp, marker, c.snapshot)
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			job := "[[job]]\nname = %q\ntype = \"snap\"\ndatasets = [\"tank/%s\"]\n  [job.snapshot]\n  interval = \"1h\"\n"
			cfg, stateDir := monConfig(t, bin, fmt.Sprintf(job, "a", "a")+fmt.Sprintf(job, "b", "b"))
			// another run holds b's lock: with --wait, job b waits for it
			// until the signal (or the signal comes before b's turn: the
			// outcome is the same, only the log's wording differs)
			lb, err := state.Acquire(context.Background(), stateDir, "b", false)
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Release()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				// the signal comes once job a is done: it took (or failed
				// to take) its snapshot and released its lock
				for {
					time.Sleep(5 * time.Millisecond)
					if _, err := os.Stat(marker); err != nil {
						continue
					}
					if la, err := state.Acquire(context.Background(), stateDir, "a", false); err == nil {
						la.Release()
						cancel()
						return
					}
				}
			}()
			var out, errb bytes.Buffer
			code := Run(ctx, []string{"zsync", "--config", cfg, "--log-format", "text", "snap", "--wait"}, strings.NewReader(""), &out, &errb)
			if strings.Contains(errb.String(), "config:") {
				t.Errorf("config warnings:\n%s", errb.String())
			}
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, errb.String())
			}
			for _, s := range c.has {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr does not say %q:\n%s", s, errb.String())
				}
			}
			rr, err := state.ReadRunReport(stateDir, "a")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[int]string{ExitFailure: "zfs_no_space", ExitInterrupted: ""}[c.code]; rr.ErrorKind != want {
				t.Errorf("job a's run report: error_kind %q, want %q", rr.ErrorKind, want)
			}
		})
	}
}

// A configuration error stays one (exit 2) when the run was interrupted.
func TestRunConfigErrorInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"zsync", "--config", filepath.Join(t.TempDir(), "missing.toml"), "snap"}, strings.NewReader(""), &out, &errb)
	if code != ExitUsage {
		t.Errorf("exit %d, want 2: %s", code, errb.String())
	}
}
