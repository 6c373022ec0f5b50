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
		d, err := DigestStream(bytes.NewReader(stream), 0)
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
		if _, err := DigestStream(bytes.NewReader(stream), 0); !errors.Is(err, ErrDigestStream) {
			t.Errorf("%s: %v, want ErrDigestStream", name, err)
		}
	}
	full := digestStream("tank/a@s", 1, nil, data)
	if _, err := DigestStream(bytes.NewReader(full[:len(full)-streamRecordLen-10]), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a cut stream: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestDigestStreamSample(t *testing.T) {
	var blocks [][]byte
	for i := range 64 {
		blocks = append(blocks, bytes.Repeat([]byte{byte(i + 1)}, 512))
	}
	sum := func(stream []byte, sample int) Digest {
		t.Helper()
		d, err := DigestStream(bytes.NewReader(stream), sample)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := digestStream("tank/a@s", 1, nil, blocks...), digestStream("backup/a@s", 2, nil, blocks...)
	full, half := sum(a, 0), sum(a, 50)
	if h2 := sum(b, 50); h2.Sum != half.Sum || h2.Sample != 50 {
		t.Errorf("sampled sums of a snapshot and its replica differ: %+v %+v", half, h2)
	}
	if half.Sum == full.Sum || half.Bytes >= full.Bytes || half.Bytes == 0 {
		t.Errorf("a 50%% sample summed %d of %d bytes (sum equal: %v)", half.Bytes, full.Bytes, half.Sum == full.Sum)
	}
	if all := sum(a, 100); all.Sum != full.Sum || all.Sample != 0 {
		t.Errorf("100%% is not all: %+v", all)
	}
	// a change in a block the sample skips goes unseen; one it takes does not
	changed := make([][]byte, len(blocks))
	copy(changed, blocks)
	seen := false
	for i := range blocks {
		changed[i] = bytes.Repeat([]byte{0xee}, 512)
		if sum(digestStream("tank/a@s", 1, nil, changed...), 50).Sum != half.Sum {
			seen = true
		}
		changed[i] = blocks[i]
	}
	if !seen {
		t.Errorf("no single changed block changes the 50%% sample")
	}
}
