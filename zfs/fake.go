package zfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FakeResponse is what a FakeRunner answers to one invocation.
type FakeResponse struct {
	Stdout   string
	Stderr   string
	ExitCode int
	// Err, when set, is returned as the Runner's error (a process that could
	// not run, or was killed).
	Err error
}

// FakeCall records one invocation seen by a FakeRunner.
type FakeCall struct {
	Argv  []string
	Env   []string
	Stdin []byte // what Run read from Cmd.Stdin
}

// FakeRunner is a Runner for tests that replays recorded outputs keyed by
// argv: Expect (or a script loaded with Load) queues responses for an argv,
// each call consumes the next one. A call without a queued response is
// answered by Fallback when set, else it fails with an error naming the
// argv. It is safe for concurrent use.
type FakeRunner struct {
	// Fallback answers calls that have no queued response; ok=false makes
	// the call fail as unexpected.
	Fallback func(c Cmd) (r FakeResponse, ok bool)

	mu        sync.Mutex
	responses map[string][]FakeResponse
	order     []string
	calls     []FakeCall
}

var _ Runner = (*FakeRunner)(nil)

// NewFakeRunner returns an empty FakeRunner.
func NewFakeRunner() *FakeRunner {
	return &FakeRunner{responses: map[string][]FakeResponse{}}
}

func argvKey(argv []string) string { return strings.Join(argv, "\x00") }

// Expect queues r as the answer to the next call with exactly argv.
func (f *FakeRunner) Expect(argv []string, r FakeResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.responses == nil {
		f.responses = map[string][]FakeResponse{}
	}
	k := argvKey(argv)
	if _, ok := f.responses[k]; !ok {
		f.order = append(f.order, k)
	}
	f.responses[k] = append(f.responses[k], r)
}

// Calls returns the invocations seen so far, in order.
func (f *FakeRunner) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeCall(nil), f.calls...)
}

// Pending returns the argvs that still have queued responses, in the order
// they were first expected. A test ends with it empty.
func (f *FakeRunner) Pending() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, k := range f.order {
		for range f.responses[k] {
			out = append(out, strings.Split(k, "\x00"))
		}
	}
	return out
}

func (f *FakeRunner) answer(c Cmd, stdin []byte) (FakeResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, FakeCall{Argv: append([]string(nil), c.Argv...), Env: append([]string(nil), c.Env...), Stdin: stdin})
	k := argvKey(c.Argv)
	q := f.responses[k]
	if len(q) > 0 {
		f.responses[k] = q[1:]
		if len(q) == 1 {
			delete(f.responses, k)
		}
		f.mu.Unlock()
		return q[0], nil
	}
	fb := f.Fallback
	f.mu.Unlock()
	if fb != nil {
		if r, ok := fb(c); ok {
			return r, nil
		}
	}
	return FakeResponse{}, fmt.Errorf("fake zfs runner: unexpected command %s", quoteArgv(c.Argv))
}

// Run implements Runner: it reads Cmd.Stdin to the end (recording it) and
// answers with the queued response.
func (f *FakeRunner) Run(ctx context.Context, c Cmd) (Result, error) {
	var stdin []byte
	if c.Stdin != nil {
		var err error
		stdin, err = io.ReadAll(c.Stdin)
		if err != nil {
			// Like a real zfs recv seeing a truncated stream.
			r, aerr := f.answer(c, stdin)
			if aerr != nil {
				return Result{ExitCode: -1}, aerr
			}
			return Result{Stdout: []byte(r.Stdout), Stderr: []byte(r.Stderr), ExitCode: max(r.ExitCode, 1)}, r.Err
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, err
	}
	r, err := f.answer(c, stdin)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	return Result{Stdout: []byte(r.Stdout), Stderr: []byte(r.Stderr), ExitCode: r.ExitCode}, r.Err
}

// Start implements Runner: the queued response's Stdout is streamed, and
// Wait reports its Stderr and ExitCode.
func (f *FakeRunner) Start(ctx context.Context, c Cmd) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := f.answer(c, nil)
	if err != nil {
		return nil, err
	}
	return &fakeProcess{r: r, out: io.NopCloser(strings.NewReader(r.Stdout))}, nil
}

type fakeProcess struct {
	mu     sync.Mutex
	r      FakeResponse
	out    io.ReadCloser
	killed bool
}

func (p *fakeProcess) Stdout() io.ReadCloser { return p.out }

func (p *fakeProcess) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	return nil
}

func (p *fakeProcess) Wait() (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed && p.r.ExitCode == 0 && p.r.Err == nil {
		return Result{ExitCode: -1}, fmt.Errorf("signal: killed")
	}
	return Result{Stderr: []byte(p.r.Stderr), ExitCode: p.r.ExitCode}, p.r.Err
}

// Load reads a script of recorded invocations (see LoadScript) from a file.
func (f *FakeRunner) Load(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("fake zfs runner: %w", err)
	}
	if err := f.LoadScript(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadScript reads recorded invocations and queues them. Format, one
// directive per line:
//
//	# comment (also blank lines, outside of output)
//	$ zfs list -H "tank/my fs"   argv; "..." is a Go-quoted argument
//	> text                       one line of stdout ("text\n"; ">" alone: empty line)
//	! text                       one line of stderr
//	? 1                          exit code (default 0)
//
// Lines after a "$" line belong to it until the next "$" line. Output
// lines keep their text verbatim, tabs included.
func (f *FakeRunner) LoadScript(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var (
		argv []string
		resp FakeResponse
		line int
	)
	flush := func() {
		if argv != nil {
			f.Expect(argv, resp)
		}
		argv, resp = nil, FakeResponse{}
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "$ "):
			flush()
			a, err := splitScriptArgv(text[2:])
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			argv = a
		case text == ">" || strings.HasPrefix(text, "> "), text == "!" || strings.HasPrefix(text, "! "):
			if argv == nil {
				return fmt.Errorf("line %d: output before any $ line", line)
			}
			body := ""
			if len(text) > 2 {
				body = text[2:]
			}
			if text[0] == '>' {
				resp.Stdout += body + "\n"
			} else {
				resp.Stderr += body + "\n"
			}
		case strings.HasPrefix(text, "? "):
			if argv == nil {
				return fmt.Errorf("line %d: exit code before any $ line", line)
			}
			n, err := strconv.Atoi(strings.TrimSpace(text[2:]))
			if err != nil {
				return fmt.Errorf("line %d: exit code: %w", line, err)
			}
			resp.ExitCode = n
		case strings.TrimSpace(text) == "", strings.HasPrefix(text, "#"):
		default:
			return fmt.Errorf("line %d: unknown directive %q", line, text)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	flush()
	return nil
}

// splitScriptArgv splits on spaces; arguments starting with '"' are Go
// quoted strings.
func splitScriptArgv(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted argument in %q: %w", s, err)
			}
			u, _ := strconv.Unquote(q)
			out = append(out, u)
			s = s[len(q):]
			if s != "" && s[0] != ' ' {
				return nil, fmt.Errorf("no space after quoted argument in %q", s)
			}
			continue
		}
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty argv")
	}
	return out, nil
}
