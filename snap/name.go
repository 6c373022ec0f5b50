// Package snap owns zsync's own snapshots on the sending side: how they are
// named, when one is due, and how they are taken.
//
// A snapshot zsync takes is named <prefix><UTC timestamp>, the timestamp in the
// form 20060102T150405Z, so names sort lexically in time order and never depend
// on the local time zone or daylight saving time (see [Name] and [ParseName]).
//
// Whether a dataset is due is decided only from the snapshots that already
// exist ([NewPlan] is a pure function of a listing and the current time), so
// `zsync snap` may run from cron every minute and does nothing until the job's
// interval has passed: one snapshot per slot of the interval grid, with a
// slack for scheduler jitter so that a timer firing once per interval never
// skips a fire ([NextDue]). [Take] executes a plan: pre-hooks per dataset, one
// atomic `zfs snapshot` call per pool for all due datasets of that pool, then
// post-hooks, and returns a [Report] saying what happened to each dataset.
//
// The package does not log; it returns reports and wrapped errors, and the
// caller decides what to print and which exit code to use.
package snap

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// TimeLayout is the time.Format layout of the timestamp in a snapshot name.
// It is always formatted in UTC, has second precision and sorts lexically in
// time order.
const TimeLayout = "20060102T150405Z"

// Name returns the short snapshot name (without dataset) for prefix and t:
// prefix followed by t in UTC formatted with [TimeLayout]. Sub-second parts
// of t are dropped. Name does not validate prefix; see [ValidatePrefix].
func Name(prefix string, t time.Time) string {
	return prefix + t.UTC().Format(TimeLayout)
}

// ParseName reports whether short (a snapshot name without dataset) is a name
// [Name] produces for prefix, and if so returns its time in UTC. Names with
// another prefix, extra text or a timestamp that is not in the canonical form
// (for instance an invalid date) yield false.
func ParseName(prefix, short string) (time.Time, bool) {
	if prefix == "" {
		return time.Time{}, false
	}
	ts, ok := strings.CutPrefix(short, prefix)
	if !ok || len(ts) != len(TimeLayout) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(TimeLayout, ts, time.UTC)
	if err != nil {
		return time.Time{}, false
	}
	// Only the canonical spelling counts, so that one time has one name.
	if t.Format(TimeLayout) != ts {
		return time.Time{}, false
	}
	return t, true
}

// ErrInvalidPrefix is wrapped by the errors [ValidatePrefix] returns.
var ErrInvalidPrefix = errors.New("invalid snapshot prefix")

// ValidatePrefix checks that p can prefix zsync's snapshot names: it must not
// be empty, and p followed by a timestamp must be a valid snapshot name
// component under the OpenZFS naming rules (letters, digits, '_', '-', '.',
// ':' and spaces). The returned error wraps [ErrInvalidPrefix].
func ValidatePrefix(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPrefix)
	}
	sample := Name(p, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := zfs.ValidateComponent(sample); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidPrefix, p, err)
	}
	return nil
}
