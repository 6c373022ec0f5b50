package serve

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func pipeSizeOf(t *testing.T, f *os.File) int {
	t.Helper()
	n, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatalf("F_GETPIPE_SZ: %v", err)
	}
	return n
}

func TestGrowPipeEnlargesPipes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	growPipe(r) // either end grows the one buffer they share
	if got := pipeSizeOf(t, w); got < pipeSize {
		t.Fatalf("pipe holds %d bytes after growPipe, want at least %d", got, pipeSize)
	}
	// Still a working pipe.
	msg := []byte("frame")
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := r.Read(got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestGrowPipeLeavesOtherThingsAlone(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	growPipe(f) // a regular file: no fcntl, no panic
	if _, err := f.WriteString("still writable"); err != nil {
		t.Fatal(err)
	}
	growPipe(bytes.NewReader(nil)) // not a file at all
	growPipe(nil)
}
