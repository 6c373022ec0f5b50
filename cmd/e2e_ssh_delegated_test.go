//go:build realzfs

package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// documentedAllow returns the permission set the README's "The far side"
// section gives for role ("sender" or "receiver"): the test applies the
// documentation literally.
func documentedAllow(t *testing.T, role string) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(l, "* "+role+": `zfs allow -u ") {
			continue
		}
		f := strings.Fields(strings.Trim(strings.SplitN(l, "`", 3)[1], "`"))
		// zfs allow -u USER PERMS DATASET
		if len(f) == 6 {
			return f[4]
		}
	}
	t.Fatalf("README.md documents no %s permission set", role)
	return ""
}

// newDelegatedUser makes a throwaway user that may run only the forced
// command with the client's key (its own authorized_keys), and returns its
// name; the user and its home are removed at cleanup.
func newDelegatedUser(t *testing.T, c *sshClient) string {
	t.Helper()
	user := "zse2e" + zfstest.RandomSuffix(t, 6)
	zfstest.Run(t, "useradd", "-m", "-s", "/bin/sh", user)
	t.Cleanup(func() {
		if _, errOut, err := zfstest.Exec(t, "userdel", "-r", "-f", user); err != nil {
			t.Errorf("userdel %s: %v: %s", user, err, errOut)
		}
	})
	home := "/home/" + user
	line := c.authorizedLine() + "\n"
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home+"/.ssh/authorized_keys", []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	zfstest.Run(t, "chown", "-R", user+":"+user, home+"/.ssh")
	return user
}

// Push to and pull from a non-root user holding only the README's
// documented `zfs allow` sets (receiver on the receive root, sender on the
// sent datasets): full and incremental transfers work.
func TestSSHDelegatedUser(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f1", 256)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@one")
	zfstest.MustCreate(t, dst+"/laptop")
	zfstest.MustCreate(t, dst+"/pulled")

	// The far serve runs as the user: its config must be readable by it.
	dir, err := os.MkdirTemp(zfstest.BaseDir, "zsync-e2e-serve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newClientKey(t, "delegated", filepath.Join(dir, "serve.toml"))
	serveBody := serveClient("delegated", dst+"/laptop", []string{src + "/data<"}, "")
	if err := os.WriteFile(c.serveCfg, []byte(serveBody), 0o644); err != nil {
		t.Fatal(err)
	}
	user := newDelegatedUser(t, c)
	remote := strings.Replace(c.remote(""), `user = "root"`, fmt.Sprintf("user = %q", user), 1)
	cfg := writeConfig(t, replicationJob("up", "push", src+"/data<", dst+"/laptop", remote)+
		replicationJob("down", "pull", src+"/data<", dst+"/pulled", remote))

	// Without the delegation the far side, running as the user, can do
	// nothing: proof that it is not root.
	before := listAll(t, dst)
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "up"); code == 0 {
		t.Fatalf("push to %s without zfs allow: exit 0", user)
	} else if !strings.Contains(strings.ToLower(errOut), "permission denied") {
		t.Errorf("push to %s without zfs allow: no permission error:\n%s", user, errOut)
	}
	if after := listAll(t, dst); after != before {
		t.Errorf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	recvPerms, sendPerms := documentedAllow(t, "receiver"), documentedAllow(t, "sender")
	zfstest.Zfs(t, "allow", "-u", user, recvPerms, dst+"/laptop")
	zfstest.Zfs(t, "allow", "-u", user, sendPerms, src+"/data")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "up"); code != 0 {
		t.Fatalf("push to %s (zfs allow %s): exit %d", user, recvPerms, code)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull", "down"); code != 0 {
		t.Fatalf("pull from %s (zfs allow %s): exit %d", user, sendPerms, code)
	}
	checkPushedAndPulled(t, src, dst, "one")
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustWriteFile(t, src+"/"+ds, "f2", 128)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@two")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "up"); code != 0 {
		t.Fatalf("incremental push to %s: exit %d", user, code)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull", "down"); code != 0 {
		t.Fatalf("incremental pull from %s: exit %d", user, code)
	}
	checkPushedAndPulled(t, src, dst, "one", "two")
	// the far side's zsync state is where it belongs
	for _, ds := range []string{"data", "data/child"} {
		var cursors int
		for _, b := range bookmarksOf(t, src+"/"+ds) {
			if strings.HasPrefix(b, "zsync_cursor_") {
				cursors++
			}
		}
		if cursors != 2 {
			t.Errorf("%s: %d cursor bookmarks, want 2 (one per target): %v", ds, cursors, bookmarksOf(t, src+"/"+ds))
		}
	}
}
