package sshtransport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

func header(t frameType, n uint32) []byte {
	h := make([]byte, frameHeaderLen)
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := map[frameType][]byte{
		frameRequest: []byte(`{"op":"list"}`),
		frameData:    bytes.Repeat([]byte{7}, MaxDataPayload),
		frameCancel:  nil,
		frameEnd:     []byte(`{}`),
	}
	order := []frameType{frameRequest, frameData, frameCancel, frameEnd}
	for _, ft := range order {
		if err := writeFrame(&buf, ft, payloads[ft]); err != nil {
			t.Fatal(err)
		}
	}
	rbuf := make([]byte, MaxDataPayload)
	for _, want := range order {
		ft, p, err := readFrame(&buf, rbuf)
		if err != nil || ft != want || !bytes.Equal(p, payloads[want]) {
			t.Fatalf("frame %s: got %s (%d bytes), %v", want, ft, len(p), err)
		}
	}
	if _, _, err := readFrame(&buf, nil); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	// Writers refuse what readers would refuse.
	if err := writeFrame(io.Discard, frameData, make([]byte, MaxDataPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized write: %v", err)
	}
	if err := writeFrame(io.Discard, frameType('?'), nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown type write: %v", err)
	}
}

func TestFrameMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"oversized data", header(frameData, MaxDataPayload+1), "exceeds the limit"},
		{"oversized control", header(frameResponse, MaxControlPayload+1), "exceeds the limit"},
		{"huge length", header(frameRequest, 0xffffffff), "exceeds the limit"},
		{"cancel with payload", header(frameCancel, 1), "exceeds the limit"},
		{"unknown type", header(frameType(0), 3), "unknown frame type 0x00"},
		{"lowercase type", header(frameType('q'), 3), "unknown frame type 0x71"},
		{"truncated header", []byte{'D', 0, 0}, "truncated frame header"},
		{"truncated payload", append(header(frameData, 10), 1, 2, 3), "truncated data frame"},
	} {
		_, _, err := readFrame(bytes.NewReader(tc.in), nil)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrProtocol with %q", tc.name, err, tc.want)
		}
	}
}

// TestFrameOversizedAllocatesNothing: a header announcing a huge frame is
// refused before any payload allocation.
func TestFrameOversizedAllocatesNothing(t *testing.T) {
	h := header(frameRequest, 0xfffffff0)
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = readFrame(bytes.NewReader(h), nil)
	})
	if allocs > 8 {
		t.Errorf("%v allocations for a refused frame", allocs)
	}
	// A data frame reuses the caller's buffer.
	frame := append(header(frameData, 4096), make([]byte, 4096)...)
	buf := make([]byte, MaxDataPayload)
	allocs = testing.AllocsPerRun(100, func() {
		_, _, _ = readFrame(bytes.NewReader(frame), buf)
	})
	if allocs > 2 {
		t.Errorf("%v allocations for a data frame read into a buffer", allocs)
	}
}

// TestServeMalformedFrames: every malformed input ends Serve with
// ErrProtocol after an error frame, and nothing runs.
func TestServeMalformedFrames(t *testing.T) {
	req := func(op, args string) []byte {
		p := []byte(`{"op":"` + op + `","args":` + args + `}`)
		return append(header(frameRequest, uint32(len(p))), p...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"oversized", header(frameRequest, MaxControlPayload+1)},
		{"unknown type", header(frameType('!'), 0)},
		{"data outside a stream", append(header(frameData, 1), 0)},
		{"end outside a stream", append(header(frameEnd, 2), '{', '}')},
		{"bad JSON", append(header(frameRequest, 5), []byte("{op: ")...)},
		{"trailing JSON", append(header(frameRequest, 25), []byte(`{"op":"x","args":{}} {}  `)...)},
		{"unknown request field", req("holds", `{"snaps":[]},"sudo":true`)},
		{"unknown argument field", req("holds", `{"snaps":["tank/a@b"],"recursive":true}`)},
		{"wrong argument type", req("holds", `{"snaps":"tank/a@b"}`)},
		{"truncated", append(header(frameRequest, 100), []byte(`{"op":`)...)},
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
		{"oversized", header(frameResponse, MaxControlPayload+1)},
		{"unknown type", header(frameType(0xff), 0)},
		{"data instead of response", append(header(frameData, 1), 0)},
		{"bad JSON", append(header(frameResponse, 3), []byte("{x}")...)},
		{"trailing comma", append(header(frameResponse, 13), []byte(`{"result":1,}`)...)},
		{"bad result", append(header(frameResponse, 16), []byte(`{"result":"xyz"}`)...)},
		{"continued", append(header(frameResponse, 13), []byte(`{"more":true}`)...)},
		{"error frame", func() []byte {
			p, _ := json.Marshal(encodeError(errors.New("serve: I give up")))
			return append(header(frameError, uint32(len(p))), p...)
		}()},
		{"truncated", append(header(frameResponse, 50), '{')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			go func() {
				defer b.Close()
				_, _ = b.Write([]byte("ZSYNC-SERVE 1 evil\n"))
				br := bytesReader{b}
				if _, err := readLine(br.buffered(), maxHandshakeLine); err != nil {
					return
				}
				if _, _, err := readFrame(br.r, nil); err != nil {
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

func TestDecodeResponseUnknownKindsIgnored(t *testing.T) {
	var r response
	p := []byte(`{"error":{"kinds":["dataset_not_found","from_the_future"],"message":"m"}}`)
	if err := decodeStrict(p, &r); err != nil {
		t.Fatal(err)
	}
	err := r.Error.decode()
	if !errors.Is(err, zfs.ErrDatasetNotFound) || err.Error() != "m" {
		t.Fatalf("err = %v", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and to the
// decoding of every payload it accepts: no panic, no frame beyond its
// limit, and a zstd payload never decompresses beyond MaxDataPayload.
func FuzzReadFrame(f *testing.F) {
	seed := func(t frameType, p []byte) []byte { return append(header(t, uint32(len(p))), p...) }
	resp, _ := json.Marshal(response{Error: encodeError(&zfs.DestroyError{Dataset: "tank/a",
		Failed: map[string]error{"s": zfs.ErrSnapshotHeld}})})
	enc, _, _ := codecFor(compressZstd)
	z := enc.z.EncodeAll(bytes.Repeat([]byte("zsync"), 1000), nil)
	enc.close()
	f.Add(seed(frameRequest, []byte(`{"op":"list","args":{"roots":["tank"]}}`)))
	f.Add(seed(frameResponse, resp))
	f.Add(seed(frameResponse, []byte(`{"result":[{"Name":"tank/a@b","GUID":1}],"more":true}`)))
	f.Add(seed(frameEnd, []byte(`{"error":{"message":"x","resumable":{"dataset":"a","token":"t"}},"bytes":3}`)))
	f.Add(seed(frameError, []byte(`{"kinds":["protocol"],"message":"bad"}`)))
	f.Add(append(seed(frameData, []byte("abc")), seed(frameCancel, nil)...))
	f.Add(seed(frameZData, z))
	f.Add(header(frameData, MaxDataPayload+1))
	f.Add(header(frameRequest, 0xffffffff))
	f.Add([]byte{'Q', 0, 0})
	f.Add([]byte("bash: zsync: command not found\n"))
	f.Add([]byte{})
	dec, err := newDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		buf := make([]byte, MaxDataPayload)
		for i := 0; i < 64; i++ {
			ft, p, err := readFrame(r, buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is neither io.EOF nor ErrProtocol", err)
				}
				return
			}
			limit, ok := ft.maxPayload()
			if !ok || len(p) > limit {
				t.Fatalf("accepted a %s frame of %d bytes", ft, len(p))
			}
			switch ft {
			case frameResponse:
				var resp response
				if decodeStrict(p, &resp) == nil && resp.Error != nil {
					_ = resp.Error.decode().Error()
				}
			case frameEnd:
				var st endStatus
				if decodeStrict(p, &st) == nil && st.Error != nil {
					_ = st.Error.decode().Error()
				}
			case frameError:
				_ = decodeFatal(p).Error()
			case frameRequest:
				var req request
				if decodeStrict(p, &req) == nil {
					if d, ok := argDecoders[req.Op]; ok {
						if a, err := d(req.Args); err == nil {
							_ = a.validate()
							_ = (&Policy{Client: "fuzz", ReceiveRoot: "backup/x"}).authorize(context.Background(), newFake(), a)
						}
					}
				}
			case frameZData:
				if out, err := dec.payload(ft, p); err == nil && len(out) > MaxDataPayload {
					t.Fatalf("zstd frame decompressed to %d bytes", len(out))
				}
			}
		}
	})
}
