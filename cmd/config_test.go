package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/state"
)

func runUnit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"zsync"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func configFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zsync.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `[global]
state_dir = "/var/lib/zsync"

[[job]]
name = "home"
type = "push"
datasets = ["tank/home<", "!tank/home/scratch<"]
root = "backup/laptop"
  [job.remote]
  host = "backup.example.net"
  user = "zsync"
  port = 22
  host_key_policy = "strict"
  proxy_jump = "ops@bastion.example.net:2222"
  idle_timeout = "45m"
  [job.snapshot]
  prefix = "zsync_"
  interval = "15m"
  pre_hook = ["/usr/local/bin/db-freeze", "--quick"]
  hook_timeout = "30s"
  [job.replication]
  initial = "most_recent"
  protection = "resumability"
  raw = "auto"
  on_diverged = "fail"
  concurrency = 2
  bandwidth_limit = "50MiB"
  compression = "zstd"
  properties_override = { compression = "lz4" }
  properties_exclude = ["mountpoint"]
  [job.prune]
  source = [
    { grid = "1x1h(keep=all) | 24x1h | 30x1d | 12x30d", regex = "^zsync_" },
    { not_replicated = true },
    { last_n = 3, regex = "^zsync_" },
  ]
  target = [{ grid = "24x1h | 90x1d | 24x30d", regex = "^zsync_" }]

[[serve.client]]
name = "laptop"
receive_root = "backup/laptop"
send = ["tank/data<"]
append_only = true
`

func TestConfigCheckValid(t *testing.T) {
	p := configFile(t, goodConfig)
	code, out, errOut := runUnit(t, "--config", p, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"valid, 1 job(s), 1 serve client(s)", `interval = "15m"`, `command = "zsync serve --stdio"`, `bandwidth_limit = "50MiB"`} {
		if !strings.Contains(out, want) {
			t.Errorf("normalised config lacks %q:\n%s", want, out)
		}
	}
	// the flag after the subcommand works too, and the env var
	if code, _, errOut := runUnit(t, "config", "check", "--config", p); code != 0 {
		t.Fatalf("flag after subcommand: exit %d: %s", code, errOut)
	}
	t.Setenv("ZSYNC_CONFIG", p)
	if code, _, errOut := runUnit(t, "config", "check"); code != 0 {
		t.Fatalf("ZSYNC_CONFIG: exit %d: %s", code, errOut)
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	base := "[[job]]\nname = \"a\"\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n"
	cases := map[string]struct{ body, want string }{
		"unknown key":      {base + "  intervall = \"15m\"\n", ":6: job[0].snapshot.intervall: unknown key"},
		"unknown table":    {base + "  interval = \"15m\"\n[job.snapshots]\nprefix = \"x\"\n", "job[0].snapshots"},
		"bad duration":     {base + "  interval = \"15x\"\n", `:6: job[0].snapshot.interval: invalid duration "15x"`},
		"bad dataset":      {"[[job]]\nname = \"a\"\ntype = \"snap\"\ndatasets = [\"tank//a\"]\n  [job.snapshot]\n  interval = \"1h\"\n", ":4: job[0].datasets"},
		"bad root":         {"[[job]]\nname = \"a\"\ntype = \"push\"\ndatasets = [\"tank/a\"]\nroot = \"bad@root\"\n", ":5: job[0].root"},
		"zero keep":        {base + "  interval = \"1h\"\n  [job.prune]\n  source = [\n    { grid = \"1x1h(keep=0)\" },\n  ]\n", ":9: job[0].prune.source[0]"},
		"malformed grid":   {base + "  interval = \"1h\"\n  [job.prune]\n  source = [{ grid = \"1y1h\" }]\n", "1y1h"},
		"unknown rule":     {base + "  interval = \"1h\"\n  [job.prune]\n  source = [{ negate = true }]\n", "job[0].prune.source[0]: unknown or empty rule"},
		"unknown rule key": {base + "  interval = \"1h\"\n  [job.prune]\n  source = [{ gird = \"1x1h\" }]\n", ":8: job[0].prune.source[0].gird: unknown key (did you mean grid?)"},
		"bad policy":       {"[[job]]\nname = \"a\"\ntype = \"push\"\ndatasets = [\"tank/a\"]\nroot = \"b/r\"\n  [job.remote]\n  host = \"h\"\n  host_key_policy = \"yolo\"\n", ":8: job[0].remote.host_key_policy"},
		"bad proxy_jump":   {"[[job]]\nname = \"a\"\ntype = \"push\"\ndatasets = [\"tank/a\"]\nroot = \"b/r\"\n  [job.remote]\n  host = \"h\"\n  proxy_jump = \"bastion:99999\"\n", ":8: job[0].remote.proxy_jump"},
		"too many streams": {"[[job]]\nname = \"a\"\ntype = \"push\"\ndatasets = [\"tank/a\"]\nroot = \"b/r\"\n  [job.remote]\n  host = \"h\"\n  max_streams = 17\n", ":8: job[0].remote.max_streams: invalid max_streams 17: want 1 to 16"},
		"no streams":       {"[[job]]\nname = \"a\"\ntype = \"push\"\ndatasets = [\"tank/a\"]\nroot = \"b/r\"\n  [job.remote]\n  host = \"h\"\n  max_streams = -1\n", ":8: job[0].remote.max_streams: invalid max_streams -1"},
		"duplicate job":    {base + "  interval = \"1h\"\n" + base + "  interval = \"1h\"\n", "duplicate job name"},
		"bad job name":     {"[[job]]\nname = \"a b\"\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n", ":2: job[0].name"},
		"toml syntax":      {"[[job]\nname = 1\n", "zsync.toml:2: expected end of table array"},
		"empty hook":       {base + "  interval = \"1h\"\n  post_hook = [\"\", \"x\"]\n", ":7: job[0].snapshot.post_hook[0]: empty program name"},
		// BurntSushi/toml's own decoding matched keys in any case; zsync reads
		// them as written, and says so
		"key case":   {"[[serve.client]]\nname = \"c\"\nsend = [\"tank<\"]\nAppend_Only = true\n", ":4: serve.client[0].Append_Only: unknown key: keys are lower case: did you mean append_only?"},
		"table case": {"[Global]\nstate_dir = \"/x\"\n", ":1: Global: unknown key: keys are lower case: did you mean global?"},
		"float size": {base + "  interval = \"1h\"\n  [job.replication]\n  bandwidth_limit = 5e6\n", ":8: job[0].replication.bandwidth_limit: " + `want a size such as "50MiB", "1GB" or "0", got the float 5e+06: write the size as a whole number of bytes (5000000) or as a string with a unit`},
		"float time": {base + "  interval = 1.5\n", ":6: job[0].snapshot.interval: " + `want a duration such as "15m", "36h", "14d" or "0", got the float 1.5: write the duration as a string with a unit`},
		"long time":  {base + "  interval = \"30501w\"\n", `:6: job[0].snapshot.interval: invalid duration "30501w": too long (at most 15250w1d23h47m16s, about 292 years)`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := configFile(t, c.body)
			code, _, errOut := runUnit(t, "--config", p, "config", "check")
			if code != ExitUsage || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, p) {
				t.Fatalf("exit %d, stderr %q; want 2, the file name and %q", code, errOut, c.want)
			}
		})
	}
}

func TestHelpListsCommandsAndExitCodes(t *testing.T) {
	code, out, _ := runUnit(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"snap", "prune", "push", "pull", "run", "serve", "status", "check", "holds", "config", "version", "EXIT CODES", "75"} {
		if !strings.Contains(out, c) {
			t.Errorf("--help lacks %q", c)
		}
	}
	if code, _, _ := runUnit(t, "frobnicate"); code != ExitUsage {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, _, _ := runUnit(t, "snap", "--no-such-flag"); code != ExitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runUnit(t, "version")
	if code != 0 || !strings.Contains(out, "protocol 1") || !strings.HasPrefix(out, "zsync ") {
		t.Fatalf("exit %d: %q", code, out)
	}
}

func TestDurationsAndSizes(t *testing.T) {
	for in, want := range map[string]time.Duration{"15m": 15 * time.Minute, "36h": 36 * time.Hour, "14d": 14 * 24 * time.Hour, "1h30m": 90 * time.Minute, "2w": 14 * 24 * time.Hour, "0": 0} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "15", "m", "15x", "1.5h", "-3m",
		// past time.Duration's 292 years, which used to wrap ("30501w" was 3d25m26s)
		"30501w", "15251w", "15250w2d", "15250w15250w", "106751d23h47m17s"} {
		if got, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted: %v", bad, got)
		}
	}
	if got, err := ParseDuration(FormatDuration(maxDuration)); err != nil || got != maxDuration {
		t.Errorf("the longest duration: %v, %v", got, err)
	}
	for in, want := range map[string]int64{"50MiB": 50 << 20, "1GB": 1e9, "800k": 800 << 10, "0": 0, "12": 12} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "5 parsecs", "-1"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// A second run of a job whose lock is held exits 75 without waiting (the
// lock is tried once; the config names no existing dataset, so reaching zfs
// would fail differently); with --wait it waits until the context ends.
func TestLockedJobExits75(t *testing.T) {
	dir := t.TempDir()
	p := configFile(t, "[global]\nstate_dir = \""+dir+"\"\n[[job]]\nname = \"j\"\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n  interval = \"1h\"\n")
	l, err := state.Acquire(context.Background(), dir, "j", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	code, _, errOut := runUnit(t, "--config", p, "snap")
	if code != ExitLocked || !strings.Contains(errOut, "another zsync run holds the lock") {
		t.Fatalf("exit %d (%s), want 75 and the lock message", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out, eb bytes.Buffer
	code = Run(ctx, []string{"zsync", "--config", p, "snap", "--wait"}, strings.NewReader(""), &out, &eb)
	if code != ExitInterrupted {
		t.Fatalf("--wait then cancelled: exit %d (%s), want 130", code, eb.String())
	}
}

// The documented example must stay a valid config, without warnings, and
// teach the safe setting: its laptop client is append_only, as
// docs/security.md advises for clients that are easy to lose.
func TestExampleConfigIsValid(t *testing.T) {
	code, out, errOut := runUnit(t, "--config", "../docs/zsync.example.toml", "config", "check")
	if code != 0 || !strings.Contains(out, "valid, 1 job(s), 1 serve client(s), 0 warning(s)") || errOut != "" {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	cfg, err := LoadConfig("../docs/zsync.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cl := cfg.Serve.Clients[0]; cl.Name != "laptop" || !cl.AppendOnly {
		t.Errorf("the example's client %q is not append_only", cl.Name)
	}
}

// serve --client refuses a file with an error of its own (an unknown key, a
// wrong value), but not for an error in how the jobs combine: it runs no
// job, and one such error in a file shared by several hosts must not stop
// serving every client. The commands that run jobs still refuse the file.
func TestServeConfigErrors(t *testing.T) {
	clients := "[[serve.client]]\nname = \"laptop\"\nreceive_root = \"backup/laptop\"\n" +
		"[[serve.client]]\nname = \"retired\"\n" // can do nothing: a warning
	jobErr := "[[job]]\nname = \"l\"\ntype = \"push\"\ndatasets = [\"tank<\"]\nroot = \"tank/backup\"\n  [job.snapshot]\n  interval = \"15m\"\n"
	serve := func(body, client string) (int, string, string) {
		t.Helper()
		return runUnit(t, "--config", configFile(t, body), "serve", "--stdio", "--client", client)
	}
	hookErr := "[[job]]\nname = \"s\"\ntype = \"snap\"\ndatasets = [\"tank<\"]\n  [job.snapshot]\n  interval = \"15m\"\n  pre_hook = [\"\"]\n"
	for _, client := range []string{"laptop", "retired"} {
		for _, jobs := range []string{jobErr, hookErr} {
			// it speaks (and then finds its client gone: stdin is empty)
			code, out, errOut := serve(jobs+clients, client)
			if code == ExitUsage || !strings.HasPrefix(out, "ZSYNC-SERVE ") || strings.Contains(errOut, "job[0]") {
				t.Errorf("client %s, a job error in the file: exit %d, stdout %q, stderr %q", client, code, out, errOut)
			}
		}
	}
	code, out, errOut := serve(jobErr+strings.Replace(clients, "receive_root", "receive_rot", 1), "laptop")
	if code != ExitUsage || out != "" || !strings.Contains(errOut, "serve.client[0].receive_rot: unknown key") {
		t.Errorf("an unknown key: exit %d, stdout %q, stderr %q; want 2 and the key", code, out, errOut)
	}
	code, _, errOut = runUnit(t, "--config", configFile(t, jobErr+clients), "snap")
	if code != ExitUsage || !strings.Contains(errOut, "job[0].root: the replicas land inside") {
		t.Errorf("snap, a job error in the file: exit %d, stderr %q; want 2 and the error", code, errOut)
	}
}

// A one-off run needs no config file; one that is there but cannot be
// loaded is logged, each problem once, and the run goes on with
// --state-dir.
func TestOneOffLogsConfigErrors(t *testing.T) {
	// no zfs here, and no far side there: the run fails after the config is
	// looked at, without touching a pool
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	bad := configFile(t, "[global]\nstate_dir = \"/nonexistent/state\"\nstatedir = \"x\"\n[[job]]\nname = \"a b\"\n")
	for name, args := range map[string][]string{
		"bad file":     {"--config", bad},
		"missing file": {"--config", filepath.Join(dir, "nope.toml")},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runUnit(t, append(args, "pull", "--state-dir", dir, "--port", "1", "--jump", "none",
				"--known-hosts", filepath.Join(dir, "known_hosts"), "zsync@127.0.0.1:tank/a", "pool/b")...)
			if code == 0 || code == ExitUsage || !strings.Contains(errOut, "config not used by this one-off run (state dir "+dir+")") {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if name == "bad file" && (!strings.Contains(errOut, ":3: global.statedir: unknown key") || !strings.Contains(errOut, `:5: job[0].name: invalid job name "a b"`)) {
				t.Errorf("not every problem logged:\n%s", errOut)
			}
		})
	}
}

func TestServeClientConfigRefusals(t *testing.T) {
	client := func(name, root, more string) string {
		return fmt.Sprintf("[[serve.client]]\nname = %q\nreceive_root = %q\n%s", name, root, more)
	}
	cases := map[string]struct{ body, want string }{
		"far-side property": {client("a", "b/a", "allow_properties = [\"checksum\", \"mountpoint\"]\n"), "serve.client[0].allow_properties[1]: mountpoint is decided by the far side"},
		"canmount":          {client("a", "b/a", "allow_properties = [\"canmount\"]\n"), "allow_properties[0]: canmount is decided by the far side"},
		"bad property":      {client("a", "b/a", "allow_properties = [\"-o\"]\n"), "allow_properties[0]: invalid property name"},
		"negative cap":      {client("a", "b/a", "max_holds = -1\n"), "serve.client[0].max_holds: must not be negative"},
		"nested roots":      {client("a", "b/a", "") + client("c", "b/a/c", ""), "serve.client[1].receive_root: b/a/c overlaps serve.client[0] (a) receive_root b/a"},
		"same root":         {client("a", "b/a", "") + client("c", "b/a", ""), "overlaps"},
		"duplicate name":    {client("a", "b/a", "") + client("a", "b/c", ""), `serve.client[1].name: duplicate client name "a"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := configFile(t, c.body)
			code, _, errOut := runUnit(t, "--config", p, "config", "check")
			if code != ExitUsage || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, c.want)
			}
		})
	}
	ok := client("a", "b/a", "allow_properties = [\"checksum\", \"com.example:owner\"]\nmax_holds = 10\n") + client("c", "b/c", "")
	if code, _, errOut := runUnit(t, "--config", configFile(t, ok), "config", "check"); code != 0 {
		t.Fatalf("valid clients: exit %d: %s", code, errOut)
	}
}
