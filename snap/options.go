package snap

import (
	"errors"
	"fmt"
	"time"
)

// DefaultHookTimeout is the hook timeout used when Options.HookTimeout is zero.
const DefaultHookTimeout = 30 * time.Second

// Options are the snapshot settings of one job ([job.snapshot] in the config)
// plus the run's dry-run flag.
type Options struct {
	// Prefix starts the name of every snapshot zsync takes for the job
	// ("zsync_"). It must pass [ValidatePrefix].
	Prefix string
	// Interval is how often a dataset gets a snapshot: one per slot of the
	// interval grid (multiples of Interval since the Unix epoch, UTC), taken
	// by the first run in a slot that finds the newest snapshot with Prefix
	// at least Interval minus [Slack] old ([NextDue]). Zero makes every run
	// due (at most one snapshot per second, since names have second
	// precision).
	Interval time.Duration
	// PreHook and PostHook are argv vectors run (without a shell) before and
	// after the snapshots of each due dataset; empty means no hook.
	PreHook  []string
	PostHook []string
	// HookTimeout bounds each hook run; zero means [DefaultHookTimeout].
	HookTimeout time.Duration
	// DryRun makes [Take] run no hooks and take no snapshots; its report
	// says what would have been done.
	DryRun bool
}

// ErrInvalidOptions is wrapped by the errors [Options.Validate] returns.
var ErrInvalidOptions = errors.New("invalid snapshot options")

// Validate checks the options: a valid prefix, no negative durations, and
// hooks that, when given, name a program.
func (o Options) Validate() error {
	if err := ValidatePrefix(o.Prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if o.Interval < 0 {
		return fmt.Errorf("%w: negative interval %s", ErrInvalidOptions, o.Interval)
	}
	if o.HookTimeout < 0 {
		return fmt.Errorf("%w: negative hook timeout %s", ErrInvalidOptions, o.HookTimeout)
	}
	if len(o.PreHook) > 0 && o.PreHook[0] == "" {
		return fmt.Errorf("%w: pre_hook has an empty program name", ErrInvalidOptions)
	}
	if len(o.PostHook) > 0 && o.PostHook[0] == "" {
		return fmt.Errorf("%w: post_hook has an empty program name", ErrInvalidOptions)
	}
	return nil
}

func (o Options) hookTimeout() time.Duration {
	if o.HookTimeout <= 0 {
		return DefaultHookTimeout
	}
	return o.HookTimeout
}
