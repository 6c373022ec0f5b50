package prune

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Rule is one retention rule of a Policy. The set of rules is closed: Grid,
// LastN, RegexRule and NotReplicated are the only implementations (values or
// pointers). Build them with NewGrid, NewLastN, NewRegex and NewNotReplicated,
// which validate their arguments, or as struct literals checked by
// Policy.Validate.
type Rule interface {
	// String describes the rule in the words of the configuration, e.g.
	// `last_n 3 regex "^zsync_"`.
	String() string

	// validate reports why the rule cannot be evaluated, if it cannot.
	validate() error
	// judge marks the snapshots the rule claims (scope) and keeps.
	judge(v *verdicts)
}

// Grid keeps snapshots along a retention grid: see the package
// documentation. Regex selects the snapshots it considers; nil means all.
type Grid struct {
	Intervals []Interval
	Regex     *regexp.Regexp
}

// LastN keeps the Count most recent (highest createtxg) snapshots whose name
// matches Regex; nil Regex means all snapshots.
type LastN struct {
	Count int
	Regex *regexp.Regexp
}

// RegexRule keeps the snapshots whose name matches Regex, or with Negate
// those whose name does not match. Regex is required.
type RegexRule struct {
	Regex  *regexp.Regexp
	Negate bool
}

// NotReplicated keeps the snapshots that have not reached every target yet
// (Snapshot.Replicated is false). It has no regex and never makes a snapshot
// a candidate for destruction by itself.
type NotReplicated struct{}

// NewGrid returns a Grid rule for a grid spec in zrepl's grammar (see
// ParseGrid) and an optional regex on snapshot names ("" = all snapshots).
// Errors quote the offending text.
func NewGrid(spec, regex string) (Rule, error) {
	ivs, err := ParseGrid(spec)
	if err != nil {
		return nil, err
	}
	re, err := compileOptional(regex)
	if err != nil {
		return nil, err
	}
	return Grid{Intervals: ivs, Regex: re}, nil
}

// NewLastN returns a LastN rule keeping count snapshots (count > 0) whose
// names match regex ("" = all snapshots).
func NewLastN(count int, regex string) (Rule, error) {
	if count <= 0 {
		return nil, fmt.Errorf("last_n %d: count must be > 0", count)
	}
	re, err := compileOptional(regex)
	if err != nil {
		return nil, err
	}
	return LastN{Count: count, Regex: re}, nil
}

// NewRegex returns a RegexRule keeping the snapshots whose name matches
// regex, or with negate those whose name does not. regex must not be empty.
func NewRegex(regex string, negate bool) (Rule, error) {
	if regex == "" {
		return nil, errors.New(`regex "": a regex rule needs a non-empty regex`)
	}
	re, err := compileOptional(regex)
	if err != nil {
		return nil, err
	}
	return RegexRule{Regex: re, Negate: negate}, nil
}

// NewNotReplicated returns the NotReplicated rule.
func NewNotReplicated() Rule { return NotReplicated{} }

func compileOptional(regex string) (*regexp.Regexp, error) {
	if regex == "" {
		return nil, nil
	}
	re, err := regexp.Compile(regex)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", regex, err)
	}
	return re, nil
}

// matches reports whether re matches name; a nil re matches everything.
func matches(re *regexp.Regexp, name string) bool {
	return re == nil || re.MatchString(name)
}

func regexSuffix(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	return fmt.Sprintf(" regex %q", re.String())
}

// String implements Rule.
func (g Grid) String() string {
	return fmt.Sprintf("grid %q%s", FormatGrid(g.Intervals), regexSuffix(g.Regex))
}

// String implements Rule.
func (l LastN) String() string {
	return fmt.Sprintf("last_n %d%s", l.Count, regexSuffix(l.Regex))
}

// String implements Rule.
func (r RegexRule) String() string {
	if r.Regex == nil {
		return "regex <nil>"
	}
	s := fmt.Sprintf("regex %q", r.Regex.String())
	if r.Negate {
		s += " negate"
	}
	return s
}

// String implements Rule.
func (NotReplicated) String() string { return "not_replicated" }

func (g Grid) validate() error { return checkIntervals(g.Intervals, nil) }

func (l LastN) validate() error {
	if l.Count <= 0 {
		return errors.New("count must be > 0")
	}
	return nil
}

func (r RegexRule) validate() error {
	if r.Regex == nil {
		return errors.New("missing regex")
	}
	return nil
}

func (NotReplicated) validate() error { return nil }

// verdicts accumulates what the rules of a policy say about a list of
// snapshots sorted by createtxg.
type verdicts struct {
	snaps []Snapshot
	now   time.Time
	scope []bool     // some rule's regex matches the name
	keep  [][]string // reasons rules gave for keeping
}

func (v *verdicts) keepWith(i int, reason string) { v.keep[i] = append(v.keep[i], reason) }

func (g Grid) judge(v *verdicts) {
	var idx []int
	for i, s := range v.snaps {
		if matches(g.Regex, s.Name) {
			v.scope[i] = true
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	// Anchor at the youngest matching snapshot, but never in the future:
	// snapshots newer than now are kept by Apply anyway, and a bogus
	// creation date must not age every other snapshot.
	anchor := v.snaps[idx[0]].Created
	for _, i := range idx {
		if v.snaps[i].Created.After(anchor) {
			anchor = v.snaps[i].Created
		}
	}
	if anchor.After(v.now) {
		anchor = v.now
	}
	ranges := layOut(g.Intervals, anchor)
	type member struct{ group, bucket, i int }
	var members []member
	for _, i := range idx {
		if g, b, ok := locate(ranges, v.snaps[i].Created); ok {
			members = append(members, member{g, b, i})
		}
	}
	// By bucket, oldest first; equal creation times by createtxg (v.snaps
	// order), so the choice is the same from one run to the next.
	sort.Slice(members, func(a, b int) bool {
		ma, mb := members[a], members[b]
		if ma.group != mb.group || ma.bucket != mb.bucket {
			return ma.group < mb.group || (ma.group == mb.group && ma.bucket < mb.bucket)
		}
		ca, cb := v.snaps[ma.i].Created, v.snaps[mb.i].Created
		if !ca.Equal(cb) {
			return ca.Before(cb)
		}
		return ma.i < mb.i
	})
	// Reasons are built by hand: on a large dataset pruned often, formatting
	// them is most of the grid's work.
	prefixes := make([]string, len(g.Intervals))
	for i, iv := range g.Intervals {
		prefixes[i] = "grid " + iv.String() + " bucket "
	}
	for first := 0; first < len(members); {
		m := members[first]
		end := first + 1
		for end < len(members) && members[end].group == m.group && members[end].bucket == m.bucket {
			end++
		}
		kept := members[first:end]
		if k := g.Intervals[m.group].Keep; k != KeepAll && len(kept) > k {
			kept = kept[:k]
		}
		for _, k := range kept {
			v.keepWith(k.i, prefixes[k.group]+strconv.Itoa(k.bucket)+
				" (age "+formatAge(v.now.Sub(v.snaps[k.i].Created))+")")
		}
		first = end
	}
}

func (l LastN) judge(v *verdicts) {
	kept := 0
	// v.snaps is sorted by createtxg ascending: walk it backwards.
	for i := len(v.snaps) - 1; i >= 0; i-- {
		if !matches(l.Regex, v.snaps[i].Name) {
			continue
		}
		v.scope[i] = true
		if kept < l.Count {
			kept++
			v.keepWith(i, fmt.Sprintf("last_n %d", l.Count))
		}
	}
}

func (r RegexRule) judge(v *verdicts) {
	for i, s := range v.snaps {
		m := r.Regex.MatchString(s.Name)
		if m {
			v.scope[i] = true
		}
		if m != r.Negate {
			v.keepWith(i, r.String())
		}
	}
}

func (NotReplicated) judge(v *verdicts) {
	for i, s := range v.snaps {
		if !s.Replicated {
			v.keepWith(i, "not_replicated")
		}
	}
}

// formatAge writes d compactly in days, hours, minutes and seconds, e.g.
// "3d2h15m"; zero is "0s" and negative durations get a leading "-".
func formatAge(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	out := make([]byte, 0, 24)
	mag := uint64(d)
	if d < 0 {
		out = append(out, '-')
		mag = -mag // the magnitude, right even for the minimum Duration
	}
	for _, u := range []struct {
		suffix byte
		size   uint64
	}{{'d', uint64(24 * time.Hour)}, {'h', uint64(time.Hour)}, {'m', uint64(time.Minute)}, {'s', uint64(time.Second)}} {
		if n := mag / u.size; n > 0 {
			out = strconv.AppendUint(out, n, 10)
			out = append(out, u.suffix)
			mag -= n * u.size
		}
	}
	if len(out) == 0 || out[len(out)-1] == '-' {
		out = append(out, "0s"...) // less than a second
	}
	return string(out)
}
