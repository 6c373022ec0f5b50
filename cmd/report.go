package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
)

// finishReports prints the JSON run report on stdout when asked, stores each
// job's report in the state dir and rewrites the Prometheus textfile. Failing
// to write them is logged, never fatal: nothing depends on them.
func (e *env) finishReports(c *cli.Context, cfg *Config, reports []jobResult, runErr error) {
	var out []state.RunReport
	for _, r := range reports {
		rr := toRunReport(c.Command.Name, e.start, r.rep, r.err, r.others...)
		if r.snap != nil {
			r.snap.addTo(&rr)
		}
		if rr.Result == "ok" {
			rr.LastSuccess = rr.Start
		}
		if prev, err := state.ReadRunReport(cfg.Global.StateDir, rr.Job); err == nil {
			rr.CarryOver(prev)
		}
		out = append(out, rr)
		if !c.Bool("dry-run") {
			if err := state.WriteRunReport(cfg.Global.StateDir, rr); err != nil {
				e.log.Warn().Err(err).Msg("cannot store the run report")
			}
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			e.log.Warn().Err(err).Msg("cannot print the run report")
		}
	}
	if cfg.Global.MetricsFile != "" && !c.Bool("dry-run") {
		all, err := state.ReadAllRunReports(cfg.Global.StateDir)
		if err == nil {
			err = state.WriteFileAtomic(cfg.Global.MetricsFile, state.Metrics(configuredReports(cfg, all)), 0o644)
		}
		if err != nil {
			e.log.Warn().Err(err).Msg("cannot write the metrics textfile")
		}
	}
	_ = runErr
}

// configuredReports keeps the reports of the jobs cfg configures. The state
// dir also holds the reports of one-off runs (`zsync push SRC DST`, job
// "oneoff-...") and of jobs since renamed or removed: exported, their last
// failure would alert forever, and nothing would ever run them again.
func configuredReports(cfg *Config, all []state.RunReport) []state.RunReport {
	var out []state.RunReport
	for _, r := range all {
		if _, ok := cfg.Job(r.Job); ok {
			out = append(out, r)
		}
	}
	return out
}

// jobResult is what one replication job returned: its report and its
// error (nil, the datasets' failures as a *PartialError, or a failure of
// the job as a whole, such as an SSH connection that could not be made).
type jobResult struct {
	rep *zsync.Report
	err error
	// others are failures of the run's other phases (zsync run's snap and
	// prune): the run is not ok when they failed.
	others []error
	// snap is what the run's snapshot phase found and did, when it had one.
	snap *snapOutcome
}

// toRunReport turns a job's report and error into its run report. A job
// that failed as a whole is "failed" (or "partial" when some datasets were
// replicated before it failed) with its error, even when no dataset
// recorded a failure: a run that could not connect must never look ok.
// others (a failed snap or prune of the same run) count the same way.
// start is when the run (the process's command) began.
func toRunReport(command string, start time.Time, r *zsync.Report, jobErr error, others ...error) state.RunReport {
	rr := state.RunReport{Job: r.Job, Command: command, Start: start, Duration: time.Since(start).Seconds(), TargetID: string(r.TargetID)}
	failed, ok := r.Failed()
	var whole []error // failures beyond the datasets' own
	if pe := (*PartialError)(nil); jobErr != nil && !errors.As(jobErr, &pe) {
		whole = append(whole, jobErr)
	}
	for _, err := range others {
		if err != nil {
			whole = append(whole, err)
		}
	}
	if len(whole) > 0 {
		failed++
	}
	switch {
	case failed == 0:
		rr.Result = "ok"
	case ok == 0:
		rr.Result = "failed"
	default:
		rr.Result = "partial"
	}
	var errs []string
	for _, d := range r.Datasets {
		dr := state.DatasetReport{Source: d.Source, Target: d.Target, Status: string(d.Status), Steps: d.Steps, Bytes: d.Bytes, AbortedResume: d.AbortedResume, Rotated: d.Rotated, Renamed: d.Renamed, Warnings: d.Warnings}
		if !d.Last.Creation.IsZero() {
			dr.LagSeconds = time.Since(d.Last.Creation).Seconds()
			rr.Replicated = append(rr.Replicated, state.SnapshotMark{Dataset: d.Source, Snapshot: d.Last.Name, Time: d.Last.Creation})
		}
		if d.Err != nil {
			dr.Error = d.Err.Error()
			dr.ErrorKind = errorKind(d.Err)
			errs = append(errs, d.Source+": "+d.Err.Error())
		}
		rr.Bytes += d.Bytes
		rr.Datasets = append(rr.Datasets, dr)
	}
	var kinds []string
	for i, err := range whole {
		errs = slices.Insert(errs, i, err.Error())
		kinds = append(kinds, errorKind(err))
	}
	for _, d := range rr.Datasets {
		kinds = append(kinds, d.ErrorKind)
	}
	rr.ErrorKind = firstKind(kinds)
	rr.Error = strings.Join(errs, "; ")
	return rr
}

// firstKind is the first of kinds that names a failure, else "interrupted"
// when one is: a job interrupted after a dataset failed (or a snapshot
// failed before replication was interrupted) reports why that failed.
func firstKind(kinds []string) string {
	fallback := ""
	for _, k := range kinds {
		switch k {
		case "":
		case "interrupted":
			fallback = k
		default:
			return k
		}
	}
	return fallback
}

// snapOutcome is what one snapshot phase of a job found and did: a result
// per selected dataset (taken, not due, skipped by its pre-hook, failed),
// the newest snapshot with the job's prefix each has now (not counting
// one dated in the future), and the datasets whose newest snapshot is
// dated in the future.
type snapOutcome struct {
	results []zsync.Result
	marks   []state.SnapshotMark
	future  []state.SnapshotMark
}

// addTo records the newest snapshots in a run report.
func (s *snapOutcome) addTo(rr *state.RunReport) {
	rr.Snapshots = append(rr.Snapshots[:0:0], s.marks...)
	rr.FutureDated = append(rr.FutureDated[:0:0], s.future...)
}

// newSnapOutcome describes a snapshot phase from its plan and, when
// snapshots were due, what Take did.
func newSnapOutcome(plan snap.Plan, rep *snap.Report) *snapOutcome {
	so := &snapOutcome{}
	mark := func(d snap.Decision) {
		newest, t := d.Newest, d.NewestTime
		if d.FutureDated {
			// a time in the future would make the age that monitoring
			// computes negative, and never alert while no snapshot is
			// taken; the one before keeps ageing
			newest, t = d.NewestPast, d.NewestPastTime
			so.future = append(so.future, state.SnapshotMark{Dataset: d.Dataset, Snapshot: d.Dataset + "@" + d.Newest, Time: d.NewestTime})
		}
		if newest != "" {
			so.marks = append(so.marks, state.SnapshotMark{Dataset: d.Dataset, Snapshot: d.Dataset + "@" + newest, Time: t})
		}
	}
	for _, d := range plan.NotDue {
		res := zsync.Result{Source: d.Dataset, Status: "not due"}
		if d.FutureDated {
			res.Warnings = []string{futureDatedWarning(d)}
		}
		so.results = append(so.results, res)
		mark(d)
	}
	taken := map[string]snap.Result{}
	if rep != nil {
		for _, r := range rep.Results {
			taken[r.Dataset] = r
		}
	}
	for _, d := range plan.Due {
		r, ok := taken[d.Dataset]
		res := zsync.Result{Source: d.Dataset, Status: "due"}
		if ok && r.Outcome == snap.Taken {
			so.marks = append(so.marks, state.SnapshotMark{Dataset: d.Dataset, Snapshot: r.Snapshot, Time: plan.Time})
		} else {
			mark(d) // the newest is still the one before
		}
		switch {
		case !ok:
		case r.Outcome == snap.Taken:
			res.Status, res.Steps = "taken", []string{r.Snapshot}
			if r.PostHook != nil && r.PostHook.Err != nil {
				// taken, but the post-hook failed: the run is not ok
				res.Status, res.Err = zsync.StatusFailed, fmt.Errorf("snapshot taken, but %w", r.PostHook.Err)
			}
		case r.Outcome == snap.Skipped:
			res.Status, res.Err = zsync.StatusSkipped, r.Err
		case r.Outcome == snap.WouldTake:
			res.Status = "would take"
		default:
			res.Status, res.Err = zsync.StatusFailed, r.Err
			if res.Err == nil {
				res.Err = errors.New(r.Outcome.String())
			}
		}
		so.results = append(so.results, res)
	}
	slices.SortFunc(so.results, func(a, b zsync.Result) int { return strings.Compare(a.Source, b.Source) })
	slices.SortFunc(so.marks, func(a, b state.SnapshotMark) int { return strings.Compare(a.Dataset, b.Dataset) })
	slices.SortFunc(so.future, func(a, b state.SnapshotMark) int { return strings.Compare(a.Dataset, b.Dataset) })
	return so
}

// snapJobResult is the result of a snap job's run: one dataset per selected
// dataset, err the snapshot phase's (a *PartialError counted per dataset, or
// a failure of the job as a whole such as a listing that failed).
func snapJobResult(j *jobConfig, so *snapOutcome, err error) jobResult {
	rep := &zsync.Report{Job: j.Name}
	if so != nil {
		rep.Datasets = so.results
	}
	return jobResult{rep: rep, err: err, snap: so}
}
