// Package zfstest is test support for the real-ZFS integration tests
// (build tag realzfs) of every zsync package: throwaway pools on sparse
// files, command helpers that fail the test with the command's stderr, and
// random data. It imports only the standard library and runs commands
// directly; it is never used outside tests.
package zfstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BaseDir is where pool files and mountpoints are created.
const BaseDir = "/var/tmp"

// env returns the environment for commands: the process's, with LC_ALL=C.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") {
			out = append(out, kv)
		}
	}
	return append(out, "LC_ALL=C")
}

// Exec runs argv and returns its stdout, stderr and error without failing
// the test (for commands expected to fail).
func Exec(t testing.TB, argv ...string) (stdout, stderr string, err error) {
	t.Helper()
	if len(argv) == 0 {
		t.Fatal("zfstest.Exec: empty argv")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	t.Logf("$ %s (%v)", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond))
	return o.String(), e.String(), err
}

// Run runs argv and returns its stdout; a failure fails the test with the
// command's stderr.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, errOut, err := Exec(t, argv...)
	if err != nil {
		t.Fatalf("%s: %v\nstderr: %s", strings.Join(argv, " "), err, errOut)
	}
	return out
}

// Zfs runs `zfs args...` with Run.
func Zfs(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"zfs"}, args...)...)
}

// Get returns one property of a dataset (`zfs get -H -p -o value`).
func Get(t testing.TB, name, prop string) string {
	t.Helper()
	return strings.TrimSpace(Zfs(t, "get", "-H", "-p", "-o", "value", prop, name))
}

// GUID returns the guid of a dataset, snapshot or bookmark.
func GUID(t testing.TB, name string) string {
	t.Helper()
	return Get(t, name, "guid")
}

// Exists reports whether a dataset, snapshot or bookmark exists.
func Exists(t testing.TB, name string) bool {
	t.Helper()
	_, _, err := Exec(t, "zfs", "list", "-H", "-o", "name", "-t", "all", name)
	return err == nil
}

// RandomSuffix returns n random hex characters.
func RandomSuffix(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)[:n]
}

// NewPool creates a pool named "zt" + random hex on a sparse file of sizeMiB
// MiB under BaseDir (at least 64 MiB, the zpool minimum), with atime and
// compression off and its mountpoint at BaseDir/<pool>. Cleanup destroys
// the pool and removes the file and the mountpoint directory.
func NewPool(t testing.TB, sizeMiB int) string {
	t.Helper()
	if sizeMiB < 64 {
		sizeMiB = 64
	}
	name := "zt" + RandomSuffix(t, 8)
	file := filepath.Join(BaseDir, name+".img")
	mnt := filepath.Join(BaseDir, name)
	f, err := os.Create(file)
	if err != nil {
		t.Fatalf("create pool file: %v", err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		t.Fatalf("size pool file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close pool file: %v", err)
	}
	t.Cleanup(func() {
		if _, errOut, err := Exec(t, "zpool", "destroy", "-f", name); err != nil {
			t.Errorf("zpool destroy %s: %v: %s", name, err, errOut)
		}
		os.Remove(file)
		os.RemoveAll(mnt)
	})
	Run(t, "zpool", "create", "-f",
		"-O", "atime=off", "-O", "compression=off",
		"-O", "mountpoint="+mnt,
		name, file)
	return name
}

// Mountpoint returns the mountpoint property of a filesystem.
func Mountpoint(t testing.TB, dataset string) string {
	t.Helper()
	return Get(t, dataset, "mountpoint")
}

// WriteRandom writes sizeKiB KiB of random (incompressible) bytes to path,
// creating or truncating it, and syncs it.
func WriteRandom(t testing.TB, path string, sizeKiB int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	defer f.Close()
	buf := make([]byte, 1<<10)
	for i := 0; i < sizeKiB; i++ {
		if _, err := rand.Read(buf); err != nil {
			t.Fatalf("random: %v", err)
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("sync %s: %v", path, err)
	}
}

// MustCreate creates a filesystem with `zfs create -p` and optional -o
// properties ("k=v").
func MustCreate(t testing.TB, dataset string, props ...string) {
	t.Helper()
	args := []string{"create", "-p"}
	for _, p := range props {
		args = append(args, "-o", p)
	}
	Zfs(t, append(args, dataset)...)
}

// MustSnapshot takes snapshots (full names) in one call.
func MustSnapshot(t testing.TB, snaps ...string) {
	t.Helper()
	Zfs(t, append([]string{"snapshot"}, snaps...)...)
}

// MustWriteFile writes random data into a file of a mounted filesystem.
func MustWriteFile(t testing.TB, dataset, file string, sizeKiB int) {
	t.Helper()
	WriteRandom(t, filepath.Join(Mountpoint(t, dataset), file), sizeKiB)
}

// KeyFile writes a passphrase key file for keyformat=passphrase datasets
// and returns its path (removed at cleanup).
func KeyFile(t testing.TB, passphrase string) string {
	t.Helper()
	if len(passphrase) < 8 {
		t.Fatalf("zfstest.KeyFile: passphrase must have at least 8 characters")
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(passphrase), 0o600); err != nil {
		t.Fatalf("write key file: %v", err)
	}
	return path
}

// Version returns `zfs version` output for the test log.
func Version(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(Run(t, "zfs", "version"))
}

// Describe returns a recursive listing of a dataset for failure messages.
func Describe(t testing.TB, root string) string {
	t.Helper()
	out, errOut, err := Exec(t, "zfs", "list", "-r", "-t", "all", "-o", "name,guid,createtxg,userrefs", root)
	if err != nil {
		return fmt.Sprintf("(zfs list failed: %v: %s)", err, errOut)
	}
	return out
}

// Send returns the bytes of `zfs send ARGS`; a failure fails the test.
func Send(t testing.TB, args ...string) []byte {
	t.Helper()
	out, errOut, err := Exec(t, append([]string{"zfs", "send"}, args...)...)
	if err != nil {
		t.Fatalf("zfs send %v: %v: %s", args, err, errOut)
	}
	return []byte(out)
}
