package sshtransport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestReadAheadOrderAndEnd: bytes come out in order through a ring much
// smaller than the stream and smaller than the writer's pieces, and the
// far end's close comes after the last byte.
func TestReadAheadOrderAndEnd(t *testing.T) {
	a, b := net.Pipe()
	r := newReadAhead(a, 1000)
	defer r.Close()
	data := testData(1<<20 + 17)
	go func() {
		_ = writeInPieces(b, data, 4093)
		b.Close()
	}()
	var got bytes.Buffer
	buf := make([]byte, 777)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			break
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, not the %d written, in order", got.Len(), len(data))
	}
}

// TestReadAheadReadsAhead: the far side's bytes are taken off the
// connection, up to the ring's size, while nobody reads; beyond that the
// far side waits.
func TestReadAheadReadsAhead(t *testing.T) {
	a, b := net.Pipe() // unbuffered: a write returns only once read
	r := newReadAhead(a, 1<<16)
	defer r.Close()
	done := make(chan error, 1)
	go func() { _, err := b.Write(testData(1 << 16)); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a ring's worth was not read ahead")
	}
	go func() { _, err := b.Write([]byte{1}); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a byte beyond the ring was taken (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := io.ReadFull(r, make([]byte, 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReadAheadClose: Close closes the connection, ends a blocked Read and
// the goroutine, and Writes go straight through.
func TestReadAheadClose(t *testing.T) {
	a, b := net.Pipe()
	r := newReadAhead(a, 1024)
	go func() { _, _ = io.Copy(io.Discard, b) }()
	if _, err := r.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { _, err := r.Read(make([]byte, 8)); got <- err }()
	// let the Read block first (it usually has by then; a Read that starts
	// after Close must fail too, so the test holds either way)
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("a Read blocked at Close returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Read outlived Close")
	}
	if _, err := b.Write([]byte{1}); err == nil {
		t.Fatal("the connection is open after Close")
	}
}

// abortPipe is a pipe end that records the idle timeout's abort.
type abortPipe struct {
	net.Conn
	aborted chan error
}

func (p *abortPipe) abort(err error) { p.aborted <- err }

// TestReadAheadPassesAbort: the idle timeout of a read-ahead channel still
// tears down the SSH connection (ExecSession.abort), not only the session,
// or a Write waiting for window space on a hung far side never returns.
func TestReadAheadPassesAbort(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	p := &abortPipe{Conn: a, aborted: make(chan error, 1)}
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := newIdleConnClock(newReadAhead(p, 1024), time.Minute, clk.now)
	go func() { _, _ = c.Write([]byte("blocked: nobody reads b")) }()
	waitBusy(c)
	clk.advance(time.Minute)
	if !c.check() {
		t.Fatal("the idle timeout did not fire")
	}
	select {
	case err := <-p.aborted:
		if !errors.Is(err, ErrIdleTimeout) {
			t.Fatalf("abort(%v), want the idle timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the idle timeout fired but the session's abort was never called")
	}
}
