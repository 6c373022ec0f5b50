package cmd

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// allKeysConfig sets every key of the schema (TestRoundTripCoversEveryKey
// checks that, together with the other round-trip configs, it does), with
// values other than the defaults.
const allKeysConfig = `[global]
state_dir = "/srv/zsync/state"
metrics_file = "/var/lib/node_exporter/textfile/zsync.prom"
zfs_binary = "/usr/local/sbin/zfs"

[[job]]
name = "home"
type = "push"
datasets = ["tank/home<", "!tank/home/scratch<"]
root = "backup/laptop"
  [job.remote]
  host = "backup.example.net"
  user = "zsync"
  port = 2222
  identity_file = "/etc/zsync/id_ed25519"
  known_hosts = "~/.ssh/zsync_known_hosts"
  host_key_policy = "accept-new"
  proxy_jump = "ops@bastion.example.net:2200"
  command = "/usr/local/bin/zsync serve --stdio"
  connect_timeout = "1m"
  idle_timeout = "2h"
  max_streams = 4
  [job.snapshot]
  prefix = "auto-"
  interval = "1h30m"
  pre_hook = ["/usr/local/bin/db-freeze", "--quick"]
  post_hook = ["/usr/local/bin/db-thaw"]
  hook_timeout = "2m"
  [job.replication]
  initial = "all"
  protection = "incremental"
  raw = "always"
  on_diverged = "rotate"
  concurrency = 4
  bandwidth_limit = "1.5GB"
  compression = "zstd"
  properties_override = { compression = "lz4", "com.example:owner" = "ops" }
  properties_exclude = ["mountpoint", "sharenfs"]
  strip_components = 1
  snapshot_filter = "^(auto-|manual_)"
  [job.prune]
  source = [
    { grid = "1x1h(keep=all) | 24x1h | 30x1d", regex = "^auto-" },
    { not_replicated = true },
    { last_n = 3, regex = "^auto-" },
    { regex = "^manual_", negate = true },
  ]
  target = [
    { grid = "24x1h | 90x1d", regex = "^auto-" },
    { last_n = 100 },
    { not_replicated = true },
    { regex = "^keep_", negate = false },
  ]
  [job.check]
  lag_warning = "4h"
  lag_critical = "1d"
  snapshot_age_warning = "3h"
  snapshot_age_critical = "12h"

[serve]
idle_timeout = "10m"

[[serve.client]]
name = "laptop"
receive_root = "backup/laptop"
send = ["tank/data<"]
append_only = false
prune_send = true
allow_heal = true
allow_properties = ["checksum", "com.example:owner"]
max_holds = 500
max_streams = 2
`

// edgeConfig has the values whose printing went wrong: zeros that mean
// "never" or "unlimited", sizes that are not whole binary units, absent keys
// with defaults that depend on other keys, and every job type.
const edgeConfig = `[global]

[[job]]
name = "pull-1"
type = "pull"
datasets = ["tank/data<"]
root = "pool/replicas"
  [job.remote]
  host = "server"
  idle_timeout = "0"
  connect_timeout = "0"
  [job.replication]
  bandwidth_limit = "1000"
  [job.check]
  lag_critical = "3d"

[[job]]
name = "snap.1"
type = "snap"
datasets = ["tank/home<"]
  [job.snapshot]
  interval = "2w"
  [job.prune]
  source = [{ last_n = 10 }]

[[job]]
name = "push:1"
type = "push"
datasets = ["tank/home"]
root = "pool/local"
  [job.replication]
  bandwidth_limit = 1048577
  [job.check]
  lag_warning = "0"

[serve]
idle_timeout = "0"

[[serve.client]]
name = "reader"
send = ["tank/data<"]
allow_properties = []
`

const minimalConfig = `[[job]]
name = "s"
type = "snap"
datasets = ["tank"]
  [job.snapshot]
  interval = "15m"
`

func roundTripConfigs(t *testing.T) map[string]string {
	t.Helper()
	example, err := os.ReadFile("../docs/zsync.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"example": string(example), "all keys": allKeysConfig, "edge": edgeConfig,
		"minimal": minimalConfig, "good": goodConfig}
}

// The printed config, read back, is the same effective config; printed
// again it is the same text.
func TestConfigCheckRoundTrip(t *testing.T) {
	for name, text := range roundTripConfigs(t) {
		t.Run(name, func(t *testing.T) {
			c1, err := parseConfig("in.toml", text)
			if err != nil {
				t.Fatal(err)
			}
			var printed bytes.Buffer
			if err := printConfig(&printed, c1); err != nil {
				t.Fatal(err)
			}
			c2, err := parseConfig("printed.toml", printed.String())
			if err != nil {
				t.Fatalf("the printed config does not load: %v\n%s", err, printed.String())
			}
			if !reflect.DeepEqual(c1.fileConfig, c2.fileConfig) {
				t.Fatalf("the printed config reads back differently:\nbefore %+v\nafter  %+v\n%s", c1.fileConfig, c2.fileConfig, printed.String())
			}
			var again bytes.Buffer
			if err := printConfig(&again, c2); err != nil {
				t.Fatal(err)
			}
			if again.String() != printed.String() {
				t.Fatalf("printing is not stable:\n%s\n---\n%s", printed.String(), again.String())
			}
			// through the command too: the header line is a comment
			p := configFile(t, text)
			code, out, errOut := runUnit(t, "--config", p, "config", "check")
			if code != 0 {
				t.Fatalf("config check: exit %d: %s", code, errOut)
			}
			c3, err := parseConfig("stdout.toml", out)
			if err != nil || !reflect.DeepEqual(c1.fileConfig, c3.fileConfig) {
				t.Fatalf("config check's stdout reads back differently (%v):\n%s", err, out)
			}
		})
	}
}

// The round-trip configs, together, set every key of the schema.
func TestRoundTripCoversEveryKey(t *testing.T) {
	seen := map[string]bool{}
	for _, text := range roundTripConfigs(t) {
		var doc map[string]any
		if _, err := toml.Decode(text, &doc); err != nil {
			t.Fatal(err)
		}
		docKeys("", doc, seen)
	}
	for _, k := range schemaKeys() {
		if !seen[k] {
			t.Errorf("no round-trip config sets %s", k)
		}
	}
}

// docKeys adds the key paths (without indexes) of a decoded TOML document.
func docKeys(prefix string, v any, seen map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := joinKey(prefix, k)
			seen[p] = true
			docKeys(p, e, seen)
		}
	case []map[string]any:
		for _, e := range x {
			docKeys(prefix, e, seen)
		}
	case []any:
		for _, e := range x {
			docKeys(prefix, e, seen)
		}
	}
}

// schemaKeys lists every key of the config structs by their toml tags,
// tables included, without indexes: "job", "job.remote", "job.remote.host".
func schemaKeys() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := tomlName(f)
			if name == "" {
				continue
			}
			p := joinKey(prefix, name)
			out = append(out, p)
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != durationType && ft != sizeType {
				walk(p, ft)
			}
		}
	}
	walk("", reflect.TypeFor[fileConfig]())
	sort.Strings(out)
	return out
}

// Defaults are printed as the values a run uses, in the units people
// write: never a "0" that would mean something else when pasted back.
func TestConfigCheckPrintsEffectiveDefaults(t *testing.T) {
	text := "[[job]]\nname = \"h\"\ntype = \"push\"\ndatasets = [\"tank/h<\"]\nroot = \"b/h\"\n" +
		"  [job.remote]\n  host = \"b\"\n  [job.snapshot]\n  interval = \"15m\"\n  [job.replication]\n  bandwidth_limit = \"50MiB\"\n" +
		"[[serve.client]]\nname = \"c\"\nreceive_root = \"b/c\"\n"
	code, out, errOut := runUnit(t, "--config", configFile(t, text), "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`state_dir = "/var/lib/zsync"`,
		`host_key_policy = "strict"`, `command = "zsync serve --stdio"`,
		`connect_timeout = "15s"`, `idle_timeout = "30m"`, `max_streams = 1`,
		`prefix = "zsync_"`, `hook_timeout = "30s"`,
		`initial = "most_recent"`, `protection = "resumability"`, `raw = "auto"`, `on_diverged = "fail"`,
		`concurrency = 1`, `bandwidth_limit = "50MiB"`, `compression = "none"`,
		`lag_warning = "30m"`, `lag_critical = "1h"`, `snapshot_age_warning = "30m"`, `snapshot_age_critical = "1h"`,
		"[serve]\n  idle_timeout = \"30m\"", `max_holds = 100000`, `max_streams = 4`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the normalised config lacks %s:\n%s", want, out)
		}
	}
	for _, bad := range []string{`= "0"`, "52428800", "report_file", "port = 0", `user = ""`} {
		if strings.Contains(out, bad) {
			t.Errorf("the normalised config has %s:\n%s", bad, out)
		}
	}
	// "0" where the file says so keeps its meaning; a push job without an
	// interval says it takes no snapshots
	text = strings.Replace(text, "  host = \"b\"\n", "  host = \"b\"\n  idle_timeout = \"0\"\n", 1)
	text = strings.Replace(text, "  interval = \"15m\"\n", "  hook_timeout = \"0\"\n", 1)
	text = strings.Replace(text, "  host = \"b\"\n", "  host = \"b\"\n  connect_timeout = \"0\"\n", 1)
	_, out, _ = runUnit(t, "--config", configFile(t, text), "config", "check")
	// ... and a "0" that means the default is printed as the default
	for _, want := range []string{`idle_timeout = "0"`, `interval = "0"`, `lag_warning = "1d"`, `snapshot_age_critical = "2d"`,
		`hook_timeout = "30s"`, `connect_timeout = "15s"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the normalised config lacks %s:\n%s", want, out)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 50 << 20: "50MiB", 1 << 30: "1GiB", 3 << 40: "3TiB", 800 << 10: "800KiB",
		1e9: "1GB", 1.5e9: "1500MB", 1000: "1KB", 12: "12", 1<<20 + 1: "1048577"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

// Every problem comes out, one line each, as FILE:LINE: key: message, in
// the order of the file; type errors in the config's words.
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	text := `[global]
state_dir = "/var/lib/zsync"
report_file = "/var/lib/zsync/report.json"

[[job]]
name = "home"
type = "push"
datasets = ["tank/home<"]
root = "backup/laptop"
  [job.remote]
  host = "backup.example.net"
  port = "22"
  idle_timeout = 30
  [job.snapshot]
  interval = "15x"
  intervall = "15m"
  [job.replication]
  concurrency = "2"
  bandwidth_limit = true
  properties_exclude = "mountpoint"

[[job]]
name = "bad name"
type = "pusj"
datasets = ["tank/x<", 7]
root = "backup/x"
  [job.prune]
  source = { last_n = 1 }
`
	p := configFile(t, text)
	code, out, errOut := runUnit(t, "--config", p, "config", "check")
	if code != ExitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	want := []string{
		`:3: global.report_file: report_file was removed: it never wrote anything`,
		`:12: job[0].remote.port: want an integer, got the string "22"`,
		`:13: job[0].remote.idle_timeout: invalid duration "30"`,
		`:15: job[0].snapshot.interval: invalid duration "15x"`,
		`:16: job[0].snapshot.intervall: unknown key (did you mean interval?)`,
		`:18: job[0].replication.concurrency: want an integer, got the string "2"`,
		`:19: job[0].replication.bandwidth_limit: want a size such as "50MiB", "1GB" or "0", got the boolean true`,
		`:20: job[0].replication.properties_exclude: want an array of strings, got the string "mountpoint"`,
		`:23: job[1].name: invalid job name "bad name"`,
		`:24: job[1].type: invalid value "pusj"`,
		`:25: job[1].datasets[1]: want a string, got the integer 7`,
		`:28: job[1].prune.source: want an array of tables, got a table (an array: source = [{ ... }, { ... }], or one [[job.prune.source]] table per entry)`,
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("%d lines, want %d problems and a summary:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], p+":") || !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q; want %q", i+1, lines[i], p+w)
		}
	}
	if last := lines[len(lines)-1]; last != "zsync: "+p+": invalid: 12 error(s), 0 warning(s)" {
		t.Errorf("summary %q", last)
	}
	// other commands stop at the same errors, before doing anything
	code, _, errOut = runUnit(t, "--config", p, "snap")
	if code != ExitUsage || strings.Count(errOut, "zsync: "+p+":") != len(want) {
		t.Fatalf("snap: exit %d, stderr:\n%s", code, errOut)
	}
}

// A syntax error stops the TOML parser: it is reported with its line.
func TestConfigCheckSyntaxError(t *testing.T) {
	p := configFile(t, "[global]\nstate_dir = \"/x\"\n[[job]]\nname = \"a\nx = 1\n")
	code, _, errOut := runUnit(t, "--config", p, "config", "check")
	if code != ExitUsage || !strings.HasPrefix(errOut, p+":4: ") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// Key paths of array tables, inline tables and array elements point at
// their own lines, whatever the TOML layout.
func TestConfigLineIndex(t *testing.T) {
	text := `# comment with [brackets] and key = "value"
[global]
state_dir = "/a # not a comment"   # a comment
[[job]]
name = """multi
line [x]
= string"""
datasets = [
  "a", # one
  'b',
]
  [job.prune]
  source = [
    { grid = "1x1h", regex = '^z{2}[' },
    { last_n = 3 },
  ]
[[job]]
"name" = 'second'
remote.host = "h"
  [job.replication]
  properties_override = { "com.example:x" = "1", b = "2" }
[[serve.client]]
name = "c"
`
	ix := newLineIndex(text)
	for _, c := range []struct {
		key  string
		want int
	}{
		{"global", 2}, {"global.state_dir", 3},
		{"job", 4}, {"job[0]", 4}, {"job[0].name", 5}, {"job[0].datasets", 8}, {"job[0].datasets[0]", 9}, {"job[0].datasets[1]", 10},
		{"job[0].prune", 12}, {"job[0].prune.source", 13}, {"job[0].prune.source[0]", 14}, {"job[0].prune.source[0].regex", 14},
		{"job[0].prune.source[1].last_n", 15},
		{"job[1]", 17}, {"job[1].name", 18}, {"job[1].remote.host", 19}, {"job[1].replication", 20},
		{"job[1].replication.properties_override.b", 21}, {"job[1].replication.properties_override.com.example:x", 21},
		{"serve.client[0].name", 23},
		// unknown paths fall back to their closest parent
		{"job[1].replication.nope", 20}, {"nope", 0},
	} {
		if got := ix.line(c.key); got != c.want {
			t.Errorf("line(%s) = %d, want %d", c.key, got, c.want)
		}
	}
	// it always ends, whatever it is given
	for _, junk := range []string{"[", "[[", "a = [", "a = {", "a = \"", "a = '''", "= = =", "[a.\"b", "\\", "a = [{b = [1, {c = "} {
		newLineIndex(junk)
	}
}

// Warnings never stop a command: it logs them once and runs.
func TestConfigWarningsDoNotStopRuns(t *testing.T) {
	dir := t.TempDir()
	text := fmt.Sprintf(`[global]
state_dir = %q
zfs_binary = "/bin/true"

[[job]]
name = "s"
type = "snap"
datasets = ["tank/a"]
  [job.snapshot]
  interval = "1h"

[[job]]
name = "p"
type = "push"
datasets = ["tank/b"]
root = "backup/b"
`, dir)
	p := configFile(t, text)
	code, out, errOut := runUnit(t, "--config", p, "config", "check")
	if code != 0 || !strings.Contains(out, "1 warning(s)") || !strings.Contains(errOut, p+":12: job[1].snapshot.interval: warning: this push job takes no snapshots") {
		t.Fatalf("config check: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runUnit(t, "--config", p, "--log-format", "json", "snap", "s")
	if code != 0 {
		t.Fatalf("snap: exit %d: %s", code, errOut)
	}
	if n := strings.Count(errOut, "this push job takes no snapshots"); n != 1 || !strings.Contains(errOut, `"level":"warn"`) {
		t.Fatalf("snap logged the warning %d times, want once at warn level:\n%s", n, errOut)
	}
}
