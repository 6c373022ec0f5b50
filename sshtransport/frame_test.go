package sshtransport

import (
	"github.com/zsync-dev/zsync/sshtransport/wire"

	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func header(t wire.FrameType, n uint32) []byte {
	h := make([]byte, wire.FrameHeaderLen)
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// TestClientMalformedFrames: a far side answering with garbage gives the
// client a clean ErrProtocol, and the client is unusable afterwards.
func TestClientMalformedFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"oversized", header(wire.FrameResponse, wire.MaxControlPayload+1)},
		{"unknown type", header(wire.FrameType(0xff), 0)},
		{"data instead of response", append(header(wire.FrameData, 1), 0)},
		{"bad JSON", append(header(wire.FrameResponse, 3), []byte("{x}")...)},
		{"trailing comma", append(header(wire.FrameResponse, 13), []byte(`{"result":1,}`)...)},
		{"bad result", append(header(wire.FrameResponse, 16), []byte(`{"result":"xyz"}`)...)},
		{"continued", append(header(wire.FrameResponse, 13), []byte(`{"more":true}`)...)},
		{"error frame", func() []byte {
			p, _ := json.Marshal(wire.EncodeError(errors.New("serve: I give up")))
			return append(header(wire.FrameError, uint32(len(p))), p...)
		}()},
		{"truncated", append(header(wire.FrameResponse, 50), '{')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			go func() {
				defer b.Close()
				_, _ = b.Write([]byte("ZSYNC-SERVE 1 evil\n"))
				br := bytesReader{b}
				if _, err := wire.ReadLine(br.buffered(), wire.MaxHandshakeLine); err != nil {
					return
				}
				if _, _, err := wire.ReadFrame(br.r, nil); err != nil {
					return
				}
				_, _ = b.Write(tc.answer)
			}()
			c, err := NewClient(context.Background(), a, ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			done := make(chan error, 1)
			go func() {
				_, err := c.Holds(context.Background(), []string{"tank/a@b"})
				done <- err
			}()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("client hangs on a malformed answer")
			}
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
			if _, err := c.Holds(context.Background(), []string{"tank/a@b"}); !errors.Is(err, ErrClosed) {
				t.Errorf("next call: %v, want ErrClosed", err)
			}
		})
	}
}

// bytesReader reads the hello line byte by byte, leaving the frames.
type bytesReader struct{ r io.Reader }

func (b bytesReader) buffered() *bufioLike { return &bufioLike{r: b.r} }

// bufioLike is the minimum of bufio.Reader that readLine needs, without
// reading ahead (so the frame after the line stays on the connection).
type bufioLike struct{ r io.Reader }

func (b *bufioLike) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.r, c[:])
	return c[0], err
}
