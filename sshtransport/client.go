package sshtransport

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

// ClientOptions configures a Client.
type ClientOptions struct {
	// SoftwareVersion is this zsync's version, announced in the hello line
	// (for the far side's logs).
	SoftwareVersion string
	// Compression of the data frames of every stream: "" (none) or "zstd".
	Compression string
	// BandwidthLimit caps the data frames of the client's streams, both
	// directions, in bytes per second of wire payload (after compression).
	// 0 means unlimited.
	BandwidthLimit int64
	// Limiter, when set, is used instead of BandwidthLimit: a Limiter shared
	// by several Clients caps their streams together.
	Limiter *Limiter
	// HandshakeTimeout bounds the wait for the far side's banner; 0 means
	// 30 seconds. The context passed to NewClient can only shorten it.
	HandshakeTimeout time.Duration
	// IdleTimeout, when positive, closes the connection when a call has
	// waited that long on the far side with nothing moving in either
	// direction; the call fails with an *IdleTimeoutError. It must exceed
	// the longest silent far operation: a large destroy, or the far zfs
	// recv working through the few MiB the far side buffers after the last
	// byte was sent. 0 means no idle timeout.
	IdleTimeout time.Duration
	// Stderr, when set, receives a copy of the child's standard error
	// (StartLocal only; the last 64 KiB are kept for error messages
	// either way).
	Stderr io.Writer
}

// defaultHandshakeTimeout applies when ClientOptions.HandshakeTimeout is 0.
const defaultHandshakeTimeout = 30 * time.Second

// maxListBytes bounds the total size of the response frames of one List.
const maxListBytes = 256 << 20

// Client is the active side's handle on a far `zsync serve`: it has the
// method set of *zfs.CLI, so the replication engine uses a local CLI and a
// remote Client interchangeably. Errors returned for far failures are
// *RemoteError values that unwrap to the same zfs sentinels and types.
//
// A Client runs one request at a time: concurrent calls wait for each other
// (for parallelism, open several clients). An open Send stream holds the
// connection until it is read to its end or closed; any other call made
// meanwhile fails at once (waiting could deadlock the goroutine that holds
// the stream), so the sending and the receiving side of a replication must
// be two different Clients.
//
// Cancelling the context of a call (or of a Send stream) while it is in
// flight closes the connection at once: the call returns the context's
// error and the Client is unusable afterwards (ErrClosed); the far side
// sees the connection drop and stops what it was doing.
type Client struct {
	rw   io.ReadWriteCloser
	idle *idleConn // rw's idle watch, nil without an idle timeout
	br   *bufio.Reader
	opts ClientOptions
	peer PeerInfo
	lim  *Limiter
	sem  chan struct{} // one slot: the request or stream that owns the connection
	// links are the other channels of a striped connection (stripe.go),
	// set once by Stripe before any stream.
	links []*clientLink
	// streaming is set while a Send stream owns the connection.
	streaming atomic.Bool

	mu       sync.Mutex
	broken   error // why the connection is unusable, nil while usable
	closed   bool
	closeErr error
	closing  sync.Once
}

// NewClient performs the handshake over rw, a byte pipe to a `zsync serve`
// (an SSH session's stdin/stdout, a child's pipes, a net.Conn): it reads
// the banner, checks the protocol version and sends the hello line. The
// Client owns rw from then on and closes it in Close (or at once when the
// handshake fails).
//
// Errors: ErrNotZsync (wrapped, with what the far side said instead) when
// the first line is not a zsync banner, *VersionMismatchError for another
// protocol version, the context's error (context.DeadlineExceeded after
// HandshakeTimeout) when no banner came.
func NewClient(ctx context.Context, rw io.ReadWriteCloser, o ClientOptions) (*Client, error) {
	if _, _, err := wire.CodecFor(o.Compression); err != nil {
		_ = rw.Close()
		return nil, err
	}
	var idle *idleConn
	if o.IdleTimeout > 0 {
		idle = newIdleConn(rw, o.IdleTimeout)
		rw = idle
	}
	c := &Client{
		rw:   rw,
		idle: idle,
		br:   bufio.NewReaderSize(rw, 64<<10),
		opts: o,
		lim:  clientLimiter(o),
		sem:  make(chan struct{}, 1),
	}
	timeout := o.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	hctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("no answer from the far side within %v", timeout))
	defer cancel()
	unwatch := c.watch(hctx)
	peer, err := c.handshake()
	if !unwatch() {
		err = fmt.Errorf("waiting for the zsync serve banner: %w", c.ctxError(hctx))
	}
	if err != nil {
		c.breakConn(err)
		_ = c.Close()
		return nil, err
	}
	c.peer = peer
	return c, nil
}

// handshake reads the banner and writes the hello line.
func (c *Client) handshake() (PeerInfo, error) {
	line, err := wire.ReadLine(c.br, wire.MaxHandshakeLine)
	if err != nil && len(line) == 0 {
		if errors.Is(err, io.EOF) {
			return PeerInfo{}, fmt.Errorf("%w (got nothing: the connection closed)", ErrNotZsync)
		}
		return PeerInfo{}, fmt.Errorf("%w (got nothing: %w)", ErrNotZsync, err)
	}
	peer, ok, perr := wire.ParseHandshake(line, wire.BannerPrefix)
	switch {
	case !ok:
		return PeerInfo{}, fmt.Errorf("%w (got %s)", ErrNotZsync, wire.QuoteGot(line))
	case err != nil:
		return PeerInfo{}, fmt.Errorf("%w: incomplete banner %s: %w", ErrProtocol, wire.QuoteGot(line), err)
	case perr != nil:
		return PeerInfo{}, perr
	case peer.Protocol != ProtocolVersion:
		return PeerInfo{}, &VersionMismatchError{Local: ProtocolVersion, Remote: peer.Protocol, Peer: peer.Software}
	}
	if _, err := c.rw.Write(wire.HandshakeLine(wire.HelloPrefix, c.opts.SoftwareVersion)); err != nil {
		return PeerInfo{}, fmt.Errorf("sending the hello line: %w", err)
	}
	return peer, nil
}

// Peer returns what the far side announced in its banner.
func (c *Client) Peer() PeerInfo { return c.peer }

// Close closes the connection (the far `zsync serve` sees the end of its
// input and exits). For a client from StartLocal it also waits for the
// child and reports a failed exit. Close is idempotent; it does not wait
// for a call in flight in another goroutine, which then fails.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	wasBroken := c.broken != nil
	c.mu.Unlock()
	err := c.closeRW()
	if wasBroken {
		return nil
	}
	return err
}

func (c *Client) closeRW() error {
	c.closing.Do(func() {
		c.closeErr = c.rw.Close()
		c.mu.Lock()
		links := c.links
		c.mu.Unlock()
		closeLinks(links)
	})
	return c.closeErr
}

// markBroken records why the connection is unusable (the first reason wins).
func (c *Client) markBroken(err error) {
	if err == nil {
		err = errors.New("connection broken")
	}
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
}

// breakConn marks the connection broken and closes it, which unblocks any
// read or write in flight.
func (c *Client) breakConn(err error) {
	c.markBroken(err)
	_ = c.closeRW()
}

func (c *Client) isBroken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken != nil || c.closed
}

// usable returns nil, or ErrClosed wrapping why the client cannot be used.
func (c *Client) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.broken != nil:
		return fmt.Errorf("%w: %w", ErrClosed, c.broken)
	case c.closed:
		return ErrClosed
	}
	return nil
}

// watch closes the connection when ctx is done; the returned function
// detaches the watchdog and reports false when it already fired.
func (c *Client) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { c.breakConn(c.ctxError(ctx)) })
}

// ctxError is the error of a call whose context is done: it wraps ctx.Err()
// (so context.Canceled and DeadlineExceeded are recognised) and says why.
func (c *Client) ctxError(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// ioError turns a failed read or write of the connection into the call's
// error and breaks the connection (its state is unknown from now on).
func (c *Client) ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		err = c.ctxError(ctx)
	} else if errors.Is(err, io.EOF) {
		err = fmt.Errorf("the far side closed the connection: %w", io.ErrUnexpectedEOF)
	}
	c.breakConn(err)
	return fmt.Errorf("%s: %w", op, err)
}

// acquire takes the connection for one request or stream.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	default:
		if c.streaming.Load() {
			// Most likely the goroutine holding the stream itself: waiting
			// would deadlock.
			return errStreamOpen
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return c.ctxError(ctx)
		}
	}
	if err := c.usable(); err != nil {
		<-c.sem
		return err
	}
	return nil
}

func (c *Client) release() { <-c.sem }

// errStreamOpen refuses a call while a Send stream holds the connection.
var errStreamOpen = errors.New("sshtransport: the connection is busy with an open send stream (read it to the end or close it first, or use another client)")

// writeRequest sends one request frame. A request too large for a frame is
// refused before anything is sent (the connection stays usable).
func (c *Client) writeRequest(ctx context.Context, op string, args any) error {
	a, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("%s: encoding the request: %w", op, err)
	}
	p, err := json.Marshal(wire.Request{Op: op, Args: a})
	if err != nil {
		return fmt.Errorf("%s: encoding the request: %w", op, err)
	}
	if len(p) > wire.MaxControlPayload {
		return fmt.Errorf("%s: request of %d bytes exceeds the protocol's limit of %d", op, len(p), wire.MaxControlPayload)
	}
	if err := wire.WriteFrame(c.rw, wire.FrameRequest, p); err != nil {
		return c.ioError(ctx, op, err)
	}
	return nil
}

// readResponse reads one response frame. It returns the response when the
// far side answered, a *RemoteError when it answered with an error, and a
// connection error otherwise (the connection is then broken).
func (c *Client) readResponse(ctx context.Context, op string) (wire.Response, error) {
	t, p, err := wire.ReadFrame(c.br, nil)
	if err != nil {
		return wire.Response{}, c.ioError(ctx, op, err)
	}
	switch t {
	case wire.FrameResponse:
		var r wire.Response
		if err := wire.DecodeLenient(p, &r); err != nil {
			return wire.Response{}, c.ioError(ctx, op, err)
		}
		if r.Error != nil {
			return r, r.Error.Decode()
		}
		return r, nil
	case wire.FrameError:
		return wire.Response{}, c.ioError(ctx, op, wire.DecodeFatal(p))
	}
	return wire.Response{}, c.ioError(ctx, op, fmt.Errorf("%w: unexpected %s frame instead of a response", ErrProtocol, t))
}

// call runs one request/response exchange and decodes the result into
// result (nil when the operation returns nothing).
func (c *Client) call(ctx context.Context, op string, args validator, result any) error {
	if err := args.Validate(); err != nil {
		return err
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	unwatch := c.watch(ctx)
	err := c.exchange(ctx, op, args, result)
	if !unwatch() && err != nil {
		return fmt.Errorf("%s: %w", op, c.ctxError(ctx))
	}
	return err
}

func (c *Client) exchange(ctx context.Context, op string, args any, result any) error {
	if err := c.writeRequest(ctx, op, args); err != nil {
		return err
	}
	r, err := c.readResponse(ctx, op)
	if err != nil {
		return err
	}
	if r.More {
		return c.ioError(ctx, op, fmt.Errorf("%w: continued response to %s", ErrProtocol, op))
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return c.ioError(ctx, op, fmt.Errorf("%w: bad result: %w", ErrProtocol, err))
	}
	return nil
}

// List lists the roots on the far side, like zfs.CLI.List. The far side
// sends large listings in several frames; with a policy it returns only
// what the client may see.
func (c *Client) List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	args := wire.ListArgs{Roots: roots, Options: o}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	unwatch := c.watch(ctx)
	entries, err := c.list(ctx, args)
	if !unwatch() && err != nil {
		return nil, fmt.Errorf("%s: %w", wire.OpList, c.ctxError(ctx))
	}
	return entries, err
}

func (c *Client) list(ctx context.Context, args wire.ListArgs) ([]zfs.Entry, error) {
	if err := c.writeRequest(ctx, wire.OpList, args); err != nil {
		return nil, err
	}
	var all []zfs.Entry
	total := 0
	for {
		r, err := c.readResponse(ctx, wire.OpList)
		if err != nil {
			return nil, err
		}
		total += len(r.Result)
		if total > maxListBytes {
			return nil, c.ioError(ctx, wire.OpList, fmt.Errorf("%w: listing larger than %d bytes", ErrProtocol, maxListBytes))
		}
		var batch []zfs.Entry
		if err := json.Unmarshal(r.Result, &batch); err != nil {
			return nil, c.ioError(ctx, wire.OpList, fmt.Errorf("%w: bad listing: %w", ErrProtocol, err))
		}
		all = append(all, batch...)
		if !r.More {
			return all, nil
		}
	}
}

// Get returns properties of names, like zfs.CLI.Get.
func (c *Client) Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error) {
	var out map[string]map[string]string
	if err := c.call(ctx, wire.OpGet, wire.GetArgs{Names: names, Props: props}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Holds returns the hold tags of snaps, like zfs.CLI.Holds.
func (c *Client) Holds(ctx context.Context, snaps []string) (map[string][]string, error) {
	var out map[string][]string
	if err := c.call(ctx, wire.OpHolds, wire.HoldsArgs{Snaps: snaps}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Hold places the hold tag on snaps, like zfs.CLI.Hold. When the far side's
// *zfs.HoldError may not list every failure (an older server listed at most
// 1000), each snapshot of snaps it does not list is added to it as failed,
// wrapping ErrUnreported.
func (c *Client) Hold(ctx context.Context, tag string, snaps []string) error {
	err := c.call(ctx, wire.OpHold, wire.HoldArgs{Tag: tag, Snaps: snaps}, nil)
	wire.CompleteBatch(err, snaps)
	return err
}

// Release removes the hold tag from snaps, like zfs.CLI.Release, with the
// same exact *zfs.HoldError as Hold.
func (c *Client) Release(ctx context.Context, tag string, snaps []string) error {
	err := c.call(ctx, wire.OpRelease, wire.HoldArgs{Tag: tag, Snaps: snaps}, nil)
	wire.CompleteBatch(err, snaps)
	return err
}

// Bookmark creates bookmark from a snapshot or bookmark, like
// zfs.CLI.Bookmark.
func (c *Client) Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error {
	return c.call(ctx, wire.OpBookmark, wire.BookmarkArgs{Source: snapOrBookmark, Bookmark: bookmark}, nil)
}

// destroyRequestNames bounds the snapshots of one destroy_snapshots
// request, so that its frame stays small and the far side can report on
// every one of them in its response (see maxWireBatch).
const destroyRequestNames = 4096

// DestroySnapshots destroys dataset@name for each short name on the far
// side, like zfs.CLI.DestroySnapshots, with its exact result: partial
// failures come back as an error that unwraps to a *zfs.DestroyError with
// per-snapshot typed errors, and every snapshot it does not name was
// destroyed. A snapshot the far side did not report on (an older server
// listed at most 1000 failures) is named with an error wrapping
// ErrUnreported, never taken as destroyed. More than destroyRequestNames
// snapshots go in several requests, in order; after a request that failed
// without naming snapshots (nothing of it was destroyed) the rest are not
// sent, and are named too.
func (c *Client) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	if len(shortNames) <= destroyRequestNames {
		return c.destroySnapshots(ctx, dataset, shortNames)
	}
	names := zfs.UniqueNames(shortNames)
	var chunks [][]string
	for i := 0; i < len(names); i += destroyRequestNames {
		chunks = append(chunks, names[i:min(i+destroyRequestNames, len(names))])
	}
	return zfs.DestroyInBatches(dataset, chunks, func(chunk []string) (map[string]error, error) {
		err := c.destroySnapshots(ctx, dataset, chunk)
		if err == nil {
			return nil, nil
		}
		failed := map[string]error{}
		var de *zfs.DestroyError
		if errors.As(err, &de) && len(de.Failed) > 0 {
			for k, ferr := range de.Failed {
				if ferr == nil {
					ferr = err
				}
				failed[k] = ferr
			}
			return failed, nil
		}
		for _, n := range chunk { // nothing of this request was destroyed
			failed[n] = err
		}
		return failed, err
	})
}

// destroySnapshots is one destroy_snapshots request.
func (c *Client) destroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	err := c.call(ctx, wire.OpDestroySnapshots, wire.DestroySnapshotsArgs{Dataset: dataset, Names: shortNames}, nil)
	wire.CompleteBatch(err, shortNames)
	return err
}

// DestroyBookmarks destroys bookmarks, like zfs.CLI.DestroyBookmarks.
func (c *Client) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	return c.call(ctx, wire.OpDestroyBookmarks, wire.DestroyBookmarksArgs{Bookmarks: bookmarks}, nil)
}

// Create creates a filesystem, like zfs.CLI.Create.
func (c *Client) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	return c.call(ctx, wire.OpCreate, wire.CreateArgs{Name: name, Props: props, Parents: parents}, nil)
}

// Set sets properties, like zfs.CLI.Set.
func (c *Client) Set(ctx context.Context, name string, props map[string]string) error {
	return c.call(ctx, wire.OpSet, wire.SetArgs{Name: name, Props: props}, nil)
}

// Rename renames a dataset, like zfs.CLI.Rename.
func (c *Client) Rename(ctx context.Context, from, to string) error {
	return c.call(ctx, wire.OpRename, wire.RenameArgs{From: from, To: to}, nil)
}

// SendSize estimates the size of a send on the far side, like
// zfs.CLI.SendSize.
func (c *Client) SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error) {
	var n int64
	if err := c.call(ctx, wire.OpSendSize, wire.SendArgs{Options: s.Options()}, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// AbortReceive discards the partial state of an interrupted resumable
// receive on the far side, like zfs.CLI.AbortReceive.
func (c *Client) AbortReceive(ctx context.Context, dataset string) error {
	return c.call(ctx, wire.OpAbortReceive, wire.DatasetArgs{Dataset: dataset}, nil)
}

// SnapshotDigest sums a snapshot's contents on the far side, like
// zfs.CLI.SnapshotDigest: only the sum crosses the link.
func (c *Client) SnapshotDigest(ctx context.Context, snapshot string, o zfs.DigestOptions) (zfs.Digest, error) {
	var d zfs.Digest
	if err := c.call(ctx, wire.OpSnapshotDigest, wire.DigestArgs{Snapshot: snapshot, Limit: o.Limit, Sample: o.Sample}, &d); err != nil {
		return zfs.Digest{}, err
	}
	return d, nil
}

// PoolErrors lists the permanent errors of a pool on the far side, like
// zfs.CLI.PoolErrors (those in datasets the client may not see are only
// counted).
func (c *Client) PoolErrors(ctx context.Context, dataset string) (zfs.PoolErrors, error) {
	var pe zfs.PoolErrors
	if err := c.call(ctx, wire.OpPoolErrors, wire.DatasetArgs{Dataset: dataset}, &pe); err != nil {
		return zfs.PoolErrors{}, err
	}
	return pe, nil
}

// DecodeResumeToken decodes a receive_resume_token on the far side, like
// zfs.CLI.DecodeResumeToken.
func (c *Client) DecodeResumeToken(ctx context.Context, token string) (zfs.ResumeToken, error) {
	var t zfs.ResumeToken
	if err := c.call(ctx, wire.OpDecodeResumeToken, wire.TokenArgs{Token: token}, &t); err != nil {
		return zfs.ResumeToken{}, err
	}
	return t, nil
}

// Send starts a zfs send on the far side and returns its stream, like
// zfs.CLI.Send. Reading the stream to its end returns io.EOF only when the
// far zfs send succeeded; otherwise Read returns the far side's typed error
// (with zfs's stderr) instead, so a truncated stream never looks complete.
// The caller must Close the stream; Close before the end cancels the far
// send and keeps the connection usable. ctx governs the whole stream:
// cancelling it closes the connection.
func (c *Client) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	args := wire.SendArgs{Options: s.Options(), Compress: c.opts.Compression}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	_, dec, err := wire.CodecFor(args.Compress)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		dec.Close()
		return nil, err
	}
	unwatch := c.watch(ctx)
	fail := func(err error) (io.ReadCloser, error) {
		dec.Close()
		if !unwatch() {
			err = fmt.Errorf("%s: %w", wire.OpSend, c.ctxError(ctx))
		}
		c.release()
		return nil, err
	}
	if err := c.writeRequest(ctx, wire.OpSend, args); err != nil {
		return fail(err)
	}
	r, err := c.readResponse(ctx, wire.OpSend)
	if err == nil && r.More {
		err = c.ioError(ctx, wire.OpSend, fmt.Errorf("%w: continued response to send", ErrProtocol))
	}
	if err != nil {
		return fail(err)
	}
	c.streaming.Store(true)
	return &sendStream{c: c, ctx: ctx, dec: dec, rbuf: make([]byte, wire.MaxDataPayload), unwat: unwatch}, nil
}

// Receive feeds stream to a zfs receive on the far side, like
// zfs.CLI.Receive, and returns its outcome: nil, or the far side's typed
// error (wrapping *zfs.ResumableRecvError when partial state was kept).
// When reading stream fails, the far receive is made to fail (it never
// completes on a truncated stream) and the error wraps both the read error
// and the far receive's error.
func (c *Client) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	args := wire.ReceiveArgs{Options: o, Compress: c.opts.Compression}
	if err := args.Validate(); err != nil {
		return err
	}
	if stream == nil {
		return errors.New("receive: no stream")
	}
	enc, _, err := wire.CodecFor(args.Compress)
	if err != nil {
		return err
	}
	defer enc.Close()
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	unwatch := c.watch(ctx)
	err = c.receive(ctx, args, stream, enc)
	if !unwatch() && err != nil {
		return fmt.Errorf("%s: %w", wire.OpReceive, c.ctxError(ctx))
	}
	return err
}

// frameResult is a frame read by a helper goroutine.
type frameResult struct {
	t   wire.FrameType
	p   []byte
	err error
}

func (c *Client) receive(ctx context.Context, args wire.ReceiveArgs, stream io.Reader, enc *wire.Encoder) error {
	if err := c.writeRequest(ctx, wire.OpReceive, args); err != nil {
		return err
	}
	if r, err := c.readResponse(ctx, wire.OpReceive); err != nil {
		return err
	} else if r.More {
		return c.ioError(ctx, wire.OpReceive, fmt.Errorf("%w: continued response to receive", ErrProtocol))
	}
	// From here on the far side may answer early (its zfs recv ended
	// before the stream did): read its final response concurrently. That
	// read is not a wait on the far side until the stream is sent.
	c.passiveReads(true)
	defer c.passiveReads(false)
	final := make(chan frameResult, 1)
	go func() {
		t, p, err := wire.ReadFrame(c.br, nil)
		final <- frameResult{t, p, err}
	}()
	var (
		got    *frameResult
		srcErr error
		sent   int64
		buf    = wire.NewDataBuf()
		out    = c.streamOut()
	)
	// a return before out.Close below gives up on the connection (ioError
	// broke it): nothing waits for the writes still in flight
	defer out.Abandon()
	for got == nil {
		select {
		case f := <-final:
			got = &f
			continue
		default:
		}
		n, err := wire.FillChunk(ctx, stream, buf[wire.FrameHeaderLen:])
		if n > 0 {
			t, fr := enc.Frame(buf[:wire.FrameHeaderLen+n])
			if werr := c.lim.wait(ctx, len(fr)-wire.FrameHeaderLen); werr != nil {
				return c.ioError(ctx, wire.OpReceive, werr)
			}
			if werr := out.WriteFramed(t, fr); werr != nil {
				return c.writeFailed(ctx, werr, final)
			}
			sent += int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if ctx.Err() != nil {
			return c.ioError(ctx, wire.OpReceive, ctx.Err())
		}
		if err != nil {
			srcErr = fmt.Errorf("reading the stream to receive: %w", err)
			break
		}
	}
	st := wire.EndStatus{Bytes: sent}
	switch {
	case srcErr != nil:
		st.Error = wire.EncodeError(fmt.Errorf("%w: %w", ErrStreamAborted, srcErr))
	case got != nil:
		st.Error = wire.EncodeError(fmt.Errorf("%w: the far receive ended early", ErrStreamAborted))
	}
	p, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%s: encoding the end frame: %w", wire.OpReceive, err)
	}
	err = out.WriteFrame(wire.FrameEnd, p)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil && got == nil {
		return c.writeFailed(ctx, err, final)
	}
	if err != nil {
		// the far side answered already, but a channel's frames may have
		// been cut: nothing more goes over this connection
		c.breakConn(fmt.Errorf("%s: writing the end of the stream: %w", wire.OpReceive, err))
	}
	c.passiveReads(false) // now zsync waits for the far side's answer
	if got == nil {
		f := <-final
		got = &f
	}
	rerr := c.finalResponse(ctx, *got)
	switch {
	case srcErr != nil && rerr != nil:
		return fmt.Errorf("%s: %w (far receive: %w)", wire.OpReceive, srcErr, rerr)
	case srcErr != nil:
		return fmt.Errorf("%s: %w", wire.OpReceive, srcErr)
	}
	return rerr
}

// writeFailed handles a failed write during a receive: the far side may
// have said why before it hung up, which explains more than the write
// error does.
func (c *Client) writeFailed(ctx context.Context, werr error, final <-chan frameResult) error {
	err := c.ioError(ctx, wire.OpReceive, werr)
	f := <-final // closing the connection ended the reader
	if f.err == nil && (f.t == wire.FrameResponse || f.t == wire.FrameError) && ctx.Err() == nil {
		return c.finalResponse(ctx, f)
	}
	return err
}

// finalResponse interprets the frame that ends a receive.
func (c *Client) finalResponse(ctx context.Context, f frameResult) error {
	if f.err != nil {
		return c.ioError(ctx, wire.OpReceive, f.err)
	}
	switch f.t {
	case wire.FrameResponse:
		var r wire.Response
		if err := wire.DecodeLenient(f.p, &r); err != nil {
			return c.ioError(ctx, wire.OpReceive, err)
		}
		if r.Error != nil {
			return r.Error.Decode()
		}
		return nil
	case wire.FrameError:
		return c.ioError(ctx, wire.OpReceive, wire.DecodeFatal(f.p))
	}
	return c.ioError(ctx, wire.OpReceive, fmt.Errorf("%w: unexpected %s frame instead of the receive's result", ErrProtocol, f.t))
}

// closeGrace is how long Close of a StartLocal client waits for the child
// to exit after closing its input, before killing it.
const closeGrace = 5 * time.Second

// maxChildStderr bounds the child's stderr kept for error messages.
const maxChildStderr = 64 << 10

func clientLimiter(o ClientOptions) *Limiter {
	if o.Limiter != nil {
		return o.Limiter
	}
	return NewLimiter(o.BandwidthLimit)
}

// passiveReads marks whether the connection's reads count as waiting for
// the idle timeout (see idleConn.setPassive).
func (c *Client) passiveReads(p bool) {
	if c.idle != nil {
		c.idle.setPassive(p)
	}
}

// validator is implemented by the argument structs of every request
// (package wire): Validate checks every name before anything is sent.
type validator interface {
	Validate() error
}
