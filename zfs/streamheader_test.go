package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// The heads in testdata/streams were written by OpenZFS 2.1.11 (zfs send
// of a filesystem and a volume, -i, -I, -p, -R, -w); the GUIDs are theirs.
func TestReadStreamHeaderRecorded(t *testing.T) {
	for _, c := range []struct {
		file       string
		typ        Type
		compound   bool
		props      bool
		toName     string
		toGUID     uint64
		fromGUIDOK func(uint64) bool
	}{
		{"fs-full.head", Filesystem, false, false, "p1/fs@a", 13916746472901026675, func(g uint64) bool { return g == 0 }},
		{"fs-incr.head", Filesystem, false, false, "p1/fs@b", 0, func(g uint64) bool { return g == 13916746472901026675 }},
		{"fs-raw.head", Filesystem, false, false, "p1/fs@a", 13916746472901026675, func(g uint64) bool { return g == 0 }},
		{"vol-full.head", Volume, false, false, "p1/vol@a", 0, func(g uint64) bool { return g == 0 }},
		{"vol-I.head", Volume, true, false, "p1/vol@b", 12311927886265186118, func(g uint64) bool { return g != 0 }},
		{"fs-props.head", "", true, true, "", 0, func(g uint64) bool { return g == 0 }},
		{"fs-R.head", "", true, true, "", 0, func(g uint64) bool { return g == 0 }},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/streams/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			h, read, err := ReadStreamHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadStreamHeader: %v", err)
			}
			if h.Type != c.typ || h.Compound != c.compound || h.Properties != c.props || h.ToName != c.toName {
				t.Errorf("got %+v, want type %q compound %v properties %v name %q", h, c.typ, c.compound, c.props, c.toName)
			}
			if c.toGUID != 0 && h.ToGUID != c.toGUID {
				t.Errorf("to-GUID %d, want %d", h.ToGUID, c.toGUID)
			}
			if !c.fromGUIDOK(h.FromGUID) {
				t.Errorf("from-GUID %d unexpected", h.FromGUID)
			}
			if !bytes.Equal(read, b[:len(read)]) || len(read)%streamRecordLen != 0 {
				t.Errorf("returned %d bytes that are not the stream's first records", len(read))
			}
		})
	}
}

func TestReadStreamHeaderRefuses(t *testing.T) {
	full, err := os.ReadFile("testdata/streams/fs-full.head")
	if err != nil {
		t.Fatal(err)
	}
	compound, err := os.ReadFile("testdata/streams/vol-I.head")
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, off int, v uint32) []byte {
		c := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(c[off:], v)
		return c
	}
	for name, c := range map[string]struct {
		in   []byte
		want error
	}{
		"empty":                  {nil, io.ErrUnexpectedEOF},
		"short":                  {full[:100], io.ErrUnexpectedEOF},
		"text":                   {bytes.Repeat([]byte("zsync "), 60), ErrStreamHeader},
		"not BEGIN":              {with(full, 0, 3), ErrStreamHeader},
		"unknown objset type":    {with(full, 32, 1), ErrStreamHeader},
		"unknown header type":    {with(full, 16, 0x13), ErrStreamHeader},
		"compound cut":           {compound[:400], io.ErrUnexpectedEOF},
		"compound without END":   {with(compound, 312, 3), ErrStreamHeader},
		"compound nests another": {with(compound, 624+16, 2), ErrStreamHeader},
	} {
		t.Run(name, func(t *testing.T) {
			h, read, err := ReadStreamHeader(bytes.NewReader(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want an error wrapping %v", h, err, c.want)
			}
			if !bytes.Equal(read, c.in[:len(read)]) {
				t.Errorf("returned bytes that are not the stream's")
			}
		})
	}
}

// A big-endian stream (written on a big-endian host) reads the same.
func TestReadStreamHeaderByteSwapped(t *testing.T) {
	le, err := os.ReadFile("testdata/streams/vol-full.head")
	if err != nil {
		t.Fatal(err)
	}
	be := make([]byte, streamRecordLen)
	binary.BigEndian.PutUint32(be[0:], drrBegin)
	binary.BigEndian.PutUint64(be[8:], streamMagic)
	binary.BigEndian.PutUint64(be[16:], binary.LittleEndian.Uint64(le[16:]))
	binary.BigEndian.PutUint32(be[32:], objsetVolume)
	binary.BigEndian.PutUint64(be[40:], 42)
	copy(be[56:], "p/v@s")
	h, _, err := ReadStreamHeader(bytes.NewReader(be))
	if err != nil || h.Type != Volume || h.ToGUID != 42 || h.ToName != "p/v@s" {
		t.Fatalf("got %+v, %v", h, err)
	}
}
