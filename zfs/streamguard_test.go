package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// A tiny stream builder: records of 312 bytes in little-endian order.
type streamBuilder struct{ b bytes.Buffer }

func (s *streamBuilder) record(typ uint32, payloadLen uint32, set func(r []byte)) []byte {
	r := make([]byte, streamRecordLen)
	binary.LittleEndian.PutUint32(r[0:], typ)
	binary.LittleEndian.PutUint32(r[4:], payloadLen)
	if set != nil {
		set(r)
	}
	s.b.Write(r)
	return r
}

func (s *streamBuilder) begin(hdr uint64, objset uint32, flags uint32, name string, payload []byte) {
	s.record(drrBegin, uint32(len(payload)), func(r []byte) {
		binary.LittleEndian.PutUint64(r[8:], streamMagic)
		binary.LittleEndian.PutUint64(r[16:], hdr|0x10)
		binary.LittleEndian.PutUint32(r[32:], objset)
		binary.LittleEndian.PutUint32(r[36:], flags)
		copy(r[56:], name)
	})
	s.b.Write(payload)
}

func (s *streamBuilder) end() { s.record(drrEnd, 0, nil) }

func (s *streamBuilder) write(data []byte, compressed bool) {
	s.record(drrWrite, 0, func(r []byte) {
		binary.LittleEndian.PutUint64(r[32:], uint64(len(data)))
		if compressed {
			r[50] = 15
			binary.LittleEndian.PutUint64(r[32:], 1<<17) // logical size differs
			binary.LittleEndian.PutUint64(r[96:], uint64(len(data)))
		}
	})
	s.b.Write(data)
}

func (s *streamBuilder) object(bonus int) {
	s.record(drrObject, 0, func(r []byte) { binary.LittleEndian.PutUint32(r[28:], uint32(bonus)) })
	s.b.Write(make([]byte, roundUp8(uint64(bonus))))
}

func (s *streamBuilder) embedded(psize int) {
	s.record(drrWriteEmbedded, 0, func(r []byte) { binary.LittleEndian.PutUint32(r[52:], uint32(psize)) })
	s.b.Write(make([]byte, roundUp8(uint64(psize))))
}

func (s *streamBuilder) spill(n int) {
	s.record(drrSpill, 0, func(r []byte) { binary.LittleEndian.PutUint64(r[16:], uint64(n)) })
	s.b.Write(make([]byte, n))
}

func (s *streamBuilder) substream(name string, objset uint32, flags uint32) {
	s.begin(hdrSubstream, objset, flags, name, nil)
	s.object(100)
	s.record(drrFree, 0, nil)
	s.write(bytes.Repeat([]byte("d"), 4096), false)
	s.write(bytes.Repeat([]byte("c"), 777), true)
	s.embedded(13)
	s.spill(512)
	s.end()
}

func walk(stream []byte) (StreamHeader, []byte, error) {
	g := NewStreamGuard(bytes.NewReader(stream))
	h, err := g.Head()
	if err != nil {
		return h, nil, err
	}
	out, err := io.ReadAll(g)
	return h, out, err
}

func TestStreamGuardPassesWellFormedStreams(t *testing.T) {
	var one streamBuilder
	one.substream("p/fs@a", objsetFilesystem, 0)
	var inc streamBuilder
	inc.begin(hdrCompound, 0, 0, "p/v@c", nil)
	inc.end()
	inc.substream("p/v@b", objsetVolume, 0)
	inc.substream("p/v@c", objsetVolume, 0)
	inc.end()
	for name, c := range map[string]struct {
		stream   []byte
		typ      Type
		compound bool
	}{
		"single substream": {one.b.Bytes(), Filesystem, false},
		"compound (-I)":    {inc.b.Bytes(), Volume, true},
	} {
		h, out, err := walk(c.stream)
		if err != nil || !bytes.Equal(out, c.stream) || h.Type != c.typ || h.Compound != c.compound {
			t.Errorf("%s: %+v, %d of %d bytes, %v", name, h, len(out), len(c.stream), err)
		}
	}
	// bytes after the last END never reach zfs recv
	trailing := append(append([]byte(nil), one.b.Bytes()...), "more"...)
	if _, out, err := walk(trailing); err != nil || len(out) != one.b.Len() {
		t.Errorf("trailing bytes: %d, %v", len(out), err)
	}
}

func TestStreamGuardRefuses(t *testing.T) {
	build := func(f func(s *streamBuilder)) []byte {
		var s streamBuilder
		f(&s)
		return s.b.Bytes()
	}
	compound := func(s *streamBuilder, name string) {
		s.begin(hdrCompound, 0, 0, name, nil)
		s.end()
	}
	for name, c := range map[string]struct {
		stream []byte
		want   string
	}{
		"property list": {build(func(s *streamBuilder) {
			s.begin(hdrCompound, 0, 0, "p/fs@a", []byte("packed nvlist"))
		}), "property list"},
		"nested compound": {build(func(s *streamBuilder) {
			compound(s, "p/fs@b")
			s.substream("p/fs@b", objsetFilesystem, 0)
			s.begin(hdrCompound, 0, 0, "p/fs@c", []byte("props"))
		}), "nests"},
		"second dataset": {build(func(s *streamBuilder) {
			compound(s, "p/fs@b")
			s.substream("p/fs@b", objsetFilesystem, 0)
			s.substream("p/other@x", objsetFilesystem, 0)
			s.end()
		}), `a substream of "p/other"`},
		"sendfs prefix": {build(func(s *streamBuilder) {
			compound(s, "s@x")
			s.substream("s2/evil@x", objsetFilesystem, 0)
			s.end()
		}), `a substream of "s2/evil"`},
		"type change": {build(func(s *streamBuilder) {
			compound(s, "p/fs@b")
			s.substream("p/fs@b", objsetFilesystem, 0)
			s.substream("p/fs@c", objsetVolume, 0)
			s.end()
		}), "filesystem and of a volume"},
		"clone": {build(func(s *streamBuilder) { s.substream("p/fs@a", objsetFilesystem, drrFlagClone) }), "clone"},
		"clone later": {build(func(s *streamBuilder) {
			compound(s, "p/fs@b")
			s.substream("p/fs@b", objsetFilesystem, 0)
			s.substream("p/fs@c", objsetFilesystem, drrFlagClone)
			s.end()
		}), "clone"},
		"begin inside a substream": {build(func(s *streamBuilder) {
			s.begin(hdrSubstream, objsetFilesystem, 0, "p/fs@a", nil)
			s.begin(hdrSubstream, objsetFilesystem, 0, "p/fs@a", nil)
		}), "inside a substream"},
		"unknown record": {build(func(s *streamBuilder) {
			s.begin(hdrSubstream, objsetFilesystem, 0, "p/fs@a", nil)
			s.record(77, 0, nil)
		}), "unknown record type 77"},
		"data outside a substream": {build(func(s *streamBuilder) {
			compound(s, "p/fs@b")
			s.record(drrFree, 0, nil)
		}), "outside a substream"},
		"huge payload": {build(func(s *streamBuilder) {
			s.begin(hdrSubstream, objsetFilesystem, 0, "p/fs@a", nil)
			s.record(drrWrite, 0, func(r []byte) { binary.LittleEndian.PutUint64(r[32:], 1<<40) })
		}), "payload of"},
		"no magic":    {bytes.Repeat([]byte{1}, streamRecordLen), "magic"},
		"cut short":   {build(func(s *streamBuilder) { s.begin(hdrSubstream, objsetFilesystem, 0, "p/fs@a", nil); s.object(100) }), "ended before"},
		"empty":       {nil, "ended before"},
		"only a head": {build(func(s *streamBuilder) { compound(s, "p/fs@b"); s.end() }), "no substream"},
	} {
		_, _, err := walk(c.stream)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", name, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrStreamHeader) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v wraps neither ErrStreamHeader nor io.ErrUnexpectedEOF", name, err)
		}
	}
}

// A refused record never reaches the reader: everything before it does.
func TestStreamGuardStopsBeforeTheRecord(t *testing.T) {
	var s streamBuilder
	s.begin(hdrCompound, 0, 0, "p/fs@b", nil)
	s.end()
	s.substream("p/fs@b", objsetFilesystem, 0)
	good := s.b.Len()
	s.substream("p/other@x", objsetFilesystem, 0)
	g := NewStreamGuard(bytes.NewReader(s.b.Bytes()))
	if _, err := g.Head(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(g)
	if !errors.Is(err, ErrStreamHeader) || len(out) != good {
		t.Fatalf("passed %d bytes (want %d), %v", len(out), good, err)
	}
	if g.Err() == nil {
		t.Error("Err() is nil after a refusal")
	}
}

// FuzzStreamGuard: whatever the bytes, the guard never panics, passes on
// only a prefix of its input, and fails with ErrStreamHeader or
// io.ErrUnexpectedEOF; what it passes whole starts with a BEGIN record.
func FuzzStreamGuard(f *testing.F) {
	var one streamBuilder
	one.substream("p/fs@a", objsetFilesystem, 0)
	f.Add(one.b.Bytes())
	var inc streamBuilder
	inc.begin(hdrCompound, 0, 0, "p/v@c", nil)
	inc.end()
	inc.substream("p/v@b", objsetVolume, 0)
	inc.substream("p/v@c", objsetVolume, 0)
	inc.end()
	f.Add(inc.b.Bytes())
	var smuggle streamBuilder
	smuggle.begin(hdrCompound, 0, 0, "s@x", nil)
	smuggle.end()
	smuggle.substream("s@x", objsetFilesystem, 0)
	smuggle.substream("s2/evil@x", objsetFilesystem, drrFlagClone)
	f.Add(smuggle.b.Bytes())
	for _, name := range []string{"fs-full.head", "vol-I.head", "fs-props.head", "fs-raw.head"} {
		if b, err := os.ReadFile("testdata/streams/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out []byte
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			g := NewStreamGuard(bytes.NewReader(in))
			if _, err = g.Head(); err == nil {
				out, err = io.ReadAll(g)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the guard hangs on %d bytes: %x", len(in), in)
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("passed %d bytes that are not a prefix of the input", len(out))
		}
		if err != nil && !errors.Is(err, ErrStreamHeader) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error %v wraps neither sentinel", err)
		}
		if err == nil && (len(out) < streamRecordLen || binary.LittleEndian.Uint32(out) != drrBegin && binary.BigEndian.Uint32(out) != drrBegin) {
			t.Fatalf("a clean pass of %d bytes that does not start with BEGIN", len(out))
		}
	})
}

// Split: each substream comes out as a stream of its own, the compound
// stream's own records dropped.
func TestStreamGuardSplit(t *testing.T) {
	var inc streamBuilder
	inc.begin(hdrCompound, 0, 0, "p/v@c", nil)
	inc.end()
	start := inc.b.Len()
	inc.substream("p/v@b", objsetVolume, 0)
	mid := inc.b.Len()
	inc.substream("p/v@c", objsetVolume, 0)
	stop := inc.b.Len()
	inc.end()
	all := inc.b.Bytes()
	g := NewStreamGuard(bytes.NewReader(all))
	g.Split()
	h, err := g.Head()
	if err != nil || h.ToName != "p/v@b" || !h.Compound {
		t.Fatalf("Head: %+v, %v", h, err)
	}
	first, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(first, all[start:mid]) {
		t.Fatalf("first substream: %d bytes, %v", len(first), err)
	}
	if _, err := io.ReadAll(g); err != nil {
		t.Fatalf("reading past the substream's end: %v", err)
	}
	h, err = g.Next()
	if err != nil || h.ToName != "p/v@c" {
		t.Fatalf("Next: %+v, %v", h, err)
	}
	second, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(second, all[mid:stop]) {
		t.Fatalf("second substream: %d bytes, %v", len(second), err)
	}
	if _, err := g.Next(); err != io.EOF {
		t.Fatalf("after the last: %v", err)
	}
	// a single substream is one
	var one streamBuilder
	one.substream("p/fs@a", objsetFilesystem, 0)
	g = NewStreamGuard(bytes.NewReader(one.b.Bytes()))
	g.Split()
	if _, err := g.Head(); err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(g); err != nil || !bytes.Equal(out, one.b.Bytes()) {
		t.Fatalf("single: %d, %v", len(out), err)
	}
	if _, err := g.Next(); err != io.EOF {
		t.Fatalf("single, Next: %v", err)
	}
	// Next before the substream ended
	g = NewStreamGuard(bytes.NewReader(all))
	g.Split()
	if _, err := g.Head(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(); err == nil {
		t.Fatal("Next in the middle of a substream")
	}
}
