package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// Limiter is a token bucket over bytes, safe for concurrent use. A frame
// larger than the bucket may take it into debt: the next frame then waits
// until the debt is paid, so the long-run rate holds whatever the frame size.
// One Limiter shared by several Clients (ClientOptions.Limiter) caps their
// streams together, as a job's bandwidth_limit does.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewLimiter returns a Limiter of rate bytes per second, nil (no limit)
// when rate <= 0.
func NewLimiter(rate int64) *Limiter {
	if rate <= 0 {
		return nil
	}
	burst := float64(rate) / 4 // a quarter of a second
	if burst < 64<<10 {
		burst = 64 << 10
	}
	return &Limiter{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// wait takes n bytes from the bucket, sleeping as long as the bucket is in
// debt. It returns early with the context's error.
func (l *Limiter) wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens += now.Sub(l.last).Seconds() * l.rate
	if l.tokens > l.burst {
		l.tokens = l.burst
	}
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// sendStream is the io.ReadCloser the client's Send returns: it yields the
// data frames of the far zfs send and, at the end frame, io.EOF or the far
// side's typed error.
type sendStream struct {
	c     *Client
	ctx   context.Context
	dec   *wire.Decoder
	rbuf  []byte
	unwat func() bool // detaches the context watchdog

	mu      sync.Mutex
	reading bool // a Read or WriteTo is in progress
	pending []byte
	got     int64 // stream bytes received
	seq     int   // frames read, numbered for striping
	err     error // sticky: io.EOF, the far error, or a connection error
	done    bool  // the stream is over and the connection released
}

// next reads the next frame of the stream into s.pending, or ends the
// stream.
func (s *sendStream) next() {
	t, p, err := wire.ReadFrame(s.c.streamIn(s.seq), s.rbuf)
	if err != nil {
		s.fail(err)
		return
	}
	s.seq++
	switch t {
	case wire.FrameData, wire.FrameZData:
		if err := s.c.lim.wait(s.ctx, len(p)); err != nil {
			s.fail(err)
			return
		}
		data, err := s.dec.Payload(t, p)
		if err != nil {
			s.fail(err)
			return
		}
		s.pending = data
		s.got += int64(len(data))
	case wire.FrameEnd:
		var st wire.EndStatus
		if err := wire.DecodeLenient(p, &st); err != nil {
			s.fail(err)
			return
		}
		switch {
		case st.Error != nil:
			s.finish(st.Error.Decode())
		case st.Bytes != s.got:
			s.fail(fmt.Errorf("%w: the far side sent %d stream bytes, %d arrived", ErrProtocol, st.Bytes, s.got))
		default:
			s.finish(io.EOF)
		}
	case wire.FrameError:
		s.fail(wire.DecodeFatal(p))
	default:
		s.fail(fmt.Errorf("%w: unexpected %s frame in a send stream", ErrProtocol, t))
	}
}

// fail ends the stream on a connection-level error, which breaks the
// connection.
func (s *sendStream) fail(err error) {
	s.finish(s.c.ioError(s.ctx, "send stream", err))
}

// finish ends the stream with err (io.EOF for a clean end) and releases
// the connection.
func (s *sendStream) finish(err error) {
	if s.done {
		return
	}
	s.done = true
	s.err = err
	s.pending = nil
	if !s.unwat() {
		// The context fired: the watchdog closed the connection.
		s.c.markBroken(context.Cause(s.ctx))
		if errors.Is(err, io.EOF) {
			s.err = fmt.Errorf("send stream: %w", s.c.ctxError(s.ctx))
		}
	}
	s.dec.Close()
	s.c.streaming.Store(false)
	s.c.release()
}

func (s *sendStream) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reading {
		return errors.New("sshtransport: concurrent reads of a send stream")
	}
	s.reading = true
	return nil
}

func (s *sendStream) end() {
	s.mu.Lock()
	s.reading = false
	s.mu.Unlock()
}

// Read implements io.Reader.
func (s *sendStream) Read(p []byte) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	for len(s.pending) == 0 {
		if s.done {
			return 0, s.err
		}
		s.next()
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, handing whole frames to w (so io.Copy
// moves the stream in chunks of up to MaxDataPayload bytes).
func (s *sendStream) WriteTo(w io.Writer) (int64, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	var total int64
	for {
		for len(s.pending) == 0 {
			if s.done {
				if errors.Is(s.err, io.EOF) {
					return total, nil
				}
				return total, s.err
			}
			s.next()
		}
		n, err := w.Write(s.pending)
		total += int64(n)
		s.pending = s.pending[n:]
		if err != nil {
			return total, err
		}
	}
}

// Close stops the stream. Before the end it sends a cancel frame (the far
// side kills zfs send) and discards what is still in flight up to the end
// frame, so the connection stays usable. It returns the far side's error
// when zfs send failed on its own, nil when it succeeded or was cancelled
// by Close. Called while a Read is blocked in another goroutine, Close
// breaks the connection instead, which unblocks the Read.
func (s *sendStream) Close() error {
	s.mu.Lock()
	if s.reading {
		s.mu.Unlock()
		s.c.breakConn(errors.New("send stream closed during a read"))
		return nil
	}
	s.reading = true
	defer s.end()
	s.mu.Unlock()
	if s.done {
		return nil
	}
	if err := wire.WriteFrame(s.c.rw, wire.FrameCancel, nil); err != nil {
		s.fail(err)
		return nil
	}
	for !s.done {
		s.pending = nil
		s.next()
	}
	if errors.Is(s.err, io.EOF) || errors.Is(s.err, ErrClosed) || s.c.isBroken() {
		return nil
	}
	return s.err
}
