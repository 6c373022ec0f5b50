package sync

import (
	"bytes"
	"io"
	"testing"
)

// writerToStream is a stream that can write itself out, and records which
// way it was read.
type writerToStream struct {
	r               *bytes.Reader
	reads, writeTos int
}

func (s *writerToStream) Read(p []byte) (int, error) { s.reads++; return s.r.Read(p) }

// WriteTo writes 1 MiB at a time, a frame's payload each, as the SSH
// transport's send stream does.
func (s *writerToStream) WriteTo(w io.Writer) (int64, error) {
	s.writeTos++
	var total int64
	chunk := make([]byte, 1<<20)
	for {
		n, err := s.r.Read(chunk)
		if n > 0 {
			m, werr := w.Write(chunk[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// plainStream has only Read.
type plainStream struct{ r io.Reader }

func (s plainStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// writerOnly hides a writer's ReadFrom, as zfs's receive feed does.
type writerOnly struct{ io.Writer }

// A receive that copies its feed with io.CopyBuffer (as zfs recv's feed
// does) takes the stream's WriteTo when it has one, and the progress count
// and reports are the same either way.
func TestProgressFeed(t *testing.T) {
	data := bytes.Repeat([]byte("zsync"), 3<<20) // 15 MiB
	for _, canWrite := range []bool{true, false} {
		var stream io.Reader
		ws := &writerToStream{r: bytes.NewReader(data)}
		if canWrite {
			stream = ws
		} else {
			stream = plainStream{bytes.NewReader(data)}
		}
		var reports []int64
		pr := &progressReader{r: stream, emit: func(n int64) { reports = append(reports, n) }}
		var out bytes.Buffer
		n, err := io.CopyBuffer(writerOnly{&out}, pr.feed(), make([]byte, 1<<20))
		if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("canWrite %v: copied %d bytes, err %v, equal %v", canWrite, n, err, bytes.Equal(out.Bytes(), data))
		}
		if pr.n != int64(len(data)) {
			t.Errorf("canWrite %v: counted %d bytes, want %d", canWrite, pr.n, len(data))
		}
		if len(reports) != 3 {
			t.Errorf("canWrite %v: %d progress reports (%v), want 3 (every 4 MiB of 15)", canWrite, len(reports), reports)
		}
		if canWrite && (ws.writeTos != 1 || ws.reads != 0) {
			t.Errorf("the stream was read %d times and written out %d times, want only its WriteTo", ws.reads, ws.writeTos)
		}
	}
}
