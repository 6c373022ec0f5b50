package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers (node_exporter, monitoring) never see a
// half-written file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// RunReport is the JSON record of one run of one job, written to
// <state_dir>/reports/<job>.json. `zsync status` shows the last one; nothing
// depends on it for correctness.
type RunReport struct {
	Job      string    `json:"job"`
	Command  string    `json:"command"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_seconds"`
	Result   string    `json:"result"` // ok | partial | failed
	// LastSuccess is the start of the last fully successful run (this one
	// or an earlier one), carried over from report to report.
	LastSuccess time.Time `json:"last_success,omitzero"`
	Error       string    `json:"error,omitempty"`
	// ErrorKind classifies Error (ssh_host_key_unknown, ssh_auth, zfs_no_space,
	// ...): the job's own failure, else the first failed dataset's;
	// "interrupted" only when no failure has a class of its own.
	ErrorKind string          `json:"error_kind,omitempty"`
	TargetID  string          `json:"target_id,omitempty"`
	Bytes     int64           `json:"bytes"`
	Datasets  []DatasetReport `json:"datasets"`
	// Replicated is, per source dataset of a push or pull job, the newest
	// snapshot its target has; Snapshots is, per dataset of a snap job (or
	// a push job that snapshots in `zsync run`), the newest snapshot with
	// the job's prefix. Both are carried over from the previous report for
	// the datasets this run could not look at (see CarryOver), so a job
	// whose far side is down still exports how old its newest copy is.
	Replicated []SnapshotMark `json:"replicated,omitempty"`
	Snapshots  []SnapshotMark `json:"snapshots,omitempty"`
	// FutureDated is, per dataset this run's snapshot phase looked at, its
	// newest snapshot with the job's prefix when that is dated after the
	// run (taken while the clock was ahead): no snapshot is due until the
	// clock passes it. Snapshots then names the newest one before it.
	// Not carried over.
	FutureDated []SnapshotMark `json:"future_dated,omitempty"`
}

// SnapshotMark is the newest snapshot known for one dataset and when it was
// taken.
type SnapshotMark struct {
	Dataset  string    `json:"dataset"`
	Snapshot string    `json:"snapshot,omitempty"`
	Time     time.Time `json:"time"`
}

// CarryOver fills in what r takes over from prev, the job's previous run
// report: the time of the last success (when r did not succeed itself) and
// the newest snapshots of the datasets r could not look at. A dataset r
// reports without a mark keeps its previous mark; when r reports no dataset
// at all (the job failed as a whole) every previous mark is kept; a dataset
// r does not report while it reports others is no longer selected and
// dropped.
func (r *RunReport) CarryOver(prev RunReport) {
	if r.LastSuccess.IsZero() {
		r.LastSuccess = prev.LastSuccess
	}
	seen := map[string]bool{}
	for _, d := range r.Datasets {
		seen[d.Source] = true
	}
	r.Replicated = carryMarks(r.Replicated, prev.Replicated, seen, len(r.Datasets) == 0)
	r.Snapshots = carryMarks(r.Snapshots, prev.Snapshots, seen, len(r.Datasets) == 0)
}

func carryMarks(cur, prev []SnapshotMark, seen map[string]bool, all bool) []SnapshotMark {
	have := map[string]bool{}
	for _, m := range cur {
		have[m.Dataset] = true
	}
	for _, m := range prev {
		if !have[m.Dataset] && (all || seen[m.Dataset]) {
			cur = append(cur, m)
			have[m.Dataset] = true
		}
	}
	sort.Slice(cur, func(i, j int) bool { return cur[i].Dataset < cur[j].Dataset })
	return cur
}

// DatasetReport is one dataset of a RunReport.
type DatasetReport struct {
	Source        string   `json:"source"`
	Target        string   `json:"target,omitempty"`
	Status        string   `json:"status"`
	Steps         []string `json:"steps,omitempty"`
	Bytes         int64    `json:"bytes"`
	AbortedResume string   `json:"aborted_resume,omitempty"`
	Rotated       string   `json:"rotated,omitempty"`
	Renamed       string   `json:"renamed_from,omitempty"` // the replica's old name: it was renamed to follow its source
	// Warnings are housekeeping failures after a good receive.
	Warnings  []string `json:"warnings,omitempty"`
	Error     string   `json:"error,omitempty"`
	ErrorKind string   `json:"error_kind,omitempty"`
	// LagSeconds is the age of the newest snapshot the target has, when known.
	LagSeconds float64 `json:"lag_seconds,omitempty"`
}

// ReportPath is where the last run report of job lives.
func ReportPath(dir, job string) string {
	p := LockPath(dir, job)
	return filepath.Join(dir, "reports", strings.TrimSuffix(filepath.Base(p), ".lock")+".json")
}

// LastSuccessPath is where the report of the job's last fully successful
// run lives: next to the last run's, in a subdirectory that
// ReadAllRunReports does not read.
func LastSuccessPath(dir, job string) string {
	p := ReportPath(dir, job)
	return filepath.Join(filepath.Dir(p), "last-success", filepath.Base(p))
}

// WriteRunReport stores r as the job's last run report and, when r
// succeeded, as its last successful run's report too.
func WriteRunReport(dir string, r RunReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := WriteFileAtomic(ReportPath(dir, r.Job), b, 0o644); err != nil {
		return err
	}
	if r.Result == "ok" {
		return WriteFileAtomic(LastSuccessPath(dir, r.Job), b, 0o644)
	}
	return nil
}

// ReadLastSuccess loads the report of the job's last fully successful run;
// os.ErrNotExist when there is none (it never succeeded, or it last did
// before zsync kept these).
func ReadLastSuccess(dir, job string) (RunReport, error) {
	return readReport(LastSuccessPath(dir, job), job)
}

// ReadRunReport loads the job's last run report; os.ErrNotExist when none.
func ReadRunReport(dir, job string) (RunReport, error) {
	return readReport(ReportPath(dir, job), job)
}

func readReport(path, job string) (RunReport, error) {
	var r RunReport
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("run report of %s: %w", job, err)
	}
	return r, nil
}

// Metrics renders run reports in the Prometheus text exposition format for
// node_exporter's textfile collector: last run and last success time,
// whether it succeeded and why not, duration, bytes, datasets ok/failed, and
// per dataset the creation time of the newest replicated snapshot (push and
// pull jobs) or of the newest snapshot taken (snap jobs). Those are
// timestamps, not ages, so that `time() - metric` keeps growing when runs
// stop. A snapshot dated in the future is never the newest taken (its age
// would be negative, and would not grow while it keeps new snapshots from
// being due): zsync_future_dated_snapshots names its dataset instead. Callers pass the reports of the configured jobs only: a report of a
// one-off run or of a job no longer configured would otherwise be exported
// (and alert) forever.
func Metrics(reports []RunReport) []byte {
	var b strings.Builder
	help := func(name, typ, text string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, typ)
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Job < reports[j].Job })
	help("zsync_last_run_timestamp_seconds", "gauge", "Start of the job's last run.")
	for _, r := range reports {
		fmt.Fprintf(&b, "zsync_last_run_timestamp_seconds{job=%s} %d\n", q(r.Job), r.Start.Unix())
	}
	help("zsync_last_success_timestamp_seconds", "gauge", "Start of the job's last fully successful run.")
	for _, r := range reports {
		if !r.LastSuccess.IsZero() {
			fmt.Fprintf(&b, "zsync_last_success_timestamp_seconds{job=%s} %d\n", q(r.Job), r.LastSuccess.Unix())
		}
	}
	help("zsync_last_run_success", "gauge", "1 when the job's last run was fully successful, else 0.")
	for _, r := range reports {
		ok := 0
		if r.Result == "ok" {
			ok = 1
		}
		fmt.Fprintf(&b, "zsync_last_run_success{job=%s} %d\n", q(r.Job), ok)
	}
	help("zsync_last_run_error_info", "gauge", "The class of the last run's failure (error_kind), 1 when it failed.")
	for _, r := range reports {
		if r.Result != "ok" && r.ErrorKind != "" {
			fmt.Fprintf(&b, "zsync_last_run_error_info{job=%s,error_kind=%s} 1\n", q(r.Job), q(r.ErrorKind))
		}
	}
	help("zsync_last_run_duration_seconds", "gauge", "Duration of the job's last run.")
	for _, r := range reports {
		fmt.Fprintf(&b, "zsync_last_run_duration_seconds{job=%s} %s\n", q(r.Job), strconv.FormatFloat(r.Duration, 'f', 3, 64))
	}
	help("zsync_last_run_bytes", "gauge", "Bytes sent by the job's last run.")
	for _, r := range reports {
		fmt.Fprintf(&b, "zsync_last_run_bytes{job=%s} %d\n", q(r.Job), r.Bytes)
	}
	help("zsync_last_run_datasets", "gauge", "Datasets of the job's last run by result.")
	for _, r := range reports {
		ok, failed := 0, 0
		for _, d := range r.Datasets {
			if d.Status == "failed" || d.Status == "skipped" {
				failed++
			} else {
				ok++
			}
		}
		fmt.Fprintf(&b, "zsync_last_run_datasets{job=%s,result=\"ok\"} %d\n", q(r.Job), ok)
		fmt.Fprintf(&b, "zsync_last_run_datasets{job=%s,result=\"failed\"} %d\n", q(r.Job), failed)
	}
	marks := func(name, text string, of func(RunReport) []SnapshotMark) {
		help(name, "gauge", text)
		for _, r := range reports {
			for _, m := range of(r) {
				if !m.Time.IsZero() {
					fmt.Fprintf(&b, "%s{job=%s,dataset=%s} %d\n", name, q(r.Job), q(m.Dataset), m.Time.Unix())
				}
			}
		}
	}
	marks("zsync_last_replicated_snapshot_timestamp_seconds",
		"Creation time of the newest snapshot the target has, per source dataset, as last seen (kept while the far side cannot be reached). Replication lag is time() minus this.",
		func(r RunReport) []SnapshotMark { return r.Replicated })
	marks("zsync_newest_snapshot_timestamp_seconds",
		"Time of the newest snapshot with the job's prefix, per dataset, as last seen by a snapshot run, not counting one dated in the future (see zsync_future_dated_snapshots). Snapshot age is time() minus this.",
		func(r RunReport) []SnapshotMark { return pastMarks(r) })
	help("zsync_future_dated_snapshots", "gauge", "1 for a dataset whose newest snapshot with the job's prefix is dated in the future (the clock was ahead when it was taken): no snapshot is taken until the clock passes it.")
	for _, r := range reports {
		for _, m := range r.FutureDated {
			fmt.Fprintf(&b, "zsync_future_dated_snapshots{job=%s,dataset=%s} 1\n", q(r.Job), q(m.Dataset))
		}
	}
	help("zsync_replication_lag_seconds", "gauge", "Age of the newest snapshot on the target, per dataset, at the end of the last run; it does not grow between runs (alert on zsync_last_replicated_snapshot_timestamp_seconds instead).")
	for _, r := range reports {
		for _, d := range r.Datasets {
			if d.LagSeconds > 0 {
				fmt.Fprintf(&b, "zsync_replication_lag_seconds{job=%s,dataset=%s} %s\n", q(r.Job), q(d.Source), strconv.FormatFloat(d.LagSeconds, 'f', 0, 64))
			}
		}
	}
	return []byte(b.String())
}

// pastMarks are r's Snapshots that are not dated after r's run ended: a
// report written before zsync kept future-dated snapshots out of Snapshots
// may hold one (and carry it over), and its timestamp in the future would
// make the age monitoring computes negative, never alerting.
func pastMarks(r RunReport) []SnapshotMark {
	end := r.Start.Add(time.Duration(r.Duration*float64(time.Second)) + time.Second)
	var out []SnapshotMark
	for _, m := range r.Snapshots {
		if !m.Time.After(end) {
			out = append(out, m)
		}
	}
	return out
}

// q quotes a label value per the exposition format.
func q(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// ReadAllRunReports loads every job's last run report below dir.
func ReadAllRunReports(dir string) ([]RunReport, error) {
	files, err := filepath.Glob(filepath.Join(dir, "reports", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []RunReport
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r RunReport
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, r)
	}
	return out, nil
}
