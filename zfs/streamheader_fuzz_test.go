package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// streamHeaderSeeds returns the recorded stream heads of testdata/streams
// and damaged variants of them.
func streamHeaderSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "streams", "*.head"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no stream heads: %v", err)
	}
	var seeds [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	full, compound := seeds[0], seeds[0]
	for i, f := range files {
		switch filepath.Base(f) {
		case "fs-full.head":
			full = seeds[i]
		case "vol-I.head":
			compound = seeds[i]
		}
	}
	put32 := func(b []byte, off int, v uint32) []byte {
		c := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(c[off:], v)
		return c
	}
	swapped := make([]byte, streamRecordLen)
	binary.BigEndian.PutUint32(swapped[0:], drrBegin)
	binary.BigEndian.PutUint64(swapped[8:], streamMagic)
	binary.BigEndian.PutUint64(swapped[16:], hdrSubstream)
	binary.BigEndian.PutUint32(swapped[32:], objsetVolume)
	copy(swapped[56:], "p/v@s")
	noNUL := append([]byte(nil), full[:streamRecordLen]...)
	copy(noNUL[56:], bytes.Repeat([]byte("x"), streamRecordLen-56))
	return append(seeds,
		nil, full[:100], full[:streamRecordLen-1], compound[:400], compound[:2*streamRecordLen],
		bytes.Repeat([]byte("zsync "), 60),
		put32(full, 0, drrEnd), put32(full, 32, 1), put32(full, 16, 0x13), put32(full, 4, 1),
		put32(compound, 312, 3), put32(compound, 624+16, 2), put32(compound, 624+8, 0),
		swapped, noNUL,
	)
}

// FuzzParseStreamHeader fuzzes ReadStreamHeader, which the far side runs
// on the first bytes a client sends for zfs recv. Properties:
//   - nothing panics;
//   - the bytes returned are always a prefix of the stream (so putting
//     them back reproduces it), whole records when the head was read;
//   - an error wraps ErrStreamHeader, or io.ErrUnexpectedEOF only when the
//     stream ended before the head did;
//   - a header read is a filesystem or a volume (or a compound stream with
//     a property list, which is not read further), its name holds no NUL,
//     and reading only the bytes it consumed, or reading one byte at a
//     time, gives the same answer.
func FuzzParseStreamHeader(f *testing.F) {
	for _, s := range streamHeaderSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, read, err := ReadStreamHeader(bytes.NewReader(in))
		if !bytes.HasPrefix(in, read) {
			t.Fatalf("returned %d bytes that are not a prefix of the stream", len(read))
		}
		h2, read2, err2 := ReadStreamHeader(iotest.OneByteReader(bytes.NewReader(in)))
		if h2 != h || !bytes.Equal(read2, read) || (err == nil) != (err2 == nil) {
			t.Errorf("one byte at a time: %+v, %d bytes, %v; at once: %+v, %d bytes, %v", h2, len(read2), err2, h, len(read), err)
		}
		if err != nil {
			switch {
			case errors.Is(err, io.ErrUnexpectedEOF):
				if len(read) != len(in) || len(in) >= 3*streamRecordLen {
					t.Errorf("unexpected EOF after %d of %d bytes: %v", len(read), len(in), err)
				}
			case errors.Is(err, ErrStreamHeader):
				if len(read)%streamRecordLen != 0 {
					t.Errorf("refused after %d bytes (not whole records): %v", len(read), err)
				}
			default:
				t.Errorf("error wraps neither ErrStreamHeader nor io.ErrUnexpectedEOF: %v", err)
			}
			if h != (StreamHeader{}) {
				t.Errorf("error %v with header %+v", err, h)
			}
			return
		}
		switch {
		case h.Properties:
			if !h.Compound || h != (StreamHeader{Compound: true, Properties: true}) || len(read) != streamRecordLen {
				t.Errorf("property-list stream: %+v after %d bytes", h, len(read))
			}
		case h.Type != Filesystem && h.Type != Volume:
			t.Errorf("header of type %q accepted: %+v", h.Type, h)
		case h.Compound && len(read) != 3*streamRecordLen, !h.Compound && len(read) != streamRecordLen:
			t.Errorf("header %+v after %d bytes", h, len(read))
		}
		if bytes.IndexByte([]byte(h.ToName), 0) >= 0 || len(h.ToName) > streamRecordLen-56 {
			t.Errorf("to-name %q", h.ToName)
		}
		again, read3, err3 := ReadStreamHeader(bytes.NewReader(read))
		if err3 != nil || again != h || !bytes.Equal(read3, read) {
			t.Errorf("the bytes consumed alone give %+v, %v (first: %+v)", again, err3, h)
		}
	})
}
