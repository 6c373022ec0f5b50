package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/state"
)

// readMetricsFile parses a textfile with the Prometheus reference parser
// and returns family -> "label=value,..." (labels sorted by name) -> value.
func readMetricsFile(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("the Prometheus text parser refuses %s: %v\n%s", path, err, b)
	}
	out := map[string]map[string]float64{}
	for name, fam := range fams {
		if fam.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %v, want a gauge", name, fam.GetType())
		}
		out[name] = map[string]float64{}
		for _, m := range fam.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out[name][strings.Join(ls, ",")] = m.GetGauge().GetValue()
		}
	}
	return out
}

// A one-off run (`zsync push SRC host:DST`) keeps its run report in the
// state dir but never reaches the metrics textfile: its failure would
// otherwise alert forever, as nothing ever runs it again. Snap jobs get their
// samples (run result, newest snapshot per dataset); a push job whose far
// side is down keeps exporting the time of the newest replicated snapshot
// its last good run saw, so that time() - it keeps growing.
func TestMetricsLeaveOutOneOffRunsAndCoverSnapJobs(t *testing.T) {
	now := time.Now()
	old, recent := now.Add(-90*time.Minute).Truncate(time.Second), now.Add(-10*time.Minute).Truncate(time.Second)
	bin, calls := fakeZFSBinary(t, monListing(
		monFS("tank/home", 1),
		monSnap("tank/home", "", 11, 5, old),
		monFS("tank/home/db", 2),
		monSnap("tank/home/db", "", 12, 6, recent),
	))
	remote := unreachableRemoteConfig(t)
	cfg, stateDir := monConfig(t, bin, `[[job]]
name = "offsite"
type = "push"
datasets = ["tank/home<"]
root = "backup/laptop"
`+remote+`
[[job]]
name = "snaps"
type = "snap"
datasets = ["tank/home<"]
  [job.snapshot]
  interval = "1h"
`)
	metrics := metricsFileOf(cfg)

	// a one-off push to the same unreachable host, sharing the state dir
	port, id, kh := unreachableRemote(t)
	code, _, errOut := runUnit(t, "--config", cfg, "push", "--port", itoa(port), "--identity", id, "--known-hosts", kh,
		"tank/home", "backup@127.0.0.1:pool/x")
	if code != ExitFailure {
		t.Fatalf("one-off push to nowhere: exit %d, want 1\n%s", code, errOut)
	}
	oneoffs, _ := filepath.Glob(filepath.Join(stateDir, "reports", "oneoff-*.json"))
	if len(oneoffs) != 1 {
		t.Fatalf("one-off run reports: %v, want one (it stays in the state dir)", oneoffs)
	}

	// an earlier good run of offsite saw tank/home's newest replicated snapshot
	replicated := now.Add(-3 * time.Hour).Truncate(time.Second)
	if err := state.WriteRunReport(stateDir, state.RunReport{Job: "offsite", Command: "push", Start: replicated, Result: "ok", LastSuccess: replicated,
		Datasets:   []state.DatasetReport{{Source: "tank/home", Status: "replicated"}},
		Replicated: []state.SnapshotMark{{Dataset: "tank/home", Snapshot: "tank/home@s", Time: replicated}}}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runUnit(t, "--config", cfg, "push"); code != ExitFailure {
		t.Fatalf("push to nowhere: exit %d, want 1\n%s", code, errOut)
	}
	if code, _, errOut := runUnit(t, "--config", cfg, "snap"); code != 0 {
		t.Fatalf("snap: exit %d\n%s", code, errOut)
	}
	if b, _ := os.ReadFile(calls); !strings.Contains(string(b), "snapshot tank/home@zsync_") || strings.Contains(string(b), "snapshot tank/home/db@") {
		t.Fatalf("zfs calls: want one snapshot of tank/home (due), none of tank/home/db:\n%s", b)
	}

	m := readMetricsFile(t, metrics)
	for fam, ss := range m {
		for labels := range ss {
			if strings.Contains(labels, "oneoff") {
				t.Errorf("one-off run exported: %s{%s}", fam, labels)
			}
		}
	}
	want := map[string]map[string]float64{
		"zsync_last_run_success":    {"job=offsite": 0, "job=snaps": 1},
		"zsync_last_run_error_info": {"error_kind=ssh_connect,job=offsite": 1},
		"zsync_last_run_datasets": {"job=offsite,result=ok": 0, "job=offsite,result=failed": 0,
			"job=snaps,result=ok": 2, "job=snaps,result=failed": 0},
		"zsync_last_success_timestamp_seconds":             {"job=offsite": float64(replicated.Unix())},
		"zsync_last_replicated_snapshot_timestamp_seconds": {"dataset=tank/home,job=offsite": float64(replicated.Unix())},
		"zsync_newest_snapshot_timestamp_seconds":          {"dataset=tank/home/db,job=snaps": float64(recent.Unix())},
	}
	for fam, ss := range want {
		for labels, v := range ss {
			if got, ok := m[fam][labels]; !ok || got != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", fam, labels, got, ok, v)
			}
		}
	}
	// tank/home got its snapshot in this run: its time is now's
	if got := m["zsync_newest_snapshot_timestamp_seconds"]["dataset=tank/home,job=snaps"]; got < float64(now.Unix()) || got > float64(time.Now().Unix()) {
		t.Errorf("newest snapshot of tank/home at %v, want the snap run's time (%d..)", got, now.Unix())
	}
	if got := m["zsync_last_success_timestamp_seconds"]["job=snaps"]; got < float64(now.Add(-time.Minute).Unix()) {
		t.Errorf("snaps' last success at %v, want the snap run", got)
	}
	if len(m["zsync_last_run_success"]) != 2 {
		t.Errorf("jobs exported: %v, want offsite and snaps only", m["zsync_last_run_success"])
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A snap job's run report counts its datasets (a skipped pre-hook or a
// failed snapshot is a failure, a failed post-hook too although the
// snapshot exists) and records each dataset's newest snapshot after the
// run.
func TestSnapRunReport(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	dec := func(ds string, newest time.Time) snap.Decision {
		d := snap.Decision{Dataset: ds, Snapshot: ds + "@" + snap.Name("zsync_", t0)}
		if !newest.IsZero() {
			d.Newest, d.NewestTime = snap.Name("zsync_", newest), newest
		}
		return d
	}
	prev := t0.Add(-time.Hour)
	plan := snap.Plan{Time: t0, Name: snap.Name("zsync_", t0),
		Due:    []snap.Decision{dec("tank/a", prev), dec("tank/b", prev), dec("tank/c", time.Time{}), dec("tank/d", prev)},
		NotDue: []snap.Decision{dec("tank/e", t0.Add(-time.Minute))}}
	hookErr := &snap.HookError{Kind: snap.HookPre, Argv: []string{"freeze"}, ExitCode: 1}
	rep := snap.Report{Time: t0, Results: []snap.Result{
		{Dataset: "tank/a", Snapshot: plan.Due[0].Snapshot, Outcome: snap.Taken},
		{Dataset: "tank/b", Snapshot: plan.Due[1].Snapshot, Outcome: snap.Skipped, Err: hookErr},
		{Dataset: "tank/c", Snapshot: plan.Due[2].Snapshot, Outcome: snap.Failed, Err: errors.New("out of space")},
		{Dataset: "tank/d", Snapshot: plan.Due[3].Snapshot, Outcome: snap.Taken,
			PostHook: &snap.HookResult{Kind: snap.HookPost, Err: &snap.HookError{Kind: snap.HookPost, ExitCode: 2}}},
	}}
	so := newSnapOutcome(plan, &rep)
	j := &jobConfig{Name: "snaps", Type: "snap"}
	res := snapJobResult(j, so, &PartialError{Failed: 3, Succeeded: 1, Err: rep.Err()})
	rr := toRunReport("snap", time.Now(), res.rep, res.err)
	so.addTo(&rr)

	if rr.Result != "partial" {
		t.Errorf("result %q, want partial", rr.Result)
	}
	status := map[string]string{}
	for _, d := range rr.Datasets {
		status[d.Source] = d.Status
	}
	wantStatus := map[string]string{"tank/a": "taken", "tank/b": "skipped", "tank/c": "failed", "tank/d": "failed", "tank/e": "not due"}
	for ds, s := range wantStatus {
		if status[ds] != s {
			t.Errorf("%s: status %q, want %q", ds, status[ds], s)
		}
	}
	wantMarks := map[string]time.Time{"tank/a": t0, "tank/b": prev, "tank/d": t0, "tank/e": t0.Add(-time.Minute)} // tank/c has none
	if len(rr.Snapshots) != len(wantMarks) {
		t.Errorf("marks %v, want %v", rr.Snapshots, wantMarks)
	}
	for _, m := range rr.Snapshots {
		if w, ok := wantMarks[m.Dataset]; !ok || !m.Time.Equal(w) || !strings.HasPrefix(m.Snapshot, m.Dataset+"@zsync_") {
			t.Errorf("mark %+v, want %v", m, w)
		}
	}
}
