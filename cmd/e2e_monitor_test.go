//go:build realzfs

package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// withMetricsFile adds metrics_file to a config written by writeConfig and
// returns the textfile's path.
func withMetricsFile(t *testing.T, cfg string) string {
	t.Helper()
	metrics := filepath.Join(t.TempDir(), "zsync.prom")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	with := strings.Replace(string(text), "[global]\n", "[global]\nmetrics_file = \""+metrics+"\"\n", 1)
	if err := os.WriteFile(cfg, []byte(with), 0o600); err != nil {
		t.Fatal(err)
	}
	return metrics
}

// A snap job is checked (CRITICAL without a snapshot, OK after zsync snap,
// with its perfdata), shown by status, and has its samples in the textfile.
func TestSnapJobCheckStatusAndMetrics(t *testing.T) {
	pool := zfstest.NewPool(t, 128)
	ds := pool + "/db"
	zfstest.MustCreate(t, ds)
	zfstest.MustSnapshot(t, ds+"@manual") // not the job's: does not count
	cfg := writeConfig(t, fmt.Sprintf("[[job]]\nname = \"snaps\"\ntype = \"snap\"\ndatasets = [%q]\n  [job.snapshot]\n  interval = \"1h\"\n", ds))
	metrics := withMetricsFile(t, cfg)

	code, out, _ := zsyncRun(t, "--config", cfg, "check")
	status, perf, _ := checkOutput(t, out)
	if code != 2 || status != "ZSYNC CRITICAL: snaps "+ds+": no snapshot with the job's prefix" {
		t.Errorf("check before any snapshot: exit %d, %q", code, status)
	}
	if want := "'snaps:" + ds + " snapshot_age'=U;7200;14400;0"; len(perf) != 1 || perf[0] != want {
		t.Errorf("perfdata %q, want %q", perf, want)
	}

	if code, _, _ := zsyncRun(t, "--config", cfg, "snap"); code != 0 {
		t.Fatalf("snap: exit %d", code)
	}
	var taken string
	for _, s := range snapshotsOf(t, ds) {
		if strings.HasPrefix(s, "zsync_") {
			taken = s
		}
	}
	if taken == "" {
		t.Fatalf("snap took no zsync_ snapshot: %v", snapshotsOf(t, ds))
	}
	code, out, _ = zsyncRun(t, "--config", cfg, "check")
	status, perf, _ = checkOutput(t, out)
	if code != 0 || status != "ZSYNC OK: 1 job(s), 1 dataset(s) checked" {
		t.Errorf("check after snap: exit %d, %q", code, status)
	}
	if len(perf) != 1 || !regexp.MustCompile(`^'snaps:`+regexp.QuoteMeta(ds)+` snapshot_age'=[0-9]{1,3}s;7200;14400;0$`).MatchString(perf[0]) {
		t.Errorf("perfdata %q, want a fresh snapshot age", perf)
	}

	code, out, _ = zsyncRun(t, "--config", cfg, "status")
	for _, want := range []string{"job snaps (snap): last run snap ", " ok\n", "  " + ds + "\n    newest snapshot: " + ds + "@" + taken + ", "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, lacks %q:\n%s", code, want, out)
		}
	}

	m := readMetricsFile(t, metrics)
	when, ok := snap.ParseName("zsync_", taken)
	if !ok {
		t.Fatalf("snapshot name %q does not parse", taken)
	}
	if got := m["zsync_newest_snapshot_timestamp_seconds"]["dataset="+ds+",job=snaps"]; got != float64(when.Unix()) {
		t.Errorf("zsync_newest_snapshot_timestamp_seconds = %v, want %d (%s)", got, when.Unix(), taken)
	}
	if got, ok := m["zsync_last_run_success"]["job=snaps"]; !ok || got != 1 {
		t.Errorf("zsync_last_run_success{job=snaps} = %v (present %v), want 1", got, ok)
	}
}

// A failed one-off push into the job's state dir does not reach the
// textfile; the configured job's sample of the newest replicated snapshot
// is that snapshot's creation time.
func TestOneOffRunStaysOutOfTheMetrics(t *testing.T) {
	e := newPushEnv(t, "")
	metrics := withMetricsFile(t, e.cfg)
	stateDir := filepath.Join(filepath.Dir(e.cfg), "state")

	// --initial fail refuses the full send a fresh target needs
	code, _, _ := zsyncRun(t, "--config", e.cfg, "push", "--state-dir", stateDir, "--initial", "fail", e.src+"/data", e.dst+"/oneoff")
	if code == 0 {
		t.Fatalf("one-off push with --initial fail into a fresh target: exit 0")
	}
	if r, _ := filepath.Glob(filepath.Join(stateDir, "reports", "oneoff-*.json")); len(r) != 1 {
		t.Fatalf("one-off reports %v, want one", r)
	}
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	m := readMetricsFile(t, metrics)
	for fam, ss := range m {
		for labels := range ss {
			if strings.Contains(labels, "oneoff") {
				t.Errorf("one-off run exported: %s{%s}", fam, labels)
			}
		}
	}
	created, err := strconv.ParseFloat(zfstest.Get(t, e.src+"/data@first snap", "creation"), 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		k := "dataset=" + e.src + "/" + ds + ",job=push"
		if got := m["zsync_last_replicated_snapshot_timestamp_seconds"][k]; got != created {
			t.Errorf("zsync_last_replicated_snapshot_timestamp_seconds{%s} = %v, want %v", k, got, created)
		}
	}
	if got := m["zsync_last_run_success"]; len(got) != 1 || got["job=push"] != 1 {
		t.Errorf("zsync_last_run_success %v, want only job=push, 1", got)
	}
}

// A run whose snapshot phase fails (a pre-hook refuses) makes check
// WARNING with the failure (its lag is fine); status shows the last
// successful run next to it.
func TestCheckAndStatusAfterAFailedRun(t *testing.T) {
	hook := "/bin/true"
	e := newPushEnv(t, "")
	setHook := func(h string) {
		t.Helper()
		text, err := os.ReadFile(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(text), "pre_hook = [\""+hook+"\"]", "pre_hook = [\""+h+"\"]", 1)
		if !strings.Contains(s, "pre_hook") {
			s += "  [job.snapshot]\n  interval = \"1s\"\n  pre_hook = [\"" + h + "\"]\n" +
				"  [job.check]\n  lag_warning = \"1d\"\n  lag_critical = \"2d\"\n  snapshot_age_warning = \"1d\"\n  snapshot_age_critical = \"2d\"\n"
		}
		hook = h
		if err := os.WriteFile(e.cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setHook("/bin/true")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "run", "push"); code != 0 {
		t.Fatalf("run: exit %d", code)
	}
	code, out, _ := zsyncRun(t, "--config", e.cfg, "check")
	if status, _, _ := checkOutput(t, out); code != 0 || !strings.HasPrefix(status, "ZSYNC OK: ") {
		t.Errorf("check after a good run: exit %d %q", code, status)
	}

	time.Sleep(1100 * time.Millisecond) // the next snapshot is due
	setHook("/bin/false")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "run", "push"); code == 0 {
		t.Fatalf("run with a failing pre-hook: exit 0")
	}
	code, out, _ = zsyncRun(t, "--config", e.cfg, "check")
	status, _, long := checkOutput(t, out)
	if code != 1 || !strings.HasPrefix(status, "ZSYNC WARNING: push: last run ") || !strings.Contains(status, "partial") {
		t.Errorf("check after a failed snapshot: exit %d %q, want 1, WARNING naming the partial last run", code, status)
	}
	if len(long) != 4 { // the last run and three datasets
		t.Errorf("long output %q", long)
	}

	code, out, _ = zsyncRun(t, "--config", e.cfg, "status")
	for _, want := range []string{"job push (push): last run run ", " partial, ", "  last run failed", "  last successful run: run "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	code, out, _ = zsyncRun(t, "--config", e.cfg, "status", "--json")
	var st []jobStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st) != 1 {
		t.Fatalf("status --json: exit %d, %v", code, err)
	}
	// (in-process runs share one start time: compare results, not times)
	if st[0].LastRun == nil || st[0].LastRun.Result != "partial" || st[0].LastSuccessfulRun == nil || st[0].LastSuccessfulRun.Result != "ok" {
		t.Errorf("status --json: last run %+v, last successful run %+v", st[0].LastRun, st[0].LastSuccessfulRun)
	}
}

// Two push jobs replicate one dataset to two roots: status of one shows
// the other's cursor on the shared source as another job's relationship,
// not as stale.
func TestStatusShowsAnotherJobsRelationship(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	ds := src + "/d"
	zfstest.MustCreate(t, ds)
	zfstest.MustWriteFile(t, ds, "f1", 64)
	zfstest.MustSnapshot(t, ds+"@s1")
	cfg := writeConfig(t, fmt.Sprintf(`[[job]]
name = "a"
type = "push"
datasets = [%[1]q]
root = "%[2]s/r1"

[[job]]
name = "b"
type = "push"
datasets = [%[1]q]
root = "%[2]s/r2"
`, ds, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	code, out, _ := zsyncRun(t, "--config", cfg, "status", "a")
	if code != 0 || !strings.Contains(out, "relationship of another job ") || !strings.Contains(out, "used by job b: "+ds+" -> "+dst+"/r2/"+ds) ||
		strings.Contains(out, "orphaned") {
		t.Errorf("status a: exit %d, want b's relationship on %s shown as another job's:\n%s", code, ds, out)
	}
	code, out, _ = zsyncRun(t, "--config", cfg, "status", "--json", "a")
	var st []jobStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st) != 1 || len(st[0].Datasets) != 1 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	d := st[0].Datasets[0]
	if len(d.OtherRelations) != 1 || d.OtherRelations[0].State != "live" || d.OtherRelations[0].Side != "source" || len(d.StaleRelations) != 0 {
		t.Errorf("status --json of %s: other %+v, stale %+v", ds, d.OtherRelations, d.StaleRelations)
	}
}

// The backup host snapshots its own pool: a snapshot taken on the target
// after the push is newer than anything replicated, but check judges lag
// by the last replicated snapshot (the one whose GUID the source has), and
// status names that one. (Judged by the target's newest snapshot, the lag
// of data would be about 0s and check OK.)
func TestCheckLagIgnoresATargetSnapshotOfItsOwn(t *testing.T) {
	e := newPushEnv(t, "  [job.check]\n  lag_warning = \"3s\"\n  lag_critical = \"1h\"\n  snapshot_age_warning = \"1h\"\n  snapshot_age_critical = \"2h\"\n")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	data := e.target("data")
	created, err := strconv.ParseInt(zfstest.Get(t, data+"@first snap", "creation"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(time.Unix(created, 0)) < 5*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	zfstest.MustSnapshot(t, data+"@autosnap_hourly")

	before := time.Now()
	code, out, _ := zsyncRun(t, "--config", e.cfg, "check")
	checked := time.Now()
	status, perf, long := checkOutput(t, out)
	if code != 1 || !strings.HasPrefix(status, "ZSYNC WARNING: ") || !strings.Contains(status, "push "+e.src+"/data: lag ") {
		t.Errorf("check after a snapshot of the target's own: exit %d %q, want 1, WARNING with the lag of %s/data", code, status, e.src)
	}
	if !regexp.MustCompile(`(?m)^WARNING push ` + regexp.QuoteMeta(e.src) + `/data: lag [0-9a-z]+ \(warning 3s\), newest source snapshot `).MatchString(strings.Join(long, "\n")) {
		t.Errorf("long output lacks the lag of %s/data as a WARNING:\n%s", e.src, strings.Join(long, "\n"))
	}
	m := regexp.MustCompile(`^'push:` + regexp.QuoteMeta(e.src) + `/data lag'=([0-9]+)s;3;3600;0$`)
	found := false
	for _, p := range perf {
		if sm := m.FindStringSubmatch(p); sm != nil {
			found = true
			lag, _ := strconv.ParseInt(sm[1], 10, 64)
			// the check's clock is read somewhere between before and
			// checked, however long the check took
			if lo, hi := before.Unix()-created-1, checked.Unix()-created+1; lag < lo || lag > hi {
				t.Errorf("lag perfdata %s, want the age of @first snap during the check (%d..%ds)", p, lo, hi)
			}
		}
	}
	if !found {
		t.Errorf("no lag perfdata for %s/data in %q", e.src, perf)
	}

	code, out, _ = zsyncRun(t, "--config", e.cfg, "status", "--json")
	var st []jobStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st) != 1 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	for _, d := range st[0].Datasets {
		if d.LastSnapshot != d.Target+"@first snap" || d.LastSnapshotBasis != "source" {
			t.Errorf("status of %s: last replicated %q (%s), want %s@first snap by the source", d.Source, d.LastSnapshot, d.LastSnapshotBasis, d.Target)
		}
	}
}
