package zfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

type brokenSource struct{ n int }

func (f *brokenSource) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// chunkRecorder records the size of every Read asked of it.
type chunkRecorder struct {
	r     io.Reader
	sizes []int
}

func (c *chunkRecorder) Read(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	return c.r.Read(p)
}

func TestExecRunnerFeedsStdinInBigChunks(t *testing.T) {
	data := bytes.Repeat([]byte("zsync!"), 600_000) // 3.6 MB
	src := &chunkRecorder{r: bytes.NewReader(data)}
	res, err := ExecRunner{}.Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: src})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("cat: %v, exit %d", err, res.ExitCode)
	}
	if !bytes.Equal(res.Stdout, data) {
		t.Fatalf("cat returned %d bytes, want %d", len(res.Stdout), len(data))
	}
	if src.sizes[0] < 1<<20 {
		t.Errorf("the source was read in %d-byte chunks; want 1 MiB", src.sizes[0])
	}
}

func TestExecRunnerStdinEarlyExitAndSourceFailure(t *testing.T) {
	// the process stops reading early and exits 0: not an error
	res, err := ExecRunner{}.Run(context.Background(), Cmd{Argv: []string{"head", "-c", "10"}, Stdin: bytes.NewReader(make([]byte, 8<<20))})
	if err != nil || res.ExitCode != 0 || len(res.Stdout) != 10 {
		t.Fatalf("head: %v, exit %d, %d bytes", err, res.ExitCode, len(res.Stdout))
	}
	// the source fails: the process sees EOF and exits 0, the error is reported
	_, err = ExecRunner{}.Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: &brokenSource{n: 100}})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("source broke")) {
		t.Fatalf("failing source: %v", err)
	}
}
