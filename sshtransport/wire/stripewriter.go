package wire

import (
	"io"
	"sync"
)

// StripeWriter writes the frames of one stream round robin over the
// channels of a striped connection (frame i on channel i mod N, see
// stripe.go). Each channel has its own goroutine and a queue of one frame,
// so a channel that waits for its SSH window does not hold up the frames
// due on the others: a single writer would send nothing at all while it
// waited.
type StripeWriter struct {
	direct io.Writer // the one writer of an unstriped stream
	qs     []chan *[]byte
	pool   sync.Pool
	seq    int
	wg     sync.WaitGroup
	failed chan struct{}
	once   sync.Once
	err    error
}

// NewStripeWriter starts a writer goroutine per w. With one w it starts
// none: every frame is written at once, in the caller's goroutine, as
// WriteFramed does.
func NewStripeWriter(ws []io.Writer) *StripeWriter {
	if len(ws) == 1 {
		return &StripeWriter{direct: ws[0]}
	}
	s := &StripeWriter{qs: make([]chan *[]byte, len(ws)), failed: make(chan struct{})}
	for i, w := range ws {
		q := make(chan *[]byte, 1)
		s.qs[i] = q
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for b := range q {
				if s.broken() {
					s.pool.Put(b)
					continue // drain: the stream is over
				}
				if _, err := w.Write(*b); err != nil {
					s.fail(err)
				}
				s.pool.Put(b)
			}
		}()
	}
	return s
}

func (s *StripeWriter) fail(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.failed)
	})
}

func (s *StripeWriter) broken() bool {
	select {
	case <-s.failed:
		return true
	default:
		return false
	}
}

// WriteFramed queues the frame whose payload sits at buf[FrameHeaderLen:]
// (as WriteFramed takes it) on its channel; buf may be reused at once. It
// returns the first write error of any channel.
func (s *StripeWriter) WriteFramed(t FrameType, buf []byte) error {
	if s.direct != nil {
		return WriteFramed(s.direct, t, buf)
	}
	if s.qs == nil {
		return io.ErrClosedPipe
	}
	n := len(buf) - FrameHeaderLen
	limit, ok := t.MaxPayload()
	if !ok || n < 0 || n > limit {
		return WriteFramed(io.Discard, t, buf) // the same refusal
	}
	b, _ := s.pool.Get().(*[]byte)
	if b == nil || cap(*b) < len(buf) {
		nb := make([]byte, 0, max(len(buf), FrameHeaderLen+MaxDataPayload))
		b = &nb
	}
	*b = append((*b)[:0], buf...)
	putFrameHeader(*b, t, n)
	q := s.qs[s.seq%len(s.qs)]
	s.seq++
	select {
	case <-s.failed:
		s.pool.Put(b)
		return s.err
	default:
	}
	select {
	case q <- b:
		return nil
	case <-s.failed:
		s.pool.Put(b)
		return s.err
	}
}

// WriteFrame queues a frame with its payload (a control frame: the end
// frame).
func (s *StripeWriter) WriteFrame(t FrameType, payload []byte) error {
	if s.direct != nil {
		return WriteFrame(s.direct, t, payload)
	}
	buf := make([]byte, FrameHeaderLen+len(payload))
	copy(buf[FrameHeaderLen:], payload)
	return s.WriteFramed(t, buf)
}

// Abandon ends the writer without waiting: frames still queued are
// dropped, and a write still blocked ends when its connection does (the
// caller is giving up on the connection). After Close it does nothing.
func (s *StripeWriter) Abandon() {
	if s.qs == nil {
		s.direct = nil
		return
	}
	s.fail(io.ErrClosedPipe)
	qs := s.qs
	s.qs = nil
	for _, q := range qs {
		close(q)
	}
}

// Close waits until every queued frame was written (or a write failed;
// the caller breaks the connection to end writes that never return) and
// returns the first write error. Later calls return nil at once, and
// writes after it fail.
func (s *StripeWriter) Close() error {
	if s.qs == nil {
		s.direct = nil
		return nil
	}
	qs := s.qs
	s.qs = nil
	for _, q := range qs {
		close(q)
	}
	s.wg.Wait()
	if s.broken() {
		return s.err
	}
	return nil
}
