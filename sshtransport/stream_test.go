package sshtransport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

func mustSend(t testing.TB, o zfs.SendOptions) zfs.ValidatedSend {
	t.Helper()
	vs, err := o.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

var testSend = zfs.SendOptions{From: "tank/data@a", To: "tank/data@b"}

func compressions() []string { return []string{"", wire.CompressZstd} }

func TestSendStream(t *testing.T) {
	for _, comp := range compressions() {
		t.Run("compress="+comp, func(t *testing.T) {
			h := servetest.NewFake()
			h.SendData = testData(5<<20 + 12345)
			s := newSession(t, h, serve.Options{}, ClientOptions{Compression: comp})
			rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			if sha256.Sum256(got) != sha256.Sum256(h.SendData) {
				t.Fatalf("stream differs: got %d bytes, want %d", len(got), len(h.SendData))
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("Close after the end: %v", err)
			}
			// io.Copy goes through WriteTo; the connection is reusable.
			rc, err = s.c.Send(context.Background(), mustSend(t, testSend))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, rc); err != nil {
				t.Fatal(err)
			}
			_ = rc.Close()
			if !bytes.Equal(buf.Bytes(), h.SendData) {
				t.Fatal("second stream differs")
			}
		})
	}
}

func TestSendRefusedAtStart(t *testing.T) {
	h := servetest.NewFake()
	h.Errs["Send"] = zfsFailure(zfs.ErrDatasetNotFound, "cannot open 'tank/data@b': dataset does not exist\n", "zfs", "send", "tank/data@b")
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	_, err := s.c.Send(context.Background(), mustSend(t, testSend))
	if !errors.Is(err, zfs.ErrDatasetNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatalf("connection unusable after a refused send: %v", err)
	}
}

func TestSendFailingMidStream(t *testing.T) {
	for _, comp := range compressions() {
		t.Run("compress="+comp, func(t *testing.T) {
			h := servetest.NewFake()
			h.SendData = testData(3<<20 + 7)
			stderr := "warning: cannot send 'tank/data@b': Input/output error\n"
			h.SendErr = fmt.Errorf("zfs send: %w", &zfs.Error{Args: []string{"zfs", "send", "tank/data@b"}, Stderr: stderr, ExitCode: 1})
			s := newSession(t, h, serve.Options{}, ClientOptions{Compression: comp})
			rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			var ze *zfs.Error
			if !errors.As(err, &ze) || ze.Stderr != stderr {
				t.Fatalf("err = %v, want the far *zfs.Error with its stderr", err)
			}
			if !strings.Contains(err.Error(), "Input/output error") {
				t.Errorf("message %q lacks the far stderr", err)
			}
			if !bytes.Equal(got, h.SendData) {
				t.Errorf("data before the failure: got %d bytes, want %d", len(got), len(h.SendData))
			}
			// The error is sticky.
			if _, err2 := rc.Read(make([]byte, 10)); !errors.As(err2, &ze) {
				t.Errorf("second Read: %v", err2)
			}
			_ = rc.Close()
			if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
				t.Fatalf("connection unusable after a failed send: %v", err)
			}
		})
	}
}

func TestSendCloseBeforeTheEnd(t *testing.T) {
	for _, comp := range compressions() {
		t.Run("compress="+comp, func(t *testing.T) {
			h := servetest.NewFake()
			h.SendEndless = true
			s := newSession(t, h, serve.Options{}, ClientOptions{Compression: comp})
			rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 3<<20)); err != nil {
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
			if _, err := rc.Read(make([]byte, 1)); err == nil {
				t.Error("Read after Close succeeded")
			}
			if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
				t.Fatalf("connection unusable after Close: %v", err)
			}
		})
	}
}

func TestSendContextCancelUnblocksRead(t *testing.T) {
	h := servetest.NewFake()
	h.SendBlock = true
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := s.c.Send(ctx, mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = rc.Read(make([]byte, 100))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	_ = rc.Close()
	select {
	case <-h.SendCtxDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the far send was not stopped after the connection dropped")
	}
}

func TestReceiveStream(t *testing.T) {
	for _, comp := range compressions() {
		t.Run("compress="+comp, func(t *testing.T) {
			h := servetest.NewFake()
			s := newSession(t, h, serve.Options{}, ClientOptions{Compression: comp})
			data := testData(5<<20 + 999)
			o := zfs.RecvOptions{Target: "backup/data", Resumable: true, NoMount: true, Set: map[string]string{"canmount": "noauto"}, Exclude: []string{"mountpoint"}}
			// An io.Reader without WriteTo/ReadFrom shortcuts, in small reads.
			err := s.c.Receive(context.Background(), o, io.LimitReader(bytes.NewReader(data), int64(len(data))))
			if err != nil {
				t.Fatal(err)
			}
			if h.RecvReadErr != nil {
				t.Fatalf("handler's read error: %v", h.RecvReadErr)
			}
			if sha256.Sum256(h.RecvData) != sha256.Sum256(data) {
				t.Fatalf("received %d bytes, want %d (content differs)", len(h.RecvData), len(data))
			}
			if calls := h.Calls(); len(calls) != 1 || !strings.Contains(calls[0], "Target:backup/data Resumable:true NoMount:true Force:false Set:map[canmount:noauto] Exclude:[mountpoint]") {
				t.Errorf("calls = %v", calls)
			}
			// Empty stream, then the connection is still in step.
			if err := s.c.Receive(context.Background(), o, bytes.NewReader(nil)); err != nil {
				t.Fatal(err)
			}
			if len(h.RecvData) != 0 || h.RecvReadErr != nil {
				t.Errorf("empty stream: got %d bytes, %v", len(h.RecvData), h.RecvReadErr)
			}
		})
	}
}

func TestSendIntoReceive(t *testing.T) {
	// The engine's pipeline: a remote send piped into a remote receive.
	src := servetest.NewFake()
	src.SendData = testData(4 << 20)
	dst := servetest.NewFake()
	a := newSession(t, src, serve.Options{}, ClientOptions{Compression: wire.CompressZstd})
	b := newSession(t, dst, serve.Options{}, ClientOptions{})
	rc, err := a.c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/data"}, rc); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	if !bytes.Equal(dst.RecvData, src.SendData) {
		t.Fatal("data differs")
	}
}

func TestReceiveSourceFailsMidStream(t *testing.T) {
	h := servetest.NewFake()
	h.RecvResult = fmt.Errorf("zfs recv: %w; %w",
		zfsFailure(zfs.ErrStreamIncomplete, "cannot receive incremental stream: incomplete stream\n", "zfs", "recv", "-s", "backup/data"),
		&zfs.ResumableRecvError{Dataset: "backup/data", Token: "1-abc-10-789c"})
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	srcErr := errors.New("local zfs send died")
	src := &servetest.FailingReader{R: bytes.NewReader(testData(2<<20 + 5)), Err: srcErr}
	err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/data", Resumable: true}, src)
	if !errors.Is(err, srcErr) {
		t.Errorf("err = %v, want it to wrap the source's error", err)
	}
	var rr *zfs.ResumableRecvError
	if !errors.As(err, &rr) || rr.Token != "1-abc-10-789c" || rr.Dataset != "backup/data" {
		t.Errorf("err = %v, want the far ResumableRecvError", err)
	}
	if !errors.Is(err, zfs.ErrStreamIncomplete) {
		t.Errorf("err = %v, want the far receive's kind", err)
	}
	// What matters most: the far receive did not see a clean end.
	if h.RecvReadErr == nil {
		t.Fatal("the handler's stream ended cleanly: a truncated stream would have been received as complete")
	}
	if !errors.Is(h.RecvReadErr, ErrStreamAborted) || !strings.Contains(h.RecvReadErr.Error(), "local zfs send died") {
		t.Errorf("handler's read error = %v", h.RecvReadErr)
	}
	if len(h.RecvData) != 2<<20+5 {
		t.Errorf("handler got %d bytes before the abort", len(h.RecvData))
	}
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatalf("connection unusable after an aborted receive: %v", err)
	}
}

func TestReceiveFarEndsEarly(t *testing.T) {
	h := servetest.NewFake()
	h.RecvLimit = 1 << 20
	h.RecvResult = zfsFailure(zfs.ErrDestinationModified, "cannot receive incremental stream: destination backup/data has been modified\nsince most recent snapshot\n", "zfs", "recv", "backup/data")
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	// A source far bigger than what the far side reads: the client must
	// stop early, not push it all.
	src := &countingReader{r: &servetest.EndlessReader{Ctx: context.Background()}}
	err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/data"}, io.LimitReader(src, 1<<40))
	if !errors.Is(err, zfs.ErrDestinationModified) {
		t.Fatalf("err = %v", err)
	}
	if src.n > 64<<20 {
		t.Errorf("the client read %d bytes of its source after the far side gave up", src.n)
	}
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatalf("connection unusable after an early receive end: %v", err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReceiveContextCancel(t *testing.T) {
	h := servetest.NewFake()
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	// A source that trickles forever: the client must still give up.
	src := &slowReader{}
	start := time.Now()
	err := s.c.Receive(ctx, zfs.RecvOptions{Target: "backup/data", Resumable: true}, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	select {
	case <-h.RecvDone:
	case <-time.After(30 * time.Second):
		t.Fatal("far receive did not end")
	}
	if h.RecvReadErr == nil {
		t.Error("far receive saw a clean end after the client was cancelled")
	}
}

// slowReader returns a few bytes every 10ms, forever.
type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return copy(p, "zzzz"), nil
}

func TestReceiveRefusedBeforeStreaming(t *testing.T) {
	h := servetest.NewFake()
	s := newSession(t, h, serve.Options{Policy: &serve.Policy{Client: "laptop", ReceiveRoot: "backup/laptop"}}, ClientOptions{})
	src := &countingReader{r: bytes.NewReader(testData(1 << 20))}
	err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "tank/other"}, src)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v", err)
	}
	if src.n != 0 {
		t.Errorf("read %d bytes of a stream the far side refused", src.n)
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("handler ran: %v", calls)
	}
}

func TestBandwidthLimit(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(3 << 20)
	s := newSession(t, h, serve.Options{}, ClientOptions{BandwidthLimit: 4 << 20})
	start := time.Now()
	rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	// 3 MiB at 4 MiB/s with a 1 MiB burst: at least 0.5 s.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("3 MiB at 4 MiB/s took only %v", d)
	}
	start = time.Now()
	if err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/x"}, bytes.NewReader(h.SendData)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("receive: 3 MiB at 4 MiB/s took only %v", d)
	}
}

func TestLimiter(t *testing.T) {
	if NewLimiter(0) != nil {
		t.Fatal("rate 0 must mean no Limiter")
	}
	var nl *Limiter
	if err := nl.wait(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	l := NewLimiter(1 << 20) // 1 MiB/s, burst 256 KiB
	start := time.Now()
	for i := 0; i < 4; i++ {
		if err := l.wait(context.Background(), 128<<10); err != nil {
			t.Fatal(err)
		}
	}
	// 512 KiB with a 256 KiB burst: about 0.25 s.
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("512 KiB at 1 MiB/s took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 10<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("wait on a cancelled context = %v", err)
	}
}

// BenchmarkStream measures Send and Receive of 64 MiB through an os.Pipe
// pair (as a child process or an SSH session would give), with and without
// zstd; b.SetBytes makes `go test -bench` report MB/s.
func BenchmarkStream(b *testing.B) {
	const size = 64 << 20
	data := testData(size)
	for _, comp := range compressions() {
		name := comp
		if name == "" {
			name = "raw"
		}
		b.Run("send/"+name, func(b *testing.B) {
			h := servetest.NewFake()
			h.SendData = data
			c := pipeClient(b, h, ClientOptions{Compression: comp})
			vs := mustSend(b, testSend)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rc, err := c.Send(context.Background(), vs)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				if err != nil || n != size {
					b.Fatalf("copied %d, %v", n, err)
				}
				_ = rc.Close()
			}
		})
		b.Run("receive/"+name, func(b *testing.B) {
			h := servetest.NewFake()
			h.RecvCountOnly = true
			c := pipeClient(b, h, ClientOptions{Compression: comp})
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/x"}, bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if h.RecvCount != size || h.RecvReadErr != nil {
				b.Fatalf("received %d bytes, %v", h.RecvCount, h.RecvReadErr)
			}
		})
	}
}

// pipeClient connects a Client to serve.Serve(h) over two os.Pipe pairs.
func pipeClient(b testing.TB, h serve.Handler, co ClientOptions) *Client {
	b.Helper()
	cr, sw, err := os.Pipe() // server -> client
	if err != nil {
		b.Fatal(err)
	}
	return pipeClientOut(b, h, co, cr, sw)
}

// pipeClientOut is pipeClient with the server's output pipe given: cr the
// client's end, sw the server's.
func pipeClientOut(b testing.TB, h serve.Handler, co ClientOptions, cr, sw *os.File) *Client {
	b.Helper()
	sr, cw, err := os.Pipe() // client -> server
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- serve.Serve(context.Background(), sr, sw, h, serve.Options{SoftwareVersion: "bench"})
		_ = sw.Close()
		_ = sr.Close()
	}()
	c, err := NewClient(context.Background(), struct {
		io.Reader
		io.Writer
		io.Closer
	}{cr, cw, closers{cw, cr}}, co)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	return c
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func TestCallDuringOpenSendFailsFast(t *testing.T) {
	h := servetest.NewFake()
	h.SendData = testData(3 << 20)
	s := newSession(t, h, serve.Options{}, ClientOptions{})
	rc, err := s.c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/x"}, rc) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "open send stream") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Receive on the client holding the stream deadlocked")
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	if _, err := s.c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatalf("after the stream: %v", err)
	}
}

func TestStreamLengthIsCheckedByClient(t *testing.T) {
	// Client side: a send stream shorter than announced is an error.
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		br := bufio.NewReader(b)
		_, _ = b.Write([]byte("ZSYNC-SERVE 1 short\n"))
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		if _, _, err := wire.ReadFrame(br, nil); err != nil {
			return
		}
		_ = wire.WriteFrame(b, wire.FrameResponse, []byte(`{}`))
		_ = wire.WriteFrame(b, wire.FrameData, []byte("abc"))
		_ = wire.WriteFrame(b, wire.FrameEnd, []byte(`{"bytes":5}`))
		_, _ = io.Copy(io.Discard, br)
	}()
	c, err := NewClient(context.Background(), a, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrProtocol) || string(got) != "abc" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}
