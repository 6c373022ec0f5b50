package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunReportRoundTripAndMetrics(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadRunReport(dir, "home"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no report yet: %v", err)
	}
	start := time.Unix(1795333347, 0).UTC()
	r := RunReport{Job: "home", Command: "push", Start: start, Duration: 1.5, Result: "partial", LastSuccess: start.Add(-time.Hour), Bytes: 42,
		Datasets: []DatasetReport{
			{Source: "tank/a", Status: "replicated", LagSeconds: 30},
			{Source: `tank/we"ird\name`, Status: "failed", Error: "boom"},
		}}
	if err := WriteRunReport(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRunReport(dir, "home")
	if err != nil || got.Bytes != 42 || len(got.Datasets) != 2 || !got.LastSuccess.Equal(r.LastSuccess) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	all, err := ReadAllRunReports(dir)
	if err != nil || len(all) != 1 {
		t.Fatalf("all: %v %v", all, err)
	}
	m := string(Metrics(all))
	for _, want := range []string{
		`zsync_last_run_timestamp_seconds{job="home"} 1795333347`,
		`zsync_last_success_timestamp_seconds{job="home"} 1795329747`,
		`zsync_last_run_bytes{job="home"} 42`,
		`zsync_last_run_datasets{job="home",result="ok"} 1`,
		`zsync_last_run_datasets{job="home",result="failed"} 1`,
		`zsync_replication_lag_seconds{job="home",dataset="tank/a"} 30`,
		"# TYPE zsync_last_run_duration_seconds gauge",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if q(`a"b\c`+"\n") != `"a\"b\\c\n"` {
		t.Errorf("label quoting: %s", q(`a"b\c`+"\n"))
	}
}

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "m.prom")
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteFileAtomic(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != content {
			t.Fatalf("got %q want %q", b, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
}
