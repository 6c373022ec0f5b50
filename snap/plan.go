package snap

import (
	"fmt"
	"sort"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// Filter selects the datasets of a job by name. zfs.Filter satisfies it.
type Filter interface {
	Match(dataset string) bool
}

// Decision is what a [Plan] says about one dataset.
type Decision struct {
	// Dataset is the filesystem or volume.
	Dataset string
	// Snapshot is the full name (dataset@name) the run creates or would
	// create; it is set for due and not-due datasets alike.
	Snapshot string
	// Newest is the short name of the dataset's newest snapshot carrying the
	// job's prefix (by the time in its name), or empty when there is none;
	// NewestTime is that time.
	Newest     string
	NewestTime time.Time
	// FutureDated is set when Newest is dated after the run's time, which
	// happens when the clock went backwards (or was ahead when Newest was
	// taken). Such a dataset is not due until real time has passed
	// NextDue(NewestTime, interval): no snapshot is taken until then, so
	// callers should warn about it.
	FutureDated bool
	// NewestPast and NewestPastTime are the newest snapshot with the job's
	// prefix dated no later than the run's time: Newest and NewestTime,
	// unless FutureDated (then an older snapshot, or empty when there is
	// none). Its age is how long the dataset has gone without a snapshot
	// taken at a believable time.
	NewestPast     string
	NewestPastTime time.Time
	// Reason explains the decision for people, e.g.
	// "newest zsync_20261122T050000Z is 4m0s old, interval 15m0s".
	Reason string
}

// Plan is the outcome of [NewPlan]: which datasets get a snapshot in this run.
type Plan struct {
	// Time is the run's timestamp: UTC, truncated to the second. Every
	// snapshot of the run carries it, so they all share one name.
	Time time.Time
	// Name is the short snapshot name of the run, Name(prefix, Time).
	Name string
	// Due and NotDue hold one decision per selected dataset, each sorted by
	// dataset name.
	Due    []Decision
	NotDue []Decision
}

// NewPlan decides which datasets are due for a snapshot. It is a pure
// function of a listing (zfs list -t filesystem,volume,snapshot, possibly
// recursive and with bookmarks, in any order), the job's filter and options
// and the current time.
//
// Only filesystems and volumes that filter matches are considered (none when
// filter is nil). A dataset is due when none of its snapshots parses with
// o.Prefix ([ParseName]), or when the newest of those by the time in its
// name is old enough by the rule of [NextDue]: it lies in an earlier slot of
// the interval grid than the run and is at least o.Interval minus [Slack]
// old. It is not due when it already has a snapshot with exactly the run's
// name (running twice in one second is harmless), or when its newest
// prefixed snapshot is dated in the future (the clock went backwards): then
// [Decision.FutureDated] is set and the dataset stays not due until real time
// has passed [NextDue] of that snapshot's time, so a clock jump never
// produces a burst of snapshots. Snapshots whose names do not parse with the
// prefix (other prefixes, manual snapshots) do not count.
func NewPlan(listing []zfs.Entry, filter Filter, o Options, now time.Time) Plan {
	runTime := now.UTC().Truncate(time.Second)
	p := Plan{Time: runTime, Name: Name(o.Prefix, runTime)}

	type state struct {
		newest     string
		newestTime time.Time
		past       string // the newest not after runTime
		pastTime   time.Time
		hasExact   bool
	}
	datasets := map[string]*state{}
	for _, e := range listing {
		if filter != nil && e.IsDataset() && filter.Match(e.Name) {
			if _, ok := datasets[e.Name]; !ok {
				datasets[e.Name] = &state{}
			}
		}
	}
	for _, e := range listing {
		if e.Type != zfs.Snapshot {
			continue
		}
		st, ok := datasets[e.Dataset()]
		if !ok {
			continue
		}
		short := e.Short()
		if short == p.Name {
			st.hasExact = true
		}
		t, ok := ParseName(o.Prefix, short)
		if !ok {
			continue
		}
		if st.newest == "" || t.After(st.newestTime) {
			st.newest, st.newestTime = short, t
		}
		if !t.After(runTime) && (st.past == "" || t.After(st.pastTime)) {
			st.past, st.pastTime = short, t
		}
	}

	names := make([]string, 0, len(datasets))
	for ds := range datasets {
		names = append(names, ds)
	}
	sort.Strings(names)

	for _, ds := range names {
		st := datasets[ds]
		d := Decision{
			Dataset:        ds,
			Snapshot:       ds + "@" + p.Name,
			Newest:         st.newest,
			NewestTime:     st.newestTime,
			NewestPast:     st.past,
			NewestPastTime: st.pastTime,
			FutureDated:    st.newest != "" && st.newestTime.After(runTime),
		}
		due := false
		switch {
		case st.hasExact:
			d.Reason = fmt.Sprintf("snapshot %s already exists", p.Name)
		case st.newest == "":
			due = true
			d.Reason = fmt.Sprintf("no snapshot with prefix %q", o.Prefix)
		case d.FutureDated:
			d.Reason = fmt.Sprintf("newest %s is dated %s in the future (clock went backwards?); not due before %s",
				st.newest, st.newestTime.Sub(runTime), NextDue(st.newestTime, o.Interval).UTC().Format(time.RFC3339))
		default:
			age := runTime.Sub(st.newestTime)
			next := NextDue(st.newestTime, o.Interval)
			due = !runTime.Before(next)
			d.Reason = fmt.Sprintf("newest %s is %s old, interval %s", st.newest, age, o.Interval)
			if !due {
				d.Reason += "; due from " + next.UTC().Format(time.RFC3339)
			}
		}
		if due {
			p.Due = append(p.Due, d)
		} else {
			p.NotDue = append(p.NotDue, d)
		}
	}
	return p
}

// Slack is how much younger than the interval the newest snapshot may be and
// still let a run in a later slot of the interval grid take the next one
// (see [NextDue]): a quarter of the interval. It absorbs the jitter of the
// scheduler (systemd's RandomizedDelaySec= and AccuracySec=, a cron daemon
// starting late, a run waiting for its lock), so that a timer firing once
// per interval never skips a fire because this fire came a little earlier
// after its slot's start than the previous one did. It scales with the
// interval, so a 1s interval keeps 1s between snapshots (names have second
// precision), while 15m tolerates 3m45s and 24h tolerates the hour a daily
// timer in local time moves when daylight saving time starts.
func Slack(interval time.Duration) time.Duration {
	return max(interval, 0) / 4
}

// NextDue returns the earliest time at which a dataset whose newest
// snapshot is dated newest is due again with the given interval: the later
// of the start of the next slot of the interval grid and newest plus the
// interval minus [Slack]. The grid is the interval's multiples counted from
// the Unix epoch in UTC (the same grid as prune's buckets), so with a 15m
// interval the slots start at :00, :15, :30 and :45 of every hour (UTC).
//
// The slot makes the rule exact for a scheduler that fires more often than
// the interval (cron every minute takes one snapshot per slot: every 15
// minutes, not every 14) and never takes two snapshots in one slot; the
// slack makes it never skip a fire of a scheduler whose period is the
// interval and whose fire times stay in one slot each, with up to Slack of
// jitter between fires (systemd's OnCalendar=*:0/15 with
// RandomizedDelaySec=60 for 15m, OnCalendar=hourly for 1h, a daily timer
// for 24h). A schedule whose fire times straddle a slot boundary (nominally
// a few seconds before :00 with a minute of jitter, or a daily timer at
// local midnight in a zone whose midnight is 00:00 UTC in winter and 23:00
// UTC in summer) can find two fires in one slot now and then and skip the
// second; schedule on the grid or clear of its boundaries. An interval of
// zero or less is always due: NextDue returns newest.
func NextDue(newest time.Time, interval time.Duration) time.Time {
	if interval <= 0 {
		return newest
	}
	next := slotStart(newest, interval).Add(interval)
	if byAge := newest.Add(interval - Slack(interval)); byAge.After(next) {
		next = byAge
	}
	return next
}

// slotStart returns the start of the interval-long slot of the grid counted
// from the Unix epoch that contains t. interval must be positive.
func slotStart(t time.Time, interval time.Duration) time.Time {
	if interval%time.Second == 0 {
		n := int64(interval / time.Second)
		return time.Unix(floorDiv(t.Unix(), n)*n, 0).UTC()
	}
	// sub-second precision: nanoseconds since the epoch (fits until 2262)
	n := int64(interval)
	return time.Unix(0, floorDiv(t.UnixNano(), n)*n).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
