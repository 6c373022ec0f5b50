// Package state owns what zsync keeps on the local disk between runs: the
// per-job lock files, run reports and the Prometheus textfile. Nothing here is
// needed for correctness: continuity lives in ZFS (holds, bookmarks, resume
// tokens), so deleting the state directory loses no data and breaks no
// incremental replication.
package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// ErrLocked means another process holds the lock: another run of the same job
// is in progress. cmd maps it to exit code 75 (EX_TEMPFAIL).
var ErrLocked = errors.New("another zsync run holds the lock")

// LockedError wraps ErrLocked with the lock file and the name of the job.
type LockedError struct {
	Name string
	Path string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s: %q is running in another zsync process (lock %s); try later or pass --wait", ErrLocked, e.Name, e.Path)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is an exclusive flock(2) on a per-job lock file. The kernel drops the
// lock when the process dies, so a crash never leaves a lock behind that needs
// manual cleanup; the file itself stays and is reused.
type Lock struct {
	fl   *flock.Flock
	name string
}

// LockPath returns the lock file of the job called name below dir. Names are
// job names (letters, digits and "_-.:") or one-off keys; anything else is
// replaced so the name stays one path component.
func LockPath(dir, name string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.', r == ':':
			return r
		}
		return '_'
	}, name)
	if safe == "" || safe == "." || safe == ".." {
		safe = "_" + safe
	}
	return filepath.Join(dir, "locks", safe+".lock")
}

// Acquire takes the lock of the job called name below dir. Without wait it
// returns a *LockedError at once when another process holds the lock; with wait
// it polls until the lock is free or ctx ends. The caller must Release it.
func Acquire(ctx context.Context, dir, name string, wait bool) (*Lock, error) {
	path := LockPath(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create lock directory (state_dir %s): %w", dir, err)
	}
	fl := flock.New(path)
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return &Lock{fl: fl, name: name}, nil
		}
		if !wait {
			return nil, &LockedError{Name: name, Path: path}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Name returns the name the lock was taken for.
func (l *Lock) Name() string { return l.name }

// Release drops the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	return l.fl.Unlock()
}
