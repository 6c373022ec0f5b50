//go:build realzfs

package cmd

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// snap is idempotent within the interval, takes the next one after it, and
// handles dataset names and prefixes with spaces; both datasets of the pool
// are snapshotted by one atomic call (same createtxg).
func TestSnapInterval(t *testing.T) {
	pool := zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, pool+"/data")
	zfstest.MustCreate(t, pool+"/with space")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "s"
type = "snap"
datasets = ["%s/data", "%s/with space"]
  [job.snapshot]
  prefix = "auto snap_"
  interval = "15s"
`, pool, pool))
	if code, _, _ := zsyncRun(t, "--config", cfg, "snap"); code != 0 {
		t.Fatalf("first snap: exit %d", code)
	}
	a, b := snapshotsOf(t, pool+"/data"), snapshotsOf(t, pool+"/with space")
	if len(a) != 1 || len(b) != 1 || a[0] != b[0] || !strings.HasPrefix(a[0], "auto snap_") {
		t.Fatalf("after first snap: %v and %v, want one equal 'auto snap_' snapshot each", a, b)
	}
	if x, y := zfstest.Get(t, pool+"/data@"+a[0], "createtxg"), zfstest.Get(t, pool+"/with space@"+b[0], "createtxg"); x != y {
		t.Errorf("not atomic: createtxg %s vs %s", x, y)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "snap"); code != 0 {
		t.Fatalf("second snap: exit %d", code)
	}
	if n := len(snapshotsOf(t, pool+"/data")); n != 1 {
		t.Fatalf("snap within the interval created a snapshot: %d now", n)
	}
	time.Sleep(15500 * time.Millisecond)
	if code, _, _ := zsyncRun(t, "snap", "--config", cfg); code != 0 { // global flag after the subcommand
		t.Fatalf("third snap: exit %d", code)
	}
	a, b = snapshotsOf(t, pool+"/data"), snapshotsOf(t, pool+"/with space")
	if len(a) != 2 || len(b) != 2 || a[1] <= a[0] {
		t.Fatalf("after the interval: %v and %v, want two each, sorted", a, b)
	}
}

// A failing pre-hook for one dataset skips only that dataset: exit 3.
func TestSnapHookPartial(t *testing.T) {
	pool := zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, pool+"/a")
	zfstest.MustCreate(t, pool+"/b")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "s"
type = "snap"
datasets = ["%[1]s/a", "%[1]s/b"]
  [job.snapshot]
  interval = "1h"
  pre_hook = ["/bin/sh", "-c", "test \"$ZSYNC_DATASET\" != %[1]s/b"]
`, pool))
	code, _, _ := zsyncRun(t, "--config", cfg, "snap")
	if code != ExitPartial {
		t.Fatalf("exit %d, want %d", code, ExitPartial)
	}
	if n := len(snapshotsOf(t, pool+"/a")); n != 1 {
		t.Errorf("a has %d snapshots, want 1", n)
	}
	if n := len(snapshotsOf(t, pool+"/b")); n != 0 {
		t.Errorf("b has %d snapshots, want 0 (pre-hook failed)", n)
	}
}

// prune destroys exactly what --dry-run listed; a held snapshot survives and
// is reported; a snapshot outside the rules' regex survives.
func TestPruneGridMatchesDryRun(t *testing.T) {
	pool := zfstest.NewPool(t, 128)
	ds := pool + "/data"
	zfstest.MustCreate(t, ds)
	var names []string
	for i := 0; i < 7; i++ {
		n := fmt.Sprintf("zsync_%02d", i)
		zfstest.MustSnapshot(t, ds+"@"+n)
		names = append(names, n)
		time.Sleep(1100 * time.Millisecond)
	}
	zfstest.MustSnapshot(t, ds+"@manual keep")
	zfstest.Zfs(t, "hold", "mine", ds+"@zsync_00")
	defer zfstest.Exec(t, "zfs", "release", "mine", ds+"@zsync_00")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "p"
type = "snap"
datasets = ["%s"]
  [job.snapshot]
  interval = "1h"
  [job.prune]
  source = [ { grid = "1x2s(keep=all) | 1x3s", regex = "^zsync_" } ]
`, ds))
	code, out, _ := zsyncRun(t, "--config", cfg, "prune", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	var planned []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "destroy ") {
			f := strings.Fields(l)
			planned = append(planned, f[1][strings.IndexByte(f[1], '@')+1:])
		}
	}
	if len(planned) == 0 {
		t.Fatalf("dry run planned nothing:\n%s", out)
	}
	if after := snapshotsOf(t, ds); len(after) != 8 {
		t.Fatalf("dry run changed something: %v", after)
	}
	if !strings.Contains(out, "keep "+ds+"@zsync_00 (held") {
		t.Errorf("held snapshot not reported as kept because held:\n%s", out)
	}
	code, _, _ = zsyncRun(t, "--config", cfg, "prune")
	if code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	after := snapshotsOf(t, ds)
	var destroyed []string
	have := map[string]bool{}
	for _, s := range after {
		have[s] = true
	}
	for _, s := range append(names, "manual keep") {
		if !have[s] {
			destroyed = append(destroyed, s)
		}
	}
	sort.Strings(planned)
	sort.Strings(destroyed)
	if !equalStrings(planned, destroyed) {
		t.Errorf("destroyed %v, dry run listed %v", destroyed, planned)
	}
	if !have["zsync_00"] || !have["manual keep"] || !have["zsync_06"] {
		t.Errorf("held, out-of-regex or newest snapshot destroyed: left %v", after)
	}
}
