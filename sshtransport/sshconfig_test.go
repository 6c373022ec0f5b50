package sshtransport

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"
)

const testSSHConfig = `# test config
Host backup
    HostName backup.example.net
    User zsync
    Port 2222
    IdentityFile ~/.ssh/id_backup
    IdentityFile "/etc/zsync/%h-%r key"

Host nas
    HostName %h.lan
    IdentityFile none

Host badport
    Port ssh

Host *.example.org
    User wildcard

Host *
    User fallback
`

func TestResolveTarget(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfgFile := filepath.Join(home, "ssh_config")
	if err := os.WriteFile(cfgFile, []byte(testSSHConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    DialOptions
		want sshTarget
	}{
		{"alias", DialOptions{Host: "backup"}, sshTarget{
			alias: "backup", hostName: "backup.example.net", port: 2222, user: "zsync",
			identityFiles: []string{home + "/.ssh/id_backup", "/etc/zsync/backup.example.net-zsync key"},
		}},
		{"explicit fields win", DialOptions{Host: "backup", User: "root", Port: 22, IdentityFiles: []string{"~/k"}}, sshTarget{
			alias: "backup", hostName: "backup.example.net", port: 22, user: "root",
			identityFiles: []string{home + "/k"},
		}},
		{"token in HostName, IdentityFile none", DialOptions{Host: "nas"}, sshTarget{
			alias: "nas", hostName: "nas.lan", port: 22, user: "fallback", identitiesDefault: true,
		}},
		{"first match wins", DialOptions{Host: "a.example.org", Port: 2200}, sshTarget{
			alias: "a.example.org", hostName: "a.example.org", port: 2200, user: "wildcard", identitiesDefault: true,
		}},
		{"no entry", DialOptions{Host: "10.0.0.1", User: "u"}, sshTarget{
			alias: "10.0.0.1", hostName: "10.0.0.1", port: 22, user: "u", identitiesDefault: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.SSHConfigFile = cfgFile
			got, err := resolveTarget(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got.alias != tc.want.alias || got.hostName != tc.want.hostName || got.port != tc.want.port ||
				got.user != tc.want.user || got.identitiesDefault != tc.want.identitiesDefault ||
				!slices.Equal(got.identityFiles, tc.want.identityFiles) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	t.Run("bad port", func(t *testing.T) {
		_, err := resolveTarget(DialOptions{Host: "badport", SSHConfigFile: cfgFile})
		if err == nil || !strings.Contains(err.Error(), `"ssh"`) {
			t.Fatalf("err = %v", err)
		}
		if _, err := resolveTarget(DialOptions{Host: "x", Port: 70000, SSHConfigFile: cfgFile}); err == nil {
			t.Fatal("port 70000 accepted")
		}
	})
	t.Run("bad host", func(t *testing.T) {
		for _, h := range []string{"", "-oProxyCommand=x", "a b", "root@host"} {
			if _, err := resolveTarget(DialOptions{Host: h, SSHConfigFile: cfgFile}); err == nil {
				t.Errorf("host %q accepted", h)
			}
		}
	})
	t.Run("missing file, current user, default keys that exist", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"id_rsa", "id_ed25519"} {
			if err := os.WriteFile(filepath.Join(home, ".ssh", name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		got, err := resolveTarget(DialOptions{Host: "backup", SSHConfigFile: filepath.Join(home, "absent")})
		if err != nil {
			t.Fatal(err)
		}
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_rsa")}
		if got.hostName != "backup" || got.port != 22 || got.user != me.Username ||
			!got.identitiesDefault || !slices.Equal(got.identityFiles, want) {
			t.Errorf("got %+v, want host backup:22, user %s, keys %q", got, me.Username, want)
		}
	})
	t.Run("default file is ~/.ssh/config", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte("Host h\n  Port 2022\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := resolveTarget(DialOptions{Host: "h"})
		if err != nil || got.port != 2022 {
			t.Errorf("got %+v, %v; want port 2022 from ~/.ssh/config", got, err)
		}
	})
}

func TestExpandSSHPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"~", "/home/me"},
		{"~/.ssh/id", "/home/me/.ssh/id"},
		{"~other/id", "~other/id"},
		{"%d/keys/%h_%r_%u", "/home/me/keys/host_remote_local"},
		{"100%%", "100%"},
		{"%C%", "%C%"},
		{"/abs/path", "/abs/path"},
	} {
		if got := expandSSHPath(tc.in, "/home/me", "local", "host", "remote"); got != tc.want {
			t.Errorf("expandSSHPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// An ssh_config alias supplies HostName, Port, User and IdentityFile.
func TestDialSSHConfigAlias(t *testing.T) {
	f := newDialFixture(t)
	cfg := "Host backup\n  HostName 127.0.0.1\n  Port " + strconv.Itoa(f.sshd.port) +
		"\n  User zsync\n  IdentityFile ~/keys/id_test\n"
	cfgFile := filepath.Join(f.home, "ssh_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o := DialOptions{Host: "backup", SSHConfigFile: cfgFile, KnownHostsFile: f.knownHosts}
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial via alias: %v", err)
	}
	defer c.Close()
	rw, err := c.Exec(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("alias"))
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	// known_hosts is checked under the real host name, not the alias.
	if err := os.WriteFile(f.knownHosts, []byte(knownhosts.Line([]string{"backup:22"}, f.sshd.hostKeys[0].PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(context.Background(), o); err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(f.sshd.port)) {
		t.Fatalf("err = %v, want the host key of 127.0.0.1 unknown", err)
	}
}
