package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// complete asks zsync for the candidates of the last word of line, as the
// completion scripts do.
func completeLine(t *testing.T, line ...string) []string {
	t.Helper()
	code, out, errOut := runCLI(t, append(line, completionFlag)...)
	if code != 0 || errOut != "" {
		t.Fatalf("%q: exit %d, stderr %q", line, code, errOut)
	}
	return strings.Fields(out)
}

// commandNames is the name and aliases of every command in cmds.
func commandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		names = append(names, c.Names()...)
	}
	return names
}

func TestCompletionCandidates(t *testing.T) {
	app := newApp(&env{})
	top := commandNames(app.Commands)
	if got := completeLine(t, ""); !isSubset(append(top, "help"), got) {
		t.Errorf("commands: got %q, want all of %q", got, top)
	}
	cases := []struct {
		line []string
		want []string // exactly, in order
	}{
		{[]string{"ho"}, []string{"holds"}},
		{[]string{"holds"}, []string{"holds"}}, // the word being typed is complete
		{[]string{"holds", ""}, []string{"list", "release-stale", "help", "h"}},
		{[]string{"config", "c"}, []string{"check"}},
		{[]string{"holds", "release-stale", "--o"}, []string{"--orphaned"}},
		{[]string{"snap", "home", "--"}, []string{"--dry-run", "--wait", "--config", "--log-level", "--log-format", "--help"}},
		{[]string{"snap", "home", "-"}, []string{"--dry-run", "-n", "--wait", "--config", "-c", "--log-level", "--log-format", "--help", "-h"}},
		{[]string{"-"}, []string{"--config", "-c", "--log-level", "--log-format", "--version", "-v", "--help", "-h"}},
		{[]string{"push", "a", "--host"}, []string{"--host-key-policy"}},
		{[]string{"config", "check", "--log"}, []string{"--log-level", "--log-format"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"completion", "z"}, []string{"zsh"}},
		// a flag's value: nothing, the shell completes a file name
		{[]string{"--config", ""}, nil},
		{[]string{"snap", "-c", ""}, nil},
		{[]string{"push", "--identity", ""}, nil},
		// after "--" everything is an argument: never run the command line
		{[]string{"snap", "--", ""}, nil},
		{[]string{"--", "snap", "-"}, nil},
		{[]string{"config", "check", "--", "x"}, nil},
	}
	for _, c := range cases {
		if got := completeLine(t, c.line...); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.line, got, c.want)
		}
	}
}

func isSubset(want, got []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range completionShells {
		code, out, errOut := runCLI(t, "completion", shell)
		if code != 0 || errOut != "" || len(out) < 100 {
			t.Fatalf("%s: exit %d, stderr %q, %d bytes", shell, code, errOut, len(out))
		}
		register := map[string]string{"bash": "complete -o default -F _zsync zsync", "zsh": "compdef _zsync zsync", "fish": "complete -c zsync"}[shell]
		if !strings.Contains(out, register) || strings.Contains(out, "PROG") {
			t.Errorf("%s: the script does not register for the program (%q):\n%s", shell, register, out)
		}
		if shell != "fish" && !strings.Contains(out, completionFlag) {
			t.Errorf("%s: the script does not ask zsync:\n%s", shell, out)
		}
	}
	// fish's lists every command and flag itself
	_, fish, _ := runCLI(t, "completion", "fish")
	for _, want := range []string{"-a 'snap'", "-a 'release-stale'", "-l dry-run -s n", "-l orphaned", "-l version -s v"} {
		if !strings.Contains(fish, want) {
			t.Errorf("fish: no %q", want)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		code, out, errOut := runCLI(t, args...)
		if code != ExitUsage || out != "" || !strings.HasPrefix(errOut, "zsync: completion") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a usage line", args, code, out, errOut)
		}
	}
}

// TestCompletionHelperProcess is zsync itself for the shell in
// TestBashCompletionScript (the os/exec tests' helper process pattern).
func TestCompletionHelperProcess(t *testing.T) {
	if os.Getenv("ZSYNC_COMPLETION_HELPER") != "1" {
		return
	}
	i := slices.Index(os.Args, "--")
	os.Exit(Main(append([]string{"zsync"}, os.Args[i+1:]...)))
}

// The bash script, sourced into bash, completes through zsync: bash runs it
// as a completion function would be run on TAB.
func TestBashCompletionScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed for this test: %v", err)
	}
	_, script, _ := runCLI(t, "completion", "bash")
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "zsync.bash")
	if err := os.WriteFile(scriptPath, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", scriptPath).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// tab LINE... completes the last word of LINE
	driver := `
zsync() { ZSYNC_COMPLETION_HELPER=1 "$SELF" -test.run='^TestCompletionHelperProcess$' -- "$@"; }
source "$SCRIPT"
complete -p zsync >/dev/null || exit 9
tab() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _zsync; echo "${COMPREPLY[*]}"; }
tab zsync ho
tab zsync holds ''
tab zsync holds release-stale --orph
tab zsync prune home -
tab zsync completion f
tab zsync snap -- ''
`
	cmd := exec.Command(bash, "-c", driver)
	cmd.Env = append(os.Environ(), "SELF="+self, "SCRIPT="+scriptPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v: %s", err, out)
	}
	want := []string{
		"holds",
		"list release-stale help h",
		"--orphaned",
		"--dry-run -n --wait --config -c --log-level --log-format --help -h",
		"fish",
		"",
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The man page documents every command and subcommand with its usage line
// and flags.
func TestManPage(t *testing.T) {
	code, page, errOut := runCLI(t, "man")
	if code != 0 || errOut != "" || !strings.Contains(page, ".TH zsync 8") {
		t.Fatalf("exit %d, stderr %q:\n%.300s", code, errOut, page)
	}
	// section returns a command's part of the page, from its heading (.SH
	// for commands, .SS for subcommands, after their parent's) to the next
	// heading, and where it starts
	section := func(name string, sub bool, from int) (string, int) {
		h := "\n.SH " + name + "\n"
		if sub {
			h = "\n.SS " + name + "\n"
		}
		i := strings.Index(page[from:], h)
		if i < 0 {
			return "", 0
		}
		rest := page[from+i+len(h):]
		if j := strings.Index(rest, "\n.S"); j >= 0 {
			rest = rest[:j]
		}
		return rest, from + i
	}
	var walk func(prefix string, cmds []*cli.Command, from int)
	walk = func(prefix string, cmds []*cli.Command, from int) {
		for _, c := range cmds {
			sec, at := section(c.Name, prefix != "", from)
			if sec == "" {
				t.Errorf("the man page has no section for %s%s", prefix, c.Name)
				continue
			}
			if !strings.Contains(sec, c.Usage) {
				t.Errorf("the man page lacks the usage of %s%s: %q", prefix, c.Name, c.Usage)
			}
			for _, f := range c.Flags {
				if !strings.Contains(sec, "--"+f.Names()[0]) {
					t.Errorf("the man page lacks %s%s --%s", prefix, c.Name, f.Names()[0])
				}
			}
			walk(prefix+c.Name+" ", c.Subcommands, at)
		}
	}
	walk("", newApp(&env{}).Commands, 0)
	for _, want := range []string{"EXIT CODES", "75   another run holds the lock", "--version", "Options may come before or after"} {
		if !strings.Contains(page, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
}
