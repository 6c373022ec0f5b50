package sshtransport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// joinOpener starts a far Serve per channel the client opens, as an SSH
// forced command does for every session. The far servers' results are
// checked at cleanup: each must end without an error once the client closes.
func joinOpener(t *testing.T, h serve.Handler, so serve.Options) func(context.Context) (io.ReadWriteCloser, error) {
	t.Helper()
	var (
		mu   sync.Mutex // Stripe calls the opener from several goroutines
		ends []chan error
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range ends {
			select {
			case err := <-e:
				if err != nil {
					t.Errorf("joined serve %d: %v", i+1, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("joined serve %d did not return after the client closed", i+1)
			}
		}
	})
	return func(context.Context) (io.ReadWriteCloser, error) {
		a, b := net.Pipe()
		end := make(chan error, 1)
		mu.Lock()
		ends = append(ends, end)
		mu.Unlock()
		go func() {
			end <- serve.Serve(context.Background(), b, b, h, so)
			_ = b.Close()
		}()
		return a, nil
	}
}

func stripedSession(t *testing.T, h *servetest.Fake, co ClientOptions, n int) *wireSession {
	t.Helper()
	s := newSession(t, h, serve.Options{}, co)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.Stripe(ctx, n, joinOpener(t, h, serve.Options{})); err != nil {
		t.Fatalf("Stripe: %v", err)
	}
	if s.c.Streams() != n {
		t.Fatalf("Streams() = %d, want %d", s.c.Streams(), n)
	}
	// runs before joinOpener's check: closing the client ends every
	// channel, so the joined servers end too
	t.Cleanup(func() { _ = s.c.Close() })
	return s
}

// TestStripedStreams: sends and receives over 3 channels arrive whole and
// in order, with and without compression, and the connection stays in step
// for requests, a cancelled send and a receive the far side ends early.
func TestStripedStreams(t *testing.T) {
	for _, comp := range compressions() {
		t.Run("compress="+comp, func(t *testing.T) {
			h := servetest.NewFake()
			h.SendData = testData(7<<20 + 4321)
			s := stripedSession(t, h, ClientOptions{Compression: comp}, 3)
			ctx := context.Background()
			for i := 0; i < 2; i++ {
				rc, err := s.c.Send(ctx, mustSend(t, testSend))
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				if i == 0 {
					got, err = io.ReadAll(rc)
				} else {
					var buf bytes.Buffer
					_, err = io.Copy(&buf, rc)
					got = buf.Bytes()
				}
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if sha256.Sum256(got) != sha256.Sum256(h.SendData) {
					t.Fatalf("send %d: got %d bytes, want %d (or content differs)", i, len(got), len(h.SendData))
				}
				if err := rc.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, size := range []int{6<<20 + 77, 0, 1 << 20, 2 << 20} {
				data := testData(size)
				if err := s.c.Receive(ctx, zfs.RecvOptions{Target: "backup/data"}, bytes.NewReader(data)); err != nil {
					t.Fatalf("receive of %d bytes: %v", size, err)
				}
				if !bytes.Equal(h.RecvData, data) {
					t.Fatalf("receive of %d bytes: got %d bytes (or content differs)", size, len(h.RecvData))
				}
			}
			if _, err := s.c.Holds(ctx, []string{"tank/a@b"}); err != nil {
				t.Fatalf("a request after striped streams: %v", err)
			}
		})
	}
}

func TestStripedSendClosedBeforeTheEnd(t *testing.T) {
	h := servetest.NewFake()
	h.SendEndless = true
	s := stripedSession(t, h, ClientOptions{}, 4)
	rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 5<<20+3)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-h.SendCtxDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the far send was not stopped")
	}
	h.SendEndless = false
	h.SendData = testData(3 << 20)
	wantSend(t, s.c, context.Background(), h.SendData, "a send after a cancelled one")
}

func TestStripedReceiveFarEndsEarly(t *testing.T) {
	h := servetest.NewFake()
	h.RecvLimit = 1 << 20
	h.RecvResult = zfsFailure(zfs.ErrDestinationModified, "cannot receive incremental stream: destination backup/data has been modified\nsince most recent snapshot\n", "zfs", "recv", "backup/data")
	s := stripedSession(t, h, ClientOptions{}, 3)
	src := &countingReader{r: &servetest.EndlessReader{Ctx: context.Background()}}
	err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/data"}, io.LimitReader(src, 1<<40))
	if !errors.Is(err, zfs.ErrDestinationModified) {
		t.Fatalf("err = %v", err)
	}
	if src.n > 64<<20 {
		t.Errorf("the client read %d bytes of its source after the far side gave up", src.n)
	}
	h.RecvLimit, h.RecvResult = 0, nil
	data := testData(4<<20 + 1)
	if err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/data"}, bytes.NewReader(data)); err != nil {
		t.Fatalf("a receive after an early end: %v", err)
	}
	if !bytes.Equal(h.RecvData, data) {
		t.Fatal("a receive after an early end: content differs")
	}
}

// TestStripeJoinRefusals: a channel that does not bring the session's
// token, runs for another client, or brings an index out of range is
// refused; the session ends at once, and the client carries on over its one
// channel.
func TestStripeJoinRefusals(t *testing.T) {
	pol := &serve.Policy{Client: "laptop", Send: func(string) bool { return true }}
	other := &serve.Policy{Client: "intruder", Send: func(string) bool { return true }}
	cases := []struct {
		name  string
		so    serve.Options
		edit  func(*wire.StripeJoinArgs)
		wants string
	}{
		{"wrong token", serve.Options{Policy: pol}, func(a *wire.StripeJoinArgs) {
			b := []byte(a.Token)
			if b[0] == '0' { // another hex digit
				b[0] = '1'
			} else {
				b[0] = '0'
			}
			a.Token = string(b)
		}, "wrong token"},
		{"another client", serve.Options{Policy: other}, func(*wire.StripeJoinArgs) {}, "another client"},
		{"unrestricted joiner", serve.Options{}, func(*wire.StripeJoinArgs) {}, "another client"},
		{"index out of range", serve.Options{Policy: pol}, func(a *wire.StripeJoinArgs) { a.Index = 3 }, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := servetest.NewFake()
			h.SendData = testData(3<<20 + 5)
			s := newSession(t, h, serve.Options{Policy: pol}, ClientOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var sess wire.StripeOpenResult
			if err := s.c.call(ctx, wire.OpStripeOpen, wire.StripeOpenArgs{Streams: 3}, &sess); err != nil {
				t.Fatal(err)
			}
			a := wire.StripeJoinArgs{Session: sess.Session, Token: sess.Token, Index: 1}
			tc.edit(&a)
			rw, _ := joinOpener(t, h, tc.so)(ctx)
			jc, err := NewClient(ctx, rw, ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer jc.Close()
			if err := jc.call(ctx, wire.OpStripeJoin, a, nil); err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("join: %v, want %q", err, tc.wants)
			}
			// the session is over: the right token does not join any more
			rw2, _ := joinOpener(t, h, serve.Options{Policy: pol})(ctx)
			jc2, err := NewClient(ctx, rw2, ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer jc2.Close()
			if err := jc2.call(ctx, wire.OpStripeJoin, wire.StripeJoinArgs{Session: sess.Session, Token: sess.Token, Index: 2}, nil); err == nil {
				t.Fatal("a channel joined after a refusal")
			}
			if err := s.c.call(ctx, wire.OpStripeReady, wire.StripeReadyArgs{}, nil); err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("stripe_ready: %v, want %q", err, tc.wants)
			}
			wantSend(t, s.c, ctx, h.SendData, "send over one channel after a refused join")
		})
	}
}

func TestStripeUnknownSession(t *testing.T) {
	h := servetest.NewFake()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rw, _ := joinOpener(t, h, serve.Options{})(ctx)
	jc, err := NewClient(ctx, rw, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer jc.Close()
	a := wire.StripeJoinArgs{Session: strings.Repeat("ab", wire.StripeSessionLen), Token: strings.Repeat("cd", wire.StripeTokenLen), Index: 1}
	if err := jc.call(ctx, wire.OpStripeJoin, a, nil); err == nil || !strings.Contains(err.Error(), "no session") {
		t.Errorf("an unknown session: %v", err)
	}
}

func TestStripeOpenFailsFallsBack(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(2 << 20)
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	var opened atomic.Int32
	err := s.c.Stripe(context.Background(), 3, func(context.Context) (io.ReadWriteCloser, error) {
		opened.Add(1)
		return nil, errors.New("administratively prohibited: open failed")
	})
	// the channels are tried at once; the first failure stops the other's
	// try, and the failure reported is the real one, not that stop
	if err == nil || !strings.Contains(err.Error(), "administratively prohibited") || opened.Load() < 1 || opened.Load() > 2 {
		t.Fatalf("Stripe = %v after %d opens", err, opened.Load())
	}
	if s.c.Streams() != 1 {
		t.Fatalf("Streams() = %d after a failed Stripe", s.c.Streams())
	}
	wantSend(t, s.c, context.Background(), h.SendData, "send after a failed Stripe")
}

// TestStripedIdleTimeout: a far send that hangs mid-stream is caught by the
// client's idle timeout whichever channel the next frame is due on.
func TestStripedIdleTimeout(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(3<<20 + 5) // frames 0..3: the stall is on channel 1
	h.SendStall = true
	s := stripedSession(t, h, ClientOptions{IdleTimeout: 500 * time.Millisecond}, 3)
	rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("err = %v, want the idle timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled striped send was not caught by the idle timeout")
	}
}

// TestStripeJoinStrangersTurnedAway: a connection to the session's socket
// that does not speak the join is turned away alone: the client's own
// channels still join, and once all joined nothing more can.
func TestStripeJoinStrangersTurnedAway(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(4<<20 + 3)
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var sess wire.StripeOpenResult
	if err := s.c.call(ctx, wire.OpStripeOpen, wire.StripeOpenArgs{Streams: 3}, &sess); err != nil {
		t.Fatal(err)
	}
	stranger, err := net.Dial("unix", "@zsync-stripe-"+sess.Session)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = stranger.Write([]byte("GET / HTTP/1.0\n"))
	ans, _ := io.ReadAll(stranger)
	stranger.Close()
	if !strings.HasPrefix(string(ans), "refused: malformed join") {
		t.Errorf("the stranger got %q", ans)
	}
	open := joinOpener(t, h, serve.Options{})
	var links []*clientLink
	for i := 1; i < 3; i++ {
		rw, _ := open(ctx)
		jc, err := NewClient(ctx, rw, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := jc.call(ctx, wire.OpStripeJoin, wire.StripeJoinArgs{Session: sess.Session, Token: sess.Token, Index: i}, nil); err != nil {
			t.Fatalf("channel %d after a stranger: %v", i, err)
		}
		links = append(links, &clientLink{rw: jc.rw, br: jc.br})
	}
	if _, err := net.Dial("unix", "@zsync-stripe-"+sess.Session); err == nil {
		t.Error("the session's socket still listens after every channel joined")
	}
	if err := s.c.call(ctx, wire.OpStripeReady, wire.StripeReadyArgs{}, nil); err != nil {
		t.Fatalf("stripe_ready: %v", err)
	}
	s.c.links = links
	t.Cleanup(func() { _ = s.c.Close() })
	wantSend(t, s.c, ctx, h.SendData, "striped send")
}

// TestStripedChannelLostBetweenStreams: a joined channel that goes away
// between streams does not cripple the primary: its requests still work.
func TestStripedChannelLostBetweenStreams(t *testing.T) {
	h := servetest.NewFake()
	so := serve.Options{}
	s := newSession(t, h, so, ClientOptions{})
	ctx := context.Background()
	var joined []net.Conn
	err := s.c.Stripe(ctx, 2, func(context.Context) (io.ReadWriteCloser, error) {
		a, b := net.Pipe()
		joined = append(joined, b)
		go func() {
			_ = serve.Serve(context.Background(), b, b, h, so)
			_ = b.Close()
		}()
		return a, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.c.Close() })
	joined[0].Close() // the far end of channel 1 dies
	time.Sleep(200 * time.Millisecond)
	if _, err := s.c.Holds(ctx, []string{"tank/a@b"}); err != nil {
		t.Fatalf("a request after a striped channel was lost: %v", err)
	}
	// the far handler's context is intact: a List that waits on it is
	// still waiting when the client gives up (it used to end at once with
	// "context canceled")
	h.Block = true
	lctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	if _, err := s.c.List(lctx, []string{"tank"}, zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("List after a striped channel was lost: %v, want the client's own deadline", err)
	}
}

// TestStripeCappedByPolicy: the far host grants a restricted client at
// most its max_streams channels, and refuses striping at 1; the client
// then carries on over its one channel.
func TestStripeCappedByPolicy(t *testing.T) {
	for _, c := range []struct{ cap, want int }{{2, 2}, {0, serve.DefaultMaxStreams}, {1, 1}} {
		t.Run(fmt.Sprintf("cap=%d", c.cap), func(t *testing.T) {
			h := servetest.NewFake()
			h.SendData = testData(5<<20 + 1)
			so := serve.Options{Policy: &serve.Policy{Client: "laptop", MaxStreams: c.cap, Send: func(string) bool { return true }}}
			s := newSession(t, h, so, ClientOptions{})
			err := s.c.Stripe(context.Background(), 6, joinOpener(t, h, so))
			t.Cleanup(func() { _ = s.c.Close() })
			if c.want == 1 {
				if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "max_streams") {
					t.Fatalf("Stripe = %v, want a refusal naming max_streams", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if s.c.Streams() != c.want {
				t.Fatalf("Streams() = %d, want %d", s.c.Streams(), c.want)
			}
			wantSend(t, s.c, context.Background(), h.SendData, "send")
		})
	}
}

// TestStripedServeStuckWrite: a client that stops reading a striped send
// ends the far Serve within its idle timeout, as unstriped, also when the
// other channel drained on (each channel's writer has its own clock).
func TestStripedServeStuckWrite(t *testing.T) {
	for _, ahead := range []bool{false, true} {
		t.Run(fmt.Sprintf("linkAhead=%v", ahead), func(t *testing.T) {
			h := servetest.NewFake()
			h.SendEndless = true
			s := newSession(t, h, serve.Options{IdleTimeout: 300 * time.Millisecond}, ClientOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.c.Stripe(ctx, 2, joinOpener(t, h, serve.Options{})); err != nil {
				t.Fatal(err)
			}
			rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
			if err != nil {
				t.Fatal(err)
			}
			if ahead {
				// the joined channel has more buffering downstream (relay,
				// sshd, window): it is drained, the primary is not read
				go func() { _, _ = io.Copy(io.Discard, s.c.links[0].br) }()
			} else if _, err := io.ReadFull(rc, make([]byte, 3<<20)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-s.serveErr:
				if !errors.Is(err, serve.ErrClientIdle) {
					t.Errorf("Serve: %v, want ErrClientIdle", err)
				}
				s.serveErr <- err
			case <-time.After(8 * time.Second):
				t.Error("a striped Serve stayed blocked writing to a client that does not read")
			}
			_ = s.c.Close()
		})
	}
}

// TestStripedLinkFailsPrimaryStuck: a joined channel fails while the write
// on the primary is stuck: Serve does not wait for it, it returns.
func TestStripedLinkFailsPrimaryStuck(t *testing.T) {
	h := servetest.NewFake()
	h.SendEndless = true
	s := newSession(t, h, serve.Options{IdleTimeout: 300 * time.Millisecond}, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.Stripe(ctx, 2, joinOpener(t, h, serve.Options{})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Send(context.Background(), mustSend(t, testSend)); err != nil {
		t.Fatal(err)
	}
	_ = s.c.links[0].rw.Close() // channel 1 is gone; the primary is not read
	select {
	case err := <-s.serveErr:
		if err == nil {
			t.Error("Serve returned no error")
		}
		s.serveErr <- err
	case <-time.After(6 * time.Second):
		t.Error("Serve stayed blocked")
	}
	_ = s.c.Close()
}

// wantSend runs one send on c and fails the test unless it yields want.
func wantSend(t *testing.T, c *Client, ctx context.Context, want []byte, what string) {
	t.Helper()
	rc, err := c.Send(ctx, mustSend(t, testSend))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes of %d, %v", what, len(got), len(want), err)
	}
}

// TestStripeFailureStopsTheOthers: a channel that fails at once does not
// wait for another one's handshake with a far side that never answers.
func TestStripeFailureStopsTheOthers(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(1 << 20)
	s := newSession(t, h, serve.Options{}, ClientOptions{HandshakeTimeout: time.Minute})
	var calls atomic.Int32
	start := time.Now()
	err := s.c.Stripe(context.Background(), 3, func(context.Context) (io.ReadWriteCloser, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("administratively prohibited: open failed")
		}
		a, b := net.Pipe() // a far side that says nothing
		t.Cleanup(func() { b.Close() })
		return a, nil
	})
	if err == nil || !strings.Contains(err.Error(), "administratively prohibited") {
		t.Fatalf("Stripe = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Stripe took %v: it waited for the silent channel's handshake", d)
	}
	wantSend(t, s.c, context.Background(), h.SendData, "send after a failed Stripe")
}
