package sshtransport

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
)

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
	h        *servetest.Fake
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

// newSession connects a Client to serve.Serve(h) over net.Pipe. The test's
// cleanup closes the client and checks that Serve ended.
func newSession(t testing.TB, h *servetest.Fake, so serve.Options, co ClientOptions) *wireSession {
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
		s.serveErr <- serve.Serve(context.Background(), b, b, h, so)
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

// writeInPieces writes data to w in pieces of at most piece bytes and
// returns at the first error, for a peer goroutine of a read test.
func writeInPieces(w io.Writer, data []byte, piece int) error {
	for len(data) > 0 {
		k := min(len(data), piece)
		if _, err := w.Write(data[:k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}
