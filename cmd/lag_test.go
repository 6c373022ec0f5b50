package cmd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// entries parses monEntry values into the zfs.Entry values describe sees.
func entries(t *testing.T, es ...monEntry) []zfs.Entry {
	t.Helper()
	var out []zfs.Entry
	for _, e := range es {
		out = append(out, zfs.Entry{Name: e.name, Type: zfs.Type(e.typ), GUID: e.guid, CreateTXG: e.txg, Creation: e.created.UTC().Truncate(time.Second)})
	}
	return out
}

// The last replicated snapshot is the newest target snapshot the source has
// a version of (by GUID), else the one with the relationship's
// last-received hold, else the run report's mark; never a snapshot the
// target took itself.
func TestLastReplicated(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	day := func(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }
	const src, tgt = "tank/a", "backup/tank/a"
	srcFS, tgtFS := monFS(src, 1), monFS(tgt, 1)
	s1, s2 := monSnap(src, "s1", 11, 5, day(1)), monSnap(src, "s2", 12, 6, day(2))
	r1, r2 := monSnap(tgt, "s1", 11, 7, day(1)), monSnap(tgt, "s2", 12, 8, day(2))
	own := monSnap(tgt, "autosnap_hourly", 99, 60, day(10)) // the backup host's own
	cursor2 := monBookmark(src, "zsync_cursor_x", 12, 6, day(2))
	mark := &state.SnapshotMark{Dataset: src, Snapshot: src + "@s2", Time: day(2).Add(time.Minute)}
	for _, c := range []struct {
		name    string
		sl, dl  []monEntry
		held    []string
		mark    *state.SnapshotMark
		want    string // name, or "" for none
		created time.Time
		basis   string
	}{
		{"the newest one the source has", []monEntry{srcFS, s1, s2}, []monEntry{tgtFS, r1, r2}, nil, nil, tgt + "@s2", day(2), basisSource},
		{"a newer snapshot of the target's own does not count", []monEntry{srcFS, s1, s2}, []monEntry{tgtFS, r1, r2, own}, nil, nil, tgt + "@s2", day(2), basisSource},
		{"newest by createtxg, not by name or time", []monEntry{srcFS, s1, s2}, []monEntry{tgtFS, r2, monSnap(tgt, "s1", 11, 9, day(1))}, nil, nil, tgt + "@s1", day(1), basisSource},
		{"a source bookmark is a version of the source", []monEntry{srcFS, s1, cursor2}, []monEntry{tgtFS, r1, r2, own}, nil, nil, tgt + "@s2", day(2), basisSource},
		{"a same-named snapshot of another GUID is not the source's", []monEntry{srcFS, s1, s2}, []monEntry{tgtFS, r1, monSnap(tgt, "s2", 77, 8, day(3))}, nil, nil, tgt + "@s1", day(1), basisSource},
		{"source pruned: the held snapshot", []monEntry{srcFS}, []monEntry{tgtFS, r1, r2, own}, []string{tgt + "@s2"}, mark, tgt + "@s2", day(2), basisHold},
		{"the held snapshot when newer than what the source still has", []monEntry{srcFS, s1}, []monEntry{tgtFS, r1, r2, own}, []string{tgt + "@s2"}, nil, tgt + "@s2", day(2), basisHold},
		{"no hold, no version: the report's mark, by its snapshot on the target", []monEntry{srcFS}, []monEntry{tgtFS, r1, r2, own}, nil, mark, tgt + "@s2", day(2), basisReport},
		{"the report's mark, its own time when the target lacks that name", []monEntry{srcFS}, []monEntry{tgtFS, r1, own}, nil, mark, src + "@s2", mark.Time, basisReport},
		{"only the target's own snapshots: none", []monEntry{srcFS, s1, s2}, []monEntry{tgtFS, own}, nil, nil, "", time.Time{}, ""},
		{"no target dataset: none, whatever the report says", []monEntry{srcFS, s1, s2}, []monEntry{monFS("backup", 1)}, nil, mark, "", time.Time{}, ""},
		{"another dataset's snapshots do not count", []monEntry{srcFS, s1, monSnap("tank/b", "x", 55, 9, day(3))},
			[]monEntry{tgtFS, monSnap("backup/tank/b", "x", 55, 10, day(3))}, nil, nil, "", time.Time{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			held := map[string]bool{}
			for _, h := range c.held {
				held[h] = true
			}
			got, ok := lastReplicated(src, tgt, entries(t, c.sl...), entries(t, c.dl...), held, c.mark)
			if ok != (c.want != "") || got.Name != c.want || !got.Created.Equal(c.created) || got.Basis != c.basis {
				t.Errorf("got %+v (ok %v), want %s created %v basis %q", got, ok, c.want, c.created, c.basis)
			}
		})
	}
}

// Source snapshot age counts the job's own snapshots when it takes them
// (a push job with an interval), any snapshot otherwise.
func TestNewestSourceSnapshot(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ours := monSnap("tank/a", "", 11, 5, now.Add(-10*time.Hour))
	other := monSnap("tank/a", "autosnap_2026-11-01_11:55:00_frequently", 12, 6, now.Add(-5*time.Minute))
	sl := entries(t, monFS("tank/a", 1), ours, other, monSnap("tank/a", "zsync_manual", 13, 4, now))

	push := &jobConfig{Name: "home", Type: "push"}
	pushSnaps := &jobConfig{Name: "home", Type: "push"}
	pushSnaps.Snapshot.Interval.Duration = time.Hour
	pushSnaps.Snapshot.Prefix = "zsync_"
	pull := &jobConfig{Name: "home", Type: "pull"}
	pull.Snapshot.Interval.Duration = time.Hour
	for _, c := range []struct {
		j            *jobConfig
		prefix, want string
	}{
		{push, "", other.name},           // replicates what others take: any snapshot
		{pushSnaps, "zsync_", ours.name}, // takes its own: only those, named prefix+time
		{pull, "", other.name},           // the far side snapshots, under its own prefix
	} {
		p := sourceSnapshotPrefix(c.j)
		got := newestSourceSnapshot("tank/a", sl, p)
		if p != c.prefix || got == nil || got.Name != c.want {
			t.Errorf("%s job (interval %v): prefix %q, newest %+v; want %q, %s", c.j.Type, c.j.Snapshot.Interval.Duration, p, got, c.prefix, c.want)
		}
	}
	if got := newestSourceSnapshot("tank/a", entries(t, monFS("tank/a", 1), other), "zsync_"); got != nil {
		t.Errorf("newest with the prefix among none: %+v", got)
	}
}

// The reviewer's case: the last replicated snapshot is 10 days old and the
// backup host snapshots its own pool (autosnap, 5 minutes ago). check
// judges the real lag (CRITICAL, or WARNING between the thresholds) and
// status names the replicated snapshot, not the target's own.
func TestCheckLagIgnoresTheTargetsOwnSnapshots(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name   string
		age    time.Duration // of the last replicated snapshot
		level  checkLevel
		status string
		perf   string
	}{
		{"10 days", 240 * time.Hour, checkCritical, "ZSYNC CRITICAL: home tank/a: lag 1w3d (critical 4h), newest source snapshot 10m old", "'home:tank/a lag'=864000s;7200;14400;0"},
		{"3 hours", 3 * time.Hour, checkWarning, "ZSYNC WARNING: home tank/a: lag 3h (warning 2h), newest source snapshot 10m old", "'home:tank/a lag'=10800s;7200;14400;0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := now.Add(-c.age)
			src := fakeEndpoint(monListing(monFS("tank", 1), monFS("tank/a", 2), monSnap("tank/a", "", 11, 5, old),
				monSnap("tank/a", "", 12, 50, now.Add(-10*time.Minute))), "", "")
			dst := fakeEndpoint(monListing(monFS("backup", 1), monFS("backup/tank", 2), monFS("backup/tank/a", 3), monSnap("backup/tank/a", "", 11, 6, old),
				monSnap("backup/tank/a", "autosnap_hourly", 99, 60, now.Add(-5*time.Minute))), "", "")
			job := tankAJob(t)
			j := &jobConfig{Name: "home", Type: "push", Root: "backup"}
			j.Snapshot.Interval.Duration = time.Hour
			ds, err := describe(context.Background(), j, job, src, dst, now, nil, nil)
			if err != nil || len(ds) != 1 {
				t.Fatalf("describe: %v %+v", err, ds)
			}
			if want := "backup/tank/a@" + zsyncName(old); ds[0].LastSnapshot != want || ds[0].LastSnapshotBasis != basisSource {
				t.Errorf("last replicated %q (%s), want %q by the source", ds[0].LastSnapshot, ds[0].LastSnapshotBasis, want)
			}
			r := &checkResult{}
			r.judgeJob(j, jobStatus{Job: "home", Type: "push", Datasets: ds,
				LastRun: &state.RunReport{Job: "home", Command: "run", Start: now.Add(-10 * time.Minute), Result: "ok"}}, now)
			out := r.render()
			status, perf, _ := checkOutput(t, out)
			if r.level != c.level || status != c.status || len(perf) != 2 || perf[0] != c.perf {
				t.Errorf("check:\n%s\nwant %v %q, perfdata %s", out, c.level, c.status, c.perf)
			}
			var b bytes.Buffer
			writeStatus(&b, []jobStatus{{Job: "home", Type: "push", Datasets: ds}}, now)
			if !strings.Contains(b.String(), "last replicated: backup/tank/a@"+zsyncName(old)+", lag "+humanAge(c.age)+",") {
				t.Errorf("status:\n%s", b.String())
			}
		})
	}
}

func zsyncName(t time.Time) string { return monSnap("x", "", 0, 0, t).name[len("x@"):] }

// The source side of the same: a push job that snapshots is judged by its
// own snapshots, not by a fresh one some other tool took.
func TestCheckSourceAgeCountsTheJobsOwnSnapshots(t *testing.T) {
	now := time.Now()
	src := fakeEndpoint(monListing(monFS("tank", 1), monFS("tank/a", 2), monSnap("tank/a", "", 11, 5, now.Add(-5*time.Hour)),
		monSnap("tank/a", "autosnap_frequently", 12, 50, now.Add(-5*time.Minute))), "", "")
	dst := fakeEndpoint(monListing(monFS("backup", 1), monFS("backup/tank", 2), monFS("backup/tank/a", 3),
		monSnap("backup/tank/a", "autosnap_frequently", 12, 60, now.Add(-5*time.Minute))), "", "")
	job := tankAJob(t)
	snaps := &jobConfig{Name: "home", Type: "push", Root: "backup"}
	snaps.Snapshot.Interval.Duration = time.Hour
	noSnaps := &jobConfig{Name: "home", Type: "push", Root: "backup"}
	noSnaps.Check = checkConfig{LagWarning: setDur(2 * time.Hour), LagCritical: setDur(4 * time.Hour), SnapshotWarning: setDur(2 * time.Hour), SnapshotCritical: setDur(4 * time.Hour)}
	for _, c := range []struct {
		j      *jobConfig
		status string
	}{
		{snaps, "ZSYNC CRITICAL: home tank/a: lag 5m, newest source snapshot 5h old (critical 4h)"},
		{noSnaps, "ZSYNC OK: 1 job(s), 1 dataset(s) checked"},
	} {
		ds, err := describe(context.Background(), c.j, job, src, dst, now, nil, nil)
		if err != nil || len(ds) != 1 {
			t.Fatalf("describe: %v %+v", err, ds)
		}
		r := &checkResult{}
		r.judgeJob(c.j, jobStatus{Job: "home", Type: "push", Datasets: ds, LastRun: &state.RunReport{Start: now, Result: "ok"}}, now)
		if status, _, _ := checkOutput(t, r.render()); status != c.status {
			t.Errorf("interval %v: %q, want %q", c.j.Snapshot.Interval.Duration, status, c.status)
		}
	}
}

// The last-received hold and the run report stand in for a source that
// pruned the replicated snapshot (and its cursor); status says which.
func TestStatusLagWhenTheSourcePrunedIt(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	const rootTID = zsync.TargetID("0123456789abcdef")
	own := zsync.RelationID(rootTID, "backup/tank/a")
	recv := monSnap("backup/tank/a", "s2", 22, 9, now.Add(-3*time.Hour))
	recv.userrefs = 1
	src := fakeEndpoint(monListing(monFS("tank", 1), monFS("tank/a", 2), monSnap("tank/a", "s3", 23, 10, now.Add(-time.Minute))), "", "")
	listing := monListing(monFS("backup", 1), monFS("backup/tank", 2), monFS("backup/tank/a", 3), recv,
		monSnap("backup/tank/a", "autosnap", 99, 12, now.Add(-time.Minute)))
	job := tankAJob(t)
	j := &jobConfig{Name: "home", Type: "push", Root: "backup"}
	mark := []state.SnapshotMark{{Dataset: "tank/a", Snapshot: "tank/a@s2", Time: now.Add(-3 * time.Hour)}}

	for _, c := range []struct {
		name, holds, basis, note string
	}{
		{"held", "backup/tank/a@s2\t" + zsync.LastReceivedHoldTag(own) + "\tx\n", basisHold, " (by its last-received hold: the source no longer has it)"},
		{"not held", "", basisReport, " (by the last run report: neither the source nor a hold identifies it now)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := fakeEndpoint(listing, "backup\tzsync:target-id\t"+string(rootTID)+"\tlocal\n", c.holds)
			ds, err := describe(context.Background(), j, job, src, dst, now, nil, mark)
			if err != nil || len(ds) != 1 {
				t.Fatalf("describe: %v %+v", err, ds)
			}
			d := ds[0]
			if d.LastSnapshot != "backup/tank/a@s2" || d.LastSnapshotBasis != c.basis || seconds(d.LagSeconds).Round(time.Second) != 3*time.Hour {
				t.Errorf("last replicated %q (%s), lag %v; want backup/tank/a@s2 (%s), 3h", d.LastSnapshot, d.LastSnapshotBasis, seconds(d.LagSeconds), c.basis)
			}
			var b bytes.Buffer
			writeStatus(&b, []jobStatus{{Job: "home", Type: "push", Datasets: ds}}, now)
			if !strings.Contains(b.String(), "last replicated: backup/tank/a@s2"+c.note+", lag 3h,") {
				t.Errorf("status:\n%s", b.String())
			}
		})
	}
}

// A snap job whose snapshots look fresh (another job shares its prefix)
// but which has not run for hours: check says so. A job without a report
// says that it has none; an unreadable report is UNKNOWN.
func TestCheckRunAge(t *testing.T) {
	now := time.Now()
	bin, _ := fakeZFSBinary(t, monListing(monFS("tank/db", 1), monSnap("tank/db", "", 11, 5, now.Add(-10*time.Minute))))
	cfg, stateDir := monConfig(t, bin, "[[job]]\nname = \"db\"\ntype = \"snap\"\ndatasets = [\"tank/db\"]\n  [job.snapshot]\n  interval = \"1h\"\n")

	code, out, _ := runUnit(t, "--config", cfg, "check")
	if status, _, long := checkOutput(t, out); code != 0 || status != "ZSYNC OK: 1 job(s), 1 dataset(s) checked" || len(long) != 2 || long[0] != "OK db: no run recorded yet" {
		t.Errorf("no report yet: exit %d\n%s", code, out)
	}

	for _, c := range []struct {
		ago, took time.Duration
		code      int
		status    string
	}{
		{10 * time.Minute, time.Minute, 0, "ZSYNC OK: 1 job(s), 1 dataset(s) checked"},
		{150 * time.Minute, 0, 1, "ZSYNC WARNING: db: no run for 2h30m (warning 2h), the last ended "},
		{10 * time.Hour, time.Hour, 2, "ZSYNC CRITICAL: db: no run for 9h (critical 4h), the last ended "},
	} {
		start := now.Add(-c.ago)
		if err := state.WriteRunReport(stateDir, state.RunReport{Job: "db", Command: "run", Start: start, Duration: c.took.Seconds(), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runUnit(t, "--config", cfg, "check")
		status, perf, _ := checkOutput(t, out)
		if code != c.code || !strings.HasPrefix(status, c.status) || len(perf) != 1 {
			t.Errorf("last run %v ago: exit %d\n%s\nwant %d, %q", c.ago, code, out, c.code, c.status)
		}
		if c.code != 0 && !strings.HasSuffix(status, start.Add(c.took).Local().Format(time.DateTime)) {
			t.Errorf("status %q does not say when the last run ended", status)
		}
	}

	if err := os.WriteFile(state.ReportPath(stateDir, "db"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runUnit(t, "--config", cfg, "check")
	if status, _, _ := checkOutput(t, out); code != 3 || !strings.HasPrefix(status, "ZSYNC UNKNOWN: db: cannot read its last run report: run report of db: ") {
		t.Errorf("unreadable report: exit %d\n%s", code, out)
	}
	code, out, _ = runUnit(t, "--config", cfg, "status")
	if code != 0 || !strings.HasPrefix(out, "job db (snap): cannot read its last run report: run report of db: ") {
		t.Errorf("status with an unreadable report: exit %d\n%s", code, out)
	}
}

// tankAJob is job "home" replicating tank/a into the root "backup".
func tankAJob(t *testing.T) *zsync.Job {
	t.Helper()
	filter, err := zfs.ParseFilter([]string{"tank/a"})
	if err != nil {
		t.Fatal(err)
	}
	return &zsync.Job{Name: "home", Datasets: filter, TargetRoot: "backup",
		Map: func(s string) (string, error) { return zsync.TargetName("backup", s, 0) }}
}
