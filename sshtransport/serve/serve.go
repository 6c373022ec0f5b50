// Package serve is the far end of zsync's protocol, `zsync serve --stdio`:
// Serve reads requests from the client, checks each against the client's
// Policy and runs what the policy granted with a Handler (a *zfs.CLI). It
// speaks the wire format of package sshtransport/wire and knows nothing of
// SSH or of the client (package sshtransport).
package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// Handler is what `zsync serve` runs requests against: the method set of
// *zfs.CLI, which satisfies it. Its contract is the CLI's: typed errors
// (zfs sentinels, *zfs.DestroyError, *zfs.ResumableRecvError, ...) that
// Serve carries to the client intact.
type Handler interface {
	List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error)
	Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error)
	Holds(ctx context.Context, snaps []string) (map[string][]string, error)
	Hold(ctx context.Context, tag string, snaps []string) error
	Release(ctx context.Context, tag string, snaps []string) error
	Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error
	DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error
	DestroyBookmarks(ctx context.Context, bookmarks []string) error
	Create(ctx context.Context, name string, props map[string]string, parents bool) error
	Set(ctx context.Context, name string, props map[string]string) error
	Rename(ctx context.Context, from, to string) error
	Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error)
	SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error)
	Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error
	AbortReceive(ctx context.Context, dataset string) error
	DecodeResumeToken(ctx context.Context, token string) (zfs.ResumeToken, error)
	SnapshotDigest(ctx context.Context, snapshot string, o zfs.DigestOptions) (zfs.Digest, error)
	PoolErrors(ctx context.Context, dataset string) (zfs.PoolErrors, error)
}

var _ Handler = (*zfs.CLI)(nil)

// Options configures Serve.
type Options struct {
	// SoftwareVersion is announced in the banner.
	SoftwareVersion string
	// Policy restricts the client; nil grants the full rights of the user
	// Serve runs as (a local child, or SSH without a forced command).
	Policy *Policy
	// Log, when set, is called once per request after it was handled (or
	// refused), with the operation, its arguments and its error; and once
	// for the client's hello (op "hello", its protocol and software
	// version); and for every channel refused at a striping session's
	// socket (op "stripe_join"), from another goroutine: it must be safe
	// for concurrent use.
	Log func(op string, args map[string]any, err error)
	// IdleTimeout, when positive, ends Serve when the client sends nothing
	// for that long while the server waits on it: for its next request,
	// or for the next frame of a receive stream (which then fails; a
	// resumable receive keeps its partial state). Time spent in zfs does
	// not count.
	IdleTimeout time.Duration
	// HelloTimeout bounds the wait for the client's hello; 0 means
	// DefaultHelloTimeout.
	HelloTimeout time.Duration
}

// DefaultHelloTimeout is how long Serve waits for the client's hello line.
const DefaultHelloTimeout = time.Minute

// ErrClientIdle is wrapped by Serve's error when the client stayed silent
// past Options.IdleTimeout or HelloTimeout.
var ErrClientIdle = errors.New("the client sent nothing in time")

// listBatchBytes is the size above which a listing is sent in several
// response frames.
const listBatchBytes = 4 << 20

// Serve is the far end of the protocol (`zsync serve --stdio`): it writes
// the banner to out, reads the client's hello from in, then answers
// requests one at a time with h until in ends. A clean end of input between
// requests returns nil; a protocol violation is answered with an error
// frame and returned (wrapping wire.ErrProtocol); a connection lost in the
// middle of a stream or a cancelled ctx is returned too. Serve does not
// close in or out. When it returns early, a goroutine may remain blocked
// reading in until in is closed or ends.
func Serve(ctx context.Context, in io.Reader, out io.Writer, h Handler, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opCtx, inputGone := context.WithCancel(ctx)
	defer inputGone()
	growPipe(in)
	growPipe(out)
	ww := &watchedWriter{w: out}
	s := &server{ctx: ctx, opCtx: opCtx, inputGone: inputGone, h: h, o: o, br: bufio.NewReaderSize(in, 64<<10), w: ww, out: ww}
	defer s.closeLinks()
	if _, err := out.Write(wire.HandshakeLine(wire.BannerPrefix, o.SoftwareVersion)); err != nil {
		return fmt.Errorf("writing the banner: %w", err)
	}
	if err := s.helloWithin(); err != nil {
		return err
	}
	s.frames = make(chan inFrame)
	go s.readLoop()
	if o.IdleTimeout <= 0 {
		return s.loop()
	}
	// A client that stops reading leaves serve blocked in a write, which
	// no timer can interrupt: the loop runs aside, and Serve returns (its
	// zfs processes killed) when a write has been stuck for IdleTimeout.
	done := make(chan error, 1)
	go func() { done <- s.loop() }()
	tick := time.NewTicker(min(o.IdleTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if d := s.stuck(); d > o.IdleTimeout {
				cancel()
				return fmt.Errorf("%w: it has not read what serve wrote for %s (idle_timeout of [serve] on this host)", ErrClientIdle, d.Round(time.Second))
			}
		}
	}
}

// watchedWriter records when a write began that has not returned yet.
type watchedWriter struct {
	w     io.Writer
	since atomic.Int64 // unix nanoseconds; 0 when no write is pending
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.since.Store(time.Now().UnixNano())
	defer w.since.Store(0)
	return w.w.Write(p)
}

// stuck returns how long the longest pending write to the client has
// been waiting, on its channel or, once striped, on any of them.
func (s *server) stuck() time.Duration {
	d := s.out.stuck()
	if ws := s.watched.Load(); ws != nil {
		for _, w := range *ws {
			d = max(d, w.stuck())
		}
	}
	return d
}

// stuck returns how long the pending write has been waiting (0: none).
func (w *watchedWriter) stuck() time.Duration {
	if t := w.since.Load(); t != 0 {
		return time.Since(time.Unix(0, t))
	}
	return 0
}

// server is the state of one Serve call.
type server struct {
	ctx context.Context
	// opCtx is the context of handler calls: it also ends when the input
	// does (the client is gone, nobody waits for the result).
	opCtx     context.Context
	inputGone context.CancelFunc
	h         Handler
	o         Options
	br        *bufio.Reader
	w         io.Writer
	out       *watchedWriter // w, watched for a client that stopped reading
	frames    chan inFrame
	held      *inFrame // a frame read ahead, handed back to the main loop
	// stripe is a striping session between stripe_open and stripe_ready;
	// links are the joined channels once it is ready (stripe.go).
	stripe *stripeSession
	links  []*stripeLink
	// watched are the links' writers, for the stuck-write check (each
	// channel has its own writer goroutine, so each its own clock)
	watched atomic.Pointer[[]*watchedWriter]
	bufs    sync.Pool
}

// inFrame is a frame read by the reader goroutine. buf, when set, is the
// pooled buffer behind a data payload, returned with recycle.
type inFrame struct {
	t   wire.FrameType
	p   []byte
	err error
	buf *[]byte
}

// hello reads the client's hello line.
func (s *server) hello() error {
	line, err := wire.ReadLine(s.br, wire.MaxHandshakeLine)
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return fmt.Errorf("%w: the client hung up before its hello", wire.ErrProtocol)
		}
		return fmt.Errorf("%w: reading the client's hello: %w (got %s)", wire.ErrProtocol, err, wire.QuoteGot(line))
	}
	peer, ok, perr := wire.ParseHandshake(line, wire.HelloPrefix)
	switch {
	case !ok:
		return fmt.Errorf("%w: the client did not say hello (got %s)", wire.ErrProtocol, wire.QuoteGot(line))
	case perr != nil:
		return perr
	case peer.Protocol != wire.ProtocolVersion:
		err := &wire.VersionMismatchError{Local: wire.ProtocolVersion, Remote: peer.Protocol, Peer: peer.Software}
		s.log("hello", map[string]any{"protocol": peer.Protocol, "software": peer.Software}, err)
		return err
	}
	s.log("hello", map[string]any{"protocol": peer.Protocol, "software": peer.Software}, nil)
	return nil
}

// readLoop reads frames for the main loop until the input fails or ends.
func (s *server) readLoop() {
	for {
		buf := s.getBuf()
		t, p, err := wire.ReadFrame(s.br, *buf)
		if err != nil {
			s.inputGone()
		}
		f := inFrame{t: t, p: p, err: err, buf: buf}
		select {
		case s.frames <- f:
		case <-s.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *server) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, wire.MaxDataPayload)
	return &b
}

// recycle returns a frame's data buffer to the pool once its payload is no
// longer used.
func (s *server) recycle(f inFrame) {
	if f.buf != nil {
		s.bufs.Put(f.buf)
	}
}

// next returns the next frame from the client.
func (s *server) next() inFrame { return s.nextOn(s.frames) }

// nextOn returns the next frame from ch, the primary's frames or a striped
// channel's.
func (s *server) nextOn(ch chan inFrame) inFrame {
	if f := s.held; f != nil && ch == s.frames {
		s.held = nil
		return *f
	}
	idle, stop := s.idleTimer()
	defer stop()
	select {
	case f := <-ch:
		return f
	case <-s.ctx.Done():
		return inFrame{err: s.ctx.Err()}
	case <-idle:
		return inFrame{err: s.idleErr()}
	}
}

// idleTimer returns a channel that fires after the idle timeout (never
// without one), and its stop function.
func (s *server) idleTimer() (<-chan time.Time, func()) {
	if s.o.IdleTimeout <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(s.o.IdleTimeout)
	return t.C, func() { t.Stop() }
}

func (s *server) idleErr() error {
	return fmt.Errorf("%w: nothing for %s (idle_timeout of [serve] on this host)", ErrClientIdle, s.o.IdleTimeout)
}

// helloWithin reads the client's hello, giving up after the hello
// timeout. (The reading goroutine then stays blocked until the input
// ends; the process is about to exit.)
func (s *server) helloWithin() error {
	d := s.o.HelloTimeout
	if d <= 0 {
		d = DefaultHelloTimeout
	}
	done := make(chan error, 1)
	go func() { done <- s.hello() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: no hello within %s", ErrClientIdle, d)
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// loop answers requests until the input ends.
func (s *server) loop() error {
	for {
		f := s.next()
		switch {
		case errors.Is(f.err, io.EOF):
			return nil
		case f.err != nil:
			return s.fatal(fmt.Errorf("reading a request: %w", f.err))
		}
		s.recycle(f)
		switch f.t {
		case wire.FrameRequest:
			if err := s.handle(f.p); errors.Is(err, errRelayDone) {
				return nil
			} else if err != nil {
				return err
			}
		case wire.FrameCancel:
			// A cancel that crossed the end of its stream: nothing to stop.
		default:
			return s.fatal(fmt.Errorf("%w: unexpected %s frame outside a stream", wire.ErrProtocol, f.t))
		}
	}
}

// fatal tells the client about a protocol violation (best effort) and
// returns err for Serve to return.
func (s *server) fatal(err error) error {
	if errors.Is(err, wire.ErrProtocol) || errors.Is(err, ErrClientIdle) {
		if p, merr := json.Marshal(wire.EncodeError(err)); merr == nil {
			_ = wire.WriteFrame(s.w, wire.FrameError, p)
		}
	}
	return err
}

// respond writes a response frame with a result or an error.
func (s *server) respond(result any, rerr error) error {
	var r wire.Response
	if rerr != nil {
		r.Error = wire.EncodeError(rerr)
	} else if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			r.Error = wire.EncodeError(fmt.Errorf("encoding the result: %w", err))
		} else {
			r.Result = b
		}
	}
	p, err := json.Marshal(r)
	if err == nil && len(p) > wire.MaxControlPayload {
		p, err = json.Marshal(wire.Response{Error: wire.EncodeError(fmt.Errorf(
			"the result of %d bytes exceeds the protocol's limit of %d bytes", len(p), wire.MaxControlPayload))})
	}
	if err != nil {
		return fmt.Errorf("encoding a response: %w", err)
	}
	if err := wire.WriteFrame(s.w, wire.FrameResponse, p); err != nil {
		return fmt.Errorf("writing a response: %w", err)
	}
	return nil
}

// handle runs one request: decode it into its request type, validate it,
// have the policy grant it, run the grant. It returns only errors that end
// Serve; the request's own failure goes to the client.
func (s *server) handle(payload []byte) error {
	var req wire.Request
	if err := wire.DecodeStrict(payload, &req); err != nil {
		return s.fatal(fmt.Errorf("decoding a request: %w", err))
	}
	if handled, err := s.handleStripe(req); handled {
		return err
	}
	decode, ok := requests[req.Op]
	if !ok {
		err := fmt.Errorf("unknown operation %q: %w", shortText(req.Op), errors.ErrUnsupported)
		s.log(shortText(req.Op), nil, err)
		return s.respond(nil, err)
	}
	r, err := decode(req.Args)
	if err != nil {
		return s.fatal(fmt.Errorf("decoding the arguments of %s: %w", req.Op, err))
	}
	g, err := s.authorize(r)
	if err != nil {
		s.log(req.Op, r.logArgs(), err)
		return s.respond(nil, err)
	}
	switch {
	case g.send != nil:
		return s.send(*g.send, r.logArgs())
	case g.recv != nil:
		return s.receive(*g.recv, r.logArgs())
	}
	var result any
	if g.call != nil {
		result, err = g.call(s.opCtx, s.h)
	} else {
		err = fmt.Errorf("operation %s: %w", req.Op, errors.ErrUnsupported)
	}
	s.log(req.Op, r.logArgs(), err)
	return s.respondOp(req.Op, result, err)
}

// authorize validates r and has the client's policy grant it (a nil
// policy grants whatever validates). A refusal wraps wire.ErrForbidden.
func (s *server) authorize(r request) (grant, error) {
	if err := r.validate(); err != nil {
		return grant{}, err
	}
	return r.authorize(s.opCtx, gateFor(s.o.Policy, s.h))
}

// respondOp writes the response of a non-stream operation; a listing may
// take several frames.
func (s *server) respondOp(op string, result any, err error) error {
	entries, ok := result.([]zfs.Entry)
	if op != wire.OpList || err != nil || !ok {
		return s.respond(result, err)
	}
	var (
		batch []json.RawMessage
		size  int
	)
	flush := func(more bool) error {
		b, merr := json.Marshal(batch)
		if merr != nil {
			return s.respond(nil, merr)
		}
		p, merr := json.Marshal(wire.Response{Result: b, More: more})
		if merr != nil {
			return s.respond(nil, merr)
		}
		if werr := wire.WriteFrame(s.w, wire.FrameResponse, p); werr != nil {
			return fmt.Errorf("writing a response: %w", werr)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for _, e := range entries {
		b, merr := json.Marshal(e)
		if merr != nil {
			return s.respond(nil, merr)
		}
		if size+len(b) > listBatchBytes && len(batch) > 0 {
			if err := flush(true); err != nil {
				return err
			}
		}
		batch = append(batch, b)
		size += len(b) + 1
	}
	if batch == nil {
		batch = []json.RawMessage{}
	}
	return flush(false)
}

func (s *server) log(op string, args map[string]any, err error) {
	if s.o.Log != nil {
		s.o.Log(op, args, err)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// shortText bounds a client-supplied string for messages and logs.
func shortText(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
