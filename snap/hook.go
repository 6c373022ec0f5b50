package snap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Hook kinds, as passed to hooks in ZSYNC_HOOK.
const (
	HookPre  = "pre"
	HookPost = "post"
)

// Environment variables set for hooks, on top of zsync's own environment.
const (
	EnvDataset    = "ZSYNC_DATASET"     // the dataset, e.g. tank/db
	EnvSnapshot   = "ZSYNC_SNAPSHOT"    // the full snapshot name, e.g. tank/db@zsync_20261122T050000Z
	EnvHook       = "ZSYNC_HOOK"        // "pre" or "post"
	EnvSnapshotOK = "ZSYNC_SNAPSHOT_OK" // post-hooks only: "1" if the snapshot was taken, else "0"
)

// MaxHookOutput bounds the hook output kept in a [HookResult]: the last
// MaxHookOutput bytes of the combined stdout and stderr.
const MaxHookOutput = 16 << 10

// hookWaitDelay bounds how long a hook's output pipes are drained after the
// hook exited or was killed (a background child may keep them open).
const hookWaitDelay = 2 * time.Second

// ErrHookTimeout is wrapped by a [HookError] when the hook ran longer than
// the hook timeout and was killed.
var ErrHookTimeout = errors.New("hook timed out")

// HookResult records one run of a hook.
type HookResult struct {
	Kind     string   // HookPre or HookPost
	Argv     []string // the command run
	Duration time.Duration
	// Output is the combined stdout and stderr, at most the last
	// MaxHookOutput bytes; OutputTruncated is set when more was written.
	Output          string
	OutputTruncated bool
	// Err is nil when the hook exited with status 0, else a *HookError.
	Err error
}

// HookError says why a hook failed: it could not be started, exited with a
// non-zero status, or timed out (then it wraps ErrHookTimeout). It unwraps
// to the underlying error (for instance *exec.ExitError or exec.ErrNotFound).
type HookError struct {
	Kind     string
	Argv     []string
	ExitCode int // the exit status, or -1 when the hook did not exit normally
	Err      error
}

// Error returns e.g. `pre-hook ["/usr/local/bin/db-freeze" "--quick"]: exit status 1`.
func (e *HookError) Error() string {
	return fmt.Sprintf("%s-hook %q: %v", e.Kind, e.Argv, e.Err)
}

// Unwrap returns the underlying error.
func (e *HookError) Unwrap() error { return e.Err }

// hookEnv returns the environment of a hook: zsync's environment without any
// inherited ZSYNC_* hook variables, plus the given ones.
func hookEnv(vars ...string) []string {
	own := map[string]bool{EnvDataset: true, EnvSnapshot: true, EnvHook: true, EnvSnapshotOK: true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !own[k] {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

// runHook runs argv (no shell) with env, killing it (and, on Unix, its whole
// process group) when timeout passes or ctx is done.
func runHook(ctx context.Context, kind string, argv []string, env []string, timeout time.Duration) *HookResult {
	res := &HookResult{Kind: kind, Argv: append([]string(nil), argv...)}
	fail := func(code int, err error) *HookResult {
		res.Err = &HookError{Kind: kind, Argv: res.Argv, ExitCode: code, Err: err}
		return res
	}
	if len(argv) == 0 || argv[0] == "" {
		return fail(-1, errors.New("empty command"))
	}

	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &tailBuffer{limit: MaxHookOutput}
	cmd := exec.CommandContext(hctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = hookWaitDelay
	setProcessGroup(cmd)

	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output, res.OutputTruncated = out.String(), out.dropped > 0

	switch {
	case err == nil:
		return res
	case ctx.Err() == nil && errors.Is(hctx.Err(), context.DeadlineExceeded):
		return fail(-1, fmt.Errorf("%w after %s", ErrHookTimeout, timeout))
	case ctx.Err() != nil:
		return fail(-1, fmt.Errorf("interrupted: %w", ctx.Err()))
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return fail(exitErr.ExitCode(), err)
	}
	return fail(-1, err)
}

// tailBuffer keeps the last limit bytes written to it and counts the rest.
// Writes never fail, so a chatty hook is never killed by a broken pipe.
type tailBuffer struct {
	limit   int
	buf     []byte
	dropped int64
}

// Write appends p, discarding the oldest bytes beyond the limit.
func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return n, nil
}

// String returns the kept bytes.
func (b *tailBuffer) String() string { return string(b.buf) }
