package sshtransport

import (
	"os/exec"
	"strings"
	"testing"
)

func TestRemoteCommand(t *testing.T) {
	for _, tc := range []struct {
		binary string
		args   []string
		want   string
	}{
		{"zsync", []string{"serve", "--stdio"}, `zsync serve --stdio`},
		{"/opt/my zsync/zsync", []string{"serve", "--stdio"}, `'/opt/my zsync/zsync' serve --stdio`},
		{"/usr/local/bin/zsync", []string{"serve", "--stdio", "--client", "laptop-1.home"}, `/usr/local/bin/zsync serve --stdio --client laptop-1.home`},
		{"zsync", []string{"--client=laptop"}, `zsync '--client=laptop'`},
		{"zsync", []string{""}, `zsync ''`},
		{"", nil, `''`},
		{"it's", nil, `'it'\''s'`},
		{"'", nil, `''\'''`},
		{"$HOME/zsync", nil, `'$HOME/zsync'`},
		{"zsync", []string{"`id`", "$(id)", "a;b", "a&&b", "a|b", "a>b", "*", "?", "[x]", "{a,b}", "#c", "!x", `\`},
			"zsync '`id`' '$(id)' 'a;b' 'a&&b' 'a|b' 'a>b' '*' '?' '[x]' '{a,b}' '#c' '!x' '\\'"},
		{"zsync", []string{"two\nlines", "tab\there", `"dq"`}, "zsync 'two\nlines' 'tab\there' '\"dq\"'"},
		{"zsync", []string{"ünïcödé", "日本"}, `zsync 'ünïcödé' '日本'`},
		{"~/bin/zsync", []string{"serve"}, `~/bin/zsync serve`},
		{"~/my bin/zsync", nil, `~/'my bin/zsync'`},
		{"~", nil, `'~'`},
		{"~root/zsync", nil, `'~root/zsync'`},
		{"a=b", nil, `'a=b'`},
		{"%self", nil, `'%self'`},
		{"-x", []string{"@host:1,2+3"}, `-x @host:1,2+3`},
	} {
		if got := RemoteCommand(tc.binary, tc.args...); got != tc.want {
			t.Errorf("RemoteCommand(%q, %q) = %s, want %s", tc.binary, tc.args, got, tc.want)
		}
	}
}

// The quoted words reach a real POSIX shell unchanged.
func TestRemoteCommandRoundTripSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh to check the quoting against: %v", err)
	}
	words := []string{"", " ", "plain", "with space", "it's", "''", `"`, `\`, `\\n`, "$HOME", "${x:-y}",
		"`id`", "$(id)", ";", "&", "|", "<", ">", "*", "?", "[a]", "{a,b}", "~", "#", "!", "a\nb", "\t",
		"ünïcödé", "日本", "--client=x", "=x", "%1", "-n", "-e"}
	cmd := RemoteCommand("printf", append([]string{"[%s]"}, words...)...)
	out, err := exec.Command(sh, "-c", cmd).Output()
	if err != nil {
		t.Fatalf("sh -c %s: %v", cmd, err)
	}
	var want strings.Builder
	for _, w := range words {
		want.WriteString("[" + w + "]")
	}
	if string(out) != want.String() {
		t.Errorf("sh saw\n%q\nwant\n%q", out, want.String())
	}
}
