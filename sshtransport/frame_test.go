package sshtransport

import (
	"github.com/klauspost/compress/zstd"
	"github.com/zsync-dev/zsync/sshtransport/wire"

	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

func header(t wire.FrameType, n uint32) []byte {
	h := make([]byte, wire.FrameHeaderLen)
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// TestServeMalformedFrames: every malformed input ends Serve with
// ErrProtocol after an error frame, and nothing runs.
func TestServeMalformedFrames(t *testing.T) {
	req := func(op, args string) []byte {
		p := []byte(`{"op":"` + op + `","args":` + args + `}`)
		return append(header(wire.FrameRequest, uint32(len(p))), p...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"oversized", header(wire.FrameRequest, wire.MaxControlPayload+1)},
		{"unknown type", header(wire.FrameType('!'), 0)},
		{"data outside a stream", append(header(wire.FrameData, 1), 0)},
		{"end outside a stream", append(header(wire.FrameEnd, 2), '{', '}')},
		{"bad JSON", append(header(wire.FrameRequest, 5), []byte("{op: ")...)},
		{"trailing JSON", append(header(wire.FrameRequest, 25), []byte(`{"op":"x","args":{}} {}  `)...)},
		{"unknown request field", req("holds", `{"snaps":[]},"sudo":true`)},
		{"unknown argument field", req("holds", `{"snaps":["tank/a@b"],"recursive":true}`)},
		{"wrong argument type", req("holds", `{"snaps":"tank/a@b"}`)},
		{"truncated", append(header(wire.FrameRequest, 100), []byte(`{"op":`)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFake()
			r := newRaw(t, h, ServeOptions{})
			go func() {
				_, _ = r.conn.Write(tc.in)
				if tc.name == "truncated" {
					_ = r.conn.Close()
				}
			}()
			if tc.name != "truncated" {
				r.expectFatal()
			}
			err := r.serveResult()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Serve = %v, want ErrProtocol", err)
			}
			if calls := h.Calls(); len(calls) != 0 {
				t.Errorf("handler ran: %v", calls)
			}
		})
	}
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

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and to the
// decoding of every payload it accepts: no panic, no frame beyond its
// limit, and a zstd payload never decompresses beyond MaxDataPayload.
func FuzzReadFrame(f *testing.F) {
	seed := func(t wire.FrameType, p []byte) []byte { return append(header(t, uint32(len(p))), p...) }
	resp, _ := json.Marshal(wire.Response{Error: wire.EncodeError(&zfs.DestroyError{Dataset: "tank/a",
		Failed: map[string]error{"s": zfs.ErrSnapshotHeld}})})
	z := zstdEncode(f, bytes.Repeat([]byte("zsync"), 1000))
	f.Add(seed(wire.FrameRequest, []byte(`{"op":"list","args":{"roots":["tank"]}}`)))
	f.Add(seed(wire.FrameResponse, resp))
	f.Add(seed(wire.FrameResponse, []byte(`{"result":[{"Name":"tank/a@b","GUID":1}],"more":true}`)))
	f.Add(seed(wire.FrameEnd, []byte(`{"error":{"message":"x","resumable":{"dataset":"a","token":"t"}},"bytes":3}`)))
	f.Add(seed(wire.FrameError, []byte(`{"kinds":["protocol"],"message":"bad"}`)))
	f.Add(append(seed(wire.FrameData, []byte("abc")), seed(wire.FrameCancel, nil)...))
	f.Add(seed(wire.FrameZData, z))
	f.Add(header(wire.FrameData, wire.MaxDataPayload+1))
	f.Add(header(wire.FrameRequest, 0xffffffff))
	f.Add([]byte{'Q', 0, 0})
	f.Add([]byte("bash: zsync: command not found\n"))
	f.Add([]byte{})
	dec, err := wire.NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		buf := make([]byte, wire.MaxDataPayload)
		for i := 0; i < 64; i++ {
			ft, p, err := wire.ReadFrame(r, buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is neither io.EOF nor ErrProtocol", err)
				}
				return
			}
			limit, ok := ft.MaxPayload()
			if !ok || len(p) > limit {
				t.Fatalf("accepted a %s frame of %d bytes", ft, len(p))
			}
			switch ft {
			case wire.FrameResponse:
				var resp wire.Response
				if wire.DecodeStrict(p, &resp) == nil && resp.Error != nil {
					_ = resp.Error.Decode().Error()
				}
			case wire.FrameEnd:
				var st wire.EndStatus
				if wire.DecodeStrict(p, &st) == nil && st.Error != nil {
					_ = st.Error.Decode().Error()
				}
			case wire.FrameError:
				_ = wire.DecodeFatal(p).Error()
			case wire.FrameRequest:
				var req wire.Request
				if wire.DecodeStrict(p, &req) == nil {
					if d, ok := argDecoders[req.Op]; ok {
						if a, err := d(req.Args); err == nil {
							_ = a.Validate()
							_ = (&Policy{Client: "fuzz", ReceiveRoot: "backup/x"}).authorize(context.Background(), newFake(), a)
						}
					}
				}
			case wire.FrameZData:
				if out, err := dec.Payload(ft, p); err == nil && len(out) > wire.MaxDataPayload {
					t.Fatalf("zstd frame decompressed to %d bytes", len(out))
				}
			}
		}
	})
}

// zstdEncode compresses data into one zstd frame, as a data frame of a
// compressed stream carries it (or a hostile peer sends it).
func zstdEncode(t testing.TB, data []byte) []byte {
	t.Helper()
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(wire.MaxDataPayload))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	return z.EncodeAll(data, nil)
}
