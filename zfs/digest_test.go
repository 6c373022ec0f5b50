package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// digestStream builds a plain full stream: one object, then writes, with
// name as the snapshot's name and guid as its guid.
func digestStream(name string, guid uint64, extra func(s *streamBuilder), writes ...[]byte) []byte {
	var s streamBuilder
	s.begin(hdrSubstream, objsetFilesystem, 0, name, nil)
	binary.LittleEndian.PutUint64(s.b.Bytes()[40:], guid)
	s.object(100)
	s.record(drrFree, 0, nil)
	for i, w := range writes {
		s.record(drrWrite, 0, func(r []byte) {
			binary.LittleEndian.PutUint64(r[8:], 7)
			binary.LittleEndian.PutUint64(r[24:], uint64(i)<<17)
			binary.LittleEndian.PutUint64(r[32:], uint64(len(w)))
		})
		s.b.Write(w)
	}
	if extra != nil {
		extra(&s)
	}
	s.end()
	return s.b.Bytes()
}

func TestDigestStream(t *testing.T) {
	data := bytes.Repeat([]byte("data"), 1024)
	zeros := make([]byte, 4096)
	sum := func(stream []byte) Digest {
		t.Helper()
		d, err := DigestStream(bytes.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := sum(digestStream("tank/a@s", 1, nil, data, zeros))
	// the replica: another name, and the block of zeros a hole (a FREE)
	b := sum(digestStream("backup/tank/a@s", 2, func(s *streamBuilder) { s.record(drrFree, 0, nil) }, data))
	if a.Sum != b.Sum || a.Bytes != int64(len(data)) || a.Objects != 1 {
		t.Errorf("a snapshot and its replica: %+v and %+v, want the same sum over %d bytes of one object", a, b, len(data))
	}
	other := bytes.Clone(data)
	other[100] ^= 1
	if c := sum(digestStream("tank/a@s", 1, nil, other, zeros)); c.Sum == a.Sum {
		t.Errorf("one bit of other data gives the same sum")
	}
	// the same bytes at another offset (the zeros first) are other contents
	if c := sum(digestStream("tank/a@s", 1, nil, zeros, data)); c.Sum == a.Sum {
		t.Errorf("data at another offset gives the same sum")
	}

	for name, stream := range map[string][]byte{
		"compressed": digestStream("tank/a@s", 1, func(s *streamBuilder) { s.write([]byte("x"), true) }),
		"embedded":   digestStream("tank/a@s", 1, func(s *streamBuilder) { s.embedded(13) }),
		"incremental": func() []byte {
			b := digestStream("tank/a@s", 1, nil, data)
			binary.LittleEndian.PutUint64(b[48:], 9)
			return b
		}(),
	} {
		if _, err := DigestStream(bytes.NewReader(stream)); !errors.Is(err, ErrDigestStream) {
			t.Errorf("%s: %v, want ErrDigestStream", name, err)
		}
	}
	full := digestStream("tank/a@s", 1, nil, data)
	if _, err := DigestStream(bytes.NewReader(full[:len(full)-streamRecordLen-10])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a cut stream: %v, want io.ErrUnexpectedEOF", err)
	}
}
