//go:build realzfs

package cmd

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// startZsync runs the built zsync binary as a separate process (so it can be
// killed like cron's would be) and returns it.
func startZsync(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("ZSYNC_BIN")
	if bin == "" {
		t.Fatal("ZSYNC_BIN is not set: the harness passes the built zsync binary")
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	})
	return cmd
}

// killAfter kills zsync (the process only, not its group: the serve child
// must notice its parent's death by itself) after d and waits for it.
func killAfter(t *testing.T, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("zsync ended on its own before the kill (%v)", err)
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
	}
	waitReceiversGone(t)
}

// waitReceiversGone waits for the orphaned serve child and zfs recv of a
// killed zsync to notice and exit (the next run must not meet a receive
// that is still running).
func waitReceiversGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "^zfs (recv|receive) |serve --stdio").Output()
		if strings.TrimSpace(string(out)) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after zsync was killed these still run: %s", strings.Fields(string(out)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killWhenReceived kills zsync once the far `zfs recv` has read at least n
// bytes of the stream (from /proc/PID/io), so the interruption happens
// mid-stream however slow the machine is.
func killWhenReceived(t *testing.T, cmd *exec.Cmd, n int64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if got := recvBytes(); got >= n {
			t.Logf("zfs recv has read %d bytes: killing zsync", got)
			killAfter(t, cmd, 0)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("zfs recv never read %d bytes", n)
}

// recvBytes returns the bytes read by the running `zfs recv` processes.
func recvBytes() int64 {
	out, _ := exec.Command("pgrep", "-f", "^zfs recv").Output()
	var total int64
	for _, pid := range strings.Fields(string(out)) {
		b, err := os.ReadFile("/proc/" + pid + "/io")
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "rchar: "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// runReports runs a push with --json and returns the reports.
func pushJSON(t *testing.T, cfg string, args ...string) (int, []state.RunReport, string) {
	t.Helper()
	code, out, errOut := zsyncRun(t, append([]string{"--config", cfg, "push", "--json"}, args...)...)
	var reps []state.RunReport
	if err := json.Unmarshal([]byte(out), &reps); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	return code, reps, errOut
}

// bigPushEnv makes src/big with 64 KiB and one snapshot named first, and a
// push job into dst/backup limited to 1 MiB/s; extra is appended to its
// [job.replication] table (more keys, then other tables). It runs the
// initial push.
func bigPushEnv(t *testing.T, first, extra string) (src, dst, cfg string) {
	t.Helper()
	src, dst = zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "base", 64)
	zfstest.MustSnapshot(t, src+"/big@"+first)
	cfg = writeConfig(t, fmt.Sprintf(`
[[job]]
name = "r"
type = "push"
datasets = ["%s/big"]
root = "%s/backup"
  [job.replication]
  bandwidth_limit = "1MiB"
%s
`, src, dst, extra))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	return src, dst, cfg
}

func resumeEnv(t *testing.T, sizeKiB int) (src, dst, cfg string) {
	t.Helper()
	src, dst, cfg = bigPushEnv(t, "s1", "")
	zfstest.MustWriteFile(t, src+"/big", "more", sizeKiB)
	zfstest.MustSnapshot(t, src+"/big@s2")
	return src, dst, cfg
}

// A push killed mid-stream resumes on the next run and sends fewer bytes than
// the whole step.
func TestKilledPushResumes(t *testing.T) {
	src, dst, cfg := resumeEnv(t, 6144)
	target := dst + "/backup/" + src + "/big"
	est := strings.TrimSpace(zfstest.Zfs(t, "send", "-nP", "-i", src+"/big@s1", src+"/big@s2"))
	full, err := strconv.ParseInt(est[strings.LastIndexAny(est, "\t ")+1:], 10, 64)
	if err != nil {
		t.Fatalf("size estimate %q: %v", est, err)
	}
	killWhenReceived(t, startZsync(t, "--config", cfg, "push"), 2<<20)
	tok := zfstest.Get(t, target, "receive_resume_token")
	if tok == "-" || tok == "" {
		t.Fatalf("no resume token on %s after the kill", target)
	}
	code, reps, errOut := pushJSON(t, cfg)
	if code != 0 {
		t.Fatalf("resuming push: exit %d", code)
	}
	if !strings.Contains(errOut, "resume ") {
		t.Errorf("the run did not resume:\n%s", errOut)
	}
	sent := reps[0].Datasets[0].Bytes
	if sent <= 0 || sent >= full-512<<10 {
		t.Errorf("resumed run sent %d bytes; a restart sends about %d", sent, full)
	}
	t.Logf("full step %d bytes, resumed run sent %d", full, sent)
	if got, want := treeSum(t, mountReplica(t, target)), treeSum(t, zfstest.Mountpoint(t, src+"/big")); got != want {
		t.Errorf("replica differs after resume")
	}
	unmount(t, target)
	e := &pushEnv{src: src, dst: dst}
	e.checkInvariants(t, "big")
}

// If the interrupted step's snapshot is destroyed meanwhile, the next run
// aborts the stale token, says so, and succeeds.
func TestStaleResumeTokenIsAborted(t *testing.T) {
	src, dst, cfg := resumeEnv(t, 4096)
	target := dst + "/backup/" + src + "/big"
	killWhenReceived(t, startZsync(t, "--config", cfg, "push"), 1<<20)
	if tok := zfstest.Get(t, target, "receive_resume_token"); tok == "-" {
		t.Fatalf("no resume token after the kill")
	}
	// the step hold protects @s2: the user releases it and destroys it anyway
	for _, h := range holdsOn(t, src+"/big") {
		f := strings.SplitN(h, " ", 2)
		zfstest.Zfs(t, "release", f[1], src+"/big@"+f[0])
	}
	zfstest.Zfs(t, "destroy", src+"/big@s2")
	zfstest.MustWriteFile(t, src+"/big", "other", 64)
	zfstest.MustSnapshot(t, src+"/big@s3")
	code, reps, errOut := pushJSON(t, cfg)
	if code != 0 {
		t.Fatalf("push after the stale token: exit %d", code)
	}
	if reps[0].Datasets[0].AbortedResume == "" || !strings.Contains(errOut, "aborting the partial receive") {
		t.Errorf("the abort was not reported: %+v\n%s", reps[0].Datasets[0], errOut)
	}
	if tok := zfstest.Get(t, target, "receive_resume_token"); tok != "-" {
		t.Errorf("token still there: %s", tok)
	}
	if s := snapshotsOf(t, target); !equalStrings(s, []string{"s1", "s3"}) {
		t.Errorf("target snapshots %v, want s1 s3", s)
	}
	e := &pushEnv{src: src, dst: dst}
	e.checkInvariants(t, "big")
}

// Killing runs at random points and re-running converges: data equal,
// exactly one cursor and one last-received hold, no step holds, no leaked
// abstractions. ZSYNC_KILL_ROUNDS sets the rounds (make kill-test: 20).
func TestKillConverges(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("ZSYNC_KILL_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	e := newPushEnv(t, "  [job.replication]\n  bandwidth_limit = \"2MiB\"\n")
	all := []string{"data", "data/child", "data/with space"}
	// Kill points are random on purpose (every point must converge); the
	// seed is logged, and ZSYNC_KILL_SEED replays a run.
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("ZSYNC_KILL_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("kill seed %d (ZSYNC_KILL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < rounds; i++ {
		for _, ds := range all {
			zfstest.MustWriteFile(t, e.src+"/"+ds, fmt.Sprintf("r%d", i), 256+rng.Intn(1024))
		}
		zfstest.Zfs(t, "snapshot", "-r", fmt.Sprintf("%s/data@round %d", e.src, i))
		d := time.Duration(rng.Intn(4000)) * time.Millisecond
		t.Logf("round %d: kill after %v", i, d)
		killAfter(t, startZsync(t, "--config", e.cfg, "push"), d)
	}
	// converge: one clean run (a second one must be a no-op)
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("converging push: exit %d", code)
	}
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("second push: exit %d", code)
	}
	for _, ds := range all {
		e.checkSame(t, ds)
		if tok := zfstest.Get(t, e.target(ds), "receive_resume_token"); tok != "-" {
			t.Errorf("%s: leftover resume token", ds)
		}
		var tentative int
		for _, b := range bookmarksOf(t, e.src+"/"+ds) {
			if strings.HasPrefix(b, "zsync_") && !strings.HasPrefix(b, "zsync_cursor_") {
				tentative++
			}
		}
		if tentative != 0 {
			t.Errorf("%s: leaked bookmarks %v", ds, bookmarksOf(t, e.src+"/"+ds))
		}
	}
	e.checkInvariants(t, all...)
}
