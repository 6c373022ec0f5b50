package zfs

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Sentinel errors. Verbs return errors that wrap them (test with errors.Is);
// the wrapping error's message is the generic *Error's, with zfs's stderr.
var (
	// ErrDatasetNotFound: the dataset, snapshot or bookmark asked about does
	// not exist ("dataset does not exist", "parent does not exist").
	ErrDatasetNotFound = errors.New("zfs: dataset does not exist")
	// ErrExists: the dataset, snapshot or bookmark to create already exists
	// (also "destination 'x' exists" of a full receive without -F).
	ErrExists = errors.New("zfs: already exists")
	// ErrSnapshotHeld: a snapshot could not be destroyed because it has user
	// holds. OpenZFS 2.1 words this "dataset is busy"; other versions say
	// the snapshot "is held" or "it's being held".
	ErrSnapshotHeld = errors.New("zfs: snapshot is held")
	// ErrSnapshotCloned: a snapshot could not be destroyed because a clone
	// depends on it.
	ErrSnapshotCloned = errors.New("zfs: snapshot has dependent clones")
	// ErrHoldExists: the snapshot already carries a hold with that tag.
	ErrHoldExists = errors.New("zfs: hold tag already exists")
	// ErrNoSuchHold: the snapshot carries no hold with that tag.
	ErrNoSuchHold = errors.New("zfs: no such hold tag")
	// ErrDestinationModified: an incremental receive found the target
	// changed since its most recent snapshot (needs -F or a rollback).
	ErrDestinationModified = errors.New("zfs: destination has been modified since most recent snapshot")
	// ErrIncrementalMismatch: the newest snapshot of the target is not the
	// incremental source of the stream.
	ErrIncrementalMismatch = errors.New("zfs: most recent snapshot of the destination does not match the incremental source")
	// ErrDestinationHasSnapshots: a full receive with -F into a dataset that
	// has snapshots.
	ErrDestinationHasSnapshots = errors.New("zfs: destination has snapshots")
	// ErrPartialReceive: the target holds partially received state from a
	// resumable receive; resume it with its token or abort it first.
	ErrPartialReceive = errors.New("zfs: destination contains partially-complete state from zfs receive -s")
	// ErrStreamIncomplete: a receive got a truncated or corrupt stream.
	ErrStreamIncomplete = errors.New("zfs: incomplete or corrupt send stream")
	// ErrResumeTokenCorrupt: zfs could not decode a resume token.
	ErrResumeTokenCorrupt = errors.New("zfs: resume token is corrupt")
	// ErrResumeTokenStale: the snapshot a resume token refers to no longer
	// exists on the sender (or is a different snapshot now).
	ErrResumeTokenStale = errors.New("zfs: snapshot of the resume token no longer exists")
	// ErrNotMostRecent: a rollback target is not the most recent snapshot.
	ErrNotMostRecent = errors.New("zfs: more recent snapshots or bookmarks exist")
	// ErrBusy: the dataset is busy (mounted and in use, being received ...)
	// outside the snapshot-destroy path.
	ErrBusy = errors.New("zfs: dataset is busy")
	// ErrPermissionDenied: missing privileges or zfs allow delegation.
	ErrPermissionDenied = errors.New("zfs: permission denied")
	// ErrNoSpace: the pool is out of space.
	ErrNoSpace = errors.New("zfs: out of space")
)

// maxErrStderr bounds the stderr kept in an *Error.
const maxErrStderr = 4 << 10

// Error is the generic failure of a zfs invocation: the argv, zfs's stderr
// (bounded to 4 KiB, head and tail kept) and the exit code (-1 when the
// process did not exit normally). Err is the underlying cause when there is
// one (the context's error after a cancellation, an exec failure); Unwrap
// returns it.
type Error struct {
	Args     []string
	Stderr   string
	ExitCode int
	Err      error
}

// maxMessageArg bounds each argument in an *Error's message (a batched
// destroy's argument is up to 64 KiB, and the error of every snapshot of
// the batch carries it); Args keeps them whole.
const maxMessageArg = 1 << 10

// Error implements error: the command line (each argument longer than 1 KiB
// shortened to its head and tail), the exit status and stderr.
func (e *Error) Error() string {
	var b strings.Builder
	for i, a := range e.Args {
		if i > 0 {
			b.WriteByte(' ')
		}
		q := quoteArg(a)
		if len(q) > maxMessageArg {
			half := maxMessageArg / 2
			q = fmt.Sprintf("%s ...[%d bytes]... %s", q[:half], len(q)-2*half, q[len(q)-half:])
		}
		b.WriteString(q)
	}
	switch {
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	default:
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// quoteArgv renders argv for messages, quoting arguments with spaces.
func quoteArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = quoteArg(a)
	}
	return strings.Join(parts, " ")
}

// quoteArg renders one argument for messages, quoted when it has spaces.
func quoteArg(a string) string {
	if a == "" || strings.ContainsAny(a, " \t\n'\"\\") {
		return fmt.Sprintf("%q", a)
	}
	return a
}

// boundStderr keeps the head and the tail of a long stderr.
func boundStderr(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	half := limit / 2
	return s[:half] + "\n[...]\n" + s[len(s)-half:]
}

// DestroyError reports the snapshots of one dataset that a batched destroy
// could not destroy; the others were destroyed. Failed maps the short
// snapshot name to its typed error (wrapping ErrSnapshotHeld,
// ErrSnapshotCloned, ...). Unwrap returns those errors, so errors.Is(err,
// ErrSnapshotHeld) holds when at least one failed for a hold.
type DestroyError struct {
	Dataset string
	Failed  map[string]error
}

// Error implements error.
func (e *DestroyError) Error() string {
	names := sortedKeys(e.Failed)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("@%s: %v", n, e.Failed[n])
	}
	return fmt.Sprintf("zfs: cannot destroy %d snapshot(s) of %s: %s", len(names), e.Dataset, strings.Join(parts, "; "))
}

// Unwrap returns the per-snapshot errors in name order.
func (e *DestroyError) Unwrap() []error { return mapErrors(e.Failed) }

// HoldError reports the snapshots a batched hold or release failed on; the
// others were processed. Failed maps the full snapshot name to its typed
// error (ErrHoldExists, ErrNoSuchHold, ErrDatasetNotFound, ...). Unwrap
// returns those errors.
type HoldError struct {
	Op     string // "hold" or "release"
	Tag    string
	Failed map[string]error
}

// Error implements error.
func (e *HoldError) Error() string {
	names := sortedKeys(e.Failed)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s: %v", n, e.Failed[n])
	}
	return fmt.Sprintf("zfs: %s %q failed on %d snapshot(s): %s", e.Op, e.Tag, len(names), strings.Join(parts, "; "))
}

// Unwrap returns the per-snapshot errors in name order.
func (e *HoldError) Unwrap() []error { return mapErrors(e.Failed) }

// ResumableRecvError is wrapped (next to the receive's own error) by Receive
// when a resumable receive failed and left partial state: Token is the
// target's receive_resume_token, to be passed to a `zfs send -t`.
type ResumableRecvError struct {
	Dataset string
	Token   string
}

// Error implements error.
func (e *ResumableRecvError) Error() string {
	return fmt.Sprintf("zfs: receive into %s can be resumed (token %s)", e.Dataset, shorten(e.Token, 32))
}

// Unwrap returns ErrPartialReceive: the target now holds partial state.
func (e *ResumableRecvError) Unwrap() error { return ErrPartialReceive }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sortedKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapErrors(m map[string]error) []error {
	out := make([]error, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

// typedError attaches a sentinel to a generic *Error. Name is the object the
// message named (when it named one).
type typedError struct {
	kind  error
	name  string
	cause error
}

func (e *typedError) Error() string   { return e.cause.Error() }
func (e *typedError) Unwrap() []error { return []error{e.kind, e.cause} }

// rule maps a stderr pattern to a sentinel. When the pattern has a
// capturing group, it captures a name, and the rule applies only when that
// name is one of the names the caller asked about; a group that does not
// take part in the match (an optional name the message lacks) checks
// nothing.
type rule struct {
	re   *regexp.Regexp
	kind error
}

func mustRule(pattern string, kind error) rule {
	return rule{re: regexp.MustCompile(pattern), kind: kind}
}

// Rules shared by the verbs. Every pattern is anchored to whole lines.
var (
	ruleOpenNotFound = mustRule(`(?m)^cannot open '([^'\n]+)': (?:dataset|snapshot|bookmark) does not exist$`, ErrDatasetNotFound)
	ruleAnyNotFound  = mustRule(`(?m)^cannot [a-z ]+ '([^'\n]+)': (?:dataset|parent) does not exist$`, ErrDatasetNotFound)
	// Named conditions ("cannot create 'NAME': permission denied"); the
	// unnamed wordings of a verb are that verb's own rules.
	rulePermission     = mustRule(`(?m)^cannot [a-z ]+'([^'\n]+)': permission denied$`, ErrPermissionDenied)
	ruleNoSpace        = mustRule(`(?m)^cannot [a-z ]+'([^'\n]+)': out of space$`, ErrNoSpace)
	ruleSnapPermission = mustRule(`(?m)^cannot create snapshots ?: permission denied$`, ErrPermissionDenied) // 2.1: no name
	ruleSnapNoSpace    = mustRule(`(?m)^cannot create snapshots ?: out of space$`, ErrNoSpace)
	ruleCreateExists   = mustRule(`(?m)^cannot create '([^'\n]+)': dataset already exists$`, ErrExists)
	ruleSnapExists     = mustRule(`(?m)^cannot create snapshot '([^'\n@]+@[^'\n]+)': dataset already exists$`, ErrExists)
	ruleRenameExists   = mustRule(`(?m)^cannot rename (?:to )?'([^'\n]+)': dataset already exists$`, ErrExists) // 2.1 names the source: "cannot rename 'SRC': dataset already exists"
	ruleBookmarkExists = mustRule(`(?m)^cannot create bookmark '([^'\n]+)': bookmark exists$`, ErrExists)
	ruleBusy           = mustRule(`(?m)^cannot [^\n]*'([^'\n]+)': dataset is busy$`, ErrBusy)
)

// common rules tried after the verb's own ones.
var commonRules = []rule{ruleOpenNotFound, ruleAnyNotFound, rulePermission, ruleNoSpace}

// classify turns a failed invocation into a typed error when one of the
// rules matches, checking that the name the message refers to is one of
// names. Errors that are not *Error (validation, context) pass unchanged.
func classify(err error, names []string, rules ...rule) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.ExitCode == 0 {
		return err
	}
	all := append(append([]rule(nil), rules...), commonRules...)
	for _, r := range all {
		if name, ok := matchRule(r, ce.Stderr, names); ok {
			return &typedError{kind: r.kind, name: name, cause: err}
		}
	}
	return err
}

// matchRule reports whether r matches stderr for one of names (any name when
// the pattern captures none, or the message lacks the optional name).
func matchRule(r rule, stderr string, names []string) (string, bool) {
	for _, ix := range r.re.FindAllStringSubmatchIndex(stderr, -1) {
		if len(ix) < 4 || ix[2] < 0 {
			return "", true
		}
		got := stderr[ix[2]:ix[3]]
		for _, n := range names {
			if got == n {
				return n, true
			}
			// "pool/fs@*" stands for any snapshot of pool/fs.
			if ds, ok := strings.CutSuffix(n, "@*"); ok && strings.HasPrefix(got, ds+"@") {
				return got, true
			}
		}
	}
	return "", false
}
