package state

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAcquireExclusiveWithinProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, err := Acquire(ctx, dir, "home", false)
	if err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	_, err = Acquire(ctx, dir, "home", false)
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Name != "home" {
		t.Fatalf("second acquire: got %v, want LockedError for home", err)
	}
	// a different job is independent
	b, err := Acquire(ctx, dir, "other", false)
	if err != nil {
		t.Fatalf("other job: %v", err)
	}
	defer b.Release()
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	c, err := Acquire(ctx, dir, "home", false)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	c.Release()
	if err := c.Release(); err != nil {
		t.Fatalf("double release: %v", err)
	}
}

func TestAcquireWaitHonoursContext(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(context.Background(), dir, "j", false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Acquire(ctx, dir, "j", true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

func TestAcquireWaitGetsLockWhenFreed(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(context.Background(), dir, "j", false)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(200 * time.Millisecond); a.Release() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Acquire(ctx, dir, "j", true)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	b.Release()
}

func TestLockPathStaysInDir(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", "a/b", "", "..", "ok-name_1.2:3"} {
		p := LockPath("/x", name)
		if filepath.Dir(p) != "/x/locks" || !strings.HasSuffix(p, ".lock") {
			t.Errorf("LockPath(%q) = %q escapes /x/locks", name, p)
		}
	}
	if got := LockPath("/x", "ok-name_1.2:3"); got != "/x/locks/ok-name_1.2:3.lock" {
		t.Errorf("valid name changed: %s", got)
	}
}

// A lock held by a process that died is free again: no manual cleanup.
func TestLockFreedWhenHolderDies(t *testing.T) {
	if os.Getenv("ZSYNC_LOCK_HELPER") != "" {
		_, err := Acquire(context.Background(), os.Getenv("ZSYNC_LOCK_HELPER"), "crash", false)
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Hour)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockFreedWhenHolderDies$")
	cmd.Env = append(os.Environ(), "ZSYNC_LOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf[:6]) != "locked" {
		t.Fatalf("helper did not lock: %q %v", buf, err)
	}
	if _, err := Acquire(context.Background(), dir, "crash", false); !errors.Is(err, ErrLocked) {
		t.Fatalf("while helper lives: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(context.Background(), dir, "crash", false)
	if err != nil {
		t.Fatalf("after helper died: %v", err)
	}
	l.Release()
	if _, err := os.Stat(LockPath(dir, "crash")); err != nil {
		t.Fatalf("lock file: %v", err)
	}
}
