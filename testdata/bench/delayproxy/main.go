// Command delayproxy is the long link of `make bench` (testdata/bench/openssh):
// a TCP proxy on loopback that forwards every connection it accepts to one
// target and delays each direction by a fixed time without limiting its
// bandwidth. A chunk read at time t is queued and written at t+delay; the
// reader never waits for the writer except when a direction has more than
// -buffer bytes in flight (the default, 256 MiB, covers 10 GiB/s at 25 ms).
// So a transfer through it sees a round-trip time of twice -delay and
// whatever throughput its flow control allows at that latency.
//
//	delayproxy -target 127.0.0.1:PORT [-delay 25ms] [-listen 127.0.0.1:0] [-addr-file FILE]
//
// It writes the address it listens on to -addr-file (atomically) or, when
// that is empty, to stdout, and runs until it is killed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "delayproxy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("delayproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	target := fs.String("target", "", "address to forward to (host:port)")
	delay := fs.Duration("delay", 25*time.Millisecond, "delay of each direction (half the round-trip time)")
	buffer := fs.Int("buffer", 256<<20, "bytes in flight per direction before reading pauses")
	addrFile := fs.String("addr-file", "", "file to write the listening address to (default stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || fs.NArg() != 0 {
		return errors.New("usage: delayproxy -target HOST:PORT [-delay D] [-listen ADDR] [-addr-file FILE]")
	}
	if *delay < 0 || *buffer < 1 {
		return errors.New("-delay must be >= 0 and -buffer >= 1")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := announce(*addrFile, ln.Addr().String()); err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go proxy(c, *target, *delay, *buffer)
	}
}

// announce writes addr to file via a rename, so a reader polling for the
// file never sees half of it, or to stdout when file is empty.
func announce(file, addr string) error {
	if file == "" {
		_, err := fmt.Println(addr)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".delayproxy-addr-*")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(tmp, addr); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// proxy forwards one accepted connection to target, each direction
// through its own delay line, and closes both ends when both directions
// have ended (or either one failed).
func proxy(client net.Conn, target string, delay time.Duration, buffer int) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "delayproxy:", err)
		return
	}
	defer server.Close()
	var wg sync.WaitGroup
	abort := func() { client.Close(); server.Close() }
	for _, d := range [][2]net.Conn{{client, server}, {server, client}} {
		l := newLine(buffer)
		wg.Add(2)
		go func() { defer wg.Done(); l.fill(d[0], delay) }()
		go func() {
			defer wg.Done()
			if err := l.drain(d[1]); err != nil {
				abort()
			}
		}()
	}
	wg.Wait()
}

// chunk is one read, due to be written at due; an empty chunk with eof set
// marks the end of the direction.
type chunk struct {
	due  time.Time
	data []byte
	eof  bool
}

// line is one direction's delay line: a FIFO of chunks bounded in bytes.
type line struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []chunk
	bytes  int
	max    int
	closed bool // the writer gave up: the reader drops what it reads
}

func newLine(max int) *line {
	l := &line{max: max}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// fill reads src until it ends, queueing each read to be written delay
// after it arrived, then queues the end marker the same way.
func (l *line) fill(src net.Conn, delay time.Duration) {
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		now := time.Now()
		if n > 0 {
			data := make([]byte, n)
			copy(data, buf[:n])
			l.push(chunk{due: now.Add(delay), data: data})
		}
		if err != nil {
			l.push(chunk{due: now.Add(delay), eof: true})
			return
		}
	}
}

func (l *line) push(c chunk) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && !c.eof && l.bytes > 0 && l.bytes+len(c.data) > l.max {
		l.cond.Wait()
	}
	if l.closed {
		return
	}
	l.q = append(l.q, c)
	l.bytes += len(c.data)
	l.cond.Broadcast()
}

// drain writes each queued chunk to dst at its due time, all the chunks
// due by then in one write, and half-closes dst at the end marker.
func (l *line) drain(dst net.Conn) error {
	for {
		l.mu.Lock()
		for len(l.q) == 0 {
			l.cond.Wait()
		}
		head := l.q[0]
		l.mu.Unlock()
		if d := time.Until(head.due); d > 0 {
			time.Sleep(d)
		}

		// Everything due by now, up to the end marker.
		now := time.Now()
		eof, n := false, 0
		var batch net.Buffers
		l.mu.Lock()
		for n < len(l.q) && !l.q[n].due.After(now) && !eof {
			batch = append(batch, l.q[n].data)
			eof = l.q[n].eof
			n++
		}
		l.mu.Unlock()

		if _, err := batch.WriteTo(dst); err != nil {
			l.close()
			return err
		}
		l.mu.Lock()
		for i := range n {
			l.bytes -= len(l.q[i].data)
			l.q[i] = chunk{}
		}
		l.q = l.q[n:]
		l.cond.Broadcast()
		l.mu.Unlock()
		if eof {
			if tc, ok := dst.(*net.TCPConn); ok {
				return tc.CloseWrite()
			}
			return dst.Close()
		}
	}
}

func (l *line) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.q, l.bytes = nil, 0
	l.cond.Broadcast()
}
