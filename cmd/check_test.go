package cmd

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/state"
)

// perfRE is one perfdata item of the monitoring plugin guidelines:
// 'label'=value[UOM];[warn];[crit];[min];[max], value possibly U.
var perfRE = regexp.MustCompile(`^'[^'=]+'=(U|-?[0-9.]+(s|us|ms|%|B|KB|MB|TB|c)?)(;[0-9.:~@-]*){0,4}$`)

// checkOutput splits a check's stdout into its status line (without
// perfdata), the perfdata items and the long output, failing the test when
// the output is not one status line "ZSYNC <STATE>: text" (| perfdata) and
// long lines without '|'.
func checkOutput(t *testing.T, out string) (status string, perf, long []string) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end in a newline: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	first := lines[0]
	if !regexp.MustCompile(`^ZSYNC (OK|WARNING|CRITICAL|UNKNOWN): \S`).MatchString(first) {
		t.Fatalf("first line %q is not a status line", first)
	}
	status, perfText, hasPerf := strings.Cut(first, " | ")
	if strings.Contains(status, "|") {
		t.Errorf("status text has a '|': %q", status)
	}
	if hasPerf {
		for _, p := range splitPerf(perfText) {
			if !perfRE.MatchString(p) {
				t.Errorf("perfdata item %q does not follow the guidelines", p)
			}
			perf = append(perf, p)
		}
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "|") {
			t.Errorf("long output line with a '|' (would be perfdata): %q", l)
		}
	}
	return status, perf, lines[1:]
}

// splitPerf splits perfdata on the spaces outside quoted labels.
func splitPerf(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == ' ' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

// Whatever goes wrong before anything can be checked, check prints exactly
// one status line, UNKNOWN, on stdout, exits 3 and says nothing on stderr
// (Icinga shows stderr with the output).
func TestCheckAlwaysPrintsAStatusLine(t *testing.T) {
	good, _ := monConfig(t, "", "[[job]]\nname = \"a\"\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n  interval = \"1h\"\n")
	empty, _ := monConfig(t, "", "")
	broken := configFile(t, "[[job]]\nname = \"x y\"\ntype = \"nope\"\ndatasets = [\"tank/a\"]\n")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no config file", []string{"--config", "/nonexistent/zsync.toml", "check"}, "cannot read the config"},
		{"invalid config", []string{"--config", broken, "check"}, "invalid job name"},
		{"unknown job", []string{"--config", good, "check", "nosuchjob"}, `no job named "nosuchjob"`},
		{"unknown flag", []string{"--config", good, "check", "--bogus"}, "bogus"},
		{"no job at all", []string{"--config", empty, "check"}, "no job to check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runUnit(t, c.args...)
			status, _, _ := checkOutput(t, out)
			if code != 3 || !strings.HasPrefix(status, "ZSYNC UNKNOWN: ") || !strings.Contains(status, c.want) {
				t.Errorf("exit %d, status %q; want 3, UNKNOWN mentioning %q", code, status, c.want)
			}
			if errOut != "" {
				t.Errorf("stderr: %q", errOut)
			}
		})
	}
	// a config with several errors: the first on the status line, the
	// others below it
	code, out, _ := runUnit(t, "--config", broken, "check")
	if _, _, long := checkOutput(t, out); code != 3 || len(long) == 0 || !strings.Contains(strings.Join(long, "\n"), "type") {
		t.Errorf("exit %d; want the other config errors as long output:\n%s", code, out)
	}
}

// A push job whose backup host cannot be reached is CRITICAL (replication
// cannot happen), not UNKNOWN; the lag perfdata goes on from the newest
// replicated snapshot the last good run saw.
func TestCheckUnreachableHostIsCritical(t *testing.T) {
	cfg, stateDir := monConfig(t, "", `[[job]]
name = "offsite"
type = "push"
datasets = ["tank/data<"]
root = "backup/laptop"
`+unreachableRemoteConfig(t)+`  [job.check]
  lag_warning = "1h"
  lag_critical = "2h"
`)
	replicated := time.Now().Add(-3 * time.Hour)
	if err := state.WriteRunReport(stateDir, state.RunReport{Job: "offsite", Command: "push", Start: replicated, Result: "ok",
		Replicated: []state.SnapshotMark{{Dataset: "tank/data", Time: replicated}}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runUnit(t, "--config", cfg, "check")
	status, perf, _ := checkOutput(t, out)
	if code != 2 || !strings.HasPrefix(status, "ZSYNC CRITICAL: offsite: cannot look at its datasets (ssh_connect): ") || !strings.Contains(status, "connection refused") {
		t.Errorf("exit %d, status %q; want 2, CRITICAL naming the connection failure", code, status)
	}
	if errOut != "" {
		t.Errorf("stderr: %q", errOut)
	}
	if len(perf) != 1 || !regexp.MustCompile(`^'offsite:tank/data lag'=10[89][0-9]{2}s;3600;7200;0$`).MatchString(perf[0]) {
		t.Errorf("perfdata %q, want the lag of the last known replicated snapshot (about 3h)", perf)
	}
}

// Snap jobs are checked: per dataset the age of the newest snapshot with the
// job's prefix against the job's own thresholds (default 2x and 4x the
// interval), with perfdata.
func TestCheckSnapJobs(t *testing.T) {
	now := time.Now()
	bin, _ := fakeZFSBinary(t, monListing(
		monFS("tank/fresh", 1), monSnap("tank/fresh", "", 11, 5, now.Add(-30*time.Minute)),
		monSnap("tank/fresh", "manual", 12, 6, now.Add(-time.Minute)), // not the job's: does not count
		monFS("tank/stale", 2), monSnap("tank/stale", "", 13, 7, now.Add(-3*time.Hour)),
		monFS("tank/none", 3), monSnap("tank/none", "manual", 14, 8, now.Add(-time.Minute)),
	))
	job := func(name, ds, check string) string {
		return fmt.Sprintf("[[job]]\nname = %q\ntype = \"snap\"\ndatasets = [%q]\n  [job.snapshot]\n  interval = \"1h\"\n%s\n", name, ds, check)
	}
	cfg, _ := monConfig(t, bin, job("fresh", "tank/fresh", "")+job("stale", "tank/stale", "")+
		job("strict", "tank/stale", "  [job.check]\n  snapshot_age_warning = \"1h\"\n  snapshot_age_critical = \"150m\"\n")+
		job("none", "tank/none", ""))
	for _, c := range []struct {
		job    string
		code   int
		status string
		perf   string
	}{
		{"fresh", 0, "ZSYNC OK: 1 job(s), 1 dataset(s) checked", `^'fresh:tank/fresh snapshot_age'=1[78][0-9]{2}s;7200;14400;0$`},
		{"stale", 1, "ZSYNC WARNING: stale tank/stale: newest snapshot 3h old (warning 2h)", `^'stale:tank/stale snapshot_age'=10[89][0-9]{2}s;7200;14400;0$`},
		{"strict", 2, "ZSYNC CRITICAL: strict tank/stale: newest snapshot 3h old (critical 2h30m)", `;3600;9000;0$`},
		{"none", 2, "ZSYNC CRITICAL: none tank/none: no snapshot with the job's prefix", `^'none:tank/none snapshot_age'=U;7200;14400;0$`},
	} {
		t.Run(c.job, func(t *testing.T) {
			code, out, _ := runUnit(t, "--config", cfg, "check", c.job)
			status, perf, long := checkOutput(t, out)
			if code != c.code || status != c.status {
				t.Errorf("exit %d, status %q; want %d, %q", code, status, c.code, c.status)
			}
			if len(perf) != 1 || !regexp.MustCompile(c.perf).MatchString(perf[0]) {
				t.Errorf("perfdata %q, want %s", perf, c.perf)
			}
			if len(long) != 2 || long[0] != "OK "+c.job+": no run recorded yet" {
				t.Errorf("long output %q, want that no run is recorded, then one line per dataset", long)
			}
		})
	}
	// all four: the worst state, its problems first
	code, out, _ := runUnit(t, "--config", cfg, "check")
	status, perf, long := checkOutput(t, out)
	if code != 2 || !strings.HasPrefix(status, "ZSYNC CRITICAL: strict tank/stale") || !strings.Contains(status, "none tank/none") || len(perf) != 4 || len(long) != 8 {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func setDur(d time.Duration) Duration { return Duration{Duration: d, set: true} }

// How check judges a job from its status and its last run's report.
func TestCheckJudgesJobs(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	j := &jobConfig{Name: "home", Type: "push"}
	j.Check = checkConfig{LagWarning: setDur(time.Hour), LagCritical: setDur(2 * time.Hour), SnapshotWarning: setDur(time.Hour), SnapshotCritical: setDur(3 * time.Hour)}
	ds := func(lag, age time.Duration) datasetStatus {
		d := datasetStatus{Source: "tank/home", Target: "backup/tank/home", LastSnapshot: "backup/tank/home@s", LagSeconds: lag.Seconds(),
			NewestSource: "tank/home@s", SourceAgeSecs: age.Seconds()}
		if lag < 0 {
			d.LastSnapshot, d.LagSeconds = "", -1
		}
		return d
	}
	ok := []datasetStatus{ds(10*time.Minute, 10*time.Minute)}
	failed := func(kind string) *state.RunReport {
		return &state.RunReport{Job: "home", Command: "push", Start: now.Add(-10 * time.Minute), Result: "failed", ErrorKind: kind, Error: "it broke"}
	}
	// ran is a good run that started ago and took took
	ran := func(ago, took time.Duration) *state.RunReport {
		return &state.RunReport{Job: "home", Command: "run", Start: now.Add(-ago), Duration: took.Seconds(), Result: "ok"}
	}
	jobErr := func(err error) jobStatus {
		return jobStatus{Job: "home", Type: "push", err: err, Error: err.Error(), ErrorKind: errorKind(err),
			LastRun: &state.RunReport{Result: "ok", Replicated: []state.SnapshotMark{{Dataset: "tank/home", Time: now.Add(-90 * time.Minute)}}}}
	}
	for _, c := range []struct {
		name   string
		js     jobStatus
		level  checkLevel
		status string // a part of the status line
		perf   string // a part of the perfdata
	}{
		{"all fine", jobStatus{Datasets: ok}, checkOK, "1 job(s), 1 dataset(s) checked", "'home:tank/home lag'=600s;3600;7200;0"},
		{"lag past warning", jobStatus{Datasets: []datasetStatus{ds(90*time.Minute, time.Minute)}}, checkWarning, "home tank/home: lag 1h30m (warning 1h)", "=5400s;"},
		{"lag past critical", jobStatus{Datasets: []datasetStatus{ds(150*time.Minute, time.Minute)}}, checkCritical, "lag 2h30m (critical 2h)", ""},
		{"source snapshots stopped", jobStatus{Datasets: []datasetStatus{ds(time.Minute, 4*time.Hour)}}, checkCritical, "newest source snapshot 4h old (critical 3h)", "'home:tank/home snapshot_age'=14400s;3600;10800;0"},
		{"never replicated", jobStatus{Datasets: []datasetStatus{ds(-1, time.Minute)}}, checkCritical, "never replicated", "'home:tank/home lag'=U;3600;7200;0"},
		{"selects nothing", jobStatus{}, checkWarning, "home: selects no dataset", ""},
		{"last run failed, transient", jobStatus{Datasets: ok, LastRun: failed("ssh_connection_lost")}, checkWarning, "home: last run 2026-12-01", ""},
		{"last run failed, unclassified", jobStatus{Datasets: ok, LastRun: failed("")}, checkWarning, "failed (unclassified): it broke", ""},
		{"last run failed, needs a person", jobStatus{Datasets: ok, LastRun: failed("ssh_host_key_mismatch")}, checkCritical, "failed (ssh_host_key_mismatch): it broke", ""},
		{"last run failed, pool full", jobStatus{Datasets: ok, LastRun: failed("zfs_no_space")}, checkCritical, "(zfs_no_space)", ""},
		{"last run failed and lag past critical", jobStatus{Datasets: []datasetStatus{ds(3*time.Hour, time.Minute)}, LastRun: failed("zfs_busy")}, checkCritical, "lag 3h (critical 2h)", ""},
		{"partial run", jobStatus{Datasets: ok, LastRun: &state.RunReport{Result: "partial", ErrorKind: "zfs_busy"}}, checkWarning, "partial (zfs_busy)", ""},
		{"far side unreachable", jobErr(fmt.Errorf("open target: %w", sshtransport.ErrConnect)), checkCritical, "home: cannot look at its datasets (ssh_connect)", "'home:tank/home lag'=5400s;3600;7200;0"},
		{"far host key changed", jobErr(fmt.Errorf("open target: %w", sshtransport.ErrHostKeyMismatch)), checkCritical, "(ssh_host_key_mismatch)", ""},
		{"source has no snapshot with the job's prefix", jobStatus{Datasets: []datasetStatus{{Source: "tank/home", LastSnapshot: "backup/tank/home@s", LagSeconds: 60, SourceAgeSecs: -1, SnapshotPrefix: "zsync_"}}},
			checkCritical, "home tank/home: lag 1m, no source snapshot with the job's prefix zsync_", "'home:tank/home snapshot_age'=U;"},
		{"no run for longer than the lag warning", jobStatus{Datasets: ok, LastRun: ran(100*time.Minute, 5*time.Minute)}, checkWarning,
			"home: no run for 1h35m (warning 1h), the last ended " + now.Add(-95*time.Minute).Local().Format(time.DateTime), ""},
		{"no run for longer than the lag critical", jobStatus{Datasets: ok, LastRun: ran(30*time.Hour, time.Hour)}, checkCritical, "home: no run for 1d5h (critical 2h)", ""},
		{"a long run is counted from its end", jobStatus{Datasets: ok, LastRun: ran(5*time.Hour, 4*time.Hour+50*time.Minute)}, checkOK, "1 job(s), 1 dataset(s) checked", ""},
		{"no run for long, far side unreachable: that first", func() jobStatus {
			js := jobErr(fmt.Errorf("open target: %w", sshtransport.ErrConnect))
			js.LastRun = ran(30*time.Hour, 0)
			return js
		}(), checkCritical, "home: cannot look at its datasets (ssh_connect): open target", ""},
		{"run report unreadable", jobStatus{Datasets: ok, ReportError: "run report of home: unexpected end of JSON input"}, checkUnknown,
			"home: cannot read its last run report: run report of home: unexpected end of JSON input", ""},
		{"job cannot be built", jobErr(usageErrorf("snapshot_filter: bad regex")), checkUnknown, "home: cannot look at its datasets (config)", ""},
		{"no zfs here", jobErr(fmt.Errorf("zfs list: %w", errExecNotFound())), checkUnknown, "executable file not found", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &checkResult{}
			r.judgeJob(j, c.js, now)
			out := r.render()
			status, perf, _ := checkOutput(t, out)
			if r.level != c.level || !strings.HasPrefix(status, "ZSYNC "+c.level.String()+": ") || !strings.Contains(status, c.status) {
				t.Errorf("level %v; want %v with %q in the status line:\n%s", r.level, c.level, c.status, out)
			}
			if c.level != checkOK && strings.Contains(status, "no run for") != strings.Contains(c.status, "no run for") {
				t.Errorf("status line %q: the run age is the problem to show only when it is the one expected", status)
			}
			if c.perf != "" && !strings.Contains(strings.Join(perf, " "), c.perf) {
				t.Errorf("perfdata %q lacks %q", perf, c.perf)
			}
		})
	}
}

// errExecNotFound is the error os/exec gives for a binary not in PATH.
func errExecNotFound() error {
	_, err := exec.LookPath("zsync-test-no-such-binary")
	if !errors.Is(err, exec.ErrNotFound) {
		panic(err)
	}
	return err
}

// The worst state wins, in the monitoring plugins' order OK < UNKNOWN <
// WARNING < CRITICAL; the status line starts with the worst problems.
func TestCheckStateOrder(t *testing.T) {
	r := &checkResult{}
	r.add(checkUnknown, "u", true)
	r.add(checkWarning, "w", true)
	if r.level != checkWarning {
		t.Errorf("UNKNOWN and WARNING: %v, want WARNING", r.level)
	}
	r.add(checkOK, "fine", true)
	r.add(checkCritical, "c", true)
	if r.level != checkCritical || r.statusText() != "ZSYNC CRITICAL: c; w; u" {
		t.Errorf("level %v, status %q", r.level, r.statusText())
	}
	for i := range 5 {
		r.add(checkWarning, fmt.Sprintf("w%d", i), true)
	}
	if got := r.statusText(); !strings.HasSuffix(got, "and 5 more") {
		t.Errorf("a long list is cut: %q", got)
	}
	// text from errors never breaks the format
	r = &checkResult{}
	r.add(checkWarning, "grid 1x1h | 24x1h\nsecond line", true)
	if _, _, long := checkOutput(t, r.render()); len(long) != 1 {
		t.Errorf("long output %q", long)
	}
	if squeeze(strings.Repeat("a", 300)+"the end", 100) == "" || !strings.HasSuffix(squeeze(strings.Repeat("a", 300)+"the end", 100), "the end") {
		t.Errorf("squeeze loses the end of an error")
	}
}
