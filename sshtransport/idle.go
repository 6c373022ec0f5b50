package sshtransport

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrIdleTimeout: nothing moved to or from the far side for the
// ClientOptions.IdleTimeout while the client was waiting on it (a far zfs
// or zsync serve that hangs, or a connection that swallows data while
// still answering keepalives). The connection is closed.
var ErrIdleTimeout = errors.New("the far side stopped responding")

// IdleTimeoutError is the error of every call on a client whose idle
// timeout fired. It unwraps to ErrIdleTimeout.
type IdleTimeoutError struct {
	Timeout time.Duration
}

// Error implements error.
func (e *IdleTimeoutError) Error() string {
	return fmt.Sprintf("%v: nothing moved to or from it for %v while zsync waited (idle_timeout); the connection was closed",
		ErrIdleTimeout, e.Timeout)
}

// Unwrap returns ErrIdleTimeout.
func (e *IdleTimeoutError) Unwrap() error { return ErrIdleTimeout }

// idleChunk is the largest piece idleConn writes in one call, so that a
// slow but moving stream counts as progress within a frame.
const idleChunk = 128 << 10

// idleConn wraps a client's byte pipe. While a Read or Write is blocked
// and nothing has moved in either direction for timeout, it closes the
// pipe: the blocked call and every later one fail with an
// *IdleTimeoutError. Time the client spends elsewhere (feeding a slow
// local zfs recv, reading a slow local zfs send) never counts: the clock
// starts when a call starts while none was in progress.
type idleConn struct {
	rw      io.ReadWriteCloser
	timeout time.Duration

	mu    sync.Mutex
	busy  int       // Read and Write calls in progress
	last  time.Time // when bytes last moved, or the idle wait began
	fired error     // set once the timeout fired
	stop  chan struct{}
	once  sync.Once

	closeOnce sync.Once
	closeErr  error
}

func newIdleConn(rw io.ReadWriteCloser, timeout time.Duration) *idleConn {
	c := &idleConn{rw: rw, timeout: timeout, last: time.Now(), stop: make(chan struct{})}
	go c.watch()
	return c
}

// watch checks a few times per timeout whether a blocked call has waited
// too long.
func (c *idleConn) watch() {
	tick := time.NewTicker(max(c.timeout/8, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			c.mu.Lock()
			fire := c.fired == nil && c.busy > 0 && now.Sub(c.last) >= c.timeout
			if fire {
				c.fired = &IdleTimeoutError{Timeout: c.timeout}
			}
			c.mu.Unlock()
			if fire {
				// unblock the waiting call: tear down what it waits on
				if a, ok := c.rw.(interface{ abort(error) }); ok {
					a.abort(c.fired)
				}
				_ = c.closeRW()
				return
			}
		}
	}
}

// begin marks a call in progress; it fails at once after the timeout fired.
func (c *idleConn) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired != nil {
		return c.fired
	}
	if c.busy == 0 {
		c.last = time.Now()
	}
	c.busy++
	return nil
}

// end marks a call done after it moved n bytes; it replaces the call's
// error with the timeout's once that fired.
func (c *idleConn) end(n int, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy--
	if n > 0 {
		c.last = time.Now()
	}
	if c.fired != nil && err != nil {
		return c.fired
	}
	return err
}

// Read implements io.Reader.
func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.begin(); err != nil {
		return 0, err
	}
	n, err := c.rw.Read(p)
	return n, c.end(n, err)
}

// Write implements io.Writer, in pieces of at most idleChunk bytes.
func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.begin(); err != nil {
		return 0, err
	}
	total := 0
	var err error
	for len(p) > 0 && err == nil {
		var n int
		n, err = c.rw.Write(p[:min(len(p), idleChunk)])
		total += n
		p = p[n:]
		if n > 0 {
			c.mu.Lock()
			c.last = time.Now()
			c.mu.Unlock()
		}
	}
	return total, c.end(0, err)
}

// Close stops the watch and closes the pipe (once, whoever is first).
func (c *idleConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.closeRW()
}

func (c *idleConn) closeRW() error {
	c.closeOnce.Do(func() { c.closeErr = c.rw.Close() })
	return c.closeErr
}
