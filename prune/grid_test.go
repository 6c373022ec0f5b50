package prune

import (
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
	ivs := []Interval{{1, hour, KeepAll}, {2, 2 * hour, 1}, {1, 3 * hour, 1}}
	tests := []struct {
		age       time.Duration
		g, b      int
		ok        bool
		something string
	}{
		{0, 0, 0, true, "the anchor itself is in the first bucket"},
		{59 * time.Minute, 0, 0, true, ""},
		{hour, 1, 0, true, "a bucket's oldest edge belongs to the next one"},
		{3*hour - 1, 1, 0, true, ""},
		{3 * hour, 1, 1, true, ""},
		{5 * hour, 2, 0, true, ""},
		{8*hour - 1, 2, 0, true, ""},
		{8 * hour, 0, 0, false, "past the grid"},
		{-time.Second, 0, 0, false, "newer than the anchor"},
	}
	for _, tt := range tests {
		g, b, ok := locate(ivs, tt.age)
		if g != tt.g || b != tt.b || ok != tt.ok {
			t.Errorf("locate(%v) = %d, %d, %v; want %d, %d, %v (%s)", tt.age, g, b, ok, tt.g, tt.b, tt.ok, tt.something)
		}
	}
}

func TestFormatAge(t *testing.T) {
	tests := map[time.Duration]string{
		0:                              "0s",
		time.Millisecond:               "0s",
		45 * time.Minute:               "45m",
		26*hour + 15*time.Minute:       "1d2h15m",
		-90 * time.Second:              "-1m30s",
		400*day + 3*hour + time.Second: "400d3h1s",
	}
	for d, want := range tests {
		if got := formatAge(d); got != want {
			t.Errorf("formatAge(%v) = %q, want %q", d, got, want)
		}
	}
}
