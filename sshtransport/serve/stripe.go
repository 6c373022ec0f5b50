package serve

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// Striping, the server's part (the protocol is in wire/stripe.go): the
// primary server listens for the other channels' servers on a local socket
// and, once they all joined, reads and writes the frames of each stream
// round robin over its own channel and theirs. A joined server relays
// frames between its channel and the primary server, and does nothing
// else: every request, and so every policy decision, is the primary's.

// stripeJoinTimeout bounds the wait for the other channels to join, and a
// joining server's wait for the primary's answer.
const stripeJoinTimeout = 30 * time.Second

// maxJoinLine bounds the line a joining server sends the primary.
const maxJoinLine = 512

// stripeSession is the primary's state between stripe_open and
// stripe_ready.
type stripeSession struct {
	session  string
	token    []byte
	streams  int
	identity string
	ln       net.Listener

	mu      sync.Mutex
	links   []*stripeLink // index i is channel i+1; nil until joined
	count   int
	all     chan struct{} // closed when every channel joined
	closed  bool
	refused chan struct{} // closed at the first refused channel
	why     string        // why it was refused
	ready   bool          // stripe_ready took the channels
	// log is the server's Options.Log (refusals are logged there)
	log func(op string, args map[string]any, err error)
}

// stripeLink is a joined channel, as the primary sees it.
type stripeLink struct {
	conn   net.Conn
	br     *bufio.Reader
	w      io.Writer
	frames chan inFrame
}

// joinLine is what a joining server tells the primary.
type joinLine struct {
	Token    string `json:"token"`
	Index    int    `json:"index"`
	Identity string `json:"identity"`
}

// identity is the client as the policy knows it: the primary accepts
// channels only from servers that run for the same client (defence in
// depth: the token already proves the joiner got it from this client).
func (s *server) identity() string {
	if s.o.Policy == nil {
		return "unrestricted"
	}
	return "client:" + s.o.Policy.Client
}

// handleStripe answers the striping operations; ok is false for any other
// operation.
func (s *server) handleStripe(req wire.Request) (bool, error) {
	switch req.Op {
	case wire.OpStripeOpen:
		var a wire.StripeOpenArgs
		if err := wire.DecodeStrict(req.Args, &a); err != nil {
			return true, s.fatal(fmt.Errorf("decoding the arguments of %s: %w", req.Op, err))
		}
		res, err := s.stripeOpen(a)
		s.log(req.Op, map[string]any{"streams": a.Streams}, err)
		if err != nil {
			return true, s.respond(nil, err)
		}
		return true, s.respond(res, nil)
	case wire.OpStripeReady:
		var a wire.StripeReadyArgs
		if err := wire.DecodeStrict(req.Args, &a); err != nil {
			return true, s.fatal(fmt.Errorf("decoding the arguments of %s: %w", req.Op, err))
		}
		err := s.stripeReady()
		s.log(req.Op, map[string]any{"streams": len(s.links) + 1}, err)
		return true, s.respond(nil, err)
	case wire.OpStripeJoin:
		var a wire.StripeJoinArgs
		if err := wire.DecodeStrict(req.Args, &a); err != nil {
			return true, s.fatal(fmt.Errorf("decoding the arguments of %s: %w", req.Op, err))
		}
		conn, err := s.stripeJoin(a)
		s.log(req.Op, map[string]any{"index": a.Index}, err)
		if err != nil {
			return true, s.respond(nil, err)
		}
		if err := s.respond(nil, nil); err != nil {
			conn.Close()
			return true, err
		}
		if err := s.relay(conn); err != nil {
			return true, err
		}
		return true, errRelayDone
	}
	return false, nil
}

func (s *server) stripeOpen(a wire.StripeOpenArgs) (wire.StripeOpenResult, error) {
	if err := a.Validate(); err != nil {
		return wire.StripeOpenResult{}, err
	}
	if s.stripe != nil || s.links != nil {
		return wire.StripeOpenResult{}, errors.New("this connection is already striped")
	}
	if p := s.o.Policy; p != nil {
		limit := p.maxStreams()
		if limit < 2 {
			return wire.StripeOpenResult{}, p.forbid(fmt.Sprintf("stripe streams over %d channels", a.Streams),
				"max_streams of its [[serve.client]] on this host is 1")
		}
		a.Streams = min(a.Streams, limit)
	}
	sess := make([]byte, wire.StripeSessionLen)
	tok := make([]byte, wire.StripeTokenLen)
	if _, err := rand.Read(sess); err != nil {
		return wire.StripeOpenResult{}, err
	}
	if _, err := rand.Read(tok); err != nil {
		return wire.StripeOpenResult{}, err
	}
	ss := &stripeSession{
		session: hex.EncodeToString(sess), token: tok, streams: a.Streams, identity: s.identity(),
		links: make([]*stripeLink, a.Streams-1), all: make(chan struct{}), refused: make(chan struct{}), log: s.log,
	}
	ln, err := listenStripe(ss.session)
	if err != nil {
		return wire.StripeOpenResult{}, fmt.Errorf("striping: %w", err)
	}
	ss.ln = ln
	s.stripe = ss
	go ss.accept()
	// a session that is not ready in time is abandoned: its listener and
	// the channels that joined close (they end their far serves)
	time.AfterFunc(stripeJoinTimeout+5*time.Second, func() { ss.abandon() })
	return wire.StripeOpenResult{Session: ss.session, Token: hex.EncodeToString(tok), Streams: a.Streams}, nil
}

// accept takes joining servers until the listener closes.
func (ss *stripeSession) accept() {
	for {
		c, err := ss.ln.Accept()
		if err != nil {
			return
		}
		go ss.admit(c)
	}
}

// admit checks a joining server and registers its channel, or refuses it
// with a line that says why.
func (ss *stripeSession) admit(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(stripeJoinTimeout))
	// Anyone on the host can reach the socket (its name shows in
	// /proc/net/unix): a peer of another user, or one that does not
	// speak, is turned away alone. A channel of this user that brings a
	// wrong token or joins wrongly ends the session: nothing joins after
	// it, and stripe_ready says why at once (unless every channel had
	// joined already).
	turnAway := func(why string) {
		ss.log(wire.OpStripeJoin, map[string]any{"session": ss.session, "refused": why}, errors.New("striping: a channel was refused: "+why))
		_, _ = io.WriteString(c, "refused: "+why+"\n")
		c.Close()
	}
	refuse := func(why string) {
		ss.mu.Lock()
		ended := ss.why == "" && ss.count < ss.streams-1
		if ended {
			ss.why = why
			close(ss.refused)
			ss.closed = true
		}
		ss.mu.Unlock()
		if ended {
			_ = ss.ln.Close()
		}
		turnAway(why)
	}
	if err := checkPeerUser(c); err != nil {
		turnAway(err.Error())
		return
	}
	br := bufio.NewReaderSize(c, 64<<10)
	line, err := readJoinLine(br)
	if err != nil {
		turnAway(err.Error())
		return
	}
	var j joinLine
	if err := wire.DecodeStrict(line, &j); err != nil {
		turnAway("malformed join")
		return
	}
	tok, err := hex.DecodeString(j.Token)
	if err != nil || subtle.ConstantTimeCompare(tok, ss.token) != 1 {
		refuse("wrong token")
		return
	}
	if j.Identity != ss.identity {
		refuse("the channel runs for another client")
		return
	}
	ss.mu.Lock()
	switch {
	case ss.closed:
		ss.mu.Unlock()
		turnAway("the session is closed")
		return
	case j.Index < 1 || j.Index >= ss.streams || ss.links[j.Index-1] != nil:
		ss.mu.Unlock()
		refuse(fmt.Sprintf("channel index %d is taken or out of range", j.Index))
		return
	}
	ss.links[j.Index-1] = &stripeLink{conn: c, br: br, w: c}
	ss.count++
	complete := ss.count == ss.streams-1
	if complete {
		close(ss.all)
		ss.closed = true // nothing more joins
	}
	ss.mu.Unlock()
	if complete {
		_ = ss.ln.Close()
	}
	_ = c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		c.Close() // the joiner is gone: stripe_ready's reads will fail
	}
}

// byteReader reads one byte at a time, with no buffer.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	if _, err := io.ReadFull(b.r, p[:]); err != nil {
		return 0, err
	}
	return p[0], nil
}

func readJoinLine(br io.ByteReader) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return line, nil
		}
		if len(line) >= maxJoinLine {
			return nil, errors.New("join line too long")
		}
		line = append(line, b)
	}
}

// close ends the session's listener and, unless keep, its channels.
func (ss *stripeSession) close(keep bool) {
	ss.mu.Lock()
	ss.closed = true
	ss.ready = ss.ready || keep
	ss.mu.Unlock()
	_ = ss.ln.Close()
	if keep {
		return
	}
	for _, l := range ss.links {
		if l != nil {
			l.conn.Close()
		}
	}
}

// abandon closes a session that stripe_ready did not take.
func (ss *stripeSession) abandon() {
	ss.mu.Lock()
	ready := ss.ready
	ss.mu.Unlock()
	if !ready {
		ss.close(false)
	}
}

// stripeReady waits for every channel, then stripes the connection's
// streams from the next one on.
func (s *server) stripeReady() error {
	ss := s.stripe
	if ss == nil {
		return errors.New("striping: no stripe_open before stripe_ready")
	}
	s.stripe = nil
	t := time.NewTimer(stripeJoinTimeout)
	defer t.Stop()
	select {
	case <-ss.all:
	case <-ss.refused:
		ss.close(false)
		return fmt.Errorf("striping: a channel was refused (%s)", ss.why)
	case <-t.C:
		ss.mu.Lock()
		n := ss.count
		ss.mu.Unlock()
		ss.close(false)
		return fmt.Errorf("striping: %d of %d channels joined within %s", n, ss.streams-1, stripeJoinTimeout)
	case <-s.ctx.Done():
		ss.close(false)
		return s.ctx.Err()
	}
	ss.close(true)
	var watched []*watchedWriter
	for i, l := range ss.links {
		w := &watchedWriter{w: l.conn}
		watched = append(watched, w)
		l.w = w
		l.frames = make(chan inFrame)
		go s.linkReadLoop(l, i+1)
	}
	s.watched.Store(&watched)
	s.links = ss.links
	return nil
}

// linkReadLoop is readLoop for a joined channel. Frames come only inside a
// receive stream; a channel that fails or closes answers every later read
// with its error, so the next stream that needs it fails (and Serve with
// it), while requests on the primary go on: between streams, a lost
// channel is nobody's loss yet.
func (s *server) linkReadLoop(l *stripeLink, index int) {
	for {
		buf := s.getBuf()
		t, p, err := wire.ReadFrame(l.br, *buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			err = fmt.Errorf("striped channel %d lost: %w", index, err)
			for {
				select {
				case l.frames <- inFrame{err: err}:
				case <-s.ctx.Done():
					return
				}
			}
		}
		select {
		case l.frames <- inFrame{t: t, p: p, err: err, buf: buf}:
		case <-s.ctx.Done():
			return
		}
	}
}

// closeLinks ends the striped channels (when Serve returns).
func (s *server) closeLinks() {
	if s.stripe != nil {
		s.stripe.close(false)
	}
	for _, l := range s.links {
		l.conn.Close()
	}
}

// streamOut returns the writer of one stream's frames: straight to the
// connection, or round robin over a striped connection's channels.
func (s *server) streamOut() *wire.StripeWriter {
	ws := []io.Writer{s.w}
	for _, l := range s.links {
		ws = append(ws, l.w)
	}
	return wire.NewStripeWriter(ws)
}

// streamIn is where frame seq of a stream comes from.
func (s *server) streamIn(seq int) chan inFrame {
	if k := seq % (len(s.links) + 1); k > 0 {
		return s.links[k-1].frames
	}
	return s.frames
}

// stripeJoin hands this server's channel to the primary server of a
// session and returns the connection to it.
func (s *server) stripeJoin(a wire.StripeJoinArgs) (net.Conn, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if s.stripe != nil || s.links != nil {
		return nil, errors.New("striping: this channel is a primary, it cannot join another")
	}
	c, err := dialStripe(a.Session)
	if err != nil {
		return nil, fmt.Errorf("striping: no session %s on this host: %w", a.Session, err)
	}
	if err := checkPeerUser(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("striping: session %s: %w", a.Session, err)
	}
	_ = c.SetDeadline(time.Now().Add(stripeJoinTimeout))
	line, err := json.Marshal(joinLine{Token: a.Token, Index: a.Index, Identity: s.identity()})
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		c.Close()
		return nil, fmt.Errorf("striping: joining session %s: %w", a.Session, err)
	}
	// the answer is read byte by byte, so that nothing after it is taken
	// from the connection the relay reads
	ans, err := readJoinLine(byteReader{c})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("striping: joining session %s: %w", a.Session, err)
	}
	if string(ans) != "ok" {
		c.Close()
		return nil, fmt.Errorf("striping: session %s %s", a.Session, strings.TrimSpace(string(ans)))
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// relay is a joined server's life after stripe_join: the client's frames
// go to the primary, the primary's bytes to the client, until either side
// ends. It answers nothing: a request that arrives here is the primary's
// to judge, and the primary refuses frames out of place.
func (s *server) relay(c net.Conn) error {
	defer c.Close()
	toClient := make(chan error, 1)
	go func() {
		_, err := io.Copy(s.w, c)
		toClient <- err
	}()
	for {
		var f inFrame
		select {
		case f = <-s.frames:
		case <-toClient:
			// the primary ended, or the client stopped reading this
			// channel: either way the session is over, and what went
			// wrong is the primary's to report
			return nil
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
		if f.err != nil {
			if errors.Is(f.err, io.EOF) {
				return nil // the client closed the channel: nobody reads on
			}
			return fmt.Errorf("striped channel: %w", f.err)
		}
		err := wire.WriteFrame(c, f.t, f.p)
		s.recycle(f)
		if err != nil {
			return relayEnd("the primary server", err)
		}
	}
}

// errRelayDone ends Serve without an error when a joined channel's relay
// is over.
var errRelayDone = errors.New("the striped channel's relay ended")

func relayEnd(who string, err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return nil // the session ended
	}
	return fmt.Errorf("striped channel: %s: %w", who, err)
}
