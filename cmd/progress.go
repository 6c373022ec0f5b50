package cmd

import (
	"fmt"
	"io"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	zsync "github.com/zsync-dev/zsync/sync"
)

// progress logs a replication job's decisions and shows its streams.
//
// On a terminal (isTerminal(e.stderr)) every running stream has a live bar,
// drawn by mpb, which renders concurrent bars and redraws them in place:
// the label (source dataset, and its target when the two are short), bytes
// received and the zfs send -nP estimate, the percentage, the average rate
// and the ETA. A stream without an estimate shows bytes and rate only. A
// stream that outgrows its estimate (a resumed or badly estimated stream)
// grows the bar's total: the bar never goes back. A finished stream's bar is
// printed once more, as a final line above the live ones ("done in 12s", or
// "failed after 3s"). While bars are shown every log line goes through the
// container, which prints it above the bars: a log line never tears them.
// When the job is over one plain summary line follows (datasets, bytes,
// time, average rate).
//
// Off a terminal there are no bars and no escape codes: the log lines are
// as they always were, and the summary is one more info line (so it shows
// with --log-level info, and cron, at the default warn, stays quiet).
type progress struct {
	e   *env
	log zerolog.Logger
	out io.Writer // where bars go: e.stderr
	// isTerminal decides whether out gets bars; now is the clock of rates
	// and ETAs; opts are more container options (tests: a fixed width).
	isTerminal func(io.Writer) bool
	now        func() time.Time
	opts       []mpb.ContainerOption

	live       *liveWriter // log lines while bars are shown; nil off a terminal
	restoreLog func()

	mu      stdsync.Mutex
	bars    *mpb.Progress // from the first stream on
	refresh chan any      // bars' redraw ticks
	stop    chan struct{} // ends the ticker
	shut    chan any      // closed by mpb once the container is shut down
	streams map[string]*stream
	sum     summary
}

// stream is one send|receive being shown.
type stream struct {
	label     string
	start     time.Time
	estimated bool  // zfs send -nP gave a size
	total     int64 // the estimate, grown when the stream outgrows it
	bytes     int64
	bar       *mpb.Bar // nil off a terminal
	// end is when the stream ended: written by the event's goroutine, read
	// by the bar's (its decorators).
	end atomic.Pointer[time.Time]
}

// summary is what the job's streams did, for its last line.
type summary struct {
	streams, failed int
	datasets        map[string]bool
	bytes           int64
	first, last     time.Time // first stream's start, last stream's end
}

// refreshRate is how often bars are redrawn (mpb's default).
const refreshRate = 150 * time.Millisecond

// newProgress returns the progress of a job logging to log, with bars when
// e.stderr is a terminal. done ends it.
func newProgress(e *env, log zerolog.Logger) *progress {
	return (&progress{e: e, log: log, out: e.stderr, isTerminal: isTerminal, now: time.Now}).start()
}

// start decides about bars and, with bars, routes the job's logger and
// e.log (zfs traces, SSH messages) through the bars' container until done.
func (p *progress) start() *progress {
	p.streams = map[string]*stream{}
	p.sum.datasets = map[string]bool{}
	if !p.isTerminal(p.out) {
		return p
	}
	p.live = &liveWriter{out: p.out}
	p.log = p.log.Output(p.logWriter(p.live))
	saved := p.e.log
	p.e.log = saved.Output(p.logWriter(p.live))
	p.restoreLog = func() { p.e.log = saved }
	return p
}

// logWriter formats log lines as setupLogging (log.go) does on a terminal:
// the writer log.go gives the chosen --log-format on a terminal.
func (p *progress) logWriter(w io.Writer) io.Writer {
	// bars are drawn only on a terminal: the format's terminal writer
	lw, err := logWriter(p.e.logFormat, toTerminal, w)
	if err != nil {
		return w
	}
	return lw
}

// event is the job's Events callback; the engine calls it from every worker.
func (p *progress) event(ev zsync.Event) {
	l := p.log.With().Str("dataset", ev.Dataset).Logger()
	switch ev.Kind {
	case "progress":
		p.progress(ev)
		if ev.Done && ev.Err != nil {
			l.Debug().Str("target", ev.Target).Err(ev.Err).Int64("bytes", ev.Bytes).Msg("stream failed")
		}
	case "step":
		e := l.Info().Str("target", ev.Target)
		if ev.Total > 0 {
			e = e.Int64("estimate", ev.Total)
		}
		e.Msg(ev.Message)
		p.progress(ev)
	case "abort-resume", "rotate", "warning":
		l.Warn().Str("target", ev.Target).Msg(ev.Message)
	case "dry-run", "listing":
		l.Debug().Msg(ev.Message)
	default:
		l.Info().Str("target", ev.Target).Msg(ev.Message)
	}
}

// progress starts, moves or ends a stream ("step" and "progress" events).
func (p *progress) progress(ev zsync.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	s := p.streams[ev.Dataset]
	if ev.Kind == "step" && s != nil {
		p.end(ev.Dataset, s, now, false) // not told it ended: cannot say it failed
		s = nil
	}
	if s == nil {
		s = p.newStream(ev, now)
	}
	if ev.Bytes > s.bytes {
		s.bytes = ev.Bytes
	}
	if s.estimated && s.bytes > s.total {
		s.total = s.bytes
		if s.bar != nil {
			s.bar.SetTotal(s.total, false)
		}
	}
	if s.bar != nil {
		s.bar.SetCurrent(s.bytes)
	}
	if ev.Done {
		p.end(ev.Dataset, s, now, ev.Err == nil)
	}
}

// newStream starts showing a stream. Called with p.mu held.
func (p *progress) newStream(ev zsync.Event, now time.Time) *stream {
	s := &stream{label: streamLabel(ev.Dataset, ev.Target), start: now, estimated: ev.Total > 0, total: ev.Total}
	p.streams[ev.Dataset] = s
	p.sum.streams++
	p.sum.datasets[ev.Dataset] = true
	if p.sum.first.IsZero() {
		p.sum.first = now
	}
	if p.live == nil {
		return s
	}
	if p.bars == nil {
		p.refresh, p.stop, p.shut = make(chan any), make(chan struct{}), make(chan any)
		opts := append([]mpb.ContainerOption{
			mpb.WithOutput(p.out),
			// redraws on our ticks, and once more when done: what the
			// container still holds then is printed, not dropped
			mpb.WithManualRefresh(p.refresh),
			mpb.WithShutdownNotifier(p.shut),
			// isTerminal said yes: cursor moves even where mpb's own
			// check would say no (a Cygwin pty, a test's buffer)
			mpb.ForceTTY(),
			// a finished stream's bar is printed once as a final line
			// above the live ones, and drawn no more
			mpb.PopCompletedMode(),
		}, p.opts...)
		p.bars = mpb.New(opts...)
		p.live.attach(p.bars)
		go p.tick()
	}
	filler := mpb.BarStyle().ToBuilder()
	if !s.estimated {
		filler = mpb.SpinnerStyle().PositionLeft().ToBuilder()
	}
	s.bar = p.bars.New(0, filler, // 0: mpb completes the bar only when told to
		mpb.PrependDecorators(decor.Name(s.label, decor.WCSyncWidthR)),
		mpb.AppendDecorators(
			// columns aligned across bars, one space apart
			decor.Any(s.counts, decor.WCSyncWidth),
			decor.Any(s.percent, decor.WCSyncSpace),
			decor.Any(func(st decor.Statistics) string { return s.rate(st, p.now()) }, decor.WCSyncSpace),
			decor.Any(func(st decor.Statistics) string { return " " + s.status(st, p.now()) }, decor.WCSyncWidthR),
		),
		mpb.BarFillerOnComplete(""), // the final line: no frozen spinner or full bar
	)
	if s.estimated {
		s.bar.SetTotal(s.total, false)
	}
	return s
}

// end ends a stream: its bar completes (ok) or is left as it is, marked
// failed. Called with p.mu held.
func (p *progress) end(key string, s *stream, now time.Time, ok bool) {
	s.end.Store(&now)
	delete(p.streams, key)
	p.sum.bytes += s.bytes
	p.sum.last = now
	if !ok {
		p.sum.failed++
	}
	switch {
	case s.bar == nil:
	case ok:
		s.bar.SetTotal(s.bytes, true)
	default:
		s.bar.Abort(false)
	}
}

// tick asks for a redraw every refreshRate until done.
func (p *progress) tick() {
	t := time.NewTicker(refreshRate)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			select {
			case p.refresh <- nil:
			case <-p.stop:
				return
			case <-p.shut:
				return
			}
		case <-p.stop:
			return
		case <-p.shut:
			return
		}
	}
}

// done ends the display once the job has run: streams still open count as
// failed (the job was interrupted), the bars' last frames and any log line
// still queued in the container are printed, logging goes straight to
// stderr again, and the summary follows.
func (p *progress) done() {
	p.mu.Lock()
	now := p.now()
	for key, s := range p.streams {
		p.end(key, s, now, false)
	}
	bars := p.bars
	p.bars = nil
	p.mu.Unlock()
	if bars != nil {
		// log lines wait for the last frames, then go straight to stderr
		p.live.detach(func() {
			select {
			case p.refresh <- nil: // prints what the container still holds
			case <-p.shut: // mpb gave up (a render error)
			}
			close(p.stop)
			bars.Wait()
		})
	}
	if p.restoreLog != nil {
		p.restoreLog()
	}
	if p.sum.streams == 0 {
		return
	}
	line := p.sum.String()
	if p.live != nil {
		fmt.Fprintln(p.out, line)
		return
	}
	p.log.Info().Int("datasets", len(p.sum.datasets)).Int("streams", p.sum.streams).Int("failed", p.sum.failed).
		Int64("bytes", p.sum.bytes).Dur("duration", p.sum.last.Sub(p.sum.first)).Msg(line)
}

// String is the summary line: "sent 2 datasets (3 streams, 1 failed):
// 1.2 GiB in 1m3s, 19 MiB/s".
func (s summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d dataset%s", len(s.datasets), plural(len(s.datasets)))
	var notes []string
	if s.streams != len(s.datasets) {
		notes = append(notes, fmt.Sprintf("%d streams", s.streams))
	}
	if s.failed > 0 {
		notes = append(notes, fmt.Sprintf("%d failed", s.failed))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
	}
	d := max(s.last.Sub(s.first), 0)
	fmt.Fprintf(&b, ": %s in %s", ibytes(s.bytes), roundDuration(d))
	if d > 0 {
		fmt.Fprintf(&b, ", %s/s", ibytes(int64(float64(s.bytes)/d.Seconds())))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// streamLabel names a stream on its bar: the source dataset, and its
// target when both fit in 40 columns; a longer dataset keeps its end.
func streamLabel(dataset, target string) string {
	const width = 40
	if target != "" && len(dataset)+len(target)+4 <= width {
		return dataset + " -> " + target
	}
	if r := []rune(dataset); len(r) > width {
		return "…" + string(r[len(r)-width+1:])
	}
	return dataset
}

// The bar's columns after the bar itself. They run on the bar's goroutine:
// they read the mpb statistics, the stream's immutable fields and its end.

// counts is "bytes / estimate" while running with an estimate, else bytes.
func (s *stream) counts(st decor.Statistics) string {
	if s.estimated && !st.Completed {
		return ibytes(st.Current) + " / " + ibytes(st.Total)
	}
	return ibytes(st.Current)
}

// percent is the share of the estimate received, while running with one.
func (s *stream) percent(st decor.Statistics) string {
	if !s.estimated || st.Completed || st.Total <= 0 {
		return ""
	}
	return fmt.Sprintf("%d%%", min(100, st.Current*100/st.Total))
}

func (s *stream) elapsed(now time.Time) time.Duration {
	if end := s.end.Load(); end != nil {
		now = *end
	}
	return now.Sub(s.start)
}

// rate is the average rate since the stream started.
func (s *stream) rate(st decor.Statistics, now time.Time) string {
	d := s.elapsed(now)
	if d <= 0 || (d < time.Second && !st.Completed) {
		return "" // too early to tell
	}
	return ibytes(int64(float64(st.Current)/d.Seconds())) + "/s"
}

// status is the ETA while running, how it ended when it has.
func (s *stream) status(st decor.Statistics, now time.Time) string {
	d := s.elapsed(now)
	switch {
	case st.Completed:
		return "done in " + roundDuration(d).String()
	case st.Aborted:
		return "failed after " + roundDuration(d).String()
	case !s.estimated || st.Current <= 0 || st.Current >= st.Total || d < time.Second:
		return ""
	}
	eta := time.Duration(float64(st.Total-st.Current) / float64(st.Current) * float64(d))
	return "ETA " + (eta + time.Second - 1).Truncate(time.Second).String() // whole seconds, rounded up
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// ibytes prints a size in IEC units: "0 B", "3.0 MiB", "12 GiB".
func ibytes(n int64) string {
	return humanize.IBytes(uint64(max(n, 0)))
}

// liveWriter writes log lines above the bars while a container shows them,
// straight to out otherwise. Writes are serialized (one line per write:
// zerolog's writers).
type liveWriter struct {
	out  io.Writer
	mu   stdsync.Mutex
	bars *mpb.Progress
}

func (w *liveWriter) attach(bars *mpb.Progress) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bars = bars
}

// detach runs finish (the container's last frames), holding back log lines
// until it returns: they then go straight to out, below the final frames.
func (w *liveWriter) detach(finish func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	finish()
	w.bars = nil
}

// Write implements io.Writer.
func (w *liveWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bars != nil {
		if n, err := w.bars.Write(b); err == nil {
			return n, nil
		}
		// the container is gone (ErrDone): nothing was written
	}
	return w.out.Write(b)
}

// setupLogs is setupLogging (log.go), remembering the log format: progress
// formats the lines it routes above its bars the same way.
func (e *env) setupLogs(c *cli.Context) error {
	e.logFormat = globalString(c, "log-format")
	return setupLogging(c, e)
}
