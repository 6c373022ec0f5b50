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

	"github.com/rs/zerolog"

	"github.com/zsync-dev/zsync/state"
)

// journalFile returns a temp file to use as stderr and the JOURNAL_STREAM
// value that names it, as systemd would set it for a service.
func journalFile(t *testing.T) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	dev, ino, ok := devIno(f)
	if !ok {
		t.Fatal("no device and inode for a temp file")
	}
	return f, fmt.Sprintf("%d:%d", dev, ino)
}

func TestStderrTarget(t *testing.T) {
	t.Parallel()
	f, stream := journalFile(t)
	other, _ := journalFile(t)
	dev, ino, _ := devIno(f)
	for _, c := range []struct {
		name   string
		w      any
		stream string
		want   logTarget
	}{
		{"journal", f, stream, toJournal},
		{"no JOURNAL_STREAM", f, "", toPipe},
		{"inherited by a child whose stderr is elsewhere", other, stream, toPipe},
		{"other inode", f, fmt.Sprintf("%d:%d", dev, ino+1), toPipe},
		{"other device", f, fmt.Sprintf("%d:%d", dev+1, ino), toPipe},
		{"malformed", f, fmt.Sprintf("%d-%d", dev, ino), toPipe},
		{"not numbers", f, "x:y", toPipe},
		{"not a file", &bytes.Buffer{}, stream, toPipe},
	} {
		w, _ := c.w.(interface{ Write([]byte) (int, error) })
		if got := stderrTarget(w, c.stream); got != c.want {
			t.Errorf("%s: target %d, want %d", c.name, got, c.want)
		}
	}
}

// logSample logs the events the format tests look at. The time is a fixed
// string field, so outputs compare exactly.
func logSample(w zerologWriter) {
	log := zerolog.New(w).Level(zerolog.DebugLevel).With().Str(zerolog.TimestampFieldName, "2026-11-22T05:00:00Z").Str("job", "home").Logger()
	log.Debug().Strs("argv", []string{"zfs", "list", "-H"}).Float64("duration", 1.5).Msg("zfs")
	log.Info().Str("dataset", "tank/my data").Str("snapshot", "").Msg("took snapshot")
	log.Warn().Bool("dry_run", false).Msg("far side said \x1b[31mhello\x1b[0m")
	log.Error().Int("exit", 3).Str("error_kind", "zfs_no_space").Msg("2 of 3 datasets failed: tank/a: out of space\ntank/b: \"quoted\" = x")
}

type zerologWriter = interface{ Write([]byte) (int, error) }

func TestLogFormats(t *testing.T) {
	t.Parallel()
	text := `2026-11-22T05:00:00Z DEBUG zfs job=home argv=["zfs","list","-H"] duration=1.5
2026-11-22T05:00:00Z INFO took snapshot job=home dataset="tank/my data" snapshot=""
2026-11-22T05:00:00Z WARN far side said \x1b[31mhello\x1b[0m job=home dry_run=false
2026-11-22T05:00:00Z ERROR 2 of 3 datasets failed: tank/a: out of space
  tank/b: "quoted" = x job=home exit=3 error_kind=zfs_no_space
`
	journal := `<7>DEBUG zfs job=home argv=["zfs","list","-H"] duration=1.5
<6>INFO took snapshot job=home dataset="tank/my data" snapshot=""
<4>WARN far side said \x1b[31mhello\x1b[0m job=home dry_run=false
<3>ERROR 2 of 3 datasets failed: tank/a: out of space
<3>  tank/b: "quoted" = x job=home exit=3 error_kind=zfs_no_space
`
	var js bytes.Buffer
	logSample(&js)
	var jsJournal strings.Builder
	for i, line := range strings.SplitAfter(strings.TrimSuffix(js.String(), "\n"), "\n") {
		jsJournal.WriteString([]string{"<7>", "<6>", "<4>", "<3>"}[i] + strings.TrimSuffix(line, "\n") + "\n")
	}
	for _, c := range []struct {
		format string
		target logTarget
		want   string
	}{
		{"auto", toPipe, text}, // cron: plain lines, not JSON
		{"", toPipe, text},
		{"text", toPipe, text},
		{"text", toTerminal, text},
		{"auto", toJournal, journal},
		{"text", toJournal, journal},
		{"json", toPipe, js.String()}, // JSON only when asked, unchanged
		{"json", toJournal, jsJournal.String()},
	} {
		var out bytes.Buffer
		w, err := logWriter(c.format, c.target, &out)
		if err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		logSample(w)
		if out.String() != c.want {
			t.Errorf("format %q, target %d:\n%s\nwant\n%s", c.format, c.target, out.String(), c.want)
		}
	}

	// console lines under the journal: prefixed too, line by line
	var out bytes.Buffer
	w, err := logWriter("console", toJournal, &out)
	if err != nil {
		t.Fatal(err)
	}
	logSample(w)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	wantPrefix := []string{"<7>", "<6>", "<4>", "<3>", "<3>"}
	if len(lines) != len(wantPrefix) {
		t.Fatalf("console under the journal: %d lines, want %d:\n%s", len(lines), len(wantPrefix), out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, wantPrefix[i]) || strings.Contains(l, "\x1b[") {
			t.Errorf("console line %d %q: want prefix %s and no colour", i, l, wantPrefix[i])
		}
	}
	if !strings.Contains(lines[3], "ERR 2 of 3 datasets failed") {
		t.Errorf("console error line %q", lines[3])
	}

	if _, err := logWriter("xml", toPipe, &out); ExitCode(err) != ExitUsage {
		t.Errorf("unknown format: %v, want a usage error", err)
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	for l, want := range map[zerolog.Level]int{
		zerolog.TraceLevel: 7, zerolog.DebugLevel: 7, zerolog.InfoLevel: 6, zerolog.NoLevel: 6,
		zerolog.WarnLevel: 4, zerolog.ErrorLevel: 3, zerolog.FatalLevel: 2, zerolog.PanicLevel: 2,
	} {
		if got := priority(l); got != want {
			t.Errorf("priority(%s) = %d, want %d", l, got, want)
		}
	}
}

// runJournal runs zsync in-process with stderr a file that JOURNAL_STREAM
// names, as under a systemd service, and returns the exit code and what
// went to stderr.
func runJournal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, stream := journalFile(t)
	t.Setenv("JOURNAL_STREAM", stream)
	var out bytes.Buffer
	code := Run(context.Background(), append([]string{"zsync"}, args...), strings.NewReader(""), &out, f)
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b)
}

// Under systemd every line stderr gets carries its priority: the failure
// as <3>, so that journalctl -p err shows it; a busy lock as a warning,
// once; a configuration error, which is printed before any logger exists,
// as <3> too.
func TestJournalPriorities(t *testing.T) {
	dir := t.TempDir()
	cfg := configFile(t, fmt.Sprintf(`[global]
state_dir = %q
zfs_binary = %q
[[job]]
name = "j"
type = "snap"
datasets = ["tank/a"]
  [job.snapshot]
  interval = "1h"
`, dir, filepath.Join(dir, "no-such-zfs")))

	code, got := runJournal(t, "--config", cfg, "--log-level", "debug", "snap")
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if code != ExitFailure || len(lines) < 2 {
		t.Fatalf("exit %d, stderr:\n%s\nwant 1 and a debug line before the error", code, got)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "<7>DEBUG ") {
			t.Errorf("debug line %q", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "<3>ERROR job j: ") || !strings.HasSuffix(last, " exit=1") {
		t.Errorf("error line %q", last)
	}

	l, err := state.Acquire(context.Background(), dir, "j", false)
	if err != nil {
		t.Fatal(err)
	}
	code, got = runJournal(t, "--config", cfg, "snap")
	l.Release()
	if code != ExitLocked || !strings.HasPrefix(got, "<4>WARN another zsync run holds the lock: ") || strings.Count(got, "\n") != 1 {
		t.Errorf("busy lock: exit %d, stderr %q; want 75 and one <4> line", code, got)
	}

	code, got = runJournal(t, "--config", filepath.Join(dir, "missing.toml"), "snap")
	if code != ExitUsage || !strings.HasPrefix(got, "<3>zsync: ") || strings.Count(got, "\n") != strings.Count(got, "<3>") {
		t.Errorf("config error: exit %d, stderr %q; want 2 and <3> lines", code, got)
	}

	code, got = runJournal(t, "--config", cfg, "--log-format", "json", "snap")
	if code != ExitFailure || !strings.HasPrefix(got, `<3>{"level":"error"`) {
		t.Errorf("--log-format json under the journal: exit %d, stderr %q; want <3> and JSON", code, got)
	}
}

// A busy lock is reported once, not by the job loop and again by Run; off
// a terminal, by default, as a plain line (cron mails it as it is).
func TestLockConflictLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	p := configFile(t, "[global]\nstate_dir = \""+dir+"\"\n[[job]]\nname = \"j\"\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n  interval = \"1h\"\n")
	l, err := state.Acquire(context.Background(), dir, "j", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for _, format := range []string{"auto", "json", "console"} {
		code, _, errOut := runUnit(t, "--config", p, "--log-format", format, "snap")
		if code != ExitLocked || strings.Count(errOut, "holds the lock") != 1 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("--log-format %s: exit %d, stderr:\n%s\nwant 75 and the lock message once", format, code, errOut)
		}
	}
	_, _, errOut := runUnit(t, "--config", p, "snap")
	if strings.HasPrefix(errOut, "{") || !strings.Contains(errOut, " WARN another zsync run holds the lock: ") {
		t.Errorf("default format off a terminal: %q, want a plain line", errOut)
	}
}

// A job that failed decides the exit code over another whose lock was
// busy: 75 is a success for systemd units and must not hide a failure.
func TestExitCodeLockedAndFailed(t *testing.T) {
	t.Parallel()
	locked := func(name string) error {
		return &state.LockedError{Name: name, Path: "/var/lib/zsync/locks/" + name + ".lock"}
	}
	failed := errors.New("job b: zfs recv: out of space")
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"one busy lock", locked("a"), ExitLocked},
		{"wrapped", fmt.Errorf("--orphaned needs the lock of every push and pull job: %w", locked("a")), ExitLocked},
		{"two busy locks", &PartialError{Failed: 2, Unit: "jobs", Err: errors.Join(locked("a"), locked("b"))}, ExitLocked},
		{"busy lock and a failure", &PartialError{Failed: 2, Unit: "jobs", Err: errors.Join(locked("a"), failed)}, ExitFailure},
		{"busy lock, a failure, a success", &PartialError{Failed: 2, Succeeded: 1, Unit: "jobs", Err: errors.Join(locked("a"), failed)}, ExitPartial},
		{"busy lock and an empty join", errors.Join(locked("a"), fmt.Errorf("x: %w", errors.Join())), ExitFailure},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, got, c.want)
		}
		if kind := errorKind(c.err); (kind == "locked") != (c.want == ExitLocked) {
			t.Errorf("%s: error_kind %q", c.name, kind)
		}
	}
	if exitLevel(ExitLocked) != zerolog.WarnLevel || exitLevel(ExitInterrupted) != zerolog.WarnLevel || exitLevel(ExitFailure) != zerolog.ErrorLevel || exitLevel(ExitPartial) != zerolog.ErrorLevel {
		t.Error("exit levels: want warn for 75 and 130, error for the rest")
	}
}

// Two jobs, one locked and one failing: exit 1, both reported in one line.
func TestLockedAndFailingJobs(t *testing.T) {
	dir := t.TempDir()
	job := "[[job]]\nname = %q\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n  interval = \"1h\"\n"
	p := configFile(t, fmt.Sprintf("[global]\nstate_dir = %q\nzfs_binary = %q\n", dir, filepath.Join(dir, "no-such-zfs"))+fmt.Sprintf(job, "a")+fmt.Sprintf(job, "b"))
	l, err := state.Acquire(context.Background(), dir, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	code, _, errOut := runUnit(t, "--config", p, "snap")
	if code != ExitFailure || strings.Count(errOut, "holds the lock") != 1 || !strings.Contains(errOut, "job b: ") || !strings.Contains(errOut, " ERROR 2 of 2 jobs failed: ") || strings.Contains(errOut, "error_kind=locked") {
		t.Fatalf("exit %d, stderr:\n%s\nwant 1 and one error naming both", code, errOut)
	}
}
