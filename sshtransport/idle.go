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
	return fmt.Sprintf("%v: nothing moved to or from it for %v while zsync waited (idle_timeout); the connection was closed and the next run resumes. Check the far host's zfs and zsync serve; if it is legitimately that slow (a very large destroy), raise idle_timeout in [job.remote]",
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
// starts when a call starts while none was in progress, and a Read only
// listening while the client sends (setPassive) is no wait.
type idleConn struct {
	rw      io.ReadWriteCloser
	timeout time.Duration

	mu    sync.Mutex
	busy  int // Read and Write calls in progress
	reads int // of which Reads
	// passive: Reads do not count as waiting (the client is itself
	// sending; a Read only listens for an early answer meanwhile).
	passive bool
	last    time.Time // when bytes last moved, or the idle wait began
	fired   error     // set once the timeout fired
	stop    chan struct{}
	once    sync.Once

	closeOnce sync.Once
	closeErr  error

	now func() time.Time // the clock (tests use a fake one)
}

func newIdleConn(rw io.ReadWriteCloser, timeout time.Duration) *idleConn {
	c := newIdleConnClock(rw, timeout, time.Now)
	tick := time.NewTicker(max(timeout/8, time.Millisecond))
	go func() {
		defer tick.Stop()
		c.watch(tick.C)
	}()
	return c
}

// newIdleConnClock returns an idleConn on the clock now, without the
// goroutine that checks it: the caller calls watch or check.
func newIdleConnClock(rw io.ReadWriteCloser, timeout time.Duration, now func() time.Time) *idleConn {
	return &idleConn{rw: rw, timeout: timeout, last: now(), stop: make(chan struct{}), now: now}
}

// watch checks, at every tick (a few per timeout), whether a blocked call
// has waited too long, until the timeout fires or the conn is closed.
func (c *idleConn) watch(tick <-chan time.Time) {
	for {
		select {
		case <-c.stop:
			return
		case <-tick:
			if c.check() {
				return
			}
		}
	}
}

// check fires the timeout when a call is blocked and nothing has moved
// for timeout: it tears down what the call waits on, so it returns.
func (c *idleConn) check() bool {
	c.mu.Lock()
	waiting := c.busy > c.reads || (c.reads > 0 && !c.passive)
	fire := c.fired == nil && waiting && c.now().Sub(c.last) >= c.timeout
	if fire {
		c.fired = &IdleTimeoutError{Timeout: c.timeout}
	}
	reason := c.fired
	c.mu.Unlock()
	if !fire {
		return false
	}
	if a, ok := c.rw.(interface{ abort(error) }); ok {
		a.abort(reason)
	}
	_ = c.closeRW()
	return true
}

// begin marks a call in progress; it fails at once after the timeout fired.
func (c *idleConn) begin(read bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired != nil {
		return c.fired
	}
	if c.busy == 0 {
		c.last = c.now()
	}
	c.busy++
	if read {
		c.reads++
	}
	return nil
}

// setPassive says whether Reads count as waiting on the far side. The
// client's receive sets it while it sends the stream (a Read then only
// listens for an early answer, and time spent reading a slow local zfs
// send must not count) and clears it once the stream is sent: the wait
// for the final answer starts then.
func (c *idleConn) setPassive(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passive && !p {
		c.last = c.now()
	}
	c.passive = p
}

// end marks a call done after it moved n bytes; it replaces the call's
// error with the timeout's once that fired.
func (c *idleConn) end(read bool, n int, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy--
	if read {
		c.reads--
	}
	if n > 0 {
		c.last = c.now()
	}
	if c.fired != nil && err != nil {
		return c.fired
	}
	return err
}

// Read implements io.Reader.
func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.begin(true); err != nil {
		return 0, err
	}
	n, err := c.rw.Read(p)
	return n, c.end(true, n, err)
}

// Write implements io.Writer, in pieces of at most idleChunk bytes.
func (c *idleConn) Write(p []byte) (int, error) {
	if err := c.begin(false); err != nil {
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
			c.last = c.now()
			c.mu.Unlock()
		}
	}
	return total, c.end(false, 0, err)
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
