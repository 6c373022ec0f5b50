package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Dial errors. Dial returns errors that unwrap to exactly one of these, so
// callers can classify a failure with errors.Is (and log it as a field)
// without parsing messages. Every message is one line.
var (
	// ErrHostKeyUnknown: known_hosts has no key for the host and the policy
	// is strict. The message says how to verify and add the key.
	ErrHostKeyUnknown = errors.New("ssh host key unknown")
	// ErrHostKeyMismatch: the host presented a key other than the one(s)
	// known_hosts has for it, or a revoked key. Never accepted
	// automatically: possible man-in-the-middle attack.
	ErrHostKeyMismatch = errors.New("ssh host key mismatch")
	// ErrAuth: the server accepted none of our keys, or there was no usable
	// key at all. The message names user@host and the keys tried.
	ErrAuth = errors.New("ssh authentication failed")
	// ErrConnect: the TCP connection or the SSH handshake failed or timed
	// out, or an established connection was lost. The message names
	// host:port and the cause.
	ErrConnect = errors.New("ssh connection failed")
)

// Defaults of DialOptions.
const (
	defaultConnectTimeout = 15 * time.Second
	defaultKeepAlive      = 30 * time.Second
	// keepAliveMaxMissed unanswered keepalives close the connection.
	keepAliveMaxMissed = 3
)

// preferredCiphers come first in the cipher proposal; the library's other
// supported ciphers follow.
var preferredCiphers = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}

// DialOptions say where and how Dial connects. Explicit fields win over
// the ssh_config file, which wins over the built-in defaults.
type DialOptions struct {
	// Host is a host name, an address, or a Host alias of the ssh_config
	// file. Required.
	Host string
	// User is the remote user; "" = ssh_config User, else the current user.
	User string
	// Port is the remote port; 0 = ssh_config Port, else 22.
	Port int
	// IdentityFiles are private keys to offer, in order; none = ssh_config
	// IdentityFile, else those of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that
	// exist. Keys must be unencrypted (an encrypted key can be used through
	// ssh-agent). Keys held by the ssh-agent at $SSH_AUTH_SOCK, if set, are
	// offered after them. "~/" is expanded.
	IdentityFiles []string
	// KnownHostsFile is the known_hosts file; "" = ~/.ssh/known_hosts.
	KnownHostsFile string
	// HostKeyPolicy is what to do with a host known_hosts has no key for.
	// The zero value is HostKeyStrict.
	HostKeyPolicy HostKeyPolicy
	// SSHConfigFile is the ssh_config file; "" = ~/.ssh/config. A missing
	// file is fine.
	SSHConfigFile string
	// ConnectTimeout bounds the TCP connect, the SSH handshake and
	// authentication together; 0 = 15s.
	ConnectTimeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests; the
	// connection is closed when 3 in a row go unanswered. 0 = 30s; a
	// negative value disables keepalives.
	KeepAlive time.Duration
	// Log receives the transport's log events, if set. level is "debug",
	// "info" or "warn"; fields use the keys "host", "user", "fingerprint",
	// "key_type", "known_hosts", "duration". HostKeyInsecure logs a "warn"
	// event on every connection.
	Log func(level, msg string, fields map[string]any)
}

// Conn is an authenticated SSH connection. Its methods are safe for
// concurrent use; each Exec runs on its own channel.
type Conn struct {
	client *ssh.Client
	addr   string // host:port
	log    func(level, msg string, fields map[string]any)

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex
	lost error // why the connection died, set before it is closed
}

// ConnectError is a failed or lost connection. It unwraps to ErrConnect
// and to the cause (a net error, context.Canceled or
// context.DeadlineExceeded, ...).
type ConnectError struct {
	Addr  string // host:port
	msg   string
	cause error
}

// Error implements error.
func (e *ConnectError) Error() string { return e.msg }

// Unwrap returns ErrConnect and the cause.
func (e *ConnectError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrConnect}
	}
	return []error{ErrConnect, e.cause}
}

// AuthError is a failed authentication. It unwraps to ErrAuth and to the
// library's error, if any.
type AuthError struct {
	User     string
	Addr     string   // host:port
	Tried    []string // keys offered: files and agent keys, with fingerprints
	Problems []string // identity files that could not be used, and why
	cause    error
}

// Error implements error.
func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh authentication as %s@%s failed", e.User, e.Addr)
	if len(e.Tried) == 0 {
		b.WriteString("; no usable key")
	} else {
		b.WriteString("; keys tried: " + strings.Join(e.Tried, ", "))
	}
	if len(e.Problems) > 0 {
		b.WriteString("; " + strings.Join(e.Problems, "; "))
	}
	if len(e.Tried) == 0 && len(e.Problems) == 0 {
		b.WriteString(" (no identity file found and no ssh-agent: set identity_file)")
	}
	if e.cause != nil && !strings.Contains(e.cause.Error(), "unable to authenticate") {
		// The server ended it otherwise, e.g. "too many authentication failures".
		b.WriteString("; " + strings.TrimPrefix(e.cause.Error(), "ssh: handshake failed: "))
	}
	return b.String()
}

// Unwrap returns ErrAuth and the cause.
func (e *AuthError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrAuth}
	}
	return []error{ErrAuth, e.cause}
}

// Dial connects and authenticates to o.Host, checking its key against
// known_hosts under o.HostKeyPolicy. ctx bounds the connection attempt
// only; use Close to end the connection. Errors unwrap to one of
// ErrHostKeyUnknown, ErrHostKeyMismatch, ErrAuth or ErrConnect, except
// for configuration errors (unreadable ssh_config or known_hosts).
func Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	start := time.Now()
	t, err := resolveTarget(o)
	if err != nil {
		return nil, err
	}
	addr := t.addr()
	khFile, err := knownHostsPath(o.KnownHostsFile)
	if err != nil {
		return nil, err
	}
	checker, err := newHostKeyChecker(khFile, addr, o.HostKeyPolicy, o.Log)
	if err != nil {
		return nil, err
	}

	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	auth := loadAuth(dctx, t)
	defer auth.close()
	if len(auth.signers) == 0 {
		return nil, &AuthError{User: t.user, Addr: addr, Problems: auth.problems}
	}

	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, connectFailure(ctx, addr, "connect to", timeout, err)
	}
	// The handshake has no context: a deadline bounds it, and cancelling
	// ctx moves the deadline to the past, which fails any blocked I/O.
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	cfg := &ssh.ClientConfig{
		Config:            ssh.Config{Ciphers: cipherPreference()},
		User:              t.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(auth.signersFunc)},
		HostKeyCallback:   checker.check,
		HostKeyAlgorithms: checker.algorithms(),
		ClientVersion:     "SSH-2.0-zsync",
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	stopped := stop()
	if err != nil {
		return nil, classifyHandshake(ctx, t, addr, timeout, checker, auth, err)
	}
	if !stopped {
		_ = sc.Close()
		return nil, connectFailure(ctx, addr, "ssh handshake with", timeout, dctx.Err())
	}
	_ = nc.SetDeadline(time.Time{})

	c := &Conn{
		client: ssh.NewClient(sc, chans, reqs),
		addr:   addr,
		log:    o.Log,
		done:   make(chan struct{}),
	}
	c.logf("debug", "ssh connected", map[string]any{
		"host": addr, "user": t.user, "duration": time.Since(start),
	})
	interval := o.KeepAlive
	if interval == 0 {
		interval = defaultKeepAlive
	}
	if interval > 0 {
		go c.keepalive(interval)
	}
	return c, nil
}

// knownHostsPath returns file with "~/" expanded, or ~/.ssh/known_hosts.
func knownHostsPath(file string) (string, error) {
	home, _ := os.UserHomeDir()
	if file != "" {
		return expandSSHPath(file, home, "", "", ""), nil
	}
	if home == "" {
		return "", errors.New("ssh: no known_hosts file given and the home directory is unknown")
	}
	return filepath.Join(home, ".ssh", "known_hosts"), nil
}

// cipherPreference returns preferredCiphers followed by the library's
// other supported ciphers.
func cipherPreference() []string {
	ciphers := slices.Clone(preferredCiphers)
	for _, c := range ssh.SupportedAlgorithms().Ciphers {
		if !slices.Contains(ciphers, c) {
			ciphers = append(ciphers, c)
		}
	}
	return ciphers
}

// connectFailure builds the ConnectError of a failed step ("connect to",
// "ssh handshake with"), telling a cancellation and a timeout apart.
func connectFailure(ctx context.Context, addr, step string, timeout time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return &ConnectError{Addr: addr, cause: ctx.Err(),
			msg: fmt.Sprintf("%s %s: %v", step, addr, ctx.Err())}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &ConnectError{Addr: addr, cause: errors.Join(context.DeadlineExceeded, err),
			msg: fmt.Sprintf("%s %s: timed out after %s", step, addr, timeout)}
	}
	return &ConnectError{Addr: addr, cause: err, msg: fmt.Sprintf("%s %s: %v", step, addr, innermostNetError(err))}
}

// innermostNetError drops the "dial tcp ADDR:" and "connect:" layers of
// a network error, which the message states already.
func innermostNetError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) && se.Err != nil {
		err = se.Err
	}
	return err
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classifyHandshake turns a failed ssh.NewClientConn into a HostKeyError,
// AuthError or ConnectError.
func classifyHandshake(ctx context.Context, t sshTarget, addr string, timeout time.Duration,
	checker *hostKeyChecker, auth *sshAuth, err error) error {
	if refused := checker.refusal(); refused != nil {
		return refused
	}
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" && len(checker.knownTypes) > 0 {
		return &HostKeyError{
			Kind: ErrHostKeyMismatch, Addr: addr, KnownHostsFile: checker.file, cause: err,
			msg: fmt.Sprintf("host %s offers none of the host key types %s has for it (%s); possible man-in-the-middle attack, or the host's keys were replaced: verify and update %s",
				addr, checker.file, strings.Join(checker.knownTypes, ", "), checker.file),
		}
	}
	// After the host key was accepted, the server can only have refused
	// us ("unable to authenticate", or a disconnect such as OpenSSH's "Too
	// many authentication failures").
	if msg := strings.ToLower(err.Error()); strings.Contains(msg, "unable to authenticate") ||
		(checker.passed() && strings.Contains(msg, "authentication")) {
		return &AuthError{User: t.user, Addr: addr, Tried: auth.tried, Problems: auth.problems, cause: err}
	}
	return connectFailure(ctx, addr, "ssh handshake with", timeout, err)
}

// keepalive sends keepalive@openssh.com requests every interval and closes
// the connection after keepAliveMaxMissed intervals without a reply.
func (c *Conn) keepalive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	replies := make(chan error, 1)
	inflight, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-replies:
			inflight, missed = false, 0
			if err != nil {
				return // the connection is gone
			}
		case <-tick.C:
			if !inflight {
				inflight = true
				go func() {
					_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
					replies <- err
				}()
				continue
			}
			missed++
			if missed >= keepAliveMaxMissed {
				c.mu.Lock()
				c.lost = &ConnectError{Addr: c.addr, cause: os.ErrDeadlineExceeded,
					msg: fmt.Sprintf("ssh connection to %s lost: no answer to keepalives for %s", c.addr, time.Duration(missed)*interval)}
				c.mu.Unlock()
				c.logf("warn", "ssh connection lost: keepalives unanswered", map[string]any{"host": c.addr})
				_ = c.client.Close()
				return
			}
		}
	}
}

// lostErr returns why the connection died, if the keepalive closed it.
func (c *Conn) lostErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// Close closes the connection and every session on it. It is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		err := c.client.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) && c.lostErr() == nil {
			c.closeErr = fmt.Errorf("close ssh connection to %s: %w", c.addr, err)
		}
	})
	return c.closeErr
}

// logf forwards to the caller's logger, if any.
func (c *Conn) logf(level, msg string, fields map[string]any) {
	if c.log != nil {
		c.log(level, msg, fields)
	}
}

// Bounds of ExecSession.
const (
	// stderrLimit bounds the captured stderr of a remote command: its first
	// and last stderrLimit/2 bytes are kept.
	stderrLimit = 64 << 10
	// exitGrace is how long a Read or Write that hit the end of the stream
	// waits for the remote command's exit status, to report it.
	exitGrace = 5 * time.Second
	// closeTimeout is how long Close waits for the remote command to exit
	// after closing its input, before closing the session.
	closeTimeout = 30 * time.Second
)

// Exec starts command (built with RemoteCommand) on a new session, its own
// channel of the connection; several may run at once. The returned
// *ExecSession is the command's stdin (Write) and stdout (Read), passed
// straight through: use large buffers for bulk data. Its stderr is
// captured (bounded) for error messages. Cancelling ctx ends the session.
//
// The caller must Close the session. OpenSSH's sshd allows 10 sessions per
// connection by default (MaxSessions).
func (c *Conn) Exec(ctx context.Context, command string) (io.ReadWriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-c.done:
		return nil, fmt.Errorf("ssh connection to %s: %w", c.addr, net.ErrClosed)
	default:
	}
	var sess *ssh.Session
	err := runWithContext(ctx, func() (err error) {
		sess, err = c.client.NewSession()
		return err
	}, func() {
		if sess != nil {
			_ = sess.Close()
		}
	})
	if err != nil {
		return nil, c.sessionErr("open ssh session on", err)
	}
	s := &ExecSession{
		conn:    c,
		command: command,
		sess:    sess,
		ctx:     ctx,
		stderr:  &stderrCapture{},
		exited:  make(chan struct{}),
	}
	sess.Stderr = s.stderr
	if s.stdin, err = sess.StdinPipe(); err == nil {
		s.stdout, err = sess.StdoutPipe()
	}
	if err == nil {
		err = runWithContext(ctx, func() error { return sess.Start(command) }, func() { _ = sess.Close() })
	}
	if err != nil {
		_ = sess.Close()
		return nil, c.sessionErr(fmt.Sprintf("start %q on", command), err)
	}
	go func() {
		s.waitErr = sess.Wait()
		close(s.exited)
	}()
	s.stopCtx = context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
	})
	return s, nil
}

// runWithContext runs fn, returning early with ctx's error when ctx ends
// first; abort is then called once fn has returned, to release what it
// made.
func runWithContext(ctx context.Context, fn func() error, abort func()) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		go func() {
			<-done
			abort()
		}()
		return ctx.Err()
	}
}

// sessionErr wraps a session failure, preferring the reason the
// connection was lost.
func (c *Conn) sessionErr(what string, err error) error {
	if lost := c.lostErr(); lost != nil {
		return lost
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", what, c.addr, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return &ConnectError{Addr: c.addr, cause: err, msg: fmt.Sprintf("%s %s: connection closed", what, c.addr)}
	}
	return fmt.Errorf("%s %s: %w", what, c.addr, err)
}

// ExecSession is a remote command started by Conn.Exec: Write feeds its
// stdin, Read drains its stdout, both unbuffered. When its output ends,
// Read returns io.EOF if the command exited 0, and a *RemoteExitError
// (with the command's stderr) if it failed; a Write the command no longer
// reads fails the same way. Read and Write may be called concurrently with
// each other; Close may be called from any goroutine.
type ExecSession struct {
	conn    *Conn
	command string
	sess    *ssh.Session
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  *stderrCapture
	ctx     context.Context
	stopCtx func() bool

	exited  chan struct{} // closed when the command has exited
	waitErr error         // ssh.Session.Wait's result, set before exited closes
	graced  atomic.Bool   // exitGrace already spent waiting

	closeOnce sync.Once
	closeErr  error
}

// RemoteExitError is a remote command that exited non-zero, was killed by
// a signal, or vanished without an exit status.
type RemoteExitError struct {
	Command string
	Status  int    // exit status; -1 if none was reported
	Signal  string // signal name (without "SIG") if killed by a signal
	Stderr  string // captured stderr, bounded
	cause   error
}

// Error implements error: one line with the gist of stderr.
func (e *RemoteExitError) Error() string {
	var what string
	switch {
	case e.Signal != "":
		what = "was killed by signal " + e.Signal
	case e.Status >= 0:
		what = fmt.Sprintf("exited with status %d", e.Status)
	default:
		what = "ended without an exit status"
	}
	msg := fmt.Sprintf("remote command %q %s", e.Command, what)
	if gist := stderrGist(e.Stderr); gist != "" {
		msg += ": " + gist
	}
	return msg
}

// Unwrap returns the library's error.
func (e *RemoteExitError) Unwrap() error { return e.cause }

// stderrGist joins the non-empty lines of stderr with "; ", cut at 512
// bytes.
func stderrGist(stderr string) string {
	var lines []string
	for l := range strings.SplitSeq(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	gist := strings.Join(lines, "; ")
	if len(gist) > 512 {
		cut := 512
		for cut > 0 && !utf8.RuneStart(gist[cut]) {
			cut--
		}
		gist = gist[:cut] + "..."
	}
	return gist
}

// StderrOf returns the captured stderr of a session returned by Conn.Exec
// (or of anything with a Stderr() string method), or "".
func StderrOf(rwc io.ReadWriteCloser) string {
	if s, ok := rwc.(interface{ Stderr() string }); ok {
		return s.Stderr()
	}
	return ""
}

// Stderr returns what the remote command wrote to stderr so far: all of it
// up to 64 KiB, else its beginning and end around an omission marker. It
// is complete once Read has returned an error or Close has returned.
func (s *ExecSession) Stderr() string { return s.stderr.String() }

// Read reads the remote command's stdout.
func (s *ExecSession) Read(p []byte) (int, error) {
	n, err := s.stdout.Read(p)
	if err != nil {
		err = s.streamErr(err)
	}
	return n, err
}

// Write writes to the remote command's stdin.
func (s *ExecSession) Write(p []byte) (int, error) {
	n, err := s.stdin.Write(p)
	if err != nil {
		err = s.streamErr(err)
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("write to remote command %q: %w", s.command, io.ErrClosedPipe)
		}
	}
	return n, err
}

// streamErr replaces a read or write error with the reason the stream
// ended: the cancelled context, the lost connection, or the command's
// failure.
func (s *ExecSession) streamErr(err error) error {
	if cerr := s.ctx.Err(); cerr != nil {
		return fmt.Errorf("remote command %q: %w", s.command, cerr)
	}
	if !s.graced.Swap(true) {
		timer := time.NewTimer(exitGrace)
		defer timer.Stop()
		select {
		case <-s.exited:
		case <-timer.C:
		}
	}
	select {
	case <-s.exited:
		if xerr := s.exitError(); xerr != nil {
			return xerr
		}
	default:
		if lost := s.conn.lostErr(); lost != nil {
			return lost
		}
	}
	return err
}

// exitError converts the session's wait result; call after exited closed.
func (s *ExecSession) exitError() error {
	if s.waitErr == nil {
		return nil
	}
	if lost := s.conn.lostErr(); lost != nil {
		return lost
	}
	if cerr := s.ctx.Err(); cerr != nil {
		return fmt.Errorf("remote command %q: %w", s.command, cerr)
	}
	var ee *ssh.ExitError
	var me *ssh.ExitMissingError
	switch {
	case errors.As(s.waitErr, &ee):
		return &RemoteExitError{Command: s.command, Status: ee.ExitStatus(), Signal: ee.Signal(),
			Stderr: s.stderr.String(), cause: s.waitErr}
	case errors.As(s.waitErr, &me):
		return &RemoteExitError{Command: s.command, Status: -1, Stderr: s.stderr.String(), cause: s.waitErr}
	}
	return fmt.Errorf("remote command %q: %w", s.command, s.waitErr)
}

// CloseWrite closes the remote command's stdin (it reads end of file) and
// leaves its stdout open.
func (s *ExecSession) CloseWrite() error {
	if err := s.stdin.Close(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("close stdin of remote command %q: %w", s.command, err)
	}
	return nil
}

// Close closes the command's stdin, discards what it still writes, and
// waits up to 30s for it to exit, then closes the session (after sending
// SIGTERM if it had not exited). It returns nil if the command exited 0,
// else a *RemoteExitError, the context's error, or a timeout error. It is
// idempotent.
func (s *ExecSession) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *ExecSession) close() error {
	defer s.stopCtx()
	_ = s.stdin.Close()
	go func() { _, _ = io.Copy(io.Discard, s.stdout) }()
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		_ = s.sess.Close() // usually already closed by the far side
		return s.exitError()
	case <-timer.C:
	}
	_ = s.sess.Signal(ssh.SIGTERM)
	_ = s.sess.Close()
	return fmt.Errorf("remote command %q on %s did not exit within %s after its input was closed; session closed",
		s.command, s.conn.addr, closeTimeout)
}

// stderrCapture keeps the first and the last stderrLimit/2 bytes written
// to it, counting what it drops in between.
type stderrCapture struct {
	mu      sync.Mutex
	head    []byte
	tail    []byte // may grow to twice its share before being trimmed
	dropped int64
}

// Write implements io.Writer; it never fails.
func (c *stderrCapture) Write(p []byte) (int, error) {
	const half = stderrLimit / 2
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if room := half - len(c.head); room > 0 {
		take := min(room, len(p))
		c.head = append(c.head, p[:take]...)
		p = p[take:]
	}
	if len(p) >= half {
		c.dropped += int64(len(c.tail) + len(p) - half)
		c.tail = append(c.tail[:0], p[len(p)-half:]...)
		return n, nil
	}
	c.tail = append(c.tail, p...)
	if len(c.tail) > 2*half {
		excess := len(c.tail) - half
		c.dropped += int64(excess)
		c.tail = append(c.tail[:0], c.tail[excess:]...)
	}
	return n, nil
}

// String returns the captured text.
func (c *stderrCapture) String() string {
	const half = stderrLimit / 2
	c.mu.Lock()
	defer c.mu.Unlock()
	tail, dropped := c.tail, c.dropped
	if len(tail) > half {
		dropped += int64(len(tail) - half)
		tail = tail[len(tail)-half:]
	}
	if dropped == 0 {
		return string(c.head) + string(tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes of stderr omitted ...]\n%s", c.head, dropped, tail)
}
