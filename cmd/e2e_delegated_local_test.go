//go:build realzfs

package cmd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// A push run by a non-root user with only the README's `zfs allow` sets on
// both pools (issue 13): zfs program is for root, so the cursors are made
// and destroyed one call per bookmark, and the relationship is as after a
// root's run (one cursor and one last-received hold per dataset, no step
// hold left), on the first run and on an incremental one.
func TestPushAsDelegatedUser(t *testing.T) {
	bin := os.Getenv("ZSYNC_BIN")
	if bin == "" {
		t.Fatal("ZSYNC_BIN must name the zsync binary, which this test runs as another user")
	}
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	datasets := []string{"data", "data/a", "data/b"}
	snapshotTree(t, src, datasets, 1)

	user := "zsdel" + zfstest.RandomSuffix(t, 6)
	zfstest.Run(t, "useradd", "-M", "-s", "/bin/sh", user)
	t.Cleanup(func() {
		if _, errOut, err := zfstest.Exec(t, "userdel", "-f", user); err != nil {
			t.Errorf("userdel %s: %v: %s", user, err, errOut)
		}
	})
	zfstest.Zfs(t, "allow", "-u", user, documentedAllow(t, "sender"), src+"/data")
	zfstest.Zfs(t, "allow", "-u", user, documentedAllow(t, "receiver"), dst)

	// the config, state and the call log in a directory the user owns
	dir, err := os.MkdirTemp("", "zsdel")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "zsync.toml")
	body := fmt.Sprintf("[global]\nstate_dir = %q\n\n[[job]]\nname = \"push\"\ntype = \"push\"\ndatasets = [\"%s/data<\"]\nroot = \"%s/backup\"\n", filepath.Join(dir, "state"), src, dst)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	real, err := exec.LookPath("zfs")
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls")
	wrapper := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %q\nexec %s \"$@\"\n", log, real)
	if err := os.WriteFile(filepath.Join(dir, "zfs"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	zfstest.Run(t, "chown", "-R", user, dir)
	zfstest.Run(t, "chmod", "0755", dir)

	push := func(what string) []string {
		t.Helper()
		_ = os.Remove(log)
		cmd := exec.Command("runuser", "-u", user, "--", "env", "PATH="+dir+":"+os.Getenv("PATH"), bin, "--config", cfg, "push")
		out, err := cmd.CombinedOutput()
		t.Logf("%s as %s: %v\n%s", what, user, err, out)
		if err != nil {
			t.Fatalf("%s as the delegated user failed: %v", what, err)
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		calls := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("%s: %d zfs calls (%s)", what, len(calls), byVerb(calls))
		return calls
	}
	e := &pushEnv{src: src, dst: dst}
	push("the first push")
	e.checkInvariants(t, datasets...)

	for _, ds := range datasets {
		zfstest.MustWriteFile(t, src+"/"+ds, "g", 16)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s2")
	calls := push("the incremental push")
	e.checkInvariants(t, datasets...)
	for _, ds := range datasets {
		if got, want := zfstest.GUID(t, e.target(ds)+"@s2"), zfstest.GUID(t, src+"/"+ds+"@s2"); got != want {
			t.Errorf("%s@s2: guid %s on the target, %s on the source", ds, got, want)
		}
	}
	var programs, bookmarks int
	for _, c := range calls {
		switch f := strings.Fields(c); {
		case len(f) > 0 && f[0] == "program":
			programs++
		case len(f) > 0 && f[0] == "bookmark":
			bookmarks++
		}
	}
	// one refused program, then each cursor by itself
	if programs > 1 || bookmarks != len(datasets) {
		t.Errorf("the incremental push ran %d channel programs and %d zfs bookmark calls, want at most 1 (refused) and %d", programs, bookmarks, len(datasets))
	}

	// Replicas without zsync's cursor and last-received hold (as after a
	// seed by zfs send -R): the delegated user's run makes each cursor by
	// itself, and the holds one call per depth.
	for _, ds := range datasets {
		for _, b := range bookmarksOf(t, src+"/"+ds) {
			zfstest.Zfs(t, "destroy", src+"/"+ds+"#"+b)
		}
		for _, h := range holdsOn(t, e.target(ds)) {
			snap, tag, _ := strings.Cut(h, " ")
			zfstest.Zfs(t, "release", tag, e.target(ds)+"@"+snap)
		}
	}
	calls = push("the push onto replicas without cursors and holds")
	e.checkInvariants(t, datasets...)
	n := map[string]int{}
	for _, c := range calls {
		if f := strings.Fields(c); len(f) > 0 {
			n[f[0]]++
		}
	}
	const levels = 2
	if n["bookmark"] != len(datasets) || n["hold"] < 1 || n["hold"] > levels || n["send"]+n["recv"] > 0 {
		t.Errorf("adopting as the delegated user: %d bookmark, %d hold, %d send and %d recv calls; want %d, 1 to %d, none and none", n["bookmark"], n["hold"], n["send"], n["recv"], len(datasets), levels)
	}
}
