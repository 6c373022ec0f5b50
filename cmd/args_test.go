package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runCLI runs zsync with args (the program name is added) and returns the
// exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"zsync"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// call is what a command's action saw.
type call struct {
	path  string   // "holds list"
	args  []string // its arguments
	flags map[string]string
}

// probeApp is zsync's app with every action replaced by one that records
// what it was called with (every flag of the command, set or not).
func probeApp(t *testing.T) (*cli.App, *env, *[]call) {
	t.Helper()
	var calls []call
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, stdin: strings.NewReader("")}
	app := newApp(e)
	var probe func(prefix string, cmds []*cli.Command)
	probe = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimSpace(prefix + " " + c.Name)
			if len(c.Subcommands) > 0 {
				probe(path, c.Subcommands)
				continue
			}
			c.Action = func(ctx *cli.Context) error {
				got := call{path: path, args: ctx.Args().Slice(), flags: map[string]string{}}
				for _, f := range ctx.Command.Flags {
					n := f.Names()[0]
					for _, x := range ctx.Lineage() { // the global flags, wherever given
						if x.IsSet(n) {
							got.flags[n] = fmt.Sprint(x.Value(n))
							break
						}
					}
				}
				calls = append(calls, got)
				return nil
			}
		}
	}
	probe("", app.Commands)
	return app, e, &calls
}

// leafCommands returns the path of every command without subcommands and
// the command itself.
func leafCommands(cmds []*cli.Command, prefix []string) map[string]*cli.Command {
	leaves := map[string]*cli.Command{}
	for _, c := range cmds {
		p := append(slices.Clone(prefix), c.Name)
		if len(c.Subcommands) == 0 {
			leaves[strings.Join(p, " ")] = c
		}
		for k, v := range leafCommands(c.Subcommands, p) {
			leaves[k] = v
		}
	}
	return leaves
}

// flagValue is a value the flag accepts (the logging flags are checked
// before any action runs).
func flagValue(f cli.Flag) string {
	switch f.Names()[0] {
	case "log-level":
		return "debug"
	case "log-format":
		return "json"
	}
	if _, ok := f.(*cli.IntFlag); ok {
		return "7"
	}
	return "v1"
}

// Every flag of every command and subcommand (the global ones included)
// works before, between and after the arguments, by name and by alias,
// as --flag value and --flag=value.
func TestFlagsAnywhereEveryCommand(t *testing.T) {
	app, _, _ := probeApp(t)
	leaves := leafCommands(app.Commands, nil)
	if len(leaves) < 14 {
		t.Fatalf("only %d commands found: %v", len(leaves), leaves)
	}
	for path, cmd := range leaves {
		for _, f := range cmd.Flags {
			value := "true"
			if tv, ok := f.(interface{ TakesValue() bool }); ok && tv.TakesValue() {
				value = flagValue(f)
			}
			for _, name := range f.Names() {
				spelled := flagSpelling(name)
				forms := [][]string{{spelled}}
				if value != "true" {
					forms = [][]string{{spelled, value}, {spelled + "=" + value}}
				}
				for _, form := range forms {
					positions := map[string][]string{
						"before":  slices.Concat(form, []string{"a1", "a2"}),
						"between": slices.Concat([]string{"a1"}, form, []string{"a2"}),
						"after":   slices.Concat([]string{"a1", "a2"}, form),
					}
					for where, tail := range positions {
						args := slices.Concat([]string{"zsync"}, strings.Fields(path), tail)
						t.Run(strings.Join(args[1:], " ")+"/"+where, func(t *testing.T) {
							app, e, calls := probeApp(t)
							if err := runApp(context.Background(), app, e, args); err != nil {
								t.Fatalf("%v", err)
							}
							if len(*calls) != 1 {
								t.Fatalf("calls %+v", *calls)
							}
							c := (*calls)[0]
							want := f.Names()[0]
							if c.path != path || !slices.Equal(c.args, []string{"a1", "a2"}) || c.flags[want] != value {
								t.Fatalf("got %s %q flags %v; want %s [a1 a2] with %s=%s", c.path, c.args, c.flags, path, want, value)
							}
						})
					}
				}
			}
		}
	}
}

// Global flags also work before the command and between a command and its
// subcommand, mixed with the command's own flags after the arguments.
func TestFlagsMixedPositions(t *testing.T) {
	cases := []struct {
		args  string
		path  string
		pos   []string
		flags map[string]string
	}{
		{"prune home --dry-run", "prune", []string{"home"}, map[string]string{"dry-run": "true"}},
		{"snap home -n --log-level debug", "snap", []string{"home"}, map[string]string{"dry-run": "true", "log-level": "debug"}},
		{"push tank/data backup@host:pool/x --host-key-policy accept-new", "push", []string{"tank/data", "backup@host:pool/x"}, map[string]string{"host-key-policy": "accept-new"}},
		{"push -r tank/data pool2/x --raw=never -p 2222", "push", []string{"tank/data", "pool2/x"}, map[string]string{"recursive": "true", "raw": "never", "port": "2222"}},
		{"pull host:tank/data pool/restore -J bastion --snapshot", "pull", []string{"host:tank/data", "pool/restore"}, map[string]string{"jump": "bastion", "snapshot": "true"}},
		{"--config /c holds list j1 --log-format json j2", "holds list", []string{"j1", "j2"}, map[string]string{"log-format": "json"}},
		{"holds --config /c release-stale j1 --orphaned -n --wait", "holds release-stale", []string{"j1"}, map[string]string{"config": "/c", "orphaned": "true", "dry-run": "true", "wait": "true"}},
		{"config check -c /c", "config check", nil, map[string]string{"config": "/c"}},
		{"serve --client laptop --stdio", "serve", nil, map[string]string{"client": "laptop", "stdio": "true"}},
		{"status j1 --json", "status", []string{"j1"}, map[string]string{"json": "true"}},
		{"run j1 j2 --json --wait", "run", []string{"j1", "j2"}, map[string]string{"json": "true", "wait": "true"}},
		{"check j1 --log-level=warn", "check", []string{"j1"}, map[string]string{"log-level": "warn"}},
		// "--" ends the flags: what follows is an argument, even "-n" or "help"
		{"snap home -- --dry-run", "snap", []string{"home", "--dry-run"}, map[string]string{}},
		{"snap -n -- -x", "snap", []string{"-x"}, map[string]string{"dry-run": "true"}},
		{"snap -- help", "snap", []string{"help"}, map[string]string{}},
		{"prune --", "prune", nil, map[string]string{}},
		// a value that looks like a flag or a command is a value
		{"push a/b c/d --remote-command --stdio", "push", []string{"a/b", "c/d"}, map[string]string{"remote-command": "--stdio"}},
		{"-c snap snap j1", "snap", []string{"j1"}, map[string]string{"config": "snap"}},
		{"snap -", "snap", []string{"-"}, map[string]string{}},
	}
	for _, c := range cases {
		t.Run(c.args, func(t *testing.T) {
			app, e, calls := probeApp(t)
			if err := runApp(context.Background(), app, e, append([]string{"zsync"}, strings.Fields(c.args)...)); err != nil {
				t.Fatalf("%v", err)
			}
			if len(*calls) != 1 {
				t.Fatalf("calls %+v", *calls)
			}
			got := (*calls)[0]
			if got.path != c.path || !slices.Equal(got.args, c.pos) {
				t.Fatalf("got %s %q; want %s %q", got.path, got.args, c.path, c.pos)
			}
			for k, v := range c.flags {
				if got.flags[k] != v {
					t.Errorf("flag %s = %q, want %q (all: %v)", k, got.flags[k], v, got.flags)
				}
			}
			for k := range got.flags {
				if _, ok := c.flags[k]; !ok && k != "config" {
					t.Errorf("flag %s set unexpectedly (all: %v)", k, got.flags)
				}
			}
		})
	}
}

func TestArrangeArgs(t *testing.T) {
	app := newApp(&env{})
	cases := map[string]string{
		"prune home --dry-run":                   "prune --dry-run -- home",
		"snap a -n b --wait":                     "snap -n --wait -- a b",
		"--config x holds list j --json=false":   "", // --json is not a flag of holds list
		"-c x holds -c y list j -c z":            "-c x holds -c y list -c z -- j",
		"push s d --port 22 --raw=always":        "push --port 22 --raw=always -- s d",
		"snap a -- -b --c":                       "snap -- a -b --c",
		"snap":                                   "snap",
		"":                                       "",
		"--version":                              "--version",
		"-v":                                     "-v",
		"completion bash --log-level error":      "completion --log-level error -- bash",
		"help":                                   "--help",
		"help holds list":                        "holds list --help",
		"holds help release-stale":               "holds release-stale --help",
		"h config check":                         "config check --help",
		"--config x help snap --dry-run":         "--config x snap --help",
		"help --config x snap":                   "snap --help",
		"snap help":                              "snap --help",
		"snap -n help":                           "snap -n --help",
		"snap a help":                            "snap -- a help",
		"holds list -h j":                        "holds list -h",
		"snap a --help=true b":                   "snap --help=true",
		"prune home --help=false":                "prune --help=false -- home",
		"run a -h=0 b":                           "run -h=0 -- a b",
		"push -i=-n a b":                         "push -i=-n -- a b",
		"status --json j1 --config=/x j2":        "status --json --config=/x -- j1 j2",
		"serve --stdio --client c":               "serve --stdio --client c",
		"holds list a --log-level=debug -c /f b": "holds list --log-level=debug -c /f -- a b",
	}
	for in, want := range cases {
		got, err := arrangeArgs(app, append([]string{"zsync"}, strings.Fields(in)...))
		if want == "" && in != "" {
			if err == nil {
				t.Errorf("%q: got %q, want an error", in, got)
			}
			continue
		}
		if err != nil || strings.Join(got[1:], " ") != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}

// Mistakes on the command line are usage errors (exit 2) with one plain
// "zsync: " line naming what was wrong, never taken for a job name.
func TestCommandLineMistakes(t *testing.T) {
	cases := []struct{ args, want string }{
		{"snap home --bogus", `unknown flag --bogus for zsync snap (see zsync snap --help)`},
		{"prune home -x", `unknown flag -x for zsync prune`},
		{"holds list j --dry-run", `unknown flag --dry-run for zsync holds list`},
		{"holds release-stale --nope=1", `unknown flag --nope=1 for zsync holds release-stale`},
		{"config check --json", `unknown flag --json for zsync config check`},
		{"serve --stdio --bogus", `unknown flag --bogus for zsync serve`},
		{"--dry-run snap", `unknown flag --dry-run for zsync (see zsync --help)`},
		{"holds --orphaned release-stale", `unknown flag --orphaned for zsync holds`},
		{"snap --version", `unknown flag --version for zsync snap`},
		{"bogus", `unknown command "bogus" (see zsync --help)`},
		{"holds bogus", `unknown command "holds bogus" (see zsync holds --help)`},
		{"config bogus x", `unknown command "config bogus" (see zsync config --help)`},
		{"help bogus", `help: unknown command "bogus" (see zsync --help)`},
		{"help holds bogus", `help: unknown command "holds bogus" (see zsync holds --help)`},
		{"holds help bogus", `help: unknown command "holds bogus" (see zsync holds --help)`},
		{"help config check bogus", `help: unknown command "config check bogus" (see zsync config check --help)`},
		{"snap help bogus", `help: unknown command "snap bogus" (see zsync snap --help)`},
		{"--version snap", `--version takes no command`},
		{"-- snap", `zsync takes a command, not arguments after --`},
		{"config check --log-level", `flag --log-level needs a value (see zsync config check --help)`},
		{"holds list --config", `flag --config needs a value (see zsync holds list --help)`},
		{"push a b --identity", `flag --identity needs a value`},
		{"push a b --bwlimit -- c", `flag --bwlimit needs a value`},
		{"push -i -n a b", `flag -i needs a value, not the flag -n (write -i=VALUE`},
		{"push --jump --dry-run a b", `flag --jump needs a value, not the flag --dry-run`},
		{"push a b --port x", `invalid value "x" for flag -port`},
	}
	for _, c := range cases {
		t.Run(c.args, func(t *testing.T) {
			code, out, errOut := runCLI(t, strings.Fields(c.args)...)
			if code != ExitUsage || !strings.HasPrefix(errOut, "zsync: ") || !strings.Contains(errOut, c.want) ||
				strings.Count(errOut, "\n") != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, out, errOut, c.want)
			}
		})
	}
}

// Help at any level, as `help CMD...`, `CMD... help` and `CMD... --help`.
func TestHelpAnyLevel(t *testing.T) {
	cases := map[string]string{
		"help":                       "zsync - keep ZFS datasets safe",
		"--help":                     "zsync - keep ZFS datasets safe",
		"h":                          "zsync - keep ZFS datasets safe",
		"help help":                  "zsync - keep ZFS datasets safe",
		"help snap":                  "zsync snap - take the snapshots",
		"snap help":                  "zsync snap - take the snapshots",
		"snap home --help":           "zsync snap - take the snapshots",
		"help holds":                 "zsync holds - list or release",
		"holds":                      "zsync holds - list or release",
		"help holds release-stale":   "zsync holds release-stale - release superseded",
		"holds help release-stale":   "zsync holds release-stale - release superseded",
		"holds release-stale j -h":   "zsync holds release-stale - release superseded",
		"help config check":          "zsync config check - validate the config",
		"config check --help":        "zsync config check - validate the config",
		"--config /x help push":      "zsync push - replicate local datasets",
		"help completion":            "zsync completion - print a shell completion script",
		"help man":                   "zsync man - print the manual page",
		"push a b --host-key-policy": "", // a missing value is an error, not help
	}
	for args, want := range cases {
		t.Run(args, func(t *testing.T) {
			code, out, errOut := runCLI(t, strings.Fields(args)...)
			if want == "" {
				if code != ExitUsage {
					t.Fatalf("exit %d: %s%s", code, out, errOut)
				}
				return
			}
			if code != 0 || !strings.Contains(out, "NAME:\n   "+want) || errOut != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	_, want, _ := runCLI(t, "version")
	for _, args := range [][]string{{"--version"}, {"-v"}, {"--log-level", "debug", "--version"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%q: exit %d, %q %q; want 0 and %q", args, code, out, errOut, want)
		}
	}
	if !strings.HasPrefix(want, "zsync ") || !strings.Contains(want, "protocol ") {
		t.Errorf("version: %q", want)
	}
	// no command uses -v: it would shadow nothing, and means nothing there
	app := newApp(&env{})
	for path, c := range leafCommands(app.Commands, nil) {
		for _, f := range c.Flags {
			if slices.Contains(f.Names(), "v") || slices.Contains(f.Names(), "version") {
				t.Errorf("%s has a flag -v/--version", path)
			}
		}
	}
}

// An explicit --config wins over ZSYNC_CONFIG wherever it is given (the
// library counts the environment's value as set on every command, so the
// innermost level used to win with the environment's file).
func TestFlagBeatsEnvironment(t *testing.T) {
	dir := t.TempDir()
	write := func(name, job string) string {
		p := filepath.Join(dir, name)
		body := fmt.Sprintf("[[job]]\nname = %q\ntype = \"snap\"\ndatasets = [\"tank/a\"]\n  [job.snapshot]\n  interval = \"1h\"\n", job)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.toml", "fromA"), write("b.toml", "fromB")
	t.Setenv("ZSYNC_CONFIG", a)
	for args, want := range map[string]string{
		"--config " + b + " config check": "fromB",
		"config check --config " + b:      "fromB",
		"config --config " + b + " check": "fromB",
		"config check":                    "fromA",
		"--config " + a + " config check": "fromA",
	} {
		code, out, errOut := runUnit(t, strings.Fields(args)...)
		if code != 0 || !strings.Contains(out, fmt.Sprintf("name = %q", want)) {
			t.Errorf("ZSYNC_CONFIG=a zsync %s: exit %d, want the config of %s:\n%s%s", args, code, want, out, errOut)
		}
	}
}
