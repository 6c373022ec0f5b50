package prune

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// KeepAll, as Interval.Keep, means that the interval keeps every snapshot in it.
const KeepAll = -1

// maxGridSpan bounds the time a whole grid may cover, so that bucket
// arithmetic can never overflow a time.Duration.
const maxGridSpan = 200 * 365 * 24 * time.Hour

// Interval is one "N x DURATION(keep=K)" term of a retention grid: Count
// buckets of Length, each keeping its Keep oldest snapshots (KeepAll: every
// snapshot). See the package documentation for where the buckets lie.
type Interval struct {
	Count  int
	Length time.Duration
	Keep   int
}

// String formats the interval in the grid grammar, e.g. "24x1h",
// "1x1h(keep=all)" or "30x1d(keep=2)". Lengths are written with the largest
// of the units d, h, m, s that divides them.
func (iv Interval) String() string {
	s := fmt.Sprintf("%dx%s", iv.Count, formatLength(iv.Length))
	switch {
	case iv.Keep == KeepAll:
		s += "(keep=all)"
	case iv.Keep != 1:
		s += fmt.Sprintf("(keep=%d)", iv.Keep)
	}
	return s
}

// FormatGrid formats intervals as a grid spec that ParseGrid accepts, with
// the intervals separated by " | ".
func FormatGrid(intervals []Interval) string {
	parts := make([]string, len(intervals))
	for i, iv := range intervals {
		parts[i] = iv.String()
	}
	return strings.Join(parts, " | ")
}

// formatLength writes d with the largest unit of d, h, m and s that divides
// it exactly.
func formatLength(d time.Duration) string {
	units := []struct {
		suffix string
		size   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}
	for _, u := range units {
		if d != 0 && d%u.size == 0 {
			return strconv.FormatInt(int64(d/u.size), 10) + u.suffix
		}
	}
	return d.String()
}

var (
	intervalRE = regexp.MustCompile(`^(\d+)\s*x\s*([^(]*?)\s*(?:\((.*)\))?$`)
	lengthRE   = regexp.MustCompile(`^([+-]?\d+)\s*([A-Za-z]*)$`)
	keepRE     = regexp.MustCompile(`^keep\s*=\s*(\S+)$`)
)

var lengthUnits = map[string]time.Duration{
	"s": time.Second,
	"m": time.Minute,
	"h": time.Hour,
	"d": 24 * time.Hour,
	"w": 7 * 24 * time.Hour,
}

// ParseGrid parses a retention grid in zrepl's grammar: intervals separated
// by "|", each "N x DURATION" optionally followed by "(keep=K)" or
// "(keep=all)"; K defaults to 1. N and K must be positive. DURATION is a
// positive whole number and one unit of s, m, h, d (24 hours) or w (7 days),
// such as "15m" or "30d". Interval lengths must not decrease from one term to
// the next, except after terms that all keep everything
// ("1x1h(keep=all) | 24x1h" is fine, "1x1d | 1x1h" is not).
//
// Errors quote the whole spec and the offending term.
func ParseGrid(spec string) ([]Interval, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("grid %q: empty", spec)
	}
	var out []Interval
	terms := strings.Split(spec, "|")
	for i, term := range terms {
		term = strings.TrimSpace(term)
		terms[i] = term
		iv, err := parseInterval(term)
		if err != nil {
			return nil, fmt.Errorf("grid %q: interval %q: %w", spec, term, err)
		}
		out = append(out, iv)
	}
	if err := checkIntervals(out, terms); err != nil {
		return nil, fmt.Errorf("grid %q: %w", spec, err)
	}
	return out, nil
}

func parseInterval(term string) (Interval, error) {
	if term == "" {
		return Interval{}, errors.New("empty interval")
	}
	m := intervalRE.FindStringSubmatch(term)
	if m == nil {
		return Interval{}, errors.New("want N x DURATION, optionally followed by (keep=K) or (keep=all)")
	}
	count, err := strconv.Atoi(m[1])
	if err != nil || count <= 0 {
		return Interval{}, fmt.Errorf("count %q must be a whole number > 0", m[1])
	}
	length, err := parseLength(m[2])
	if err != nil {
		return Interval{}, err
	}
	keep := 1
	if strings.Contains(term, "(") {
		keep, err = parseKeep(strings.TrimSpace(m[3]))
		if err != nil {
			return Interval{}, err
		}
	}
	return Interval{Count: count, Length: length, Keep: keep}, nil
}

func parseLength(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing duration")
	}
	m := lengthRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("duration %q: want one whole number and a unit (s, m, h, d or w)", s)
	}
	if m[2] == "" {
		return 0, fmt.Errorf("duration %q: missing unit (s, m, h, d or w)", s)
	}
	unit, ok := lengthUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("duration %q: unknown unit %q (use s, m, h, d or w)", s, m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("duration %q: length must be > 0", s)
	}
	if n > int64(maxGridSpan/unit) {
		return 0, fmt.Errorf("duration %q: too long", s)
	}
	return time.Duration(n) * unit, nil
}

func parseKeep(s string) (int, error) {
	m := keepRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want (keep=K) or (keep=all)", "("+s+")")
	}
	if m[1] == "all" {
		return KeepAll, nil
	}
	k, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, fmt.Errorf("keep %q: want a whole number > 0 or all", m[1])
	}
	if k <= 0 {
		return 0, fmt.Errorf("keep must be > 0, got %q", m[1])
	}
	return k, nil
}

// checkIntervals validates a parsed or hand-built list of intervals: at least
// one, each with positive count, length and keep (or KeepAll), lengths
// non-decreasing unless every earlier interval keeps all, and a total span
// that fits comfortably in a time.Duration. Errors quote terms[i] for
// interval i when terms is given, the interval's String otherwise.
func checkIntervals(ivs []Interval, terms []string) error {
	if len(ivs) == 0 {
		return errors.New("no intervals")
	}
	var span, prevLen time.Duration
	allKeepAll := true
	name := func(i int) string {
		if i < len(terms) {
			return terms[i]
		}
		return ivs[i].String()
	}
	for i, iv := range ivs {
		switch {
		case iv.Count <= 0:
			return fmt.Errorf("interval %q: count must be > 0", name(i))
		case iv.Length <= 0:
			return fmt.Errorf("interval %q: length must be > 0", name(i))
		case iv.Keep <= 0 && iv.Keep != KeepAll:
			return fmt.Errorf("interval %q: keep must be > 0", name(i))
		}
		if iv.Length > maxGridSpan/time.Duration(iv.Count) || span+iv.Length*time.Duration(iv.Count) > maxGridSpan {
			return fmt.Errorf("interval %q: grid spans more than 200 years", name(i))
		}
		span += iv.Length * time.Duration(iv.Count)
		if i > 0 && iv.Length < prevLen && !allKeepAll {
			return fmt.Errorf("interval %q is shorter than %q before it: lengths must not decrease unless every earlier interval is keep=all", name(i), name(i-1))
		}
		prevLen = iv.Length
		allKeepAll = allKeepAll && iv.Keep == KeepAll
	}
	return nil
}
