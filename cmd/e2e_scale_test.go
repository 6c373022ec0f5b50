//go:build realzfs

package cmd

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// countZfsCalls puts a zfs on PATH that logs each invocation (its arguments,
// one line) and runs the real one, for the rest of the test. It returns a
// function that runs fn and returns the invocations made meanwhile, by zsync
// and by its local serve child alike.
func countZfsCalls(t *testing.T) func(fn func()) []string {
	t.Helper()
	real, err := exec.LookPath("zfs")
	if err != nil {
		t.Fatalf("zfs not on PATH: %v", err)
	}
	dir := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\n[ -n \"$ZSYNC_TEST_ZFS_CALLS\" ] && printf '%%s\\n' \"$*\" >> \"$ZSYNC_TEST_ZFS_CALLS\"\nexec %s \"$@\"\n", real)
	if err := os.WriteFile(filepath.Join(dir, "zfs"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	log := filepath.Join(dir, "calls")
	return func(fn func()) []string {
		t.Setenv("ZSYNC_TEST_ZFS_CALLS", log)
		fn()
		t.Setenv("ZSYNC_TEST_ZFS_CALLS", "")
		b, err := os.ReadFile(log)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		_ = os.Remove(log)
		if len(strings.TrimSpace(string(b))) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// byVerb counts invocations by their subcommand, for the test log.
func byVerb(calls []string) string {
	n := map[string]int{}
	for _, c := range calls {
		if f := strings.Fields(c); len(f) > 0 {
			n[f[0]]++
		}
	}
	var out []string
	for _, v := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%s %d", v, n[v]))
	}
	return strings.Join(out, ", ")
}

// The every-15-minutes run (issue 13): a push of one new snapshot on every
// dataset costs at most 10 zfs invocations per dataset plus a constant
// (step hold, send, receive, the target's verification listing, the
// last-received hold, the cursor, the step holds' release, the source's
// reconciliation listing, the old cursor's destroy, the old hold's release);
// no size estimate without a progress display, and no second listing of
// the target or holds query after the step. The run that finds everything
// up to date costs a constant.
func TestPushCallsPerDataset(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b", "data/c", "data/c/d"}
	for _, ds := range datasets {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 64)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s1")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "push"
type = "push"
datasets = ["%s/data<"]
root = "%s/backup"
`, src, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	count := countZfsCalls(t)

	for _, ds := range datasets {
		zfstest.MustWriteFile(t, src+"/"+ds, "g", 16)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s2")
	var code int
	calls := count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") })
	if code != 0 {
		t.Fatalf("push of one new snapshot: exit %d", code)
	}
	t.Logf("one new snapshot on %d datasets: %d zfs calls (%s)\n%s", len(datasets), len(calls), byVerb(calls), strings.Join(calls, "\n"))
	if limit := 10*len(datasets) + 6; len(calls) > limit {
		t.Errorf("one new snapshot on %d datasets took %d zfs calls, want at most %d (%s)", len(datasets), len(calls), limit, byVerb(calls))
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "send ") && strings.Contains(" "+c+" ", " -n ") {
			t.Errorf("a size estimate without a progress display: zfs %s", c)
		}
	}
	e := &pushEnv{src: src, dst: dst}
	e.checkInvariants(t, datasets...)
	for _, ds := range datasets {
		if got, want := zfstest.GUID(t, e.target(ds)+"@s2"), zfstest.GUID(t, src+"/"+ds+"@s2"); got != want {
			t.Errorf("%s@s2: guid %s on the target, %s on the source", ds, got, want)
		}
	}

	calls = count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") })
	if code != 0 {
		t.Fatalf("push with nothing to do: exit %d", code)
	}
	t.Logf("nothing to do on %d datasets: %d zfs calls (%s)", len(datasets), len(calls), byVerb(calls))
	if len(calls) > 6 {
		t.Errorf("a run with nothing to do took %d zfs calls, want at most 6 (%s)", len(calls), byVerb(calls))
	}
	e.checkInvariants(t, datasets...)
}
