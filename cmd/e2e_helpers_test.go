//go:build realzfs

package cmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

func TestMain(m *testing.M) {
	// In the VM the harness passes the freshly built zsync binary: it is the
	// `zsync serve --stdio` child of local replication.
	if bin := os.Getenv("ZSYNC_BIN"); bin != "" {
		selfExe = func() (string, error) { return bin, nil }
	}
	os.Exit(m.Run())
}

// zsyncRun runs zsync in-process and returns exit code, stdout and stderr.
func zsyncRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return zsyncRunCtx(t, context.Background(), args...)
}

func zsyncRunCtx(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(ctx, append([]string{"zsync", "--log-format", "json", "--log-level", "info"}, args...), strings.NewReader(""), &out, &errb)
	t.Logf("zsync %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), tail(errb.String(), 4000))
	return code, out.String(), errb.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// writeConfig writes a config file with state_dir in a temp dir.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "zsync.toml")
	text := "[global]\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\n\n" + body
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// snapshotsOf lists the short snapshot names of a dataset, by createtxg.
func snapshotsOf(t *testing.T, ds string) []string {
	t.Helper()
	out := zfstest.Zfs(t, "list", "-H", "-p", "-d", "1", "-t", "snapshot", "-s", "createtxg", "-o", "name", ds)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		names = append(names, l[strings.IndexByte(l, '@')+1:])
	}
	return names
}

// bookmarksOf lists the short bookmark names of a dataset.
func bookmarksOf(t *testing.T, ds string) []string {
	t.Helper()
	out := zfstest.Zfs(t, "list", "-H", "-p", "-d", "1", "-t", "bookmark", "-o", "name", ds)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			names = append(names, l[strings.IndexByte(l, '#')+1:])
		}
	}
	sort.Strings(names)
	return names
}

// holdsOn lists "short-snapshot tag" pairs of every hold on a dataset's snapshots.
func holdsOn(t *testing.T, ds string) []string {
	t.Helper()
	var out []string
	for _, s := range snapshotsOf(t, ds) {
		h := zfstest.Zfs(t, "holds", "-H", ds+"@"+s)
		for _, l := range strings.Split(strings.TrimSpace(h), "\n") {
			f := strings.Split(l, "\t")
			if len(f) >= 2 {
				out = append(out, s+" "+f[1])
			}
		}
	}
	sort.Strings(out)
	return out
}

// treeSum hashes the regular files directly in dir (names and contents); it
// does not descend, so child datasets mounted below dir do not count.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() && p != dir {
			return filepath.SkipDir
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		io.WriteString(h, rel+"\x00")
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n++
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		t.Fatalf("checksum %s: %v", dir, err)
	}
	if n == 0 {
		t.Fatalf("checksum %s: no files", dir)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mountReplica mounts a received filesystem (canmount=noauto) at a temp dir
// and returns the directory; it is unmounted at cleanup.
func mountReplica(t *testing.T, ds string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	zfstest.Zfs(t, "set", "mountpoint="+dir, ds)
	zfstest.Zfs(t, "mount", ds)
	t.Cleanup(func() { zfstest.Exec(t, "zfs", "unmount", ds) })
	return dir
}

func unmount(t *testing.T, ds string) {
	t.Helper()
	zfstest.Zfs(t, "unmount", ds)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
