package sshtransport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// ErrStripingUnsupported is wrapped by Stripe's error when the far side
// cannot stripe (an older zsync, or a system without the local sockets it
// needs); the client still works over its one channel.
var ErrStripingUnsupported = errors.New("the far side cannot stripe streams")

// clientLink is one more channel of a striped connection.
type clientLink struct {
	rw io.ReadWriteCloser
	br *bufio.Reader
}

// Stripe makes every later stream of the client (Send and Receive) travel
// over n channels in all instead of one: the client's own and n-1 more
// sessions that open starts (each running the far `zsync serve`, as the
// first one does). One SSH channel has about 2 MiB in flight whatever the
// link, which bounds a stream to 2 MiB per round trip; n channels carry n
// times that. Requests and responses stay on the first channel.
//
// On failure the client goes on with its one channel, unless the
// connection itself broke (the error then wraps ErrClosed, and the client
// is unusable, as after any failed call): ErrStripingUnsupported (wrapped) when the far side cannot
// stripe, the failure of opening or joining a channel otherwise. Stripe
// must be called before any stream and at most once. It calls open from
// several goroutines at once (the channels open together).
func (c *Client) Stripe(ctx context.Context, n int, open func(context.Context) (io.ReadWriteCloser, error)) error {
	if c.links != nil {
		return errors.New("sshtransport: the connection is already striped")
	}
	args := wire.StripeOpenArgs{Streams: n}
	if err := args.Validate(); err != nil {
		return err
	}
	var sess wire.StripeOpenResult
	if err := c.call(ctx, wire.OpStripeOpen, args, &sess); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("%w: %w", ErrStripingUnsupported, err)
		}
		return err
	}
	if err := sess.Validate(n); err != nil {
		c.breakConn(err)
		return fmt.Errorf("%w (%w)", err, ErrClosed)
	}
	n = sess.Streams // the far host may grant fewer
	var links []*clientLink
	fail := func(err error) error {
		closeLinks(links)
		if uerr := c.usable(); uerr != nil {
			return fmt.Errorf("%w (%w)", err, uerr)
		}
		return err
	}
	// The channels open and join at once: each costs several round trips
	// (session, exec, the far command's start, handshake, join), so one
	// after another they cost n-1 times that before the first byte moves
	// (measured at 50 ms RTT: 0.65 s per channel). The far side takes the
	// joins in any order; the first failure by index is the one reported.
	// A failure stops the others' handshakes and joins (not their opens:
	// a session keeps the context it opened with).
	links = make([]*clientLink, n-1)
	errs := make([]error, n-1)
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			links[i-1], errs[i-1] = c.joinChannel(ctx, jctx, open, sess, i, n)
			if errs[i-1] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	opened := links[:0:0]
	for _, l := range links {
		if l != nil {
			opened = append(opened, l)
		}
	}
	links = opened
	var first error // the first failure by index that is not a sibling's cancel
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return fail(first)
	}
	if err := c.call(ctx, wire.OpStripeReady, wire.StripeReadyArgs{}, nil); err != nil {
		return fail(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.broken != nil {
		return fail(ErrClosed)
	}
	c.links = links
	return nil
}

// joinChannel opens channel i of n with open (under ctx, which the session
// keeps) and joins it to the far session sess (under jctx). On failure it
// returns the channel it opened, if any, so that the caller closes it.
func (c *Client) joinChannel(ctx, jctx context.Context, open func(context.Context) (io.ReadWriteCloser, error),
	sess wire.StripeOpenResult, i, n int) (*clientLink, error) {
	if err := jctx.Err(); err != nil {
		return nil, fmt.Errorf("striping: channel %d of %d: %w", i+1, n, err)
	}
	rw, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("striping: opening channel %d of %d: %w", i+1, n, err)
	}
	// the joining channel is a client of its own until it joined:
	// handshake, one request, then raw frames
	// with the client's idle timeout: a far side that stops
	// feeding or draining this channel mid-stream is caught here
	jc, err := NewClient(jctx, newReadAhead(rw, linkReadAhead), ClientOptions{SoftwareVersion: c.opts.SoftwareVersion,
		HandshakeTimeout: c.opts.HandshakeTimeout, IdleTimeout: c.opts.IdleTimeout})
	if err != nil {
		return nil, fmt.Errorf("striping: channel %d of %d: %w", i+1, n, err) // NewClient closed rw
	}
	l := &clientLink{rw: jc.rw, br: jc.br}
	join := wire.StripeJoinArgs{Session: sess.Session, Token: sess.Token, Index: i}
	if err := jc.call(jctx, wire.OpStripeJoin, join, nil); err != nil {
		return l, fmt.Errorf("striping: channel %d of %d: %w", i+1, n, err)
	}
	return l, nil
}

// closeLinks closes channels at once (closing an SSH session waits for the
// far command's exit).
func closeLinks(links []*clientLink) {
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.rw.Close()
		}()
	}
	wg.Wait()
}

// Streams returns how many channels the client's streams travel over
// (fewer than Stripe asked when the far host caps it for this client).
func (c *Client) Streams() int { return len(c.links) + 1 }

// streamOut returns the writer of one stream's frames: straight to the
// connection, or round robin over a striped connection's channels.
func (c *Client) streamOut() *wire.StripeWriter {
	ws := []io.Writer{c.rw}
	for _, l := range c.links {
		ws = append(ws, l.rw)
	}
	return wire.NewStripeWriter(ws)
}

// streamIn is where frame seq of a stream comes from.
func (c *Client) streamIn(seq int) io.Reader {
	if k := seq % (len(c.links) + 1); k > 0 {
		return c.links[k-1].br
	}
	return c.br
}

// MaxStreams is the most channels Stripe spreads a connection's streams
// over.
const MaxStreams = wire.MaxStripes
