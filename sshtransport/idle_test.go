package sshtransport

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/zfs"
)

// A far side that never answers: the real watch goroutine fires the
// timeout and the call fails with it (no upper bound on when: the test
// only needs it to happen).
func TestIdleTimeoutClosesAHungFarSide(t *testing.T) {
	h := servetest.NewFake()
	h.Block = true // List never answers
	// 2s: well above what the handshake needs even on a loaded machine
	s := newSession(t, h, serve.Options{}, ClientOptions{IdleTimeout: 2 * time.Second})
	_, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{})
	var ie *IdleTimeoutError
	if !errors.Is(err, ErrIdleTimeout) || !errors.As(err, &ie) || ie.Timeout != 2*time.Second {
		t.Fatalf("List on a hung far side: %v; want an *IdleTimeoutError of 2s", err)
	}
	// The client is unusable afterwards, and says so at once.
	if _, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{}); err == nil {
		t.Fatal("a second List after the idle timeout succeeded")
	}
}

// The tests below drive idleConn on a fake clock and call its check by
// hand, so nothing depends on how fast this machine is.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// scriptedPipe is the far side of an idleConn: Read returns what the test
// queues (and blocks until then), Write calls onWrite, and both fail once
// the pipe is closed.
type scriptedPipe struct {
	reads     chan []byte
	onWrite   func([]byte)
	closed    chan struct{}
	closeOnce sync.Once
}

func newScriptedPipe() *scriptedPipe {
	return &scriptedPipe{reads: make(chan []byte, 4), closed: make(chan struct{})}
}

func (p *scriptedPipe) Read(b []byte) (int, error) {
	select {
	case data := <-p.reads:
		return copy(b, data), nil
	case <-p.closed:
		return 0, io.ErrClosedPipe
	}
}

func (p *scriptedPipe) Write(b []byte) (int, error) {
	select {
	case <-p.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	if p.onWrite != nil {
		p.onWrite(b)
	}
	return len(b), nil
}

func (p *scriptedPipe) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// waitBusy waits until a call of c has begun.
func waitBusy(c *idleConn) {
	for {
		c.mu.Lock()
		busy := c.busy
		c.mu.Unlock()
		if busy > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestIdleConnFiresOnlyAfterTheTimeout(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newScriptedPipe()
	c := newIdleConnClock(p, time.Minute, clk.now)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	waitBusy(c)
	clk.advance(59 * time.Second)
	if c.check() {
		t.Fatal("fired after 59s of a 1m timeout")
	}
	clk.advance(time.Second)
	if !c.check() {
		t.Fatal("did not fire after 1m with a Read blocked")
	}
	var ie *IdleTimeoutError
	if err := <-done; !errors.As(err, &ie) || ie.Timeout != time.Minute {
		t.Fatalf("blocked Read returned %v, want an *IdleTimeoutError of 1m", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("Write after the timeout: %v, want ErrIdleTimeout", err)
	}
}

func TestIdleConnCountsSlowWritesAsProgress(t *testing.T) {
	for _, c := range []struct {
		perChunk time.Duration // fake time each 128 KiB piece takes
		fire     bool
	}{
		{40 * time.Second, false}, // slow but moving: 8 pieces take 5m20s
		{61 * time.Second, true},  // one piece takes longer than the timeout
	} {
		clk := &fakeClock{t: time.Unix(1000, 0)}
		p := newScriptedPipe()
		ic := newIdleConnClock(p, time.Minute, clk.now)
		fired := false
		p.onWrite = func([]byte) {
			clk.advance(c.perChunk)
			fired = fired || ic.check() // the watch looks while the piece is in flight
		}
		n, err := ic.Write(make([]byte, 1<<20))
		switch {
		case c.fire && (!fired || !errors.Is(err, ErrIdleTimeout)):
			t.Errorf("%v per piece: fired %v, Write %d, %v; want the timeout", c.perChunk, fired, n, err)
		case !c.fire && (fired || err != nil || n != 1<<20):
			t.Errorf("%v per piece: fired %v, Write %d, %v; want all 1 MiB written", c.perChunk, fired, n, err)
		}
	}
}

func TestIdleConnIgnoresTimeBetweenCalls(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newScriptedPipe()
	c := newIdleConnClock(p, time.Minute, clk.now)
	p.reads <- []byte("answer")
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	clk.advance(10 * time.Minute) // the client busy elsewhere: no call waits on the far side
	if c.check() {
		t.Fatal("fired with no call in progress")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	waitBusy(c)
	if c.check() {
		t.Fatal("fired at once on a new call: the pause before it was counted")
	}
	clk.advance(30 * time.Second)
	p.reads <- []byte("late answer") // bytes move: the call returns
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
}

// While the client sends a stream, its listening Read is no wait on the
// far side (reading a slow local zfs send must not count); the wait for
// the final answer starts once the stream is sent.
func TestIdleConnPassiveReadsDoNotCount(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newScriptedPipe()
	c := newIdleConnClock(p, time.Minute, clk.now)
	c.setPassive(true)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	waitBusy(c)
	clk.advance(10 * time.Minute) // a slow local source, limiter waits...
	if c.check() {
		t.Fatal("fired on a listening Read while the client was sending")
	}
	c.setPassive(false) // stream sent: now zsync waits
	if c.check() {
		t.Fatal("fired at once when the wait for the answer began")
	}
	clk.advance(time.Minute)
	if !c.check() {
		t.Fatal("did not fire 1m into the wait for the answer")
	}
	if err := <-done; !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("Read: %v, want ErrIdleTimeout", err)
	}
}
