//go:build realzfs

package zfs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// The guard walks every kind of stream OpenZFS writes, record by record,
// to its last END: the same bytes come out, and what zfs recv then makes
// of them is the replica. This pins the record sizes the guard computes
// to the real ones.
func TestRealStreamGuardWalksEveryStream(t *testing.T) {
	pool := zfstest.NewPool(t, 256)
	fs, enc, vol, big, sa := pool+"/fs", pool+"/enc", pool+"/vol", pool+"/big", pool+"/sa"
	zfstest.MustCreate(t, fs, "compression=lz4")
	zfstest.MustCreate(t, enc, "encryption=on", "keyformat=passphrase", "keylocation=file://"+zfstest.KeyFile(t, "zsync-guard-test"))
	zfstest.MustCreate(t, big, "recordsize=1M")
	zfstest.MustCreate(t, sa, "xattr=sa")
	zfstest.Zfs(t, "create", "-V", "8M", vol)
	for _, ds := range []string{fs, enc, big, sa} {
		dir := zfstest.Mountpoint(t, ds)
		zfstest.WriteRandom(t, filepath.Join(dir, "random"), 1536)
		if err := os.WriteFile(filepath.Join(dir, "text"), bytes.Repeat([]byte("zsync "), 40000), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tiny"), []byte("embedded"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// large xattrs in a spill block
	for i, name := range []string{"user.a", "user.b", "user.c"} {
		if err := syscall.Setxattr(filepath.Join(zfstest.Mountpoint(t, sa), "tiny"), name, bytes.Repeat([]byte{byte('a' + i)}, 3000), 0); err != nil {
			t.Fatalf("setxattr: %v", err)
		}
	}
	zfstest.Run(t, "udevadm", "settle")
	zfstest.Run(t, "dd", "if=/dev/urandom", "of=/dev/zvol/"+vol, "bs=64k", "count=32", "conv=fsync")
	for _, ds := range []string{fs, enc, vol, big, sa} {
		zfstest.MustSnapshot(t, ds+"@a")
	}
	zfstest.MustWriteFile(t, fs, "more", 256)
	zfstest.MustSnapshot(t, fs+"@b")
	zfstest.MustSnapshot(t, fs+"@c")
	for name, args := range map[string][]string{
		"full":              {fs + "@a"},
		"compressed":        {"-c", fs + "@a"},
		"embedded large":    {"-e", "-L", "-c", big + "@a"},
		"large plain":       {"-L", big + "@a"},
		"incremental":       {"-i", "@a", fs + "@b"},
		"intermediates":     {"-I", "@a", fs + "@c"},
		"raw encrypted":     {"-w", enc + "@a"},
		"volume":            {vol + "@a"},
		"volume compressed": {"-c", vol + "@a"},
		"spill":             {sa + "@a"},
		"spill raw-ish":     {"-c", "-e", "-L", sa + "@a"},
	} {
		t.Run(name, func(t *testing.T) {
			stream := zfstest.Send(t, args...)
			g := zfs.NewStreamGuard(bytes.NewReader(stream))
			h, err := g.Head()
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			out, err := io.ReadAll(g)
			if err != nil {
				t.Fatalf("walking the stream: %v (after %d of %d bytes)", err, len(out), len(stream))
			}
			if !bytes.Equal(out, stream) {
				t.Fatalf("the guard passed %d bytes of a %d-byte stream", len(out), len(stream))
			}
			t.Logf("%s: %d bytes, type %s, compound %v", name, len(stream), h.Type, h.Compound)
		})
	}
	// and a stream that zfs recv accepts after the guard lands whole
	src := zfstest.Send(t, "-I", "@a", fs+"@c")
	full := zfstest.Send(t, fs+"@a")
	cmd := exec.Command("zfs", "recv", "-u", pool+"/copy")
	cmd.Stdin = zfs.NewStreamGuard(bytes.NewReader(full))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recv full through the guard: %v: %s", err, out)
	}
	g := zfs.NewStreamGuard(bytes.NewReader(src))
	if _, err := g.Head(); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("zfs", "recv", "-u", pool+"/copy")
	cmd.Stdin = g
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recv -I through the guard: %v: %s", err, out)
	}
	if got := zfstest.Zfs(t, "list", "-H", "-o", "name", "-t", "snapshot", "-r", pool+"/copy"); got != pool+"/copy@a\n"+pool+"/copy@b\n"+pool+"/copy@c\n" {
		t.Errorf("received %q", got)
	}
	// a second dataset's substream after the first is stopped before it
	two := append(append([]byte(nil), src[:len(src)-312]...), zfstest.Send(t, sa+"@a")...)
	g = zfs.NewStreamGuard(bytes.NewReader(two))
	if _, err := g.Head(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(g); !errors.Is(err, zfs.ErrStreamHeader) {
		t.Errorf("a compound stream smuggling another dataset: %v", err)
	}
}
