//go:build realzfs

package zfs_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// transfer sends o into target and returns the stream's size.
func transfer(t *testing.T, c *zfs.CLI, x context.Context, o zfs.SendOptions, r zfs.RecvOptions) (int64, error) {
	t.Helper()
	v, err := o.Validate()
	if err != nil {
		t.Fatalf("Validate(%+v): %v", o, err)
	}
	stream, err := c.Send(x, v)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	defer stream.Close()
	cr := &countingReader{r: stream}
	err = c.Receive(x, r, cr)
	if cerr := stream.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return cr.n, err
}

func wantSameGUID(t *testing.T, a, b string) {
	t.Helper()
	if ga, gb := guid(t, a), guid(t, b); ga != gb {
		t.Errorf("guid %s = %d, %s = %d", a, ga, b, gb)
	}
}

// TestRealSendReceive: full, -i, -I and from a bookmark whose snapshot was
// destroyed, on names with spaces; SendSize against the real stream size;
// the receive errors (exists, modified, incremental source missing).
func TestRealSendReceive(t *testing.T) {
	c, x := newCLI(t), ctx(t)
	pool := zfstest.NewPool(t, 128)
	src, dst := pool+"/my src", pool+"/my dst"
	zfstest.MustCreate(t, src)
	zfstest.MustWriteFile(t, src, "a", 512)
	zfstest.MustSnapshot(t, src+"@snap 1")
	zfstest.MustWriteFile(t, src, "b", 64)
	zfstest.MustSnapshot(t, src+"@s2")
	zfstest.MustWriteFile(t, src, "c", 64)
	zfstest.MustSnapshot(t, src+"@s3")
	recv := zfs.RecvOptions{Target: dst, Resumable: true, NoMount: true}

	// Full send, with the size estimate checked against the real stream.
	full, err := zfs.SendOptions{To: src + "@snap 1"}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	est, err := c.SendSize(x, full)
	if err != nil {
		t.Fatal(err)
	}
	n, err := transfer(t, c, x, zfs.SendOptions{To: src + "@snap 1"}, recv)
	if err != nil {
		t.Fatalf("full: %v", err)
	}
	if diff := est - n; diff < -(n/10+64<<10) || diff > n/10+64<<10 {
		t.Errorf("SendSize = %d, real stream = %d bytes", est, n)
	}
	wantSameGUID(t, src+"@snap 1", dst+"@snap 1")

	// A second full send into the existing target.
	if _, err := transfer(t, c, x, zfs.SendOptions{To: src + "@snap 1"}, zfs.RecvOptions{Target: dst, NoMount: true}); !errors.Is(err, zfs.ErrExists) {
		t.Errorf("full into existing: %v, want ErrExists", err)
	}

	// -i
	if _, err := transfer(t, c, x, zfs.SendOptions{From: src + "@snap 1", To: src + "@s2"}, recv); err != nil {
		t.Fatalf("-i: %v", err)
	}
	wantSameGUID(t, src+"@s2", dst+"@s2")

	// From a bookmark, after its snapshot was destroyed.
	if err := c.Bookmark(x, src+"@s2", src+"#cursor s2"); err != nil {
		t.Fatal(err)
	}
	if err := c.DestroySnapshots(x, src, []string{"s2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := transfer(t, c, x, zfs.SendOptions{From: src + "#cursor s2", To: src + "@s3"}, recv); err != nil {
		t.Fatalf("-i from bookmark: %v", err)
	}
	wantSameGUID(t, src+"@s3", dst+"@s3")

	// -I with intermediates.
	zfstest.MustWriteFile(t, src, "d", 16)
	zfstest.MustSnapshot(t, src+"@s4")
	zfstest.MustWriteFile(t, src, "e", 16)
	zfstest.MustSnapshot(t, src+"@s5")
	if _, err := transfer(t, c, x, zfs.SendOptions{From: src + "@s3", To: src + "@s5", Intermediates: true}, recv); err != nil {
		t.Fatalf("-I: %v", err)
	}
	wantSameGUID(t, src+"@s4", dst+"@s4")
	wantSameGUID(t, src+"@s5", dst+"@s5")

	zfstest.MustSnapshot(t, src+"@s6")
	inc := zfs.SendOptions{From: src + "@s5", To: src + "@s6"}

	// The target was written to: destination modified.
	zfstest.Zfs(t, "mount", dst)
	zfstest.WriteRandom(t, filepath.Join(zfstest.Mountpoint(t, dst), "local change"), 8)
	if _, err := transfer(t, c, x, inc, recv); !errors.Is(err, zfs.ErrDestinationModified) {
		t.Errorf("modified target: %v, want ErrDestinationModified", err)
	}
	if err := c.Rollback(x, dst+"@s5"); err != nil {
		t.Fatal(err)
	}
	if _, err := transfer(t, c, x, inc, recv); err != nil {
		t.Fatalf("after rollback: %v", err)
	}
	wantSameGUID(t, src+"@s6", dst+"@s6")

	// The incremental source is not on the target: mismatch.
	if err := c.DestroySnapshots(x, dst, []string{"s6"}); err != nil {
		t.Fatal(err)
	}
	zfstest.MustSnapshot(t, src+"@s7")
	if _, err := transfer(t, c, x, zfs.SendOptions{From: src + "@s6", To: src + "@s7"}, recv); !errors.Is(err, zfs.ErrIncrementalMismatch) {
		t.Errorf("incremental source missing on the target: %v, want ErrIncrementalMismatch", err)
	}
}

// TestRealResumeAndAbort interrupts a receive for real (the stream is cut
// after 1 MiB of ~4 MiB of incompressible data), decodes the token, resumes
// with send -t, then aborts another interrupted receive.
func TestRealResumeAndAbort(t *testing.T) {
	c, x := newCLI(t), ctx(t)
	pool := zfstest.NewPool(t, 128)
	src := pool + "/big"
	zfstest.MustCreate(t, src)
	zfstest.MustWriteFile(t, src, "random", 4<<10)
	zfstest.MustSnapshot(t, src+"@s1")
	v, err := zfs.SendOptions{To: src + "@s1"}.Validate()
	if err != nil {
		t.Fatal(err)
	}

	interrupt := func(target string) *zfs.ResumableRecvError {
		t.Helper()
		stream, err := c.Send(x, v)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Receive(x, zfs.RecvOptions{Target: target, Resumable: true, NoMount: true}, io.LimitReader(stream, 1<<20))
		if cerr := stream.Close(); cerr != nil {
			t.Logf("closing the cut send: %v", cerr)
		}
		var rre *zfs.ResumableRecvError
		if !errors.As(err, &rre) {
			t.Fatalf("interrupted receive: %v, want *ResumableRecvError\n%s", err, zfstest.Describe(t, pool))
		}
		if !errors.Is(err, zfs.ErrStreamIncomplete) {
			t.Errorf("interrupted receive: %v, want ErrStreamIncomplete", err)
		}
		if rre.Dataset != target || rre.Token == "" || rre.Token != zfstest.Get(t, target, "receive_resume_token") {
			t.Errorf("ResumableRecvError = %+v", rre)
		}
		return rre
	}

	dst := pool + "/part"
	rre := interrupt(dst)
	tok, err := c.DecodeResumeToken(x, rre.Token)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ToGUID != guid(t, src+"@s1") || tok.ToName != src+"@s1" || tok.FromGUID != 0 {
		t.Errorf("decoded token %+v, want toguid %d toname %s", tok, guid(t, src+"@s1"), src+"@s1")
	}
	if _, err := transfer(t, c, x, zfs.SendOptions{ResumeToken: rre.Token}, zfs.RecvOptions{Target: dst, Resumable: true, NoMount: true}); err != nil {
		t.Fatalf("resumed receive: %v", err)
	}
	wantSameGUID(t, src+"@s1", dst+"@s1")
	if tokAfter := zfstest.Get(t, dst, "receive_resume_token"); tokAfter != "-" {
		t.Errorf("token left after resume: %q", tokAfter)
	}

	// Abort: the partial dataset of a full receive disappears.
	dst2 := pool + "/part2"
	interrupt(dst2)
	if err := c.AbortReceive(x, dst2); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if zfstest.Exists(t, dst2) {
		t.Errorf("%s still exists after abort:\n%s", dst2, zfstest.Describe(t, pool))
	}
	// No partial state: not an error; a missing dataset is.
	if err := c.AbortReceive(x, dst); err != nil {
		t.Errorf("abort without partial state: %v", err)
	}
	if err := c.AbortReceive(x, dst2); !errors.Is(err, zfs.ErrDatasetNotFound) {
		t.Errorf("abort of a missing dataset: %v, want ErrDatasetNotFound", err)
	}
}

// TestRealRawEncrypted sends an encrypted dataset raw (-w), full and
// incremental; the replica stays encrypted with its key unavailable.
func TestRealRawEncrypted(t *testing.T) {
	c, x := newCLI(t), ctx(t)
	pool := zfstest.NewPool(t, 64)
	key := zfstest.KeyFile(t, "correct horse battery staple")
	src, dst := pool+"/secret", pool+"/replica"
	if err := c.Create(x, src, map[string]string{
		"encryption": "on", "keyformat": "passphrase", "keylocation": "file://" + key,
	}, false); err != nil {
		t.Fatal(err)
	}
	zfstest.MustWriteFile(t, src, "f", 64)
	zfstest.MustSnapshot(t, src+"@s1")
	zfstest.MustWriteFile(t, src, "g", 16)
	zfstest.MustSnapshot(t, src+"@s2")

	recv := zfs.RecvOptions{Target: dst, Resumable: true, NoMount: true}
	if _, err := transfer(t, c, x, zfs.SendOptions{To: src + "@s1", Raw: true}, recv); err != nil {
		t.Fatalf("raw full: %v", err)
	}
	if _, err := transfer(t, c, x, zfs.SendOptions{From: src + "@s1", To: src + "@s2", Raw: true}, recv); err != nil {
		t.Fatalf("raw incremental: %v", err)
	}
	wantSameGUID(t, src+"@s2", dst+"@s2")
	entries, err := c.List(x, []string{dst}, zfs.ListOptions{Depth: -1})
	if err != nil || len(entries) != 1 {
		t.Fatalf("list: %+v, %v", entries, err)
	}
	e := entries[0]
	if !e.Encrypted() || e.EncryptionRoot != dst || e.KeyStatus != "unavailable" {
		t.Errorf("replica %+v: want encrypted, its own root, key unavailable", e)
	}
}
