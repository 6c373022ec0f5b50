package cmd

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/state"
)

// A snapshot dated in the future (the clock was ahead when it was taken)
// keeps its dataset from being due until the clock passes it. zsync does
// not take snapshots past it, but says so at every run: a warning naming
// the snapshot, a warning in the run report, and metrics that neither
// export its time (the age monitoring computes would be negative and never
// alert) nor hide it (zsync_future_dated_snapshots).
func TestFutureDatedSnapshot(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	future, past := now.Add(10*24*time.Hour), now.Add(-3*time.Hour)
	bin, calls := fakeZFSBinary(t, monListing(
		monFS("tank", 1),
		monFS("tank/a", 2), monSnap("tank/a", "", 11, 5, past), monSnap("tank/a", "", 12, 6, future),
		monFS("tank/b", 3), monSnap("tank/b", "", 21, 7, future),
		monFS("tank/c", 4), monSnap("tank/c", "", 31, 8, past),
	))
	cfg, stateDir := monConfig(t, bin, "[[job]]\nname = \"s\"\ntype = \"snap\"\ndatasets = [\"tank/a\", \"tank/b\", \"tank/c\"]\n  [job.snapshot]\n  interval = \"1h\"\n")
	code, _, errOut := runUnit(t, "--config", cfg, "--log-format", "text", "snap")
	if code != ExitOK {
		t.Fatalf("exit %d, want 0 (a warning, not a failure):\n%s", code, errOut)
	}
	name := func(ds string, tm time.Time) string { return ds + "@" + snap.Name("zsync_", tm) }

	// one warning per future-dated dataset, at the default level off a
	// terminal (warn), naming the snapshot and when snapshots resume
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 2 {
		t.Fatalf("stderr has %d lines, want 2 warnings:\n%s", len(lines), errOut)
	}
	for i, ds := range []string{"tank/a", "tank/b"} {
		l := lines[i]
		resume := snap.NextDue(future, time.Hour).UTC().Format(time.RFC3339)
		// the run reads the clock after the test did: by then a second
		// (or two, on a loaded machine) may have passed
		if !reDated240h.MatchString(l) {
			t.Errorf("warning %q does not say it is dated about 240h in the future", l)
		}
		for _, s := range []string{" WARN snapshots stopped: ", "not due before " + resume,
			"rename " + name(ds, future), "dataset=" + ds, "snapshot=" + name(ds, future)} {
			if !strings.Contains(l, s) {
				t.Errorf("warning %q does not say %q", l, s)
			}
		}
	}

	// the due rule is unchanged: only tank/c gets a snapshot
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count("\n"+string(b), "\nsnapshot "); n != 1 || !strings.Contains(string(b), "\nsnapshot tank/c@") {
		t.Errorf("zfs calls:\n%s\nwant one snapshot, of tank/c", b)
	}

	rr, err := state.ReadRunReport(stateDir, "s")
	if err != nil {
		t.Fatal(err)
	}
	if rr.Result != "ok" || rr.ErrorKind != "" {
		t.Errorf("result %q, error_kind %q; want ok", rr.Result, rr.ErrorKind)
	}
	for _, d := range rr.Datasets {
		warned := len(d.Warnings) == 1 && strings.Contains(d.Warnings[0], "snapshots stopped: ") && strings.Contains(d.Warnings[0], name(d.Source, future))
		if want := d.Source != "tank/c"; warned != want || len(d.Warnings) > 1 {
			t.Errorf("%s: status %q, warnings %q; want a future-dated warning: %v", d.Source, d.Status, d.Warnings, want)
		}
	}
	marks := func(ms []state.SnapshotMark) string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%s=%s@%d", m.Dataset, m.Snapshot, m.Time.Unix()))
		}
		return strings.Join(out, " ")
	}
	// tank/a's newest believable snapshot is the one before; tank/b has
	// none; tank/c's is the one just taken
	if got := marks(rr.Snapshots); len(rr.Snapshots) != 2 || !strings.HasPrefix(got, fmt.Sprintf("tank/a=%s@%d tank/c=tank/c@zsync_", name("tank/a", past), past.Unix())) || rr.Snapshots[1].Time.Before(now) {
		t.Errorf("snapshots %s, want tank/a's from %v and tank/c's new one", got, past)
	}
	if got, want := marks(rr.FutureDated), fmt.Sprintf("tank/a=%s@%d tank/b=%s@%d", name("tank/a", future), future.Unix(), name("tank/b", future), future.Unix()); got != want {
		t.Errorf("future_dated %s, want %s", got, want)
	}

	m, err := os.ReadFile(metricsFileOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	text := string(m)
	for _, s := range []string{
		fmt.Sprintf("zsync_newest_snapshot_timestamp_seconds{job=\"s\",dataset=\"tank/a\"} %d\n", past.Unix()),
		"zsync_future_dated_snapshots{job=\"s\",dataset=\"tank/a\"} 1\n",
		"zsync_future_dated_snapshots{job=\"s\",dataset=\"tank/b\"} 1\n",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("metrics lack %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "zsync_newest_snapshot_timestamp_seconds{job=\"s\",dataset=\"tank/b\"}") || strings.Contains(text, fmt.Sprint(future.Unix())) {
		t.Errorf("metrics export the future-dated snapshot's time:\n%s", text)
	}
}

// reDated240h matches "dated 240h0m0s in the future", or a second or two
// less.
var reDated240h = regexp.MustCompile(`dated (240h0m0s|239h59m5[89]s) in the future`)
