//go:build realzfs

package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// A push job's root changes from r1 to r2: the old relationship's cursor stays
// on the source and pins its snapshots (prune's not_replicated counts it).
// status and release-stale list it as orphaned; release-stale releases it
// only with --orphaned; then prune destroys what it pinned and the live
// relationship goes on incrementally.
func TestStaleRelationAfterRootChange(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	ds := src + "/d"
	zfstest.MustCreate(t, ds)
	zfstest.MustWriteFile(t, ds, "f1", 64)
	zfstest.MustSnapshot(t, ds+"@s1")
	cfg := writeConfig(t, "")
	setRoot := func(root string) {
		t.Helper()
		text := fmt.Sprintf(`[global]
state_dir = %q

[[job]]
name = "p"
type = "push"
datasets = ["%s"]
root = "%s"
  [job.prune]
  source = [{ not_replicated = true }, { last_n = 1, regex = "^" }]
`, cfg+".state", ds, root)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cursors := func() []string {
		t.Helper()
		var out []string
		for _, b := range bookmarksOf(t, ds) {
			if strings.HasPrefix(b, "zsync_cursor_") {
				out = append(out, b)
			}
		}
		return out
	}

	setRoot(dst + "/r1")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push to r1: exit %d", code)
	}
	c := cursors()
	if len(c) != 1 {
		t.Fatalf("cursors after the first push: %v, want one", c)
	}
	oldCursor := c[0]
	oldID := oldCursor[len("zsync_cursor_T") : len("zsync_cursor_T")+16]

	zfstest.MustWriteFile(t, ds, "f2", 64)
	zfstest.MustSnapshot(t, ds+"@s2")
	zfstest.MustWriteFile(t, ds, "f3", 64)
	zfstest.MustSnapshot(t, ds+"@s3")
	setRoot(dst + "/r2")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push to r2: exit %d", code)
	}
	if c := cursors(); len(c) != 2 {
		t.Fatalf("cursors after the root change: %v, want the old and the new one", c)
	}

	// status shows the dead relationship and what it pins
	code, out, _ := zsyncRun(t, "--config", cfg, "status")
	if code != 0 || !strings.Contains(out, "orphaned") || !strings.Contains(out, oldID) || !strings.Contains(out, ds+"@s1") {
		t.Errorf("status: exit %d, does not show the orphaned relationship %s pinning %s@s1:\n%s", code, oldID, ds, out)
	}
	code, out, _ = zsyncRun(t, "--config", cfg, "status", "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d", code)
	}
	var st []struct {
		Datasets []struct {
			Source    string `json:"source"`
			Relations []struct {
				ID                 string   `json:"relation_id"`
				State              string   `json:"state"`
				Protects           []string `json:"protects"`
				NotReplicatedKeeps []string `json:"not_replicated_keeps"`
			} `json:"stale_relations"`
		} `json:"datasets"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	found := false
	for _, js := range st {
		for _, d := range js.Datasets {
			for _, r := range d.Relations {
				if d.Source == ds && r.ID == oldID && r.State == "orphaned" &&
					equalStrings(r.Protects, []string{ds + "@s1"}) && len(r.NotReplicatedKeeps) > 0 && r.NotReplicatedKeeps[0] == ds+"@s2" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("status --json does not show relationship %s on %s as orphaned, protecting @s1 and keeping @s2:\n%s", oldID, ds, out)
	}

	// without --orphaned: listed, not released
	code, out, _ = zsyncRun(t, "--config", cfg, "holds", "release-stale")
	if code != 0 {
		t.Fatalf("release-stale: exit %d", code)
	}
	if !strings.Contains(out, "orphaned") || !strings.Contains(out, oldID) || !strings.Contains(out, "one-off") || !strings.Contains(out, ds+"@s1") {
		t.Errorf("release-stale does not list the orphaned relationship %s with its reason and pinned snapshot:\n%s", oldID, out)
	}
	if c := cursors(); len(c) != 2 {
		t.Fatalf("release-stale without --orphaned changed the cursors: %v", c)
	}
	// a dry run with --orphaned changes nothing either
	code, out, _ = zsyncRun(t, "--config", cfg, "holds", "release-stale", "--orphaned", "--dry-run")
	if code != 0 || !strings.Contains(out, "would destroy "+ds+"#"+oldCursor) {
		t.Errorf("release-stale --orphaned --dry-run: exit %d, does not say it would destroy %s:\n%s", code, oldCursor, out)
	}
	if c := cursors(); len(c) != 2 {
		t.Fatalf("release-stale --orphaned --dry-run changed the cursors: %v", c)
	}

	code, _, _ = zsyncRun(t, "--config", cfg, "holds", "release-stale", "--orphaned")
	if code != 0 {
		t.Fatalf("release-stale --orphaned: exit %d", code)
	}
	c = cursors()
	if len(c) != 1 || c[0] == oldCursor || strings.Contains(c[0], oldID) {
		t.Fatalf("cursors after release-stale --orphaned: %v, want only the live one", c)
	}
	if got := snapshotsOf(t, ds); !equalStrings(got, []string{"s1", "s2", "s3"}) {
		t.Fatalf("release-stale destroyed snapshots: %v", got)
	}

	// what the dead cursor pinned is pruned now
	if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	if got := snapshotsOf(t, ds); !equalStrings(got, []string{"s3"}) {
		t.Errorf("after prune: %v, want only s3 (the live cursor's)", got)
	}

	// the live relationship: one cursor, one last-received hold, incremental
	e := &pushEnv{src: src, dst: dst}
	e.checkInvariantsAt(t, dst+"/r2", "d")
	zfstest.MustWriteFile(t, ds, "f4", 64)
	zfstest.MustSnapshot(t, ds+"@s4")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push after release and prune: exit %d", code)
	}
	if got := snapshotsOf(t, dst+"/r2/"+ds); !equalStrings(got, []string{"s3", "s4"}) {
		t.Errorf("r2 after the incremental push: %v, want s3 and s4", got)
	}
	e.checkInvariantsAt(t, dst+"/r2", "d")
}
