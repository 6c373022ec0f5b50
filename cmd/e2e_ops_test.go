//go:build realzfs

package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// --dry-run prints the plan with estimated sizes and changes nothing.
func TestPushDryRunChangesNothing(t *testing.T) {
	e := newPushEnv(t, "")
	code, out, _ := zsyncRun(t, "--config", e.cfg, "push", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	if !strings.Contains(out, "would send full "+e.src+"/data@first snap") || !strings.Contains(out, "estimated ") {
		t.Errorf("plan output lacks the steps or sizes:\n%s", out)
	}
	if zfstest.Exists(t, e.dst+"/backup") {
		t.Errorf("dry run created the target root")
	}
	if b := bookmarksOf(t, e.src+"/data"); len(b) != 0 {
		t.Errorf("dry run created bookmarks %v", b)
	}
	if h := holdsOn(t, e.src+"/data"); len(h) != 0 {
		t.Errorf("dry run created holds %v", h)
	}
}

// holds list shows what zsync owns; release-stale removes a stale cursor and
// a leaked step hold and keeps the live ones.
func TestHoldsListAndReleaseStale(t *testing.T) {
	e := newPushEnv(t, "")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	zfstest.MustWriteFile(t, e.src+"/data", "f2", 32)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	ds := e.src + "/data"
	var live string
	for _, b := range bookmarksOf(t, ds) {
		live = b
	}
	tid := live[len("zsync_cursor_T") : len("zsync_cursor_T")+16]
	old := fmt.Sprintf("zsync_cursor_T%s_G%016x", tid, mustGUID(t, ds+"@first snap"))
	zfstest.Zfs(t, "bookmark", ds+"@first snap", ds+"#"+old)
	zfstest.Zfs(t, "hold", "zsync_step_T"+tid, ds+"@first snap")
	code, out, _ := zsyncRun(t, "--config", e.cfg, "holds", "list")
	if code != 0 || !strings.Contains(out, old) || !strings.Contains(out, live) || !strings.Contains(out, "zsync_step_T"+tid) {
		t.Fatalf("holds list: exit %d, missing entries:\n%s", code, out)
	}
	code, out, _ = zsyncRun(t, "--config", e.cfg, "holds", "release-stale")
	if code != 0 {
		t.Fatalf("release-stale: exit %d", code)
	}
	b := bookmarksOf(t, ds)
	if len(b) != 1 || b[0] != live {
		t.Errorf("bookmarks after release-stale: %v, want only %s", b, live)
	}
	for _, h := range holdsOn(t, ds) {
		if strings.Contains(h, "zsync_step_") {
			t.Errorf("step hold survived: %s", h)
		}
	}
	e.checkInvariants(t, "data", "data/child", "data/with space")
}

func mustGUID(t *testing.T, name string) uint64 {
	t.Helper()
	var g uint64
	if _, err := fmt.Sscan(zfstest.GUID(t, name), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// status reports per dataset; check maps lag to Nagios codes.
func TestStatusAndCheck(t *testing.T) {
	e := newPushEnv(t, "  [job.check]\n  lag_warning = \"1h\"\n  lag_critical = \"2h\"\n  snapshot_age_warning = \"1h\"\n  snapshot_age_critical = \"2h\"\n")
	code, out, _ := zsyncRun(t, "--config", e.cfg, "check")
	if code != 2 || !strings.HasPrefix(out, "ZSYNC CRITICAL: push "+e.src+"/data") || !strings.Contains(out, "never replicated") {
		t.Errorf("check before any replication: exit %d %q, want 2 CRITICAL, never replicated", code, out)
	}
	if _, perf, _ := checkOutput(t, out); len(perf) != 6 || !strings.Contains(strings.Join(perf, " "), "'push:"+e.src+"/data lag'=U;3600;7200;0") {
		t.Errorf("check before any replication: perfdata %q, want lag U and snapshot_age for 3 datasets", perf)
	}
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	code, out, _ = zsyncRun(t, "--config", e.cfg, "check")
	if code != 0 || !strings.HasPrefix(out, "ZSYNC OK: 1 job(s), 3 dataset(s) checked | ") {
		t.Errorf("check after push: exit %d %q, want 0 OK", code, out)
	}
	if _, perf, _ := checkOutput(t, out); len(perf) != 6 || !regexp.MustCompile(`'push:`+regexp.QuoteMeta(e.src)+`/data lag'=[0-9]+s;3600;7200;0`).MatchString(strings.Join(perf, " ")) {
		t.Errorf("check after push: perfdata %q, want the lag of %s/data in seconds", perf, e.src)
	}
	code, out, _ = zsyncRun(t, "--config", e.cfg, "status", "--json")
	if code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	var st []jobStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v", err)
	}
	if len(st) != 1 || len(st[0].Datasets) != 3 || st[0].LastRun == nil || st[0].LastRun.Result != "ok" {
		t.Fatalf("status: %+v", st)
	}
	for _, d := range st[0].Datasets {
		if d.Cursors != 1 || d.LastHolds != 1 || d.StepHolds != 0 || d.Resumable || !strings.HasSuffix(d.LastSnapshot, "@first snap") {
			t.Errorf("status of %s: %+v", d.Source, d)
		}
	}
}

// on_diverged = "rotate" renames the diverged target aside (nothing is
// destroyed) and replicates fresh.
func TestRotateDivergedTarget(t *testing.T) {
	e := newPushEnv(t, "  [job.replication]\n  on_diverged = \"rotate\"\n")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	zfstest.MustSnapshot(t, e.target("data/child")+"@local")
	zfstest.MustWriteFile(t, e.src+"/data/child", "f2", 32)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	code, out, errOut := zsyncRun(t, "--config", e.cfg, "push", "--json")
	if code != 0 {
		t.Fatalf("push with rotate: exit %d", code)
	}
	if !strings.Contains(errOut, "renaming the target aside") || !strings.Contains(out, "zsync-rotated-") {
		t.Errorf("rotation not reported:\n%s\n%s", out, errOut)
	}
	list := zfstest.Zfs(t, "list", "-H", "-o", "name", "-r", e.dst+"/backup/"+e.src+"/data")
	var rotated string
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "zsync-rotated-") {
			rotated = l
		}
	}
	if rotated == "" {
		t.Fatalf("no rotated dataset:\n%s", list)
	}
	if s := snapshotsOf(t, rotated); !equalStrings(s, []string{"first snap", "local"}) {
		t.Errorf("rotated copy lost snapshots: %v", s)
	}
	if h := holdsOn(t, rotated); len(h) != 0 {
		t.Errorf("zsync's holds left on the rotated copy: %v", h)
	}
	e.checkSame(t, "data/child")
}

// Volumes arrive with volmode=none.
func TestVolumeVolmodeNone(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.Zfs(t, "create", "-V", "4M", src+"/vol")
	zfstest.MustSnapshot(t, src+"/vol@s")
	if code, _, _ := zsyncRun(t, "push", src+"/vol", dst+"/vol"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	if v := zfstest.Get(t, dst+"/vol", "volmode"); v != "none" {
		t.Errorf("volmode=%s, want none", v)
	}
	if g, w := zfstest.GUID(t, dst+"/vol@s"), zfstest.GUID(t, src+"/vol@s"); g != w {
		t.Errorf("guid %s != %s", g, w)
	}
}

// A placeholder made for a child is replaced by its real dataset when the
// parent joins the job later (full receive with -F onto our own placeholder),
// and the child's replica survives untouched.
func TestPlaceholderReplacedWhenParentJoins(t *testing.T) {
	e := newPushEnv(t, "")
	childOnly := writeConfig(t, fmt.Sprintf("[[job]]\nname = \"push\"\ntype = \"push\"\ndatasets = [\"%s/data/child\"]\nroot = \"%s/backup\"\n", e.src, e.dst))
	if code, _, _ := zsyncRun(t, "--config", childOnly, "push"); code != 0 {
		t.Fatalf("child-only push: exit %d", code)
	}
	if v := zfstest.Get(t, e.target("data"), "zsync:placeholder"); v != e.target("data") {
		t.Fatalf("parent is not a placeholder: %q", v)
	}
	childGUID := zfstest.GUID(t, e.target("data/child")+"@first snap")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push with the parent: exit %d", code)
	}
	if s := snapshotsOf(t, e.target("data")); !equalStrings(s, []string{"first snap"}) {
		t.Errorf("parent replica snapshots %v", s)
	}
	if g := zfstest.GUID(t, e.target("data/child")+"@first snap"); g != childGUID {
		t.Errorf("the child's replica changed: guid %s -> %s", childGUID, g)
	}
	if v := zfstest.Get(t, e.target("data"), "zsync:placeholder"); v == e.target("data") {
		t.Errorf("the parent replica is still marked as a placeholder (prune and cascaded pulls would skip it)")
	}
	e.checkSame(t, "data")
	e.checkSame(t, "data/child")
	e.checkInvariants(t, "data", "data/child", "data/with space")
}

// One-off push with --snapshot takes a zsync_ snapshot first.
func TestOneOffSnapshotFlag(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/d")
	zfstest.MustWriteFile(t, src+"/d", "f", 32)
	if code, _, _ := zsyncRun(t, "push", "--snapshot", src+"/d", dst+"/d"); code != 0 {
		t.Fatalf("push --snapshot: exit %d", code)
	}
	s := snapshotsOf(t, dst+"/d")
	if len(s) != 1 || !strings.HasPrefix(s[0], "zsync_") {
		t.Fatalf("target snapshots %v, want one zsync_ snapshot", s)
	}
	if got := snapshotsOf(t, src+"/d"); !equalStrings(got, s) {
		t.Errorf("source %v, target %v", got, s)
	}
}

// zsync run whose snapshot fails (a pre-hook refuses) but whose
// replication works: the run report is not ok, names the snap failure and
// keeps the previous last success; the textfile says the run failed.
func TestRunReportCountsAFailedSnapshot(t *testing.T) {
	e := newPushEnv(t, "  [job.snapshot]\n  prefix = \"zsync_\"\n  interval = \"1h\"\n  pre_hook = [\"/bin/false\"]\n")
	metrics := filepath.Join(t.TempDir(), "zsync.prom")
	text, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	withMetrics := strings.Replace(string(text), "[global]\n", "[global]\nmetrics_file = \""+metrics+"\"\n", 1)
	if err := os.WriteFile(e.cfg, []byte(withMetrics), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := zsyncRun(t, "--config", e.cfg, "run", "push")
	if code == 0 {
		t.Fatalf("run with a failing pre-hook: exit 0")
	}
	if got := snapshotsOf(t, e.target("data")); !equalStrings(got, []string{"first snap"}) {
		t.Fatalf("replica snapshots %v: the replication should still have run", got)
	}
	rep, err := state.ReadRunReport(filepath.Join(filepath.Dir(e.cfg), "state"), "push")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Result == "ok" || !strings.Contains(rep.Error, "snap: ") || !rep.LastSuccess.IsZero() {
		t.Errorf("run report: result %q, error %q, last success %v; want not ok, the snap failure, none\n%s",
			rep.Result, rep.Error, rep.LastSuccess, errOut)
	}
	prom, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), `zsync_last_run_success{job="push"} 0`) {
		t.Errorf("textfile does not say the run failed:\n%s", prom)
	}
}
