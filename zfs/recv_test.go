package zfs

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReceiveResumableFailureCarriesToken(t *testing.T) {
	c, f := newFake(t)
	const tok = "1-e604ea4bf-e0-789c63646000010a501c49c50360710a715e5e7a69766a63"
	f.Expect([]string{"zfs", "recv", "-s", "-u", "back/a"}, fail(t, "recv_incomplete_resumable.txt"))
	f.Expect([]string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "receive_resume_token", "back/a"},
		FakeResponse{Stdout: "back/a\treceive_resume_token\t" + tok + "\t-\n"})
	err := c.Receive(context.Background(), RecvOptions{Target: "back/a", Resumable: true, NoMount: true}, strings.NewReader("partial"))
	var rre *ResumableRecvError
	if !errors.As(err, &rre) || rre.Dataset != "back/a" || rre.Token != tok {
		t.Fatalf("err = %v, want ResumableRecvError with the token", err)
	}
	if !errors.Is(err, ErrStreamIncomplete) || !errors.Is(err, ErrPartialReceive) {
		t.Errorf("err = %v, want ErrStreamIncomplete and ErrPartialReceive", err)
	}
	if calls := f.Calls(); string(calls[0].Stdin) != "partial" {
		t.Errorf("stdin = %q", calls[0].Stdin)
	}
}

func TestReceiveResumableFailureWithoutToken(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "recv", "-s", "back/a"}, fail(t, "recv_readfail.txt"))
	f.Expect([]string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "receive_resume_token", "back/a"},
		FakeResponse{Stdout: "back/a\treceive_resume_token\t-\t-\n"})
	err := c.Receive(context.Background(), RecvOptions{Target: "back/a", Resumable: true}, strings.NewReader(""))
	var rre *ResumableRecvError
	if errors.As(err, &rre) || !errors.Is(err, ErrStreamIncomplete) {
		t.Errorf("err = %v, want ErrStreamIncomplete without a token", err)
	}
}

type failingReader struct{ n int }

var errSenderDied = errors.New("sender died")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "data"), nil
	}
	return 0, errSenderDied
}

func TestReceiveReportsStreamReadError(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "recv", "back/a"}, fail(t, "recv_readfail.txt"))
	err := c.Receive(context.Background(), RecvOptions{Target: "back/a"}, &failingReader{n: 2})
	if !errors.Is(err, errSenderDied) || !errors.Is(err, ErrStreamIncomplete) {
		t.Errorf("err = %v, want both the stream's and zfs's errors", err)
	}
}

func TestReceiveSnapshotTarget(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "recv", "back/a@s2"}, fail(t, "recv_snapexists.txt"))
	err := c.Receive(context.Background(), RecvOptions{Target: "back/a@s2"}, io.LimitReader(strings.NewReader("x"), 1))
	if err == nil {
		t.Fatal("no error")
	}
	// The message names tank/b@s2, not back/a: generic.
	if errors.Is(err, ErrExists) {
		t.Errorf("err = %v attributed to another dataset", err)
	}
}

func TestAbortReceiveIdempotent(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "recv", "-A", "tank/b"}, fail(t, "recv_abort_none.txt"))
	if err := c.AbortReceive(context.Background(), "tank/b"); err != nil {
		t.Errorf("no partial state: %v", err)
	}
	f.Expect([]string{"zfs", "recv", "-A", "tank/c"}, fail(t, "recv_abort_none.txt"))
	if err := c.AbortReceive(context.Background(), "tank/c"); err == nil {
		t.Error("message about tank/b accepted for tank/c")
	}
}
