package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

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

// abort tears down the whole SSH connection the session runs on, after a
// client's idle timeout fired. Closing the session alone would not do: a
// Write waiting for window space returns only once the far sshd closes
// the channel, and OpenSSH's sshd waits for the command to exit first,
// which a hung command never does (nor can a forced command be signalled).
// The job's other sessions on the connection fail too; the next run
// resumes them.
func (s *ExecSession) abort(reason error) {
	s.conn.mu.Lock()
	if s.conn.lost == nil {
		s.conn.lost = &ConnectError{Addr: s.conn.addr, cause: reason,
			msg: fmt.Sprintf("ssh connection to %s closed: %v", s.conn.addr, reason)}
	}
	s.conn.mu.Unlock()
	s.conn.logf("warn", "ssh connection closed: the far side stopped responding", map[string]any{"host": s.conn.addr})
	_ = s.conn.client.Close()
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
