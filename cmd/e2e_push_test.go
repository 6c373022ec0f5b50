//go:build realzfs

package cmd

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

type pushEnv struct {
	src, dst string // pools
	cfg      string
	root     string // where replicas land; "" = <dst>/backup
}

// newPushEnv makes two pools, a source tree <src>/data, <src>/data/child and
// <src>/data/with space (files + one snapshot), and a push job into
// <dst>/backup.
func newPushEnv(t *testing.T, extra string) *pushEnv {
	t.Helper()
	e := &pushEnv{src: zfstest.NewPool(t, 192), dst: zfstest.NewPool(t, 192)}
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		zfstest.MustCreate(t, e.src+"/"+ds)
		zfstest.MustWriteFile(t, e.src+"/"+ds, "f1", 256)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@first snap")
	e.cfg = writeConfig(t, fmt.Sprintf(`
[[job]]
name = "push"
type = "push"
datasets = ["%s/data<"]
root = "%s/backup"
%s
`, e.src, e.dst, extra))
	return e
}

func (e *pushEnv) target(ds string) string {
	root := e.root
	if root == "" {
		root = e.dst + "/backup"
	}
	return root + "/" + e.src + "/" + ds
}

// checkInvariantsAt is checkInvariants for replicas below another root.
func (e *pushEnv) checkInvariantsAt(t *testing.T, root string, datasets ...string) {
	t.Helper()
	c := *e
	c.root = root
	c.checkInvariants(t, datasets...)
}

// checkInvariants: after a successful run, per dataset exactly one cursor
// bookmark, exactly one last-received hold on the target's newest snapshot,
// no step holds.
func (e *pushEnv) checkInvariants(t *testing.T, datasets ...string) {
	t.Helper()
	for _, ds := range datasets {
		var cursors []string
		for _, b := range bookmarksOf(t, e.src+"/"+ds) {
			if strings.HasPrefix(b, "zsync_cursor_") {
				cursors = append(cursors, b)
			}
			if strings.HasPrefix(b, "zsync_tentative_") {
				t.Errorf("%s: leftover tentative cursor %s", ds, b)
			}
		}
		if len(cursors) != 1 {
			t.Errorf("%s: cursors %v, want exactly one", ds, cursors)
		}
		for _, h := range holdsOn(t, e.src+"/"+ds) {
			if strings.Contains(h, "zsync_step_") {
				t.Errorf("%s: leftover step hold %s", ds, h)
			}
		}
		tsnaps := snapshotsOf(t, e.target(ds))
		var last []string
		for _, h := range holdsOn(t, e.target(ds)) {
			if strings.Contains(h, "zsync_last_") {
				last = append(last, h)
			}
		}
		if len(last) != 1 || !strings.HasPrefix(last[0], tsnaps[len(tsnaps)-1]+" ") {
			t.Errorf("%s: last-received holds %v, want one on the newest target snapshot %s", ds, last, tsnaps[len(tsnaps)-1])
		}
		// the cursor points at the target's newest snapshot (same guid)
		if len(cursors) == 1 {
			cg := zfstest.GUID(t, e.src+"/"+ds+"#"+cursors[0])
			tg := zfstest.GUID(t, e.target(ds)+"@"+tsnaps[len(tsnaps)-1])
			if cg != tg {
				t.Errorf("%s: cursor guid %s != target newest guid %s", ds, cg, tg)
			}
		}
	}
}

func (e *pushEnv) checkSame(t *testing.T, ds string) {
	t.Helper()
	want := treeSum(t, zfstest.Mountpoint(t, e.src+"/"+ds))
	got := treeSum(t, mountReplica(t, e.target(ds)))
	unmount(t, e.target(ds))
	if got != want {
		t.Errorf("%s: replica checksum %s != source %s", ds, got, want)
	}
}

func TestPushInitialIncrementalAndCursor(t *testing.T) {
	e := newPushEnv(t, "")
	all := []string{"data", "data/child", "data/with space"}
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	for _, ds := range all {
		e.checkSame(t, ds)
	}
	e.checkInvariants(t, all...)
	if v := zfstest.Get(t, e.target("data"), "canmount"); v != "noauto" {
		t.Errorf("received canmount=%s, want noauto", v)
	}

	// incremental
	for _, ds := range all {
		zfstest.MustWriteFile(t, e.src+"/"+ds, "f2", 128)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("incremental push: exit %d", code)
	}
	for _, ds := range all {
		e.checkSame(t, ds)
		if got := snapshotsOf(t, e.target(ds)); !equalStrings(got, []string{"first snap", "second"}) {
			t.Errorf("%s: target snapshots %v", ds, got)
		}
	}
	e.checkInvariants(t, all...)

	// up to date: nothing to do, still exit 0
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("no-op push: exit %d", code)
	}

	// destroy the common snapshot on the source: the cursor bookmark is the
	// incremental base now
	for _, ds := range all {
		zfstest.Zfs(t, "destroy", e.src+"/"+ds+"@second")
	}
	zfstest.MustWriteFile(t, e.src+"/data", "f3", 64)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@third")
	code, _, errOut := zsyncRun(t, "--config", e.cfg, "push")
	if code != 0 {
		t.Fatalf("push from the cursor bookmark: exit %d", code)
	}
	if !strings.Contains(errOut, "#zsync_cursor_") {
		t.Errorf("the step did not start from the cursor bookmark:\n%s", errOut)
	}
	for _, ds := range all {
		e.checkSame(t, ds)
		if got := snapshotsOf(t, e.target(ds)); !equalStrings(got, []string{"first snap", "second", "third"}) {
			t.Errorf("%s: target snapshots %v", ds, got)
		}
	}
	e.checkInvariants(t, all...)
}

// A modified target makes that dataset fail with a diverged report naming the
// conflicting snapshots; the target is unchanged; the others replicate: exit 3.
func TestPushDivergedIsPartial(t *testing.T) {
	e := newPushEnv(t, "")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	zfstest.MustSnapshot(t, e.target("data/child")+"@local change")
	before := snapshotsOf(t, e.target("data/child"))
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		zfstest.MustWriteFile(t, e.src+"/"+ds, "f2", 64)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	code, _, errOut := zsyncRun(t, "--config", e.cfg, "push")
	if code != ExitPartial {
		t.Fatalf("exit %d, want 3", code)
	}
	if !strings.Contains(errOut, "local change") || !strings.Contains(errOut, "second") {
		t.Errorf("the diverged report does not name the conflicting snapshots:\n%s", errOut)
	}
	if after := snapshotsOf(t, e.target("data/child")); !equalStrings(before, after) {
		t.Errorf("diverged target changed: %v -> %v", before, after)
	}
	for _, ds := range []string{"data", "data/with space"} {
		if got := snapshotsOf(t, e.target(ds)); len(got) != 2 {
			t.Errorf("%s was not replicated: %v", ds, got)
		}
	}
}

// One source, two targets: each its own cursor; pruning for one never
// removes the other's base.
func TestTwoTargetsKeepTheirBases(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 192)
	zfstest.MustCreate(t, src+"/d")
	zfstest.MustWriteFile(t, src+"/d", "f", 64)
	zfstest.MustSnapshot(t, src+"/d@zsync_1")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "one"
type = "push"
datasets = ["%[1]s/d"]
root = "%[2]s/t1"
  [job.prune]
  source = [{ last_n = 1, regex = "^zsync_" }]
[[job]]
name = "two"
type = "push"
datasets = ["%[1]s/d"]
root = "%[2]s/t2"
`, src, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "one", "two"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	zfstest.MustWriteFile(t, src+"/d", "g", 64)
	zfstest.MustSnapshot(t, src+"/d@zsync_2")
	zfstest.MustWriteFile(t, src+"/d", "h", 64)
	zfstest.MustSnapshot(t, src+"/d@zsync_3")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "one"); code != 0 {
		t.Fatalf("push one: exit %d", code)
	}
	var cursors int
	for _, b := range bookmarksOf(t, src+"/d") {
		if strings.HasPrefix(b, "zsync_cursor_") {
			cursors++
		}
	}
	if cursors != 2 {
		t.Fatalf("%d cursors on the source, want one per target (2): %v", cursors, bookmarksOf(t, src+"/d"))
	}
	// job one prunes with last_n=1: zsync_1 (target two's base) must survive
	if code, _, _ := zsyncRun(t, "--config", cfg, "prune", "one"); code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	snaps := snapshotsOf(t, src+"/d")
	if !equalStrings(snaps, []string{"zsync_1", "zsync_3"}) {
		t.Errorf("after prune: %v, want zsync_1 (base of target two) and zsync_3", snaps)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "two"); code != 0 {
		t.Fatalf("push two after prune: exit %d", code)
	}
	if got := snapshotsOf(t, dst+"/t2/"+src+"/d"); len(got) < 2 || got[len(got)-1] != "zsync_3" {
		t.Errorf("target two: %v", got)
	}
}

// An encrypted source arrives raw: key not loaded on the target, the
// replica is its own encryption root.
func TestEncryptedArrivesRaw(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	key := zfstest.KeyFile(t, "correct horse battery")
	zfstest.MustCreate(t, src+"/secret", "encryption=on", "keyformat=passphrase", "keylocation=file://"+key)
	zfstest.MustWriteFile(t, src+"/secret", "f", 64)
	zfstest.MustSnapshot(t, src+"/secret@s1")
	if code, _, _ := zsyncRun(t, "push", src+"/secret", dst+"/copy"); code != 0 {
		t.Fatalf("one-off push: exit %d", code)
	}
	if ks := zfstest.Get(t, dst+"/copy", "keystatus"); ks != "unavailable" {
		t.Errorf("keystatus %s, want unavailable (raw receive)", ks)
	}
	if er := zfstest.Get(t, dst+"/copy", "encryptionroot"); er != dst+"/copy" {
		t.Errorf("encryptionroot %s, want %s", er, dst+"/copy")
	}
	// and it is really the data: load the key and compare
	zfstest.Zfs(t, "load-key", "-L", "file://"+key, dst+"/copy")
	want := treeSum(t, zfstest.Mountpoint(t, src+"/secret"))
	got := treeSum(t, mountReplica(t, dst+"/copy"))
	if got != want {
		t.Errorf("decrypted replica differs")
	}
}

// One-off pull (local source through a serve child), -r, names with spaces.
func TestOneOffPullRecursive(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/tree/with space")
	zfstest.MustWriteFile(t, src+"/tree/with space", "f", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/tree@a b")
	if code, _, _ := zsyncRun(t, "pull", "-r", src+"/tree", dst+"/restore/tree"); code != 0 {
		t.Fatalf("pull: exit %d", code)
	}
	got := treeSum(t, mountReplica(t, dst+"/restore/tree/with space"))
	if want := treeSum(t, filepath.Join(zfstest.Mountpoint(t, src+"/tree/with space"))); got != want {
		t.Errorf("pulled data differs")
	}
	if s := snapshotsOf(t, dst+"/restore/tree"); !equalStrings(s, []string{"a b"}) {
		t.Errorf("snapshots %v", s)
	}
}

// A pull job prunes the far (sending) side through serve; the snapshot its
// cursor points at survives.
func TestPullPrunesFarSideThroughServe(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/d")
	for i := 1; i <= 3; i++ {
		zfstest.MustWriteFile(t, src+"/d", fmt.Sprintf("f%d", i), 32)
		zfstest.MustSnapshot(t, fmt.Sprintf("%s/d@zsync_%d", src, i))
	}
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "pl"
type = "pull"
datasets = ["%s/d"]
root = "%s/pulled"
  [job.replication]
  initial = "all"
  [job.prune]
  source = [{ last_n = 1, regex = "^zsync_" }]
  target = [{ last_n = 2, regex = "^zsync_" }]
`, src, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull"); code != 0 {
		t.Fatalf("pull: exit %d", code)
	}
	zfstest.MustWriteFile(t, src+"/d", "f4", 32)
	zfstest.MustSnapshot(t, src+"/d@zsync_4") // not replicated yet
	if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	if got := snapshotsOf(t, src+"/d"); !equalStrings(got, []string{"zsync_3", "zsync_4"}) {
		t.Errorf("far side after prune: %v, want zsync_3 (cursor) and zsync_4 (newest)", got)
	}
	if got := snapshotsOf(t, dst+"/pulled/"+src+"/d"); !equalStrings(got, []string{"zsync_2", "zsync_3"}) {
		t.Errorf("local target after prune: %v, want the newest two", got)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull"); code != 0 {
		t.Fatalf("pull after prune: exit %d", code)
	}
	target := dst + "/pulled/" + src + "/d"
	if got := snapshotsOf(t, target); got[len(got)-1] != "zsync_4" {
		t.Errorf("incremental pull: target has %v", got)
	}
	if got, want := treeSum(t, mountReplica(t, target)), treeSum(t, zfstest.Mountpoint(t, src+"/d")); got != want {
		t.Errorf("pulled data differs")
	}
}
