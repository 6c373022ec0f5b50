package snap

import (
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// subtreeFilter matches the listed datasets and everything below them, except
// names starting with "!" which exclude their subtree. It stands in for
// zfs.Filter.
type subtreeFilter []string

func (f subtreeFilter) Match(ds string) bool {
	best, match := -1, false
	for _, p := range f {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if (ds == p || strings.HasPrefix(ds, p+"/")) && len(p) > best {
			best, match = len(p), !neg
		}
	}
	return match
}

// listing builds entries from names: "pool/fs" is a filesystem, "vol:pool/v"
// a volume, "pool/fs@s" a snapshot, "pool/fs#b" a bookmark.
func listing(names ...string) []zfs.Entry {
	var es []zfs.Entry
	for _, n := range names {
		e := zfs.Entry{Name: n, Type: zfs.Filesystem}
		switch {
		case strings.HasPrefix(n, "vol:"):
			e.Name, e.Type = strings.TrimPrefix(n, "vol:"), zfs.Volume
		case strings.Contains(n, "@"):
			e.Type = zfs.Snapshot
		case strings.Contains(n, "#"):
			e.Type = zfs.Bookmark
		}
		es = append(es, e)
	}
	return es
}

func TestPlan(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	o := Options{Prefix: "zsync_", Interval: 15 * time.Minute}
	type want struct {
		due    bool
		future bool
		past   string // NewestPast of a future-dated dataset
		reason string
	}
	cases := []struct {
		name    string
		listing []string
		o       Options
		want    want
	}{
		{"no snapshots", []string{"tank/a"}, o,
			want{due: true, reason: `no snapshot with prefix "zsync_"`}},
		{"newest too young", []string{"tank/a", "tank/a@zsync_20261122T040000Z", "tank/a@zsync_20261122T045600Z"}, o,
			want{reason: "newest zsync_20261122T045600Z is 4m0s old, interval 15m0s; due from 2026-11-22T05:07:15Z"}},
		{"exactly interval old", []string{"tank/a", "tank/a@zsync_20261122T044500Z"}, o,
			want{due: true, reason: "newest zsync_20261122T044500Z is 15m0s old, interval 15m0s"}},
		{"old enough", []string{"tank/a", "tank/a@zsync_20261122T030000Z"}, o,
			want{due: true, reason: "newest zsync_20261122T030000Z is 2h0m0s old, interval 15m0s"}},
		{"newest by name time, not listing order", []string{"tank/a", "tank/a@zsync_20261122T045900Z", "tank/a@zsync_20261121T000000Z"}, o,
			want{reason: "newest zsync_20261122T045900Z is 1m0s old, interval 15m0s; due from 2026-11-22T05:10:15Z"}},
		{"other prefix and manual names ignored", []string{"tank/a", "tank/a@auto_20261122T045900Z", "tank/a@zsync_manual", "tank/a@zsync_20261122T045900Z.bak", "tank/a#zsync_20261122T045900Z"}, o,
			want{due: true, reason: `no snapshot with prefix "zsync_"`}},
		{"other job's snapshots of the same dataset ignored", []string{"tank/a", "tank/a@hourly_20261122T045900Z", "tank/a@zsync_20261122T000000Z"}, o,
			want{due: true, reason: "newest zsync_20261122T000000Z is 5h0m0s old, interval 15m0s"}},
		{"exact name exists, interval zero", []string{"tank/a", "tank/a@zsync_20261122T050000Z"}, Options{Prefix: "zsync_"},
			want{reason: "snapshot zsync_20261122T050000Z already exists"}},
		{"interval zero is always due", []string{"tank/a", "tank/a@zsync_20261122T045959Z"}, Options{Prefix: "zsync_"},
			want{due: true, reason: "newest zsync_20261122T045959Z is 1s old, interval 0s"}},
		{"future dated", []string{"tank/a", "tank/a@zsync_20261122T030000Z", "tank/a@zsync_20261122T060000Z"}, o,
			want{future: true, past: "zsync_20261122T030000Z", reason: "newest zsync_20261122T060000Z is dated 1h0m0s in the future (clock went backwards?); not due before 2026-11-22T06:15:00Z"}},
		// NextDue, not newest+interval (06:20): 06:05 + 15m - slack
		{"future dated, off the grid", []string{"tank/a", "tank/a@zsync_20261122T060500Z"}, o,
			want{future: true, reason: "newest zsync_20261122T060500Z is dated 1h5m0s in the future (clock went backwards?); not due before 2026-11-22T06:16:15Z"}},
		{"prefix with spaces", []string{"tank/my data", "tank/my data@my snap 20261122T044000Z", "tank/my data@my snap20261122T045900Z"},
			Options{Prefix: "my snap ", Interval: 15 * time.Minute},
			want{due: true, reason: "newest my snap 20261122T044000Z is 20m0s old, interval 15m0s"}},
		{"volume", []string{"vol:tank/a", "tank/a@zsync_20261122T045000Z"}, o,
			want{reason: "newest zsync_20261122T045000Z is 10m0s old, interval 15m0s; due from 2026-11-22T05:01:15Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := NewPlan(listing(c.listing...), subtreeFilter{"tank"}, c.o, now)
			all := append(append([]Decision(nil), p.Due...), p.NotDue...)
			if len(all) != 1 {
				t.Fatalf("plan has %d decisions, want 1: %+v", len(all), p)
			}
			d := all[0]
			if got := len(p.Due) == 1; got != c.want.due {
				t.Errorf("due = %v, want %v (%s)", got, c.want.due, d.Reason)
			}
			if d.FutureDated != c.want.future {
				t.Errorf("FutureDated = %v, want %v", d.FutureDated, c.want.future)
			}
			wantPast := d.Newest
			if c.want.future {
				wantPast = c.want.past
			}
			if d.NewestPast != wantPast {
				t.Errorf("NewestPast = %q, want %q", d.NewestPast, wantPast)
			}
			if pt, ok := ParseName(c.o.Prefix, d.NewestPast); ok != !d.NewestPastTime.IsZero() || ok && !pt.Equal(d.NewestPastTime) {
				t.Errorf("NewestPastTime = %v for %q", d.NewestPastTime, d.NewestPast)
			}
			if d.Reason != c.want.reason {
				t.Errorf("reason = %q\nwant     %q", d.Reason, c.want.reason)
			}
			if want := d.Dataset + "@" + Name(c.o.Prefix, now); d.Snapshot != want {
				t.Errorf("snapshot = %q, want %q", d.Snapshot, want)
			}
		})
	}
}

func TestPlanSelectionAndRunName(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	// 06:00:07.9 in Berlin is 05:00:07 UTC; the name drops the fraction.
	now := time.Date(2026, 11, 22, 6, 0, 7, 900_000_000, berlin)
	o := Options{Prefix: "zsync_", Interval: time.Hour}
	ls := listing(
		"tank", "tank/a", "tank/a/b", "tank/scratch", "tank/scratch/x", "vol:tank/vol", "other/c",
		"tank/a@zsync_20261122T043000Z",           // a: 30m old, not due
		"tank/a/b@zsync_20261122T030000Z",         // b: due
		"tank/gone@zsync_20200101T000000Z",        // no dataset entry: ignored
		"tank/a", "tank/a@zsync_20261122T043000Z", // overlapping roots list it twice
	)
	p := NewPlan(ls, subtreeFilter{"tank", "!tank/scratch", "other/c"}, o, now)

	wantTime := time.Date(2026, 11, 22, 5, 0, 7, 0, time.UTC)
	if !p.Time.Equal(wantTime) || p.Time.Location() != time.UTC || p.Name != "zsync_20261122T050007Z" {
		t.Fatalf("plan time %v name %q, want %v and zsync_20261122T050007Z", p.Time, p.Name, wantTime)
	}
	var due, notDue []string
	for _, d := range p.Due {
		due = append(due, d.Snapshot)
	}
	for _, d := range p.NotDue {
		notDue = append(notDue, d.Dataset)
	}
	wantDue := "other/c@zsync_20261122T050007Z tank@zsync_20261122T050007Z tank/a/b@zsync_20261122T050007Z tank/vol@zsync_20261122T050007Z"
	if got := strings.Join(due, " "); got != wantDue {
		t.Errorf("due:\n got %s\nwant %s", got, wantDue)
	}
	if got := strings.Join(notDue, " "); got != "tank/a" {
		t.Errorf("not due: %s, want tank/a", got)
	}
	if n := p.NotDue[0]; n.Newest != "zsync_20261122T043000Z" || !n.NewestTime.Equal(time.Date(2026, 11, 22, 4, 30, 0, 0, time.UTC)) {
		t.Errorf("not due newest = %q %v", n.Newest, n.NewestTime)
	}
}

func TestPlanEmpty(t *testing.T) {
	t.Parallel()
	p := NewPlan(nil, subtreeFilter{"tank"}, Options{Prefix: "zsync_"}, time.Now())
	if len(p.Due) != 0 || len(p.NotDue) != 0 {
		t.Fatalf("empty listing gave %+v", p)
	}
	p = NewPlan(listing("tank/a"), nil, Options{Prefix: "zsync_"}, time.Now())
	if len(p.Due) != 0 || len(p.NotDue) != 0 {
		t.Fatalf("nil filter gave %+v", p)
	}
}

// TestPlanCronEveryMinute simulates `zsync snap` from cron every minute for
// a day with a 15-minute interval, each run seeing the snapshots of the
// runs before: exactly one snapshot per 15 minutes.
func TestPlanCronEveryMinute(t *testing.T) {
	t.Parallel()
	o := Options{Prefix: "zsync_", Interval: 15 * time.Minute}
	ls := listing("tank/a")
	start := time.Date(2026, 3, 29, 0, 0, 30, 0, mustLoad(t, "Europe/Berlin")) // DST starts at 02:00
	var taken []time.Time
	for m := range 24 * 60 {
		p := NewPlan(ls, subtreeFilter{"tank"}, o, start.Add(time.Duration(m)*time.Minute))
		for _, d := range p.Due {
			ls = append(ls, zfs.Entry{Name: d.Snapshot, Type: zfs.Snapshot})
			taken = append(taken, p.Time)
		}
	}
	if len(taken) != 24*4 {
		t.Fatalf("%d snapshots in a day, want 96", len(taken))
	}
	for i := 1; i < len(taken); i++ {
		if d := taken[i].Sub(taken[i-1]); d != 15*time.Minute {
			t.Fatalf("snapshot %d came %v after the previous one", i, d)
		}
	}
}
