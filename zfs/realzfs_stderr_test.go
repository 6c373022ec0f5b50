//go:build realzfs

package zfs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// TestStderrFixtures runs every case of stderrCases on the real OpenZFS:
// the error must wrap the case's sentinel (and no other), and zfs's raw
// stderr, normalised, must equal the committed fixture of the running
// version (testdata/stderr/X.Y/NAME.txt). With ZSYNC_RECORD_FIXTURES=1 the
// fixtures are written instead of compared.
func TestStderrFixtures(t *testing.T) {
	ver := zfsMinorVersion(t)
	record := os.Getenv("ZSYNC_RECORD_FIXTURES") == "1"
	t.Logf("OpenZFS %s; record=%v", ver, record)
	for _, tc := range stderrCases {
		t.Run(tc.name, func(t *testing.T) {
			pool := zfstest.NewPool(t, 64)
			env := caseEnv{}
			if tc.setup != nil {
				env = tc.setup(t, pool)
			}
			rec := &stderrRecorder{inner: zfs.ExecRunner{}}
			opts := []zfs.Option{zfs.WithRunner(rec)}
			if env.asUser {
				opts = append(opts, zfs.WithBinary(unprivilegedZfs(t)))
			}
			c := zfs.New(opts...)
			err := tc.call(ctx(t), c, pool, env)
			if err == nil {
				t.Fatalf("%s: no error", tc.name)
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.want)
			}
			for _, s := range allSentinels {
				if s != tc.want && errors.Is(err, s) {
					t.Errorf("err also matches %v", s)
				}
			}
			got := normalizeStderr(rec.first(), pool)
			if got == "" {
				t.Fatalf("no failing zfs invocation recorded")
			}
			path := fixturePath(ver, tc.name)
			if record {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("recorded %s:\n%s", path, got)
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no fixture for OpenZFS %s (record with ZSYNC_RECORD_FIXTURES=1): %v\nstderr:\n%s", ver, err, got)
			}
			if string(want) != got {
				t.Errorf("stderr differs from %s:\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

var reZfsVersion = regexp.MustCompile(`(?m)^zfs-(\d+)\.(\d+)\.`)

// zfsMinorVersion returns "X.Y" of the userland zfs.
func zfsMinorVersion(t *testing.T) string {
	t.Helper()
	m := reZfsVersion.FindStringSubmatch(zfstest.Version(t))
	if m == nil {
		t.Fatalf("cannot parse zfs version %q", zfstest.Version(t))
	}
	return m[1] + "." + m[2]
}

// unprivilegedZfs returns a script that runs zfs as nobody.
func unprivilegedZfs(t *testing.T) string {
	t.Helper()
	zfsPath, _, err := zfstest.Exec(t, "sh", "-c", "command -v zfs")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "zfs-as-nobody")
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups %s \"$@\"\n", strings.TrimSpace(zfsPath))
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// stderrRecorder is a Runner that keeps the stderr of the first failing
// invocation, whole (the *Error keeps a bounded copy, and batched verbs
// split it by line).
type stderrRecorder struct {
	inner zfs.Runner
	mu    sync.Mutex
	err   string
	seen  bool
}

func (r *stderrRecorder) note(res zfs.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen && res.ExitCode != 0 {
		r.seen, r.err = true, string(res.Stderr)
	}
}

func (r *stderrRecorder) first() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *stderrRecorder) Run(ctx context.Context, c zfs.Cmd) (zfs.Result, error) {
	res, err := r.inner.Run(ctx, c)
	r.note(res)
	return res, err
}

func (r *stderrRecorder) Start(ctx context.Context, c zfs.Cmd) (zfs.Process, error) {
	p, err := r.inner.Start(ctx, c)
	if err != nil {
		return nil, err
	}
	return recordedProcess{Process: p, r: r}, nil
}

type recordedProcess struct {
	zfs.Process
	r *stderrRecorder
}

func (p recordedProcess) Wait() (zfs.Result, error) {
	res, err := p.Process.Wait()
	p.r.note(res)
	return res, err
}
