package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// StartLocal starts argv (normally this binary's `serve --stdio`) as a
// child process and returns a Client speaking to it over the child's
// stdin and stdout: a local target or source takes the same code path as a
// remote one. The child's stderr is kept (its last 64 KiB) for error
// messages and copied to o.Stderr when set. A child that dies or prints
// something else before its banner fails StartLocal with ErrNotZsync and
// the child's exit status and stderr in the message.
//
// ctx bounds the start and the handshake; the child then runs until Close,
// which closes its stdin, waits up to 5 seconds for it to exit, kills it
// otherwise, and reports a failed exit with its stderr. Cancelling the
// context of a call closes the pipes, and the child exits.
func StartLocal(ctx context.Context, argv []string, o ClientOptions) (*Client, error) {
	if len(argv) == 0 {
		return nil, errors.New("start local zsync serve: empty command")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start local zsync serve: %w", err)
	}
	p, err := startChild(argv, o.Stderr)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(ctx, p, o)
	if err != nil {
		// NewClient closed p, which waited for the child: its stderr is
		// complete.
		return nil, fmt.Errorf("%w; %s", err, p.describe())
	}
	return c, nil
}

// childPipe is the io.ReadWriteCloser over a child's stdout and stdin.
type childPipe struct {
	cmd    *exec.Cmd
	stdout *os.File // read end of the child's stdout
	stdin  *os.File // write end of the child's stdin
	stderr *tailBuffer
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited closes
	killed bool
}

func startChild(argv []string, stderrCopy io.Writer) (*childPipe, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &childPipe{stdout: outR, stdin: inW, stderr: &tailBuffer{limit: maxChildStderr, copyTo: stderrCopy}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdin = inR
	p.cmd.Stdout = outW
	p.cmd.Stderr = p.stderr
	p.cmd.WaitDelay = closeGrace
	err = p.cmd.Start()
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *childPipe) Read(b []byte) (int, error)  { return p.stdout.Read(b) }
func (p *childPipe) Write(b []byte) (int, error) { return p.stdin.Write(b) }

// Close closes the child's stdin and the read end of its stdout, waits for
// it (killing it after closeGrace) and reports a failed exit.
func (p *childPipe) Close() error {
	_ = p.stdin.Close()
	_ = p.stdout.Close()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.killed = true
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.err != nil {
		return &childError{msg: p.describe(), err: p.err}
	}
	return nil
}

// describe says how the child ended and what it wrote to stderr. Valid
// once the child exited.
func (p *childPipe) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ", p.cmd.Path)
	switch {
	case p.killed:
		fmt.Fprintf(&b, "did not exit within %v and was killed", closeGrace)
	case p.err != nil:
		fmt.Fprintf(&b, "exited: %v", p.err)
	default:
		b.WriteString("exited: exit status 0")
	}
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		b.WriteString("; stderr: ")
		b.WriteString(s)
	}
	return b.String()
}

// tailBuffer keeps the last limit bytes written to it and copies
// everything to copyTo when set (copy errors are ignored: the log sink
// must not kill the child).
type tailBuffer struct {
	mu     sync.Mutex
	limit  int
	buf    []byte
	cut    bool
	copyTo io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.copyTo != nil {
		_, _ = t.copyTo.Write(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.limit {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return "[...]" + string(t.buf)
	}
	return string(t.buf)
}

// childError is a local serve child that failed: the message says how it
// ended and what it wrote to stderr; it unwraps to the *exec.ExitError.
type childError struct {
	msg string
	err error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.err }
