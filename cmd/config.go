package cmd

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/zfs"
)

// DefaultConfigPath is where zsync looks for its config without --config or
// ZSYNC_CONFIG.
const DefaultConfigPath = "/etc/zsync/zsync.toml"

// Config is a loaded, defaulted and validated configuration file.
type Config struct {
	Path string
	fileConfig
}

var reJobName = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// LoadConfig reads and validates the file at path. Every problem is a
// *ConfigError naming file, line and key; unknown keys are errors, because a
// typo must never silently disable a safety setting.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read the config: %v", errors.Unwrap(err))}
	}
	return parseConfig(path, string(raw))
}

func parseConfig(path, text string) (*Config, error) {
	ix := newLineIndex(text)
	var fc fileConfig
	md, err := toml.Decode(text, &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key, line := pe.LastKey, pe.Position.Line
			if key != "" {
				if k, l := ix.find(key); l > 0 {
					key = k
					if line == 0 {
						line = l
					}
				}
			}
			return nil, &ConfigError{File: path, Line: line, Key: key, Msg: pe.Message}
		}
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		var errs []error
		for _, k := range und {
			key, line := ix.find(k.String())
			errs = append(errs, &ConfigError{File: path, Line: line, Key: key, Msg: "unknown key (a typo? see `zsync config check --help` for the schema)"})
		}
		return nil, errors.Join(errs...)
	}
	c := &Config{Path: path, fileConfig: fc}
	c.applyDefaults()
	if err := c.validate(ix); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	if c.Global.StateDir == "" {
		c.Global.StateDir = "/var/lib/zsync"
	}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.Snapshot.Prefix == "" {
			j.Snapshot.Prefix = "zsync_"
		}
		if !j.Snapshot.HookTimeout.IsSet() {
			j.Snapshot.HookTimeout.Duration = 30e9
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
			r.Concurrency = 1
		}
		if j.Remote != nil {
			if j.Remote.HostKeyPolicy == "" {
				j.Remote.HostKeyPolicy = "strict"
			}
			if j.Remote.Command == "" {
				j.Remote.Command = "zsync serve --stdio"
			}
		}
	}
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("invalid value %q: want one of %s", v, strings.Join(allowed, ", "))
}

func (c *Config) validate(ix *lineIndex) error {
	var errs []error
	bad := func(key string, err error) {
		errs = append(errs, &ConfigError{File: c.Path, Line: ix.line(key), Key: key, Msg: err.Error()})
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
		if j.Type == "pull" && j.Remote == nil {
			// A local pull is allowed (source on this host), like a local push.
			_ = j
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
					errs = append(errs, &ConfigError{File: c.Path, Line: ix.lineOfText(key, re.text), Key: fmt.Sprintf("%s[%d]", key, re.index), Msg: re.msg})
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
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
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
