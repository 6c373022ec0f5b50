//go:build realzfs

package cmd

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestAdoptSeededReplicas: replicas seeded by hand with `zfs send -R` (the
// usual way over from another tool, or a first copy carried on a disk) are
// adopted by the first push at a constant number of calls. As root that is
// a channel program making the level's cursors and one hold call placing
// its last-received holds, not a bookmark and a hold per dataset. The push
// after it is an ordinary incremental.
func TestAdoptSeededReplicas(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b", "data/c", "data/c/d", "data/c/e"}
	const levels = 3
	snapshotTree(t, src, datasets, 2)
	e := &pushEnv{src: src, dst: dst}
	zfstest.MustCreate(t, dst+"/backup/"+src)
	recv := exec.Command("zfs", "recv", "-u", "-x", "mountpoint", e.target("data"))
	recv.Stdin = bytes.NewReader(zfstest.Send(t, "-R", src+"/data@s2"))
	if out, err := recv.CombinedOutput(); err != nil {
		t.Fatalf("seed: zfs recv: %v: %s", err, out)
	}
	cfg := treePushConfig(t, src, dst)
	count := countZfsCalls(t)
	var code int
	calls := count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") })
	if code != 0 {
		t.Fatalf("push onto the seeded replicas: exit %d", code)
	}
	t.Logf("adopting %d seeded replicas: %d zfs calls (%s)\n%s", len(datasets), len(calls), byVerb(calls), strings.Join(calls, "\n"))
	n := map[string]int{}
	for _, c := range calls {
		if f := strings.Fields(c); len(f) > 0 {
			n[f[0]]++
		}
	}
	if n["send"] > 0 || n["recv"] > 0 || n["receive"] > 0 {
		t.Errorf("the replicas were up to date, yet %d sends and %d receives ran", n["send"], n["recv"]+n["receive"])
	}
	if n["bookmark"] > 0 {
		t.Errorf("%d cursors made one by one, as root (want them in one channel program per level)", n["bookmark"])
	}
	if n["program"] < 1 || n["program"] > levels {
		t.Errorf("%d channel programs, want 1 to %d (one per level of the tree)", n["program"], levels)
	}
	if n["hold"] < 1 || n["hold"] > levels {
		t.Errorf("%d hold calls, want 1 to %d (one per level of the tree)", n["hold"], levels)
	}
	e.checkInvariants(t, datasets...)

	// nothing to adopt any more: a push with nothing new makes neither
	n = map[string]int{}
	for _, c := range count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") }) {
		if f := strings.Fields(c); len(f) > 0 {
			n[f[0]]++
		}
	}
	if code != 0 || n["program"]+n["bookmark"]+n["hold"]+n["release"]+n["destroy"] > 0 {
		t.Errorf("the push after the adoption: exit %d, calls %v (want 0 and no program, bookmark, hold, release or destroy)", code, n)
	}

	for _, ds := range datasets {
		zfstest.MustWriteFile(t, src+"/"+ds, "g", 16)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s3")
	calls = count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") })
	if code != 0 {
		t.Fatalf("push of s3: exit %d", code)
	}
	sends := 0
	for _, c := range calls {
		if f := strings.Fields(c); len(f) > 0 && f[0] == "send" {
			sends++
			if !strings.Contains(" "+c+" ", " -i ") && !strings.Contains(" "+c+" ", " -I ") {
				t.Errorf("not an incremental after the adoption: zfs %s", c)
			}
		}
	}
	if sends != len(datasets) {
		t.Errorf("%d sends for s3, want %d", sends, len(datasets))
	}
	e.checkInvariants(t, datasets...)
	for _, ds := range datasets {
		if got, want := zfstest.GUID(t, e.target(ds)+"@s3"), zfstest.GUID(t, src+"/"+ds+"@s3"); got != want {
			t.Errorf("%s@s3: guid %s on the target, %s on the source", ds, got, want)
		}
	}
}

// treePushConfig is a push job of <src>/data and its descendants into
// <dst>/backup.
func treePushConfig(t *testing.T, src, dst string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf("\n[[job]]\nname = \"push\"\ntype = \"push\"\ndatasets = [\"%s/data<\"]\nroot = \"%s/backup\"\n", src, dst))
}

// snapshotTree creates datasets (below pool, "data" first) with a file
// each, and n recursive snapshots s1..sn of pool/data.
func snapshotTree(t *testing.T, pool string, datasets []string, n int) {
	t.Helper()
	for _, ds := range datasets {
		zfstest.MustCreate(t, pool+"/"+ds)
		zfstest.MustWriteFile(t, pool+"/"+ds, "f", 32)
	}
	for i := 1; i <= n; i++ {
		zfstest.Zfs(t, "snapshot", "-r", fmt.Sprintf("%s/data@s%d", pool, i))
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
// dataset costs, as root, at most 3 zfs invocations per dataset (send,
// receive, the old cursor's destroy) plus 7 per level of the tree (the
// level's step holds, one listing per side to verify and reconcile, one
// channel program making the cursors, the new last-received holds, the
// release of the step holds and of the old last-received holds) plus a
// constant; no size estimate without a progress display, no cursor made
// by itself, no hold or release per dataset, and no holds query after the
// step. The run that finds everything up to date costs a constant.
func TestPushCallsPerDataset(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b", "data/c", "data/c/d"}
	for _, ds := range datasets {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 64)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s1")
	cfg := treePushConfig(t, src, dst)
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
	// per dataset: send, receive, old cursor destroyed; per level of the
	// tree (3): the step holds, one listing per side, (as root) one
	// channel program making the new cursors, the new last-received holds,
	// the release of the step holds and of the old last-received holds;
	// and the run's constant (7: each side's datasets and snapshots, the
	// target id, the holds, and on the target the lookup by name of the
	// replicas the first push verified next to the listing of the
	// placeholders it created, which later runs look up too)
	const levels = 3
	if limit := 3*len(datasets) + 7*levels + 7; len(calls) > limit {
		t.Errorf("one new snapshot on %d datasets took %d zfs calls, want at most %d (%s)", len(datasets), len(calls), limit, byVerb(calls))
	}
	n := map[string]int{}
	for _, c := range calls {
		if f := strings.Fields(c); len(f) > 0 {
			n[f[0]]++
		}
	}
	if n["hold"] > 2*levels || n["release"] > 2*levels {
		t.Errorf("%d hold and %d release calls, want at most %d each (one per level for each kind of hold)", n["hold"], n["release"], 2*levels)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "send ") && strings.Contains(" "+c+" ", " -n ") {
			t.Errorf("a size estimate without a progress display: zfs %s", c)
		}
		if f := strings.Fields(c); len(f) > 0 && f[0] == "bookmark" {
			t.Errorf("a cursor made by itself, as root: zfs %s", c)
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

// snapshotListings are the zfs list invocations that list snapshots.
func snapshotListings(calls []string) []string {
	var out []string
	for _, c := range calls {
		f := strings.Fields(c)
		if len(f) == 0 || f[0] != "list" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "-t" && strings.Contains(f[i+1], "snapshot") {
				out = append(out, c)
			}
		}
	}
	return out
}

// A run with nothing to do does not list snapshots that did not change
// since an earlier run listed them (issue 13; datasets that never had a
// snapshot, such as placeholders, are listed: cheap, and an unset value
// proves nothing): on OpenZFS 2.2+ it reads
// snapshots_changed of each dataset and reuses the listing kept in the
// state directory; on 2.1, which lacks the property, it lists the sources,
// does not ask for the property again, and does not list a replica whose
// source did not change (its newest snapshot is looked up by name).
// Whatever changes between runs (a new
// snapshot, a renamed or destroyed one, a hold released by hand, the cache
// deleted) is seen.
func TestNoOpRunReusesSnapshotListings(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b"}
	snapshotTree(t, src, datasets, 4)
	cfg := treePushConfig(t, src, dst)
	e := &pushEnv{src: src, dst: dst}
	count := countZfsCalls(t)
	push := func(what string) []string {
		t.Helper()
		var code int
		calls := count(func() { code, _, _ = zsyncRun(t, "--config", cfg, "push") })
		if code != 0 {
			t.Fatalf("%s: exit %d", what, code)
		}
		t.Logf("%s: %d zfs calls (%s)", what, len(calls), byVerb(calls))
		e.checkInvariants(t, datasets...)
		for _, ds := range datasets {
			ss := snapshotsOf(t, src+"/"+ds)
			newest := ss[len(ss)-1]
			if got, want := zfstest.GUID(t, e.target(ds)+"@"+newest), zfstest.GUID(t, src+"/"+ds+"@"+newest); got != want {
				t.Errorf("%s: %s@%s has guid %s, the source's %s", what, e.target(ds), newest, got, want)
			}
		}
		return calls
	}
	push("initial push")
	// The values the first run read changed with its receives; a listing is
	// kept once it was taken more than settleTime after its value was first
	// seen, so two more runs a few seconds apart warm the cache.
	time.Sleep(3 * time.Second)
	push("first run with nothing to do")
	time.Sleep(3 * time.Second)
	push("second run with nothing to do")
	calls := push("third run with nothing to do")
	listings := snapshotListings(calls)
	v := zfstest.Version(t)
	if strings.Contains(v, "zfs-2.1") {
		// no snapshots_changed, and the property is not tried again: the
		// sources are listed, the replicas of quiet sources are not (their
		// newest snapshots are looked up by name instead)
		for _, c := range calls {
			if strings.Contains(c, "snapshots_changed") {
				t.Errorf("OpenZFS 2.1: the property was tried again: zfs %s", c)
			}
		}
		for _, c := range listings {
			for _, ds := range datasets {
				if slices.Contains(strings.Fields(c), e.target(ds)) {
					t.Errorf("OpenZFS 2.1: a run with nothing to do listed the snapshots of %s: zfs %s", e.target(ds), c)
				}
			}
		}
	} else {
		// only datasets that never had a snapshot (snapshots_changed
		// unset: the placeholders above the replicas) are listed again
		for _, c := range listings {
			for _, ds := range datasets {
				for _, name := range []string{src + "/" + ds, e.target(ds)} {
					if slices.Contains(strings.Fields(c), name) {
						t.Errorf("a run with nothing to do listed the snapshots of %s: zfs %s", name, c)
					}
				}
			}
		}
	}

	// a new snapshot on one dataset: that dataset is listed (and sent)
	zfstest.MustWriteFile(t, src+"/data/a", "g", 16)
	zfstest.MustSnapshot(t, src+"/data/a@s5")
	calls = push("a new snapshot on data/a")
	unchanged := src + "/data/b" // 2.2+: its snapshots_changed did not change
	if strings.Contains(v, "zfs-2.1") {
		unchanged = e.target("data/b") // 2.1: its source is quiet
	}
	for _, c := range snapshotListings(calls) {
		if slices.Contains(strings.Fields(c), unchanged) {
			t.Errorf("the unchanged %s was listed: zfs %s", unchanged, c)
		}
	}
	// a snapshot renamed and one destroyed on the source, between runs
	zfstest.Zfs(t, "rename", src+"/data/b@s2", src+"/data/b@s2-renamed")
	zfstest.Zfs(t, "destroy", src+"/data@s1")
	zfstest.MustWriteFile(t, src+"/data/b", "h", 16)
	zfstest.MustSnapshot(t, src+"/data/b@s6", src+"/data@s6")
	time.Sleep(3 * time.Second)
	push("after a rename and a destroy on the source")
	push("nothing to do again")
	time.Sleep(3 * time.Second)
	push("nothing to do, listings settled")
	// zsync's last-received hold released by hand on a warm cache: the
	// run sees it gone (holds never come from the cache) and puts it back
	tgt := e.target("data/b")
	var held string
	for _, s := range snapshotsOf(t, tgt) {
		for _, h := range strings.Fields(zfstest.Zfs(t, "holds", "-H", tgt+"@"+s)) {
			if strings.HasPrefix(h, "zsync_last_") {
				zfstest.Zfs(t, "release", h, tgt+"@"+s)
				held = h
			}
		}
	}
	if held == "" {
		t.Fatalf("no last-received hold on %s", tgt)
	}
	push("after the last-received hold was released by hand") // checkInvariants: the hold is back
	// the cache deleted: a plain full run
	dir := filepath.Join(filepath.Dir(cfg), "state", "listings")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	push("after the cache was deleted")
}

// A one-off push into a job's replica between the job's runs moves the
// replica and the relationship's cursor on. The job's listing cache
// predates that; its next runs must see it (on OpenZFS 2.1 the cursor is no
// longer where the kept listing of the replica ends) and go on from the
// one-off's snapshot, even after the source destroyed it: never move the
// cursor back and then call the replica diverged.
func TestOneOffPushBetweenCachedRuns(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a"}
	snapshotTree(t, src, datasets, 3)
	cfg := treePushConfig(t, src, dst)
	e := &pushEnv{src: src, dst: dst}
	push := func(what string) {
		t.Helper()
		if code, _, errOut := zsyncRun(t, "--config", cfg, "push"); code != 0 {
			t.Fatalf("%s: exit %d\n%s", what, code, errOut)
		}
		e.checkInvariants(t, datasets...)
	}
	push("initial push")
	time.Sleep(3 * time.Second)
	push("first run with nothing to do")
	time.Sleep(3 * time.Second)
	push("second run with nothing to do (the cache is warm)")

	zfstest.MustWriteFile(t, src+"/data/a", "g", 16)
	zfstest.MustSnapshot(t, src+"/data/a@tmp")
	if code, _, errOut := zsyncRun(t, "push", src+"/data/a", e.target("data/a")); code != 0 {
		t.Fatalf("one-off push into the job's replica: exit %d\n%s", code, errOut)
	}
	zfstest.Zfs(t, "destroy", src+"/data/a@tmp")
	push("the job after the one-off, @tmp destroyed on the source") // checkInvariants: the cursor and hold stay at @tmp
	zfstest.MustWriteFile(t, src+"/data/a", "h", 16)
	zfstest.MustSnapshot(t, src+"/data/a@s7")
	push("a new snapshot after that")
	if got, want := zfstest.GUID(t, e.target("data/a")+"@s7"), zfstest.GUID(t, src+"/data/a@s7"); got != want {
		t.Errorf("the replica's s7 has guid %s, the source's %s", got, want)
	}
}

// The every-15-minutes run: each run receives a new snapshot into every
// replica. Such a run neither lists a replica's snapshots after its
// receive (it looks the new snapshot and the replica's prevsnap up by name)
// nor, in the next run, before it (the finish's knowledge is kept and
// checked by name): the replicas' snapshots are listed only when something
// else changed them. A snapshot made on a replica by hand between runs is
// seen at once: that replica is listed, and the run refuses to send into it
// (it diverged) while the others go on.
func TestConsecutiveRunsCheckReplicasByName(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b"}
	snapshotTree(t, src, datasets, 2)
	cfg := treePushConfig(t, src, dst)
	e := &pushEnv{src: src, dst: dst}
	count := countZfsCalls(t)
	newSnapshot := func(name string) {
		t.Helper()
		for _, ds := range datasets {
			zfstest.MustWriteFile(t, src+"/"+ds, "f", 16)
		}
		zfstest.Zfs(t, "snapshot", "-r", src+"/data@"+name)
	}
	replicaListings := func(calls []string) []string {
		var out []string
		for _, c := range snapshotListings(calls) {
			for _, f := range strings.Fields(c) {
				if strings.HasPrefix(f, dst+"/") {
					out = append(out, c)
					break
				}
			}
		}
		return out
	}
	push := func(what string, wantCode int) []string {
		t.Helper()
		var code int
		var errOut string
		calls := count(func() { code, _, errOut = zsyncRun(t, "--config", cfg, "push") })
		t.Logf("%s: exit %d, %d zfs calls (%s)", what, code, len(calls), byVerb(calls))
		if code != wantCode {
			t.Fatalf("%s: exit %d, want %d\n%s", what, code, wantCode, errOut)
		}
		return calls
	}
	push("initial push", 0)
	newSnapshot("s3")
	push("first run with a new snapshot", 0)
	e.checkInvariants(t, datasets...)
	for i, name := range []string{"s4", "s5"} {
		newSnapshot(name)
		calls := push("run with a new snapshot "+name, 0)
		e.checkInvariants(t, datasets...)
		if l := replicaListings(calls); len(l) > 0 {
			t.Errorf("run %d after the first listed the replicas' snapshots:\n%s", i+1, strings.Join(l, "\n"))
		}
		looked := false
		for _, c := range calls {
			looked = looked || strings.HasPrefix(c, "get ") && strings.Contains(c, "prevsnap")
		}
		if !looked {
			t.Errorf("run %d after the first looked nothing up by prevsnap", i+1)
		}
		for _, ds := range datasets {
			if got, want := zfstest.GUID(t, e.target(ds)+"@"+name), zfstest.GUID(t, src+"/"+ds+"@"+name); got != want {
				t.Errorf("%s@%s: guid %s, the source's %s", e.target(ds), name, got, want)
			}
		}
	}

	// a snapshot made by hand on data/a's replica: seen, listed, refused
	foreign := e.target("data/a") + "@by-hand"
	zfstest.Zfs(t, "snapshot", foreign)
	newSnapshot("s6")
	calls := push("after a snapshot made by hand on a replica", 3) // a replication conflict
	listed := strings.Join(replicaListings(calls), "\n")
	if !strings.Contains(listed, e.target("data/a")) {
		t.Errorf("the replica with a snapshot made by hand was not listed; listings:\n%s", listed)
	}
	if !zfstest.Exists(t, foreign) {
		t.Errorf("%s is gone", foreign)
	}
	for _, ds := range []string{"data", "data/b"} {
		if got, want := zfstest.GUID(t, e.target(ds)+"@s6"), zfstest.GUID(t, src+"/"+ds+"@s6"); got != want {
			t.Errorf("%s@s6: guid %s, the source's %s", e.target(ds), got, want)
		}
	}
}
