//go:build linux

package serve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

type lentPipe struct{ r *os.File }

func (p lentPipe) File() *os.File             { return p.r }
func (p lentPipe) Read(b []byte) (int, error) { return p.r.Read(b) }

// A source slower than serve (zfs send reading from disk: a record header,
// then a block, with pauses) still goes out in large frames: the splicer
// waits up to wire.ChunkLinger for more before it sends a frame, as the
// copy path's FillChunk does, instead of a frame per burst (a 312-byte
// header alone, often).
func TestSpliceFramesFromASlowSource(t *testing.T) {
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer outR.Close()
	var data []byte
	for i := range 64 {
		data = append(data, bytes.Repeat([]byte{byte(i)}, 312+128<<10)...)
	}
	go func() {
		defer inW.Close()
		for rest := data; len(rest) > 0; rest = rest[312+128<<10:] {
			_, _ = inW.Write(rest[:312])
			_, _ = inW.Write(rest[312 : 312+128<<10])
			time.Sleep(time.Millisecond)
		}
	}()
	type result struct {
		sizes []int
		got   []byte
		err   error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		for {
			t, p, err := wire.ReadFrame(outR, nil)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || t != wire.FrameData {
				r.err = errors.Join(err, errors.New("not a data frame: "+t.String()))
				break
			}
			r.sizes = append(r.sizes, len(p))
			r.got = append(r.got, p...)
		}
		res <- r
	}()
	sp := newSplicer(lentPipe{inR}, &watchedWriter{w: outW})
	if sp == nil {
		t.Fatal("no splicer for a pipe into a pipe")
	}
	total, sendErr, netErr := sp.run(context.Background())
	_ = outW.Close()
	r := <-res
	if sendErr != nil || netErr != nil || r.err != nil {
		t.Fatalf("send %v, output %v, frames %v", sendErr, netErr, r.err)
	}
	if total != int64(len(data)) || !bytes.Equal(r.got, data) {
		t.Fatalf("sent %d bytes, %d arrived, want %d (equal: %v)", total, len(r.got), len(data), bytes.Equal(r.got, data))
	}
	small := 0
	for _, n := range r.sizes[:len(r.sizes)-1] {
		if n < 64<<10 {
			small++
		}
	}
	// Without the wait: mean 44 KiB, half under 64 KiB. With it, a frame
	// holds at least a whole record (128 KiB) unless the writer is held up
	// 50 ms between a record's two writes; these bounds leave room for a
	// loaded machine (a typical run: 9 frames, mean 934 KiB).
	if mean := len(data) / len(r.sizes); small > len(r.sizes)/4 || mean < 96<<10 {
		t.Errorf("%d frames, mean %d bytes, %d under 64 KiB: the frames follow the source's bursts", len(r.sizes), mean, small)
	}
	t.Logf("%d frames, mean %d bytes, %d under 64 KiB", len(r.sizes), len(data)/len(r.sizes), small)
}
