//go:build realzfs

package cmd

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// patternFile is 1 MiB of numbered markers ("ZSYNCHEAL00000000|" ...), so
// that a block of it can be found in the pool's file.
func patternFile() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "ZSYNCHEAL%08d|", i)
	}
	return b.Bytes()[:1<<20]
}

// corruptBlock overwrites the bytes of marker inside the file of pool
// (exported meanwhile, so that nothing is cached) and imports it again.
func corruptBlock(t *testing.T, pool, marker string) {
	t.Helper()
	img := filepath.Join(zfstest.BaseDir, pool+".img")
	zfstest.Run(t, "zpool", "export", pool)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(marker))
	if at < 0 || bytes.Index(data[at+1:], []byte(marker)) >= 0 {
		t.Fatalf("marker %q found %d times in %s, want once", marker, bytes.Count(data, []byte(marker)), img)
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("X", len(marker))), int64(at)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	zfstest.Run(t, "zpool", "import", "-d", zfstest.BaseDir, pool)
}

// zfsAtLeast22 reports whether the OpenZFS here has corrective receive.
func zfsAtLeast22(t *testing.T) bool {
	t.Helper()
	m := regexp.MustCompile(`zfs-(\d+)\.(\d+)`).FindStringSubmatch(zfstest.Version(t))
	if m == nil {
		t.Fatalf("cannot read the OpenZFS version from %q", zfstest.Version(t))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major > 2 || major == 2 && minor >= 2
}

// A block of a file under a snapshot is overwritten in the source pool's
// vdev; a scrub reports the file damaged. zsync heal repairs it from the
// replica with a corrective receive on OpenZFS 2.2 and later: the file
// reads back whole, and scrubs then find nothing. On older OpenZFS it
// refuses with a message and changes nothing.
func TestHealRepairsCorruption(t *testing.T) {
	e := newPushEnv(t, "")
	want := patternFile()
	file := filepath.Join(zfstest.Mountpoint(t, e.src+"/data"), "pattern")
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@s1")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, tail(errOut, 2000))
	}
	if code, out, _ := zsyncRun(t, "--config", e.cfg, "heal"); code != 0 || !strings.Contains(out, "no damage reported") {
		t.Errorf("heal of a healthy pool: exit %d\n%s", code, out)
	}

	corruptBlock(t, e.src, "ZSYNCHEAL00020000|")
	zfstest.Run(t, "zpool", "scrub", "-w", e.src)
	status := zfstest.Run(t, "zpool", "status", "-v", e.src)
	if !strings.Contains(status, "Permanent errors") {
		t.Fatalf("the corruption was not found by a scrub:\n%s", status)
	}
	t.Logf("after the corruption:\n%s", status)

	code, out, errOut := zsyncRun(t, "--config", e.cfg, "heal", "--dry-run")
	if code != 0 || !strings.Contains(out, "would repair "+e.src+"/data@s1 (source) from "+e.target("data")+"@s1") {
		t.Fatalf("heal --dry-run: exit %d\n%s\n%s", code, out, tail(errOut, 2000))
	}

	code, out, errOut = zsyncRun(t, "--config", e.cfg, "heal")
	if !zfsAtLeast22(t) {
		if code != 1 || !strings.Contains(out, "2.2 or later") {
			t.Errorf("heal on OpenZFS before 2.2: exit %d, want 1 and a message naming 2.2\n%s\n%s", code, out, tail(errOut, 2000))
		}
		if s := snapshotsOf(t, e.src+"/data"); !equalStrings(s, []string{"first snap", "s1"}) {
			t.Errorf("the refused heal changed the snapshots: %v", s)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "repaired "+e.src+"/data@s1 (source)") {
		t.Fatalf("heal: exit %d\n%s\n%s", code, out, tail(errOut, 2000))
	}
	t.Logf("heal:\n%s", out)
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the repaired file does not read back: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Errorf("the repaired file differs from what was written")
	}
	// the error list keeps what the last scrub found until a scrub
	// finds nothing
	for range 2 {
		zfstest.Run(t, "zpool", "scrub", "-w", e.src)
	}
	status = zfstest.Run(t, "zpool", "status", "-v", e.src)
	if !strings.Contains(status, "No known data errors") {
		t.Errorf("scrubs after the heal still find errors:\n%s", status)
	}
	t.Logf("after the heal and two scrubs:\n%s", status)
	e.checkInvariants(t, "data", "data/child", "data/with space")
}
