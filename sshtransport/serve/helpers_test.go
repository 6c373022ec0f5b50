package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
)

var _ Handler = (*servetest.Fake)(nil)

// rawConn is a hand-driven client: it does the handshake and then lets a
// test write arbitrary frames, bypassing the Client's own validation.
type rawConn struct {
	t        testing.TB
	conn     net.Conn
	br       *bufio.Reader
	serveErr chan error
}

func newRaw(t testing.TB, h Handler, so Options) *rawConn {
	t.Helper()
	a, b := net.Pipe()
	r := &rawConn{t: t, conn: a, br: bufio.NewReader(a), serveErr: make(chan error, 1)}
	go func() {
		r.serveErr <- Serve(context.Background(), b, b, h, so)
		_ = b.Close()
	}()
	_ = a.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := r.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ZSYNC-SERVE 1 ") {
		t.Fatalf("banner: %q, %v", line, err)
	}
	if _, err := a.Write([]byte("ZSYNC-CLIENT 1 raw\n")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return r
}

// call sends a request with args and returns the decoded response.
func (r *rawConn) call(op string, args any) wire.Response {
	r.t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		r.t.Fatal(err)
	}
	p, _ := json.Marshal(wire.Request{Op: op, Args: a})
	if err := wire.WriteFrame(r.conn, wire.FrameRequest, p); err != nil {
		r.t.Fatalf("write request: %v", err)
	}
	return r.readResponse()
}

// readResponse reads one response frame.
func (r *rawConn) readResponse() wire.Response {
	r.t.Helper()
	t, payload, err := wire.ReadFrame(r.br, nil)
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	if t != wire.FrameResponse {
		r.t.Fatalf("got a %s frame, want a response", t)
	}
	var resp wire.Response
	if err := wire.DecodeStrict(payload, &resp); err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// serveResult waits for Serve to return.
func (r *rawConn) serveResult() error {
	r.t.Helper()
	select {
	case err := <-r.serveErr:
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatal("Serve did not return")
		return nil
	}
}

// expectFatal reads the error frame the server sends before it hangs up.
func (r *rawConn) expectFatal() error {
	r.t.Helper()
	t, p, err := wire.ReadFrame(r.br, nil)
	if err != nil {
		r.t.Fatalf("reading the error frame: %v", err)
	}
	if t != wire.FrameError {
		r.t.Fatalf("got a %s frame, want an error frame", t)
	}
	err = wire.DecodeFatal(p)
	if !errors.Is(err, wire.ErrProtocol) {
		r.t.Fatalf("error frame %v does not wrap wire.ErrProtocol", err)
	}
	return err
}
