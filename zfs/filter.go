package zfs

import (
	"fmt"
	"sort"
	"strings"
)

// Filter selects datasets with zrepl-style patterns: "tank/home<" matches
// tank/home and everything below it, "tank/home" matches exactly that
// dataset, and a leading '!' turns either into an exclusion. The most
// specific pattern that covers a dataset decides (the longest path; on the
// same path an exact pattern beats a subtree one); a dataset no pattern
// covers is not selected. Build it with ParseFilter; the zero Filter
// matches nothing.
type Filter struct {
	rules []filterRule
}

type filterRule struct {
	path    string
	subtree bool
	exclude bool
}

func (r filterRule) String() string {
	s := r.path
	if r.subtree {
		s += "<"
	}
	if r.exclude {
		s = "!" + s
	}
	return s
}

// ParseFilter parses patterns. Every path must be a valid dataset name; the
// same path and kind given twice (with the same or the opposite sign) is an
// error.
func ParseFilter(patterns []string) (Filter, error) {
	var f Filter
	seen := map[string]string{}
	for _, p := range patterns {
		r := filterRule{path: strings.TrimSpace(p)}
		if strings.HasPrefix(r.path, "!") {
			r.exclude = true
			r.path = r.path[1:]
		}
		if strings.HasSuffix(r.path, "<") {
			r.subtree = true
			r.path = r.path[:len(r.path)-1]
		}
		if err := ValidateDataset(r.path); err != nil {
			return Filter{}, fmt.Errorf("dataset pattern %q: %w", p, err)
		}
		key := r.path
		if r.subtree {
			key += "<"
		}
		if prev, ok := seen[key]; ok {
			if prev == p {
				return Filter{}, fmt.Errorf("dataset pattern %q given twice", p)
			}
			return Filter{}, fmt.Errorf("dataset patterns %q and %q conflict", prev, p)
		}
		seen[key] = p
		f.rules = append(f.rules, r)
	}
	return f, nil
}

// Match reports whether dataset is selected.
func (f Filter) Match(dataset string) bool {
	best := -1
	for i, r := range f.rules {
		if !(r.path == dataset || (r.subtree && IsDescendant(dataset, r.path))) {
			continue
		}
		if best < 0 || moreSpecific(r, f.rules[best]) {
			best = i
		}
	}
	return best >= 0 && !f.rules[best].exclude
}

func moreSpecific(a, b filterRule) bool {
	if len(a.path) != len(b.path) {
		return len(a.path) > len(b.path)
	}
	return !a.subtree && b.subtree
}

// Roots returns the minimal sorted list of datasets whose recursive listing
// shows every dataset the filter can select: the paths of the include
// patterns, without those below another one.
func (f Filter) Roots() []string {
	var paths []string
	for _, r := range f.rules {
		if !r.exclude {
			paths = append(paths, r.path)
		}
	}
	sort.Strings(paths)
	var roots []string
	for _, p := range paths {
		covered := false
		for _, q := range roots {
			if IsDescendant(p, q) {
				covered = true
				break
			}
		}
		if !covered {
			roots = append(roots, p)
		}
	}
	return roots
}

// Patterns returns the patterns in their normalised form, in input order.
func (f Filter) Patterns() []string {
	out := make([]string, len(f.rules))
	for i, r := range f.rules {
		out[i] = r.String()
	}
	return out
}
