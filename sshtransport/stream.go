package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// chunkLinger is how long fillChunk keeps collecting a partial chunk from
// a slow source before handing it on, so a trickling stream still flows.
const chunkLinger = 50 * time.Millisecond

// fillChunk reads from r into buf until buf is full, r fails, ctx is done,
// or some bytes have waited chunkLinger for more. It returns the bytes read
// and r's error (io.EOF at the end, with a possibly short final chunk) or
// the context's error. A Read that blocks is not interrupted: the context
// is checked between reads.
func fillChunk(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	var first time.Time
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return n, context.Cause(ctx)
		}
		switch {
		case m > 0 && first.IsZero():
			first, empty = time.Now(), 0
		case m > 0:
			empty = 0
		default:
			if empty++; empty >= 100 {
				return n, io.ErrNoProgress
			}
		}
		if n > 0 && n < len(buf) && time.Since(first) >= chunkLinger {
			return n, nil
		}
	}
	return n, nil
}

// newDataBuf returns a buffer for one data frame with room for its header.
func newDataBuf() []byte { return make([]byte, frameHeaderLen+MaxDataPayload) }

// encoder compresses data chunks into zstd data frames.
type encoder struct {
	z    *zstd.Encoder
	zbuf []byte // frameHeaderLen + MaxDataPayload
}

func newEncoder() (*encoder, error) {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(MaxDataPayload))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &encoder{z: z, zbuf: newDataBuf()}, nil
}

// frame returns the frame to send for the chunk at raw[frameHeaderLen:]:
// a zstd data frame when that is smaller, else the raw data frame itself.
// The returned slice has frameHeaderLen bytes of room for the header.
func (e *encoder) frame(raw []byte) (frameType, []byte) {
	if e == nil {
		return frameData, raw
	}
	chunk := raw[frameHeaderLen:]
	c := e.z.EncodeAll(chunk, e.zbuf[frameHeaderLen:frameHeaderLen])
	if len(c) >= len(chunk) || len(c) > MaxDataPayload {
		return frameData, raw
	}
	if cap(c) != cap(e.zbuf)-frameHeaderLen {
		// EncodeAll grew its own slice; bring the result back.
		copy(e.zbuf[frameHeaderLen:], c)
	}
	return frameZData, e.zbuf[:frameHeaderLen+len(c)]
}

func (e *encoder) close() {
	if e != nil {
		_ = e.z.Close()
	}
}

// decoder decompresses zstd data frames, never producing more than
// MaxDataPayload bytes from one frame (a hostile "zip bomb" fails).
type decoder struct {
	z   *zstd.Decoder
	out []byte
}

func newDecoder() (*decoder, error) {
	z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxDataPayload),
		zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxWindow(MaxDataPayload))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &decoder{z: z, out: make([]byte, 0, MaxDataPayload)}, nil
}

// payload returns the stream bytes a data frame carries. The result of a
// zstd frame is valid until the next call.
func (d *decoder) payload(t frameType, p []byte) ([]byte, error) {
	switch {
	case t == frameData:
		return p, nil
	case t == frameZData && d != nil:
		out, err := d.z.DecodeAll(p, d.out[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: bad zstd data frame: %w", ErrProtocol, err)
		}
		if len(out) > MaxDataPayload {
			return nil, fmt.Errorf("%w: zstd data frame decompresses beyond %d bytes", ErrProtocol, MaxDataPayload)
		}
		return out, nil
	case t == frameZData:
		return nil, fmt.Errorf("%w: zstd data frame on a stream without compression", ErrProtocol)
	}
	return nil, fmt.Errorf("%w: unexpected %s frame in a stream", ErrProtocol, t)
}

func (d *decoder) close() {
	if d != nil {
		d.z.Close()
	}
}

// codecFor returns the encoder/decoder pair for a negotiated compression.
func codecFor(compress string) (*encoder, *decoder, error) {
	switch compress {
	case "":
		return nil, nil, nil
	case compressZstd:
		enc, err := newEncoder()
		if err != nil {
			return nil, nil, err
		}
		dec, err := newDecoder()
		if err != nil {
			enc.close()
			return nil, nil, err
		}
		return enc, dec, nil
	}
	return nil, nil, fmt.Errorf("unknown stream compression %q: %w", compress, errors.ErrUnsupported)
}

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
	dec   *decoder
	rbuf  []byte
	unwat func() bool // detaches the context watchdog

	mu      sync.Mutex
	reading bool // a Read or WriteTo is in progress
	pending []byte
	got     int64 // stream bytes received
	err     error // sticky: io.EOF, the far error, or a connection error
	done    bool  // the stream is over and the connection released
}

// next reads the next frame of the stream into s.pending, or ends the
// stream.
func (s *sendStream) next() {
	t, p, err := readFrame(s.c.br, s.rbuf)
	if err != nil {
		s.fail(err)
		return
	}
	switch t {
	case frameData, frameZData:
		if err := s.c.lim.wait(s.ctx, len(p)); err != nil {
			s.fail(err)
			return
		}
		data, err := s.dec.payload(t, p)
		if err != nil {
			s.fail(err)
			return
		}
		s.pending = data
		s.got += int64(len(data))
	case frameEnd:
		var st endStatus
		if err := decodeLenient(p, &st); err != nil {
			s.fail(err)
			return
		}
		switch {
		case st.Error != nil:
			s.finish(st.Error.decode())
		case st.Bytes != s.got:
			s.fail(fmt.Errorf("%w: the far side sent %d stream bytes, %d arrived", ErrProtocol, st.Bytes, s.got))
		default:
			s.finish(io.EOF)
		}
	case frameError:
		s.fail(decodeFatal(p))
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
	s.dec.close()
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
	if err := writeFrame(s.c.rw, frameCancel, nil); err != nil {
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
