//go:build realzfs

package cmd

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// dryRunPlan parses the keep/destroy lines of `prune --dry-run`: the
// datasets they name (sorted, once each) and the full names of the
// snapshots they would destroy (sorted).
func dryRunPlan(t *testing.T, out string) (datasets, destroy []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		verb, rest, ok := strings.Cut(l, " ")
		if !ok || (verb != "keep" && verb != "destroy") {
			continue
		}
		// "<verb> <dataset>@<snapshot> (<reasons>)"; the names in these
		// tests have no " (".
		full, _, _ := strings.Cut(rest, " (")
		at := strings.IndexByte(full, '@')
		if at < 0 {
			t.Fatalf("dry-run line without a snapshot: %q", l)
		}
		if ds := full[:at]; !seen[ds] {
			seen[ds] = true
			datasets = append(datasets, ds)
		}
		if verb == "destroy" {
			destroy = append(destroy, full)
		}
	}
	sort.Strings(datasets)
	sort.Strings(destroy)
	return datasets, destroy
}

// snapshotSets records the snapshots of datasets, to compare after a run.
func snapshotSets(t *testing.T, datasets ...string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, ds := range datasets {
		m[ds] = snapshotsOf(t, ds)
	}
	return m
}

// checkUnchanged fails for every dataset whose snapshots differ from before.
func checkUnchanged(t *testing.T, before map[string][]string) {
	t.Helper()
	for ds, want := range before {
		if got := snapshotsOf(t, ds); !equalStrings(got, want) {
			t.Errorf("%s: snapshots %v, want them untouched: %v", ds, got, want)
		}
	}
}

// bystander creates a filesystem (not mounted) that is no job's replica,
// with two snapshots.
func bystander(t *testing.T, ds string) {
	t.Helper()
	zfstest.MustCreate(t, ds, "canmount=off")
	zfstest.MustSnapshot(t, ds+"@s1")
	zfstest.MustSnapshot(t, ds+"@s2")
}

// twoSources makes a source pool with datasets x and y, each with three
// snapshots zsync_1..3 (taken together), and an empty target pool.
func twoSources(t *testing.T, x, y string) (src, dst string) {
	t.Helper()
	src, dst = zfstest.NewPool(t, 128), zfstest.NewPool(t, 192)
	for _, ds := range []string{x, y} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 32)
	}
	for i := 1; i <= 3; i++ {
		zfstest.MustSnapshot(t, fmt.Sprintf("%s/%s@zsync_%d", src, x, i), fmt.Sprintf("%s/%s@zsync_%d", src, y, i))
	}
	return src, dst
}

// Two push jobs share one root (SPEC §4). Pruning job a's target touches
// a's replica only: never job b's replicas, a rotated copy of a's target, or
// datasets that merely sit below the root (beside or below a's replica).
func TestPruneTargetScopeSharedRoot(t *testing.T) {
	src, dst := twoSources(t, "a", "b")
	root := dst + "/backup"
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "b"
type = "push"
datasets = ["%[1]s/b"]
root = "%[2]s"
  [job.replication]
  initial = "all"

[[job]]
name = "a"
type = "push"
datasets = ["%[1]s/a"]
root = "%[2]s"
  [job.replication]
  initial = "all"
  on_diverged = "rotate"
  [job.prune]
  target = [{ last_n = 1, regex = "^" }]
`, src, root))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "a", "b"); code != 0 {
		t.Fatalf("push: exit %d", code)
	}
	ta, tb := root+"/"+src+"/a", root+"/"+src+"/b"

	// a's target diverges; the next push renames it aside and starts fresh
	zfstest.MustSnapshot(t, ta+"@local change")
	zfstest.MustWriteFile(t, src+"/a", "g", 32)
	zfstest.MustSnapshot(t, src+"/a@zsync_4")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "a"); code != 0 {
		t.Fatalf("push with rotate: exit %d", code)
	}
	var rotated string
	for _, l := range strings.Split(zfstest.Zfs(t, "list", "-H", "-o", "name", "-r", root), "\n") {
		if strings.HasPrefix(l, ta+".zsync-rotated-") {
			rotated = l
		}
	}
	if rotated == "" {
		t.Fatal("no rotated copy of a's target")
	}
	if got := snapshotsOf(t, ta); !equalStrings(got, []string{"zsync_1", "zsync_2", "zsync_3", "zsync_4"}) {
		t.Fatalf("a's fresh target: %v", got)
	}
	other, stray := root+"/other", ta+"/stray"
	bystander(t, other)
	bystander(t, stray)
	keep := snapshotSets(t, tb, rotated, other, stray)
	if !equalStrings(keep[tb], []string{"zsync_1", "zsync_2", "zsync_3"}) ||
		!equalStrings(keep[rotated], []string{"zsync_1", "zsync_2", "zsync_3", "local change"}) {
		t.Fatalf("set-up: b's replica %v, rotated copy %v", keep[tb], keep[rotated])
	}

	code, out, _ := zsyncRun(t, "--config", cfg, "prune", "--dry-run", "a")
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	dsets, planned := dryRunPlan(t, out)
	want := []string{ta + "@zsync_1", ta + "@zsync_2", ta + "@zsync_3"}
	if !equalStrings(dsets, []string{ta}) {
		t.Errorf("dry run decides on %v, want only a's replica %s", dsets, ta)
	}
	if !equalStrings(planned, want) {
		t.Errorf("dry run would destroy %v, want %v", planned, want)
	}
	checkUnchanged(t, keep)
	if got := snapshotsOf(t, ta); len(got) != 4 {
		t.Errorf("dry run changed a's target: %v", got)
	}

	if code, _, _ := zsyncRun(t, "--config", cfg, "prune", "a"); code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	checkUnchanged(t, keep)
	if got := snapshotsOf(t, ta); !equalStrings(got, []string{"zsync_4"}) {
		t.Errorf("a's target after prune: %v, want [zsync_4] (last_n = 1)", got)
	}
}

// A pull job's target prune touches only its own replicas: with the far side
// up, its sources listed through serve; with the far side down, nothing
// (an error), since a name below the root does not prove whose replica a
// dataset is (another job's replica may sit below this job's, or a dataset
// that is no replica).
func TestPruneTargetScopePull(t *testing.T) {
	src, dst := twoSources(t, "p", "q")
	root := dst + "/pulled"
	jobs := func(pJob string) string {
		return writeConfig(t, fmt.Sprintf(`
[[job]]
name = "q"
type = "pull"
datasets = ["%[1]s/q"]
root = "%[2]s"
  [job.replication]
  initial = "all"

[[job]]
name = "p"
type = "pull"
datasets = ["%[1]s/p"]
root = "%[2]s"
%[3]s`, src, root, pJob))
	}
	// a far side that is down: nothing listens on the port (a usable key
	// and known_hosts, so that the connection itself fails)
	key := newClientKey(t, "down", "")
	down := fmt.Sprintf(`
  [job.remote]
  host = "127.0.0.1"
  port = 1
  user = "root"
  identity_file = %q
  known_hosts = %q
  connect_timeout = "10s"
`, key.identity, key.knownHosts)
	cfg := jobs(`
  [job.replication]
  initial = "all"
  [job.prune]
  target = [{ last_n = 1, regex = "^" }]
`)
	cfgDown := jobs(down + `
  [job.replication]
  initial = "all"
  [job.prune]
  target = [{ last_n = 1, regex = "^" }]
`)
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull", "p", "q"); code != 0 {
		t.Fatalf("pull: exit %d", code)
	}
	tp, tq := root+"/"+src+"/p", root+"/"+src+"/q"
	rotated, other, stray := tp+".zsync-rotated-20260101T000000Z", root+"/other", tp+"/stray"
	for _, ds := range []string{rotated, other, stray} {
		bystander(t, ds)
	}
	keep := snapshotSets(t, tq, rotated, other, stray)
	if !equalStrings(keep[tq], []string{"zsync_1", "zsync_2", "zsync_3"}) {
		t.Fatalf("set-up: q's replica %v", keep[tq])
	}

	// far side down: no guessing, nothing destroyed, for strip_components
	// 0 and 1 alike
	for _, strip := range []string{"", "  strip_components = 1\n"} {
		c := strings.Replace(cfgDown, "  initial = \"all\"\n  [job.prune]", "  initial = \"all\"\n"+strip+"  [job.prune]", 1)
		code, _, errOut := zsyncRun(t, "--config", c, "prune", "p")
		if code == 0 {
			t.Errorf("prune with the far side down (%q): exit 0, want an error", strip)
		}
		if !strings.Contains(errOut, "nothing there is pruned") {
			t.Errorf("the error does not explain why the target was not pruned:\n%s", errOut)
		}
		checkUnchanged(t, keep)
		if got := snapshotsOf(t, tp); len(got) != 3 {
			t.Errorf("p's target changed although the prune refused: %v", got)
		}
	}

	// far side up: the job's sources come from serve
	code, out, _ := zsyncRun(t, "--config", cfg, "prune", "--dry-run", "p")
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	dsets, planned := dryRunPlan(t, out)
	if !equalStrings(dsets, []string{tp}) || !equalStrings(planned, []string{tp + "@zsync_1", tp + "@zsync_2"}) {
		t.Errorf("dry run: datasets %v, destroy %v; want only %s@zsync_1 and @zsync_2", dsets, planned, tp)
	}
	if code, _, _ := zsyncRun(t, "--config", cfg, "prune", "p"); code != 0 {
		t.Fatalf("prune: exit %d", code)
	}
	checkUnchanged(t, keep)
	if got := snapshotsOf(t, tp); !equalStrings(got, []string{"zsync_3"}) {
		t.Errorf("p's target after prune: %v, want [zsync_3]", got)
	}
}

// longSnapshots takes n snapshots of each of datasets, whose short names
// are 225 bytes long: one `zfs snapshot` call per name, for all datasets
// at once (one call cannot take several snapshots of one filesystem:
// "multiple snapshots of same fs not allowed", and neither can one txg).
// It checks that one `zfs destroy ds@a,b,...` of them would be longer than
// Linux's MAX_ARG_STRLEN (131072 bytes with the NUL).
func longSnapshots(t *testing.T, n int, datasets ...string) {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("long_%04d_%s", i, strings.Repeat("x", 215)) // full names stay below 256 bytes
	}
	for _, ds := range datasets {
		if arg := ds + "@" + strings.Join(names, ","); len(arg)+1 <= 131072 {
			t.Fatalf("set-up: the batched argument is only %d bytes", len(arg))
		}
	}
	for _, n := range names {
		full := make([]string, len(datasets))
		for i, ds := range datasets {
			full[i] = ds + "@" + n
		}
		zfstest.MustSnapshot(t, full...)
	}
}

// A prune destroys more snapshots than fit in one zfs argument: with the
// local zfs (a snap job) and through the far side, serve (a pull job
// pruning its source).
func TestPruneDestroyPastArgLimit(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	local, far := src+"/local", src+"/far"
	for _, ds := range []string{local, far} {
		zfstest.MustCreate(t, ds)
		zfstest.MustWriteFile(t, ds, "f", 32)
	}
	longSnapshots(t, 600, local, far)
	zfstest.MustSnapshot(t, local+"@zz_newest", far+"@zz_newest")
	cfg := writeConfig(t, fmt.Sprintf(`
[[job]]
name = "l"
type = "snap"
datasets = ["%s"]
  [job.snapshot]
  interval = "1h"
  [job.prune]
  source = [{ last_n = 1 }]

[[job]]
name = "f"
type = "pull"
datasets = ["%s"]
root = "%s/pulled"
  [job.prune]
  source = [{ last_n = 1 }]
`, local, far, dst))
	if code, _, _ := zsyncRun(t, "--config", cfg, "pull", "f"); code != 0 {
		t.Fatalf("pull: exit %d", code)
	}
	for _, job := range []string{"l", "f"} {
		if code, _, _ := zsyncRun(t, "--config", cfg, "prune", job); code != 0 {
			t.Errorf("prune %s: exit %d", job, code)
		}
	}
	for _, ds := range []string{local, far} {
		if got := snapshotsOf(t, ds); !equalStrings(got, []string{"zz_newest"}) {
			t.Errorf("%s after prune: %d snapshots left, want only zz_newest", ds, len(got))
		}
	}
}
