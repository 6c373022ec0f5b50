//go:build realzfs

package cmd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// The SSH tier: zsync reaches the far side through the guest's real sshd at
// 127.0.0.1:22, where a key of its own is restricted by a forced command
// `zsync --config FILE serve --stdio --client NAME` in root's
// authorized_keys.

const authorizedKeys = "/root/.ssh/authorized_keys"

// sshClient is one client key authorized with a forced command, and the
// files a job needs to use it.
type sshClient struct {
	name       string
	identity   string // private key file (0600)
	knownHosts string // the guest's host keys, from ssh-keyscan
	serveCfg   string // the config the forced command's serve reads
	pub        string // public key, authorized_keys format
}

// newSSHClient writes serveBody (the [[serve.client]] entries) as the far
// side's config, makes a fresh ed25519 key and authorizes it for root with
// the forced command `zsync --config <serveCfg> serve --stdio --client name`.
// The authorized_keys line is removed at cleanup.
func newSSHClient(t *testing.T, name, serveBody string) *sshClient {
	t.Helper()
	c := newClientKey(t, name, writeConfig(t, serveBody))
	marker := "zsync-e2e-" + zfstest.RandomSuffix(t, 12)
	authorize(t, c.authorizedLine()+" "+marker, marker)
	return c
}

// newClientKey makes a fresh ed25519 key (private key file 0600, public
// key next to it) and a known_hosts file with the guest's host keys.
func newClientKey(t *testing.T, name, serveCfg string) *sshClient {
	t.Helper()
	if os.Getenv("ZSYNC_BIN") == "" {
		t.Fatal("ZSYNC_BIN must name the zsync binary the forced command runs")
	}
	c := &sshClient{name: name, serveCfg: serveCfg}
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "zsync e2e "+name)
	if err != nil {
		t.Fatal(err)
	}
	c.identity = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(c.identity, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	c.pub = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spub)))
	if err := os.WriteFile(c.identity+".pub", []byte(c.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(c.knownHosts, []byte(keyscan(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// authorizedLine is the client's authorized_keys line: its key restricted
// to the forced command.
func (c *sshClient) authorizedLine() string {
	return fmt.Sprintf("command=\"%s --config %s serve --stdio --client %s\",restrict %s",
		os.Getenv("ZSYNC_BIN"), c.serveCfg, c.name, c.pub)
}

// authorize appends line to root's authorized_keys; cleanup removes every
// line carrying marker and leaves the others (the harness's key) alone.
func authorize(t *testing.T, line, marker string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(authorizedKeys), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(authorizedKeys, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n" + line + "\n"); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		data, err := os.ReadFile(authorizedKeys)
		if err != nil {
			t.Errorf("restore %s: %v", authorizedKeys, err)
			return
		}
		var keep []string
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" && !strings.Contains(l, marker) {
				keep = append(keep, l)
			}
		}
		tmp := authorizedKeys + ".zsync-e2e"
		if err := os.WriteFile(tmp, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
			t.Errorf("restore %s: %v", authorizedKeys, err)
			return
		}
		if err := os.Rename(tmp, authorizedKeys); err != nil {
			t.Errorf("restore %s: %v", authorizedKeys, err)
		}
	})
}

// keyscan returns the guest sshd's host keys in known_hosts format.
func keyscan(t *testing.T) string {
	t.Helper()
	// an emulated guest under load can take longer than ssh-keyscan's 5 s
	// default to answer (seen once in a full tier on 2.3, stdout empty)
	var out, errOut string
	var err error
	for range 3 {
		out, errOut, err = zfstest.Exec(t, "ssh-keyscan", "-T", "30", "-p", "22", "127.0.0.1")
		if err == nil && strings.Contains(out, "ssh-ed25519") {
			return out
		}
	}
	t.Fatalf("ssh-keyscan, 3 tries: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	return ""
}

// remote is the [job.remote] table of a job that uses the client's key.
func (c *sshClient) remote(extra string) string {
	return fmt.Sprintf(`  [job.remote]
  host = "127.0.0.1"
  user = "root"
  identity_file = %q
  known_hosts = %q
%s
`, c.identity, c.knownHosts, extra)
}

// serveClient is a [[serve.client]] entry of the far side's config: the
// root it may receive into, the datasets it may send (none: nothing) and
// more lines (append_only = true).
func serveClient(name, receiveRoot string, send []string, more string) string {
	s := fmt.Sprintf("\n[[serve.client]]\nname = %q\nreceive_root = %q\n", name, receiveRoot)
	if len(send) > 0 {
		quoted := make([]string, len(send))
		for i, d := range send {
			quoted[i] = strconv.Quote(d)
		}
		s += "send = [" + strings.Join(quoted, ", ") + "]\n"
	}
	return s + more
}

// replicationJob is a [[job]] table of a push or pull job: one dataset
// pattern, the root, then more (its [job.remote] and other tables).
func replicationJob(name, typ, datasets, root, more string) string {
	return fmt.Sprintf("\n[[job]]\nname = %q\ntype = %q\ndatasets = [%q]\nroot = %q\n%s", name, typ, datasets, root, more)
}

// farServePIDs lists the processes started by this client's forced command
// (their command line names its unique serve config).
func (c *sshClient) farServePIDs(t *testing.T) []int {
	t.Helper()
	out, _, _ := zfstest.Exec(t, "pgrep", "-f", "serve --stdio --client "+c.name+"$")
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmdline), c.serveCfg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listAll is a recursive listing of a pool: names, guids and user refs, to
// show that a refused run changed nothing.
func listAll(t *testing.T, pool string) string {
	t.Helper()
	return zfstest.Zfs(t, "list", "-H", "-p", "-r", "-t", "all", "-o", "name,guid,userrefs", pool)
}

// sumOf is the checksum of a dataset's files (a replica is mounted for it).
func sumOf(t *testing.T, ds string, replica bool) string {
	t.Helper()
	if !replica {
		return treeSum(t, zfstest.Mountpoint(t, ds))
	}
	s := treeSum(t, mountReplica(t, ds))
	unmount(t, ds)
	return s
}

// checkPushedAndPulled compares <src>/data and <src>/data/child with their
// pushed (<dst>/laptop/...) and pulled (<dst>/pulled/...) replicas: file
// checksums and snapshot lists.
func checkPushedAndPulled(t *testing.T, src, dst string, snaps ...string) {
	t.Helper()
	for _, ds := range []string{"data", "data/child"} {
		want := sumOf(t, src+"/"+ds, false)
		for _, replica := range []string{dst + "/laptop/" + src + "/" + ds, dst + "/pulled/" + src + "/" + ds} {
			if got := sumOf(t, replica, true); got != want {
				t.Errorf("%s: checksum %s, source %s has %s", replica, got, src+"/"+ds, want)
			}
			if got := snapshotsOf(t, replica); !equalStrings(got, snaps) {
				t.Errorf("%s: snapshots %v, want %v", replica, got, snaps)
			}
		}
	}
}

// Push and pull through the real sshd, the far side restricted by the
// forced command: data arrives intact, incrementals too.
func TestSSHPushPull(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f1", 256)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	cfg := writeConfig(t, replicationJob("up", "push", src+"/data<", dst+"/laptop", c.remote(""))+
		replicationJob("down", "pull", src+"/data<", dst+"/pulled", c.remote("")))

	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "up"); code != 0 {
		t.Fatalf("push over ssh: exit %d", code)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull", "down"); code != 0 {
		t.Fatalf("pull over ssh: exit %d", code)
	}
	checkPushedAndPulled(t, src, dst, "one")

	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustWriteFile(t, src+"/"+ds, "f2", 128)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@two")
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "up"); code != 0 {
		t.Fatalf("incremental push over ssh: exit %d", code)
	} else if !strings.Contains(errOut, "@one..") {
		t.Errorf("the second push was not incremental from @one:\n%s", errOut)
	}
	if code, _, errOut := zsyncRun(t, "--config", cfg, "pull", "down"); code != 0 {
		t.Fatalf("incremental pull over ssh: exit %d", code)
	} else if !strings.Contains(errOut, "@one..") {
		t.Errorf("the second pull was not incremental from @one:\n%s", errOut)
	}
	checkPushedAndPulled(t, src, dst, "one", "two")
}

// max_streams = 3 through the real sshd and the forced command: every
// endpoint's streams are striped over three SSH channels (each its own far
// serve, the two joined ones relaying to the first), full and incremental,
// push and pull, zstd on the wire; the data arrives whole and no far serve
// outlives the run.
func TestSSHStripedPushPull(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustCreate(t, src+"/"+ds)
		// several MiB: 1 MiB data frames spread over all three channels
		zfstest.MustWriteFile(t, src+"/"+ds, "f1", 5<<10)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	more := c.remote("  max_streams = 3") + "  [job.replication]\n  compression = \"zstd\"\n"
	cfg := writeConfig(t, replicationJob("up", "push", src+"/data<", dst+"/laptop", more)+
		replicationJob("down", "pull", src+"/data<", dst+"/pulled", more))

	run := func(what string, args ...string) string {
		t.Helper()
		code, _, errOut := zsyncRun(t, append([]string{"--config", cfg, "--log-level", "debug"}, args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", what, code, errOut)
		}
		if !strings.Contains(errOut, "streams striped over several SSH channels") || strings.Contains(errOut, "max_streams = 3") {
			t.Errorf("%s: the streams were not striped:\n%s", what, errOut)
		}
		return errOut
	}
	run("striped push", "push", "up")
	run("striped pull", "pull", "down")
	checkPushedAndPulled(t, src, dst, "one")

	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustWriteFile(t, src+"/"+ds, "f2", 3<<10)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@two")
	if out := run("striped incremental push", "push", "up"); !strings.Contains(out, "@one..") {
		t.Errorf("the second push was not incremental from @one:\n%s", out)
	}
	if out := run("striped incremental pull", "pull", "down"); !strings.Contains(out, "@one..") {
		t.Errorf("the second pull was not incremental from @one:\n%s", out)
	}
	checkPushedAndPulled(t, src, dst, "one", "two")
	if pids := waitNone(func() []int { return c.farServePIDs(t) }); len(pids) != 0 {
		t.Errorf("far zsync serve processes still running 60s after the runs: %v", pids)
	}
}

// The forced command's policy refuses, with a clear message and without
// changing anything on the far side: receiving outside receive_root,
// sending a dataset not in the send list, and destroying under append_only.
func TestSSHRefusals(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "secret"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 64)
	}
	zfstest.MustSnapshot(t, src+"/data@zsync_1", src+"/secret@s1")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data"}, "append_only = true\n"))
	cfg := writeConfig(t,
		replicationJob("inside", "push", src+"/data", dst+"/laptop", c.remote("")+
			"  [job.prune]\n  target = [{ last_n = 1, regex = \"^zsync_\" }]\n")+
			replicationJob("outside", "push", src+"/data", dst+"/elsewhere", c.remote(""))+
			replicationJob("steal", "pull", src+"/secret", dst+"/stolen", c.remote("")))

	t.Run("receive outside receive_root", func(t *testing.T) {
		before := listAll(t, dst)
		code, _, errOut := zsyncRun(t, "--config", cfg, "push", "outside")
		if code == 0 {
			t.Fatalf("push outside receive_root: exit 0")
		}
		if !strings.Contains(errOut, "client laptop may not") || !strings.Contains(errOut, "outside receive_root "+dst+"/laptop") {
			t.Errorf("the refusal does not say why:\n%s", errOut)
		}
		if after := listAll(t, dst); after != before {
			t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("send outside the send list", func(t *testing.T) {
		before := listAll(t, src)
		code, _, errOut := zsyncRun(t, "--config", cfg, "pull", "steal")
		if code == 0 {
			t.Fatalf("pull of a dataset not in the send list: exit 0")
		}
		if !strings.Contains(errOut, "client laptop may not") || !strings.Contains(errOut, "not among its send datasets") {
			t.Errorf("the refusal does not say why:\n%s", errOut)
		}
		if after := listAll(t, src); after != before {
			t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if zfstest.Exists(t, dst+"/stolen/"+src+"/secret") {
			t.Errorf("the secret arrived")
		}
	})

	t.Run("destroy under append_only", func(t *testing.T) {
		if code, _, _ := zsyncRun(t, "--config", cfg, "push", "inside"); code != 0 {
			t.Fatalf("first push (append_only allows receiving): exit %d", code)
		}
		zfstest.MustWriteFile(t, src+"/data", "g", 64)
		zfstest.MustSnapshot(t, src+"/data@zsync_2")
		if code, _, _ := zsyncRun(t, "--config", cfg, "push", "inside"); code != 0 {
			t.Fatalf("second push (append_only allows receiving): exit %d", code)
		}
		// the replica sits below a placeholder (<root>/<pool>), which must
		// not hide it from target-side pruning
		target := dst + "/laptop/" + src + "/data"
		if got := snapshotsOf(t, target); !equalStrings(got, []string{"zsync_1", "zsync_2"}) {
			t.Fatalf("target snapshots %v", got)
		}
		// the rules condemn zsync_1: only the policy stands in the way
		if code, out, _ := zsyncRun(t, "--config", cfg, "prune", "--dry-run", "inside"); code != 0 ||
			!strings.Contains(out, "destroy "+target+"@zsync_1") {
			t.Fatalf("dry-run prune: exit %d, and it does not plan to destroy %s@zsync_1", code, target)
		}
		before := listAll(t, dst)
		code, _, errOut := zsyncRun(t, "--config", cfg, "prune", "inside")
		if code == 0 {
			t.Fatalf("target prune under append_only: exit 0")
		}
		if !strings.Contains(errOut, "client laptop may not destroy") || !strings.Contains(errOut, "append_only") {
			t.Errorf("the refusal does not say why:\n%s", errOut)
		}
		if after := listAll(t, dst); after != before {
			t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// An unknown host key is refused by default with a message saying how to
// trust it; accept-new records it and connects; strict then accepts it. A
// changed key is refused whatever the policy.
func TestSSHHostKeyPolicy(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 64)
	zfstest.MustSnapshot(t, src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", nil, ""))
	scanned, err := os.ReadFile(c.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c.knownHosts = filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(c.knownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	job := func(name, policy string) string {
		return replicationJob(name, "push", src+"/data", dst+"/laptop", c.remote(fmt.Sprintf("  host_key_policy = %q", policy)))
	}
	cfg := writeConfig(t, job("strict", "strict")+job("tofu", "accept-new"))
	target := dst + "/laptop/" + src + "/data"

	before := listAll(t, dst)
	code, _, errOut := zsyncRun(t, "--config", cfg, "push", "strict")
	if code == 0 {
		t.Fatalf("strict push to an unknown host: exit 0")
	}
	if !strings.Contains(errOut, "host key for 127.0.0.1:22 is unknown") ||
		!strings.Contains(errOut, "ssh-keyscan -p 22 127.0.0.1 >> "+c.knownHosts) ||
		!strings.Contains(errOut, "accept-new") {
		t.Errorf("the refusal does not say how to trust the key:\n%s", errOut)
	}
	if k := finalErrorLine(t, errOut).Kind; k != "ssh_host_key_unknown" {
		t.Errorf("error_kind %q, want ssh_host_key_unknown", k)
	}
	if after := listAll(t, dst); after != before {
		t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if data, _ := os.ReadFile(c.knownHosts); len(data) != 0 {
		t.Errorf("strict wrote known_hosts: %q", data)
	}

	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "tofu"); code != 0 {
		t.Fatalf("accept-new push: exit %d", code)
	}
	recorded, err := os.ReadFile(c.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(recorded)), "\n")
	if len(lines) != 1 {
		t.Fatalf("accept-new recorded %d lines, want 1:\n%s", len(lines), recorded)
	}
	f := strings.Fields(lines[0])
	if len(f) != 3 || f[0] != "127.0.0.1" || !strings.Contains(string(scanned), f[1]+" "+f[2]) {
		t.Errorf("recorded line %q is not one of the host's keys:\n%s", lines[0], scanned)
	}
	if got := snapshotsOf(t, target); !equalStrings(got, []string{"one"}) {
		t.Errorf("target snapshots %v", got)
	}

	zfstest.MustWriteFile(t, src+"/data", "g", 64)
	zfstest.MustSnapshot(t, src+"/data@two")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "strict"); code != 0 {
		t.Fatalf("strict push after the key was recorded: exit %d", code)
	}
	if got := snapshotsOf(t, target); !equalStrings(got, []string{"one", "two"}) {
		t.Errorf("target snapshots %v", got)
	}
	if again, _ := os.ReadFile(c.knownHosts); string(again) != string(recorded) {
		t.Errorf("known_hosts changed on a strict run:\n%s", again)
	}
	if got, want := sumOf(t, target, true), sumOf(t, src+"/data", false); got != want {
		t.Errorf("replica checksum %s != source %s", got, want)
	}

	// A different key recorded for the host: refused, accept-new too.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, err := ssh.NewPublicKey(other.Public())
	if err != nil {
		t.Fatal(err)
	}
	wrong := "127.0.0.1 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub))) + "\n"
	if err := os.WriteFile(c.knownHosts, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	zfstest.MustSnapshot(t, src+"/data@three")
	for _, j := range []string{"strict", "tofu"} {
		code, _, errOut := zsyncRun(t, "--config", cfg, "push", j)
		if code == 0 {
			t.Fatalf("%s push to a host whose key changed: exit 0", j)
		}
		if !strings.Contains(errOut, "has CHANGED") {
			t.Errorf("%s: the refusal does not say the key changed:\n%s", j, errOut)
		}
		if k := finalErrorLine(t, errOut).Kind; k != "ssh_host_key_mismatch" {
			t.Errorf("%s: error_kind %q, want ssh_host_key_mismatch", j, k)
		}
	}
	if got := snapshotsOf(t, target); !equalStrings(got, []string{"one", "two"}) {
		t.Errorf("target snapshots %v after refused runs", got)
	}
	if data, _ := os.ReadFile(c.knownHosts); string(data) != wrong {
		t.Errorf("known_hosts changed by a refused run:\n%s", data)
	}
}

// Cutting the far side mid-stream (killing its `zsync serve`, or the sshd
// session that carries it) fails the run and leaves a resumable partial
// receive; the next run resumes it (zfs send -t) and the data arrives
// intact.
func TestSSHCutMidStreamResumes(t *testing.T) {
	t.Run("serve killed", func(t *testing.T) {
		cutAndResume(t, func(t *testing.T, serve []int) []int { return serve })
	})
	t.Run("sshd session killed", func(t *testing.T) {
		cutAndResume(t, func(t *testing.T, serve []int) []int {
			var sessions []int
			for _, pid := range serve {
				if s := sshdAncestor(t, pid); s != 0 && !slices.Contains(sessions, s) {
					sessions = append(sessions, s)
				}
			}
			return sessions
		})
	})
}

// runResult is the outcome of a zsync run started by runInBackground.
type runResult struct {
	code   int
	stderr string
}

// runInBackground starts zsync with args; its result arrives on the
// channel.
// A test that fails early cancels the run and waits for it, so it never
// outlives the test.
func runInBackground(t *testing.T, args ...string) <-chan runResult {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan runResult, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		code, _, errOut := zsyncRunCtx(t, ctx, args...)
		done <- runResult{code, errOut}
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done
}

// mustFailWithin waits up to d for the background run to end and fails the
// test unless it ended with a non-zero exit; why says what should have
// made it fail.
func mustFailWithin(t *testing.T, run <-chan runResult, d time.Duration, why string) runResult {
	t.Helper()
	select {
	case r := <-run:
		if r.code == 0 {
			t.Fatalf("the run succeeded although %s", why)
		}
		return r
	case <-time.After(d):
		t.Fatalf("the run did not end within %v although %s", d, why)
	}
	return runResult{}
}

// waitUntil polls cond every 50ms until it holds. The test fails when the
// background run ends first or after 60s; what names the awaited event.
func waitUntil(t *testing.T, run <-chan runResult, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case r := <-run:
			t.Fatalf("the run ended (exit %d) before %s", r.code, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 60s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sshdAncestor returns the nearest ancestor of pid that is an sshd process
// (the session's), or 0.
func sshdAncestor(t *testing.T, pid int) int {
	t.Helper()
	for p := pid; p > 1; {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0
		}
		// pid (comm) state ppid ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			return 0
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
		// OpenSSH 9.8 and later name the per-session process sshd-session
		if c := strings.TrimSpace(string(comm)); c == "sshd" || c == "sshd-session" {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
			t.Logf("sshd session of pid %d: pid %d %q", pid, ppid, strings.ReplaceAll(string(cmdline), "\x00", " "))
			return ppid
		}
		p = ppid
	}
	return 0
}

// cutAndResume pushes 4 MiB at 512 KiB/s, SIGKILLs the processes victims
// picks (given the far serve's pids) two seconds into the stream, and
// checks that the next run resumes.
func cutAndResume(t *testing.T, victims func(t *testing.T, serve []int) []int) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "f", 4<<10)
	zfstest.MustSnapshot(t, src+"/big@one")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "cut", serveClient("cut", dst+"/laptop", nil, ""))
	cfg := writeConfig(t, replicationJob("big", "push", src+"/big", dst+"/laptop", c.remote("")+
		"  [job.replication]\n  bandwidth_limit = \"512KiB\"\n"))
	target := dst + "/laptop/" + src + "/big"

	start := time.Now()
	done := runInBackground(t, "--config", cfg, "push")
	waitUntil(t, done, "a zfs recv into the target", func() bool {
		out, _, _ := zfstest.Exec(t, "pgrep", "-f", "zfs recv .*"+target)
		return strings.TrimSpace(out) != ""
	})
	// then until it has really read part of the stream (a receive killed
	// before any data arrived leaves nothing to resume)
	waitUntil(t, done, "1 MiB read by zfs recv", func() bool { return recvBytes() >= 1<<20 })
	serve := c.farServePIDs(t)
	if len(serve) == 0 {
		t.Fatal("no far zsync serve process found")
	}
	pids := victims(t, serve)
	if len(pids) == 0 {
		t.Fatalf("nothing to kill (far serve pids %v)", serve)
	}
	for _, pid := range pids {
		t.Logf("killing pid %d after %v", pid, time.Since(start).Round(time.Millisecond))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("kill %d: %v", pid, err)
		}
	}
	mustFailWithin(t, done, 90*time.Second, "its far side was killed mid-stream")

	// The far zfs recv sees the end of its input and keeps the partial state.
	var token string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if zfstest.Exists(t, target) {
			token = zfstest.Get(t, target, "receive_resume_token")
		}
		if token != "" && token != "-" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receive_resume_token on %s:\n%s", target, zfstest.Describe(t, dst))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("resume token %.40s...", token)

	code, _, errOut := zsyncRun(t, "--config", cfg, "push")
	if code != 0 {
		t.Fatalf("resuming push: exit %d", code)
	}
	if !strings.Contains(errOut, "resume full "+src+"/big@one") {
		t.Errorf("the second run did not resume the partial receive:\n%s", errOut)
	}
	if tok := zfstest.Get(t, target, "receive_resume_token"); tok != "-" {
		t.Errorf("receive_resume_token still set: %.40s", tok)
	}
	if got := snapshotsOf(t, target); !equalStrings(got, []string{"one"}) {
		t.Errorf("target snapshots %v", got)
	}
	if got, want := sumOf(t, target, true), sumOf(t, src+"/big", false); got != want {
		t.Errorf("replica checksum %s != source %s", got, want)
	}
	// the cut run's serve must not linger either (it may take a moment to
	// see its connection gone)
	if pids := waitNone(func() []int { return c.farServePIDs(t) }); len(pids) != 0 {
		t.Errorf("far zsync serve processes still running 60s after the run: %v", pids)
	}
}

// waitNone polls list until it is empty or 60s have passed, and returns
// what it last listed.
func waitNone(list func() []int) []int {
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := list()
		if len(got) == 0 || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Several datasets at once over one SSH connection (each stream its own
// session), with zstd on the wire: data equal, abstractions in order.
func TestSSHConcurrentZstd(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	names := []string{"p", "p/a", "p/b", "p/c"}
	for _, ds := range names {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 192)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/p@s1")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", nil, ""))
	cfg := writeConfig(t, replicationJob("par", "push", src+"/p<", dst+"/laptop", c.remote("")+
		"  [job.replication]\n  concurrency = 3\n  compression = \"zstd\"\n"))
	for round, snap := range []string{"s1", "s2"} {
		if round > 0 {
			for _, ds := range names {
				zfstest.MustWriteFile(t, src+"/"+ds, "g", 64)
			}
			zfstest.Zfs(t, "snapshot", "-r", src+"/p@"+snap)
		}
		if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
			t.Fatalf("push %s: exit %d", snap, code)
		}
	}
	e := &pushEnv{src: src, dst: dst}
	for _, ds := range names {
		target := dst + "/laptop/" + src + "/" + ds
		if got, want := treeSum(t, mountReplica(t, target)), treeSum(t, zfstest.Mountpoint(t, src+"/"+ds)); got != want {
			t.Errorf("%s differs", ds)
		}
		unmount(t, target)
	}
	e.checkInvariantsAt(t, dst+"/laptop", names...)
}
