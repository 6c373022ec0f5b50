package cmd

import (
	"fmt"
	stdsync "sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"

	zsync "github.com/zsync-dev/zsync/sync"
)

// progress shows one line per running stream on a terminal (bytes, rate,
// ETA from the zfs send -nP estimate) and logs decisions. Not on a terminal
// it only logs.
type progress struct {
	e     *env
	log   zerolog.Logger
	tty   bool
	mu    stdsync.Mutex
	start map[string]time.Time
	last  time.Time
}

func newProgress(e *env, log zerolog.Logger) *progress {
	return &progress{e: e, log: log, tty: isTerminal(e.stderr), start: map[string]time.Time{}}
}

func (p *progress) event(ev zsync.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.log.With().Str("dataset", ev.Dataset).Logger()
	switch ev.Kind {
	case "progress":
		if !p.tty {
			return
		}
		if time.Since(p.last) < 200*time.Millisecond && ev.Bytes != ev.Total {
			return
		}
		p.last = time.Now()
		t0 := p.start[ev.Dataset]
		secs := time.Since(t0).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(ev.Bytes) / secs
		}
		line := fmt.Sprintf("%s: %s", ev.Dataset, ibytes(ev.Bytes))
		if ev.Total > 0 {
			line += " / " + ibytes(ev.Total)
			if rate > 0 && ev.Total > ev.Bytes {
				line += fmt.Sprintf(" ETA %s", time.Duration(float64(ev.Total-ev.Bytes)/rate*float64(time.Second)).Round(time.Second))
			}
		}
		line += fmt.Sprintf(" %s/s", ibytes(int64(rate)))
		fmt.Fprintf(p.e.stderr, "\r\033[K%s", line)
	case "step":
		p.start[ev.Dataset] = time.Now()
		p.clearLine()
		l.Info().Str("target", ev.Target).Int64("estimate", ev.Total).Msg(ev.Message)
	case "abort-resume", "rotate", "warning":
		p.clearLine()
		l.Warn().Str("target", ev.Target).Msg(ev.Message)
	case "dry-run":
		l.Debug().Msg(ev.Message)
	default:
		p.clearLine()
		l.Info().Str("target", ev.Target).Msg(ev.Message)
	}
}

func (p *progress) clearLine() {
	if p.tty && !p.last.IsZero() {
		fmt.Fprint(p.e.stderr, "\r\033[K")
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLine()
}

// ibytes prints a size in IEC units: "0 B", "3.0 MiB", "12 GiB".
func ibytes(n int64) string {
	return humanize.IBytes(uint64(max(n, 0)))
}
