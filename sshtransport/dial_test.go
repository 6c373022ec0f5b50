package sshtransport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testSSHD is an in-process SSH server on 127.0.0.1 for the tests: it
// accepts the authorized keys for user "zsync" and runs "exec" requests
// with sshdExec.
type testSSHD struct {
	t        testing.TB
	ln       net.Listener
	port     int
	hostKeys []ssh.Signer
	user     string

	mu         sync.Mutex
	authorized map[string]bool
	conns      []net.Conn
	execs      []string

	forwards     []string    // direct-tcpip destinations, host:port
	forwarding   atomic.Bool // accept direct-tcpip channels (a jump host)
	keepalives   atomic.Int64
	ignoreGlobal atomic.Bool  // never answer global requests (a dead peer)
	maxAuthTries atomic.Int32 // ssh.ServerConfig.MaxAuthTries of new connections
	wg           sync.WaitGroup
}

// startTestSSHD starts a server with the given host keys (a fresh ed25519
// key when none) that authorizes the given client keys.
func startTestSSHD(t testing.TB, hostKeys []ssh.Signer, authorized ...ssh.PublicKey) *testSSHD {
	t.Helper()
	if len(hostKeys) == 0 {
		hostKeys = []ssh.Signer{newEd25519Signer(t)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testSSHD{t: t, ln: ln, port: ln.Addr().(*net.TCPAddr).Port, hostKeys: hostKeys,
		user: "zsync", authorized: map[string]bool{}}
	for _, k := range authorized {
		s.authorize(k)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *testSSHD) authorize(k ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized[string(k.Marshal())] = true
}

func (s *testSSHD) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *testSSHD) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testSSHD) config() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries: int(s.maxAuthTries.Load()),
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if md.User() == s.user && s.authorized[string(key.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("not authorized")
		},
	}
	for _, k := range s.hostKeys {
		cfg.AddHostKey(k)
	}
	return cfg
}

func (s *testSSHD) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(nc, s.config())
		}()
	}
}

func (s *testSSHD) handleConn(nc net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		_ = nc.Close()
		return
	}
	defer sc.Close()
	go func() {
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" {
				s.keepalives.Add(1)
			}
			if s.ignoreGlobal.Load() {
				continue
			}
			_ = r.Reply(false, nil)
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() == "direct-tcpip" && s.forwarding.Load() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.forward(nch)
			}()
			continue
		}
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleSession(ch, creqs)
		}()
	}
}

// forward serves a direct-tcpip channel (RFC 4254 7.2), as a jump host
// does: it connects to the requested host and port and copies both ways.
func (s *testSSHD) forward(nch ssh.NewChannel) {
	var req struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	dest := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
	s.mu.Lock()
	s.forwards = append(s.forwards, dest)
	s.mu.Unlock()
	nc, err := net.Dial("tcp", dest)
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = nc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(nc, ch)
		_ = nc.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(ch, nc)
	_ = ch.CloseWrite()
	<-done
	_ = ch.Close()
	_ = nc.Close()
}

func (s *testSSHD) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var done chan struct{}
	for r := range reqs {
		if r.Type != "exec" || done != nil || len(r.Payload) < 4 {
			_ = r.Reply(false, nil)
			continue
		}
		cmd := string(r.Payload[4:])
		s.mu.Lock()
		s.execs = append(s.execs, cmd)
		s.mu.Unlock()
		_ = r.Reply(true, nil)
		done = make(chan struct{})
		go func() {
			defer close(done)
			status := sshdExec(cmd, ch)
			_ = ch.CloseWrite()
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
			_ = ch.Close()
		}()
	}
	if done != nil {
		<-done
	}
}

// sshdExec runs the test server's commands and returns the exit status:
//
//	echo           copy stdin to stdout
//	fail           "sh: zsync: command not found" on stderr, status 127
//	flood-stderr   2 MiB on stderr, status 3
//	sink           read stdin to its end, then print the byte count
//	source N       write N bytes of stdout
//	wait           read stdin to its end, print nothing
func sshdExec(cmd string, ch ssh.Channel) int {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return 2
	}
	switch f[0] {
	case "echo":
		_, _ = io.Copy(ch, ch)
		return 0
	case "fail":
		_, _ = io.WriteString(ch.Stderr(), "sh: zsync: command not found\n")
		return 127
	case "flood-stderr":
		line := bytes.Repeat([]byte("x"), 1023)
		line = append(line, '\n')
		for range 2048 {
			if _, err := ch.Stderr().Write(line); err != nil {
				break
			}
		}
		return 3
	case "sink":
		n, _ := io.CopyBuffer(io.Discard, ch, make([]byte, 1<<20))
		_, _ = fmt.Fprintf(ch, "%d\n", n)
		return 0
	case "source":
		n, _ := strconv.ParseInt(f[1], 10, 64)
		buf := make([]byte, 1<<20)
		for n > 0 {
			k := int(min(n, int64(len(buf))))
			if _, err := ch.Write(buf[:k]); err != nil {
				return 1
			}
			n -= int64(k)
		}
		return 0
	case "wait":
		_, _ = io.Copy(io.Discard, ch)
		return 0
	}
	_, _ = fmt.Fprintf(ch.Stderr(), "sh: %s: command not found\n", f[0])
	return 127
}

func newEd25519Signer(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newECDSASigner(t testing.TB) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeClientKey writes a new ed25519 private key to dir/name (encrypted
// when passphrase is not empty) and returns its public key.
func writeClientKey(t testing.TB, path, passphrase string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// dialFixture is a running server that trusts a client key, with a
// known_hosts file that has the server's keys.
type dialFixture struct {
	sshd       *testSSHD
	home       string
	keyFile    string
	knownHosts string
	logs       *logRecorder
}

// newDialFixture isolates the test from the real user's ~/.ssh and agent.
func newDialFixture(t testing.TB, hostKeys ...ssh.Signer) *dialFixture {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	f := &dialFixture{home: home, keyFile: filepath.Join(home, "keys", "id_test"),
		knownHosts: filepath.Join(home, "known_hosts"), logs: &logRecorder{}}
	pub := writeClientKey(t, f.keyFile, "")
	f.sshd = startTestSSHD(t, hostKeys, pub)
	var lines []string
	for _, k := range f.sshd.hostKeys {
		lines = append(lines, knownhosts.Line([]string{f.sshd.addr()}, k.PublicKey()))
	}
	if err := os.WriteFile(f.knownHosts, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *dialFixture) opts() DialOptions {
	return DialOptions{
		Host:           "127.0.0.1",
		Port:           f.sshd.port,
		User:           "zsync",
		IdentityFiles:  []string{f.keyFile},
		KnownHostsFile: f.knownHosts,
		SSHConfigFile:  filepath.Join(f.home, "no-ssh-config"),
		ConnectTimeout: 10 * time.Second,
		Log:            f.logs.log,
	}
}

func (f *dialFixture) dial(t testing.TB, o DialOptions) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// logRecorder records DialOptions.Log events.
type logRecorder struct {
	mu     sync.Mutex
	events []string // "level: msg"
}

func (r *logRecorder) log(level, msg string, fields map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, level+": "+msg)
}

func (r *logRecorder) find(level, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if strings.HasPrefix(e, level+": ") && strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

// roundTrip writes data to an "echo" session and reads it back.
func roundTrip(t *testing.T, rw io.ReadWriter, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := rw.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(rw, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed data differs")
	}
}

func TestDialExecEcho(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	rw, err := c.Exec(context.Background(), RemoteCommand("echo"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("hello over ssh\n"))
	if err := rw.(*ExecSession).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rw)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after CloseWrite: %q, %v; want clean EOF", rest, err)
	}
	if err := rw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Conn.Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Conn.Close: %v", err)
	}
	if _, err := c.Exec(context.Background(), "echo"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Exec after Close: %v, want net.ErrClosed", err)
	}
}

func TestDialAuthFailure(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	other := filepath.Join(f.home, "keys", "id_other")
	writeClientKey(t, other, "")
	o.IdentityFiles = []string{other}
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	for _, want := range []string{"zsync@" + f.sshd.addr(), other, "SHA256:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	assertOneLine(t, err)
	for _, e := range []error{ErrConnect, ErrHostKeyUnknown, ErrHostKeyMismatch} {
		if errors.Is(err, e) {
			t.Errorf("auth error also matches %v", e)
		}
	}
}

// A server that disconnects after too many refused keys (OpenSSH's
// MaxAuthTries) is an authentication failure, not a connection problem.
func TestDialTooManyAuthFailures(t *testing.T) {
	f := newDialFixture(t)
	f.sshd.maxAuthTries.Store(2)
	o := f.opts()
	o.IdentityFiles = nil
	for i := range 4 {
		p := filepath.Join(f.home, "keys", "id_other"+strconv.Itoa(i))
		writeClientKey(t, p, "")
		o.IdentityFiles = append(o.IdentityFiles, p)
	}
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) || errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "too many authentication failures") {
		t.Fatalf("err = %v, want ErrAuth with the server's reason", err)
	}
	assertOneLine(t, err)
}

func TestDialNoUsableKey(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	o.IdentityFiles = nil // no ~/.ssh keys in the fake home, no agent
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no usable key") {
		t.Fatalf("err = %v, want ErrAuth with no usable key", err)
	}
	missing := filepath.Join(f.home, "nope")
	o.IdentityFiles = []string{missing}
	_, err = Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err = %v, want ErrAuth naming %s", err, missing)
	}
}

func TestDialEncryptedKey(t *testing.T) {
	f := newDialFixture(t)
	enc := filepath.Join(f.home, "keys", "id_encrypted")
	f.sshd.authorize(writeClientKey(t, enc, "secret"))

	o := f.opts()
	o.IdentityFiles = []string{enc}
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), enc) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("err = %v, want ErrAuth naming the encrypted file", err)
	}
	assertOneLine(t, err)

	// The encrypted key does not stop the next one from being tried.
	o.IdentityFiles = []string{enc, f.keyFile}
	f.dial(t, o)
}

func TestDialAgent(t *testing.T) {
	f := newDialFixture(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "agent-test"}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = agent.ServeAgent(keyring, c)
				_ = c.Close()
			}()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	o := f.opts()
	o.IdentityFiles = []string{filepath.Join(f.home, "missing")} // tried first, reported, skipped

	_, err = Dial(context.Background(), o)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "agent key agent-test") {
		t.Fatalf("unauthorized agent key: err = %v, want ErrAuth listing the agent key", err)
	}
	signers, err := keyring.Signers()
	if err != nil {
		t.Fatal(err)
	}
	f.sshd.authorize(signers[0].PublicKey())
	c := f.dial(t, o)
	rw, err := c.Exec(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("via agent"))
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestExecConcurrentSessions(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	const sessions = 8
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte(i)}, 1<<20+i)
			rw, err := c.Exec(context.Background(), "echo")
			if err != nil {
				errs <- err
				return
			}
			go func() {
				_, _ = rw.Write(data)
				_ = rw.(*ExecSession).CloseWrite()
			}()
			got, err := io.ReadAll(rw)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("session %d: got %d bytes back, want %d identical", i, len(got), len(data))
			}
			if err := rw.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	f.sshd.mu.Lock()
	defer f.sshd.mu.Unlock()
	if len(f.sshd.execs) != sessions {
		t.Errorf("server ran %d commands, want %d", len(f.sshd.execs), sessions)
	}
}

func TestExecStderrOfFailingCommand(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	rw, err := c.Exec(context.Background(), "fail")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rw.Read(make([]byte, 100))
	var xerr *RemoteExitError
	if !errors.As(err, &xerr) || xerr.Status != 127 {
		t.Fatalf("Read: %v, want *RemoteExitError with status 127", err)
	}
	if !strings.Contains(err.Error(), "zsync: command not found") || !strings.Contains(err.Error(), "127") {
		t.Errorf("message %q lacks the status and stderr", err)
	}
	assertOneLine(t, err)
	if got := StderrOf(rw); got != "sh: zsync: command not found\n" {
		t.Errorf("StderrOf = %q", got)
	}
	if err := rw.Close(); !errors.As(err, &xerr) {
		t.Errorf("Close: %v, want *RemoteExitError", err)
	}
	if StderrOf(struct{ io.ReadWriteCloser }{}) != "" {
		t.Error("StderrOf of a foreign type is not empty")
	}
}

func TestExecStderrBounded(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	rw, err := c.Exec(context.Background(), "flood-stderr")
	if err != nil {
		t.Fatal(err)
	}
	err = rw.Close()
	var xerr *RemoteExitError
	if !errors.As(err, &xerr) || xerr.Status != 3 {
		t.Fatalf("Close: %v, want exit status 3", err)
	}
	got := StderrOf(rw)
	if len(got) > stderrLimit+100 || !strings.Contains(got, "bytes of stderr omitted") {
		t.Fatalf("stderr capture: %d bytes, marker present: %v", len(got), strings.Contains(got, "omitted"))
	}
	if len(err.Error()) > 600 {
		t.Errorf("error message is %d bytes long", len(err.Error()))
	}
}

func TestStderrCapture(t *testing.T) {
	var c stderrCapture
	if _, err := io.WriteString(&c, "short\n"); err != nil {
		t.Fatal(err)
	}
	if c.String() != "short\n" {
		t.Fatalf("got %q", c.String())
	}
	head := strings.Repeat("h", stderrLimit/2-6)
	_, _ = io.WriteString(&c, head)
	for range 100 {
		_, _ = io.WriteString(&c, strings.Repeat("m", 1000))
	}
	_, _ = io.WriteString(&c, strings.Repeat("t", stderrLimit/2-3)+"END")
	got := c.String()
	wantHead := "short\n" + head
	wantTail := strings.Repeat("t", stderrLimit/2-3) + "END"
	if !strings.HasPrefix(got, wantHead) || !strings.HasSuffix(got, wantTail) {
		t.Fatal("capture lost its head or tail")
	}
	if !strings.Contains(got, "[... 100000 bytes of stderr omitted ...]") {
		t.Fatalf("omission marker wrong: %q", got[len(wantHead):len(got)-len(wantTail)])
	}
	// One huge write.
	var big stderrCapture
	_, _ = big.Write(bytes.Repeat([]byte("a"), 10*stderrLimit))
	if s := big.String(); len(s) > stderrLimit+64 || !strings.Contains(s, "omitted") {
		t.Fatalf("big write kept %d bytes", len(s))
	}
}

func TestDialConnectTimeout(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	key := filepath.Join(t.TempDir(), "id")
	writeClientKey(t, key, "")
	// A listener that accepts but never speaks SSH.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	o := DialOptions{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, User: "zsync",
		IdentityFiles: []string{key}, KnownHostsFile: filepath.Join(t.TempDir(), "kh"),
		SSHConfigFile: "/nonexistent", ConnectTimeout: 300 * time.Millisecond}
	addr := ln.Addr().String()

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := Dial(context.Background(), o)
		if !errors.Is(err, ErrConnect) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrConnect wrapping DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "timed out after 300ms") {
			t.Errorf("message %q lacks address or timeout", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Dial took %s", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		o := o
		o.ConnectTimeout = time.Minute
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := Dial(ctx, o)
		if !errors.Is(err, ErrConnect) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrConnect wrapping Canceled", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Dial took %s after cancel", d)
		}
	})
	t.Run("refused", func(t *testing.T) {
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o := o
		o.Port = closed.Addr().(*net.TCPAddr).Port
		_ = closed.Close()
		_, err = Dial(context.Background(), o)
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), closed.Addr().String()) {
			t.Fatalf("err = %v, want ErrConnect naming the address", err)
		}
		assertOneLine(t, err)
	})
}

func TestKeepAliveQuietSession(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	o.KeepAlive = 40 * time.Millisecond
	c := f.dial(t, o)
	rw, err := c.Exec(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // quiet: keepalives only
	roundTrip(t, rw, []byte("still there"))
	if n := f.sshd.keepalives.Load(); n < 3 {
		t.Errorf("server saw %d keepalives in 500ms at 40ms intervals", n)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestKeepAliveDeadPeer(t *testing.T) {
	f := newDialFixture(t)
	f.sshd.ignoreGlobal.Store(true)
	o := f.opts()
	o.KeepAlive = 40 * time.Millisecond
	c := f.dial(t, o)
	rw, err := c.Exec(context.Background(), "wait")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := rw.Read(make([]byte, 10))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "keepalive") {
			t.Fatalf("Read: %v, want ErrConnect about keepalives", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection with an unresponsive peer was not closed")
	}
	if !f.logs.find("warn", "keepalive") {
		t.Error("lost connection not logged")
	}
}

func TestExecContextCancel(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	ctx, cancel := context.WithCancel(context.Background())
	rw, err := c.Exec(ctx, "wait")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = rw.Read(make([]byte, 10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Read returned %s after cancel", d)
	}
	if err := rw.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close: %v, want context.Canceled", err)
	}
	// The connection survives a cancelled session.
	rw2, err := c.Exec(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw2, []byte("next"))
	_ = rw2.Close()
	if _, err := c.Exec(ctx, "echo"); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a cancelled ctx: %v", err)
	}
}

func TestExecWriteAfterRemoteFailure(t *testing.T) {
	f := newDialFixture(t)
	c := f.dial(t, f.opts())
	rw, err := c.Exec(context.Background(), "fail")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = rw.Write(buf); err != nil {
			break
		}
	}
	var xerr *RemoteExitError
	if !errors.As(err, &xerr) || xerr.Status != 127 {
		t.Fatalf("Write: %v, want the remote command's failure", err)
	}
	_ = rw.Close()
}

func TestCipherPreference(t *testing.T) {
	got := cipherPreference()
	want := []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"}
	if len(got) <= len(want) {
		t.Fatalf("ciphers %q: no defaults after the preferred ones", got)
	}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("ciphers %q, want prefix %q", got, want)
		}
	}
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c] {
			t.Fatalf("duplicate cipher %s", c)
		}
		seen[c] = true
	}
}

func assertOneLine(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error message has several lines: %q", err)
	}
}
