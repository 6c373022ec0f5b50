package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// datasetStatus is one dataset's replication state, for status and check.
type datasetStatus struct {
	Job    string `json:"job"`
	Source string `json:"source"`
	Target string `json:"target"`
	// LastSnapshot is the last snapshot replicated into Target: the newest
	// target snapshot that is a version of the source (by GUID), never one
	// the target took itself (see lastReplicated); LastSnapshotBasis says
	// how it was found ("source", "last_received_hold", "last_run_report").
	LastSnapshot      string  `json:"last_replicated_snapshot,omitempty"`
	LastSnapshotBasis string  `json:"last_replicated_basis,omitempty"`
	LagSeconds        float64 `json:"lag_seconds"` // now - LastSnapshot's creation; -1: none
	// NewestSource is the newest source snapshot, of those with
	// SnapshotPrefix when that is set (a push job that snapshots; see
	// sourceSnapshotPrefix), of any name otherwise.
	NewestSource   string  `json:"newest_source_snapshot,omitempty"`
	SourceAgeSecs  float64 `json:"newest_source_snapshot_age_seconds"` // -1: none
	SnapshotPrefix string  `json:"snapshot_prefix,omitempty"`
	Resumable      bool    `json:"resumable"`
	Cursors        int     `json:"cursor_bookmarks"`
	StepHolds      int     `json:"step_holds"`
	LastHolds      int     `json:"last_received_holds"`
	// StaleRelations are the other relationships on the dataset (its
	// source, or its target) that no configured job uses (orphaned) or that
	// cannot be checked from here (unknown: another host's, say), with what
	// they pin.
	StaleRelations []relationStatus `json:"stale_relations,omitempty"`
	// OtherRelations are the relationships on the dataset that another
	// configured job uses now.
	OtherRelations []relationStatus `json:"other_relations,omitempty"`
	Error          string           `json:"error,omitempty"`
}

// snapshotStatus is one dataset of a snap job: its newest snapshot with the
// job's prefix, and the relationships found on it (a snap job has none of
// its own, so every one is another job's or stale).
type snapshotStatus struct {
	Dataset        string           `json:"dataset"`
	Newest         string           `json:"newest_snapshot,omitempty"`
	AgeSeconds     float64          `json:"newest_snapshot_age_seconds"` // -1: none with the prefix
	Due            bool             `json:"due"`
	StaleRelations []relationStatus `json:"stale_relations,omitempty"`
	OtherRelations []relationStatus `json:"other_relations,omitempty"`
}

// relationStatus is a relationship that is not this job's, found on one of
// the job's datasets: stale (orphaned or unknown) or another job's (live).
type relationStatus struct {
	ID                 string   `json:"relation_id"`
	Dataset            string   `json:"dataset"`
	Side               string   `json:"side"`  // source | target
	State              string   `json:"state"` // orphaned | unknown | live (another configured job's)
	Reason             string   `json:"reason"`
	Objects            []string `json:"objects"`
	Protects           []string `json:"protects"`             // snapshots prune never destroys because of it
	NotReplicatedKeeps []string `json:"not_replicated_keeps"` // snapshots not_replicated keeps only because of its cursor
}

type jobStatus struct {
	Job     string           `json:"job"`
	Type    string           `json:"type"`
	LastRun *state.RunReport `json:"last_run,omitempty"`
	// LastSuccessfulRun is the report of the last fully successful run
	// (the last run itself when it succeeded).
	LastSuccessfulRun *state.RunReport `json:"last_successful_run,omitempty"`
	Datasets          []datasetStatus  `json:"datasets"`
	Snapshots         []snapshotStatus `json:"snapshots,omitempty"` // snap jobs
	Error             string           `json:"error,omitempty"`
	ErrorKind         string           `json:"error_kind,omitempty"`
	err               error            // Error's error, for check
	// ReportError is why the last run report could not be read (not when
	// there is none yet: LastRun is nil then).
	ReportError string `json:"report_error,omitempty"`
}

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "per job and dataset: last replicated snapshot, lag, resumable state, holds and bookmarks owned, " +
			"last run's and last successful run's result, other jobs' and stale relationships; snap jobs: newest snapshot",
		ArgsUsage: "[JOB...]",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(*jobConfig) bool { return true })
			if err != nil {
				return err
			}
			lv := e.liveness(c.Context, cfg)
			now := time.Now()
			var all []jobStatus
			for _, j := range jobs {
				all = append(all, e.jobStatus(c.Context, cfg, j, now, lv))
			}
			if c.Bool("json") {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			writeStatus(e.stdout, all, now)
			return nil
		},
	}
}

// writeStatus prints status for people.
func writeStatus(w io.Writer, all []jobStatus, now time.Time) {
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), humanAge(now.Sub(t)))
	}
	for _, js := range all {
		fmt.Fprintf(w, "job %s (%s)", js.Job, js.Type)
		if r := js.LastRun; r != nil {
			fmt.Fprintf(w, ": last run %s %s %s", r.Command, ago(r.Start), r.Result)
			if js.Type != "snap" {
				fmt.Fprintf(w, ", %s", ibytes(r.Bytes))
			}
		} else if js.ReportError != "" {
			fmt.Fprintf(w, ": cannot read its last run report: %s", js.ReportError)
		} else {
			fmt.Fprint(w, ": no run recorded")
		}
		fmt.Fprintln(w)
		if r := js.LastRun; r != nil && r.Result != "ok" {
			if r.Error != "" {
				kind := ""
				if r.ErrorKind != "" {
					kind = " (" + r.ErrorKind + ")"
				}
				fmt.Fprintf(w, "  last run failed%s: %s\n", kind, r.Error)
			}
			switch {
			case js.LastSuccessfulRun != nil:
				fmt.Fprintf(w, "  last successful run: %s %s, %s\n", js.LastSuccessfulRun.Command, ago(js.LastSuccessfulRun.Start), ibytes(js.LastSuccessfulRun.Bytes))
			case !r.LastSuccess.IsZero():
				fmt.Fprintf(w, "  last successful run: %s\n", ago(r.LastSuccess))
			default:
				fmt.Fprintln(w, "  no successful run recorded")
			}
		}
		if js.Error != "" {
			fmt.Fprintf(w, "  cannot list its datasets now: %s\n", js.Error)
		}
		for _, d := range js.Datasets {
			fmt.Fprintf(w, "  %s -> %s\n", d.Source, d.Target)
			if d.Error != "" {
				fmt.Fprintf(w, "    error: %s\n", d.Error)
				continue
			}
			if d.LastSnapshot == "" {
				fmt.Fprintf(w, "    last replicated: (none), resumable: %v\n", d.Resumable)
			} else {
				fmt.Fprintf(w, "    last replicated: %s%s, lag %s, resumable: %v\n", d.LastSnapshot, basisNote(d.LastSnapshotBasis), humanAge(seconds(d.LagSeconds)), d.Resumable)
			}
			switch {
			case d.NewestSource != "":
				fmt.Fprintf(w, "    newest source snapshot: %s, %s old\n", d.NewestSource, humanAge(seconds(d.SourceAgeSecs)))
			case d.SnapshotPrefix != "":
				fmt.Fprintf(w, "    newest source snapshot: (none with the job's prefix %s)\n", d.SnapshotPrefix)
			}
			fmt.Fprintf(w, "    owned: %d cursor, %d step hold, %d last-received hold\n", d.Cursors, d.StepHolds, d.LastHolds)
			writeRelations(w, d.StaleRelations, d.OtherRelations)
		}
		for _, s := range js.Snapshots {
			fmt.Fprintf(w, "  %s\n", s.Dataset)
			due := ""
			if s.Due {
				due = ", due"
			}
			if s.Newest == "" {
				fmt.Fprintf(w, "    newest snapshot: (none with the job's prefix)%s\n", due)
			} else {
				fmt.Fprintf(w, "    newest snapshot: %s, %s old%s\n", s.Newest, humanAge(seconds(s.AgeSeconds)), due)
			}
			writeRelations(w, s.StaleRelations, s.OtherRelations)
		}
	}
}

// basisNote says, after a last replicated snapshot, how it was found when
// that was not by its GUID on the source.
func basisNote(basis string) string {
	switch basis {
	case basisHold:
		return " (by its last-received hold: the source no longer has it)"
	case basisReport:
		return " (by the last run report: neither the source nor a hold identifies it now)"
	}
	return ""
}

// writeRelations prints the relationships found on a dataset that are not
// the job's own: stale ones first, then other jobs'.
func writeRelations(w io.Writer, stale, other []relationStatus) {
	for _, r := range append(append([]relationStatus(nil), stale...), other...) {
		what := r.State + " relationship"
		switch r.State {
		case zsync.Unknown.String():
			what = "unknown relationship (another host's or an unchecked job's)"
		case zsync.Live.String():
			what = "relationship of another job"
		}
		fmt.Fprintf(w, "    %s %s on %s (%s side): %s\n", what, r.ID, r.Dataset, r.Side, r.Reason)
		fmt.Fprintf(w, "      owns: %s\n", strings.Join(r.Objects, ", "))
		fmt.Fprintf(w, "      pins: %s\n", describePins(r.Protects, r.NotReplicatedKeeps))
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// humanAge prints a duration rounded for people: "45s", "12m", "3h20m", "2d4h".
func humanAge(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	switch {
	case d < time.Minute:
		d = d.Round(time.Second)
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Hour)
	}
	s := FormatDuration(d)
	if d == 0 {
		s = "0s"
	}
	if neg {
		s = "-" + s
	}
	return s
}

// jobStatus describes a job: its last run and last successful run from the
// state dir, and its datasets now (both sides of a push or pull job, listed
// once; the datasets of a snap job). With lv it also judges the other
// relationships found on the datasets.
func (e *env) jobStatus(ctx context.Context, cfg *Config, j *jobConfig, now time.Time, lv *liveness) jobStatus {
	js := jobStatus{Job: j.Name, Type: j.Type}
	if r, err := state.ReadRunReport(cfg.Global.StateDir, j.Name); err == nil {
		js.LastRun = &r
	} else if !errors.Is(err, fs.ErrNotExist) {
		js.ReportError = err.Error()
	}
	if r, err := state.ReadLastSuccess(cfg.Global.StateDir, j.Name); err == nil {
		js.LastSuccessfulRun = &r
	} else if js.LastRun != nil && js.LastRun.Result == "ok" {
		js.LastSuccessfulRun = js.LastRun
	}
	var err error
	if j.Type == "snap" {
		js.Snapshots, err = e.snapStatus(ctx, cfg, j, now, lv)
	} else {
		var marks []state.SnapshotMark
		if js.LastRun != nil {
			marks = js.LastRun.Replicated
		}
		js.Datasets, err = e.replicationStatus(ctx, cfg, j, now, lv, marks)
	}
	if err != nil {
		js.err, js.Error, js.ErrorKind = err, err.Error(), errorKind(err)
	}
	return js
}

func (e *env) replicationStatus(ctx context.Context, cfg *Config, j *jobConfig, now time.Time, lv *liveness, marks []state.SnapshotMark) ([]datasetStatus, error) {
	job, cleanup, err := e.buildJob(cfg, j, true, e.log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	src, err := job.Source(ctx)
	if err != nil {
		return nil, err
	}
	dst, err := job.Target(ctx)
	if err != nil {
		return nil, err
	}
	return describe(ctx, j, job, src, dst, now, lv, marks)
}

// snapStatus lists a snap job's datasets once and describes each.
func (e *env) snapStatus(ctx context.Context, cfg *Config, j *jobConfig, now time.Time, lv *liveness) ([]snapshotStatus, error) {
	filter, err := zfs.ParseFilter(j.Datasets)
	if err != nil {
		return nil, err
	}
	return describeSnap(ctx, j, filter, e.newZFS(cfg), now, lv)
}

func describeSnap(ctx context.Context, j *jobConfig, filter zfs.Filter, z zsync.Endpoint, now time.Time, lv *liveness) ([]snapshotStatus, error) {
	list, err := z.List(ctx, filter.Roots(), zfs.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.Join(filter.Roots(), ", "), err)
	}
	plan := snap.NewPlan(list, filter, snapOptions(j, true), now)
	var out []snapshotStatus
	add := func(d snap.Decision, due bool) {
		s := snapshotStatus{Dataset: d.Dataset, Due: due, AgeSeconds: -1}
		if d.Newest != "" {
			s.Newest = d.Dataset + "@" + d.Newest
			s.AgeSeconds = now.Sub(d.NewestTime).Seconds()
		}
		out = append(out, s)
	}
	for _, d := range plan.Due {
		add(d, true)
	}
	for _, d := range plan.NotDue {
		add(d, false)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Dataset < out[b].Dataset })
	if lv != nil {
		holds, err := zsync.HoldsOf(ctx, z, list)
		if err != nil {
			return nil, err
		}
		abs, _ := zsync.ListAbstractionsWith(list, holds, lv.resolve)
		rels := zsync.Relations(abs)
		for i := range out {
			out[i].StaleRelations, out[i].OtherRelations = otherRelations(out[i].Dataset, zsync.SenderSide, "", rels, abs, list, lv, j)
		}
	}
	return out, nil
}

// describe lists both sides of a push or pull job once and describes each
// selected source dataset: the last snapshot replicated into its target and
// the lag since, the newest source snapshot and its age, what the job owns
// on both sides, and (with lv) the other relationships found there. marks
// are the last run report's replicated marks, the last resort of
// lastReplicated.
func describe(ctx context.Context, j *jobConfig, job *zsync.Job, src, dst zsync.Endpoint, now time.Time, lv *liveness, marks []state.SnapshotMark) ([]datasetStatus, error) {
	// a step hold of another job's relationship is resolved by liveness
	b, err := listBothSides(ctx, job, src, dst, func(rootTID zsync.TargetID) zsync.StepResolver {
		resolve := job.StepResolver(rootTID)
		return func(root zsync.TargetID, ds string) zsync.TargetID {
			if id := resolve(root, ds); id != "" {
				return id
			}
			return lv.resolve(root, ds)
		}
	})
	if err != nil {
		return nil, err
	}
	sl, dl, rootTID, sabs, dabs := b.src, b.dst, b.rootTID, b.srcAbs, b.dstAbs
	srels, drels := zsync.Relations(sabs), zsync.Relations(dabs)
	var out []datasetStatus
	for _, x := range sl {
		if !x.IsDataset() || !job.Datasets.Match(x.Name) {
			continue
		}
		t, err := job.Map(x.Name)
		if err != nil {
			continue
		}
		tid := zsync.RelationID(rootTID, t)
		d := datasetStatus{Job: j.Name, Source: x.Name, Target: t, SnapshotPrefix: sourceSnapshotPrefix(j), SourceAgeSecs: -1, LagSeconds: -1}
		if s := newestSourceSnapshot(x.Name, sl, d.SnapshotPrefix); s != nil {
			d.NewestSource = s.Name
			d.SourceAgeSecs = now.Sub(s.Creation).Seconds()
		}
		held := map[string]bool{}
		for _, a := range dabs {
			if a.Target == tid && tid != "" && a.Kind == zsync.LastReceivedHold && a.Dataset() == t {
				held[a.Name] = true
			}
		}
		var mark *state.SnapshotMark
		for i, m := range marks {
			if m.Dataset == x.Name {
				mark = &marks[i]
			}
		}
		if last, ok := lastReplicated(x.Name, t, sl, dl, held, mark); ok {
			d.LastSnapshot, d.LastSnapshotBasis = last.Name, last.Basis
			d.LagSeconds = now.Sub(last.Created).Seconds()
		}
		for _, v := range dl {
			if v.Name == t && v.ResumeToken != "" {
				d.Resumable = true
			}
		}
		for _, a := range sabs {
			if a.Target == tid && a.Dataset() == x.Name {
				switch a.Kind {
				case zsync.Cursor:
					d.Cursors++
				case zsync.StepHold:
					d.StepHolds++
				}
			}
		}
		for _, a := range dabs {
			if a.Target == tid && a.Dataset() == t && a.Kind == zsync.LastReceivedHold {
				d.LastHolds++
			}
		}
		if lv != nil {
			ss, so := otherRelations(x.Name, zsync.SenderSide, tid, srels, sabs, sl, lv, j)
			ds, do := otherRelations(t, zsync.ReceiverSide, tid, drels, dabs, dl, lv, j)
			d.StaleRelations, d.OtherRelations = append(ss, ds...), append(so, do...)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Source < out[b].Source })
	return out, nil
}

// otherRelations judges the relationships other than own found on one side
// of one dataset: stale are those not known to be in use (orphaned or
// unknown), other those another configured job uses now.
func otherRelations(ds string, side zsync.RelationSide, own zsync.TargetID, rels []zsync.Relation, abs []zsync.Abstraction, list []zfs.Entry, lv *liveness, j *jobConfig) (stale, other []relationStatus) {
	for _, r := range rels {
		if r.Dataset != ds || r.Side != side || r.ID == own {
			continue
		}
		verdict, why := zsync.Judge(r, lv.live, lv.claimsAt(j, side))
		protects, keeps := relationPins(r, abs, list)
		rs := relationStatus{ID: string(r.ID), Dataset: ds, Side: side.String(), State: verdict.String(), Reason: why,
			Objects: describeObjects(r), Protects: protects, NotReplicatedKeeps: keeps}
		if verdict == zsync.Live {
			rs.Reason = "used by " + why
			other = append(other, rs)
		} else {
			stale = append(stale, rs)
		}
	}
	return stale, other
}
