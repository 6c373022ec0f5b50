package cmd

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The TOML schema. Key names are the product's interface (SPEC.md §2): tests,
// docs and users rely on them. Domain packages never see these types; cmd maps
// them onto each package's options.

type fileConfig struct {
	Global globalConfig `toml:"global"`
	Jobs   []jobConfig  `toml:"job"`
	Serve  serveConfig  `toml:"serve"`
}

type globalConfig struct {
	StateDir    string `toml:"state_dir"`
	MetricsFile string `toml:"metrics_file,omitempty"`
	ZFSBinary   string `toml:"zfs_binary,omitempty"`
}

type jobConfig struct {
	Name        string            `toml:"name"`
	Type        string            `toml:"type"`
	Datasets    []string          `toml:"datasets"`
	Root        string            `toml:"root"`
	Remote      *remoteConfig     `toml:"remote"`
	Snapshot    snapshotConfig    `toml:"snapshot"`
	Replication replicationConfig `toml:"replication"`
	Prune       pruneConfig       `toml:"prune,omitempty"`
	Check       checkConfig       `toml:"check,omitempty"`
}

type remoteConfig struct {
	Host           string   `toml:"host"`
	User           string   `toml:"user,omitempty"`
	Port           int      `toml:"port,omitzero"`
	IdentityFile   string   `toml:"identity_file,omitempty"`
	KnownHosts     string   `toml:"known_hosts,omitempty"`
	HostKeyPolicy  string   `toml:"host_key_policy"`
	ProxyJump      string   `toml:"proxy_jump,omitempty"`
	Command        string   `toml:"command"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	IdleTimeout    Duration `toml:"idle_timeout"`
	MaxStreams     int      `toml:"max_streams"`
}

type snapshotConfig struct {
	Prefix      string   `toml:"prefix"`
	Interval    Duration `toml:"interval,omitempty"`
	PreHook     []string `toml:"pre_hook"`
	PostHook    []string `toml:"post_hook"`
	HookTimeout Duration `toml:"hook_timeout"`
}

type replicationConfig struct {
	Initial            string            `toml:"initial"`
	Protection         string            `toml:"protection"`
	Raw                string            `toml:"raw"`
	OnDiverged         string            `toml:"on_diverged"`
	Concurrency        int               `toml:"concurrency"`
	BandwidthLimit     Size              `toml:"bandwidth_limit"`
	Compression        string            `toml:"compression"`
	PropertiesOverride map[string]string `toml:"properties_override"`
	PropertiesExclude  []string          `toml:"properties_exclude"`
	StripComponents    int               `toml:"strip_components"`
	SnapshotFilter     string            `toml:"snapshot_filter,omitempty"`
}

type pruneConfig struct {
	Source []pruneRuleConfig `toml:"source"`
	Target []pruneRuleConfig `toml:"target"`
}

type pruneRuleConfig struct {
	Grid          string  `toml:"grid,omitempty"`
	Regex         *string `toml:"regex,omitempty"`
	Negate        bool    `toml:"negate,omitempty"`
	LastN         *int    `toml:"last_n,omitempty"`
	NotReplicated bool    `toml:"not_replicated,omitempty"`
}

type checkConfig struct {
	LagWarning       Duration `toml:"lag_warning,omitempty"`
	LagCritical      Duration `toml:"lag_critical,omitempty"`
	SnapshotWarning  Duration `toml:"snapshot_age_warning,omitempty"`
	SnapshotCritical Duration `toml:"snapshot_age_critical,omitempty"`
}

type serveConfig struct {
	// IdleTimeout ends `serve --client` when its client sends nothing for
	// that long while serve waits on it (default 30m, "0" = never).
	IdleTimeout Duration            `toml:"idle_timeout"`
	Clients     []serveClientConfig `toml:"client"`
}

// defaultServeIdleTimeout is serve.idle_timeout when the key is absent.
const defaultServeIdleTimeout = 30 * time.Minute

type serveClientConfig struct {
	Name        string   `toml:"name"`
	ReceiveRoot string   `toml:"receive_root,omitempty"`
	Send        []string `toml:"send"`
	AppendOnly  bool     `toml:"append_only"`
	// PruneSend lets a pulling client prune snapshots of the datasets it may
	// send (its own retention on the far side); off by default.
	PruneSend bool `toml:"prune_send"`
	// AllowHeal lets the client repair snapshots in its receive area with
	// corrective receives (zsync heal); off by default.
	AllowHeal bool `toml:"allow_heal"`
	// AllowProperties extends the properties the client may set on what it
	// receives and creates (beyond compression, recordsize, atime,
	// readonly and zsync:*). mountpoint, canmount and volmode are decided
	// by the far side and cannot be listed.
	AllowProperties []string `toml:"allow_properties"`
	// MaxHolds caps the number of holds the client may have at a time on
	// one dataset in its send area: hold objects, one per (snapshot, tag),
	// so many tags on one snapshot count as many (0: serve.DefaultMaxHolds,
	// 100000).
	MaxHolds int `toml:"max_holds"`
	// MaxStreams caps the SSH channels the client may stripe a stream
	// over (its max_streams is cut to it; 1: no striping; 0:
	// serve.DefaultMaxStreams, 4).
	MaxStreams int `toml:"max_streams"`
}

// farSideProperties are decided by `zsync serve` for every restricted
// client; allow_properties cannot hand them out.
var farSideProperties = []string{"mountpoint", "canmount", "volmode"}

// Duration is a config duration: one or more <number><unit> groups with units
// s, m, h, d (24h) and w (7d), e.g. "15m", "36h", "14d", "1h30m". "0" is zero.
type Duration struct {
	time.Duration
	set bool
}

// UnmarshalText parses a duration; errors quote the text.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration, d.set = v, true
	return nil
}

// MarshalText prints the duration in the config's own notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(FormatDuration(d.Duration)), nil }

// IsSet reports whether the key was present in the file.
func (d Duration) IsSet() bool { return d.set }

// ParseDuration parses "15m", "36h", "14d", "2w", "1h30m" or "0".
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "0" {
		return 0, nil
	}
	if in == "" {
		return 0, fmt.Errorf("invalid duration %q: empty (use e.g. 15m, 36h, 14d)", s)
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("invalid duration %q: want <number><unit> with unit s, m, h, d or w (e.g. 15m, 36h, 14d)", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<31 {
			return 0, fmt.Errorf("invalid duration %q: number out of range", s)
		}
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (use s, m, h, d or w)", s, rest[i:i+1])
		}
		// time.Duration holds about 292 years; beyond that it would wrap
		if time.Duration(n) > (math.MaxInt64-total)/unit {
			return 0, fmt.Errorf("invalid duration %q: too long (at most %s, about 292 years)", s, FormatDuration(maxDuration))
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// maxDuration is the longest duration ParseDuration accepts, in whole
// seconds (FormatDuration's smallest unit).
const maxDuration = math.MaxInt64 / time.Second * time.Second

// FormatDuration prints d with the largest exact units, e.g. "14d", "1h30m".
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		n string
		d time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d >= u.d {
			fmt.Fprintf(&b, "%d%s", d/u.d, u.n)
			d %= u.d
		}
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// Size is a byte count written like "50MiB", "1.5GB", "800k" or "0".
type Size struct {
	Bytes int64
	set   bool
}

// UnmarshalText parses a size; errors quote the text.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	s.Bytes, s.set = v, true
	return nil
}

// MarshalText prints the size in the config's own notation (FormatSize), so
// a printed config reads back as the same size.
func (s Size) MarshalText() ([]byte, error) { return []byte(FormatSize(s.Bytes)), nil }

// FormatSize prints n with the largest unit that divides it exactly: binary
// units first ("50MiB", "1GiB"), then decimal ones ("1GB", "800KB"), else
// a plain byte count ("12"). ParseSize reads every form back as the same
// number.
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseSize parses a byte size with an optional unit (B, k/KB/KiB, M/MB/MiB,
// G/GB/GiB, T/TB/TiB; the short and "i" forms are binary, the "B" forms decimal).
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit (e.g. 50MiB, 1GB, 0)", s)
	}
	num, err := strconv.ParseFloat(in[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[strings.ToLower(strings.TrimSpace(in[i:]))]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, strings.TrimSpace(in[i:]))
	}
	v := num * mult
	if v < 0 || v > 1<<62 {
		return 0, fmt.Errorf("invalid size %q: out of range", s)
	}
	return int64(v), nil
}
