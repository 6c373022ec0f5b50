package prune

import (
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	hour = time.Hour
	day  = 24 * time.Hour
)

func TestParseGrid(t *testing.T) {
	tests := []struct {
		spec string
		want []Interval
	}{
		{"1x1h", []Interval{{1, hour, 1}}},
		{"1x1h(keep=all) | 24x1h | 30x1d | 12x30d", []Interval{
			{1, hour, KeepAll}, {24, hour, 1}, {30, day, 1}, {12, 30 * day, 1}}},
		{"  2 x 15m ( keep = 3 )|1x2w", []Interval{{2, 15 * time.Minute, 3}, {1, 14 * day, 1}}},
		{"1x30s|1x1m|1x1h|1x1d|1x1w", []Interval{
			{1, time.Second * 30, 1}, {1, time.Minute, 1}, {1, hour, 1}, {1, day, 1}, {1, 7 * day, 1}}},
		// Shorter intervals are allowed after keep=all ones only.
		{"1x1d(keep=all) | 1x1h(keep=all) | 2x1h", []Interval{{1, day, KeepAll}, {1, hour, KeepAll}, {2, hour, 1}}},
		{"1x1h(keep=all)|2x2h|1x3h", []Interval{{1, hour, KeepAll}, {2, 2 * hour, 1}, {1, 3 * hour, 1}}},
		{"3x1h(keep=1)", []Interval{{3, hour, 1}}},
	}
	for _, tt := range tests {
		got, err := ParseGrid(tt.spec)
		if err != nil {
			t.Errorf("ParseGrid(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseGrid(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
		// The canonical form parses back to the same intervals.
		again, err := ParseGrid(FormatGrid(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseGrid(FormatGrid(%q)=%q) = %v, %v", tt.spec, FormatGrid(got), again, err)
		}
	}
}

func TestParseGridErrors(t *testing.T) {
	tests := []struct {
		spec string
		want []string // substrings of the error, the offending text among them
	}{
		{"", []string{`grid ""`, "empty"}},
		{"   ", []string{"empty"}},
		{"1x1h(keep=0)", []string{`"1x1h(keep=0)"`, "keep must be > 0"}},
		{"1x1h | 2x1h(keep=-1)", []string{`"2x1h(keep=-1)"`, "keep must be > 0"}},
		{"1x1h(keep=some)", []string{`"1x1h(keep=some)"`, `keep "some"`}},
		{"1x1h(kept=1)", []string{`"1x1h(kept=1)"`, "(keep=K) or (keep=all)"}},
		{"0x1h", []string{`"0x1h"`, "count", "> 0"}},
		{"1x1y", []string{`"1x1y"`, `unknown unit "y"`}},
		{"1x1M", []string{`"1x1M"`, `unknown unit "M"`}},
		{"1x60", []string{`"1x60"`, "missing unit"}},
		{"1x0h", []string{`"1x0h"`, "length must be > 0"}},
		{"1x-1h", []string{`"1x-1h"`, "length must be > 0"}},
		{"1x1h30m", []string{`"1x1h30m"`, "duration"}},
		{"1x", []string{`"1x"`, "missing duration"}},
		{"x1h", []string{`"x1h"`, "N x DURATION"}},
		{"+1x1h", []string{`"+1x1h"`, "N x DURATION"}},
		{"1h", []string{`"1h"`, "N x DURATION"}},
		{"1x1h(keep=1", []string{`"1x1h(keep=1"`, "N x DURATION"}},
		{"1x1h |", []string{`""`, "empty interval"}},
		{"1x1h || 1x1d", []string{"empty interval"}},
		{"1x1d | 1x1h", []string{`"1x1h" is shorter than "1x1d"`, "must not decrease"}},
		{"1x1h(keep=all) | 2x1d | 1x1h", []string{`"1x1h" is shorter than "2x1d"`}},
		{"99999999999999999999x1h", []string{`"99999999999999999999x1h"`, "count"}},
		{"1x99999999999w", []string{`"1x99999999999w"`, "too long"}},
		{"100000x1w", []string{`"100000x1w"`, "200 years"}},
	}
	for _, tt := range tests {
		got, err := ParseGrid(tt.spec)
		if err == nil {
			t.Errorf("ParseGrid(%q) = %v, want an error", tt.spec, got)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseGrid(%q) error %q does not contain %q", tt.spec, err, w)
			}
		}
	}
}

func TestIntervalString(t *testing.T) {
	tests := []struct {
		iv   Interval
		want string
	}{
		{Interval{24, hour, 1}, "24x1h"},
		{Interval{1, hour, KeepAll}, "1x1h(keep=all)"},
		{Interval{12, 30 * day, 2}, "12x30d(keep=2)"},
		{Interval{1, 7 * day, 1}, "1x7d"},
		{Interval{4, 90 * time.Minute, 1}, "4x90m"},
		{Interval{1, 1500 * time.Millisecond, 1}, "1x1.5s"},
	}
	for _, tt := range tests {
		if got := tt.iv.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.iv, got, tt.want)
		}
	}
}

func TestLocate(t *testing.T) {
	// zrepl's docs example, anchored at 13:50 UTC. 2h buckets start at even
	// UTC hours, 3h buckets at 00, 03, 06, ... UTC.
	ivs := []Interval{{1, hour, KeepAll}, {2, 2 * hour, 1}, {1, 3 * hour, 1}}
	at := func(hhmm string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04:05", "2025-06-01 "+hhmm)
		if err != nil {
			panic(err)
		}
		return tm
	}
	ranges := layOut(ivs, at("13:50:00"))
	tests := []struct {
		at   string
		g, b int
		ok   bool
		why  string
	}{
		{"13:50:00", 0, 0, true, "the anchor itself is in the partial bucket 0"},
		{"13:00:00", 0, 0, true, "a boundary belongs to the bucket it starts"},
		{"12:59:59", 0, 1, true, "the whole hour before the anchor's hour"},
		{"12:00:00", 0, 1, true, ""},
		{"11:59:59", 1, 1, true, "12:00 is 2h-aligned: no partial bucket"},
		{"10:00:00", 1, 1, true, ""},
		{"09:59:59", 1, 2, true, ""},
		{"08:00:00", 1, 2, true, ""},
		{"07:59:59", 2, 0, true, "08:00 is not 3h-aligned: 06:00-08:00 is partial"},
		{"06:00:00", 2, 0, true, ""},
		{"05:59:59", 2, 1, true, ""},
		{"03:00:00", 2, 1, true, ""},
		{"02:59:59", 0, 0, false, "past the grid"},
		{"13:50:01", 0, 0, false, "newer than the anchor"},
	}
	for _, tt := range tests {
		g, b, ok := locate(ranges, at(tt.at))
		if g != tt.g || b != tt.b || ok != tt.ok {
			t.Errorf("locate(%s) = %d, %d, %v; want %d, %d, %v (%s)", tt.at, g, b, ok, tt.g, tt.b, tt.ok, tt.why)
		}
	}
	// An anchor on a boundary leaves bucket 0 holding only the anchor.
	ranges = layOut(ivs, at("12:00:00"))
	if g, b, ok := locate(ranges, at("12:00:00")); g != 0 || b != 0 || !ok {
		t.Errorf("anchor on a boundary: %d, %d, %v", g, b, ok)
	}
	if g, b, ok := locate(ranges, at("11:00:00")); g != 0 || b != 1 || !ok {
		t.Errorf("hour before an anchor on a boundary: %d, %d, %v", g, b, ok)
	}
	if len(layOut(nil, at("12:00:00"))) != 0 {
		t.Error("layOut(nil) is not empty")
	}
	if _, _, ok := locate(nil, at("12:00:00")); ok {
		t.Error("locate in an empty grid succeeded")
	}
}

func TestAlignDown(t *testing.T) {
	epoch := time.Unix(0, 0)
	lengths := []time.Duration{time.Nanosecond, 1500 * time.Millisecond, time.Second, 15 * time.Minute,
		hour, 3 * hour, day, 7 * day, 30 * day, 365 * day, maxGridSpan}
	times := []time.Time{
		epoch,
		epoch.Add(-1),
		time.Date(2025, 3, 30, 1, 59, 59, 999_999_999, time.UTC),
		time.Date(2025, 10, 26, 2, 15, 0, 0, time.FixedZone("CEST", 2*3600)),
		time.Date(1969, 12, 31, 23, 0, 0, 1, time.UTC),
		{}, // year 1: far beyond a time.Duration from the epoch
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, d := range lengths {
		for _, tm := range times {
			got := alignDown(tm, d)
			want := bigAlignDown(tm, d)
			if !got.Equal(want) {
				t.Errorf("alignDown(%s, %v) = %s, want %s", tm, d, got, want)
			}
		}
	}
	// Plain cases, readable.
	if got := alignDown(time.Date(2025, 6, 1, 13, 50, 0, 0, time.UTC), 3*hour); !got.Equal(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("3h: %s", got)
	}
	// 1970-01-01 was a Thursday: weeks start on Thursdays.
	if got := alignDown(time.Date(2025, 6, 1, 13, 50, 0, 0, time.UTC), 7*day); got.Weekday() != time.Thursday || got.UTC().Hour() != 0 {
		t.Errorf("1w: %s", got)
	}
}

// bigAlignDown is alignDown done with arbitrary precision.
func bigAlignDown(tm time.Time, d time.Duration) time.Time {
	ns := new(big.Int).Mul(big.NewInt(tm.Unix()), big.NewInt(int64(time.Second)))
	ns.Add(ns, big.NewInt(int64(tm.Nanosecond())))
	r := new(big.Int).Mod(ns, big.NewInt(int64(d))) // Euclidean: 0 <= r < d
	return tm.Add(-time.Duration(r.Int64()))
}

func TestFormatAge(t *testing.T) {
	tests := map[time.Duration]string{
		0:                              "0s",
		time.Millisecond:               "0s",
		45 * time.Minute:               "45m",
		26*hour + 15*time.Minute:       "1d2h15m",
		-90 * time.Second:              "-1m30s",
		400*day + 3*hour + time.Second: "400d3h1s",
		-time.Millisecond:              "-0s",
		time.Duration(math.MinInt64):   "-106751d23h47m16s",
		time.Duration(math.MaxInt64):   "106751d23h47m16s",
	}
	for d, want := range tests {
		if got := formatAge(d); got != want {
			t.Errorf("formatAge(%v) = %q, want %q", d, got, want)
		}
	}
}
