package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
)

func TestParseProxyJump(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // hops joined with ","; "error" for a parse error
	}{
		{"", ""},
		{"none", ""},
		{"NONE", ""},
		{"bastion", "bastion"},
		{"ops@bastion", "ops@bastion"},
		{"ops@bastion:2222", "ops@bastion:2222"},
		{"ssh://ops@bastion:2222", "ops@bastion:2222"},
		{"[2001:db8::1]:2222", "[2001:db8::1]:2222"},
		{"ops@[2001:db8::1]", "ops@[2001:db8::1]"},
		{"2001:db8::1", "[2001:db8::1]"},
		{"a, b@c:23 ,d", "a,b@c:23,d"},
		{"bastion:0", "error"},
		{"bastion:99999", "error"},
		{"bastion:ssh", "error"},
		{"@bastion", "error"},
		{"-oProxyCommand=x", "error"},
		{"a,,b", "error"},
		{"[::1", "error"},
		{"[::1]x", "error"},
		{"bad host", "error"},
	} {
		hops, err := ParseProxyJump(c.in)
		got := ""
		if err != nil {
			got = "error"
		} else {
			var s []string
			for _, h := range hops {
				s = append(s, h.String())
			}
			got = strings.Join(s, ",")
		}
		if got != c.want {
			t.Errorf("ParseProxyJump(%q) = %q (%v), want %q", c.in, got, err, c.want)
		}
	}
}

// jumpFixture is a target server behind a jump server that forwards
// connections, both trusting the fixture's client key, and an ssh_config
// whose alias "target" names the target through the jump host.
type jumpFixture struct {
	*dialFixture
	jump *testSSHD
}

func newJumpFixture(t *testing.T) *jumpFixture {
	f := &jumpFixture{dialFixture: newDialFixture(t)}
	f.jump = startTestSSHD(t, nil)
	for k := range f.sshd.authorized { // the same client key
		f.jump.mu.Lock()
		f.jump.authorized[k] = true
		f.jump.mu.Unlock()
	}
	f.jump.forwarding.Store(true)
	kh := knownhosts.Line([]string{f.jump.addr()}, f.jump.hostKeys[0].PublicKey())
	appendFile(t, f.knownHosts, kh+"\n")
	cfg := fmt.Sprintf("Host target\n  HostName 127.0.0.1\n  Port %d\n  User zsync\n  ProxyJump zsync@127.0.0.1:%d\n", f.sshd.port, f.jump.port)
	if err := os.WriteFile(filepath.Join(f.home, "ssh_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *jumpFixture) opts() DialOptions {
	o := f.dialFixture.opts()
	o.Host, o.Port, o.User = "target", 0, ""
	o.SSHConfigFile = filepath.Join(f.home, "ssh_config")
	return o
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDialThroughJumpHost(t *testing.T) {
	f := newJumpFixture(t)
	c := f.dial(t, f.opts())
	rw, err := c.Exec(context.Background(), RemoteCommand("echo"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("through the bastion\n"))
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	f.jump.mu.Lock()
	forwards, jumpExecs := f.jump.forwards, f.jump.execs
	f.jump.mu.Unlock()
	if want := f.sshd.addr(); len(forwards) != 1 || forwards[0] != want {
		t.Errorf("the jump host forwarded to %v, want [%s]", forwards, want)
	}
	if len(jumpExecs) != 0 {
		t.Errorf("commands ran on the jump host: %v", jumpExecs)
	}
	f.sshd.mu.Lock()
	execs := f.sshd.execs
	f.sshd.mu.Unlock()
	if len(execs) != 1 || execs[0] != "echo" {
		t.Errorf("the target ran %v, want [echo]", execs)
	}
	// Closing the connection closes the jump host's connection too.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.via.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the jump host's connection is still open after Close")
	}
}

func TestDialJumpHostFailures(t *testing.T) {
	t.Run("jump host key unknown", func(t *testing.T) {
		f := newJumpFixture(t)
		// known_hosts has only the target's key
		data, err := os.ReadFile(f.knownHosts)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if err := os.WriteFile(f.knownHosts, []byte(lines[0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = Dial(context.Background(), f.opts())
		if !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), "via jump host zsync@127.0.0.1:") {
			t.Fatalf("Dial: %v; want ErrHostKeyUnknown naming the jump host", err)
		}
		if n := f.sshd.connections(); n != 0 {
			t.Errorf("the target was contacted %d times although the jump host was refused", n)
		}
	})
	t.Run("jump host forwards nothing", func(t *testing.T) {
		f := newJumpFixture(t)
		f.jump.forwarding.Store(false)
		_, err := Dial(context.Background(), f.opts())
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "through jump host 127.0.0.1:") {
			t.Fatalf("Dial: %v; want ErrConnect through the jump host", err)
		}
	})
	t.Run("ProxyCommand is refused", func(t *testing.T) {
		f := newJumpFixture(t)
		cfg := fmt.Sprintf("Host target\n  HostName 127.0.0.1\n  Port %d\n  ProxyCommand nc %%h %%p\n", f.sshd.port)
		if err := os.WriteFile(filepath.Join(f.home, "ssh_config"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Dial(context.Background(), f.opts())
		if err == nil || !strings.Contains(err.Error(), "ProxyCommand") || !strings.Contains(err.Error(), "ProxyJump") {
			t.Fatalf("Dial: %v; want a refusal of ProxyCommand that points to ProxyJump", err)
		}
		if n := f.sshd.connections(); n != 0 {
			t.Errorf("the target was contacted directly %d times", n)
		}
	})
	t.Run("explicit none connects directly", func(t *testing.T) {
		f := newJumpFixture(t)
		o := f.opts()
		o.ProxyJump = "none"
		c := f.dial(t, o)
		_ = c.Close()
		if n := f.jump.connections(); n != 0 || c.via != nil {
			t.Errorf("the jump host was used (%d connections) although ProxyJump is none", n)
		}
	})
}

// connections counts the connections the server has accepted.
func (s *testSSHD) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Two hops: the target through the second jump host, reached through the
// first. Closing the connection closes both hops.
func TestDialThroughTwoJumpHosts(t *testing.T) {
	f := newJumpFixture(t)
	second := startTestSSHD(t, nil)
	for k := range f.sshd.authorized {
		second.authorized[k] = true
	}
	second.forwarding.Store(true)
	appendFile(t, f.knownHosts, knownhosts.Line([]string{second.addr()}, second.hostKeys[0].PublicKey())+"\n")
	o := f.opts()
	o.ProxyJump = fmt.Sprintf("zsync@127.0.0.1:%d,zsync@127.0.0.1:%d", f.jump.port, second.port)
	c := f.dial(t, o)
	rw, err := c.Exec(context.Background(), RemoteCommand("echo"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("two hops\n"))
	_ = rw.Close()
	if n := f.sshd.connections(); n != 1 {
		t.Errorf("target connections: %d, want 1", n)
	}
	f.jump.mu.Lock()
	firstForwards := f.jump.forwards
	f.jump.mu.Unlock()
	if len(firstForwards) != 1 || firstForwards[0] != second.addr() {
		t.Errorf("the first hop forwarded to %v, want [%s]", firstForwards, second.addr())
	}
	hop2, hop1 := c.via, c.via.via
	if hop1 == nil || hop1.via != nil {
		t.Fatalf("hop chain: second %v, first %v", hop2, hop1)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i, h := range []*Conn{hop2, hop1} {
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("hop %d is still open after Close", 2-i)
		}
	}
}
