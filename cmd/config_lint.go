package cmd

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// lint finds what a newcomer must be told about a config whose every value
// is valid on its own: combinations that can never work (errors) and
// settings that may be intended but usually are not (warnings). Each problem
// names the key to change and says how.
func (c *Config) lint() []problem {
	l := &linter{c: c}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		v := lintJob{i: i, j: j, key: fmt.Sprintf("job[%d]", i)}
		if f, err := zfs.ParseFilter(j.Datasets); err == nil && len(j.Datasets) > 0 {
			v.filter, v.ok = f, true
		}
		l.jobs = append(l.jobs, v)
	}
	l.paths()
	for i := range l.jobs {
		l.noSnapshots(&l.jobs[i])
		l.hooksOfPull(&l.jobs[i])
		l.ownTarget(&l.jobs[i])
		l.sessionBudget(&l.jobs[i])
	}
	for a := range l.jobs {
		for b := a + 1; b < len(l.jobs); b++ {
			l.sameTarget(&l.jobs[a], &l.jobs[b])
			l.sameSnapshots(&l.jobs[a], &l.jobs[b])
		}
	}
	l.serveClients()
	return l.out
}

type linter struct {
	c    *Config
	jobs []lintJob
	out  []problem
}

// lintJob is a job with its parsed dataset filter (ok: it parsed).
type lintJob struct {
	i      int
	j      *jobConfig
	key    string
	filter zfs.Filter
	ok     bool
}

func (l *linter) warn(key, format string, a ...any) {
	l.out = append(l.out, problem{key: key, msg: fmt.Sprintf(format, a...), warning: true})
}

// fail adds an error about how jobs combine: it stops every command that
// runs jobs, but not serve, which runs none (see problem.jobs).
func (l *linter) fail(key, format string, a ...any) {
	l.out = append(l.out, problem{key: key, msg: fmt.Sprintf(format, a...), jobs: true})
}

// oneHost reports whether two jobs provably run on one host: neither has a
// remote. Which host runs which job is not in the file, and one file may be
// deployed on several (a laptop's push job and the backup host's pull job
// side by side, each host running its own); a pair of jobs that involves no
// remote is taken to be for one host. A combination is an error only where
// it is certain; where it depends on hosts the file does not name, a warning.
func oneHost(a, b *lintJob) bool {
	return a.j.Remote == nil && b.j.Remote == nil
}

// snapshots reports whether the job takes snapshots (snap and run).
func (v *lintJob) snapshots() bool {
	return (v.j.Type == "snap" || v.j.Type == "push") && v.j.Snapshot.Interval.Duration > 0
}

// replicates reports whether the job is a push or pull job with a valid
// filter and root, so that its targets can be computed.
func (v *lintJob) replicates() bool {
	return v.ok && (v.j.Type == "push" || v.j.Type == "pull") && zfs.ValidateDataset(v.j.Root) == nil
}

// target maps a sender dataset to where the job lands it.
func (v *lintJob) target(ds string) (string, bool) {
	t, err := zsync.TargetName(v.j.Root, ds, v.j.Replication.StripComponents)
	return t, err == nil
}

func hostOf(r *remoteConfig) string {
	if r == nil {
		return ""
	}
	port := r.Port
	if port == 0 {
		port = 22
	}
	return r.Host + ":" + strconv.Itoa(port)
}

// sourceHost and targetHost say where the job's sender and receiver datasets
// live: "" for this host, else host:port.
func (v *lintJob) sourceHost() string {
	if v.j.Type == "pull" {
		return hostOf(v.j.Remote)
	}
	return ""
}

func (v *lintJob) targetHost() string {
	if v.j.Type == "push" {
		return hostOf(v.j.Remote)
	}
	return ""
}

func onHost(h string) string {
	return "on " + hostName(h)
}

func hostName(h string) string {
	if h == "" {
		return "this host"
	}
	return strings.TrimSuffix(h, ":22")
}

// sessionBudget warns when concurrency x max_streams exceeds the SSH
// sessions zsync opens on one connection (sshSessions): each run would cut
// max_streams and say so, so the file should say what runs.
func (l *linter) sessionBudget(v *lintJob) {
	r := v.j.Remote
	if r == nil || r.MaxStreams <= 1 {
		return
	}
	c := max(1, v.j.Replication.Concurrency)
	if got := streamsWithin(r.MaxStreams, c); got < r.MaxStreams {
		l.warn(v.key+".remote.max_streams", "max_streams = %d with concurrency = %d would open %d SSH sessions on one connection, "+
			"more than sshd's default MaxSessions (%d): each run uses %d channels per stream instead; set max_streams = %d (or lower concurrency)",
			r.MaxStreams, c, r.MaxStreams*c, sshSessions, got, got)
	}
}

// paths warns about relative paths: they resolve against the directory
// zsync is started from, which cron and systemd choose.
func (l *linter) paths() {
	const why = "it depends on the directory zsync is started from, which cron and systemd choose"
	const fixPath = "; write it absolute (starting with /)"
	const fixHome = "; write it absolute, or start it with \"~/\" for the home directory"
	const fixCommand = "; write it absolute (a bare command name is looked up in PATH)"
	rel := func(p string) bool {
		return p != "" && !filepath.IsAbs(p) && p != "~" && !strings.HasPrefix(p, "~/")
	}
	// a command name without '/' is looked up in PATH, as intended
	relCommand := func(p string) bool { return strings.Contains(p, "/") && !filepath.IsAbs(p) }
	g := l.c.Global
	if !filepath.IsAbs(g.StateDir) {
		l.warn("global.state_dir", "relative path %q: %s%s", g.StateDir, why, fixPath)
	}
	if g.MetricsFile != "" && !filepath.IsAbs(g.MetricsFile) {
		l.warn("global.metrics_file", "relative path %q: %s%s", g.MetricsFile, why, fixPath)
	}
	if relCommand(g.ZFSBinary) {
		l.warn("global.zfs_binary", "relative path %q: %s%s", g.ZFSBinary, why, fixCommand)
	}
	for _, v := range l.jobs {
		if r := v.j.Remote; r != nil {
			if rel(r.IdentityFile) {
				l.warn(v.key+".remote.identity_file", "relative path %q: %s%s", r.IdentityFile, why, fixHome)
			}
			if rel(r.KnownHosts) {
				l.warn(v.key+".remote.known_hosts", "relative path %q: %s%s", r.KnownHosts, why, fixHome)
			}
		}
		for name, argv := range map[string][]string{"pre_hook": v.j.Snapshot.PreHook, "post_hook": v.j.Snapshot.PostHook} {
			if len(argv) > 0 && relCommand(argv[0]) {
				l.warn(fmt.Sprintf("%s.snapshot.%s[0]", v.key, name), "relative path %q: %s%s", argv[0], why, fixCommand)
			}
		}
	}
}

// noSnapshots warns about a push job without an interval: snap and run
// never snapshot its datasets (snapJob), unless another job does.
func (l *linter) noSnapshots(v *lintJob) {
	if v.j.Type != "push" || v.j.Snapshot.Interval.Duration > 0 || !v.ok {
		return
	}
	covered := true
	for _, r := range v.filter.Roots() {
		found := false
		for k := range l.jobs {
			o := &l.jobs[k]
			if o.i != v.i && o.ok && o.snapshots() && o.filter.Match(r) {
				found = true
			}
		}
		covered = covered && found
	}
	if covered {
		return
	}
	l.warn(v.key+".snapshot.interval", "this push job takes no snapshots (no interval in its [job.snapshot]): "+
		"`zsync snap` and `zsync run` never snapshot its datasets, so it sends only snapshots something else takes; "+
		"set interval = \"15m\" (or your period), or add a snap job for these datasets")
}

// hooksOfPull warns about hooks of a pull job: it takes no snapshots here,
// so they never run.
func (l *linter) hooksOfPull(v *lintJob) {
	if v.j.Type != "pull" {
		return
	}
	for name, argv := range map[string][]string{"pre_hook": v.j.Snapshot.PreHook, "post_hook": v.j.Snapshot.PostHook} {
		if len(argv) > 0 {
			l.warn(v.key+".snapshot."+name, "a pull job takes no snapshots, so this hook never runs: the far host snapshots its datasets; remove it")
		}
	}
}

// ownTarget refuses a job whose replicas land on this host where its own
// source selection, or a job that snapshots, picks them up again. Another
// job's snapshots are an error only when both jobs provably run on one host
// (oneHost), else a warning.
func (l *linter) ownTarget(v *lintJob) {
	if !v.replicates() || v.targetHost() != "" {
		return
	}
	for _, r := range v.filter.Roots() {
		t, ok := v.target(r)
		if !ok || !v.filter.Match(r) {
			continue
		}
		if v.sourceHost() == "" && v.filter.Match(t) {
			l.fail(v.key+".root", "the replicas land inside the datasets this job sends: %s is replicated to %s, which %v selects again, "+
				"so every run would replicate the replicas (and snapshots taken there make them diverge); "+
				"exclude the root in datasets (add \"!%s<\") or choose a root outside them",
				r, t, strings.Join(v.filter.Patterns(), ", "), v.j.Root)
			continue
		}
		for k := range l.jobs {
			o := &l.jobs[k]
			if o.i == v.i || !o.ok || !o.snapshots() || !o.filter.Match(t) {
				continue
			}
			if oneHost(v, o) {
				l.fail(o.key+".datasets", "this job snapshots %s, the replica job %q receives %s into: "+
					"a snapshot taken on a replica makes it diverge from its source, and the next replication fails; "+
					"exclude the replicas (add \"!%s<\")", t, v.j.Name, r, v.j.Root)
				continue
			}
			l.warn(o.key+".datasets", "this job selects %s, where the replica job %q receives %s: if both jobs run on one host, "+
				"a snapshot this job takes there makes the replica diverge from its source, and the next replication fails; "+
				"exclude the replicas (add \"!%s<\"; where the jobs run on different hosts sharing this file, that changes nothing)",
				t, v.j.Name, r, v.j.Root)
		}
	}
}

// overlap returns a dataset both jobs' filters select whose targets are the
// same dataset, with the sender dataset in each job, if the two jobs land
// replicas in the same place.
func overlap(a, b *lintJob) (target, srcA, srcB string, found bool) {
	for _, ra := range a.filter.Roots() {
		ta, okA := a.target(ra)
		for _, rb := range b.filter.Roots() {
			tb, okB := b.target(rb)
			if !okA || !okB {
				continue
			}
			var t string
			switch {
			case zfs.IsDescendant(ta, tb):
				t = ta
			case zfs.IsDescendant(tb, ta):
				t = tb
			default:
				continue
			}
			sa, sb := ra+t[len(ta):], rb+t[len(tb):]
			if a.filter.Match(sa) && b.filter.Match(sb) {
				return t, sa, sb, true
			}
		}
	}
	return "", "", "", false
}

// sameTarget finds two jobs that land replicas in the same target dataset.
// Two sources there is an error where it is certain: one target (on one
// named far host, or on this host for two jobs that provably run on one
// host) and two sources (two datasets on one named host, or two datasets
// here). Host names prove no difference (two names, "nas" and
// "nas.vpn.example.net", may be one host), and one source replicated twice
// is a warning anyway.
func (l *linter) sameTarget(a, b *lintJob) {
	if !a.replicates() || !b.replicates() || a.targetHost() != b.targetHost() {
		return
	}
	t, sa, sb, ok := overlap(a, b)
	if !ok {
		return
	}
	oneTarget := a.targetHost() != "" || oneHost(a, b)
	sameSourceHost := a.sourceHost() == b.sourceHost()
	// two datasets on one host, or here on two hosts: two sources either way
	twoSources := sameSourceHost && sa != sb
	const two = "two sources can never share one replica (each run diverges from the other's snapshots)"
	const one = "both jobs' prune rules apply to the one replica and their runs do not wait for each other"
	what := fmt.Sprintf("this job and job %q both receive into %s %s, from %s %s and %s %s",
		a.j.Name, t, onHost(a.targetHost()), sa, onHost(a.sourceHost()), sb, onHost(b.sourceHost()))
	switch {
	case oneTarget && twoSources:
		l.fail(b.key+".root", "%s: %s; give the jobs different roots", what, two)
	case sameSourceHost && sa == sb:
		worse := ""
		if a.sourceHost() == "" && !oneHost(a, b) {
			worse = "; if they run on two hosts sharing this file, it is worse: " + two
		}
		l.warn(b.key+".datasets", "this job and job %q both replicate %s %s to %s %s: %s%s; "+
			"keep each dataset in one job per target (e.g. add \"!%s<\" to one job's datasets) or give the jobs different roots",
			a.j.Name, sa, onHost(a.sourceHost()), t, onHost(a.targetHost()), one, worse, sa)
	case twoSources: // a target here, for jobs that may run on two hosts
		l.warn(b.key+".root", "%s: if both jobs run on one host, %s; give the jobs different roots", what, two)
	default: // two host names, which may name one host
		l.warn(b.key+".root", "%s: if %s and %s are two hosts, %s; if one, %s; give the jobs different roots, or keep the dataset in one job",
			what, hostName(a.sourceHost()), hostName(b.sourceHost()), two, one)
	}
}

// sameSnapshots warns about two jobs that snapshot one dataset with one
// prefix: they share one series of snapshots.
func (l *linter) sameSnapshots(a, b *lintJob) {
	if !a.ok || !b.ok || !a.snapshots() || !b.snapshots() || a.j.Snapshot.Prefix != b.j.Snapshot.Prefix {
		return
	}
	for _, ra := range a.filter.Roots() {
		for _, rb := range b.filter.Roots() {
			ds := ""
			switch {
			case zfs.IsDescendant(ra, rb):
				ds = ra
			case zfs.IsDescendant(rb, ra):
				ds = rb
			}
			if ds != "" && a.filter.Match(ds) && b.filter.Match(ds) {
				l.warn(b.key+".snapshot.prefix", "this job and job %q both take %s snapshots of %s: they share one series "+
					"(the shorter interval decides) and each job's prune.source rules thin the other's snapshots; "+
					"give one of them its own prefix, or let one job take the snapshots", a.j.Name, a.j.Snapshot.Prefix, ds)
				return
			}
		}
	}
}

// serveClients checks each [[serve.client]] and how it meets the push jobs
// of the same file (one file may serve both ends, as the example does).
func (l *linter) serveClients() {
	for i, cl := range l.c.Serve.Clients {
		key := fmt.Sprintf("serve.client[%d]", i)
		if cl.ReceiveRoot == "" && len(cl.Send) == 0 {
			l.warn(key, "client %q can do nothing: it has neither receive_root (where it may push to) nor send (what it may pull), "+
				"so `serve --client %s` refuses all it asks; if that is not how you meant to disable it, set one of them", cl.Name, cl.Name)
		}
		if !cl.AppendOnly {
			continue
		}
		if cl.PruneSend {
			l.warn(key+".prune_send", "prune_send = true takes no effect: append_only refuses every destroy, in the send area too, and wins; drop one of them")
		}
		if cl.ReceiveRoot == "" || zfs.ValidateDataset(cl.ReceiveRoot) != nil {
			continue
		}
		for _, v := range l.jobs {
			j := v.j
			if j.Type != "push" || j.Remote == nil || zfs.ValidateDataset(j.Root) != nil || !zfs.IsDescendant(j.Root, cl.ReceiveRoot) {
				continue
			}
			if len(j.Prune.Target) > 0 {
				l.warn(v.key+".prune.target", "serve client %q is append_only and receives below %s: where it is this job's far side, "+
					"it refuses every target prune, so every run fails to prune and the backup pool only grows; "+
					"drop the target rules or set append_only = false", cl.Name, cl.ReceiveRoot)
			}
			if j.Replication.OnDiverged == "rotate" {
				l.warn(v.key+".replication.on_diverged", "serve client %q is append_only and receives below %s: where it is this job's far side, "+
					"it refuses the rename that rotate needs, so a diverged target stays diverged; "+
					"use on_diverged = \"fail\" or set append_only = false", cl.Name, cl.ReceiveRoot)
			}
		}
	}
}
