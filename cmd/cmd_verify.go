package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

const verifyDescription = `Compares every dataset of the push and pull jobs (or of the named ones) with its replica,
and prints one status line and one line per dataset, with the exit codes of check:
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. It changes nothing on either side.

Level 1 (always): the snapshots of both sides by GUID.
   CRITICAL: no replica; a target snapshot with the name of a source snapshot and another
      GUID; target snapshots the source has no version of, newer than the last replicated
      one (made on the target after the last receive: the next run refuses the replica as
      diverged), or no snapshot in common at all.
   WARNING: source snapshots between the oldest and the newest replicated one that the
      target lacks (deleted there, or never sent); the relationship's cursor bookmark on the
      source or its last-received hold on the target missing or not at the last replicated
      snapshot (where the job's protection keeps them; the next run repairs them).
   Said, and OK: snapshots not replicated yet, older target snapshots the source pruned,
      a partial receive that the next run resumes.
Level 2 (--data): a checksum of the newest common snapshot's contents, computed on each
   side from its zfs send stream (file data and metadata, not the layout on disk) and
   compared; only the checksums cross the link. It reads the whole snapshot on both sides,
   at most at the job's bandwidth_limit. --sample N sums only about N% of the data blocks,
   the same ones on both sides (every file's metadata is summed): cheaper sums for big
   datasets, though zfs still reads the whole snapshot. A replica received raw whose key is not loaded
   is compared at level 1 only, and the line says so. A mismatch is CRITICAL.`

func verifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "verify",
		Usage:       "compare replicas with their sources: snapshots by GUID, cursors and holds; --data checksums contents",
		ArgsUsage:   "[JOB...]",
		Description: verifyDescription,
		Flags: []cli.Flag{
			jsonFlag,
			&cli.BoolFlag{Name: "data", Usage: "level 2: also checksum the newest common snapshot's contents on both sides (reads it all)"},
			&cli.IntFlag{Name: "sample", Value: 100, Usage: "with --data: sum only about this percentage of the data blocks (the same on both sides; zfs still reads everything)"},
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return e.checkDone(unknownCheck(err))
		},
		Action: func(c *cli.Context) error {
			res, reports := e.verify(c)
			if c.Bool("json") {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(verifyJSON{State: res.level.String(), Status: res.statusText(), Jobs: reports}); err != nil {
					return err
				}
				if res.level == checkOK {
					return nil
				}
				return &checkError{code: int(res.level), msg: res.statusText()}
			}
			return e.checkDone(res)
		},
	}
}

// verifyJSON is verify's --json output.
type verifyJSON struct {
	State  string      `json:"state"`
	Status string      `json:"status"`
	Jobs   []jobVerify `json:"jobs"`
}

type jobVerify struct {
	Job      string          `json:"job"`
	Error    string          `json:"error,omitempty"`
	Datasets []datasetVerify `json:"datasets"`
}

type datasetVerify struct {
	Source       string   `json:"source"`
	Target       string   `json:"target"`
	State        string   `json:"state"`
	Findings     []string `json:"findings,omitempty"`
	Common       int      `json:"common"`
	NewestCommon string   `json:"newest_common,omitempty"`
	Missing      []string `json:"missing_on_target,omitempty"`
	Foreign      []string `json:"only_on_target_newer,omitempty"`
	Pruned       []string `json:"only_on_target_pruned_on_source,omitempty"`
	Mismatched   []string `json:"guid_mismatch,omitempty"`
	Pending      []string `json:"not_replicated_yet,omitempty"`
	Resumable    bool     `json:"resumable"`
	Cursors      int      `json:"cursors"`
	LastHolds    int      `json:"last_received_holds"`
	NoReplica    bool     `json:"no_replica,omitempty"`
	Data         string   `json:"data,omitempty"` // level 2: "same", "different", or why it was not compared
	dataFailed   bool     // the checksum of either side failed
	sampled      string   // ", N% of the blocks" when --sample summed fewer
	SourceSum    string   `json:"source_checksum,omitempty"`
	TargetSum    string   `json:"target_checksum,omitempty"`
}

func (e *env) verify(c *cli.Context) (*checkResult, []jobVerify) {
	if s := c.Int("sample"); s < 1 || s > 100 {
		return unknownCheck(usageErrorf("--sample %d: want a percentage from 1 to 100", s)), nil
	}
	cfg, err := loadConfigFlag(c)
	if err != nil {
		return unknownCheck(err), nil
	}
	jobs, err := cfg.selectJobs(c.Args().Slice(), func(j *jobConfig) bool { return j.Type != "snap" })
	if err != nil {
		return unknownCheck(err), nil
	}
	if len(jobs) == 0 {
		return unknownCheck(fmt.Errorf("no push or pull job to verify in %s", cfg.Path)), nil
	}
	r := &checkResult{verb: "verified"}
	var out []jobVerify
	for _, j := range jobs {
		if j.Type == "snap" {
			return unknownCheck(fmt.Errorf("%s is a snap job: verify compares replicas (push and pull jobs)", j.Name)), nil
		}
		if c.Context.Err() != nil {
			return unknownCheck(fmt.Errorf("%w before job %s", errInterrupted, j.Name)), nil
		}
		r.jobs++
		jv, err := e.verifyJob(c.Context, cfg, j, c.Bool("data"), c.Int("sample"))
		if err != nil {
			jv.Error = err.Error()
			r.add(jobErrorLevel(err), fmt.Sprintf("%s: cannot verify: %v", j.Name, err), true)
		}
		for i := range jv.Datasets {
			d := &jv.Datasets[i]
			r.datasets++
			lv := judgeVerify(d)
			d.State = lv.String()
			r.add(lv, verifyLine(j.Name, d), true)
		}
		out = append(out, jv)
	}
	return r, out
}

// verifyJob lists both sides of one job and compares each dataset.
func (e *env) verifyJob(ctx context.Context, cfg *Config, j *jobConfig, data bool, sample int) (jobVerify, error) {
	jv := jobVerify{Job: j.Name, Datasets: []datasetVerify{}}
	job, cleanup, err := e.buildJob(cfg, j, true, e.log)
	if err != nil {
		return jv, err
	}
	defer cleanup()
	src, err := job.Source(ctx)
	if err != nil {
		return jv, err
	}
	dst, err := job.Target(ctx)
	if err != nil {
		return jv, err
	}
	b, err := listBothSides(ctx, job, src, dst, job.StepResolver)
	if err != nil {
		return jv, err
	}
	sl, dl, rootTID, sabs, dabs := b.src, b.dst, b.rootTID, b.srcAbs, b.dstAbs
	srcBy, dstBy := map[string][]zfs.Entry{}, map[string][]zfs.Entry{}
	dstInfo := map[string]zfs.Entry{}
	for _, x := range sl {
		if !x.IsDataset() {
			srcBy[x.Dataset()] = append(srcBy[x.Dataset()], x)
		}
	}
	for _, x := range dl {
		if x.IsDataset() {
			dstInfo[x.Name] = x
		} else {
			dstBy[x.Dataset()] = append(dstBy[x.Dataset()], x)
		}
	}
	for _, x := range sl {
		if !x.IsDataset() || !job.Datasets.Match(x.Name) || zsync.IsPlaceholder(x) {
			continue
		}
		t, err := job.Map(x.Name)
		if err != nil {
			continue
		}
		d := datasetVerify{Source: x.Name, Target: t}
		ti, ok := dstInfo[t]
		if !ok {
			d.NoReplica = true
			jv.Datasets = append(jv.Datasets, d)
			continue
		}
		v := zsync.Verify(x.Name, t, srcBy[x.Name], dstBy[t], sabs, dabs, zsync.RelationID(rootTID, t), job.SnapshotFilter)
		d.Common, d.NewestCommon = v.Common, v.NewestCommon
		d.Missing, d.Foreign, d.Pruned, d.Mismatched, d.Pending = v.Missing, v.Foreign, v.Pruned, v.Mismatched, v.Pending
		d.Resumable = ti.ResumeToken != ""
		d.Cursors, d.LastHolds = v.Cursors, v.LastHolds
		if v.Common > 0 {
			if job.Protection.Allows(zsync.Cursor) && (v.Cursors != 1 || !v.CursorAt) {
				d.Findings = append(d.Findings, fmt.Sprintf("cursor: %d on the source, want one at the last replicated snapshot %s (the next run repairs it)", v.Cursors, v.NewestCommon))
			}
			if job.Protection.Allows(zsync.LastReceivedHold) && (v.LastHolds != 1 || !v.LastHoldAt) {
				d.Findings = append(d.Findings, fmt.Sprintf("last-received hold: %d on the target, want one on %s (the next run repairs it)", v.LastHolds, v.NewestCommon))
			}
		}
		if data && v.NewestCommon != "" {
			e.verifyData(ctx, j, sample, src, dst, srcBy[x.Name], dstBy[t], x, ti, v.NewestCommon, &d)
		}
		jv.Datasets = append(jv.Datasets, d)
	}
	return jv, nil
}

// judgeVerify is a dataset's state from what verify found.
func judgeVerify(d *datasetVerify) checkLevel {
	switch {
	case d.NoReplica, len(d.Mismatched) > 0, len(d.Foreign) > 0, d.Common == 0, d.Data == "different":
		return checkCritical
	case len(d.Missing) > 0, len(d.Findings) > 0, d.dataFailed:
		return checkWarning
	}
	return checkOK
}

// verifyLine says what verify found of one dataset, worst first.
func verifyLine(job string, d *datasetVerify) string {
	var parts []string
	list := func(what string, names []string) {
		if len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d): %s", what, len(names), listed(names)))
		}
	}
	if d.NoReplica {
		return fmt.Sprintf("%s %s -> %s: no replica (%s does not exist)", job, d.Source, d.Target, d.Target)
	}
	if d.Common == 0 {
		parts = append(parts, "no snapshot in common")
	}
	list("same name, other GUID", d.Mismatched)
	list("only on the target, newer than the last replicated (the next run refuses the replica as diverged)", d.Foreign)
	switch d.Data {
	case "":
	case "same":
		parts = append(parts, "contents of "+d.NewestCommon+" match ("+d.SourceSum+d.sampled+")")
	case "different":
		parts = append(parts, fmt.Sprintf("contents of %s differ: source %s, target %s", d.NewestCommon, d.SourceSum, d.TargetSum))
	default:
		parts = append(parts, "contents not compared: "+d.Data)
	}
	list("missing on the target", d.Missing)
	parts = append(parts, d.Findings...)
	if d.Common > 0 {
		parts = append(parts, fmt.Sprintf("%d snapshot(s) in common, the last replicated %s", d.Common, d.NewestCommon))
	}
	list("not replicated yet", d.Pending)
	list("only on the target, pruned on the source", d.Pruned)
	if d.Resumable {
		parts = append(parts, "a partial receive waits, the next run resumes it")
	}
	return fmt.Sprintf("%s %s -> %s: %s", job, d.Source, d.Target, strings.Join(parts, "; "))
}

// olderFarSide says what to do when the far side's zsync does not know an
// operation (snapshot_digest, pool_errors: added with verify and heal).
func olderFarSide(err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("%w (the far side's zsync is older than this one and does not know the operation: upgrade zsync there)", err)
	}
	return err
}

// listed names up to five snapshots.
func listed(names []string) string {
	const shown = 5
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:shown], ", ") + fmt.Sprintf(", and %d more", len(names)-shown)
}

// verifyData compares the contents of the target snapshot newest (the
// newest common one) with its source twin, each summed on its own side,
// both at once.
func (e *env) verifyData(ctx context.Context, j *jobConfig, sample int, src, dst zsync.Endpoint, srcVersions, dstVersions []zfs.Entry, si, ti zfs.Entry, newest string, d *datasetVerify) {
	var twin *zfs.Entry
	var guid uint64
	for _, t := range dstVersions {
		if t.Name == newest {
			guid = t.GUID
		}
	}
	for i, s := range srcVersions {
		if s.Type == zfs.Snapshot && s.GUID == guid {
			twin = &srcVersions[i]
		}
	}
	switch {
	case twin == nil:
		d.Data = "the source has only a bookmark of " + newest + " (pruned there)"
		return
	case ti.Encrypted() && ti.KeyStatus != "available":
		d.Data = "the replica is encrypted and its key is not loaded (received raw): compared at level 1 only"
		return
	case si.Encrypted() && si.KeyStatus != "available":
		d.Data = "the source is encrypted and its key is not loaded: compared at level 1 only"
		return
	}
	o := zfs.DigestOptions{Limit: j.Replication.BandwidthLimit.Bytes, Sample: sample}
	var sd, td zfs.Digest
	var serr, terr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sd, serr = src.SnapshotDigest(ctx, twin.Name, o)
	}()
	td, terr = dst.SnapshotDigest(ctx, newest, o)
	<-done
	serr, terr = olderFarSide(serr), olderFarSide(terr)
	switch {
	case serr != nil:
		d.Data, d.dataFailed = "cannot checksum "+twin.Name+": "+serr.Error(), true
	case terr != nil:
		d.Data, d.dataFailed = "cannot checksum "+newest+": "+terr.Error(), true
	case sd.Sum == td.Sum && sd.Sample == td.Sample:
		if sd.Sample > 0 {
			d.sampled = fmt.Sprintf(", %d%% of the blocks", sd.Sample)
		}
		d.Data, d.SourceSum, d.TargetSum = "same", sd.Sum, td.Sum
	default:
		d.Data, d.SourceSum, d.TargetSum = "different", sd.Sum, td.Sum
	}
}
