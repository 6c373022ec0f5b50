package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// datasetStatus is one dataset's replication state, for status and check.
type datasetStatus struct {
	Job           string  `json:"job"`
	Source        string  `json:"source"`
	Target        string  `json:"target"`
	LastSnapshot  string  `json:"last_replicated_snapshot,omitempty"`
	LagSeconds    float64 `json:"lag_seconds"`
	NewestSource  string  `json:"newest_source_snapshot,omitempty"`
	SourceAgeSecs float64 `json:"newest_source_snapshot_age_seconds"`
	Resumable     bool    `json:"resumable"`
	Cursors       int     `json:"cursor_bookmarks"`
	StepHolds     int     `json:"step_holds"`
	LastHolds     int     `json:"last_received_holds"`
	// StaleRelations are the other relationships on the dataset (its
	// source, or its target) that no configured job uses (orphaned) or that
	// cannot be checked from here (unknown), with what they pin.
	StaleRelations []relationStatus `json:"stale_relations,omitempty"`
	Error          string           `json:"error,omitempty"`
}

// relationStatus is a relationship that is not this job's and not known to
// be used, found on one of the job's datasets.
type relationStatus struct {
	ID                 string   `json:"relation_id"`
	Dataset            string   `json:"dataset"`
	Side               string   `json:"side"`  // source | target
	State              string   `json:"state"` // orphaned | unknown
	Reason             string   `json:"reason"`
	Objects            []string `json:"objects"`
	Protects           []string `json:"protects"`             // snapshots prune never destroys because of it
	NotReplicatedKeeps []string `json:"not_replicated_keeps"` // snapshots not_replicated keeps only because of its cursor
}

type jobStatus struct {
	Job      string           `json:"job"`
	Type     string           `json:"type"`
	LastRun  *state.RunReport `json:"last_run,omitempty"`
	Datasets []datasetStatus  `json:"datasets"`
	Error    string           `json:"error,omitempty"`
}

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "per job and dataset: last replicated snapshot, lag, resumable state, holds and bookmarks owned, last run's result",
		ArgsUsage: "[JOB...]",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			cfg, jobs, err := loadJobs(c, c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
			if err != nil {
				return err
			}
			lv := e.liveness(c.Context, cfg)
			var all []jobStatus
			for _, j := range jobs {
				all = append(all, e.jobStatus(c.Context, cfg, j, time.Now(), lv))
			}
			if c.Bool("json") {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			for _, js := range all {
				fmt.Fprintf(e.stdout, "job %s (%s)", js.Job, js.Type)
				if js.LastRun != nil {
					fmt.Fprintf(e.stdout, ": last run %s %s, %s", js.LastRun.Start.Local().Format(time.DateTime), js.LastRun.Result, humanBytes(js.LastRun.Bytes))
				}
				fmt.Fprintln(e.stdout)
				if r := js.LastRun; r != nil && r.Result != "ok" && r.Error != "" {
					kind := ""
					if r.ErrorKind != "" {
						kind = " (" + r.ErrorKind + ")"
					}
					fmt.Fprintf(e.stdout, "  last run failed%s: %s\n", kind, r.Error)
				}
				if js.Error != "" {
					fmt.Fprintf(e.stdout, "  cannot list its datasets now: %s\n", js.Error)
				}
				for _, d := range js.Datasets {
					fmt.Fprintf(e.stdout, "  %s -> %s\n", d.Source, d.Target)
					if d.Error != "" {
						fmt.Fprintf(e.stdout, "    error: %s\n", d.Error)
						continue
					}
					last := d.LastSnapshot
					if last == "" {
						last = "(none)"
					}
					fmt.Fprintf(e.stdout, "    last replicated: %s, lag %s, resumable: %v\n", last, time.Duration(d.LagSeconds*float64(time.Second)).Round(time.Second), d.Resumable)
					fmt.Fprintf(e.stdout, "    owned: %d cursor, %d step hold, %d last-received hold\n", d.Cursors, d.StepHolds, d.LastHolds)
					for _, r := range d.StaleRelations {
						fmt.Fprintf(e.stdout, "    %s relationship %s on %s (%s side): %s\n", r.State, r.ID, r.Dataset, r.Side, r.Reason)
						fmt.Fprintf(e.stdout, "      owns: %s\n", strings.Join(r.Objects, ", "))
						fmt.Fprintf(e.stdout, "      pins: %s\n", describePins(r.Protects, r.NotReplicatedKeeps))
					}
				}
			}
			return nil
		},
	}
}

// jobStatus lists both sides of a job once and describes each dataset. With
// lv it also judges the other relationships found on the datasets.
func (e *env) jobStatus(ctx context.Context, cfg *Config, j *jobConfig, now time.Time, lv *liveness) jobStatus {
	js := jobStatus{Job: j.Name, Type: j.Type}
	if r, err := state.ReadRunReport(cfg.Global.StateDir, j.Name); err == nil {
		js.LastRun = &r
	}
	job, cleanup, err := e.buildJob(cfg, j, true, e.log)
	if err != nil {
		js.Error = err.Error()
		return js
	}
	defer cleanup()
	src, err := job.Source(ctx)
	if err == nil {
		var dst zsync.Endpoint
		dst, err = job.Target(ctx)
		if err == nil {
			js.Datasets, err = describe(ctx, j, job, src, dst, now, lv)
		}
	}
	if err != nil {
		js.Error = err.Error()
	}
	return js
}

func describe(ctx context.Context, j *jobConfig, job *zsync.Job, src, dst zsync.Endpoint, now time.Time, lv *liveness) ([]datasetStatus, error) {
	sl, err := src.List(ctx, job.Datasets.Roots(), zfs.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list source: %w", err)
	}
	dl, err := dst.List(ctx, []string{job.TargetRoot}, zfs.ListOptions{})
	if err != nil && !errors.Is(err, zfs.ErrDatasetNotFound) {
		return nil, fmt.Errorf("list target: %w", err)
	}
	props, _ := dst.Get(ctx, []string{job.TargetRoot}, []string{zsync.TargetIDProperty})
	rootTID := zsync.TargetID(props[job.TargetRoot][zsync.TargetIDProperty])
	sh, err := zsync.HoldsOf(ctx, src, sl)
	if err != nil {
		return nil, err
	}
	dh, err := zsync.HoldsOf(ctx, dst, dl)
	if err != nil {
		return nil, err
	}
	sabs, _ := zsync.ListAbstractions(sl, sh)
	dabs, _ := zsync.ListAbstractions(dl, dh)
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
		d := datasetStatus{Job: j.Name, Source: x.Name, Target: t}
		var newestSrc *zfs.Entry
		for i, v := range sl {
			if v.Dataset() == x.Name && v.Type == zfs.Snapshot && (newestSrc == nil || v.CreateTXG > newestSrc.CreateTXG) {
				newestSrc = &sl[i]
			}
		}
		if newestSrc != nil {
			d.NewestSource = newestSrc.Name
			d.SourceAgeSecs = now.Sub(newestSrc.Creation).Seconds()
		}
		var newest *zfs.Entry
		for i, v := range dl {
			if v.Name == t && v.ResumeToken != "" {
				d.Resumable = true
			}
			if v.Dataset() == t && v.Type == zfs.Snapshot && (newest == nil || v.CreateTXG > newest.CreateTXG) {
				newest = &dl[i]
			}
		}
		if newest != nil {
			d.LastSnapshot = newest.Name
			d.LagSeconds = now.Sub(newest.Creation).Seconds()
		} else {
			d.LagSeconds = -1
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
			d.StaleRelations = append(staleRelations(x.Name, zsync.SenderSide, tid, srels, sabs, sl, lv, j),
				staleRelations(t, zsync.ReceiverSide, tid, drels, dabs, dl, lv, j)...)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Source < out[b].Source })
	return out, nil
}

// staleRelations judges the relationships other than own found on one side
// of one dataset and describes those not known to be in use.
func staleRelations(ds string, side zsync.RelationSide, own zsync.TargetID, rels []zsync.Relation, abs []zsync.Abstraction, list []zfs.Entry, lv *liveness, j *jobConfig) []relationStatus {
	var out []relationStatus
	for _, r := range rels {
		if r.Dataset != ds || r.Side != side || r.ID == own {
			continue
		}
		verdict, why := zsync.Judge(r, lv.live, lv.claimsAt(j, side))
		if verdict == zsync.Live {
			continue
		}
		protects, keeps := relationPins(r, abs, list)
		out = append(out, relationStatus{ID: string(r.ID), Dataset: ds, Side: side.String(), State: verdict.String(), Reason: why,
			Objects: describeObjects(r), Protects: protects, NotReplicatedKeeps: keeps})
	}
	return out
}

// checkError carries a Nagios exit code through the one exit point.
type checkError struct {
	code int
	msg  string
}

func (c *checkError) Error() string { return c.msg }

func checkCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "monitoring check with Nagios/Icinga exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
		ArgsUsage: "[JOB...]",
		Description: "Checks replication lag (age of the target's newest snapshot) and the age of the newest\n" +
			"source snapshot against [job.check] lag_warning/lag_critical and snapshot_age_warning/\n" +
			"snapshot_age_critical (defaults: 2x and 4x the snapshot interval, or 1d and 2d).",
		Action: func(c *cli.Context) error {
			cfg, err := loadConfigFlag(c)
			if err != nil {
				return &checkError{3, "UNKNOWN: " + err.Error()}
			}
			jobs, err := cfg.selectJobs(c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
			if err != nil {
				return &checkError{3, "UNKNOWN: " + err.Error()}
			}
			worst, lines := 0, []string{}
			now := time.Now()
			for _, j := range jobs {
				warnL, critL := thresholds(j, j.Check.LagWarning, j.Check.LagCritical)
				warnS, critS := thresholds(j, j.Check.SnapshotWarning, j.Check.SnapshotCritical)
				js := e.jobStatus(c.Context, cfg, j, now, nil)
				if js.Error != "" {
					worst = max(worst, 3)
					lines = append(lines, fmt.Sprintf("%s: %s", j.Name, js.Error))
					continue
				}
				for _, d := range js.Datasets {
					lag := time.Duration(d.LagSeconds * float64(time.Second))
					age := time.Duration(d.SourceAgeSecs * float64(time.Second))
					code := 0
					switch {
					case d.LagSeconds < 0 || lag >= critL || age >= critS:
						code = 2
					case lag >= warnL || age >= warnS:
						code = 1
					}
					worst = max(worst, code)
					if code > 0 {
						lines = append(lines, fmt.Sprintf("%s: lag %s, newest source snapshot %s old", d.Source, lag.Round(time.Second), age.Round(time.Second)))
					}
				}
			}
			status := []string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[worst]
			msg := fmt.Sprintf("%s: %d job(s) checked", status, len(jobs))
			if len(lines) > 0 {
				msg += "; " + strings.Join(lines, "; ")
			}
			fmt.Fprintln(e.stdout, msg)
			if worst == 0 {
				return nil
			}
			return &checkError{worst, msg}
		},
	}
}

func thresholds(j *jobConfig, w, c Duration) (time.Duration, time.Duration) {
	base := 24 * time.Hour
	warn, crit := base, 2*base
	if iv := j.Snapshot.Interval.Duration; iv > 0 {
		warn, crit = 2*iv, 4*iv
	}
	if w.IsSet() {
		warn = w.Duration
	}
	if c.IsSet() {
		crit = c.Duration
	}
	return warn, crit
}
