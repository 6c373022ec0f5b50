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
	// happens when the clock went backwards. Such a dataset is not due until
	// real time has passed Newest's time plus the interval; callers should
	// warn about it.
	FutureDated bool
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
// filter is nil). A dataset
// is due when none of its snapshots parses with o.Prefix ([ParseName]), or
// when the newest of those by the time in its name is at least o.Interval
// older than now. It is not due when it already has a snapshot with exactly
// the run's name (running twice in one second is harmless), or when its
// newest prefixed snapshot is dated in the future (the clock went backwards):
// then [Decision.FutureDated] is set and the dataset stays not due until real
// time has passed that snapshot's time plus the interval, so a clock jump
// never produces a burst of snapshots. Snapshots whose names do not parse
// with the prefix (other prefixes, manual snapshots) do not count.
func NewPlan(listing []zfs.Entry, filter Filter, o Options, now time.Time) Plan {
	runTime := now.UTC().Truncate(time.Second)
	p := Plan{Time: runTime, Name: Name(o.Prefix, runTime)}

	type state struct {
		newest     string
		newestTime time.Time
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
	}

	names := make([]string, 0, len(datasets))
	for ds := range datasets {
		names = append(names, ds)
	}
	sort.Strings(names)

	for _, ds := range names {
		st := datasets[ds]
		d := Decision{
			Dataset:    ds,
			Snapshot:   ds + "@" + p.Name,
			Newest:     st.newest,
			NewestTime: st.newestTime,
		}
		due := false
		switch {
		case st.hasExact:
			d.Reason = fmt.Sprintf("snapshot %s already exists", p.Name)
		case st.newest == "":
			due = true
			d.Reason = fmt.Sprintf("no snapshot with prefix %q", o.Prefix)
		case st.newestTime.After(runTime):
			d.FutureDated = true
			d.Reason = fmt.Sprintf("newest %s is dated %s in the future (clock went backwards?); not due before %s",
				st.newest, st.newestTime.Sub(runTime), st.newestTime.Add(max(o.Interval, 0)).Format(time.RFC3339))
		default:
			age := runTime.Sub(st.newestTime)
			due = age >= o.Interval
			d.Reason = fmt.Sprintf("newest %s is %s old, interval %s", st.newest, age, o.Interval)
		}
		if due {
			p.Due = append(p.Due, d)
		} else {
			p.NotDue = append(p.NotDue, d)
		}
	}
	return p
}
