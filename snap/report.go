package snap

import (
	"errors"
	"fmt"
	"time"
)

// Outcome is what happened to one due dataset in [Take].
type Outcome int

// The outcomes of a due dataset.
const (
	// Failed: the snapshot was not taken because of an error (invalid name
	// or options, the zfs call failed, the run was interrupted).
	Failed Outcome = iota
	// Taken: the snapshot was created.
	Taken
	// Skipped: the pre-hook failed, so no snapshot was attempted.
	Skipped
	// WouldTake: dry run; the snapshot would have been created.
	WouldTake
)

// String returns "failed", "taken", "skipped" or "would take".
func (o Outcome) String() string {
	switch o {
	case Failed:
		return "failed"
	case Taken:
		return "taken"
	case Skipped:
		return "skipped"
	case WouldTake:
		return "would take"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is the report of one due dataset.
type Result struct {
	Dataset  string
	Snapshot string // full name
	Outcome  Outcome
	// Err says why the dataset was skipped (a *HookError from the pre-hook)
	// or failed; nil when Taken or WouldTake.
	Err error
	// PreHook and PostHook are the hook runs; nil when not run.
	PreHook  *HookResult
	PostHook *HookResult
}

// OK reports whether the dataset is fine: its snapshot was taken (or would
// be, in a dry run) and its post-hook, if it ran, succeeded.
func (r Result) OK() bool {
	if r.Outcome != Taken && r.Outcome != WouldTake {
		return false
	}
	return r.PostHook == nil || r.PostHook.Err == nil
}

// problem returns the error that makes r not OK, or nil.
func (r Result) problem() error {
	switch {
	case r.Outcome != Taken && r.Outcome != WouldTake:
		err := r.Err
		if err == nil {
			err = errors.New(r.Outcome.String())
		}
		return fmt.Errorf("%s: %s: %w", r.Dataset, r.Outcome, err)
	case r.PostHook != nil && r.PostHook.Err != nil:
		return fmt.Errorf("%s: snapshot taken, but %w", r.Dataset, r.PostHook.Err)
	}
	return nil
}

func (r *Result) fail(err error) {
	r.Outcome, r.Err = Failed, err
}

// Report is what [Take] did.
type Report struct {
	Time   time.Time // the run's timestamp (Plan.Time)
	Name   string    // the run's short snapshot name (Plan.Name)
	DryRun bool
	// Results has one entry per due dataset, sorted by dataset.
	Results []Result
	// NotDue is copied from the plan.
	NotDue []Decision
}

// Status summarises a report for the exit code.
type Status int

// The statuses of a report.
const (
	// StatusOK: every due dataset is OK, or nothing was due (exit 0).
	StatusOK Status = iota
	// StatusPartial: some snapshots were taken, others were not, or a
	// post-hook failed (exit 3).
	StatusPartial
	// StatusFailed: due datasets existed and no snapshot was taken (exit 1).
	StatusFailed
)

// String returns "ok", "partial" or "failed".
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusPartial:
		return "partial"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Status returns StatusOK when every result is OK, StatusFailed when no
// snapshot was taken (or would be) although some were due, and
// StatusPartial otherwise.
func (r Report) Status() Status {
	ok, taken := 0, 0
	for _, res := range r.Results {
		if res.OK() {
			ok++
		}
		if res.Outcome == Taken || res.Outcome == WouldTake {
			taken++
		}
	}
	switch {
	case ok == len(r.Results):
		return StatusOK
	case taken == 0:
		return StatusFailed
	}
	return StatusPartial
}

// Sentinels wrapped by [Report.Err].
var (
	ErrPartial = errors.New("some snapshots failed")
	ErrFailed  = errors.New("snapshots failed")
)

// Err returns nil for StatusOK; otherwise an error wrapping ErrPartial or
// ErrFailed (matching Status) and the per-dataset errors (errors.Is and
// errors.As see them, e.g. a *HookError).
func (r Report) Err() error {
	st := r.Status()
	if st == StatusOK {
		return nil
	}
	var errs []error
	for _, res := range r.Results {
		if err := res.problem(); err != nil {
			errs = append(errs, err)
		}
	}
	sentinel := ErrPartial
	if st == StatusFailed {
		sentinel = ErrFailed
	}
	return fmt.Errorf("%w (%d of %d datasets): %w", sentinel, len(errs), len(r.Results), errors.Join(errs...))
}
