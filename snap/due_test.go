package snap

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// dueAt plans one dataset whose newest snapshot is age old at now.
func dueAt(t *testing.T, now time.Time, age, interval time.Duration) (bool, string) {
	t.Helper()
	newest := now.Add(-age)
	p := NewPlan(listing("tank/a", "tank/a@"+Name("zsync_", newest)), subtreeFilter{"tank"}, Options{Prefix: "zsync_", Interval: interval}, now)
	if len(p.Due)+len(p.NotDue) != 1 {
		t.Fatalf("plan has %d decisions, want 1", len(p.Due)+len(p.NotDue))
	}
	if len(p.Due) == 1 {
		return true, p.Due[0].Reason
	}
	return false, p.NotDue[0].Reason
}

// TestDue is the due rule, one line per case: the run's time (as an offset
// into a slot of the interval grid), the age of the newest snapshot, the
// interval. A timer on the grid fires a little after each slot's start; its
// jitter must never make a fire find nothing due (the 14m30s case: this
// fire's random delay was 30s shorter than the last one's).
func TestDue(t *testing.T) {
	t.Parallel()
	hour := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC) // a slot start for every interval below but 24h (UTC days)
	for _, c := range []struct {
		at, age, interval time.Duration
		due               bool
	}{
		// 15m timer (OnCalendar=*:0/15, RandomizedDelaySec=60): the case
		{40 * time.Second, 14*time.Minute + 30*time.Second, 15 * time.Minute, true},
		{10 * time.Second, 14*time.Minute + 10*time.Second, 15 * time.Minute, true},
		{2 * time.Minute, 13 * time.Minute, 15 * time.Minute, true},
		{40 * time.Second, 15 * time.Minute, 15 * time.Minute, true},
		{40 * time.Second, 2 * time.Hour, 15 * time.Minute, true},
		// the slack is a quarter of the interval: 3m45s
		{40 * time.Second, 11*time.Minute + 15*time.Second, 15 * time.Minute, true},
		{40 * time.Second, 11*time.Minute + 14*time.Second, 15 * time.Minute, false},
		// a snapshot of this slot exists
		{40 * time.Second, 40 * time.Second, 15 * time.Minute, false},
		{14*time.Minute + 30*time.Second, 14 * time.Minute, 15 * time.Minute, false}, // cron every minute: not every 14m
		{14*time.Minute + 59*time.Second, 14*time.Minute + 59*time.Second, 15 * time.Minute, false},
		// an extra run late in the last slot (a catch-up after boot, by hand)
		{30 * time.Second, 5 * time.Minute, 15 * time.Minute, false},
		// sub-minute intervals: the slack scales, a 1s interval is 1s
		{0, time.Second, time.Second, true},
		{0, 2 * time.Second, time.Second, true},
		{0, 7 * time.Second, 10 * time.Second, false},
		{0, 8 * time.Second, 10 * time.Second, true},
		{9 * time.Second, 9 * time.Second, 10 * time.Second, false},
		{40 * time.Second, 45 * time.Second, time.Minute, true},
		{40 * time.Second, 44 * time.Second, time.Minute, false},
		{15 * time.Second, 15 * time.Second, 15 * time.Second, true},
		// hourly and daily
		{90 * time.Second, 58*time.Minute + 30*time.Second, time.Hour, true},
		{90 * time.Second, 44 * time.Minute, time.Hour, false},
		{59 * time.Minute, 58 * time.Minute, time.Hour, false},
		{22 * time.Hour, 23 * time.Hour, 24 * time.Hour, true}, // a daily timer after daylight saving time began: 23h
		{22 * time.Hour, 17 * time.Hour, 24 * time.Hour, false},
	} {
		now := hour.Add(c.at)
		got, reason := dueAt(t, now, c.age, c.interval)
		if got != c.due {
			t.Errorf("at %s, newest %s old, interval %s: due = %v, want %v (%s)", now.Format("15:04:05"), c.age, c.interval, got, c.due, reason)
		}
	}
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	ts := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		newest   string
		interval time.Duration
		want     string
	}{
		{"2026-11-22T05:00:40Z", 15 * time.Minute, "2026-11-22T05:15:00Z"},      // next slot
		{"2026-11-22T05:14:00Z", 15 * time.Minute, "2026-11-22T05:25:15Z"},      // by age: 15m - 3m45s
		{"2026-11-22T07:00:40+02:00", 15 * time.Minute, "2026-11-22T05:15:00Z"}, // zones do not matter
		{"2026-11-22T05:00:00Z", 24 * time.Hour, "2026-11-23T00:00:00Z"},        // UTC days
		{"2026-11-22T23:30:00Z", 24 * time.Hour, "2026-11-23T17:30:00Z"},
		{"2026-11-22T06:03:10Z", 7 * time.Minute, "2026-11-22T06:10:00Z"}, // 7m slots from the epoch (06:03, 06:10), not from the hour
		{"2026-11-22T05:00:07Z", time.Second, "2026-11-22T05:00:08Z"},
		{"2026-11-22T05:00:06Z", 1500 * time.Millisecond, "2026-11-22T05:00:07.5Z"},
		{"1969-12-31T23:59:01Z", time.Minute, "1970-01-01T00:00:00Z"}, // floor below the epoch
		{"2026-11-22T05:00:07Z", 0, "2026-11-22T05:00:07Z"},
	} {
		if got := NextDue(ts(c.newest), c.interval); !got.Equal(ts(c.want)) {
			t.Errorf("NextDue(%s, %s) = %s, want %s", c.newest, c.interval, got.UTC().Format(time.RFC3339Nano), c.want)
		}
	}
	if s := Slack(15 * time.Minute); s != 3*time.Minute+45*time.Second {
		t.Errorf("Slack(15m) = %s", s)
	}
}

// simulate runs `zsync snap` for one dataset at each of the given times, in
// order, each run seeing the newest snapshot of the runs before, and returns
// the times of the snapshots taken.
func simulate(interval time.Duration, fires []time.Time) []time.Time {
	o := Options{Prefix: "zsync_", Interval: interval}
	ls := listing("tank/a")
	var taken []time.Time
	for _, at := range fires {
		p := NewPlan(ls, subtreeFilter{"tank"}, o, at)
		for _, d := range p.Due {
			ls = append(ls[:1], zfs.Entry{Name: d.Snapshot, Type: zfs.Snapshot})
			taken = append(taken, p.Time)
		}
	}
	return taken
}

// TestDueTimerNeverSkips fires a systemd timer whose period is the interval,
// on the interval's grid (OnCalendar=*:0/15 for 15m), for a long time: each
// fire comes a fixed accuracy offset plus a random delay plus a start-up
// latency after its slot's start. Every fire must take its snapshot.
func TestDueTimerNeverSkips(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		interval, accuracy, jitter time.Duration
	}{
		{15 * time.Minute, 0, time.Minute}, // the shipped zsync@.timer with FixedRandomDelay=no
		{15 * time.Minute, time.Minute, 2 * time.Minute},
		{5 * time.Minute, 30 * time.Second, time.Minute},
		{time.Hour, time.Minute, 2 * time.Minute},
		{24 * time.Hour, time.Minute, 2 * time.Minute},
		{time.Minute, 0, 10 * time.Second},
	} {
		t.Run(fmt.Sprint(c.interval), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(c.interval)))
			start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			var fires []time.Time
			for k := range 3000 {
				delay := c.accuracy + time.Duration(rng.Int64N(int64(c.jitter))) + time.Duration(rng.Int64N(int64(2*time.Second)))
				fires = append(fires, start.Add(time.Duration(k)*c.interval+delay))
			}
			taken := simulate(c.interval, fires)
			if len(taken) != len(fires) {
				for i := range min(len(taken), len(fires)) {
					if !taken[i].Equal(fires[i].Truncate(time.Second)) {
						t.Fatalf("%d snapshots for %d fires; fire %d at %s took nothing (the previous snapshot is from %s)",
							len(taken), len(fires), i, fires[i].Format(time.RFC3339), taken[i-1].Format(time.RFC3339))
					}
				}
				t.Fatalf("%d snapshots for %d fires", len(taken), len(fires))
			}
		})
	}
}

// TestDueOnePerSlot runs zsync at random times, about four per interval and
// sometimes many in a row: never two snapshots in one slot of the grid,
// never two closer than the interval minus the slack, and a run that takes
// nothing always has a snapshot in its slot or one younger than that.
func TestDueOnePerSlot(t *testing.T) {
	t.Parallel()
	for _, interval := range []time.Duration{time.Second, 10 * time.Second, 15 * time.Minute, time.Hour} {
		rng := rand.New(rand.NewPCG(2, uint64(interval)))
		at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		var fires []time.Time
		for range 5000 {
			at = at.Add(time.Duration(rng.Int64N(int64(interval / 2))))
			fires = append(fires, at)
		}
		taken := simulate(interval, fires)
		slots := map[time.Time]bool{}
		for i, s := range taken {
			slot := slotStart(s, interval)
			if slots[slot] {
				t.Fatalf("interval %s: two snapshots in the slot from %s", interval, slot)
			}
			slots[slot] = true
			if i > 0 && s.Sub(taken[i-1]) < interval-Slack(interval) {
				t.Fatalf("interval %s: snapshots at %s and %s", interval, taken[i-1], s)
			}
		}
		j := 0 // taken[j-1] is the newest snapshot before the fire
		for _, f := range fires {
			f = f.Truncate(time.Second)
			if j < len(taken) && taken[j].Equal(f) {
				j++
				continue
			}
			if j == 0 {
				t.Fatalf("interval %s: the first run at %s took nothing", interval, f)
			}
			newest := taken[j-1]
			if !slots[slotStart(f, interval)] && f.Sub(newest) >= interval-Slack(interval) {
				t.Fatalf("interval %s: the run at %s took nothing; newest %s, its slot has none", interval, f, newest)
			}
		}
	}
}
