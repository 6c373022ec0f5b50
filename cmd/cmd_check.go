package cmd

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

// checkLevel is a monitoring plugin's state; its value is the exit code.
type checkLevel int

// The states of the monitoring plugin guidelines, by exit code.
const (
	checkOK checkLevel = iota
	checkWarning
	checkCritical
	checkUnknown
)

func (l checkLevel) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[l]
}

// rank orders levels by urgency as the monitoring plugins' max_state_alt
// does: OK < UNKNOWN < WARNING < CRITICAL. A problem found for sure is never
// hidden behind something that could not be looked at.
func (l checkLevel) rank() int { return [...]int{0, 2, 3, 1}[l] }

// checkError carries a monitoring exit code through the one exit point. Its
// message is already on stdout as the status line.
type checkError struct {
	code int
	msg  string
}

func (c *checkError) Error() string { return c.msg }

const checkDescription = `Checks every job (or the named ones), push, pull and snap, and prints one status line
on stdout, as monitoring plugins do (Nagios, Icinga, Naemon, Sensu, ...):

   ZSYNC <STATE>: <what is wrong, or what was checked> | <perfdata>

followed by one line per job and dataset. The exit code is the state: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN.

   push and pull jobs, per dataset:
      lag against lag_warning / lag_critical. Lag is the age (now - creation) of the last
      replicated snapshot: the newest target snapshot whose GUID the source has as a
      snapshot or bookmark. A snapshot the target takes itself (the backup host's own
      autosnap, say) never counts, however new. When the source no longer has it, the
      target snapshot carrying the job's last-received hold counts, else the last run
      report's replicated mark. A dataset with none of these is CRITICAL (never replicated).
      snapshot age against snapshot_age_warning / snapshot_age_critical: the age of the
      newest source snapshot with the job's prefix when the job takes snapshots (a push
      job with an interval; none at all is CRITICAL), of any name otherwise (a push job
      without an interval replicates what others take; a pull job's far side snapshots).
   snap jobs, per dataset: the age of the newest snapshot with the job's prefix against
      snapshot_age_warning / snapshot_age_critical; none at all is CRITICAL.
   Every job: the time since its last run ended (start + duration of its run report)
      against the lag thresholds (snap jobs: the snapshot age thresholds). It catches runs
      that stopped: a disabled timer, or a run that hangs holding the job's lock, so every
      later run exits 75 without a report: "no run for 3h (warning 2h)". A job without a
      run report yet says so (OK: its datasets are judged all the same); a report that
      cannot be read is UNKNOWN.
   Thresholds are per job, in [job.check]; the defaults are 2x (warning) and 4x (critical)
      the job's snapshot interval, or 1d and 2d without one.
   A job whose datasets cannot be listed now (the far side cannot be reached or refuses: ssh
      connect, host key, authentication, a far side that is not zsync, ...; a source that is
      gone): CRITICAL. Replication cannot happen; that is not a problem of the check.
   A job that selects no dataset: WARNING.
   The last run failed (its report's error_kind): WARNING, as the next run may well succeed
      and the lag thresholds escalate a failure that lasts. CRITICAL when the class of the
      failure needs a person (ssh_host_key_mismatch, ssh_host_key_unknown, ssh_auth,
      remote_not_zsync, protocol_version, forbidden, config, replication_conflict,
      zfs_permission_denied, zfs_no_space, zfs_destination_modified).
   UNKNOWN: the check itself cannot work (unreadable config, unknown job or flag, no job, the
      zfs binary missing here, interrupted).
   The state is the worst found, in the order OK < UNKNOWN < WARNING < CRITICAL.

Perfdata, per dataset: '<job>:<dataset> lag' and '<job>:<dataset> snapshot_age', in seconds,
with the warning and critical thresholds; U when there is no such snapshot. When the far side
cannot be reached, lag is computed from the newest replicated snapshot the last run saw.`

func checkCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "check",
		Usage:       "monitoring check with Nagios/Icinga exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
		ArgsUsage:   "[JOB...]",
		Description: checkDescription,
		// a mistyped flag in a monitoring definition must still give a
		// status line, and UNKNOWN rather than exit 2 (CRITICAL)
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return e.checkDone(unknownCheck(err))
		},
		Action: func(c *cli.Context) error {
			return e.checkDone(e.check(c))
		},
	}
}

// checkDone prints the check's output and turns its state into the exit
// code.
func (e *env) checkDone(r *checkResult) error {
	fmt.Fprint(e.stdout, r.render())
	if r.level == checkOK {
		return nil
	}
	return &checkError{code: int(r.level), msg: r.statusText()}
}

func (e *env) check(c *cli.Context) *checkResult {
	cfg, err := loadConfigFlag(c)
	if err != nil {
		return unknownCheck(err)
	}
	jobs, err := cfg.selectJobs(c.Args().Slice(), func(*jobConfig) bool { return true })
	if err != nil {
		return unknownCheck(err)
	}
	if len(jobs) == 0 {
		return unknownCheck(fmt.Errorf("no job to check in %s", cfg.Path))
	}
	now := time.Now()
	r := &checkResult{}
	for _, j := range jobs {
		if c.Context.Err() != nil {
			return unknownCheck(fmt.Errorf("%w before job %s", errInterrupted, j.Name))
		}
		r.judgeJob(j, e.jobStatus(c.Context, cfg, j, now, nil), now)
	}
	return r
}

// unknownCheck is the result of a check that could not look.
func unknownCheck(err error) *checkResult {
	r := &checkResult{level: checkUnknown}
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	r.problems = []finding{{checkUnknown, squeeze(oneLine(lines[0]), 240)}}
	for _, l := range lines[1:] { // a config's further errors
		r.lines = append(r.lines, oneLine(l))
	}
	return r
}

// checkResult collects what check found.
type checkResult struct {
	level          checkLevel
	problems       []finding // for the status line, in the order found
	lines          []string  // the long output: every job and dataset
	perf           []string
	jobs, datasets int
	verb           string // of the datasets in the status line: "checked" when empty
}

type finding struct {
	level checkLevel
	text  string
}

// add records a line of the long output, and a problem for the status line
// when level is not OK and summary is set.
func (r *checkResult) add(level checkLevel, text string, summary bool) {
	text = oneLine(text)
	if level.rank() > r.level.rank() {
		r.level = level
	}
	r.lines = append(r.lines, level.String()+" "+text)
	if level != checkOK && summary {
		r.problems = append(r.problems, finding{level, squeeze(text, 240)})
	}
}

// perfdata adds one value in seconds ('label'=value[s];warn;crit;0), or U
// when it is unknown (v < 0).
func (r *checkResult) perfdata(label string, v float64, warn, crit time.Duration) {
	label = strings.NewReplacer("'", "_", "=", "_", "|", "_", "\n", "_").Replace(label)
	val := "U"
	if v >= 0 {
		val = strconv.FormatInt(int64(v), 10) + "s"
	}
	r.perf = append(r.perf, fmt.Sprintf("'%s'=%s;%d;%d;0", label, val, int64(warn.Seconds()), int64(crit.Seconds())))
}

// statusText is the status line without its perfdata.
func (r *checkResult) statusText() string {
	verb := r.verb
	if verb == "" {
		verb = "checked"
	}
	text := fmt.Sprintf("%d job(s), %d dataset(s) %s", r.jobs, r.datasets, verb)
	if len(r.problems) > 0 {
		ps := slices.Clone(r.problems)
		slices.SortStableFunc(ps, func(a, b finding) int { return b.level.rank() - a.level.rank() })
		const shown = 3
		var parts []string
		for i, p := range ps {
			if i == shown {
				parts = append(parts, fmt.Sprintf("and %d more", len(ps)-shown))
				break
			}
			parts = append(parts, p.text)
		}
		text = strings.Join(parts, "; ")
	}
	return "ZSYNC " + r.level.String() + ": " + text
}

// render is the plugin output: the status line with the perfdata, then the
// long output.
func (r *checkResult) render() string {
	var b strings.Builder
	b.WriteString(r.statusText())
	if len(r.perf) > 0 {
		b.WriteString(" | " + strings.Join(r.perf, " "))
	}
	b.WriteByte('\n')
	for _, l := range r.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// oneLine keeps text on one line and out of the perfdata: '|' starts
// perfdata in the plugin output format.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "|", "/").Replace(s)
}

// thresholds returns a job's warning and critical durations: the configured
// ones, else 2x and 4x the snapshot interval, else 1d and 2d. A warning
// above the critical threshold is lowered to it.
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
	return min(warn, crit), crit
}

// operatorKinds are the failure classes that do not go away by themselves:
// a last run that failed with one of them is CRITICAL at once.
var operatorKinds = []string{
	"ssh_host_key_mismatch", "ssh_host_key_unknown", "ssh_auth", "remote_not_zsync", "protocol_version",
	"forbidden", "config", "replication_conflict", "zfs_permission_denied", "zfs_no_space", "zfs_destination_modified",
}

// lastRunLevel is the state a failed last run with error_kind kind gives.
func lastRunLevel(kind string) checkLevel {
	if slices.Contains(operatorKinds, kind) {
		return checkCritical
	}
	return checkWarning
}

// jobErrorLevel is the state of a job whose datasets cannot be listed now:
// UNKNOWN when the check itself cannot work here, CRITICAL otherwise (the
// far side cannot be reached, or refuses: replication cannot happen either).
func jobErrorLevel(err error) checkLevel {
	switch {
	case errorKind(err) == "config", errorKind(err) == "interrupted", errors.Is(err, exec.ErrNotFound):
		return checkUnknown
	}
	return checkCritical
}

// level is the state of an age against its thresholds.
func level(age, warn, crit time.Duration) checkLevel {
	switch {
	case age >= crit:
		return checkCritical
	case age >= warn:
		return checkWarning
	}
	return checkOK
}

// limits describes the thresholds an age was judged against.
func limits(l checkLevel, warn, crit time.Duration) string {
	switch l {
	case checkCritical:
		return " (critical " + FormatDuration(crit) + ")"
	case checkWarning:
		return " (warning " + FormatDuration(warn) + ")"
	}
	return ""
}

// judgeJob adds a job's findings and perfdata.
func (r *checkResult) judgeJob(j *jobConfig, js jobStatus, now time.Time) {
	r.jobs++
	warnL, critL := thresholds(j, j.Check.LagWarning, j.Check.LagCritical)
	warnS, critS := thresholds(j, j.Check.SnapshotWarning, j.Check.SnapshotCritical)
	name := j.Name

	if lr := js.LastRun; lr != nil && lr.Result != "ok" {
		kind := lr.ErrorKind
		if kind == "" {
			kind = "unclassified"
		}
		text := fmt.Sprintf("%s: last run %s %s (%s)", name, lr.Start.Local().Format(time.DateTime), lr.Result, kind)
		if lr.Error != "" {
			text += ": " + lr.Error
		}
		// when the job cannot be looked at now, that is what the status
		// line says; the last run's failure is in the long output
		r.add(lastRunLevel(lr.ErrorKind), text, js.err == nil)
	}

	r.judgeRunAge(j, js, now)

	if js.err != nil {
		kind := ""
		if js.ErrorKind != "" {
			kind = " (" + js.ErrorKind + ")"
		}
		r.add(jobErrorLevel(js.err), fmt.Sprintf("%s: cannot look at its datasets%s: %s", name, kind, js.Error), true)
		// the graphs go on from what the last run saw
		if js.LastRun != nil {
			for _, m := range js.LastRun.Replicated {
				r.perfdata(name+":"+m.Dataset+" lag", now.Sub(m.Time).Seconds(), warnL, critL)
			}
			for _, m := range js.LastRun.Snapshots {
				r.perfdata(name+":"+m.Dataset+" snapshot_age", now.Sub(m.Time).Seconds(), warnS, critS)
			}
		}
		return
	}

	if len(js.Datasets) == 0 && len(js.Snapshots) == 0 {
		r.add(checkWarning, fmt.Sprintf("%s: selects no dataset", name), true)
		return
	}
	for _, d := range js.Datasets {
		r.datasets++
		label := name + ":" + d.Source
		lagL, ageL := checkCritical, checkOK
		lagText := "never replicated (the target has no snapshot from the source)"
		if d.LagSeconds >= 0 {
			lag := seconds(d.LagSeconds)
			lagL = level(lag, warnL, critL)
			lagText = "lag " + humanAge(lag) + limits(lagL, warnL, critL)
		}
		text := lagText
		switch {
		case d.NewestSource != "":
			age := seconds(d.SourceAgeSecs)
			ageL = level(age, warnS, critS)
			text += ", newest source snapshot " + humanAge(age) + " old" + limits(ageL, warnS, critS)
		case d.SnapshotPrefix != "":
			// the job snapshots, and not one of its snapshots is there
			ageL = checkCritical
			text += ", no source snapshot with the job's prefix " + d.SnapshotPrefix
		}
		r.perfdata(label+" lag", d.LagSeconds, warnL, critL)
		if d.NewestSource != "" {
			r.perfdata(label+" snapshot_age", d.SourceAgeSecs, warnS, critS)
		} else {
			r.perfdata(label+" snapshot_age", -1, warnS, critS)
		}
		lv := lagL
		if ageL.rank() > lv.rank() {
			lv = ageL
		}
		r.add(lv, fmt.Sprintf("%s %s: %s", name, d.Source, text), true)
	}
	for _, s := range js.Snapshots {
		r.datasets++
		lv, text := checkCritical, "no snapshot with the job's prefix"
		if s.AgeSeconds >= 0 {
			age := seconds(s.AgeSeconds)
			lv = level(age, warnS, critS)
			text = "newest snapshot " + humanAge(age) + " old" + limits(lv, warnS, critS)
		}
		r.perfdata(name+":"+s.Dataset+" snapshot_age", s.AgeSeconds, warnS, critS)
		r.add(lv, fmt.Sprintf("%s %s: %s", name, s.Dataset, text), true)
	}
}

// runAgeThresholds are the thresholds of the time since a job's last run
// ended: those of its lag (push, pull) or snapshot age (snap). Runs every
// interval keep both well below; a job whose runs stopped (its timer
// disabled, or a run that hangs holding the lock, so every later run exits
// 75 without a report) reaches them no later than its lag does, and says
// why.
func runAgeThresholds(j *jobConfig) (time.Duration, time.Duration) {
	if j.Type == "snap" {
		return thresholds(j, j.Check.SnapshotWarning, j.Check.SnapshotCritical)
	}
	return thresholds(j, j.Check.LagWarning, j.Check.LagCritical)
}

// judgeRunAge adds how long ago the job's last run ended (its report's
// start plus its duration) against runAgeThresholds; a job without a
// report yet is said so (OK: its datasets are judged all the same), one
// whose report cannot be read is UNKNOWN.
func (r *checkResult) judgeRunAge(j *jobConfig, js jobStatus, now time.Time) {
	summary := js.err == nil // a job that cannot be looked at says that first
	lr := js.LastRun
	switch {
	case js.ReportError != "":
		r.add(checkUnknown, fmt.Sprintf("%s: cannot read its last run report: %s", j.Name, js.ReportError), summary)
		return
	case lr == nil:
		r.add(checkOK, fmt.Sprintf("%s: no run recorded yet", j.Name), false)
		return
	case lr.Start.IsZero():
		return
	}
	end := lr.Start.Add(seconds(lr.Duration))
	warn, crit := runAgeThresholds(j)
	age := now.Sub(end)
	if lv := level(age, warn, crit); lv != checkOK {
		r.add(lv, fmt.Sprintf("%s: no run for %s%s, the last ended %s", j.Name, humanAge(age), limits(lv, warn, crit), end.Local().Format(time.DateTime)), summary)
	}
}

// squeeze shortens s to about n bytes for the status line, keeping its
// start and its end (where zfs and ssh errors say what went wrong).
func squeeze(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := n/3, n-n/3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	cut := len(s) - tail
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[:head] + " ... " + s[cut:]
}
