package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

func header(t wire.FrameType, n uint32) []byte {
	h := make([]byte, wire.FrameHeaderLen)
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// TestServeMalformedFrames: every malformed input ends Serve with
// wire.ErrProtocol after an error frame, and nothing runs.
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
			h := servetest.NewFake()
			r := newRaw(t, h, Options{})
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
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("Serve = %v, want wire.ErrProtocol", err)
			}
			if calls := h.Calls(); len(calls) != 0 {
				t.Errorf("handler ran: %v", calls)
			}
		})
	}
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
				if err != io.EOF && !errors.Is(err, wire.ErrProtocol) {
					t.Fatalf("error %v is neither io.EOF nor wire.ErrProtocol", err)
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
					if d, ok := requests[req.Op]; ok {
						if r, err := d(req.Args); err == nil && r.validate() == nil {
							g := gateFor(&Policy{Client: "fuzz", ReceiveRoot: "backup/x"}, servetest.NewFake())
							_, _ = r.authorize(context.Background(), g)
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
