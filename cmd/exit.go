package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/zsync-dev/zsync/state"
)

// Exit codes: the one table (SPEC.md §1). Documented in --help and README.
const (
	ExitOK          = 0   // everything asked for was done (or nothing was due)
	ExitFailure     = 1   // failure
	ExitUsage       = 2   // usage or configuration error; nothing was changed
	ExitPartial     = 3   // some datasets failed, others succeeded
	ExitLocked      = 75  // another run holds the lock (EX_TEMPFAIL)
	ExitInterrupted = 130 // interrupted by SIGINT/SIGTERM after cleaning up, nothing failed before
)

const exitCodeHelp = `EXIT CODES:
   0    everything asked for was done (or nothing was due)
   1    failure
   2    usage or configuration error (nothing was changed)
   3    partial: some datasets failed, others succeeded (the run report says which)
   75   another run holds the lock (EX_TEMPFAIL; list it in SuccessExitStatus= of a systemd unit)
   130  interrupted by SIGINT/SIGTERM after cleaning up (a failure before the signal exits 1 or 3)`

// usageError is a command-line mistake: exit 2, nothing changed.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// PartialError says that some units of work failed while others succeeded.
type PartialError struct {
	Failed, Succeeded int
	Unit              string // what was counted: "datasets" (default) or "jobs"
	Err               error  // the failures, joined
}

func (e *PartialError) Error() string {
	unit := e.Unit
	if unit == "" {
		unit = "datasets"
	}
	if e.Failed == 1 && e.Succeeded == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%d of %d %s failed: %v", e.Failed, e.Failed+e.Succeeded, unit, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by a command to the exit-code table. It is
// the only place that decides exit codes. 75 and 130 count as success for
// systemd units (SuccessExitStatus=), so they are returned only when nothing
// failed: 75 when every failure is a busy lock, 130 when every failure is
// the interruption (or a busy lock). A real failure joined with either
// decides the code: 3 when the first *PartialError says that some units
// succeeded, else 1.
func ExitCode(err error) int {
	var ue *usageError
	var ce *ConfigError
	var pe *PartialError
	var ck *checkError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ck):
		return ck.code
	case errors.As(err, &ue), errors.As(err, &ce):
		return ExitUsage
	case errors.Is(err, state.ErrLocked) && onlyLocked(err):
		return ExitLocked
	case onlyInterrupted(err):
		return ExitInterrupted
	case errors.As(err, &pe):
		if pe.Succeeded == 0 {
			return ExitFailure
		}
		return ExitPartial
	default:
		return ExitFailure
	}
}

// outcome turns per-unit results into the command's error: nil when all
// succeeded, a *PartialError otherwise (ExitCode maps it to 3, or 1 when
// nothing succeeded).
func outcome(succeeded int, failures []error) error {
	if len(failures) == 0 {
		return nil
	}
	return &PartialError{Failed: len(failures), Succeeded: succeeded, Err: errors.Join(failures...)}
}

// onlyLocked reports whether every failure err carries is a busy job lock
// (see every). A command whose jobs partly found their lock busy and partly
// failed must not exit 75: units list 75 in SuccessExitStatus=, which would
// hide the failure.
func onlyLocked(err error) bool {
	return every(err, isLocked, nil)
}

func isLocked(err error) bool {
	_, ok := err.(*state.LockedError)
	return ok || err == state.ErrLocked
}

// exitLevel is the level of the log line that reports a command's error:
// warn for a busy lock and for an interrupted run (neither is a failure of
// the job: units list 75 and 130 in SuccessExitStatus=, and the next run
// carries on), error for the rest.
func exitLevel(code int) zerolog.Level {
	if code == ExitLocked || code == ExitInterrupted {
		return zerolog.WarnLevel
	}
	return zerolog.ErrorLevel
}

// reportExit tells the user, once, why a command ends with code: usage and
// configuration errors as plain "zsync: " lines (the logger may not exist
// yet), the rest as one log line with the exit code and error_kind, or a
// plain line when the log level hides errors. Plain lines written to the
// journal carry the error priority like log lines do.
func (e *env) reportExit(err error, code int) {
	var checked *checkError // check printed its own status line on stdout
	if err == nil || errors.As(err, &checked) {
		return
	}
	msg := err.Error()
	if code != ExitUsage && e.logsErrors() {
		withErrorKind(e.log.WithLevel(exitLevel(code)).Int("exit", code), err).Msg(msg)
		return
	}
	text := "zsync: " + strings.ReplaceAll(msg, "\n", "\nzsync: ") + "\n"
	if stderrTarget(e.stderr, journalEnv()) == toJournal {
		text = string(prefixLines([]byte(text), priority(exitLevel(code))))
	}
	fmt.Fprint(e.stderr, text)
}
