package sshtransport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// fakeHandler is a Handler that records every call and answers from its
// fields. Fields may be set before the handler serves.
type fakeHandler struct {
	mu    sync.Mutex
	calls []string

	entries []zfs.Entry
	props   map[string]map[string]string
	holds   map[string][]string
	size    int64
	token   zfs.ResumeToken
	errs    map[string]error // per method name, returned instead of a result

	// Send: sendData is streamed, then sendErr (nil: a clean end).
	sendData []byte
	sendErr  error
	// sendEndless makes Send stream forever until its context ends.
	sendEndless bool
	// sendBlock makes the Send stream's Read block until its context ends.
	sendBlock   bool
	sendCtxDone chan struct{} // receives when a send's context ended

	// Receive: what it read, and the reader's error.
	recvData    []byte
	recvReadErr error
	recvLimit   int // stop reading after this many bytes (0: read all)
	// recvCountOnly makes Receive only count the bytes (into recvCount).
	recvCountOnly bool
	recvCount     int
	// recvPace makes the counting Receive read 64 KiB at a time and wait
	// this long after each read (a slow but steady far zfs recv).
	recvPace   time.Duration
	recvResult error // returned by Receive
	recvDone   chan struct{}

	// block makes List wait for its context.
	block bool

	// destroy, when set, answers DestroySnapshots (instead of errs).
	destroy func(dataset string, names []string) error
}

func newFake() *fakeHandler {
	return &fakeHandler{
		errs:        map[string]error{},
		sendCtxDone: make(chan struct{}, 16),
		recvDone:    make(chan struct{}, 1),
	}
}

func (f *fakeHandler) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeHandler) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeHandler) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs[method]
}

func (f *fakeHandler) List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	f.record("List %v %+v", roots, o)
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := f.err("List"); err != nil {
		return nil, err
	}
	return append([]zfs.Entry(nil), f.entries...), nil
}

func (f *fakeHandler) Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error) {
	f.record("Get %v %v", names, props)
	if err := f.err("Get"); err != nil {
		return nil, err
	}
	return f.props, nil
}

func (f *fakeHandler) Holds(ctx context.Context, snaps []string) (map[string][]string, error) {
	f.record("Holds %v", snaps)
	if err := f.err("Holds"); err != nil {
		return nil, err
	}
	return f.holds, nil
}

func (f *fakeHandler) Hold(ctx context.Context, tag string, snaps []string) error {
	f.record("Hold %s %v", tag, snaps)
	return f.err("Hold")
}

func (f *fakeHandler) Release(ctx context.Context, tag string, snaps []string) error {
	f.record("Release %s %v", tag, snaps)
	return f.err("Release")
}

func (f *fakeHandler) Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error {
	f.record("Bookmark %s %s", snapOrBookmark, bookmark)
	return f.err("Bookmark")
}

func (f *fakeHandler) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	f.record("DestroySnapshots %s %v", dataset, shortNames)
	if f.destroy != nil {
		return f.destroy(dataset, shortNames)
	}
	return f.err("DestroySnapshots")
}

func (f *fakeHandler) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	f.record("DestroyBookmarks %v", bookmarks)
	return f.err("DestroyBookmarks")
}

func (f *fakeHandler) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	f.record("Create %s %v %v", name, props, parents)
	return f.err("Create")
}

func (f *fakeHandler) Set(ctx context.Context, name string, props map[string]string) error {
	f.record("Set %s %v", name, props)
	return f.err("Set")
}

func (f *fakeHandler) Rename(ctx context.Context, from, to string) error {
	f.record("Rename %s %s", from, to)
	return f.err("Rename")
}

func (f *fakeHandler) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	f.record("Send %+v", s.Options())
	if err := f.err("Send"); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		select {
		case f.sendCtxDone <- struct{}{}:
		default:
		}
	}()
	switch {
	case f.sendEndless:
		return &endlessReader{ctx: ctx}, nil
	case f.sendBlock:
		return &blockingReader{ctx: ctx}, nil
	}
	return &failingReader{r: bytes.NewReader(f.sendData), err: f.sendErr}, nil
}

func (f *fakeHandler) SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error) {
	f.record("SendSize %+v", s.Options())
	return f.size, f.err("SendSize")
}

func (f *fakeHandler) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	f.record("Receive %+v", o)
	defer func() {
		select {
		case f.recvDone <- struct{}{}:
		default:
		}
	}()
	if f.recvCountOnly {
		buf := make([]byte, 1<<20)
		var n int
		var err error
		for {
			var m int
			m, err = stream.Read(buf)
			n += m
			if err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		f.mu.Lock()
		f.recvCount, f.recvReadErr = n, err
		f.mu.Unlock()
		return f.recvResult
	}
	var r io.Reader = stream
	if f.recvLimit > 0 {
		r = io.LimitReader(stream, int64(f.recvLimit))
	}
	data, err := io.ReadAll(r)
	f.mu.Lock()
	f.recvData, f.recvReadErr = data, err
	f.mu.Unlock()
	return f.recvResult
}

func (f *fakeHandler) AbortReceive(ctx context.Context, dataset string) error {
	f.record("AbortReceive %s", dataset)
	return f.err("AbortReceive")
}

func (f *fakeHandler) DecodeResumeToken(ctx context.Context, token string) (zfs.ResumeToken, error) {
	f.record("DecodeResumeToken %s", token)
	return f.token, f.err("DecodeResumeToken")
}

// failingReader yields r's data, then err instead of io.EOF (when set).
type failingReader struct {
	r      io.Reader
	err    error
	closed bool
}

func (r *failingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if errors.Is(err, io.EOF) && r.err != nil {
		return n, r.err
	}
	return n, err
}

func (r *failingReader) Close() error { r.closed = true; return nil }

// endlessReader yields data until its context ends.
type endlessReader struct{ ctx context.Context }

func (r *endlessReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func (r *endlessReader) Close() error { return nil }

// blockingReader blocks until its context ends.
type blockingReader struct{ ctx context.Context }

func (r *blockingReader) Read(p []byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (r *blockingReader) Close() error { return nil }

// testData returns n bytes, half compressible text, half pseudo-random.
func testData(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < n; i++ {
		if (i/(300<<10))%2 == 0 {
			b[i] = "zsync replicates datasets. "[i%27]
			continue
		}
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// wireSession is a Client connected to Serve over an in-memory pipe.
type wireSession struct {
	c        *Client
	h        *fakeHandler
	serveErr chan error
	log      *serveLogRecorder
}

type serveLogRecorder struct {
	mu      sync.Mutex
	entries []string
}

func (l *serveLogRecorder) log(op string, args map[string]any, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, fmt.Sprintf("%s %v", op, err))
}

func (l *serveLogRecorder) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

// newSession connects a Client to Serve(h) over net.Pipe. The test's
// cleanup closes the client and checks that Serve ended.
func newSession(t testing.TB, h *fakeHandler, so ServeOptions, co ClientOptions) *wireSession {
	t.Helper()
	a, b := net.Pipe()
	s := &wireSession{h: h, serveErr: make(chan error, 1), log: &serveLogRecorder{}}
	if so.SoftwareVersion == "" {
		so.SoftwareVersion = "v-test"
	}
	if so.Log == nil {
		so.Log = s.log.log
	}
	go func() {
		s.serveErr <- Serve(context.Background(), b, b, h, so)
		_ = b.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClient(ctx, a, co)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	s.c = c
	t.Cleanup(func() {
		_ = c.Close()
		select {
		case <-s.serveErr:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after the client closed")
		}
	})
	return s
}

// rawConn is a hand-driven client: it does the handshake and then lets a
// test write arbitrary frames, bypassing the Client's own validation.
type rawConn struct {
	t        testing.TB
	conn     net.Conn
	br       *bufio.Reader
	serveErr chan error
}

func newRaw(t testing.TB, h Handler, so ServeOptions) *rawConn {
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
	if !errors.Is(err, ErrProtocol) {
		r.t.Fatalf("error frame %v does not wrap ErrProtocol", err)
	}
	return err
}
