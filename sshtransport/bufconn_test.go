package sshtransport

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"testing"
	"time"
)

func TestBufferedConnPassesDataAndDeadlines(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := newBufferedConn(b)
	defer c.Close()

	// Bytes arrive whole and in order, through reads smaller and larger
	// than the buffer.
	want := make([]byte, 3*connReadBuffer+12345)
	rand.New(rand.NewSource(1)).Read(want)
	go func() { _ = writeInPieces(a, want, 70000) }()
	var got bytes.Buffer
	sizes := []int{4, 4096, connReadBuffer + 1}
	for got.Len() < len(want) {
		size := 1 << 20
		if len(sizes) > 0 {
			size, sizes = sizes[0], sizes[1:]
		}
		buf := make([]byte, size)
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, not the %d written", got.Len(), len(want))
	}

	// Writes go straight through.
	go func() { _, _ = c.Write([]byte("pong")) }()
	reply := make([]byte, 4)
	if _, err := io.ReadFull(a, reply); err != nil || string(reply) != "pong" {
		t.Fatalf("peer read %q, %v", reply, err)
	}

	// A deadline set on the wrapper bounds a blocked Read.
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked read with a deadline: %v, want a deadline error", err)
	}
}
