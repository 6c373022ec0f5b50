package zfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SendOptions describes a zfs send. It must go through Validate before use.
type SendOptions struct {
	// From is the incremental source: "" for a full send, else the full
	// name of a snapshot (pool/fs@x) or bookmark (pool/fs#y) of To's dataset.
	From string
	// To is the full name of the snapshot to send.
	To string
	// Intermediates sends every snapshot between From and To (-I instead of
	// -i). Invalid with a bookmark From.
	Intermediates bool
	// Raw (-w), Compressed (-c), LargeBlocks (-L), EmbeddedData (-e) and
	// Props (-p) are the stream flags.
	Raw, Compressed, LargeBlocks, EmbeddedData, Props bool
	// ResumeToken resumes an interrupted send (-t). It is exclusive with
	// all the other fields: the token carries the names and the flags.
	ResumeToken string
}

// ValidatedSend is a SendOptions that passed Validate. Its fields are
// unexported, so Send and SendSize cannot be called with unchecked options.
type ValidatedSend struct {
	o SendOptions
}

// Options returns a copy of the validated options.
func (v ValidatedSend) Options() SendOptions { return v.o }

// reResumeToken is the shape of a receive_resume_token:
// version-checksum-length-payload, all hexadecimal.
var reResumeToken = regexp.MustCompile(`^[0-9]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$`)

// maxResumeTokenLen bounds a token (real ones are a few hundred bytes).
const maxResumeTokenLen = 64 << 10

// ValidateResumeToken checks that token has the shape of a
// receive_resume_token (it does not decode it).
func ValidateResumeToken(token string) error {
	if len(token) > maxResumeTokenLen || !reResumeToken.MatchString(token) {
		return fmt.Errorf("zfs send: malformed resume token %q: %w", shorten(token, 40), ErrResumeTokenCorrupt)
	}
	return nil
}

// Validate checks the options: names valid, From and To of the same
// dataset, From older-than-To is left to zfs, -I only from a snapshot, a
// resume token alone.
func (o SendOptions) Validate() (ValidatedSend, error) {
	if o.ResumeToken != "" {
		if o.From != "" || o.To != "" || o.Intermediates || o.Props ||
			o.Raw || o.Compressed || o.LargeBlocks || o.EmbeddedData {
			return ValidatedSend{}, errors.New("zfs send: a resume token excludes From, To and flags (the token carries them)")
		}
		if err := ValidateResumeToken(o.ResumeToken); err != nil {
			return ValidatedSend{}, err
		}
		return ValidatedSend{o: o}, nil
	}
	if o.To == "" {
		return ValidatedSend{}, errors.New("zfs send: no snapshot to send (To)")
	}
	if err := ValidateSnapshot(o.To); err != nil {
		return ValidatedSend{}, fmt.Errorf("zfs send: To: %w", err)
	}
	if o.From == "" {
		if o.Intermediates {
			return ValidatedSend{}, errors.New("zfs send: Intermediates (-I) needs From")
		}
		return ValidatedSend{o: o}, nil
	}
	if err := ValidateVersion(o.From); err != nil {
		return ValidatedSend{}, fmt.Errorf("zfs send: From: %w", err)
	}
	fromDS, sep, _ := SplitName(o.From)
	toDS, _, _ := SplitName(o.To)
	if fromDS != toDS {
		return ValidatedSend{}, fmt.Errorf("zfs send: From %s and To %s are not of the same dataset", o.From, o.To)
	}
	if o.From == o.To {
		return ValidatedSend{}, fmt.Errorf("zfs send: From and To are both %s", o.To)
	}
	if sep == '#' && o.Intermediates {
		return ValidatedSend{}, fmt.Errorf("zfs send: -I is invalid from a bookmark (%s)", o.From)
	}
	return ValidatedSend{o: o}, nil
}

// args builds the send arguments after "send" and any dry-run flags.
func (v ValidatedSend) args() []string {
	o := v.o
	if o.ResumeToken != "" {
		return []string{"-t", o.ResumeToken}
	}
	var args []string
	for _, f := range []struct {
		on   bool
		flag string
	}{{o.Raw, "-w"}, {o.Compressed, "-c"}, {o.LargeBlocks, "-L"}, {o.EmbeddedData, "-e"}, {o.Props, "-p"}} {
		if f.on {
			args = append(args, f.flag)
		}
	}
	if o.From != "" {
		if o.Intermediates {
			args = append(args, "-I", o.From)
		} else {
			args = append(args, "-i", o.From)
		}
	}
	return append(args, o.To)
}

// names returns the names a send error may refer to.
func (v ValidatedSend) names() []string {
	var n []string
	for _, s := range []string{v.o.From, v.o.To} {
		if s != "" {
			n = append(n, s)
			ds, _, _ := SplitName(s)
			n = append(n, ds)
		}
	}
	return n
}

// Send rules: stale and corrupt tokens (the names they print come from the
// token, so they are not checked).
var (
	ruleTokenStale   = mustRule(`(?m)^cannot resume send: (?:'[^'\n]+' used in the initial send no longer exists|'[^'\n]+' is no longer the same snapshot used in the initial send|incremental source 0x[0-9a-f]+ no longer exists)$`, ErrResumeTokenStale)
	ruleTokenCorrupt = mustRule(`(?m)^cannot resume send: resume token is corrupt(?: \([^)\n]+\))?$`, ErrResumeTokenCorrupt)
)

var sendRules = []rule{ruleTokenStale, ruleTokenCorrupt}

// Send starts `zfs send` and returns its stream. The stream owns the
// process: reading it to the end waits for the process and, when zfs
// failed, returns the typed error (with zfs's stderr) instead of io.EOF, so
// a truncated stream never looks complete; Close kills the process if it
// still runs, closes the pipe and waits. The caller must Close the stream.
func (c *CLI) Send(ctx context.Context, s ValidatedSend) (io.ReadCloser, error) {
	if s.o.To == "" && s.o.ResumeToken == "" {
		return nil, errors.New("zfs send: options were not validated")
	}
	argv := c.argv(append([]string{"send"}, s.args()...)...)
	start := time.Now()
	proc, err := c.runner.Start(ctx, Cmd{Argv: argv, Env: c.env})
	if err != nil {
		err = &Error{Args: argv, ExitCode: -1, Err: err}
		c.traceCall(argv, start, err)
		return nil, fmt.Errorf("zfs send: %w", err)
	}
	return &sendStream{c: c, argv: argv, start: start, proc: proc, r: proc.Stdout(), names: s.names()}, nil
}

// sendStream is the io.ReadCloser returned by Send.
type sendStream struct {
	c     *CLI
	argv  []string
	start time.Time
	proc  Process
	r     io.ReadCloser
	names []string

	mu      sync.Mutex
	done    bool
	doneErr error // the process's error; nil when it succeeded
}

// File returns the pipe zfs send writes into, for a caller that moves the
// data out of it itself (serve splices it into its output), or nil when
// the runner's output is no file. Such a caller still reads the end with
// Read, whose io.EOF or error says how zfs send ended.
func (s *sendStream) File() *os.File {
	f, _ := s.r.(*os.File)
	return f
}

func (s *sendStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	done, derr := s.done, s.doneErr
	s.mu.Unlock()
	if done {
		if derr != nil {
			return 0, derr
		}
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		if werr := s.finish(false); werr != nil {
			return n, werr
		}
		return n, io.EOF
	default:
		// The pipe failed: the process's own failure, if any, is the
		// better explanation.
		if werr := s.finish(true); werr != nil {
			return n, werr
		}
		return n, fmt.Errorf("zfs send: reading stream: %w", err)
	}
}

// finish waits for the process (killing it first when kill is set) and
// records its outcome once.
func (s *sendStream) finish(kill bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.doneErr
	}
	s.done = true
	if kill {
		_ = s.proc.Kill()
	}
	_ = s.r.Close()
	res, err := s.proc.Wait()
	var perr error
	switch {
	case err != nil:
		perr = &Error{Args: s.argv, Stderr: boundStderr(string(res.Stderr), maxErrStderr), ExitCode: res.ExitCode, Err: err}
	case res.ExitCode != 0:
		perr = &Error{Args: s.argv, Stderr: boundStderr(string(res.Stderr), maxErrStderr), ExitCode: res.ExitCode}
	}
	s.c.traceCall(s.argv, s.start, perr)
	if perr != nil {
		s.doneErr = fmt.Errorf("zfs send: %w", classify(perr, s.names, sendRules...))
		if kill && res.ExitCode < 0 && err != nil && !isContextErr(err) {
			// Killed by us: not a failure of zfs.
			s.doneErr = nil
		}
	}
	return s.doneErr
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Close kills the process if it is still running, closes the pipe and
// waits. It returns the process's error when zfs failed on its own (exit
// status > 0), nil when it succeeded or was killed by Close.
func (s *sendStream) Close() error {
	return s.finish(true)
}

// SendSize estimates the size in bytes of a send with `zfs send -n -P`
// (the "size" line of the parsable dry-run output).
func (c *CLI) SendSize(ctx context.Context, s ValidatedSend) (int64, error) {
	if s.o.To == "" && s.o.ResumeToken == "" {
		return 0, errors.New("zfs send: options were not validated")
	}
	res, err := c.exec(ctx, c.argv(append([]string{"send", "-n", "-P"}, s.args()...)...), nil)
	if err != nil {
		return 0, fmt.Errorf("zfs send -n: %w", classify(err, s.names(), sendRules...))
	}
	size, ok := parseSendSize(string(res.Stdout))
	if !ok {
		size, ok = parseSendSize(string(res.Stderr))
	}
	if !ok {
		return 0, fmt.Errorf("zfs send -n -P: no size line in output %q", shorten(string(res.Stdout)+string(res.Stderr), 200))
	}
	return size, nil
}

// parseSendSize finds the "size\tN" line of `zfs send -n -P` output.
func parseSendSize(out string) (int64, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "size" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil && n >= 0 {
				return n, true
			}
		}
	}
	return 0, false
}
