//go:build linux

package sshtransport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/zfs"
)

// pipeSession is a Client connected to Serve over two OS pipes, as a local
// serve child or the sshd's pipes to `zsync serve --stdio` connect them:
// Serve's output is a pipe, so a send stream that lends its pipe is
// spliced. With blockingOut, Serve's end of its output is in blocking mode,
// as the stdout an sshd or os/exec gives a child is (Go's poller cannot
// wait on it).
func pipeSession(t *testing.T, h serve.Handler, blockingOut bool) *Client {
	t.Helper()
	if !blockingOut {
		return pipeClient(t, h, ClientOptions{})
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	// the client's end non-blocking (os.Pipe's kind), Serve's blocking
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	return pipeClientOut(t, h, ClientOptions{}, os.NewFile(uintptr(fds[0]), "out-r"), os.NewFile(uintptr(fds[1]), "out-w"))
}

// pipeStream is a send stream as the zfs package's is: a pipe filled by
// another writer (here a goroutine writing the way zfs send does: a
// 312-byte record header, then a block), which it lends with File, and
// whose Read reports err at the end.
type pipeStream struct {
	r        *os.File
	err      error
	readData atomic.Int64 // bytes handed out by Read
	ctx      context.Context
}

func (p *pipeStream) File() *os.File { return p.r }

func (p *pipeStream) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.readData.Add(int64(n))
	if errors.Is(err, io.EOF) && p.err != nil {
		return n, p.err
	}
	return n, err
}

func (p *pipeStream) Close() error { return p.r.Close() }

// pipeHandler serves Send from newStream.
type pipeHandler struct {
	*servetest.Fake
	newStream func(ctx context.Context) (io.ReadCloser, error)
}

func (h *pipeHandler) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	return h.newStream(ctx)
}

// feedLikeZfsSend writes data to w as records: a 312-byte header, then up
// to 128 KiB, with a short record now and then; then stall (when set)
// blocks until ctx ends, and w is closed.
func feedLikeZfsSend(ctx context.Context, w *os.File, data []byte, stall bool) {
	defer w.Close()
	for i := 0; len(data) > 0; i++ {
		k := min(len(data), 312)
		if _, err := w.Write(data[:k]); err != nil {
			return
		}
		data = data[k:]
		k = min(len(data), 128<<10)
		if i%7 == 3 {
			k = min(len(data), 4321)
		}
		if _, err := w.Write(data[:k]); err != nil {
			return
		}
		data = data[k:]
	}
	if stall {
		<-ctx.Done()
	}
}

// A send stream that lends its pipe reaches the client whole through a
// pipe output: spliced (its Read hands out no data, only the end), in
// frames the client accepts, with the far side's failure at the end
// reported.
func TestSpliceSendStream(t *testing.T) {
	for _, tc := range []struct{ failing, blockingOut bool }{{false, false}, {true, false}, {false, true}} {
		failing := tc.failing
		t.Run(fmt.Sprintf("failing=%v,blockingOut=%v", tc.failing, tc.blockingOut), func(t *testing.T) {
			data := testData(6<<20 + 777)
			var streams []*pipeStream
			h := &pipeHandler{Fake: servetest.NewFake(), newStream: func(ctx context.Context) (io.ReadCloser, error) {
				r, w, err := os.Pipe()
				if err != nil {
					return nil, err
				}
				ps := &pipeStream{r: r, ctx: ctx}
				if failing {
					ps.err = fmt.Errorf("zfs send: %w", &zfs.Error{Args: []string{"zfs", "send", "tank/data@b"}, Stderr: "cannot send: I/O error", ExitCode: 1})
				}
				streams = append(streams, ps)
				go feedLikeZfsSend(ctx, w, data, false)
				return ps, nil
			}}
			c := pipeSession(t, h, tc.blockingOut)
			for range 2 { // twice: the connection stays in step
				rc, err := c.Send(context.Background(), mustSend(t, testSend))
				if err != nil {
					t.Fatal(err)
				}
				// slowly at first, so that Serve's output pipe fills
				head := make([]byte, 2<<20)
				for i := 0; i < len(head); i += 256 << 10 {
					time.Sleep(20 * time.Millisecond)
					if _, err := io.ReadFull(rc, head[i:i+256<<10]); err != nil {
						t.Fatal(err)
					}
				}
				rest, rerr := io.ReadAll(rc)
				got := append(head, rest...)
				cerr := rc.Close()
				if sha256.Sum256(got) != sha256.Sum256(data) {
					t.Fatalf("got %d bytes, want %d (content differs)", len(got), len(data))
				}
				if failing {
					if rerr == nil || !bytes.Contains([]byte(rerr.Error()), []byte("I/O error")) {
						t.Fatalf("read error %v, want the far zfs send's failure", rerr)
					}
				} else if rerr != nil || cerr != nil {
					t.Fatalf("read %v, close %v", rerr, cerr)
				}
				if n := streams[len(streams)-1].readData.Load(); n != 0 {
					t.Errorf("the stream's Read handed out %d bytes: it was copied, not spliced", n)
				}
			}
		})
	}
}

// A regular file is spliced too (tmpfs's answers EAGAIN to a non-blocking
// splice), and a cancel by the client while the far stream waits for data
// ends the stream at once and keeps the connection.
func TestSpliceSendFileAndCancel(t *testing.T) {
	data := testData(3<<20 + 5)
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err = os.MkdirTemp("/dev/shm", "zsync-splice-test"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	file := filepath.Join(dir, "stream")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	stall := false
	h := &pipeHandler{Fake: servetest.NewFake(), newStream: func(ctx context.Context) (io.ReadCloser, error) {
		if !stall {
			return os.Open(file)
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		go feedLikeZfsSend(ctx, w, data[:1<<20], true)
		return &pipeStream{r: r, ctx: ctx}, nil
	}}
	c := pipeSession(t, h, false)
	rc, err := c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file: got %d bytes (err %v), want %d", len(got), err, len(data))
	}
	_ = rc.Close()

	stall = true
	rc, err = c.Send(context.Background(), mustSend(t, testSend))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cancel took %v", d)
	}
	if _, err := c.Holds(context.Background(), []string{"tank/a@b"}); err != nil {
		t.Fatalf("connection unusable after the cancel: %v", err)
	}
}
