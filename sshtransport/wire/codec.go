package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ChunkLinger is how long FillChunk (and serve's splicing of a send
// stream) keeps collecting a partial chunk from a slow source before
// handing it on, so a trickling stream still flows.
const ChunkLinger = 50 * time.Millisecond

// FillChunk reads from r into buf until buf is full, r fails, ctx is done,
// or some bytes have waited ChunkLinger for more. It returns the bytes read
// and r's error (io.EOF at the end, with a possibly short final chunk) or
// the context's error. A Read that blocks is not interrupted: the context
// is checked between reads.
func FillChunk(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	var first time.Time
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return n, context.Cause(ctx)
		}
		switch {
		case m > 0 && first.IsZero():
			first, empty = time.Now(), 0
		case m > 0:
			empty = 0
		default:
			if empty++; empty >= 100 {
				return n, io.ErrNoProgress
			}
		}
		if n > 0 && n < len(buf) && time.Since(first) >= ChunkLinger {
			return n, nil
		}
	}
	return n, nil
}

// NewDataBuf returns a buffer for one data frame with room for its header,
// placed so that the payload (buf[FrameHeaderLen:]) starts on a 64-byte
// boundary. The stream is read into the payload, and the kernel copies
// far more slowly into a destination off a cache-line boundary when its
// source is on one (a file's page; the pages a large pipe write filled):
// measured on a 2-core AMD EPYC guest, reading 512 MiB of a tmpfs file in
// 1 MiB reads took 0.20-0.22 s into a buffer 5 bytes past a boundary and
// 0.05-0.08 s into an aligned one.
func NewDataBuf() []byte {
	// Go places an allocation of this size on a page boundary.
	b := make([]byte, payloadAlign+MaxDataPayload)
	return b[payloadAlign-FrameHeaderLen:]
}

// payloadAlign is the alignment NewDataBuf gives the payload: a cache line.
const payloadAlign = 64

// Encoder compresses data chunks into zstd data frames.
type Encoder struct {
	z    *zstd.Encoder
	zbuf []byte // frameHeaderLen + MaxDataPayload
}

func NewEncoder() (*Encoder, error) {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(MaxDataPayload))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &Encoder{z: z, zbuf: NewDataBuf()}, nil
}

// Frame returns the frame to send for the chunk at raw[FrameHeaderLen:]:
// a zstd data frame when that is smaller, else the raw data frame itself.
// The returned slice has FrameHeaderLen bytes of room for the header.
func (e *Encoder) Frame(raw []byte) (FrameType, []byte) {
	if e == nil {
		return FrameData, raw
	}
	chunk := raw[FrameHeaderLen:]
	c := e.z.EncodeAll(chunk, e.zbuf[FrameHeaderLen:FrameHeaderLen])
	if len(c) >= len(chunk) || len(c) > MaxDataPayload {
		return FrameData, raw
	}
	if cap(c) != cap(e.zbuf)-FrameHeaderLen {
		// EncodeAll grew its own slice; bring the result back.
		copy(e.zbuf[FrameHeaderLen:], c)
	}
	return FrameZData, e.zbuf[:FrameHeaderLen+len(c)]
}

func (e *Encoder) Close() {
	if e != nil {
		_ = e.z.Close()
	}
}

// Decoder decompresses zstd data frames, never producing more than
// MaxDataPayload bytes from one frame (a hostile "zip bomb" fails).
type Decoder struct {
	z   *zstd.Decoder
	out []byte
}

func NewDecoder() (*Decoder, error) {
	z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxDataPayload),
		zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxWindow(MaxDataPayload))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Decoder{z: z, out: make([]byte, 0, MaxDataPayload)}, nil
}

// Payload returns the stream bytes a data frame carries. The result of a
// zstd frame is valid until the next call.
func (d *Decoder) Payload(t FrameType, p []byte) ([]byte, error) {
	switch {
	case t == FrameData:
		return p, nil
	case t == FrameZData && d != nil:
		out, err := d.z.DecodeAll(p, d.out[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: bad zstd data frame: %w", ErrProtocol, err)
		}
		if len(out) > MaxDataPayload {
			return nil, fmt.Errorf("%w: zstd data frame decompresses beyond %d bytes", ErrProtocol, MaxDataPayload)
		}
		return out, nil
	case t == FrameZData:
		return nil, fmt.Errorf("%w: zstd data frame on a stream without compression", ErrProtocol)
	}
	return nil, fmt.Errorf("%w: unexpected %s frame in a stream", ErrProtocol, t)
}

func (d *Decoder) Close() {
	if d != nil {
		d.z.Close()
	}
}

// CodecFor returns the encoder/decoder pair for a negotiated compression.
func CodecFor(compress string) (*Encoder, *Decoder, error) {
	switch compress {
	case "":
		return nil, nil, nil
	case CompressZstd:
		enc, err := NewEncoder()
		if err != nil {
			return nil, nil, err
		}
		dec, err := NewDecoder()
		if err != nil {
			enc.Close()
			return nil, nil, err
		}
		return enc, dec, nil
	}
	return nil, nil, fmt.Errorf("unknown stream compression %q: %w", compress, errors.ErrUnsupported)
}
