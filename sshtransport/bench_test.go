package sshtransport

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
)

// benchStreamBytes is what each benchmark iteration moves.
const benchStreamBytes = 64 << 20

// BenchmarkSSHStream measures bulk throughput of one x/crypto/ssh session
// against the in-process test server over loopback: "push" writes 64 MiB
// to the remote command's stdin (as a zfs send to a far recv does), "pull"
// reads 64 MiB from its stdout. Both ends run in this process, so the
// figure includes the server's encryption work too. The connection is
// set up outside the timer; each iteration opens and closes a session.
func BenchmarkSSHStream(b *testing.B) {
	f := newDialFixture(b)
	c := f.dial(b, f.opts())
	buf := make([]byte, 1<<20)

	b.Run("push", func(b *testing.B) {
		b.SetBytes(benchStreamBytes)
		for b.Loop() {
			rw, err := c.Exec(context.Background(), "sink")
			if err != nil {
				b.Fatal(err)
			}
			for sent := 0; sent < benchStreamBytes; sent += len(buf) {
				if _, err := rw.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := rw.(*ExecSession).CloseWrite(); err != nil {
				b.Fatal(err)
			}
			line, err := bufio.NewReader(rw).ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := strconv.Atoi(strings.TrimSpace(line)); n != benchStreamBytes {
				b.Fatalf("far side received %s bytes, want %d", strings.TrimSpace(line), benchStreamBytes)
			}
			if err := rw.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("pull", func(b *testing.B) {
		b.SetBytes(benchStreamBytes)
		for b.Loop() {
			rw, err := c.Exec(context.Background(), "source "+strconv.Itoa(benchStreamBytes))
			if err != nil {
				b.Fatal(err)
			}
			// Read with the big buffer (io.Discard's ReadFrom would use 8 KiB).
			var n int
			for {
				k, err := rw.Read(buf)
				n += k
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if n != benchStreamBytes {
				b.Fatalf("received %d bytes, want %d", n, benchStreamBytes)
			}
			if err := rw.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
