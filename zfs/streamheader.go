package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A send stream is a sequence of fixed-size records (dmu_replay_record_t,
// 312 bytes), some followed by a payload. The first is a BEGIN record:
//
//	offset  0  u32 record type (0 = BEGIN, 5 = END)
//	offset  4  u32 payload length
//	offset  8  u64 magic 0x2F5bacbac (byte-swapped: the stream's byte order differs)
//	offset 16  u64 version info; its low 2 bits: 1 substream, 2 compound stream
//	offset 24  u64 creation time
//	offset 32  u32 objset type (2 filesystem, 3 volume)
//	offset 36  u32 flags
//	offset 40  u64 to-GUID
//	offset 48  u64 from-GUID
//	offset 56  [256]byte to-name, NUL-terminated
//
// A compound stream (zfs send -I, -p or -R) starts with a BEGIN whose
// payload, when present, is the packed list of datasets and their
// properties (-p, -R), then an END record, then the substreams.
const (
	streamRecordLen  = 312
	streamMagic      = 0x2F5bacbac
	drrBegin         = 0
	drrEnd           = 5
	hdrSubstream     = 1
	hdrCompound      = 2
	objsetFilesystem = 2
	objsetVolume     = 3
)

// ErrStreamHeader is wrapped by ReadStreamHeader's errors about the stream
// itself (not about reading it).
var ErrStreamHeader = errors.New("not an acceptable zfs send stream")

// StreamHeader is what the head of a send stream says about it.
type StreamHeader struct {
	// Type is Filesystem or Volume: the objset type of the first
	// substream.
	Type Type
	// Compound is set for a stream of several substreams (zfs send -I).
	Compound bool
	// Properties is set when the compound stream carries the packed
	// dataset and property list (zfs send -p or -R).
	Properties bool
	// ToName is the snapshot name the first substream was sent from, as
	// the sender wrote it (not validated: it is the sender's word).
	ToName string
	// ToGUID and FromGUID identify the first substream's snapshots
	// (FromGUID 0: a full stream).
	ToGUID, FromGUID uint64
}

// ReadStreamHeader reads the head of a send stream from r: the first BEGIN
// record and, for a compound stream without a property list, its END
// record and the first substream's BEGIN record. It returns what they say
// and every byte it read, which the caller must put back in front of the
// rest of the stream (io.MultiReader) before handing it to zfs recv.
//
// A compound stream that carries a property list is reported with
// Properties set and its head only (the list is not read). Errors wrap
// ErrStreamHeader when the bytes are not a stream zfs would accept, or
// io.ErrUnexpectedEOF when the stream ends inside its head.
func ReadStreamHeader(r io.Reader) (StreamHeader, []byte, error) {
	var read bytes.Buffer
	rec := func() ([]byte, error) {
		b := make([]byte, streamRecordLen)
		n, err := io.ReadFull(r, b)
		read.Write(b[:n])
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("reading the stream's head: %w", err)
		}
		return b, nil
	}
	first, err := rec()
	if err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	bo, err := streamByteOrder(first)
	if err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	h, hdr, payload := parseBegin(first, bo)
	if hdr == hdrSubstream {
		if err := h.checkType(); err != nil {
			return StreamHeader{}, read.Bytes(), err
		}
		return h, read.Bytes(), nil
	}
	if hdr != hdrCompound {
		return StreamHeader{}, read.Bytes(), fmt.Errorf("%w: unknown stream header type %d", ErrStreamHeader, hdr)
	}
	if payload > 0 {
		// zfs send -p / -R: the property list follows; the caller refuses
		// or reads on.
		return StreamHeader{Compound: true, Properties: true}, read.Bytes(), nil
	}
	end, err := rec()
	if err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	if t := bo.Uint32(end[0:4]); t != drrEnd {
		return StreamHeader{}, read.Bytes(), fmt.Errorf("%w: a compound stream's head is followed by record type %d, not END", ErrStreamHeader, t)
	}
	sub, err := rec()
	if err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	sbo, err := streamByteOrder(sub)
	if err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	h, hdr, _ = parseBegin(sub, sbo)
	if hdr != hdrSubstream {
		return StreamHeader{}, read.Bytes(), fmt.Errorf("%w: a compound stream nests stream header type %d", ErrStreamHeader, hdr)
	}
	if err := h.checkType(); err != nil {
		return StreamHeader{}, read.Bytes(), err
	}
	h.Compound = true
	return h, read.Bytes(), nil
}

// streamByteOrder checks that b is a BEGIN record and returns the byte
// order its magic number is written in.
func streamByteOrder(b []byte) (binary.ByteOrder, error) {
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		if bo.Uint64(b[8:16]) == streamMagic {
			if t := bo.Uint32(b[0:4]); t != drrBegin {
				return nil, fmt.Errorf("%w: the stream starts with record type %d, not BEGIN", ErrStreamHeader, t)
			}
			return bo, nil
		}
	}
	return nil, fmt.Errorf("%w: no send stream magic number", ErrStreamHeader)
}

// parseBegin decodes a BEGIN record: the header, its header type and its
// payload length.
func parseBegin(b []byte, bo binary.ByteOrder) (StreamHeader, uint64, uint32) {
	h := StreamHeader{
		ToGUID:   bo.Uint64(b[40:48]),
		FromGUID: bo.Uint64(b[48:56]),
	}
	switch bo.Uint32(b[32:36]) {
	case objsetFilesystem:
		h.Type = Filesystem
	case objsetVolume:
		h.Type = Volume
	}
	name := b[56:streamRecordLen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	h.ToName = string(name)
	return h, bo.Uint64(b[16:24]) & 3, bo.Uint32(b[4:8])
}

func (h StreamHeader) checkType() error {
	if h.Type != Filesystem && h.Type != Volume {
		return fmt.Errorf("%w: the stream is of neither a filesystem nor a volume", ErrStreamHeader)
	}
	return nil
}
