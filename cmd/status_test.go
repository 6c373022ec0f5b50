package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// fakeEndpoint is a zfs CLI on a fake runner that answers every `zfs
// list` with listing, `zfs get` with the given property lines and `zfs
// holds` with the given hold lines (name TAB tag TAB time).
func fakeEndpoint(listing, get, holds string) *zfs.CLI {
	f := zfs.NewFakeRunner()
	f.Fallback = func(c zfs.Cmd) (zfs.FakeResponse, bool) {
		switch c.Argv[1] {
		case "list":
			return zfs.FakeResponse{Stdout: listing}, true
		case "get":
			return zfs.FakeResponse{Stdout: get}, true
		case "holds":
			return zfs.FakeResponse{Stdout: holds}, true
		}
		return zfs.FakeResponse{}, false
	}
	return zfs.New(zfs.WithRunner(f))
}

// status shows every relationship on a job's datasets that is not its own:
// another configured job's (other_relations, "live"), and the stale ones
// (stale_relations): orphaned, or unknown such as another host's
// last-received hold on the target.
func TestStatusShowsOtherJobsAndStaleRelations(t *testing.T) {
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	const rootTID, otherTID, orphanTID, foreignTID = zsync.TargetID("0123456789abcdef"), zsync.TargetID("1111111111111111"), zsync.TargetID("2222222222222222"), zsync.TargetID("3333333333333333")
	own := zsync.RelationID(rootTID, "backup/tank/home")
	src := fakeEndpoint(monListing(
		monFS("tank", 1), monFS("tank/home", 2),
		monSnap("tank/home", "s1", 21, 5, t0),
		monSnap("tank/home", "s2", 22, 6, t0.Add(time.Hour)),
		monBookmark("tank/home", zsync.CursorName(own, 22), 22, 6, t0.Add(time.Hour)),
		monBookmark("tank/home", zsync.CursorName(otherTID, 22), 22, 6, t0.Add(time.Hour)),
		monBookmark("tank/home", zsync.CursorName(orphanTID, 21), 21, 5, t0),
	), "", "")
	recv := monSnap("backup/tank/home", "s2", 22, 9, t0.Add(time.Hour))
	recv.userrefs = 2
	dst := fakeEndpoint(monListing(monFS("backup", 1), monFS("backup/tank", 2), monFS("backup/tank/home", 3), recv),
		"backup\tzsync:target-id\t"+string(rootTID)+"\tlocal\n",
		"backup/tank/home@s2\t"+zsync.LastReceivedHoldTag(own)+"\tx\nbackup/tank/home@s2\t"+zsync.LastReceivedHoldTag(foreignTID)+"\tx\n")
	filter, err := zfs.ParseFilter([]string{"tank/home"})
	if err != nil {
		t.Fatal(err)
	}
	job := &zsync.Job{Name: "home", Datasets: filter, TargetRoot: "backup",
		Map: func(s string) (string, error) { return zsync.TargetName("backup", s, 0) }}
	j := &jobConfig{Name: "home", Type: "push", Root: "backup"}
	lv := &liveness{live: map[zsync.TargetID]string{otherTID: "job other: tank/home -> b2/tank/home"},
		local: []zsync.Claim{{Side: zsync.ReceiverSide, Reason: "a last-received hold on a replica: a push from another host may own it"}}}

	ds, err := describe(context.Background(), j, job, src, dst, time.Now(), lv, nil)
	if err != nil || len(ds) != 1 {
		t.Fatalf("describe: %v %+v", err, ds)
	}
	d := ds[0]
	if d.Cursors != 1 || d.LastHolds != 1 || d.LastSnapshot != "backup/tank/home@s2" {
		t.Errorf("own abstractions: %+v", d)
	}
	states := func(rs []relationStatus) map[string]string {
		m := map[string]string{}
		for _, r := range rs {
			m[r.ID] = r.State + " " + r.Side
		}
		return m
	}
	if got := states(d.OtherRelations); len(got) != 1 || got[string(otherTID)] != "live source" {
		t.Errorf("other relations %v, want %s live on the source", got, otherTID)
	}
	if got := states(d.StaleRelations); len(got) != 2 || got[string(orphanTID)] != "orphaned source" || got[string(foreignTID)] != "unknown target" {
		t.Errorf("stale relations %v, want %s orphaned (source) and %s unknown (target)", got, orphanTID, foreignTID)
	}

	var out bytes.Buffer
	writeStatus(&out, []jobStatus{{Job: "home", Type: "push", Datasets: ds}}, time.Now())
	for _, want := range []string{
		"orphaned relationship " + string(orphanTID) + " on tank/home (source side): no configured job uses it",
		"prune never destroys tank/home@s1",
		"unknown relationship (another host's or an unchecked job's) " + string(foreignTID) + " on backup/tank/home (target side): a last-received hold",
		"relationship of another job " + string(otherTID) + " on tank/home (source side): used by job other: tank/home -> b2/tank/home",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// status shows the last successful run next to a failed last run.
func TestStatusShowsTheLastSuccessfulRun(t *testing.T) {
	now := time.Now()
	okRun := &state.RunReport{Job: "home", Command: "run", Start: now.Add(-26 * time.Hour), Result: "ok", Bytes: 3 << 20}
	failed := &state.RunReport{Job: "home", Command: "push", Start: now.Add(-time.Hour), Result: "failed", ErrorKind: "ssh_auth",
		Error: "open target: ssh authentication failed", LastSuccess: okRun.Start}
	var out bytes.Buffer
	writeStatus(&out, []jobStatus{
		{Job: "home", Type: "push", LastRun: failed, LastSuccessfulRun: okRun},
		{Job: "old", Type: "push", LastRun: failed}, // only the time (reports of older versions)
		{Job: "new", Type: "push", LastRun: &state.RunReport{Command: "push", Start: now, Result: "failed"}},
	}, now)
	for _, want := range []string{
		"job home (push): last run push " + failed.Start.Local().Format(time.DateTime) + " (1h ago) failed, 0 B",
		"  last run failed (ssh_auth): open target: ssh authentication failed",
		"  last successful run: run " + okRun.Start.Local().Format(time.DateTime) + " (1d2h ago), 3.0 MiB",
		"job old (push)",
		"  last successful run: " + okRun.Start.Local().Format(time.DateTime) + " (1d2h ago)",
		"  no successful run recorded",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// status covers snap jobs: per dataset the newest snapshot with the job's
// prefix and its age, whether one is due, the relationships found on it
// (a cursor no configured job uses), the last run and the last successful
// run from the state dir.
func TestStatusOfASnapJob(t *testing.T) {
	now := time.Now()
	bin, _ := fakeZFSBinary(t, monListing(
		monFS("tank/db", 1),
		monSnap("tank/db", "", 11, 5, now.Add(-20*time.Minute)),
		monBookmark("tank/db", zsync.CursorName("4444444444444444", 11), 11, 5, now.Add(-20*time.Minute)),
		monFS("tank/www", 2),
	))
	cfg, stateDir := monConfig(t, bin, "[[job]]\nname = \"snaps\"\ntype = \"snap\"\ndatasets = [\"tank/db\", \"tank/www\"]\n  [job.snapshot]\n  interval = \"1h\"\n")
	okStart := now.Add(-2 * time.Hour)
	for _, r := range []state.RunReport{
		{Job: "snaps", Command: "snap", Start: okStart, Result: "ok"},
		{Job: "snaps", Command: "snap", Start: now.Add(-time.Minute), Result: "partial", ErrorKind: "zfs_no_space", Error: "tank/www: failed: out of space"},
	} {
		if err := state.WriteRunReport(stateDir, r); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runUnit(t, "--config", cfg, "status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"job snaps (snap): last run snap ",
		"  last run failed (zfs_no_space): tank/www: failed: out of space",
		"  last successful run: snap " + okStart.Local().Format(time.DateTime),
		"  tank/db\n    newest snapshot: tank/db@zsync_",
		", 20m old\n",
		"    orphaned relationship 4444444444444444 on tank/db (source side)",
		"  tank/www\n    newest snapshot: (none with the job's prefix), due\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runUnit(t, "--config", cfg, "status", "--json")
	var st []jobStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	if len(st) != 1 || len(st[0].Snapshots) != 2 || st[0].LastSuccessfulRun == nil || !st[0].LastSuccessfulRun.Start.Equal(okStart) ||
		st[0].Snapshots[1].AgeSeconds != -1 || !st[0].Snapshots[1].Due || len(st[0].Snapshots[0].StaleRelations) != 1 {
		t.Errorf("status --json:\n%s", out)
	}
}

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 400 * time.Millisecond: "0s", 45 * time.Second: "45s", 12*time.Minute + 20*time.Second: "12m",
		3*time.Hour + 20*time.Minute + 10*time.Second: "3h20m", 50 * time.Hour: "2d2h", -90 * time.Second: "-2m",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, want)
		}
	}
}
