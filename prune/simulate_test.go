package prune

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on every system
)

// The grid's promise, checked from first principles over simulated
// histories: buckets are fixed multiples of their length since the Unix
// epoch, laid back to back from the youngest snapshot (see doc.go), and
// after every pruning run each bucket holds the K oldest snapshots ever
// taken in it (all of them for keep=all), whatever the pruning schedule and
// however creation times wander.

// simBucket is one bucket of a grid laid out by the test, in Unix seconds
// (the simulations use whole seconds): [lo, hi), or [lo, hi] for bucket 0
// of the first interval (hi is the anchor).
type simBucket struct {
	group, bucket int
	iv            Interval
	lo, hi        int64
	inclHi        bool
}

// floorSec rounds the Unix time u down to a multiple of length since the
// epoch.
func floorSec(u int64, length time.Duration) int64 {
	l := int64(length / time.Second)
	m := u % l
	if m < 0 {
		m += l
	}
	return u - m
}

// simLayout lists the buckets of ivs for anchor, youngest first: per
// interval, the rest of the aligned bucket its young end falls in (bucket
// 0, possibly empty) and then Count whole aligned buckets.
func simLayout(ivs []Interval, anchor time.Time) []simBucket {
	var out []simBucket
	top := anchor.Unix()
	for g, iv := range ivs {
		cut, l := floorSec(top, iv.Length), int64(iv.Length/time.Second)
		out = append(out, simBucket{g, 0, iv, cut, top, g == 0})
		for b := int64(1); b <= int64(iv.Count); b++ {
			out = append(out, simBucket{g, int(b), iv, cut - b*l, cut - (b-1)*l, false})
		}
		top = cut - int64(iv.Count)*l
	}
	return out
}

// within returns the index range [i, j) of the sorted Unix times ts in b.
func (b simBucket) within(ts []int64) (i, j int) {
	hi := b.hi
	if b.inclHi {
		hi++
	}
	i, _ = slices.BinarySearch(ts, b.lo)
	j, _ = slices.BinarySearch(ts, hi)
	return i, max(i, j)
}

// has reports whether the Unix time u is in b.
func (b simBucket) has(u int64) bool {
	return u >= b.lo && (u < b.hi || b.inclHi && u == b.hi)
}

func (b simBucket) String() string {
	end := ")"
	if b.inclHi {
		end = "]"
	}
	f := func(u int64) string { return time.Unix(u, 0).UTC().Format(time.RFC3339) }
	return fmt.Sprintf("%-15s bucket %2d  [%s, %s%s", b.iv, b.bucket, f(b.lo), f(b.hi), end)
}

// gridChecker prunes a growing history with one grid rule and checks after
// every run that the grid held its promise.
type gridChecker struct {
	ivs    []Interval
	policy Policy
	exact  bool // every bucket must hold the K oldest ever taken
	hour   bool // the grid starts with keep=all for an hour or more

	live    []Snapshot
	group   []int   // per live snapshot: interval it was kept in at the last run, -1 if not judged yet
	created []int64 // Unix times of every snapshot ever taken

	prunes, destroyed int
	last              []simBucket // layout of the last run
}

func newGridChecker(t *testing.T, spec string, exact bool) *gridChecker {
	t.Helper()
	rule, err := NewGrid(spec, "^zsync_")
	if err != nil {
		t.Fatal(err)
	}
	ivs := rule.(Grid).Intervals
	return &gridChecker{ivs: ivs, policy: Policy{Rules: []Rule{rule}}, exact: exact,
		hour: ivs[0].Keep == KeepAll && ivs[0].Length >= time.Hour}
}

func (c *gridChecker) add(name string, created time.Time) {
	c.created = append(c.created, created.Unix())
	n := uint64(len(c.created))
	c.live = append(c.live, Snapshot{Name: name, GUID: 1_000_000 + n, CreateTXG: n, Created: created})
	c.group = append(c.group, -1)
}

// prune runs Apply at now and returns what is wrong, if anything.
func (c *gridChecker) prune(now time.Time) error {
	c.prunes++
	anchor := c.live[len(c.live)-1].Created
	layout := simLayout(c.ivs, anchor)
	c.last = layout
	groupAt := func(tm time.Time) int {
		for _, b := range layout {
			if b.has(tm.Unix()) {
				return b.group
			}
		}
		return len(c.ivs) // past the grid
	}
	ds := Apply(c.live, c.policy, nil, now)
	live, group := c.live[:0], c.group[:0]
	for k, d := range ds {
		s := d.Snapshot
		if s.GUID != c.live[k].GUID {
			return fmt.Errorf("decision %d is for %s, want %s", k, s.Name, c.live[k].Name)
		}
		if d.Keep {
			live, group = append(live, s), append(group, c.group[k])
			continue
		}
		c.destroyed++
		if c.hour && s.Created.After(anchor.Add(-time.Hour)) {
			return fmt.Errorf("destroyed %s of the newest hour", s.Name)
		}
		// Once kept, a snapshot goes only when its bucket has moved on to
		// a longer interval, or off the grid.
		if was := c.group[k]; was >= 0 && groupAt(s.Created) <= was {
			return fmt.Errorf("destroyed %s, kept by %s at the previous run and still in its range", s.Name, c.ivs[was])
		}
	}
	c.live, c.group = live, group

	times := c.liveTimes()
	inBuckets := 0
	for _, b := range layout {
		i, j := b.within(times)
		ti, tj := b.within(c.created)
		kept, taken := j-i, tj-ti
		if b.iv.Keep == KeepAll && kept != taken {
			return fmt.Errorf("%s: kept %d of %d, want all", b, kept, taken)
		}
		if b.iv.Keep != KeepAll && kept > b.iv.Keep {
			return fmt.Errorf("%s: kept %d, more than %d", b, kept, b.iv.Keep)
		}
		if c.exact && b.iv.Keep != KeepAll {
			want := min(b.iv.Keep, taken)
			if kept != want {
				return fmt.Errorf("%s: kept %d, want %d (%d taken)", b, kept, want, taken)
			}
			for k := 0; k < kept; k++ {
				if times[i+k] != c.created[ti+k] {
					return fmt.Errorf("%s: kept %s, not the oldest ever taken", b, c.live[i+k].Name)
				}
			}
		}
		for k := i; k < j; k++ {
			c.group[k] = b.group
		}
		inBuckets += kept
	}
	if inBuckets != len(c.live) {
		return fmt.Errorf("%d snapshots kept outside every bucket", len(c.live)-inBuckets)
	}
	return nil
}

func (c *gridChecker) liveTimes() []int64 {
	times := make([]int64, len(c.live))
	for k, s := range c.live {
		times[k] = s.Created.Unix()
	}
	return times
}

// render lists the last run's buckets and what they hold.
func (c *gridChecker) render() string {
	var out strings.Builder
	times := c.liveTimes()
	for _, b := range c.last {
		if b.lo == b.hi && !b.inclHi {
			continue // an empty bucket 0: the interval starts on a boundary
		}
		i, j := b.within(times)
		ti, tj := b.within(c.created)
		var names []string
		for _, s := range c.live[i:j] {
			names = append(names, s.Name)
		}
		fmt.Fprintf(&out, "%s  kept %d of %d: %s\n", b, j-i, tj-ti, strings.Join(names, " "))
	}
	return out.String()
}

// A year of snapshots every 15 minutes on a clock in Europe/Berlin local
// time through both DST changes, named in UTC, pruned on several schedules.
type yearSchedule struct {
	name string
	// due says whether pruning runs right after snapshot i, taken at
	// local time at (before jitter).
	due  func(i int, at time.Time) bool
	what string
}

var yearSchedules = []yearSchedule{
	{"daily", func(i int, _ time.Time) bool { return i%96 == 0 }, "every 24h of elapsed time from the first snapshot"},
	{"berlin_midnight", func(_ int, at time.Time) bool { return at.Hour() == 0 && at.Minute() == 0 },
		"at local midnight in Europe/Berlin (23h and 25h apart around DST changes)"},
	{"every_6h", func(i int, _ time.Time) bool { return i%24 == 0 }, "every 6h of elapsed time"},
	{"every_snapshot", func(int, time.Time) bool { return true }, "after every snapshot"},
}

const yearSpec = "1x1h(keep=all) | 24x1h | 30x1d | 12x30d"

func TestYearSimulation(t *testing.T) {
	var (
		mu     sync.Mutex
		finals = make(map[string]string) // schedule -> final buckets
	)
	t.Run("group", func(t *testing.T) {
		for _, jitter := range []bool{false, true} {
			for _, sched := range yearSchedules {
				name := sched.name
				if jitter {
					name += "_jitter"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					header, final := simulateYear(t, sched, jitter)
					mu.Lock()
					finals[name] = final
					mu.Unlock()
					if sched.name == "daily" {
						golden(t, "simulate/year_berlin_15m"+strings.TrimPrefix(name, "daily"), []byte(header+"\n"+final))
					}
				})
			}
		}
	})
	// The grid does not depend on when pruning ran: every schedule ends
	// with the very same snapshots.
	for name, final := range finals {
		base := "daily"
		if strings.HasSuffix(name, "_jitter") {
			base += "_jitter"
		}
		if want, ok := finals[base]; ok && final != want {
			t.Errorf("%s ends with different snapshots than %s:\n%s\nwant:\n%s", name, base, final, want)
		}
	}
}

// simulateYear runs one schedule and returns a header and the final
// buckets. With jitter every creation time is 0 to 5 seconds late, from a
// fixed seed.
func simulateYear(t *testing.T, sched yearSchedule, jitter bool) (header, final string) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const step = 15 * time.Minute
	c := newGridChecker(t, yearSpec, true)
	rng := rand.New(rand.NewPCG(612, 2025))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, berlin)
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)

	var (
		seen      = make(map[string]bool)
		wall      = make(map[string]int) // local wall-clock minute -> times seen
		prev      time.Time
		lastPrune = -1
		i         int
	)
	for at := start; at.Before(end); at, i = at.Add(step), i+1 {
		created := at.UTC()
		if jitter {
			created = created.Add(time.Duration(rng.IntN(6)) * time.Second)
		}
		name := stamp("zsync_", created)
		if seen[name] {
			t.Fatalf("duplicate snapshot name %s at local %s", name, at)
		}
		seen[name] = true
		// The name parses back to the creation time; the clock moves on
		// by exactly one step: nothing missing around DST.
		parsed, err := time.Parse("zsync_20060102T150405Z", name)
		if err != nil || !parsed.Equal(created) {
			t.Fatalf("name %s does not parse back to %s: %v, %v", name, created, parsed, err)
		}
		if !prev.IsZero() && at.Sub(prev) != step {
			t.Fatalf("%s follows %s by %v", at, prev, at.Sub(prev))
		}
		prev = at
		wall[at.Format("2006-01-02 15:04")]++
		c.add(name, created)
		if sched.due(i, at) {
			lastPrune = i
			if err := c.prune(created.Add(30 * time.Second)); err != nil {
				t.Fatalf("prune %d after %s: %v", c.prunes, name, err)
			}
		}
	}
	if lastPrune != i-1 {
		if err := c.prune(c.live[len(c.live)-1].Created.Add(30 * time.Second)); err != nil {
			t.Fatalf("final prune: %v", err)
		}
	}

	// The clock really went through both changes of 2025: the local hour
	// 02:00-03:00 is skipped on 30 March and repeated on 26 October.
	if wall["2025-03-30 02:15"] != 0 || wall["2025-03-30 01:45"] != 1 || wall["2025-03-30 03:00"] != 1 {
		t.Errorf("spring-forward not simulated: %d %d %d", wall["2025-03-30 02:15"], wall["2025-03-30 01:45"], wall["2025-03-30 03:00"])
	}
	if wall["2025-10-26 02:15"] != 2 || wall["2025-10-26 01:45"] != 1 {
		t.Errorf("fall-back not simulated: %d %d", wall["2025-10-26 02:15"], wall["2025-10-26 01:45"])
	}
	if want := 365 * 24 * 4; len(c.created) != want {
		t.Errorf("took %d snapshots, want %d", len(c.created), want)
	}
	// Nothing of the newest hour was destroyed (checked at every run too).
	anchor := c.live[len(c.live)-1].Created
	if got := len(c.live) - sort.Search(len(c.live), func(k int) bool { return c.live[k].Created.After(anchor.Add(-time.Hour)) }); got != 4 {
		t.Errorf("newest hour: kept %d, want 4", got)
	}
	jit := "none"
	if jitter {
		jit = "0-5s late (seeded)"
	}
	header = fmt.Sprintf("grid: %s\nsnapshots: every %v from %s to %s (local %s), jitter %s\nprunes: %d (%s, and after the last)\ntaken: %d  destroyed: %d  kept: %d\n",
		yearSpec, step, time.Unix(c.created[0], 0).UTC().Format(time.RFC3339), anchor.Format(time.RFC3339), berlin, jit,
		c.prunes, sched.what, len(c.created), c.destroyed, len(c.live))
	return header, c.render()
}

// Random histories (gaps from one second to hours, outages of days) pruned at
// random moments, for grids whose lengths are multiples of each other and
// grids whose lengths are not (where a longer bucket keeps the oldest of
// what the shorter ones left, so only the weaker checks apply).
func TestGridRandomHistories(t *testing.T) {
	tests := []struct {
		spec  string
		exact bool
	}{
		{"1x1h(keep=all) | 24x1h | 30x1d | 12x30d", true},
		{"24x1h | 7x1d | 4x1w", true},
		{"4x15m(keep=3) | 12x1h(keep=2) | 14x1d", true},
		{"1x1h(keep=all) | 2x2h | 1x3h", false},
		{"1x1h(keep=all) | 6x1h | 14x1d | 4x1w | 6x30d", false},
		{"24x1h | 7x1d(keep=3)", false},
	}
	for n, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(n), 42))
			c := newGridChecker(t, tt.spec, tt.exact)
			at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(86400)) * time.Second)
			for k := 0; k < 4000; k++ {
				switch r := rng.IntN(100); {
				case r < 60:
					at = at.Add(time.Duration(1+rng.IntN(900)) * time.Second)
				case r < 98:
					at = at.Add(time.Duration(1+rng.IntN(4*3600)) * time.Second)
				default:
					at = at.Add(time.Duration(1+rng.IntN(10*86400)) * time.Second)
				}
				c.add(stamp("zsync_", at), at)
				if rng.IntN(3) == 0 || k == 3999 {
					if err := c.prune(at.Add(time.Duration(rng.IntN(3600)) * time.Second)); err != nil {
						t.Fatalf("prune %d after %s: %v", c.prunes, stamp("zsync_", at), err)
					}
				}
			}
		})
	}
}
