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
	r := RunReport{Job: "home", Command: "push", Start: start, Duration: 1.5, Result: "partial", ErrorKind: "zfs_no_space", LastSuccess: start.Add(-time.Hour), Bytes: 42,
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
	// A job that could not connect: failed, no datasets, never succeeded.
	if err := WriteRunReport(dir, RunReport{Job: "offsite", Command: "push", Start: start, Result: "failed", ErrorKind: "ssh_host_key_mismatch"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteRunReport(dir, RunReport{Job: "laptop", Command: "push", Start: start, Result: "ok", LastSuccess: start}); err != nil {
		t.Fatal(err)
	}
	all, err := ReadAllRunReports(dir)
	if err != nil || len(all) != 3 {
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
		`zsync_last_run_success{job="home"} 0`,
		`zsync_last_run_error_info{job="home",error_kind="zfs_no_space"} 1`,
		`zsync_last_run_success{job="offsite"} 0`,
		`zsync_last_run_error_info{job="offsite",error_kind="ssh_host_key_mismatch"} 1`,
		`zsync_last_run_datasets{job="offsite",result="failed"} 0`,
		`zsync_last_run_success{job="laptop"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, `error_info{job="laptop"`) {
		t.Errorf("an ok run has an error metric:\n%s", m)
	}
	if strings.Contains(m, `zsync_last_success_timestamp_seconds{job="offsite"}`) {
		t.Errorf("a job that never succeeded has a last success time:\n%s", m)
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
