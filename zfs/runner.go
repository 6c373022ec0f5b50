package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one invocation for a Runner.
type Cmd struct {
	// Argv is the program and its arguments; never interpreted by a shell.
	Argv []string
	// Env holds KEY=VALUE entries that override the inherited environment
	// (the CLI always passes LC_ALL=C).
	Env []string
	// Stdin is the process's standard input for Run; nil means none.
	Stdin io.Reader
}

// Result is the outcome of a finished process. ExitCode is -1 when the
// process did not exit normally (killed by a signal).
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Runner executes commands. A non-zero exit status is not an error of the
// Runner: it is reported in Result.ExitCode. The error is for failures to
// start or complete the process (not found, context cancelled, killed).
type Runner interface {
	// Run runs cmd to completion, feeding it cmd.Stdin, and returns its
	// output. Cancelling ctx kills the process.
	Run(ctx context.Context, cmd Cmd) (Result, error)
	// Start starts cmd with its standard output streamed through the
	// returned Process (cmd.Stdin is not used). Cancelling ctx kills it.
	Start(ctx context.Context, cmd Cmd) (Process, error)
}

// Process is a started command whose standard output is streamed. The
// caller must call Wait exactly once, after reading Stdout to the end or
// after Kill; Wait's Result carries stderr and the exit code (no stdout).
type Process interface {
	// Stdout is the read end of the process's standard output. The caller
	// closes it.
	Stdout() io.ReadCloser
	// Kill terminates the process (idempotent).
	Kill() error
	// Wait waits for the process to exit.
	Wait() (Result, error)
}

// maxCapturedStderr bounds the stderr a runner keeps (head and tail).
const maxCapturedStderr = 64 << 10

// ExecRunner runs commands with os/exec. The zero value is ready to use.
type ExecRunner struct {
	// WaitDelay bounds how long Wait waits for I/O after the process
	// exited or was killed (exec.Cmd.WaitDelay); 0 means 5 seconds.
	WaitDelay time.Duration
}

var _ Runner = ExecRunner{}

func (r ExecRunner) command(ctx context.Context, c Cmd) (*exec.Cmd, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, errors.New("zfs: empty argv")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = mergeEnv(os.Environ(), c.Env)
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	return cmd, nil
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Cmd) (Result, error) {
	cmd, err := r.command(ctx, c)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	var stdout bytes.Buffer
	stderr := &capBuffer{limit: maxCapturedStderr}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if c.Stdin == nil {
		err = cmd.Run()
		res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
		return res, exitStatus(ctx, cmd, &res, err)
	}
	// A stream to feed (zfs recv): our own 1 MiB pipe and copy loop, because
	// exec's stdin copy goes through os.File.ReadFrom, which falls back to
	// 32 KiB chunks for a plain io.Reader.
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("zfs: pipe: %w", err)
	}
	growPipe(pw)
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return Result{ExitCode: -1}, err
	}
	pr.Close() // the child holds its own copy; our writes fail once it exits
	copied := make(chan error, 1)
	go func() {
		buf := make([]byte, pipeSize)
		_, cerr := io.CopyBuffer(writerOnly{pw}, c.Stdin, buf)
		pw.Close()
		copied <- cerr
	}()
	err = cmd.Wait()
	var cerr error
	select {
	case cerr = <-copied:
	case <-time.After(cmd.WaitDelay):
		// the copy is stuck reading the source; the caller's Close of the
		// source ends it (exec's own stdin copy behaves the same way)
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	err = exitStatus(ctx, cmd, &res, err)
	if err == nil && res.ExitCode == 0 && cerr != nil && !errors.Is(cerr, syscall.EPIPE) {
		// as exec does: a failed feed of a process that exited 0 is an error
		err = fmt.Errorf("zfs: feeding stdin: %w", cerr)
	}
	return res, err
}

// writerOnly hides os.File's ReadFrom, so io.CopyBuffer uses the given
// buffer (or the source's WriteTo) instead of 32 KiB chunks.
type writerOnly struct{ io.Writer }

// exitStatus fills res.ExitCode and decides whether err is a runner error.
func exitStatus(ctx context.Context, cmd *exec.Cmd, res *Result, err error) error {
	res.ExitCode = -1
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil && (err != nil || res.ExitCode != 0) {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && res.ExitCode > 0 {
		return nil // a normal non-zero exit: reported through ExitCode
	}
	if err == nil && res.ExitCode < 0 {
		return errors.New("process did not exit normally")
	}
	return err
}

// Start implements Runner.
func (r ExecRunner) Start(ctx context.Context, c Cmd) (Process, error) {
	cmd, err := r.command(ctx, c)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("zfs: pipe: %w", err)
	}
	growPipe(pw)
	stderr := &capBuffer{limit: maxCapturedStderr}
	cmd.Stdout = pw
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close() // the child holds its own copy
	return &execProcess{ctx: ctx, cmd: cmd, stdout: pr, stderr: stderr}, nil
}

type execProcess struct {
	ctx    context.Context
	cmd    *exec.Cmd
	stdout *os.File
	stderr *capBuffer
}

func (p *execProcess) Stdout() io.ReadCloser { return p.stdout }

func (p *execProcess) Kill() error {
	err := p.cmd.Process.Kill()
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

func (p *execProcess) Wait() (Result, error) {
	err := p.cmd.Wait()
	res := Result{Stderr: p.stderr.Bytes()}
	return res, exitStatus(p.ctx, p.cmd, &res, err)
}

// mergeEnv returns base without locale variables and without the keys of
// extra, followed by extra.
func mergeEnv(base, extra []string) []string {
	override := map[string]bool{}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		override[k] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if override[k] || k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// capBuffer is an io.Writer that keeps the first and the last limit/2 bytes
// written to it. It is safe for concurrent use.
type capBuffer struct {
	mu        sync.Mutex
	limit     int
	head      []byte
	tail      []byte
	truncated bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	half := b.limit / 2
	if room := half - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		b.tail = append(b.tail, p...)
		if len(b.tail) > half {
			b.truncated = true
			b.tail = append(b.tail[:0:0], b.tail[len(b.tail)-half:]...)
		}
	}
	return n, nil
}

// Bytes returns the kept bytes, with a marker where bytes were dropped.
func (b *capBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]byte(nil), b.head...)
	if b.truncated {
		out = append(out, "\n[...]\n"...)
	}
	return append(out, b.tail...)
}
