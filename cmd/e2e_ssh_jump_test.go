//go:build realzfs

package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// A push through a jump host named by ~/.ssh/config's ProxyJump, the way
// administrators reach a backup host behind a bastion: the jump key may
// only forward to the target's sshd, the target key only run zsync serve.
// The data arrives intact; with proxy_jump = "none" the run connects
// directly and no longer needs the bastion's key; a one-off push takes
// the jump host from -J.
func TestSSHProxyJump(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 256)
	zfstest.MustSnapshot(t, src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	target := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", nil, ""))
	// The bastion key: no shell, no sessions, forwarding to 127.0.0.1:22 only.
	jump := newClientKey(t, "bastion", "/nonexistent.toml")
	marker := "zsync-e2e-" + zfstest.RandomSuffix(t, 12)
	authorize(t, fmt.Sprintf(`restrict,port-forwarding,permitopen="127.0.0.1:22",command="/bin/false" %s %s`, jump.pub, marker), marker)

	home := t.TempDir()
	t.Setenv("HOME", home)
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sshConfig := fmt.Sprintf(`Host bastion
  HostName 127.0.0.1
  User root
  IdentityFile %s

Host backup
  HostName 127.0.0.1
  ProxyJump bastion
`, jump.identity)
	if err := os.WriteFile(filepath.Join(sshDir, "config"), []byte(sshConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// the job names the ssh_config alias, not the address
	remote := func(extra string) string {
		return strings.Replace(target.remote(extra), `host = "127.0.0.1"`, `host = "backup"`, 1)
	}
	cfg := writeConfig(t, replicationJob("jumped", "push", src+"/data", dst+"/laptop", remote(""))+
		replicationJob("direct", "push", src+"/data", dst+"/laptop", remote(`  proxy_jump = "none"`)))

	replica := dst + "/laptop/" + src + "/data"
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "jumped"); code != 0 {
		t.Fatalf("push through the jump host: exit %d\n%s", code, errOut)
	}
	// sshd's own record: the bastion key logged in (the jump), then the
	// job's key (the target, through the forwarded channel).
	jumpLogins, targetLogins := sshdLogins(t, jump.pub), sshdLogins(t, target.pub)
	if jumpLogins != 1 || targetLogins != 1 {
		t.Fatalf("sshd accepted the bastion key %d times and the job's key %d times, want 1 and 1", jumpLogins, targetLogins)
	}
	if got := snapshotsOf(t, replica); !equalStrings(got, []string{"one"}) {
		t.Fatalf("replica snapshots %v", got)
	}
	if got, want := sumOf(t, replica, true), sumOf(t, src+"/data", false); got != want {
		t.Errorf("replica checksum %s != source %s", got, want)
	}

	// The bastion key cannot reach the target's zsync itself: without the
	// jump, the job's own key is the one that must work.
	zfstest.MustWriteFile(t, src+"/data", "g", 64)
	zfstest.MustSnapshot(t, src+"/data@two")
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "direct"); code != 0 {
		t.Fatalf("direct push with proxy_jump = none: exit %d\n%s", code, errOut)
	}
	if got := snapshotsOf(t, replica); !equalStrings(got, []string{"one", "two"}) {
		t.Errorf("replica snapshots %v", got)
	}
	if n := sshdLogins(t, jump.pub); n != jumpLogins {
		t.Errorf("the direct run logged in to the bastion (%d logins, was %d)", n, jumpLogins)
	}

	// One-off from a shell: -J names the jump host, whose ssh_config block
	// gives the bastion key.
	oneoff := dst + "/laptop/oneoff"
	if code, _, errOut := zsyncRun(t, "push", "--state-dir", t.TempDir(), "-J", "bastion", "-i", target.identity,
		"--known-hosts", target.knownHosts, src+"/data", "root@127.0.0.1:"+oneoff); code != 0 {
		t.Fatalf("one-off push with -J: exit %d\n%s", code, errOut)
	}
	if got := snapshotsOf(t, oneoff); !equalStrings(got, []string{"two"}) {
		t.Errorf("one-off replica snapshots %v, want [two]", got)
	}
	if n := sshdLogins(t, jump.pub); n != jumpLogins+1 {
		t.Errorf("the one-off run logged in to the bastion %d times, want 1", n-jumpLogins)
	}
}

// sshdLogins counts the guest sshd's "Accepted publickey" log lines for
// the key (authorized_keys format), from the journal.
func sshdLogins(t *testing.T, pub string) int {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(k)
	// journald writes asynchronously: flush what it has before counting
	if _, errOut, err := zfstest.Exec(t, "journalctl", "--sync"); err != nil {
		t.Fatalf("journalctl --sync: %v: %s", err, errOut)
	}
	out, errOut, err := zfstest.Exec(t, "journalctl", "--no-pager", "-o", "cat", "-u", "ssh.service")
	if err != nil {
		t.Fatalf("journalctl: %v: %s", err, errOut)
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Accepted publickey for ") && strings.HasSuffix(l, " "+fp) {
			n++
		}
	}
	return n
}
