//go:build realzfs

package cmd

import (
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// Two datasets of one job whose names strip_components makes alike map to
// one target. Neither may replicate: before this check both were sent to
// it, one got the replica and the other failed ("destination exists",
// seen on OpenZFS 2.3 with two datasets at a time), so the replica held
// whichever source won. Both fail now, saying which sources clash, and the
// target root gets nothing (no replica, no rotated copy, though the job
// would rotate a diverged one); a second run does the same.
func TestSharedTargetWithinJobRefused(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"one", "two"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustCreate(t, src+"/"+ds+"/data")
		zfstest.MustWriteFile(t, src+"/"+ds+"/data", "f", 64)
		zfstest.MustSnapshot(t, src+"/"+ds+"/data@s1")
	}
	zfstest.MustCreate(t, dst+"/backup")
	cfg := writeConfig(t, "[[job]]\nname = \"clash\"\ntype = \"push\"\n"+
		"datasets = [\""+src+"/one/data\", \""+src+"/two/data\"]\nroot = \""+dst+"/backup\"\n"+
		"  [job.replication]\n  strip_components = 2\n  on_diverged = \"rotate\"\n")
	for run := 1; run <= 2; run++ {
		code, _, stderr := zsyncRun(t, "--config", cfg, "push")
		if code != 1 {
			t.Errorf("run %d: exit %d, want 1 (both datasets failed)", run, code)
		}
		for _, ds := range []string{"one", "two"} {
			other := map[string]string{"one": "two", "two": "one"}[ds]
			want := src + "/" + ds + "/data maps to the target " + dst + "/backup/data, and so does " + src + "/" + other + "/data"
			if !strings.Contains(stderr, want) {
				t.Errorf("run %d: stderr lacks %q", run, want)
			}
		}
		out := zfstest.Zfs(t, "list", "-H", "-r", "-o", "name", dst+"/backup")
		if got := strings.Fields(out); len(got) != 1 || got[0] != dst+"/backup" {
			t.Fatalf("run %d: the target root holds %v, want nothing below it", run, got)
		}
	}
}
