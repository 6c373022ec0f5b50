package zfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// CLI is the zfs command line as a value: binary paths, the Runner that
// executes argv slices, the environment (always LC_ALL=C so messages can be
// parsed) and an optional trace hook. A CLI is safe for concurrent use when
// its Runner is. Build it with New.
type CLI struct {
	zfs    string
	zpool  string
	runner Runner
	env    []string
	trace  func(argv []string, d time.Duration, err error)
}

// Option configures a CLI.
type Option func(*CLI)

// New returns a CLI running "zfs" and "zpool" from PATH through an
// ExecRunner, unless options say otherwise.
func New(opts ...Option) *CLI {
	c := &CLI{zfs: "zfs", zpool: "zpool", runner: ExecRunner{}}
	for _, o := range opts {
		o(c)
	}
	c.env = append(c.env, "LC_ALL=C")
	return c
}

// WithBinary sets the path of the zfs binary.
func WithBinary(path string) Option { return func(c *CLI) { c.zfs = path } }

// WithZpoolBinary sets the path of the zpool binary.
func WithZpoolBinary(path string) Option { return func(c *CLI) { c.zpool = path } }

// WithRunner sets the Runner (a FakeRunner in tests).
func WithRunner(r Runner) Option { return func(c *CLI) { c.runner = r } }

// WithEnv adds KEY=VALUE entries to the environment of every invocation.
// LC_ALL is always forced to C.
func WithEnv(kv ...string) Option {
	return func(c *CLI) {
		for _, e := range kv {
			if !strings.HasPrefix(e, "LC_ALL=") {
				c.env = append(c.env, e)
			}
		}
	}
}

// WithTrace sets a hook called after every invocation with its argv, its
// duration and its error (nil on success); streams report when they end.
// The caller logs it at debug level.
func WithTrace(f func(argv []string, d time.Duration, err error)) Option {
	return func(c *CLI) { c.trace = f }
}

// Runner returns the CLI's runner.
func (c *CLI) Runner() Runner { return c.runner }

// argv returns the full argv of a zfs invocation.
func (c *CLI) argv(args ...string) []string {
	return append([]string{c.zfs}, args...)
}

func (c *CLI) traceCall(argv []string, start time.Time, err error) {
	if c.trace != nil {
		c.trace(argv, time.Since(start), err)
	}
}

// exec runs argv to completion and returns its result. A non-zero exit
// status becomes a *Error; the result is returned in every case, so callers
// may still parse stdout and stderr.
func (c *CLI) exec(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	start := time.Now()
	res, err := c.runner.Run(ctx, Cmd{Argv: argv, Env: c.env, Stdin: stdin})
	if err != nil {
		err = &Error{Args: argv, Stderr: boundStderr(string(res.Stderr), maxErrStderr), ExitCode: res.ExitCode, Err: err}
	} else if res.ExitCode != 0 {
		err = &Error{Args: argv, Stderr: boundStderr(string(res.Stderr), maxErrStderr), ExitCode: res.ExitCode}
	}
	c.traceCall(argv, start, err)
	return res, err
}

// run runs `zfs args...` and returns its stdout.
func (c *CLI) run(ctx context.Context, args ...string) ([]byte, error) {
	res, err := c.exec(ctx, c.argv(args...), nil)
	return res.Stdout, err
}

// Version returns the output of `zfs version` (userland and kernel module
// versions), for logs.
func (c *CLI) Version(ctx context.Context) (string, error) {
	out, err := c.run(ctx, "version")
	if err != nil {
		return "", fmt.Errorf("zfs version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// propArgs returns "k=v" strings in key order, checking names and values.
func propArgs(props map[string]string) ([]string, error) {
	keys := make([]string, 0, len(props))
	for k := range props {
		if err := validatePropName(k); err != nil {
			return nil, err
		}
		if strings.IndexByte(props[k], 0) >= 0 {
			return nil, fmt.Errorf("zfs: value of property %q contains a NUL byte", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + props[k]
	}
	return out, nil
}

// optionArgs returns "-o k=v" pairs in key order.
func optionArgs(flag string, props map[string]string) ([]string, error) {
	kvs, err := propArgs(props)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, 2*len(kvs))
	for _, kv := range kvs {
		out = append(out, flag, kv)
	}
	return out, nil
}

// ErrInvalidProperty is wrapped by errors about malformed property names.
var ErrInvalidProperty = errors.New("invalid zfs property name")

// validatePropName accepts native and user property names (including
// "userquota@user" style ones); it rejects anything that could be taken as
// an option, split a list or break parsing.
func validatePropName(p string) error {
	if p == "" || len(p) > 256 || p[0] == '-' {
		return fmt.Errorf("%w: %q", ErrInvalidProperty, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == 0x7f || c == ',' || c == '=' {
			return fmt.Errorf("%w: %q", ErrInvalidProperty, p)
		}
	}
	return nil
}

// ValidatePropertyName checks a native or user property name as every
// verb of this package does before it reaches zfs; errors wrap
// ErrInvalidProperty.
func ValidatePropertyName(p string) error { return validatePropName(p) }

// validateNames runs check on every name and fails on an empty list.
func validateNames(what string, names []string, check func(string) error) error {
	if len(names) == 0 {
		return fmt.Errorf("zfs: no %s given", what)
	}
	for _, n := range names {
		if err := check(n); err != nil {
			return err
		}
	}
	return nil
}

// validateAnyName accepts a dataset, snapshot or bookmark name.
func validateAnyName(name string) error {
	if strings.ContainsAny(name, "@#") {
		return ValidateVersion(name)
	}
	return ValidateDataset(name)
}
