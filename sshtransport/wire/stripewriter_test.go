package wire

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

type gatedWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	gate chan struct{} // nil: never blocks
	err  error
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.gate != nil {
		<-g.gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	return g.buf.Write(p)
}

// frames reads back the payloads of the frames written to g.
func (g *gatedWriter) frames(t *testing.T) []string {
	t.Helper()
	var out []string
	r := bytes.NewReader(g.buf.Bytes())
	for {
		_, p, err := ReadFrame(r, nil)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(p))
	}
}

// Frame i goes to writer i mod N, in order; a writer that waits does not
// stop frames due on the others; the end frame takes its turn too.
func TestStripeWriterRoundRobin(t *testing.T) {
	ws := []*gatedWriter{{gate: make(chan struct{})}, {}, {}}
	sw := NewStripeWriter([]io.Writer{ws[0], ws[1], ws[2]})
	send := func(s string) {
		buf := append(make([]byte, FrameHeaderLen), s...)
		if err := sw.WriteFramed(FrameData, buf); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range []string{"a0", "b0", "c0", "a1", "b1", "c1"} {
			send(s)
		}
	}()
	// writer 0 is stuck in "a0" with "a1" queued: the others still get
	// their frames
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting writer held up the others")
	}
	close(ws[0].gate)
	if err := sw.WriteFrame(FrameEnd, []byte("end")); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"a0", "a1", "end"}, {"b0", "b1"}, {"c0", "c1"}}
	for i, w := range ws {
		if got := w.frames(t); !slices.Equal(got, want[i]) {
			t.Errorf("writer %d: %q, want %q", i, got, want[i])
		}
	}
}

// A failed write is returned by a later write and by Close.
func TestStripeWriterError(t *testing.T) {
	boom := errors.New("channel gone")
	ws := []*gatedWriter{{}, {err: boom}}
	sw := NewStripeWriter([]io.Writer{ws[0], ws[1]})
	var err error
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
		err = sw.WriteFramed(FrameData, make([]byte, FrameHeaderLen+10))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, boom) {
		t.Errorf("write: %v, want the channel's error", err)
	}
	if err := sw.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: %v", err)
	}
	if err := sw.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
