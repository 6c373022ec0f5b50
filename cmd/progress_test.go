package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	zsync "github.com/zsync-dev/zsync/sync"
)

// fakeClock is the progress clock of a test: it moves only when told.
type fakeClock struct{ ns atomic.Int64 }

var clockStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time      { return clockStart.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) set(d time.Duration) { c.ns.Store(int64(d)) }

// lockedBuffer is a fake terminal: mpb writes from its own goroutine.
type lockedBuffer struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const mib = 1 << 20

// driveTwoStreams runs the events of a job with two concurrent streams:
// tank/a without an estimate (20 MiB, done at 4s), tank/b estimated at
// 10 MiB that sends 16 MiB (done at 8s), a warning logged while both bars
// are live, and a zfs trace logged through e.log. drawn waits until a bar
// shows its parts (a no-op off a terminal).
func driveTwoStreams(p *progress, clock *fakeClock, drawn func(parts ...string)) {
	ev := func(ds, kind string, bytes, total int64) zsync.Event {
		return zsync.Event{Dataset: "tank/" + ds, Target: "backup/" + ds, Kind: kind, Bytes: bytes, Total: total, Message: "sending tank/" + ds + "@s1 to backup/" + ds}
	}
	clock.set(0)
	p.event(ev("a", "step", 0, 0))
	p.event(ev("b", "step", 0, 10*mib))
	var wg stdsync.WaitGroup
	wg.Go(func() {
		for _, n := range []int64{4, 8, 12} {
			p.event(ev("a", "progress", n*mib, 0))
		}
	})
	wg.Go(func() {
		for _, n := range []int64{4, 8} {
			p.event(ev("b", "progress", n*mib, 10*mib))
		}
	})
	wg.Wait()
	clock.set(2 * time.Second)
	p.event(zsync.Event{Dataset: "tank/b", Target: "backup/b", Kind: "warning", Message: "cannot release a stale hold"})
	p.e.log.Debug().Strs("argv", []string{"zfs", "list"}).Msg("zfs")
	drawn("tank/a -> backup/a", "12 MiB", "6.0 MiB/s") // live, no estimate: bytes and rate
	drawn("tank/b -> backup/b", "8.0 MiB / 10 MiB", "80%", "ETA 1s")
	p.event(ev("b", "progress", 12*mib, 10*mib)) // past its estimate
	p.event(ev("a", "progress", 3*mib, 0))       // out of order: ignored
	clock.set(3 * time.Second)
	drawn("tank/b -> backup/b", "12 MiB / 12 MiB", "100%", "4.0 MiB/s") // the total grew
	clock.set(4 * time.Second)
	final := ev("a", "progress", 20*mib, 20*mib)
	final.Done = true
	p.event(final)
	p.event(ev("b", "progress", 16*mib, 10*mib))
	clock.set(8 * time.Second)
	final = ev("b", "progress", 16*mib, 16*mib)
	final.Done = true
	p.event(final)
	drawn("tank/b -> backup/b", "16 MiB", "2.0 MiB/s", "done in 8s")
	p.done()
}

var (
	ansi       = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	cursorMove = regexp.MustCompile(`\x1b\[[0-9]*[AJ]`)
)

// screenLines returns the lines written, escape sequences removed.
func screenLines(out string) []string {
	return strings.Split(ansi.ReplaceAllString(out, ""), "\n")
}

// hasLine reports whether a line of out has all parts.
func hasLine(out string, parts ...string) bool {
	for _, l := range screenLines(out) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// waitDrawn returns a drawn func for driveTwoStreams: it waits for a line
// with the parts on term (redrawn every refreshRate), 10s at most.
func waitDrawn(t *testing.T, term *lockedBuffer) func(parts ...string) {
	return func(parts ...string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !hasLine(term.String(), parts...); time.Sleep(refreshRate / 3) {
			if time.Now().After(deadline) {
				t.Fatalf("never drawn: a line with %q in\n%s", parts, term.String())
			}
		}
	}
}

func TestProgressBarsOnATerminal(t *testing.T) {
	term := &lockedBuffer{}
	e := &env{stderr: term, logFormat: "auto"}
	// as setupLogging on a terminal, at debug; progress routes it above the bars
	e.log = zerolog.New(io.Discard).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	clock := &fakeClock{}
	log := e.log.Level(zerolog.InfoLevel).With().Str("job", "home").Logger()
	p := (&progress{e: e, log: log, out: term, now: clock.now,
		isTerminal: func(w io.Writer) bool { return w == term },
		opts:       []mpb.ContainerOption{mpb.WithWidth(120)}}).start()
	driveTwoStreams(p, clock, waitDrawn(t, term))
	out := term.String()
	t.Logf("rendered (escapes shown as ⎋):\n%s", strings.ReplaceAll(out, "\x1b", "⎋"))

	if !strings.Contains(out, "\x1b[") {
		t.Errorf("no cursor movement: the bars were not drawn as on a terminal")
	}
	lines := screenLines(out)
	for _, want := range [][]string{
		{"tank/a -> backup/a", "12 MiB", "6.0 MiB/s"},                  // live, no estimate: bytes and rate
		{"tank/b -> backup/b", "8.0 MiB / 10 MiB", "80%", "ETA 1s"},    // live, estimated
		{"tank/b -> backup/b", "12 MiB / 12 MiB", "100%", "4.0 MiB/s"}, // past its estimate: the total grew
		{"tank/a -> backup/a", "20 MiB", "5.0 MiB/s", "done in 4s"},
		{"tank/b -> backup/b", "16 MiB", "2.0 MiB/s", "done in 8s"},
		{"WRN", "cannot release a stale hold", "dataset=tank/b", "job=home"},
		{"DBG", "zfs", "argv="},
		{"sent 2 datasets: 36 MiB in 8s, 4.5 MiB/s"},
	} {
		if !hasLine(out, want...) {
			t.Errorf("no line with %q", want)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "%") && !strings.Contains(l, "tank/b") {
			t.Errorf("a percentage for the stream without an estimate: %q", l)
		}
		if strings.Contains(l, "WRN") && strings.Contains(l, "MiB") {
			t.Errorf("a log line and a bar share a line: %q", l)
		}
	}
	if i, j := strings.LastIndex(out, "done in 8s"), strings.LastIndex(out, "sent 2 datasets"); i < 0 || j < i || strings.Contains(out[j:], "\x1b") {
		t.Errorf("the summary is not the last, plain line")
	}
	if p.live.bars != nil {
		t.Errorf("log lines still go to the container after done")
	}
	// logging goes straight to stderr again
	p.log.Info().Msg("after")
	if after := term.String()[len(out):]; !strings.Contains(after, "after") || cursorMove.MatchString(after) {
		t.Errorf("a log line after done did not go straight to stderr: %q", term.String()[len(out):])
	}
}

func TestProgressOffATerminal(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stderr: &stderr, logFormat: "auto"}
	e.log = zerolog.New(&stderr).Level(zerolog.InfoLevel) // as setupLogging off a terminal, at info
	clock := &fakeClock{}
	p := newProgress(e, e.log.With().Str("job", "home").Logger())
	if p.live != nil {
		t.Fatal("bars for a bytes.Buffer")
	}
	p.now = clock.now
	driveTwoStreams(p, clock, func(...string) {})
	out := stderr.String()
	if strings.ContainsAny(out, "\r\x1b") {
		t.Errorf("escape codes off a terminal:\n%q", out)
	}
	var summary map[string]any
	for l := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", l)
		}
		if m["level"] == "debug" {
			t.Errorf("a debug line at info: %q", l)
		}
		if strings.HasPrefix(m["message"].(string), "sent ") {
			summary = m
		}
	}
	if summary == nil {
		t.Fatalf("no summary line in\n%s", out)
	}
	if summary["message"] != "sent 2 datasets: 36 MiB in 8s, 4.5 MiB/s" || summary["level"] != "info" ||
		summary["bytes"] != float64(36*mib) || summary["datasets"] != float64(2) || summary["job"] != "home" {
		t.Errorf("summary line %v", summary)
	}
	if strings.Count(out, "\n") != 4 { // 2 steps, the warning, the summary (the zfs trace is at debug)
		t.Errorf("want 4 log lines, got\n%s", out)
	}
}

// A job that sent nothing (up to date, dry run) has no summary and no bars.
func TestProgressNothingSent(t *testing.T) {
	term := &lockedBuffer{}
	e := &env{stderr: term, log: zerolog.Nop()}
	p := (&progress{e: e, log: zerolog.New(term).Level(zerolog.InfoLevel), out: term, now: time.Now,
		isTerminal: func(io.Writer) bool { return true }}).start()
	p.event(zsync.Event{Dataset: "tank/a", Kind: "dry-run", Message: "would send"})
	p.done()
	if out := term.String(); out != "" {
		t.Errorf("output %q", out)
	}
}

// A failed stream and one still running when the job ends count as failed.
func TestProgressFailedStreams(t *testing.T) {
	term := &lockedBuffer{}
	e := &env{stderr: term, log: zerolog.Nop()}
	clock := &fakeClock{}
	p := (&progress{e: e, log: zerolog.Nop(), out: term, now: clock.now,
		isTerminal: func(io.Writer) bool { return true }, opts: []mpb.ContainerOption{mpb.WithWidth(100)}}).start()
	p.event(zsync.Event{Dataset: "tank/a", Kind: "step", Total: 8 * mib})
	p.event(zsync.Event{Dataset: "tank/a", Kind: "progress", Bytes: 4 * mib, Total: 8 * mib})
	p.event(zsync.Event{Dataset: "tank/b", Kind: "step"})
	clock.set(3 * time.Second)
	p.event(zsync.Event{Dataset: "tank/a", Kind: "progress", Bytes: 4 * mib, Total: 8 * mib, Done: true, Err: errors.New("receive failed")})
	p.event(zsync.Event{Dataset: "tank/c", Kind: "step"})
	p.event(zsync.Event{Dataset: "tank/c", Kind: "progress", Done: true, Bytes: 1024, Total: 1024})
	clock.set(4 * time.Second)
	p.done() // tank/b never ended: interrupted
	out := strings.Join(screenLines(term.String()), "\n")
	for _, want := range []string{"tank/a", "4.0 MiB / 8.0 MiB", "failed after 3s", "tank/b", "failed after 4s", "tank/c", "1.0 KiB", "done in 0s",
		"sent 3 datasets (2 failed): 4.0 MiB in 4s, 1.0 MiB/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	ds := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	for _, tc := range []struct {
		s    summary
		want string
	}{
		{summary{streams: 1, datasets: ds("a"), bytes: 3 * mib, last: clockStart.Add(1500 * time.Millisecond)}, "sent 1 dataset: 3.0 MiB in 2s, 2.0 MiB/s"},
		{summary{streams: 3, failed: 1, datasets: ds("a", "b"), bytes: 5 << 30, last: clockStart.Add(time.Minute)}, "sent 2 datasets (3 streams, 1 failed): 5.0 GiB in 1m0s, 85 MiB/s"},
		{summary{streams: 1, datasets: ds("a"), bytes: 100}, "sent 1 dataset: 100 B in 0s"},
	} {
		tc.s.first = clockStart
		if tc.s.last.IsZero() {
			tc.s.last = clockStart
		}
		if got := tc.s.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestStreamColumns(t *testing.T) {
	start := clockStart
	est := &stream{start: start, estimated: true}
	none := &stream{start: start}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	st := func(cur, total int64) decor.Statistics { return decor.Statistics{Current: cur, Total: total} }
	for _, tc := range []struct {
		name                          string
		s                             *stream
		st                            decor.Statistics
		now                           time.Duration
		counts, percent, rate, status string
	}{
		{"estimated", est, st(25*mib, 100*mib), 5 * time.Second, "25 MiB / 100 MiB", "25%", "5.0 MiB/s", "ETA 15s"},
		{"at its estimate", est, st(100*mib, 100*mib), 5 * time.Second, "100 MiB / 100 MiB", "100%", "20 MiB/s", ""},
		{"first moments", est, st(1*mib, 100*mib), 100 * time.Millisecond, "1.0 MiB / 100 MiB", "1%", "", ""},
		{"no estimate", none, st(7*mib, 0), 7 * time.Second, "7.0 MiB", "", "1.0 MiB/s", ""},
		{"done", est, decor.Statistics{Current: 3 * mib, Total: 3 * mib, Completed: true}, 3 * time.Second, "3.0 MiB", "", "1.0 MiB/s", "done in 3s"},
		{"done fast", none, decor.Statistics{Completed: true}, 200 * time.Millisecond, "0 B", "", "0 B/s", "done in 200ms"},
		{"failed", est, decor.Statistics{Current: 1 * mib, Total: 3 * mib, Aborted: true}, 90 * time.Second, "1.0 MiB / 3.0 MiB", "33%", "11 KiB/s", "failed after 1m30s"},
	} {
		now := at(tc.now)
		got := []string{tc.s.counts(tc.st), tc.s.percent(tc.st), tc.s.rate(tc.st, now), tc.s.status(tc.st, now)}
		want := []string{tc.counts, tc.percent, tc.rate, tc.status}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got %q, want %q", tc.name, got, want)
		}
	}
}

func TestStreamLabel(t *testing.T) {
	long := "tank/" + strings.Repeat("x", 50)
	for _, tc := range []struct{ ds, target, want string }{
		{"tank/a", "backup/a", "tank/a -> backup/a"},
		{"tank/home/alice", "backup/laptop/tank/home/alice", "tank/home/alice"},
		{"tank/a", "", "tank/a"},
		{long, "backup/x", "…" + long[len(long)-39:]},
	} {
		if got := streamLabel(tc.ds, tc.target); got != tc.want {
			t.Errorf("streamLabel(%q, %q) = %q, want %q", tc.ds, tc.target, got, tc.want)
		}
	}
}

func TestIBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", -5: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 * mib: "3.0 MiB", 80 * mib: "80 MiB", 5 << 40: "5.0 TiB"} {
		if got := ibytes(n); got != want {
			t.Errorf("ibytes(%d) = %q, want %q", n, got, want)
		}
	}
}
