package snap

import (
	"errors"
	"math/rand"
	"sort"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin and friends without a system zoneinfo
)

func TestNameFormat(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	cases := []struct {
		prefix string
		t      time.Time
		want   string
	}{
		{"zsync_", time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), "zsync_20261122T050000Z"},
		{"zsync_", time.Date(2026, 11, 22, 6, 0, 0, 999999999, berlin), "zsync_20261122T050000Z"},
		{"my snap ", time.Date(2026, 7, 1, 2, 3, 4, 0, berlin), "my snap 20260701T000304Z"},
		{"a", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), "a19991231T235959Z"},
	}
	for _, c := range cases {
		if got := Name(c.prefix, c.t); got != c.want {
			t.Errorf("Name(%q, %v) = %q, want %q", c.prefix, c.t, got, c.want)
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	prefixes := []string{"zsync_", "z", "my snap ", " lead space", "x:y.z-", "2024"}
	for _, prefix := range prefixes {
		for range 500 {
			tm := time.Unix(rng.Int63n(1<<32)+rng.Int63n(1<<31), rng.Int63n(1e9))
			name := Name(prefix, tm)
			got, ok := ParseName(prefix, name)
			if !ok {
				t.Fatalf("ParseName(%q, %q) failed", prefix, name)
			}
			if want := tm.Truncate(time.Second).UTC(); !got.Equal(want) || got.Location() != time.UTC {
				t.Fatalf("ParseName(%q, %q) = %v, want %v", prefix, name, got, want)
			}
		}
	}
}

func TestParseNameRejects(t *testing.T) {
	t.Parallel()
	cases := []struct{ prefix, short string }{
		{"zsync_", "auto_20261122T050000Z"},
		{"zsync_", "zsync_20261122T050000Z "},
		{"zsync_", "zsync_20261122T050000Zx"},
		{"zsync_", "zsync_20261122T050000"},
		{"zsync_", "zsync_20261122T050000z"},
		{"zsync_", "zsync_20261322T050000Z"}, // month 13
		{"zsync_", "zsync_20260230T050000Z"}, // 30 February
		{"zsync_", "zsync_20261122T250000Z"}, // hour 25
		{"zsync_", "zsync_2026-11-22T05:00Z"},
		{"zsync_", "zsync_manual"},
		{"zsync_", "zsync_"},
		{"zsync_", ""},
		{"zsync_", "zsync 20261122T050000Z"},
		{"", "20261122T050000Z"},
		{"my snap ", "my snap20261122T050000Z"},
	}
	for _, c := range cases {
		if tm, ok := ParseName(c.prefix, c.short); ok {
			t.Errorf("ParseName(%q, %q) = %v, true; want false", c.prefix, c.short, tm)
		}
	}
}

func TestNameSortsInTimeOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(2))
	berlin := mustLoad(t, "Europe/Berlin")
	times := make([]time.Time, 2000)
	for i := range times {
		// 1970 to about 2240, in mixed locations.
		tm := time.Unix(rng.Int63n(1<<33), 0)
		if i%2 == 0 {
			tm = tm.In(berlin)
		}
		times[i] = tm
	}
	names := make([]string, len(times))
	for i, tm := range times {
		names[i] = Name("zsync_", tm)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	sort.Strings(names)
	for i := range times {
		if want := Name("zsync_", times[i]); names[i] != want {
			t.Fatalf("lexical position %d holds %q, time order has %q", i, names[i], want)
		}
	}
}

// TestNameAcrossDST steps a year in 15-minute cron ticks in Europe/Berlin
// local time, through both daylight saving changes: every tick gets its own
// name, consecutive names are exactly 15 minutes apart, and the time zone the
// time is expressed in makes no difference.
func TestNameAcrossDST(t *testing.T) {
	t.Parallel()
	berlin := mustLoad(t, "Europe/Berlin")
	others := []*time.Location{time.UTC, mustLoad(t, "America/New_York"), mustLoad(t, "Asia/Kolkata"), time.FixedZone("odd", -(3*3600 + 1800))}

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)
	end := time.Date(2027, 1, 1, 0, 0, 0, 0, berlin)
	seen := map[string]bool{}
	offsets := map[int]bool{}
	var prev time.Time
	prevName := ""
	steps := 0
	for tm := start; tm.Before(end); tm = tm.Add(15 * time.Minute) {
		steps++
		_, off := tm.Zone()
		offsets[off] = true
		name := Name("zsync_", tm)
		if seen[name] {
			t.Fatalf("duplicate name %q at %v", name, tm)
		}
		seen[name] = true
		for _, loc := range others {
			if got := Name("zsync_", tm.In(loc)); got != name {
				t.Fatalf("Name in %v = %q, in Berlin %q", loc, got, name)
			}
		}
		got, ok := ParseName("zsync_", name)
		if !ok || !got.Equal(tm) {
			t.Fatalf("ParseName(%q) = %v, %v; want %v", name, got, ok, tm)
		}
		if prevName != "" {
			if prevName >= name {
				t.Fatalf("%q does not sort before %q", prevName, name)
			}
			if d := got.Sub(prev); d != 15*time.Minute {
				t.Fatalf("%q follows %q after %v, want 15m (missing name)", name, prevName, d)
			}
		}
		prev, prevName = got, name
	}
	// 2026 has 365 days, one 23-hour day and one 25-hour day: 365*96 ticks.
	if steps != 365*96 || len(seen) != steps {
		t.Fatalf("%d steps, %d distinct names; want %d", steps, len(seen), 365*96)
	}
	if len(offsets) != 2 {
		t.Fatalf("the year did not cross DST changes: offsets %v", offsets)
	}
}

func TestValidatePrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"zsync_", "my snap ", "a", "x:y.z-", "2024"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "a@b", "a/b", "a#b", "a%b", "snap\n", "ü"} {
		err := ValidatePrefix(p)
		if err == nil {
			t.Errorf("ValidatePrefix(%q) = nil, want error", p)
		} else if !errors.Is(err, ErrInvalidPrefix) {
			t.Errorf("ValidatePrefix(%q) = %v, does not wrap ErrInvalidPrefix", p, err)
		}
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
