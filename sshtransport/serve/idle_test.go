package serve

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// serveErrWithin runs Serve on one end of a pipe, lets talk use the other,
// and returns Serve's error, failing when it does not return within d.
func serveErrWithin(t *testing.T, o Options, h Handler, d time.Duration, talk func(c net.Conn, br *bufio.Reader)) error {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), b, b, h, o) }()
	br := bufio.NewReader(a)
	go func() {
		// keep reading what the server writes, after talk's reads
		talk(a, br)
		_, _ = br.WriteTo(discard{})
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Serve did not return within %s", d)
		return nil
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestServeHelloTimeout(t *testing.T) {
	err := serveErrWithin(t, Options{HelloTimeout: 200 * time.Millisecond}, servetest.NewFake(), 10*time.Second, func(c net.Conn, br *bufio.Reader) {
		_, _ = br.ReadString('\n') // the banner; then silence
	})
	if !errors.Is(err, ErrClientIdle) || !strings.Contains(err.Error(), "no hello") {
		t.Fatalf("err = %v", err)
	}
}

func TestServeIdleBetweenRequests(t *testing.T) {
	err := serveErrWithin(t, Options{IdleTimeout: 200 * time.Millisecond}, servetest.NewFake(), 10*time.Second, func(c net.Conn, br *bufio.Reader) {
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("ZSYNC-CLIENT 1 test\n"))
	})
	if !errors.Is(err, ErrClientIdle) {
		t.Fatalf("err = %v", err)
	}
}

// A receive whose client stops sending fails (zfs recv sees an aborted
// stream) and Serve ends.
func TestServeIdleInReceive(t *testing.T) {
	h := servetest.NewFake()
	err := serveErrWithin(t, Options{IdleTimeout: 300 * time.Millisecond, Policy: testPolicy(t, nil)}, h, 10*time.Second, func(c net.Conn, br *bufio.Reader) {
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("ZSYNC-CLIENT 1 test\n"))
		p := []byte(`{"op":"receive","args":{"options":{"Target":"backup/laptop/x","Resumable":true}}}`)
		_ = wire.WriteFrame(c, wire.FrameRequest, p)
		head, _ := readStreamHead("fs-full.head")
		_ = wire.WriteFrame(c, wire.FrameData, head)
		// then nothing: a stalled sender
	})
	if !errors.Is(err, ErrClientIdle) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-h.RecvDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's receive did not end")
	}
	if calls := h.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "Receive ") {
		t.Fatalf("calls %v", calls)
	}
}

// Without a timeout a quiet client is waited for (a local child's parent
// may be busy with the other endpoint for a long time).
func TestServeNoIdleTimeoutWaits(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), b, b, servetest.NewFake(), Options{}) }()
	br := bufio.NewReader(a)
	_, _ = br.ReadString('\n')
	_, _ = a.Write([]byte("ZSYNC-CLIENT 1 test\n"))
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	a.Close()
	b.Close()
}

func readStreamHead(name string) ([]byte, error) {
	return os.ReadFile("../../zfs/testdata/streams/" + name)
}

// A client that stops reading a send: serve returns within its idle
// timeout and the send's context (its zfs send) ends.
func TestServeStuckWrite(t *testing.T) {
	h := servetest.NewFake()
	h.SendEndless = true
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), b, b, h, Options{IdleTimeout: 300 * time.Millisecond}) }()
	br := bufio.NewReader(a)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("ZSYNC-CLIENT 1 test\n")); err != nil {
		t.Fatal(err)
	}
	p := []byte(`{"op":"send","args":{"options":{"To":"tank/data@s"}}}`)
	if err := wire.WriteFrame(a, wire.FrameRequest, p); err != nil {
		t.Fatal(err)
	}
	// read the ok response and one data frame, then stop reading
	if _, _, err := wire.ReadFrame(br, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClientIdle) || !strings.Contains(err.Error(), "has not read") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve stayed blocked writing to a client that does not read")
	}
	select {
	case <-h.SendCtxDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the send's context did not end")
	}
}
