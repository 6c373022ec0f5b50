package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// After the handshake lines, both directions carry frames:
//
//	+------+----------------------+-----------------+
//	| type | length (uint32, BE)  | payload         |
//	+------+----------------------+-----------------+
//	  1 B          4 B              length bytes
//
// Control frames carry JSON and may be up to MaxControlPayload bytes; data
// frames carry stream bytes and may be up to MaxDataPayload bytes. A frame
// of an unknown type or over its limit is a protocol error: the reader
// refuses it from its 5-byte header, before allocating anything.

// FrameType is the first byte of a frame.
type FrameType byte

// The frame types. Letters, so that a hex dump of a session is readable.
const (
	FrameRequest  FrameType = 'Q' // client -> server: JSON request
	FrameResponse FrameType = 'R' // server -> client: JSON response
	FrameData     FrameType = 'D' // both: raw stream bytes
	FrameZData    FrameType = 'Z' // both: one zstd frame of stream bytes (negotiated per stream)
	FrameEnd      FrameType = 'E' // both: end of a stream, JSON status
	FrameCancel   FrameType = 'C' // client -> server: stop the running send (empty payload)
	FrameError    FrameType = 'X' // server -> client: fatal protocol error, JSON wire error; the server hangs up
)

// Frame size limits.
const (
	// MaxControlPayload bounds the JSON payload of a control frame
	// (request, response, end, error): a listing of many snapshots is a
	// few MiB.
	MaxControlPayload = 16 << 20
	// MaxDataPayload bounds the payload of a data frame, and the
	// decompressed size of a zstd data frame.
	MaxDataPayload = 1 << 20
)

// FrameHeaderLen is the size of a frame header.
const FrameHeaderLen = 5

// String names a frame type for messages.
func (t FrameType) String() string {
	switch t {
	case FrameRequest:
		return "request"
	case FrameResponse:
		return "response"
	case FrameData:
		return "data"
	case FrameZData:
		return "zstd data"
	case FrameEnd:
		return "end"
	case FrameCancel:
		return "cancel"
	case FrameError:
		return "error"
	}
	return fmt.Sprintf("unknown (0x%02x)", byte(t))
}

// MaxPayload returns the payload limit of a frame type and whether the type
// is known.
func (t FrameType) MaxPayload() (int, bool) {
	switch t {
	case FrameData, FrameZData:
		return MaxDataPayload, true
	case FrameCancel:
		return 0, true
	case FrameRequest, FrameResponse, FrameEnd, FrameError:
		return MaxControlPayload, true
	}
	return 0, false
}

// putFrameHeader writes the header of a frame into h (at least
// FrameHeaderLen bytes).
func putFrameHeader(h []byte, t FrameType, n int) {
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:FrameHeaderLen], uint32(n))
}

// WriteFrame writes one frame with a single Write call. The payload must be
// within the type's limit (a programming error otherwise, reported as an
// error rather than sent).
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	limit, ok := t.MaxPayload()
	if !ok || len(payload) > limit {
		return fmt.Errorf("%w: refusing to write a %s frame of %d bytes", ErrProtocol, t, len(payload))
	}
	buf := make([]byte, FrameHeaderLen+len(payload))
	putFrameHeader(buf, t, len(payload))
	copy(buf[FrameHeaderLen:], payload)
	_, err := w.Write(buf)
	return err
}

// WriteFramed writes a frame whose payload already sits at
// buf[FrameHeaderLen:], filling in the header in front of it, so a data
// frame costs one Write and no copy.
func WriteFramed(w io.Writer, t FrameType, buf []byte) error {
	n := len(buf) - FrameHeaderLen
	limit, ok := t.MaxPayload()
	if !ok || n < 0 || n > limit {
		return fmt.Errorf("%w: refusing to write a %s frame of %d bytes", ErrProtocol, t, n)
	}
	putFrameHeader(buf, t, n)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame. Data payloads are read into buf when it is
// large enough (buf may be nil); control payloads get their own slice of
// exactly the announced length. A clean EOF before the first header byte
// is returned as io.EOF; anything truncated, oversized or of an unknown
// type is an error wrapping ErrProtocol (or io.ErrUnexpectedEOF for a
// truncated frame). Nothing larger than the type's limit is ever
// allocated.
func ReadFrame(r io.Reader, buf []byte) (FrameType, []byte, error) {
	var h [FrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("%w: truncated frame header: %w", ErrProtocol, err)
		}
		return 0, nil, err
	}
	t := FrameType(h[0])
	n := binary.BigEndian.Uint32(h[1:])
	limit, ok := t.MaxPayload()
	if !ok {
		return 0, nil, fmt.Errorf("%w: unknown frame type 0x%02x", ErrProtocol, h[0])
	}
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %s frame of %d bytes exceeds the limit of %d", ErrProtocol, t, n, limit)
	}
	var p []byte
	if (t == FrameData || t == FrameZData) && cap(buf) >= int(n) {
		p = buf[:n]
	} else {
		p = make([]byte, n)
	}
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("%w: truncated %s frame (%d bytes announced): %w", ErrProtocol, t, n, io.ErrUnexpectedEOF)
		}
		return 0, nil, err
	}
	return t, p, nil
}
