package prune

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on every system
)

// TestYearSimulation takes a snapshot every 15 minutes for a year, on a
// clock that runs in Europe/Berlin local time through both DST changes,
// names the snapshots in UTC, and prunes with a grid once a simulated day
// (every 24 hours of elapsed time, starting at local midnight on 1 January).
// At the end every bucket of the grid holds what the grid says, and no run
// ever destroyed a snapshot of the newest hour.
//
// The pruning period matters, as it does in zrepl: the grid slides with the
// youngest snapshot, so when runs are not a whole number of bucket lengths
// apart (a job at local midnight runs 23 and 25 hours apart around the DST
// changes) or creation times jitter, a bucket can be briefly empty or lose a
// snapshot for good (zrepl#612).
func TestYearSimulation(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const (
		spec = "1x1h(keep=all) | 24x1h | 30x1d | 12x30d"
		step = 15 * time.Minute
	)
	rule, err := NewGrid(spec, "^zsync_")
	if err != nil {
		t.Fatal(err)
	}
	policy := Policy{Rules: []Rule{rule}}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, berlin)
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)

	var (
		live      []Snapshot
		created   []time.Time // creation of every snapshot ever taken
		seen      = make(map[string]bool)
		wall      = make(map[string]int) // local wall-clock minute -> times seen
		prunes    int
		destroyed int
		prev      time.Time
	)
	prune := func(now time.Time) {
		prunes++
		ds := Apply(live, policy, nil, now)
		youngest := live[len(live)-1].Created
		live = live[:0]
		for _, d := range ds {
			if d.Keep {
				live = append(live, d.Snapshot)
				continue
			}
			destroyed++
			if d.Snapshot.Created.After(youngest.Add(-time.Hour)) {
				t.Fatalf("prune at %s destroyed %s from the newest hour", now, d.Snapshot.Name)
			}
		}
	}
	for now := start; now.Before(end); now = now.Add(step) {
		name := stamp("zsync_", now)
		if seen[name] {
			t.Fatalf("duplicate snapshot name %s at local %s", name, now)
		}
		seen[name] = true
		// The name parses back to the time, and follows the previous
		// one by exactly one step: nothing missing around DST.
		parsed, err := time.Parse("zsync_20060102T150405Z", name)
		if err != nil || !parsed.Equal(now) {
			t.Fatalf("name %s does not parse back to %s: %v, %v", name, now, parsed, err)
		}
		if !prev.IsZero() && parsed.Sub(prev) != step {
			t.Fatalf("name %s follows %s by %v", name, prev, parsed.Sub(prev))
		}
		prev = parsed
		wall[now.Format("2006-01-02 15:04")]++
		created = append(created, now.UTC())
		n := uint64(len(created))
		live = append(live, Snapshot{Name: name, GUID: 1_000_000 + n, CreateTXG: n, Created: now.UTC()})
		if len(created)%96 == 1 {
			prune(now)
		}
	}
	prune(prev)

	// The clock really went through both changes of 2025: the local hour
	// 02:00-03:00 is skipped on 30 March and repeated on 26 October.
	if wall["2025-03-30 02:15"] != 0 || wall["2025-03-30 01:45"] != 1 || wall["2025-03-30 03:00"] != 1 {
		t.Errorf("spring-forward not simulated: %d %d %d", wall["2025-03-30 02:15"], wall["2025-03-30 01:45"], wall["2025-03-30 03:00"])
	}
	if wall["2025-10-26 02:15"] != 2 || wall["2025-10-26 01:45"] != 1 {
		t.Errorf("fall-back not simulated: %d %d", wall["2025-10-26 02:15"], wall["2025-10-26 01:45"])
	}
	if want := 365 * 24 * 4; len(created) != want {
		t.Errorf("took %d snapshots, want %d", len(created), want)
	}

	// Count per bucket, from first principles: bucket windows laid back
	// from the youngest snapshot, (older, newer].
	ivs, err := ParseGrid(spec)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "grid: %s\nsnapshots: every %v from %s to %s (local %s)\nprunes: %d (every 24h from the first snapshot, and after the last)\ntaken: %d  destroyed: %d  kept: %d\n\n",
		spec, step, start.UTC().Format(time.RFC3339), prev.UTC().Format(time.RFC3339), berlin, prunes, len(created), destroyed, len(live))
	anchor := live[len(live)-1].Created
	newer := anchor
	inBuckets := 0
	for _, iv := range ivs {
		for b := 0; b < iv.Count; b++ {
			older := newer.Add(-iv.Length)
			kept := countIn(live, older, newer)
			taken := countTimes(created, older, newer)
			want := taken
			if iv.Keep != KeepAll {
				want = min(iv.Keep, taken)
			}
			if kept != want {
				t.Errorf("%s bucket %d (%s, %s]: kept %d, want %d", iv, b+1, older.Format(time.RFC3339), newer.Format(time.RFC3339), kept, want)
			}
			fmt.Fprintf(&out, "%-15s bucket %2d  (%s, %s]  kept %d: %s\n", iv, b+1, older.Format(time.RFC3339), newer.Format(time.RFC3339), kept, namesIn(live, older, newer))
			inBuckets += kept
			newer = older
		}
	}
	if inBuckets != len(live) {
		t.Errorf("%d snapshots kept outside every bucket", len(live)-inBuckets)
	}
	// Nothing of the newest hour was destroyed.
	hourAgo := anchor.Add(-time.Hour)
	if got, want := countIn(live, hourAgo, anchor), countTimes(created, hourAgo, anchor); got != want || want != 4 {
		t.Errorf("newest hour: kept %d of %d", got, want)
	}
	golden(t, "simulate/year_berlin_15m", []byte(out.String()))
}

func countIn(snaps []Snapshot, older, newer time.Time) int {
	n := 0
	for _, s := range snaps {
		if s.Created.After(older) && !s.Created.After(newer) {
			n++
		}
	}
	return n
}

func namesIn(snaps []Snapshot, older, newer time.Time) string {
	var names []string
	for _, s := range snaps {
		if s.Created.After(older) && !s.Created.After(newer) {
			names = append(names, s.Name)
		}
	}
	return strings.Join(names, " ")
}

func countTimes(ts []time.Time, older, newer time.Time) int {
	n := 0
	for _, c := range ts {
		if c.After(older) && !c.After(newer) {
			n++
		}
	}
	return n
}
