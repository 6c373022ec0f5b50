//go:build realzfs

package cmd

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// verifyRun runs zsync verify --json and decodes its report.
func verifyRun(t *testing.T, cfg string, args ...string) (int, verifyJSON) {
	t.Helper()
	code, out, errOut := zsyncRun(t, append([]string{"--config", cfg, "verify", "--json"}, args...)...)
	var v verifyJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("verify report: %v\n%s\n%s", err, out, tail(errOut, 2000))
	}
	return code, v
}

func verifiedDataset(t *testing.T, v verifyJSON, source string) datasetVerify {
	t.Helper()
	for _, j := range v.Jobs {
		for _, d := range j.Datasets {
			if d.Source == source {
				return d
			}
		}
	}
	t.Fatalf("verify reports no %s: %+v", source, v)
	return datasetVerify{}
}

// verify on a fresh replica is OK, and --data finds every snapshot's
// contents the same on both sides; a snapshot removed on the target by
// hand is a WARNING that names it, a snapshot made on the target after the
// last receive is CRITICAL and named, and so is a cursor removed from the
// source. Verify changes nothing.
func TestVerifyReportsRemovedAndForeign(t *testing.T) {
	e := newPushEnv(t, "")
	for _, s := range []string{"", "s2", "s3"} {
		if s != "" {
			zfstest.MustWriteFile(t, e.src+"/data", "f-"+s, 64)
			zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@"+s)
		}
		if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
			t.Fatalf("push: exit %d\n%s", code, tail(errOut, 2000))
		}
	}
	code, v := verifyRun(t, e.cfg, "--data")
	if code != 0 || v.State != "OK" {
		t.Fatalf("verify --data of fresh replicas: exit %d, %s", code, v.Status)
	}
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		d := verifiedDataset(t, v, e.src+"/"+ds)
		if d.Data != "same" || d.SourceSum == "" || d.Common != 3 || d.NewestCommon != e.target(ds)+"@s3" || d.Cursors != 1 || d.LastHolds != 1 {
			t.Errorf("%s: %+v, want the contents the same, 3 in common up to @s3, one cursor and hold", ds, d)
		}
	}
	t.Logf("verify --data: %s", v.Status)

	before := snapshotsOf(t, e.target("data"))
	zfstest.Zfs(t, "destroy", e.target("data")+"@s2")
	code, v = verifyRun(t, e.cfg)
	if code != 1 || v.State != "WARNING" {
		t.Errorf("a snapshot removed on the target: exit %d, %s; want 1 (WARNING)", code, v.Status)
	}
	if d := verifiedDataset(t, v, e.src+"/data"); !slices.Equal(d.Missing, []string{e.src + "/data@s2"}) || d.State != "WARNING" {
		t.Errorf("removed on the target: missing %v, state %s; want [%s@s2] WARNING", d.Missing, d.State, e.src+"/data")
	}
	if !strings.Contains(v.Status, "missing on the target") {
		t.Errorf("the status line does not say what is missing: %s", v.Status)
	}

	zfstest.Zfs(t, "snapshot", e.target("data/child")+"@made-here")
	code, v = verifyRun(t, e.cfg)
	if code != 2 || v.State != "CRITICAL" {
		t.Errorf("a snapshot made on the target: exit %d, %s; want 2 (CRITICAL)", code, v.Status)
	}
	if d := verifiedDataset(t, v, e.src+"/data/child"); !slices.Equal(d.Foreign, []string{e.target("data/child") + "@made-here"}) || d.State != "CRITICAL" {
		t.Errorf("made on the target: only_on_target_newer %v, state %s", d.Foreign, d.State)
	}

	var cursor string
	for _, b := range bookmarksOf(t, e.src+"/data/with space") {
		if strings.HasPrefix(b, "zsync_cursor_") {
			cursor = b
		}
	}
	zfstest.Zfs(t, "destroy", e.src+"/data/with space#"+cursor)
	_, v = verifyRun(t, e.cfg)
	if d := verifiedDataset(t, v, e.src+"/data/with space"); d.Cursors != 0 || d.State != "WARNING" || len(d.Findings) != 1 || !strings.Contains(d.Findings[0], "cursor") {
		t.Errorf("a removed cursor: cursors %d, state %s, findings %v", d.Cursors, d.State, d.Findings)
	}

	// the human output: one line per dataset after the status line
	code, out, _ := zsyncRun(t, "--config", e.cfg, "verify")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 2 || !strings.HasPrefix(lines[0], "ZSYNC CRITICAL: ") || len(lines) != 4 {
		t.Errorf("verify's text output (exit %d):\n%s", code, out)
	}
	if got := snapshotsOf(t, e.target("data")); len(got) != len(before)-1 {
		t.Errorf("verify changed the target: %v", got)
	}
}

// Over the forced command the far side sums its own snapshot: only the
// sums cross the link, for a push (the replica's sum) and a pull (the
// source's), and they match.
func TestSSHVerifyData(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f1", 512)
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	cfg := writeConfig(t, replicationJob("up", "push", src+"/data<", dst+"/laptop", c.remote(""))+
		replicationJob("down", "pull", src+"/data<", dst+"/pulled", c.remote("")))
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "up"); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, tail(errOut, 2000))
	}
	if code, _, errOut := zsyncRun(t, "--config", cfg, "pull", "down"); code != 0 {
		t.Fatalf("pull: exit %d\n%s", code, tail(errOut, 2000))
	}
	code, v := verifyRun(t, cfg, "--data", "up", "down")
	if code != 0 {
		t.Fatalf("verify --data over ssh: exit %d, %s", code, v.Status)
	}
	for _, j := range v.Jobs {
		if len(j.Datasets) != 1 || j.Datasets[0].Data != "same" {
			t.Errorf("job %s: %+v, want one dataset with the same contents", j.Job, j.Datasets)
		}
	}
	// a sample of the blocks, the same on both sides
	code, out, errOut := zsyncRun(t, "--config", cfg, "verify", "--data", "--sample", "50", "up")
	if code != 0 || !strings.Contains(out, "50% of the blocks") {
		t.Errorf("verify --data --sample 50: exit %d\n%s\n%s", code, out, tail(errOut, 2000))
	}
}
