//go:build realzfs

package cmd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// datasetReport is the report of source dataset ds in the run's only job.
func datasetReport(t *testing.T, reps []state.RunReport, ds string) state.DatasetReport {
	t.Helper()
	if len(reps) != 1 {
		t.Fatalf("%d job reports, want 1", len(reps))
	}
	for _, d := range reps[0].Datasets {
		if d.Source == ds {
			return d
		}
	}
	t.Fatalf("no report of %s", ds)
	return state.DatasetReport{}
}

// checkFollowed: ds's replica was renamed from old and went on
// incrementally (no full step, fewer bytes than its 256 KiB file).
func checkFollowed(t *testing.T, d state.DatasetReport, old string) {
	t.Helper()
	if d.Status != "replicated" {
		t.Errorf("%s: status %s (%s), want replicated", d.Source, d.Status, d.Error)
	}
	if d.Renamed != old {
		t.Errorf("%s: renamed_from %q, want %q", d.Source, d.Renamed, old)
	}
	for _, s := range d.Steps {
		if strings.HasPrefix(s, "full ") {
			t.Errorf("%s: sent in full again: %v", d.Source, d.Steps)
		}
	}
	if d.Bytes >= 256<<10 {
		t.Errorf("%s: %d bytes sent, more than its data: not incremental", d.Source, d.Bytes)
	}
	t.Logf("%s: followed %s, steps %v, %d bytes", d.Source, old, d.Steps, d.Bytes)
}

func exists(t *testing.T, ds string) bool {
	t.Helper()
	_, _, err := zfstest.Exec(t, "zfs", "list", "-H", "-o", "name", ds)
	return err == nil
}

// Renaming a leaf dataset inside the job renames its replica on the next
// push, which goes on incrementally; the old replica name is gone, and the
// dataset has one cursor and one last-received hold, like every other.
// A dry run before says what it would rename and changes nothing.
func TestRenameLeafFollows(t *testing.T) {
	e := newPushEnv(t, "")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("first push: exit %d\n%s", code, tail(errOut, 2000))
	}
	zfstest.Zfs(t, "rename", e.src+"/data/child", e.src+"/data/child2")
	zfstest.MustWriteFile(t, e.src+"/data/child2", "f2", 32)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")

	code, out, errOut := zsyncRun(t, "--config", e.cfg, "push", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, tail(errOut, 2000))
	}
	if want := "would rename the replica " + e.target("data/child") + " to " + e.target("data/child2"); !strings.Contains(out, want) {
		t.Errorf("the dry run does not say %q:\n%s", want, out)
	}
	if strings.Contains(out, "would send full "+e.src+"/data/child2") {
		t.Errorf("the dry run would send the renamed dataset in full:\n%s", out)
	}
	if !exists(t, e.target("data/child")) || exists(t, e.target("data/child2")) {
		t.Fatalf("the dry run renamed something")
	}

	code, reps, errOut := pushJSON(t, e.cfg)
	if code != 0 {
		t.Fatalf("push after the rename: exit %d\n%s", code, tail(errOut, 3000))
	}
	checkFollowed(t, datasetReport(t, reps, e.src+"/data/child2"), e.target("data/child"))
	if exists(t, e.target("data/child")) {
		t.Errorf("the old replica %s is still there", e.target("data/child"))
	}
	if s := snapshotsOf(t, e.target("data/child2")); !equalStrings(s, []string{"first snap", "second"}) {
		t.Errorf("replica snapshots %v, want [first snap second]", s)
	}
	e.checkInvariants(t, "data", "data/child2", "data/with space")
	e.checkSame(t, "data/child2")

	// and the next run is an ordinary incremental one
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@third")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push after: exit %d\n%s", code, tail(errOut, 2000))
	}
	e.checkInvariants(t, "data", "data/child2", "data/with space")
}

// Renaming a dataset with children (here moving it below another parent)
// is one rename of the replica subtree; every dataset in it goes on
// incrementally with its own cursor and hold.
func TestRenameSubtreeFollows(t *testing.T) {
	e := newPushEnv(t, "")
	for _, ds := range []string{"data/sub", "data/sub/leaf", "data/sub/leaf/deep"} {
		zfstest.MustCreate(t, e.src+"/"+ds)
		zfstest.MustWriteFile(t, e.src+"/"+ds, "f1", 256)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@s1")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("first push: exit %d\n%s", code, tail(errOut, 2000))
	}
	zfstest.Zfs(t, "rename", e.src+"/data/sub", e.src+"/data/child/moved")
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@s2")
	code, reps, errOut := pushJSON(t, e.cfg)
	if code != 0 {
		t.Fatalf("push after the move: exit %d\n%s", code, tail(errOut, 3000))
	}
	checkFollowed(t, datasetReport(t, reps, e.src+"/data/child/moved"), e.target("data/sub"))
	for _, ds := range []string{"data/child/moved/leaf", "data/child/moved/leaf/deep"} {
		d := datasetReport(t, reps, e.src+"/"+ds)
		if d.Status != "replicated" || len(d.Steps) != 1 || strings.HasPrefix(d.Steps[0], "full ") {
			t.Errorf("%s: %s %v (%s), want one incremental step", ds, d.Status, d.Steps, d.Error)
		}
	}
	if exists(t, e.target("data/sub")) {
		t.Errorf("the old replica subtree %s is still there", e.target("data/sub"))
	}
	e.checkInvariants(t, "data", "data/child", "data/child/moved", "data/child/moved/leaf", "data/child/moved/leaf/deep")
	e.checkSame(t, "data/child/moved/leaf/deep")
}

// A new dataset under the old name of a renamed one is not a rename: the
// renamed dataset takes its replica along (renamed beside it, or moved
// deeper, below another parent), the new one is received in full at the
// old name; each has one cursor and one hold. The renames are followed
// before anything is planned: planned per level, the new dataset met the
// old replica before the moved one did.
func TestRenameNameReuse(t *testing.T) {
	for _, c := range []struct{ name, to string }{
		{"beside", "data/child2"},
		{"deeper", "data/with space/child"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newPushEnv(t, "")
			if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
				t.Fatalf("first push: exit %d\n%s", code, tail(errOut, 2000))
			}
			zfstest.Zfs(t, "rename", e.src+"/data/child", e.src+"/"+c.to)
			zfstest.MustCreate(t, e.src+"/data/child")
			zfstest.MustWriteFile(t, e.src+"/data/child", "new", 64)
			zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
			code, reps, errOut := pushJSON(t, e.cfg)
			if code != 0 {
				t.Fatalf("push after the rename and reuse: exit %d\n%s", code, tail(errOut, 3000))
			}
			checkFollowed(t, datasetReport(t, reps, e.src+"/"+c.to), e.target("data/child"))
			d := datasetReport(t, reps, e.src+"/data/child")
			if d.Status != "replicated" || d.Renamed != "" || len(d.Steps) != 1 || !strings.HasPrefix(d.Steps[0], "full ") {
				t.Errorf("the new dataset at the old name: %s %v renamed_from %q (%s), want one full step", d.Status, d.Steps, d.Renamed, d.Error)
			}
			if s := snapshotsOf(t, e.target("data/child")); !equalStrings(s, []string{"second"}) {
				t.Errorf("new replica snapshots %v, want [second]", s)
			}
			if s := snapshotsOf(t, e.target(c.to)); !equalStrings(s, []string{"first snap", "second"}) {
				t.Errorf("followed replica snapshots %v, want [first snap second]", s)
			}
			e.checkInvariants(t, "data", "data/child", c.to, "data/with space")
			e.checkSame(t, "data/child")
			e.checkSame(t, c.to)
		})
	}
}

// Over the forced command: the far side renames inside its receive root
// for a push, and the local side for a pull; under append_only the far
// side refuses, the dataset fails with a message that says why and what
// to do, and nothing is sent in full beside the old replica.
func TestSSHRenameFollows(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f1", 256)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	zfstest.MustCreate(t, dst+"/locked")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	l := newSSHClient(t, "locked", serveClient("locked", dst+"/locked", nil, "append_only = true\n"))
	cfg := writeConfig(t, replicationJob("up", "push", src+"/data<", dst+"/laptop", c.remote(""))+
		replicationJob("down", "pull", src+"/data<", dst+"/pulled", c.remote(""))+
		replicationJob("locked", "push", src+"/data<", dst+"/locked", l.remote("")))
	for _, j := range []string{"up", "down", "locked"} {
		verb := "push"
		if j == "down" {
			verb = "pull"
		}
		if code, _, errOut := zsyncRun(t, "--config", cfg, verb, j); code != 0 {
			t.Fatalf("%s %s: exit %d\n%s", verb, j, code, tail(errOut, 2000))
		}
	}
	zfstest.Zfs(t, "rename", src+"/data/child", src+"/data/renamed")
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@two")

	code, reps, errOut := pushJSON(t, cfg, "up")
	if code != 0 {
		t.Fatalf("push after the rename: exit %d\n%s", code, tail(errOut, 3000))
	}
	checkFollowed(t, datasetReport(t, reps, src+"/data/renamed"), dst+"/laptop/"+src+"/data/child")

	code, out, errOut := zsyncRun(t, "--config", cfg, "pull", "--json", "down")
	if code != 0 {
		t.Fatalf("pull after the rename: exit %d\n%s", code, tail(errOut, 3000))
	}
	reps = nil
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		t.Fatalf("pull report: %v\n%s", err, out)
	}
	checkFollowed(t, datasetReport(t, reps, src+"/data/renamed"), dst+"/pulled/"+src+"/data/child")

	code, reps, errOut = pushJSON(t, cfg, "locked")
	if code != 3 {
		t.Fatalf("push under append_only after the rename: exit %d, want 3\n%s", code, tail(errOut, 3000))
	}
	d := datasetReport(t, reps, src+"/data/renamed")
	if d.Status != "failed" || !strings.Contains(d.Error, "append_only") || !strings.Contains(d.Error, "by hand") {
		t.Errorf("under append_only: %s %q, want a failure naming append_only and the way out", d.Status, d.Error)
	}
	if exists(t, dst+"/locked/"+src+"/data/renamed") || !exists(t, dst+"/locked/"+src+"/data/child") {
		t.Errorf("under append_only the replica moved or a second one was received")
	}

	// one cursor per relationship on the source, each under the name of
	// the relationship it is now (the refused one's too: renaming its
	// replica by hand on the far side, as the message says, completes it)
	var cursors []string
	for _, b := range bookmarksOf(t, src+"/data/renamed") {
		if strings.HasPrefix(b, "zsync_cursor_") {
			cursors = append(cursors, b)
		}
	}
	if len(cursors) != 3 {
		t.Errorf("cursors on the renamed source %v, want 3 (one per job)", cursors)
	}
}
