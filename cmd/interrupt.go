package cmd

import (
	"context"
	"errors"
	"reflect"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/zfs"
)

// errInterrupted is reported when a signal cancelled the run.
var errInterrupted = errors.New("interrupted")

// interruptedError marks a failure the interruption caused (see
// markInterrupted): it is errInterrupted for errors.Is and ExitCode, and
// unwraps to the failure for everything else.
type interruptedError struct{ err error }

func (e *interruptedError) Error() string        { return "interrupted: " + e.err.Error() }
func (e *interruptedError) Unwrap() error        { return e.err }
func (e *interruptedError) Is(target error) bool { return target == errInterrupted }

// onlyInterrupted reports whether every failure err carries is the
// interruption or a busy lock, and not all are busy locks (that is
// onlyLocked). A run that failed and was then interrupted must not exit
// 130, which units count as success.
func onlyInterrupted(err error) bool {
	return interruptedOrLocked(err) && !onlyLocked(err)
}

func interruptedOrLocked(err error) bool {
	return every(err, func(x error) bool { return isInterruption(x) || isLocked(x) }, nil)
}

// isInterruption reports whether the node err (not what it wraps) is the
// interruption: errInterrupted, an *interruptedError or context.Canceled
// (what the domain packages return, wrapped, for work a cancelled context
// stopped).
func isInterruption(err error) bool {
	_, ok := err.(*interruptedError)
	return ok || nodeIs(err, errInterrupted) || nodeIs(err, context.Canceled)
}

// markInterrupted returns err, marked as caused by the interruption when
// ctx was cancelled (by SIGINT or SIGTERM) and err carries no real failure:
// every failure in it is the interruption (context.Canceled, ctx's error
// or the signal context.Cause names, wrapped), a busy lock, or a failure
// nothing classifies (a process the cancellation killed, a pipe it broke).
// A classified failure (one with an error_kind, a zfs command or a hook
// that failed on its own: the zfs runner and the hooks report a command the
// cancellation killed as context.Canceled) is real: it happened before the
// signal, so err stays as it is and the run exits 1 or 3, not 130, which
// units count as success. An error that already is only the interruption
// and busy locks is returned as it is too.
func markInterrupted(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || interruptedOrLocked(err) {
		return err
	}
	ctxErr, cause := ctx.Err(), context.Cause(ctx)
	match := func(x error) bool {
		return isInterruption(x) || isLocked(x) || nodeIs(x, ctxErr) || nodeIs(x, cause)
	}
	if !every(err, match, func(failure error) bool { return !classified(failure) }) {
		return err
	}
	return &interruptedError{err: err}
}

// nodeIs is errors.Is for the node x alone, not what it wraps: x is target
// or says so by its Is method (net's error for a cancelled operation is
// context.Canceled that way). It is false, not a panic, when target's type
// is not comparable.
func nodeIs(x, target error) bool {
	if x == nil || target == nil {
		return false
	}
	if reflect.TypeOf(target).Comparable() && x == target {
		return true
	}
	i, ok := x.(interface{ Is(error) bool })
	return ok && i.Is(target)
}

// classified reports whether a failure is known for what it is: it has an
// error_kind, a zfs command or a hook failed on its own, or it is a check's
// verdict.
func classified(err error) bool {
	var ze *zfs.Error
	var he *snap.HookError
	var ck *checkError
	return errorKind(err) != "" || errors.As(err, &ze) || errors.As(err, &he) || errors.As(err, &ck)
}

// joinType is the type of errors.Join's errors: several independent
// failures.
var joinType = reflect.TypeOf(errors.Join(errInterrupted))

// every reports whether every failure err carries is one that match
// accepts. errors.Is and errors.As answer whether any branch of an error
// matches, not whether all do, so every walks the tree of wrapped errors
// itself, node by node:
//
//   - errors.Join joins independent failures: each must be accepted (an
//     empty join accepts nothing);
//   - another error that wraps several describes one failure by its class
//     and its cause (sshtransport's ConnectError, fmt.Errorf("%w: %w")): it
//     is accepted when match accepts one of them and none of those that wrap
//     more is rejected (a join in there with a failure match rejects, or a
//     failure rest rejects), the rest being descriptions;
//   - a failure that ends without match accepting a node is decided by rest
//     (called with the failure: the error itself, or one of the errors a
//     join joined), and rejected when rest is nil.
func every(err error, match, rest func(error) bool) bool {
	if err == nil {
		return false
	}
	ok, decided := walk(err, match, rest)
	if decided {
		return ok
	}
	return rest != nil && rest(err)
}

// walk follows err as every describes and says whether err is accepted,
// decided false when match accepted no node and no join decided.
func walk(err error, match, rest func(error) bool) (ok, decided bool) {
	for err != nil {
		if match(err) {
			return true, true
		}
		if m, isMulti := err.(interface{ Unwrap() []error }); isMulti {
			errs := m.Unwrap()
			if reflect.TypeOf(err) == joinType {
				for _, x := range errs {
					if !every(x, match, rest) {
						return false, true
					}
				}
				return len(errs) > 0, true
			}
			accepted := false
			for _, x := range errs {
				if x == nil {
					continue
				}
				if match(x) {
					accepted = true
					continue
				}
				if !wraps(x) {
					continue // a class: describes the failure
				}
				ok, decided := walk(x, match, rest)
				switch {
				case decided && !ok, !decided && rest != nil && !rest(x):
					return false, true
				case ok:
					accepted = true
				}
			}
			return accepted, accepted
		}
		err = errors.Unwrap(err)
	}
	return false, false
}

// wraps reports whether err wraps another error.
func wraps(err error) bool {
	if _, ok := err.(interface{ Unwrap() []error }); ok {
		return true
	}
	return errors.Unwrap(err) != nil
}
