//go:build realzfs

package cmd

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/state"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// Each way of not reaching a usable far side ends the run with exit 1, one
// clear error line whose error_kind names the cause, a run report that
// says failed (never ok), and nothing changed on the far side.
func TestSSHFailureKinds(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 64)
	zfstest.MustSnapshot(t, src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")

	// forced authorizes the key for a forced command other than zsync's.
	forced := func(command string) func(t *testing.T, c *sshClient) {
		return func(t *testing.T, c *sshClient) {
			marker := "zsync-e2e-" + zfstest.RandomSuffix(t, 12)
			authorize(t, fmt.Sprintf(`command="%s",restrict %s %s`, command, c.pub, marker), marker)
		}
	}
	for _, c := range []struct {
		name    string
		setup   func(t *testing.T, c *sshClient)
		kind    string
		message string
	}{
		{"key not authorized", func(*testing.T, *sshClient) {}, "ssh_auth", "ssh authentication as root@127.0.0.1:22 failed"},
		{"no zsync on the far side", forced("/nonexistent/zsync serve --stdio"), "remote_not_zsync", "exited with status 127: "},
		{"another protocol version", forced("printf 'ZSYNC-SERVE 999 9.9.9\\n'; cat >/dev/null"), "protocol_version", "the far side (zsync 9.9.9) speaks 999"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := newClientKey(t, "laptop", "/nonexistent.toml")
			c.setup(t, cl)
			cfg := writeConfig(t, replicationJob("up", "push", src+"/data", dst+"/laptop", cl.remote("")))
			before := listAll(t, dst)
			code, _, errOut := zsyncRun(t, "--config", cfg, "push", "up")
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, errOut)
			}
			line := finalErrorLine(t, errOut)
			if line.Kind != c.kind {
				t.Errorf("error_kind %q, want %q (message %q)", line.Kind, c.kind, line.Message)
			}
			if !strings.Contains(line.Message, c.message) || strings.Contains(line.Message, "\n") {
				t.Errorf("the error is not one clear line mentioning %q: %q", c.message, line.Message)
			}
			rep, err := state.ReadRunReport(filepath.Join(filepath.Dir(cfg), "state"), "up")
			if err != nil {
				t.Fatalf("run report: %v", err)
			}
			if rep.Result != "failed" || rep.ErrorKind != c.kind || !rep.LastSuccess.IsZero() {
				t.Errorf("run report: result %q, error_kind %q, last success %v; want failed, %q, none",
					rep.Result, rep.ErrorKind, rep.LastSuccess, c.kind)
			}
			if c.kind == "remote_not_zsync" && !strings.Contains(line.Message, "/nonexistent/zsync: ") {
				t.Errorf("the error does not quote the far shell's complaint: %q", line.Message)
			}
			if after := listAll(t, dst); after != before {
				t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// errorLine is the final error log line of a run (JSON logs: stderr is not
// a terminal).
type errorLine struct {
	Level   string `json:"level"`
	Exit    int    `json:"exit"`
	Kind    string `json:"error_kind"`
	Message string `json:"message"`
}

func finalErrorLine(t *testing.T, stderr string) errorLine {
	t.Helper()
	var last *errorLine
	for _, l := range strings.Split(stderr, "\n") {
		var e errorLine
		if json.Unmarshal([]byte(l), &e) == nil && e.Level == "error" && e.Exit != 0 {
			last = &e
		}
	}
	if last == nil {
		t.Fatalf("no final error line in stderr:\n%s", stderr)
	}
	return *last
}

// A far zfs recv that hangs (SIGSTOP) while the push waits on it: after
// idle_timeout the run gives up with a clear far_side_idle error instead of
// hanging with its lock, and the next run completes the transfer.
func TestSSHIdleTimeoutOnAHungReceiver(t *testing.T) {
	t.Run("one channel", func(t *testing.T) { idleTimeoutOnAHungReceiver(t, 1) })
	// striped: the run still fails as far_side_idle, and the next run
	// converges (the idle timeout of a channel blocked in a window-bound
	// Write is TestReadAheadPassesAbort's: this run does not reach it)
	t.Run("three channels", func(t *testing.T) { idleTimeoutOnAHungReceiver(t, 3) })
}

func idleTimeoutOnAHungReceiver(t *testing.T, streams int) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "f", 8<<10)
	zfstest.MustSnapshot(t, src+"/big@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "hang", serveClient("hang", dst+"/laptop", nil, ""))
	cfg := writeConfig(t, replicationJob("big", "push", src+"/big", dst+"/laptop", c.remote(fmt.Sprintf("  idle_timeout = \"5s\"\n  max_streams = %d", streams))+
		"  [job.replication]\n  bandwidth_limit = \"1MiB\"\n"))
	target := dst + "/laptop/" + src + "/big"

	done := runInBackground(t, "--config", cfg, "--log-level", "debug", "push")
	// Stop the far zfs recv once it has read 1 MiB.
	var stopped []int
	waitUntil(t, done, "a zfs recv that had read 1 MiB to stop", func() bool {
		if recvBytes() < 1<<20 {
			return false
		}
		out, _, _ := zfstest.Exec(t, "pgrep", "-f", "^zfs recv .*"+target)
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && syscall.Kill(pid, syscall.SIGSTOP) == nil {
				stopped = append(stopped, pid)
			}
		}
		return len(stopped) > 0
	})
	t.Logf("stopped zfs recv %v", stopped)
	defer func() {
		for _, pid := range stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	start := time.Now()
	r := mustFailWithin(t, done, 120*time.Second, "its far zfs recv hung (idle_timeout 5s)")
	t.Logf("the run failed %v after the far zfs recv stopped", time.Since(start).Round(time.Second))
	if striped := strings.Contains(r.stderr, "streams striped over several SSH channels"); striped != (streams > 1) {
		t.Errorf("max_streams = %d: striped %v:\n%s", streams, striped, r.stderr)
	}
	line := finalErrorLine(t, r.stderr)
	if line.Kind != "far_side_idle" || !strings.Contains(line.Message, "nothing moved to or from it for 5s") {
		t.Errorf("error_kind %q, message %q; want far_side_idle saying nothing moved for 5s", line.Kind, line.Message)
	}
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	for _, pid := range stopped {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	// The next run must not meet the continued receive still running.
	if left := waitNone(func() []int {
		var alive []int
		for _, pid := range stopped {
			if syscall.Kill(pid, 0) == nil {
				alive = append(alive, pid)
			}
		}
		return alive
	}); len(left) != 0 {
		t.Fatalf("the stopped zfs recv %v still runs 60s after SIGCONT", left)
	}

	// The next run finishes the job (resuming, or from the start when the
	// stopped receive left nothing to resume).
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("the next push: exit %d\n%s", code, errOut)
	}
	if got := snapshotsOf(t, target); !equalStrings(got, []string{"one"}) {
		t.Errorf("target snapshots %v", got)
	}
	if got, want := sumOf(t, target, true), sumOf(t, src+"/big", false); got != want {
		t.Errorf("replica checksum %s != source %s", got, want)
	}
}
