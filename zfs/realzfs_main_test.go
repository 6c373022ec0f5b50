//go:build realzfs

package zfs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// TestMain refuses to run (instead of skipping) without root and zfs, and
// prints the OpenZFS version for the CI log.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "realzfs tests must run as root")
		os.Exit(1)
	}
	out, err := exec.Command("zfs", "version").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "realzfs tests need zfs: %v: %s\n", err, out)
		os.Exit(1)
	}
	fmt.Printf("zfs version:\n%s", out)
	os.Exit(m.Run())
}

// newCLI returns a CLI that logs every invocation to the test log.
func newCLI(t *testing.T) *zfs.CLI {
	t.Helper()
	return zfs.New(zfs.WithTrace(func(argv []string, d time.Duration, err error) {
		if err != nil {
			t.Logf("zfs call %q (%v): %v", argv, d.Round(time.Millisecond), err)
		} else {
			t.Logf("zfs call %q (%v)", argv, d.Round(time.Millisecond))
		}
	}))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return c
}

// guid returns the guid of name as zfs get reports it.
func guid(t *testing.T, name string) uint64 {
	t.Helper()
	g, err := strconv.ParseUint(zfstest.GUID(t, name), 10, 64)
	if err != nil {
		t.Fatalf("guid of %s: %v", name, err)
	}
	return g
}

func TestRealVersion(t *testing.T) {
	v, err := newCLI(t).Version(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v, "zfs-") {
		t.Fatalf("zfs version = %q", v)
	}
	t.Logf("OpenZFS: %s", strings.ReplaceAll(v, "\n", " / "))
}
