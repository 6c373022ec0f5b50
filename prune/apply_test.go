package prune

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// stamp is the snapshot name format of the snap package: prefix + UTC time.
func stamp(prefix string, t time.Time) string {
	return prefix + t.UTC().Format("20060102T150405Z")
}

// history builds a snapshot list oldest first: createtxg grows by 10 per
// snapshot and the GUID is 1000 + its position.
type history struct {
	now   time.Time
	snaps []Snapshot
}

// add appends a snapshot created age before now. Flags: "held", "repl".
func (h *history) add(name string, age time.Duration, flags ...string) {
	s := Snapshot{
		Name:      name,
		GUID:      uint64(1000 + len(h.snaps)),
		CreateTXG: uint64(10 * (len(h.snaps) + 1)),
		Created:   h.now.Add(-age),
	}
	for _, f := range flags {
		switch f {
		case "held":
			s.Held = true
		case "repl":
			s.Replicated = true
		default:
			panic("unknown flag " + f)
		}
	}
	h.snaps = append(h.snaps, s)
}

// series adds prefix+timestamp snapshots from oldest to youngest age, every
// step.
func (h *history) series(prefix string, oldest, youngest, step time.Duration) {
	for age := oldest; age >= youngest; age -= step {
		h.add(stamp(prefix, h.now.Add(-age)), age)
	}
}

func mustRule(t *testing.T) func(Rule, error) Rule {
	return func(r Rule, err error) Rule {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// render formats decisions one per line for golden files.
func render(p Policy, protect map[uint64]string, now time.Time, ds []Decision) []byte {
	var b strings.Builder
	rules := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		if r == nil {
			rules[i] = "<nil>"
		} else {
			rules[i] = r.String()
		}
	}
	fmt.Fprintf(&b, "policy: %s\nnow: %s\n", strings.Join(rules, "; "), now.Format(time.RFC3339))
	guids := make([]uint64, 0, len(protect))
	for g := range protect {
		guids = append(guids, g)
	}
	sort.Slice(guids, func(i, j int) bool { return guids[i] < guids[j] })
	for _, g := range guids {
		fmt.Fprintf(&b, "protect: guid %d: %s\n", g, protect[g])
	}
	b.WriteString("\n")
	for _, d := range ds {
		verdict := "destroy"
		if d.Keep {
			verdict = "keep"
		}
		s := d.Snapshot
		var flags []string
		if s.Held {
			flags = append(flags, "held")
		}
		if s.Replicated {
			flags = append(flags, "repl")
		}
		fmt.Fprintf(&b, "%-7s %-30s txg=%-4d guid=%d %s %-9s %s\n", verdict, s.Name, s.CreateTXG, s.GUID,
			s.Created.Format(time.RFC3339), strings.Join(flags, ","), strings.Join(d.Reasons, "; "))
	}
	return []byte(b.String())
}

// checkInvariants asserts what must hold for every policy: one decision per
// snapshot, sorted by createtxg, and no held, protected, future or
// out-of-scope snapshot destroyed.
func checkInvariants(t *testing.T, in []Snapshot, p Policy, protect map[uint64]string, now time.Time, ds []Decision) {
	t.Helper()
	if len(ds) != len(in) {
		t.Fatalf("%d decisions for %d snapshots", len(ds), len(in))
	}
	for i, d := range ds {
		if i > 0 && ds[i-1].Snapshot.CreateTXG > d.Snapshot.CreateTXG {
			t.Errorf("decisions not sorted by createtxg at %s", d.Snapshot.Name)
		}
		if len(d.Reasons) == 0 {
			t.Errorf("%s: no reason given", d.Snapshot.Name)
		}
		if d.Keep {
			continue
		}
		s := d.Snapshot
		_, protected := protect[s.GUID]
		inScope := false
		for _, r := range p.Rules {
			switch r := r.(type) {
			case Grid:
				inScope = inScope || matches(r.Regex, s.Name)
			case LastN:
				inScope = inScope || matches(r.Regex, s.Name)
			case RegexRule:
				inScope = inScope || (r.Regex != nil && r.Regex.MatchString(s.Name))
			}
		}
		switch {
		case s.Held, protected, s.Created.After(now), !inScope, len(p.Rules) == 0:
			t.Errorf("%s destroyed although held=%v protected=%v future=%v inScope=%v rules=%d",
				s.Name, s.Held, protected, s.Created.After(now), inScope, len(p.Rules))
		}
		if len(d.Reasons) != 1 || d.Reasons[0] != ReasonNoRuleKeeps {
			t.Errorf("%s destroyed with reasons %q", s.Name, d.Reasons)
		}
	}
}

func TestApplyGolden(t *testing.T) {
	r := mustRule(t)
	m := time.Minute

	type tcase struct {
		name    string
		snaps   func(h *history)
		policy  Policy
		protect map[uint64]string
		now     time.Time
	}
	tests := []tcase{
		{
			name: "no_rules",
			snaps: func(h *history) {
				h.series("zsync_", 5*hour, 0, hour)
				h.add("manual_1", 30*m, "repl")
				h.add("zsync_held", 20*m, "held")
			},
		},
		{
			// zrepl's documented example. Anchored at the youngest zsync_
			// (11:50 UTC): keep=all for [10:00, 11:50], then the 2h
			// buckets [08:00, 10:00) and [06:00, 08:00), then the 3h
			// bucket [03:00, 06:00), each keeping its oldest.
			name: "grid_docs_example",
			snaps: func(h *history) {
				h.series("zsync_", 10*hour+10*m, 10*m, 30*m)
				h.add("manual_upgrade", 5*m)
			},
			policy: Policy{Rules: []Rule{r(NewGrid("1x1h(keep=all) | 2x2h | 1x3h", "^zsync_"))}},
		},
		{
			name:   "grid_keep_two_oldest",
			snaps:  func(h *history) { h.series("zsync_", 3*hour, 0, 10*m) },
			policy: Policy{Rules: []Rule{r(NewGrid("2x1h(keep=2)", "^zsync_"))}},
		},
		{
			// Without a regex the grid covers every snapshot, whatever
			// its name.
			name: "grid_without_regex",
			snaps: func(h *history) {
				h.series("zsync_", 26*hour, 2*hour, 2*hour)
				h.add("manual_a", 90*m)
				h.add("other", 70*m)
				h.add("manual_b", 10*m)
			},
			policy: Policy{Rules: []Rule{r(NewGrid("1x1h(keep=all) | 2x12h", ""))}},
		},
		{
			// Snapshotting stopped ten days ago: the grid is anchored at
			// the youngest snapshot, so it still keeps the last ones.
			name:   "grid_after_outage",
			snaps:  func(h *history) { h.series("zsync_", 13*day, 10*day, 3*hour) },
			policy: Policy{Rules: []Rule{r(NewGrid("1x1h(keep=all) | 6x3h | 3x1d", "^zsync_"))}},
		},
		{
			name: "grid_future_snapshot",
			snaps: func(h *history) {
				h.series("zsync_", 4*hour, 0, 30*m)
				h.add("zsync_from_the_future", -2*hour)
			},
			policy: Policy{Rules: []Rule{r(NewGrid("1x1h(keep=all) | 3x1h", "^zsync_"))}},
		},
		{
			// createtxg, not creation time, says which are the last: the
			// clock jumped back before the last two snapshots.
			name: "last_n",
			snaps: func(h *history) {
				h.series("zsync_", 6*hour, 3*hour, hour)
				h.add("manual_a", 150*m)
				h.add("zsync_clock_back_1", 5*hour)
				h.add("zsync_clock_back_2", 4*hour+30*m)
				h.add("other_prefix", 10*m)
			},
			policy: Policy{Rules: []Rule{r(NewLastN(3, "^zsync_"))}},
		},
		{
			name: "last_n_without_regex",
			snaps: func(h *history) {
				h.series("zsync_", 4*hour, 2*hour, hour)
				h.add("manual_a", 90*m)
				h.add("manual_b", 30*m)
			},
			policy: Policy{Rules: []Rule{r(NewLastN(2, ""))}},
		},
		{
			name: "regex",
			snaps: func(h *history) {
				h.series("zsync_", 3*hour, hour, hour)
				h.add("manual_a", 30*m)
				h.add("xmanual_b", 20*m)
			},
			policy: Policy{Rules: []Rule{r(NewRegex("^manual_", false))}},
		},
		{
			name: "regex_negate",
			snaps: func(h *history) {
				h.series("zsync_", 3*hour, hour, hour)
				h.add("manual_a", 30*m, "repl")
				h.add("manual_b", 20*m)
				h.add("before_upgrade", 10*m)
			},
			policy: Policy{Rules: []Rule{r(NewRegex("^manual_", true))}},
		},
		{
			// not_replicated has no scope of its own: alone it destroys
			// nothing, replicated or not.
			name: "not_replicated_alone",
			snaps: func(h *history) {
				h.add("zsync_a", 3*hour, "repl")
				h.add("zsync_b", 2*hour, "repl")
				h.add("zsync_c", hour)
			},
			policy: Policy{Rules: []Rule{NewNotReplicated()}},
		},
		{
			name: "not_replicated_with_last_n",
			snaps: func(h *history) {
				h.add("zsync_a", 4*hour, "repl")
				h.add("zsync_b", 3*hour, "repl")
				h.add("zsync_c", 2*hour)
				h.add("zsync_d", hour)
				h.add("manual_e", 30*m, "repl")
			},
			policy: Policy{Rules: []Rule{NewNotReplicated(), r(NewLastN(1, "^zsync_"))}},
		},
		{
			// zsync's own snapshots under a grid, last_n and
			// not_replicated; the others are out of scope.
			name:  "combined",
			snaps: combinedHistory,
			policy: Policy{Rules: []Rule{
				r(NewGrid("1x1h(keep=all) | 24x1h | 30x1d", "^zsync_")),
				NewNotReplicated(),
				r(NewLastN(3, "^zsync_")),
			}},
			protect: map[uint64]string{1001: "cursor of target b without a bookmark"},
		},
		{
			// The same plus regex "^manual_" negate: manual_ snapshots
			// come into scope and go once replicated, but the rule keeps
			// every other name, zsync_ ones included (union of keeps, as
			// in zrepl).
			name:  "combined_with_negated_regex",
			snaps: combinedHistory,
			policy: Policy{Rules: []Rule{
				r(NewGrid("1x1h(keep=all) | 24x1h | 30x1d", "^zsync_")),
				NewNotReplicated(),
				r(NewLastN(3, "^zsync_")),
				r(NewRegex("^manual_", true)),
			}},
		},
		{
			name: "held_and_protected",
			snaps: func(h *history) {
				h.add("a", 5*hour)
				h.add("b", 4*hour, "held")
				h.add("c", 3*hour)
				h.add("d", 2*hour, "held")
				h.add("e", hour)
			},
			policy:  Policy{Rules: []Rule{r(NewLastN(1, ""))}},
			protect: map[uint64]string{1002: "target x needs it", 1003: "also protected"},
		},
		{
			// An invalid rule keeps everything; Validate reports it.
			name:   "invalid_rules",
			snaps:  func(h *history) { h.series("zsync_", 3*hour, 0, hour) },
			policy: Policy{Rules: []Rule{LastN{Count: 0}, Grid{}, RegexRule{}, r(NewLastN(1, ""))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			h := &history{now: now}
			tt.snaps(h)
			ds := Apply(h.snaps, tt.policy, tt.protect, now)
			checkInvariants(t, h.snaps, tt.policy, tt.protect, now, ds)
			golden(t, "apply/"+tt.name, render(tt.policy, tt.protect, now, ds))
		})
	}
}

func combinedHistory(h *history) {
	h.series("zsync_", 3*day, 52*hour, 4*hour)
	h.add("manual_old", 50*hour)
	h.series("zsync_", 48*hour, 0, 4*hour)
	h.add("manual_new", 20*time.Minute)
	h.add("before_upgrade", 10*time.Minute)
	// Replicated: everything up to the oldest cursor.
	h.snaps = MarkReplicated(h.snaps, []uint64{190, 170})
	h.snaps[3].Held = true
}

func keptNames(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Snapshot.Name)
		}
	}
	return out
}

// An outage of snapshotting does not make the grid destroy more as time
// passes: with no new snapshot, later runs keep exactly the same set.
func TestGridAnchoredAtYoungest(t *testing.T) {
	h := &history{now: testNow}
	h.series("zsync_", 20*day, 0, 15*time.Minute)
	g, err := NewGrid("1x1h(keep=all) | 24x1h | 7x1d", "^zsync_")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Rules: []Rule{g}}
	first := Apply(h.snaps, p, nil, testNow)
	want := keptNames(first)
	// The youngest is on the hour: 1x1h(keep=all) holds it and the hour
	// before (5), then 24 hours, then the 11 hours of 31 May (UTC) before
	// those (bucket 0 of 7x1d) and the 7 whole days before.
	if len(want) != 5+24+1+7 {
		t.Fatalf("kept %d snapshots, want 37: %v", len(want), want)
	}
	// Destroy what the first run destroyed, then let a year pass.
	var left []Snapshot
	for _, d := range first {
		if d.Keep {
			left = append(left, d.Snapshot)
		}
	}
	for _, later := range []time.Duration{time.Hour, 3 * day, 365 * day} {
		got := keptNames(Apply(left, p, nil, testNow.Add(later)))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%v later the grid keeps %v, want %v", later, got, want)
		}
	}
}

// The input order does not matter and the input is not modified.
func TestApplyOrderAndPurity(t *testing.T) {
	h := &history{now: testNow}
	h.series("zsync_", 2*day, 0, time.Hour)
	orig := append([]Snapshot(nil), h.snaps...)
	rev := append([]Snapshot(nil), h.snaps...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	g, _ := NewGrid("1x1h(keep=all) | 6x2h | 1x1d", "")
	p := Policy{Rules: []Rule{g, LastN{Count: 2}}}
	a := render(p, nil, testNow, Apply(h.snaps, p, nil, testNow))
	b := render(p, nil, testNow, Apply(rev, p, nil, testNow))
	if string(a) != string(b) {
		t.Errorf("decisions depend on input order:\n%s\n%s", a, b)
	}
	for i := range orig {
		if orig[i] != h.snaps[i] {
			t.Fatalf("Apply modified its input at %d", i)
		}
	}
	// Pointer rules behave like values.
	gp := g.(Grid)
	pp := Policy{Rules: []Rule{&gp, &LastN{Count: 2}}}
	if c := render(p, nil, testNow, Apply(h.snaps, pp, nil, testNow)); string(c) != string(a) {
		t.Errorf("pointer rules decide differently:\n%s\n%s", c, a)
	}
}

func TestMarkReplicated(t *testing.T) {
	snaps := []Snapshot{{Name: "a", CreateTXG: 10}, {Name: "b", CreateTXG: 20, Replicated: true}, {Name: "c", CreateTXG: 30}}
	tests := []struct {
		cursors []uint64
		want    string // replicated names
	}{
		{nil, ""},
		{[]uint64{}, ""},
		{[]uint64{20}, "a,b"},
		{[]uint64{30, 10}, "a"},
		{[]uint64{5}, ""},
		{[]uint64{99, 30}, "a,b,c"},
		{[]uint64{25}, "a,b"},
	}
	for _, tt := range tests {
		got := MarkReplicated(snaps, tt.cursors)
		var names []string
		for _, s := range got {
			if s.Replicated {
				names = append(names, s.Name)
			}
		}
		if strings.Join(names, ",") != tt.want {
			t.Errorf("MarkReplicated(%v) replicated %v, want %s", tt.cursors, names, tt.want)
		}
	}
	if !snaps[1].Replicated || snaps[0].Replicated {
		t.Error("MarkReplicated modified its input")
	}
}

func TestConstructorErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"grid", second(NewGrid("1x1h(keep=0)", "^zsync_")), `"1x1h(keep=0)"`},
		{"grid regex", second(NewGrid("1x1h", "^zsync_(")), `regex "^zsync_("`},
		{"last_n count", second(NewLastN(0, "")), "last_n 0: count must be > 0"},
		{"last_n negative", second(NewLastN(-3, "")), "last_n -3"},
		{"last_n regex", second(NewLastN(3, "[")), `regex "["`},
		{"regex empty", second(NewRegex("", false)), `regex ""`},
		{"regex bad", second(NewRegex("a)", true)), `regex "a)"`},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, tt.err, tt.want)
		}
	}
	for _, ok := range []Rule{
		must(NewGrid("1x1h", "")), must(NewLastN(1, "")), must(NewRegex("x", true)), NewNotReplicated(),
	} {
		if err := (Policy{Rules: []Rule{ok}}).Validate(); err != nil {
			t.Errorf("Validate(%s): %v", ok, err)
		}
	}
}

func second(_ Rule, err error) error { return err }

func must(r Rule, err error) Rule {
	if err != nil {
		panic(err)
	}
	return r
}

func TestValidate(t *testing.T) {
	p := Policy{Rules: []Rule{
		LastN{Count: 1},
		LastN{Count: 0, Regex: regexp.MustCompile("^z")},
		Grid{Intervals: []Interval{{1, day, 1}, {1, hour, 1}}},
		RegexRule{},
		nil,
		(*Grid)(nil),
	}}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate accepted invalid rules")
	}
	for _, want := range []string{
		`rule 2: last_n 0 regex "^z": count must be > 0`,
		`rule 3: grid "1x1d | 1x1h"`, "shorter",
		"rule 4: regex <nil>: missing regex",
		"rule 5: nil rule",
		"rule 6: nil grid rule",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "rule 1:") {
		t.Errorf("Validate rejected a valid rule: %v", err)
	}
}

func TestRuleStrings(t *testing.T) {
	tests := []struct {
		r    Rule
		want string
	}{
		{must(NewGrid("1x1h(keep=all)|24x1h", "^zsync_")), `grid "1x1h(keep=all) | 24x1h" regex "^zsync_"`},
		{must(NewLastN(3, "")), "last_n 3"},
		{must(NewRegex("^manual_", true)), `regex "^manual_" negate`},
		{NewNotReplicated(), "not_replicated"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
