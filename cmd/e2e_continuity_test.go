//go:build realzfs

package cmd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// killPoint says where in a run zsync is killed: at the first debug log line
// for which match is true, or (when match is nil) once the far zfs recv has
// read recvBytes bytes.
type killPoint struct {
	name      string
	match     func(line string) bool
	recvBytes int64
}

// zfsTrace reports whether line is the debug trace of a local zfs call whose
// argv contains every one of parts.
func zfsTrace(line string, parts ...string) bool {
	if !strings.Contains(line, `"message":"zfs"`) {
		return false
	}
	for _, p := range parts {
		if !strings.Contains(line, p) {
			return false
		}
	}
	return true
}

// The kill points of a batched step's lifecycle. The source side of a local
// push runs in zsync itself, so its zfs calls show in its debug log: the
// step's protection (step holds or tentative cursors) comes before the
// send, the `zfs send` stream is traced when it ends (after the receive
// returned, before the GUID check and the cursor), and the cursor bookmark
// comes before the step holds are released.
func killPoints(protection string) []killPoint {
	protect := func(l string) bool { return zfsTrace(l, `"hold"`, `"zsync_step_T`) }
	if protection == "incremental" {
		protect = func(l string) bool { return zfsTrace(l, `"bookmark"`, `#zsync_tentative_T`) }
	}
	return []killPoint{
		{name: "before recv", match: protect},
		{name: "mid-stream", recvBytes: 1536 << 10},
		{name: "after recv before cursor", match: func(l string) bool {
			return zfsTrace(l, `"send"`, `"-I"`) && !strings.Contains(l, `"-n"`) // the stream, not its size estimate
		}},
		{name: "after cursor move", match: func(l string) bool { return zfsTrace(l, `"bookmark"`, `#zsync_cursor_T`) }},
	}
}

// killAt runs `zsync push` as a process and kills it at kp; it fails the
// test when the run ends before the kill point was reached.
func killAt(t *testing.T, kp killPoint, cfg string) {
	t.Helper()
	if kp.match == nil {
		killWhenReceived(t, startZsync(t, "--config", cfg, "push"), kp.recvBytes)
		return
	}
	bin := os.Getenv("ZSYNC_BIN")
	if bin == "" {
		t.Fatal("ZSYNC_BIN is not set: the harness passes the built zsync binary")
	}
	cmd := exec.Command(bin, "--config", cfg, "--log-format", "json", "--log-level", "debug", "push")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	hit := false
	for sc.Scan() {
		if kp.match(sc.Text()) {
			cmd.Process.Kill() // zsync only: its serve child must notice by itself
			hit = true
			t.Logf("killed at %q: %s", kp.name, tail(sc.Text(), 300))
			break
		}
	}
	go func() { _, _ = bufio.NewReader(stderr).WriteTo(discard{}) }()
	cmd.Wait()
	if !hit {
		t.Fatalf("the push ended before the kill point %q", kp.name)
	}
	waitReceiversGone(t)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// batchEnv makes src/big with one replicated snapshot, then four new
// snapshots of 1 MiB each: the next push sends them in one -I step.
func batchEnv(t *testing.T, protection string) (src, dst, cfg string) {
	t.Helper()
	src, dst = zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "base", 256)
	zfstest.MustSnapshot(t, src+"/big@zsync_1")
	cfg = writeConfig(t, fmt.Sprintf(`
[[job]]
name = "b"
type = "push"
datasets = ["%s/big"]
root = "%s/backup"
  [job.replication]
  protection = %q
  bandwidth_limit = "1MiB"
  [job.prune]
  source = [{ last_n = 1, regex = "^zsync_" }]
  target = [{ last_n = 1, regex = "^zsync_" }]
`, src, dst, protection))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	for i := 2; i <= 5; i++ {
		zfstest.MustWriteFile(t, src+"/big", fmt.Sprintf("f%d", i), 1024)
		zfstest.MustSnapshot(t, fmt.Sprintf("%s/big@zsync_%d", src, i))
	}
	return src, dst, cfg
}

// checkConverged: the replica equals the source, no resume token, exactly
// one cursor on the source and one last-received hold on the target's
// newest snapshot (same GUID), no step holds and no tentative cursors left.
func checkConverged(t *testing.T, src, dst string) {
	t.Helper()
	e := &pushEnv{src: src, dst: dst}
	if tok := zfstest.Get(t, e.target("big"), "receive_resume_token"); tok != "-" {
		t.Errorf("leftover resume token on %s", e.target("big"))
	}
	e.checkInvariants(t, "big")
	e.checkSame(t, "big")
}

// A push killed inside a batched -I step, a prune of the source down to its
// newest snapshot, and the next push converges with exit 0, without rotate
// and without a full resend, for every kill point of the step's lifecycle
// and both protection levels that promise an incremental base.
func TestKilledBatchedStepPruneConverges(t *testing.T) {
	for _, prot := range []string{"resumability", "incremental"} {
		for _, kp := range killPoints(prot) {
			t.Run(prot+"/"+strings.ReplaceAll(kp.name, " ", "_"), func(t *testing.T) {
				src, dst, cfg := batchEnv(t, prot)
				killAt(t, kp, cfg)
				t.Logf("after the kill: target %v, source %v, holds %v", snapshotsOf(t, dst+"/backup/"+src+"/big"), snapshotsOf(t, src+"/big"), holdsOn(t, src+"/big"))
				if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
					t.Fatalf("prune after the kill: exit %d", code)
				}
				code, reps, errOut := pushJSON(t, cfg)
				if code != 0 {
					t.Fatalf("push after kill and prune: exit %d", code)
				}
				for _, s := range reps[0].Datasets[0].Steps {
					if strings.HasPrefix(s, "full ") {
						t.Errorf("converging push resent in full: %v", reps[0].Datasets[0].Steps)
					}
				}
				if strings.Contains(errOut, "renaming the target aside") {
					t.Errorf("converging push rotated the target")
				}
				checkConverged(t, src, dst)
				// and a prune after convergence keeps the chain: one more
				// snapshot, prune, push
				zfstest.MustWriteFile(t, src+"/big", "after", 64)
				zfstest.MustSnapshot(t, src+"/big@zsync_6")
				if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
					t.Fatalf("second prune: exit %d", code)
				}
				if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
					t.Fatalf("push after the second prune: exit %d", code)
				}
				checkConverged(t, src, dst)
			})
		}
	}
}

// raw = "always" on an unencrypted dataset: the kernel does not mark the
// stream (nor its resume token) raw, so a killed push must resume, not
// abort its partial receive as "not raw".
func TestRawAlwaysUnencryptedResumes(t *testing.T) {
	src, dst := zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "base", 64)
	zfstest.MustSnapshot(t, src+"/big@s1")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "r"
type = "push"
datasets = ["%s/big"]
root = "%s/backup"
  [job.replication]
  raw = "always"
  bandwidth_limit = "1MiB"
`, src, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	zfstest.MustWriteFile(t, src+"/big", "more", 4096)
	zfstest.MustSnapshot(t, src+"/big@s2")
	killWhenReceived(t, startZsync(t, "--config", cfg, "push"), 1<<20)
	code, reps, errOut := pushJSON(t, cfg)
	if code != 0 {
		t.Fatalf("push after the kill: exit %d", code)
	}
	if reps[0].Datasets[0].AbortedResume != "" || strings.Contains(errOut, "aborting the partial receive") {
		t.Errorf("the partial receive was aborted: %q", reps[0].Datasets[0].AbortedResume)
	}
	if !strings.Contains(errOut, "resume ") {
		t.Errorf("the push did not resume")
	}
	checkConverged(t, src, dst)
}

// An encrypted source whose children were replicated first (below a
// placeholder) and whose parent joins the job later: the parent arrives raw
// in the placeholder's place, the children's replicas are untouched and
// back below it, and the marker is gone.
func TestEncryptedParentJoinsLater(t *testing.T) {
	src, dst := zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	key := zfstest.KeyFile(t, "correct horse battery")
	zfstest.MustCreate(t, src+"/enc", "encryption=on", "keyformat=passphrase", "keylocation=file://"+key)
	zfstest.MustCreate(t, src+"/enc/child")
	zfstest.MustWriteFile(t, src+"/enc", "p", 64)
	zfstest.MustWriteFile(t, src+"/enc/child", "c", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/enc@s1")
	job := func(datasets string) string {
		return writeConfig(t, fmt.Sprintf("[[job]]\nname = \"e\"\ntype = \"push\"\ndatasets = [%q]\nroot = \"%s/backup\"\n", datasets, dst))
	}
	if code, _, _ := zsyncRun(t, "--config", job(src+"/enc/child"), "push"); code != 0 {
		t.Fatalf("child-only push: exit %d", code)
	}
	parent, child := dst+"/backup/"+src+"/enc", dst+"/backup/"+src+"/enc/child"
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v != parent {
		t.Fatalf("the parent is not a placeholder: %q", v)
	}
	childGUID := zfstest.GUID(t, child+"@s1")
	zfstest.MustWriteFile(t, src+"/enc", "p2", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/enc@s2")
	cfg := job(src + "/enc<")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push with the parent: exit %d", code)
	}
	if g := zfstest.GUID(t, child+"@s1"); g != childGUID {
		t.Errorf("the child's replica changed: guid %s -> %s", childGUID, g)
	}
	if s := snapshotsOf(t, child); !equalStrings(s, []string{"s1", "s2"}) {
		t.Errorf("child replica snapshots %v, want s1 s2", s)
	}
	if s := snapshotsOf(t, parent); len(s) == 0 || s[len(s)-1] != "s2" {
		t.Errorf("parent replica snapshots %v, want up to s2", s)
	}
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v == parent {
		t.Errorf("the parent replica is still marked as a placeholder")
	}
	if ks := zfstest.Get(t, parent, "keystatus"); ks != "unavailable" {
		t.Errorf("parent keystatus %s, want unavailable (raw receive)", ks)
	}
	// the next run is a no-op, and the data is really there
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("second push: exit %d", code)
	}
	zfstest.Zfs(t, "load-key", "-L", "file://"+key, parent)
	zfstest.Zfs(t, "load-key", "-L", "file://"+key, child)
	for _, pair := range [][2]string{{src + "/enc", parent}, {src + "/enc/child", child}} {
		want := treeSum(t, zfstest.Mountpoint(t, pair[0]))
		got := treeSum(t, mountReplica(t, pair[1]))
		unmount(t, pair[1])
		if got != want {
			t.Errorf("%s: decrypted replica differs", pair[1])
		}
	}
}

// on_diverged = "rotate" of a dataset with children renames the subtree
// aside; the children are replicated fresh in the same run (no stale view
// of the moved children), no zsync hold stays on the rotated copies, and
// nothing is reported as a placeholder that was received in the run.
func TestRotateSubtree(t *testing.T) {
	e := newPushEnv(t, "  [job.replication]\n  on_diverged = \"rotate\"\n")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	} else if strings.Contains(errOut, "created placeholder "+e.target("data")) {
		t.Errorf("the log calls the received %s a created placeholder", e.target("data"))
	}
	// the parent's replica diverges: a snapshot taken on the target
	zfstest.MustSnapshot(t, e.target("data")+"@local change")
	zfstest.MustWriteFile(t, e.src+"/data", "f2", 64)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	code, reps, _ := pushJSON(t, e.cfg)
	if code != 0 {
		t.Fatalf("rotating push: exit %d (%+v)", code, reps)
	}
	rotated := reps[0].Datasets[0].Rotated
	if rotated == "" {
		t.Fatalf("no rotation reported: %+v", reps[0].Datasets[0])
	}
	for _, ds := range []string{rotated, rotated + "/child", rotated + "/with space"} {
		if !zfstest.Exists(t, ds) {
			t.Errorf("rotated copy %s is missing", ds)
			continue
		}
		for _, h := range holdsOn(t, ds) {
			if strings.Contains(h, "zsync_") {
				t.Errorf("zsync hold left on the rotated copy %s: %s", ds, h)
			}
		}
	}
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		e.checkSame(t, ds)
	}
	e.checkInvariants(t, "data", "data/child", "data/with space")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push after rotate: exit %d", code)
	}
}
