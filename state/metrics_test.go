package state

import (
	"bytes"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics parses a textfile with the Prometheus reference parser (the
// one node_exporter's textfile collector uses), with the classic name rules.
func parseMetrics(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses the textfile: %v\n%s", err, text)
	}
	return fams
}

// samples maps each sample of a family to its value, keyed by its labels
// as k=v pairs sorted and joined with ','.
func samples(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	if f.GetType() != dto.MetricType_GAUGE {
		t.Errorf("%s is a %v, want a gauge", name, f.GetType())
	}
	if f.GetHelp() == "" {
		t.Errorf("%s has no HELP", name)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		k := strings.Join(ls, ",")
		if _, dup := out[k]; dup {
			t.Errorf("%s{%s} twice", name, k)
		}
		out[k] = m.GetGauge().GetValue()
	}
	return out
}

func wantSamples(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]float64) {
	t.Helper()
	got := samples(t, fams, name)
	if len(got) != len(want) {
		t.Errorf("%s: %d samples %v, want %d %v", name, len(got), got, len(want), want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s{%s} = %v (present %v), want %v", name, k, g, ok, v)
		}
	}
}

// The textfile is what the Prometheus text parser reads: every family a
// gauge with HELP, labels escaped, values as written; per dataset the
// timestamps of the newest replicated snapshot and of a snap job's newest
// snapshot (never one dated in the future), and the datasets whose newest
// snapshot is.
func TestMetricsParseWithThePrometheusTextParser(t *testing.T) {
	start := time.Unix(1795333347, 0).UTC()
	repl := time.Unix(1795330000, 0).UTC()
	weird := "tank/we\"ird\\name with space"
	reports := []RunReport{
		{Job: "home", Command: "push", Start: start, Duration: 1.5, Result: "partial", ErrorKind: "zfs_no_space",
			LastSuccess: start.Add(-time.Hour), Bytes: 42,
			Datasets: []DatasetReport{
				{Source: "tank/a", Status: "replicated", LagSeconds: 30},
				{Source: weird, Status: "failed", Error: "boom", ErrorKind: "zfs_no_space"},
			},
			Replicated: []SnapshotMark{{Dataset: "tank/a", Snapshot: "tank/a@s2", Time: repl}, {Dataset: weird, Snapshot: weird + "@s1", Time: repl.Add(-time.Hour)}}},
		{Job: "offsite", Command: "push", Start: start, Result: "failed", ErrorKind: "ssh_connect"},
		{Job: "snaps", Command: "snap", Start: start, Duration: 0.25, Result: "ok", LastSuccess: start,
			Datasets: []DatasetReport{{Source: "tank/db", Status: "taken"}, {Source: "tank/www", Status: "not due"}},
			Snapshots: []SnapshotMark{{Dataset: "tank/db", Snapshot: "tank/db@zsync_x", Time: start}, {Dataset: "tank/www", Time: start.Add(-10 * time.Minute)},
				// dated after the run (a report from before zsync kept
				// future-dated snapshots out): not exported, its age
				// would be negative
				{Dataset: "tank/old", Time: start.Add(time.Hour)}},
			FutureDated: []SnapshotMark{{Dataset: "tank/www", Snapshot: "tank/www@zsync_y", Time: start.Add(24 * time.Hour)}, {Dataset: "tank/new", Time: start.Add(time.Hour)}}},
	}
	fams := parseMetrics(t, Metrics(reports))

	wantSamples(t, fams, "zsync_last_run_timestamp_seconds", map[string]float64{
		"job=home": 1795333347, "job=offsite": 1795333347, "job=snaps": 1795333347})
	wantSamples(t, fams, "zsync_last_success_timestamp_seconds", map[string]float64{
		"job=home": 1795333347 - 3600, "job=snaps": 1795333347})
	wantSamples(t, fams, "zsync_last_run_success", map[string]float64{
		"job=home": 0, "job=offsite": 0, "job=snaps": 1})
	wantSamples(t, fams, "zsync_last_run_error_info", map[string]float64{
		"error_kind=zfs_no_space,job=home": 1, "error_kind=ssh_connect,job=offsite": 1})
	wantSamples(t, fams, "zsync_last_run_duration_seconds", map[string]float64{
		"job=home": 1.5, "job=offsite": 0, "job=snaps": 0.25})
	wantSamples(t, fams, "zsync_last_run_bytes", map[string]float64{
		"job=home": 42, "job=offsite": 0, "job=snaps": 0})
	wantSamples(t, fams, "zsync_last_run_datasets", map[string]float64{
		"job=home,result=ok": 1, "job=home,result=failed": 1,
		"job=offsite,result=ok": 0, "job=offsite,result=failed": 0,
		"job=snaps,result=ok": 2, "job=snaps,result=failed": 0})
	wantSamples(t, fams, "zsync_last_replicated_snapshot_timestamp_seconds", map[string]float64{
		"dataset=tank/a,job=home": 1795330000, "dataset=" + weird + ",job=home": 1795330000 - 3600})
	wantSamples(t, fams, "zsync_newest_snapshot_timestamp_seconds", map[string]float64{
		"dataset=tank/db,job=snaps": 1795333347, "dataset=tank/www,job=snaps": 1795333347 - 600})
	wantSamples(t, fams, "zsync_future_dated_snapshots", map[string]float64{
		"dataset=tank/www,job=snaps": 1, "dataset=tank/new,job=snaps": 1})
	wantSamples(t, fams, "zsync_replication_lag_seconds", map[string]float64{"dataset=tank/a,job=home": 30})
	if len(fams) != 11 {
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		t.Errorf("families %v, want the 11 above", names)
	}
}

// No report at all (a fresh state dir): the file still parses.
func TestMetricsOfNoReportParse(t *testing.T) {
	for n, f := range parseMetrics(t, Metrics(nil)) {
		if len(f.GetMetric()) != 0 {
			t.Errorf("%s has samples", n)
		}
	}
}

// A run that could not look at some datasets keeps their last known newest
// snapshots, so the exported timestamps age instead of vanishing.
func TestCarryOver(t *testing.T) {
	t0 := time.Unix(1795000000, 0).UTC()
	mark := func(ds string, h int) SnapshotMark {
		return SnapshotMark{Dataset: ds, Snapshot: ds + "@s", Time: t0.Add(time.Duration(h) * time.Hour)}
	}
	prev := RunReport{Job: "j", Result: "ok", LastSuccess: t0,
		Replicated: []SnapshotMark{mark("tank/a", 1), mark("tank/b", 1), mark("tank/gone", 1)},
		Snapshots:  []SnapshotMark{mark("tank/a", 2)}}
	for _, c := range []struct {
		name     string
		cur      RunReport
		wantRepl []SnapshotMark
		wantSnap []SnapshotMark
		wantOK   time.Time
	}{
		{name: "the job failed as a whole: every mark is kept",
			cur:      RunReport{Result: "failed"},
			wantRepl: prev.Replicated, wantSnap: prev.Snapshots, wantOK: t0},
		{name: "a failed dataset keeps its mark, a dataset no longer selected loses it",
			cur: RunReport{Result: "partial", Datasets: []DatasetReport{{Source: "tank/a"}, {Source: "tank/b", Status: "failed"}},
				Replicated: []SnapshotMark{mark("tank/a", 5)}},
			wantRepl: []SnapshotMark{mark("tank/a", 5), mark("tank/b", 1)}, wantSnap: []SnapshotMark{mark("tank/a", 2)}, wantOK: t0},
		{name: "a success keeps its own time",
			cur:      RunReport{Result: "ok", LastSuccess: t0.Add(9 * time.Hour), Datasets: []DatasetReport{{Source: "tank/a"}}, Replicated: []SnapshotMark{mark("tank/a", 9)}},
			wantRepl: []SnapshotMark{mark("tank/a", 9)}, wantSnap: []SnapshotMark{mark("tank/a", 2)}, wantOK: t0.Add(9 * time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.cur
			r.CarryOver(prev)
			if !equalMarks(r.Replicated, c.wantRepl) || !equalMarks(r.Snapshots, c.wantSnap) || !r.LastSuccess.Equal(c.wantOK) {
				t.Errorf("replicated %v snapshots %v last success %v\nwant %v, %v, %v", r.Replicated, r.Snapshots, r.LastSuccess, c.wantRepl, c.wantSnap, c.wantOK)
			}
		})
	}
}

func equalMarks(a, b []SnapshotMark) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Dataset != b[i].Dataset || a[i].Snapshot != b[i].Snapshot || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

// The last successful run's report stays next to the last run's, and
// ReadAllRunReports (the metrics) does not read it as another job.
func TestLastSuccessReport(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1795000000, 0).UTC()
	if _, err := ReadLastSuccess(dir, "j"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no success yet: %v", err)
	}
	if err := WriteRunReport(dir, RunReport{Job: "j", Start: t0, Result: "ok", Bytes: 7}); err != nil {
		t.Fatal(err)
	}
	if err := WriteRunReport(dir, RunReport{Job: "j", Start: t0.Add(time.Hour), Result: "failed", ErrorKind: "ssh_auth"}); err != nil {
		t.Fatal(err)
	}
	last, err := ReadRunReport(dir, "j")
	if err != nil || last.Result != "failed" {
		t.Fatalf("last run: %+v %v", last, err)
	}
	ok, err := ReadLastSuccess(dir, "j")
	if err != nil || ok.Result != "ok" || !ok.Start.Equal(t0) || ok.Bytes != 7 {
		t.Fatalf("last success: %+v %v", ok, err)
	}
	all, err := ReadAllRunReports(dir)
	if err != nil || len(all) != 1 || all[0].Result != "failed" {
		t.Fatalf("all reports: %+v %v", all, err)
	}
}
