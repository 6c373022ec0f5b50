package cmd

import (
	"fmt"
	"strings"

	"github.com/zsync-dev/zsync/prune"
	"github.com/zsync-dev/zsync/snap"
)

// ruleError is a bad prune rule: its index in the list, the text to point at
// and the message.
type ruleError struct {
	index int
	text  string
	msg   string
}

func (e *ruleError) Error() string { return fmt.Sprintf("rule %d: %s", e.index, e.msg) }

// buildPrunePolicy maps the config's prune rules onto prune.Policy. Each rule
// is exactly one of: grid (with optional regex), last_n (with optional
// regex), not_replicated, or a bare regex (with optional negate).
func buildPrunePolicy(rules []pruneRuleConfig) (prune.Policy, error) {
	var p prune.Policy
	for i, r := range rules {
		kinds := []string{}
		if r.Grid != "" {
			kinds = append(kinds, "grid")
		}
		if r.LastN != nil {
			kinds = append(kinds, "last_n")
		}
		if r.NotReplicated {
			kinds = append(kinds, "not_replicated")
		}
		regex := ""
		if r.Regex != nil {
			regex = *r.Regex
		}
		text := ruleText(r)
		var rule prune.Rule
		var err error
		switch {
		case len(kinds) > 1:
			return p, &ruleError{i, text, fmt.Sprintf("one rule per entry, got %s together in %s", strings.Join(kinds, " and "), text)}
		case len(kinds) == 0 && r.Regex == nil:
			return p, &ruleError{i, text, "unknown or empty rule: use grid, last_n, regex or not_replicated"}
		case r.Grid != "":
			rule, err = prune.NewGrid(r.Grid, regex)
		case r.LastN != nil:
			rule, err = prune.NewLastN(*r.LastN, regex)
		case r.NotReplicated:
			if r.Regex != nil || r.Negate {
				return p, &ruleError{i, text, "not_replicated takes no regex or negate"}
			}
			rule = prune.NewNotReplicated()
		default:
			rule, err = prune.NewRegex(regex, r.Negate)
		}
		if err == nil && r.Negate && (r.Grid != "" || r.LastN != nil) {
			err = fmt.Errorf("negate applies only to a bare regex rule")
		}
		if err != nil {
			return p, &ruleError{i, text, err.Error()}
		}
		p.Rules = append(p.Rules, rule)
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// ruleText is a short rendering of a rule used to find its line.
func ruleText(r pruneRuleConfig) string {
	switch {
	case r.Grid != "":
		return r.Grid
	case r.Regex != nil:
		return *r.Regex
	case r.LastN != nil:
		return "last_n"
	case r.NotReplicated:
		return "not_replicated"
	}
	return ""
}

func validatePrefix(p string) error { return snap.ValidatePrefix(p) }

// snapOptions maps a job's [job.snapshot] onto snap.Options.
func snapOptions(j *jobConfig, dryRun bool) snap.Options {
	s := j.Snapshot
	return snap.Options{
		Prefix:      s.Prefix,
		Interval:    s.Interval.Duration,
		PreHook:     s.PreHook,
		PostHook:    s.PostHook,
		HookTimeout: s.HookTimeout.Duration,
		DryRun:      dryRun,
	}
}
