package cmd

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/zsync-dev/zsync/snap"
	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/zfs"
)

// DefaultConfigPath is where zsync looks for its config without --config or
// ZSYNC_CONFIG.
const DefaultConfigPath = "/etc/zsync/zsync.toml"

// Config is a loaded, defaulted and validated configuration file.
type Config struct {
	Path string
	fileConfig
	// Warnings are what `config check` warns about in a valid file: settings
	// that may be intended but often are not. They never stop a run.
	Warnings []*ConfigError
}

var reJobName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// LoadConfig reads and validates the file at path. Every problem is a
// *ConfigError naming file, line and key, and all of them are returned
// (joined); unknown keys are errors, because a typo must never silently
// disable a safety setting. The warnings of a valid file are in
// Config.Warnings.
func LoadConfig(path string) (*Config, error) {
	return splitProblems(checkConfigFile(path))
}

// loadServeConfig is LoadConfig for `serve --client`: the errors config
// check added about jobs (how jobs combine: a job that would replicate its
// own replicas, two sources in one replica, ...; a hook without a program)
// do not stop it, since serve runs no job. One such error in a file shared
// by several hosts must not stop serving every client; the commands that
// run jobs still refuse the file. Every other error (unknown keys, wrong
// types, invalid values) stops serve as it always did.
func loadServeConfig(path string) (*Config, error) {
	c, problems := checkConfigFile(path)
	for i, p := range problems {
		if p.jobs {
			w := *p
			w.Warning = true
			problems[i] = &w
		}
	}
	return splitProblems(c, problems)
}

// checkConfigFile reads and checks the file at path and returns every
// problem it finds, errors and warnings, in the order of their lines. The
// Config is nil when the file cannot be read or is not TOML at all.
func checkConfigFile(path string) (*Config, []*ConfigError) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, []*ConfigError{{File: path, Msg: fmt.Sprintf("cannot read the config: %v", errors.Unwrap(err))}}
	}
	return checkConfigText(path, string(raw))
}

func parseConfig(path, text string) (*Config, error) {
	return splitProblems(checkConfigText(path, text))
}

// splitProblems returns the config with its warnings, or the errors joined.
func splitProblems(c *Config, problems []*ConfigError) (*Config, error) {
	var errs []error
	var warnings []*ConfigError
	for _, p := range problems {
		if p.Warning {
			warnings = append(warnings, p)
		} else {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.Warnings = warnings
	return c, nil
}

func checkConfigText(path, text string) (*Config, []*ConfigError) {
	// A syntax error stops the TOML parser: it is the one problem known.
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, []*ConfigError{{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}}
		}
		return nil, []*ConfigError{{File: path, Msg: err.Error()}}
	}
	var d schemaDecoder
	c := &Config{Path: path}
	d.table("", doc, reflect.ValueOf(&c.fileConfig).Elem())
	c.applyDefaults()
	checks := c.validate()
	switch {
	case len(doc) == 0:
		checks = append(checks, problem{warning: true, msg: "the file is empty: it configures no job and no serve client, " +
			"so snap, push, pull, run and prune have nothing to do " +
			"(one-off `zsync push SRC DST` needs no config file; for jobs see docs/configuration.md)"})
	case len(c.Jobs) == 0 && len(c.Serve.Clients) == 0:
		checks = append(checks, problem{warning: true, msg: "no [[job]] and no [[serve.client]]: " +
			"snap, push, pull, run and prune have nothing to do with this file"})
	}
	checks = append(checks, c.lint()...)

	ix := newLineIndex(text)
	var out []*ConfigError
	add := func(p problem) {
		out = append(out, &ConfigError{File: path, Line: ix.line(p.key), Key: p.key, Msg: p.msg, Warning: p.warning, jobs: p.jobs})
	}
	for _, p := range d.problems {
		add(p)
	}
	// A value that could not be decoded was left empty: what the checks say
	// about that key (or about its parts or the table holding it) follows
	// from that and would only repeat it.
	for _, p := range checks {
		if !slices.ContainsFunc(d.problems, func(dp problem) bool { return relatedKeys(dp.key, p.key) }) {
			add(p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Key < out[j].Key
	})
	return c, out
}

// relatedKeys reports whether one key path is the other or contains it.
func relatedKeys(a, b string) bool {
	under := func(x, y string) bool {
		return x == y || strings.HasPrefix(x, y+".") || strings.HasPrefix(x, y+"[")
	}
	return a != "" && b != "" && (under(a, b) || under(b, a))
}

// Defaults that are not the zero value of their key. Every default is
// filled in by applyDefaults, so that `config check` prints what a run will
// use and that printout, read back, is the same configuration.
const (
	defaultStateDir       = "/var/lib/zsync"
	defaultPrefix         = "zsync_"
	defaultHookTimeout    = snap.DefaultHookTimeout
	defaultConnectTimeout = 15 * time.Second // sshtransport's own default
	defaultRemoteCommand  = "zsync serve --stdio"
)

// setDefault gives d the value v when the file did not set it.
func setDefault(d *Duration, v time.Duration) {
	if !d.set {
		d.Duration, d.set = v, true
	}
}

func (c *Config) applyDefaults() {
	if c.Global.StateDir == "" {
		c.Global.StateDir = defaultStateDir
	}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.Snapshot.Prefix == "" {
			j.Snapshot.Prefix = defaultPrefix
		}
		if j.Snapshot.HookTimeout.Duration <= 0 { // "0" is the default too (snap.Options)
			j.Snapshot.HookTimeout = Duration{defaultHookTimeout, true}
		}
		if j.Type == "push" {
			// no interval: the job takes no snapshots (say so in the printout)
			setDefault(&j.Snapshot.Interval, 0)
		}
		r := &j.Replication
		def := func(p *string, v string) {
			if *p == "" {
				*p = v
			}
		}
		def(&r.Initial, "most_recent")
		def(&r.Protection, "resumability")
		def(&r.Raw, "auto")
		def(&r.OnDiverged, "fail")
		def(&r.Compression, "none")
		if r.Concurrency == 0 {
			r.Concurrency = defaultConcurrency(j.Remote)
		}
		if !r.BandwidthLimit.set {
			r.BandwidthLimit.set = true // 0: unlimited
		}
		if rm := j.Remote; rm != nil {
			def(&rm.HostKeyPolicy, "strict")
			def(&rm.Command, defaultRemoteCommand)
			if rm.ConnectTimeout.Duration <= 0 { // "0" is the default too
				rm.ConnectTimeout = Duration{defaultConnectTimeout, true}
			}
			setDefault(&rm.IdleTimeout, defaultIdleTimeout)
			if rm.MaxStreams == 0 {
				rm.MaxStreams = 1
			}
		}
		if j.Type == "push" || j.Type == "pull" {
			// the thresholds of `zsync check` (see thresholds)
			warn, crit := thresholds(j, j.Check.LagWarning, j.Check.LagCritical)
			setDefault(&j.Check.LagWarning, warn)
			setDefault(&j.Check.LagCritical, crit)
			warn, crit = thresholds(j, j.Check.SnapshotWarning, j.Check.SnapshotCritical)
			setDefault(&j.Check.SnapshotWarning, warn)
			setDefault(&j.Check.SnapshotCritical, crit)
		}
	}
	setDefault(&c.Serve.IdleTimeout, defaultServeIdleTimeout)
	for i := range c.Serve.Clients {
		if cl := &c.Serve.Clients[i]; cl.MaxHolds == 0 {
			cl.MaxHolds = serve.DefaultMaxHolds
		}
		if cl := &c.Serve.Clients[i]; cl.MaxStreams == 0 {
			cl.MaxStreams = serve.DefaultMaxStreams
		}
	}
}

// defaultLocalConcurrency is how many datasets of one depth a job whose
// two sides are on this host replicates at a time when its file does not
// say. Two, because most of a small incremental's time is its receive
// waiting for a transaction group to sync, and a second dataset's transfer
// overlaps that wait (the every-15-minutes run of 50 datasets in
// bench-scale: 57.9 s at 1, 47.3 s at 2, OpenZFS 2.3, 2026-12-03). Not
// more: large streams into one pool share its disks whatever the count.
const defaultLocalConcurrency = 2

// defaultConcurrency is a job's concurrency when its file sets none:
// defaultLocalConcurrency without a remote, and 1 with one. A second
// worker on a far host needs a second SSH session and far zsync serve,
// which sshd may refuse (MaxSessions) and which serve's idle_timeout
// closes while the other worker's long transfer runs: until zsync keeps
// an idle worker's session alive and falls back to one worker when it
// cannot open a second, a remote job replicates one dataset at a time
// unless its file says otherwise.
func defaultConcurrency(rm *remoteConfig) int {
	if rm != nil {
		return 1
	}
	return defaultLocalConcurrency
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("invalid value %q: want one of %s", v, strings.Join(allowed, ", "))
}

// validate returns the errors of a decoded and defaulted config, each with
// its key path.
func (c *Config) validate() []problem {
	var errs []problem
	bad := func(key string, err error) {
		errs = append(errs, problem{key: key, msg: err.Error()})
	}
	seen := map[string]int{}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		p := fmt.Sprintf("job[%d]", i)
		switch {
		case j.Name == "":
			bad(p+".name", errors.New("missing: every job needs a name"))
		case !reJobName.MatchString(j.Name) || len(j.Name) > 64:
			bad(p+".name", fmt.Errorf("invalid job name %q: use up to 64 letters, digits, '_', '-', '.', ':'", j.Name))
		default:
			if prev, dup := seen[j.Name]; dup {
				bad(p+".name", fmt.Errorf("duplicate job name %q (also job[%d])", j.Name, prev))
			}
			seen[j.Name] = i
		}
		if err := oneOf(j.Type, "push", "pull", "snap"); err != nil {
			bad(p+".type", err)
		}
		if len(j.Datasets) == 0 {
			bad(p+".datasets", errors.New("missing: list the datasets, e.g. [\"tank/home<\"]"))
		} else if _, err := zfs.ParseFilter(j.Datasets); err != nil {
			bad(p+".datasets", err)
		}
		switch j.Type {
		case "push", "pull":
			if j.Root == "" {
				bad(p+".root", fmt.Errorf("missing: a %s job needs the dataset its replicas land under", j.Type))
			} else if err := zfs.ValidateDataset(j.Root); err != nil {
				bad(p+".root", err)
			}
		case "snap":
			if j.Root != "" {
				bad(p+".root", errors.New("a snap job replicates nothing; remove root"))
			}
			if j.Remote != nil {
				bad(p+".remote", errors.New("a snap job has no remote"))
			}
		}
		if r := j.Remote; r != nil {
			rp := p + ".remote"
			if r.Host == "" {
				bad(rp+".host", errors.New("missing: the host to connect to (or an ~/.ssh/config Host alias)"))
			}
			if r.Port < 0 || r.Port > 65535 {
				bad(rp+".port", fmt.Errorf("invalid port %d", r.Port))
			}
			if err := oneOf(r.HostKeyPolicy, "strict", "accept-new", "insecure"); err != nil {
				bad(rp+".host_key_policy", err)
			}
			if _, err := sshtransport.ParseProxyJump(r.ProxyJump); err != nil {
				bad(rp+".proxy_jump", err)
			}
			if r.MaxStreams < 1 || r.MaxStreams > sshtransport.MaxStreams {
				bad(rp+".max_streams", fmt.Errorf("invalid max_streams %d: want 1 to %d", r.MaxStreams, sshtransport.MaxStreams))
			}
		}
		s := j.Snapshot
		if err := validatePrefix(s.Prefix); err != nil {
			bad(p+".snapshot.prefix", err)
		}
		if j.Type == "snap" && s.Interval.Duration <= 0 {
			bad(p+".snapshot.interval", errors.New("missing: a snap job needs an interval, e.g. \"15m\""))
		}
		if s.Interval.Duration < 0 {
			bad(p+".snapshot.interval", errors.New("must not be negative"))
		}
		for name, argv := range map[string][]string{"pre_hook": s.PreHook, "post_hook": s.PostHook} {
			if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
				// a job's error (serve does not stop for it), new in the
				// release that added config check's combination errors
				errs = append(errs, problem{key: fmt.Sprintf("%s.snapshot.%s[0]", p, name), jobs: true,
					msg: "empty program name: a hook is an argv array such as [\"/usr/local/bin/db-freeze\", \"--quick\"], or [] for none"})
			}
		}
		r := j.Replication
		rp := p + ".replication"
		if err := oneOf(r.Initial, "most_recent", "all", "fail"); err != nil {
			bad(rp+".initial", err)
		}
		if err := oneOf(r.Protection, "resumability", "incremental", "nothing"); err != nil {
			bad(rp+".protection", err)
		}
		if err := oneOf(r.Raw, "auto", "always", "never"); err != nil {
			bad(rp+".raw", err)
		}
		if err := oneOf(r.OnDiverged, "fail", "rotate"); err != nil {
			bad(rp+".on_diverged", err)
		}
		if err := oneOf(r.Compression, "none", "zstd"); err != nil {
			bad(rp+".compression", err)
		}
		if r.Concurrency < 1 || r.Concurrency > 64 {
			bad(rp+".concurrency", fmt.Errorf("invalid concurrency %d: want 1 to 64", r.Concurrency))
		}
		if r.StripComponents < 0 {
			bad(rp+".strip_components", errors.New("must not be negative"))
		}
		if r.SnapshotFilter != "" {
			if _, err := regexp.Compile(r.SnapshotFilter); err != nil {
				bad(rp+".snapshot_filter", fmt.Errorf("invalid regex %q: %v", r.SnapshotFilter, err))
			}
		}
		for k := range r.PropertiesOverride {
			if k == "" || strings.ContainsAny(k, "= \t") {
				bad(rp+".properties_override", fmt.Errorf("invalid property name %q", k))
			}
		}
		for _, k := range r.PropertiesExclude {
			if k == "" || strings.ContainsAny(k, "= \t") {
				bad(rp+".properties_exclude", fmt.Errorf("invalid property name %q", k))
			}
		}
		for side, rules := range map[string][]pruneRuleConfig{"source": j.Prune.Source, "target": j.Prune.Target} {
			key := p + ".prune." + side
			if side == "target" && len(rules) > 0 && j.Type == "snap" {
				bad(key, errors.New("a snap job has no target to prune"))
			}
			if _, err := buildPrunePolicy(rules); err != nil {
				var re *ruleError
				if errors.As(err, &re) {
					errs = append(errs, problem{key: indexKey(key, re.index), msg: re.msg})
				} else {
					bad(key, err)
				}
			}
		}
	}
	for i, cl := range c.Serve.Clients {
		p := fmt.Sprintf("serve.client[%d]", i)
		if cl.Name == "" || !reJobName.MatchString(cl.Name) {
			bad(p+".name", fmt.Errorf("invalid client name %q: use letters, digits, '_', '-', '.', ':'", cl.Name))
		}
		if cl.ReceiveRoot != "" {
			if err := zfs.ValidateDataset(cl.ReceiveRoot); err != nil {
				bad(p+".receive_root", err)
			}
		}
		if len(cl.Send) > 0 {
			if _, err := zfs.ParseFilter(cl.Send); err != nil {
				bad(p+".send", err)
			}
		}
		for j, prop := range cl.AllowProperties {
			key := fmt.Sprintf("%s.allow_properties[%d]", p, j)
			switch {
			case zfs.ValidatePropertyName(prop) != nil:
				bad(key, fmt.Errorf("invalid property name %q", prop))
			case slices.Contains(farSideProperties, prop):
				bad(key, fmt.Errorf("%s is decided by the far side for every client (receives are never mounted by the client's choice) and cannot be allowed", prop))
			}
		}
		if cl.MaxHolds < 0 {
			bad(p+".max_holds", fmt.Errorf("must not be negative, got %d", cl.MaxHolds))
		}
		if cl.MaxStreams < 1 || cl.MaxStreams > sshtransport.MaxStreams {
			bad(p+".max_streams", fmt.Errorf("invalid max_streams %d: want 1 to %d", cl.MaxStreams, sshtransport.MaxStreams))
		}
		for k, other := range c.Serve.Clients[:i] {
			if cl.ReceiveRoot == "" || other.ReceiveRoot == "" {
				continue
			}
			if zfs.IsDescendant(cl.ReceiveRoot, other.ReceiveRoot) || zfs.IsDescendant(other.ReceiveRoot, cl.ReceiveRoot) {
				bad(p+".receive_root", fmt.Errorf("%s overlaps serve.client[%d] (%s) receive_root %s: each client needs a receive root of its own", cl.ReceiveRoot, k, other.Name, other.ReceiveRoot))
			}
		}
		for _, other := range c.Serve.Clients[:i] {
			if cl.Name == other.Name {
				bad(p+".name", fmt.Errorf("duplicate client name %q", cl.Name))
			}
		}
	}
	return errs
}

// Job returns the job called name.
func (c *Config) Job(name string) (*jobConfig, bool) {
	for i := range c.Jobs {
		if c.Jobs[i].Name == name {
			return &c.Jobs[i], true
		}
	}
	return nil, false
}

// selectJobs returns the named jobs (all jobs when names is empty) that pass
// keep, or a usage error naming an unknown job.
func (c *Config) selectJobs(names []string, keep func(*jobConfig) bool) ([]*jobConfig, error) {
	var out []*jobConfig
	if len(names) == 0 {
		for i := range c.Jobs {
			if keep(&c.Jobs[i]) {
				out = append(out, &c.Jobs[i])
			}
		}
		return out, nil
	}
	for _, n := range names {
		j, ok := c.Job(n)
		if !ok {
			return nil, usageErrorf("no job named %q in %s", n, c.Path)
		}
		if !keep(j) {
			return nil, usageErrorf("job %q is a %s job; this command does not apply to it", n, j.Type)
		}
		out = append(out, j)
	}
	return out, nil
}
