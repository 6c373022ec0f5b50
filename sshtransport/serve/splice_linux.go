//go:build linux

package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// fileStream is a send stream that can lend the pipe it reads from (the
// zfs package's send stream): the data may be moved out of the pipe
// directly, as long as Read reports the end. Its Read must hold nothing
// back (no buffer of its own), since what it read would be skipped.
type fileStream interface{ File() *os.File }

// splicer moves a send stream's bytes into serve's output as data frames
// without copying them through this process: splice(2) from the stream's
// pipe (or file) into a pipe of its own, as much as is there up to one
// frame, then the frame's header and the spliced bytes into the output
// pipe. Only for a stream without compression on an unstriped connection
// whose output is a pipe (the sshd's pipe to `zsync serve --stdio`, or a
// local serve child's stdout).
type splicer struct {
	src    io.Reader // the stream, for its end status
	in     *os.File  // the stream's pipe or file
	inRaw  syscall.RawConn
	out    *watchedWriter
	outRaw syscall.RawConn
	inPipe bool   // the input is a pipe (else a regular file)
	mid    [2]int // our pipe: read end, write end
	midCap int    // the most one frame takes from the input
}

// newSplicer returns a splicer for moving rc to out, or nil when either end
// does not allow it (the caller then copies).
func newSplicer(rc io.Reader, out *watchedWriter) *splicer {
	var in *os.File
	switch f := rc.(type) {
	case *os.File:
		in = f
	case fileStream:
		in = f.File()
	}
	of, ok := out.w.(*os.File)
	if in == nil || !ok {
		return nil
	}
	st, err := in.Stat()
	if err != nil || (!st.Mode().IsRegular() && st.Mode()&os.ModeNamedPipe == 0) {
		return nil
	}
	if st, err := of.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return nil
	}
	inRaw, err := in.SyscallConn()
	if err != nil {
		return nil
	}
	outRaw, err := of.SyscallConn()
	if err != nil {
		return nil
	}
	sp := &splicer{src: rc, in: in, inRaw: inRaw, inPipe: !st.Mode().IsRegular(), out: out, outRaw: outRaw}
	if sp.inPipe && !nonBlocking(inRaw) {
		// a blocking pipe would block a splice into our full pipe for good
		return nil
	}
	// Blocking, so that a file's splice never answers EAGAIN (tmpfs does
	// to SPLICE_F_NONBLOCK); a pipe input is non-blocking (Go's poller),
	// which makes its splices non-blocking whatever the flags.
	if err := unix.Pipe2(sp.mid[:], unix.O_CLOEXEC); err != nil {
		return nil
	}
	// A frame is at most what our pipe holds: 1 MiB where the system
	// allows it, else its default (64 KiB), which only makes frames smaller.
	_, _ = unix.FcntlInt(uintptr(sp.mid[1]), unix.F_SETPIPE_SZ, wire.MaxDataPayload)
	n, err := unix.FcntlInt(uintptr(sp.mid[1]), unix.F_GETPIPE_SZ, 0)
	if err != nil || n <= 0 {
		sp.close()
		return nil
	}
	sp.midCap = min(n, wire.MaxDataPayload)
	if !sp.inPipe {
		// a spare slot for a file offset off a page: a blocking splice
		// into a full pipe of our own would never return
		sp.midCap -= os.Getpagesize()
	}
	return sp
}

// nonBlocking tells whether the descriptor is in non-blocking mode (a pipe
// os.Pipe made, which Go's poller waits on).
func nonBlocking(rc syscall.RawConn) bool {
	var fl int
	var ferr error
	if err := rc.Control(func(fd uintptr) { fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		return false
	}
	return fl&unix.O_NONBLOCK != 0
}

func (sp *splicer) close() {
	_ = unix.Close(sp.mid[0])
	_ = unix.Close(sp.mid[1])
}

// errNoMore is gather's word for "nothing more right now".
var errNoMore = errors.New("no more data for now")

// gatherOnce splices what the input has now, up to want bytes, into our
// pipe. With wait it waits for data first; without, it returns errNoMore
// when there is none, or when our pipe is full (a pipe input's buffers
// that are not full pages take a slot each). It returns 0, nil at the end
// of the input. A file has its data at once: it never waits.
func (sp *splicer) gatherOnce(want int, wait bool) (int, error) {
	flags := unix.SPLICE_F_MOVE
	if sp.inPipe {
		flags |= unix.SPLICE_F_NONBLOCK
	}
	var n int64
	var serr error
	err := sp.inRaw.Read(func(fd uintptr) bool {
		for {
			n, serr = unix.Splice(int(fd), nil, sp.mid[1], nil, want, flags)
			if serr != unix.EINTR {
				break
			}
		}
		if serr == unix.EAGAIN {
			if wait {
				return false // the poller waits until the pipe has data
			}
			n, serr = 0, errNoMore
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return int(n), nil
}

// drain splices n bytes from our pipe into the output.
func (sp *splicer) drain(n int) error {
	return sp.toOutput(n, func(fd int, left int) (int, error) {
		m, err := unix.Splice(sp.mid[0], nil, fd, nil, left, unix.SPLICE_F_MOVE)
		return int(m), err
	})
}

// toOutput calls op on the output's descriptor until it has moved n
// bytes: again after EINTR, after the poller's wait on EAGAIN (an output
// in non-blocking mode that is full), and on a short move.
func (sp *splicer) toOutput(n int, op func(fd int, left int) (int, error)) error {
	for n > 0 {
		var m int
		var oerr error
		err := sp.outRaw.Write(func(fd uintptr) bool {
			for {
				m, oerr = op(int(fd), n)
				if oerr != unix.EINTR {
					break
				}
			}
			return oerr != unix.EAGAIN
		})
		if err != nil {
			return err
		}
		if oerr != nil {
			return oerr
		}
		if m <= 0 {
			return io.ErrShortWrite
		}
		n -= m
	}
	return nil
}

// run moves the stream until it ends, the context is done or the output
// fails. It returns the stream bytes sent, the stream's error (nil at its
// clean end; the context's cause when ctx ended it) and the output's error.
func (sp *splicer) run(ctx context.Context) (total int64, sendErr, netErr error) {
	defer sp.close()
	// A cancel must not wait for data that may never come: wake the wait.
	wake := func() { _ = sp.in.SetReadDeadline(time.Now()) }
	stop := context.AfterFunc(ctx, wake)
	defer func() { stop() }()
	var hdr [wire.FrameHeaderLen]byte
	for {
		if ctx.Err() != nil {
			return total, context.Cause(ctx), nil
		}
		got, eof := 0, false
		var first time.Time
		for got < sp.midCap {
			n, err := sp.gatherOnce(sp.midCap-got, got == 0)
			if errors.Is(err, errNoMore) {
				// Nothing more right now: as FillChunk does, give a
				// slow source (a disk-bound zfs send) until the frame's
				// first bytes are ChunkLinger old to fill the frame.
				if !sp.inPipe || time.Since(first) >= wire.ChunkLinger {
					break
				}
				n, err = sp.linger(ctx, sp.midCap-got, first.Add(wire.ChunkLinger))
				if errors.Is(err, errNoMore) {
					break
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					err = context.Cause(ctx)
				} else {
					err = fmt.Errorf("reading stream: %w", err)
				}
				if got == 0 {
					return total, err, nil
				}
				// send what our pipe holds, then report the error
				sendErr = err
				break
			}
			if n == 0 {
				eof = true
				break
			}
			if got == 0 {
				first = time.Now()
			}
			got += n
		}
		if got > 0 {
			if err := sp.frame(hdr[:], got); err != nil {
				return total, nil, err
			}
			total += int64(got)
		}
		if sendErr != nil {
			return total, sendErr, nil
		}
		if eof {
			// The pipe is done; Read says how the stream ended (zfs send's
			// exit status), as it does at the end of a copy. Not with a
			// deadline the context's end set: that would be its answer.
			if !stop() {
				return total, context.Cause(ctx), nil
			}
			var one [1]byte
			n, err := sp.src.Read(one[:])
			if n > 0 {
				// a file that grew: send the byte and go on
				stop = context.AfterFunc(ctx, wake)
				b := []byte{byte(wire.FrameData), 0, 0, 0, 1, one[0]}
				sp.out.since.Store(time.Now().UnixNano())
				werr := sp.writeRaw(b)
				sp.out.since.Store(0)
				if werr != nil {
					return total, nil, werr
				}
				total += int64(n)
				continue
			}
			if errors.Is(err, io.EOF) {
				return total, nil, nil
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return total, err, nil
		}
	}
}

// linger waits until the time until for more input and splices it, up to
// want bytes; errNoMore when none came by then.
func (sp *splicer) linger(ctx context.Context, want int, until time.Time) (int, error) {
	if err := sp.in.SetReadDeadline(until); err != nil {
		return 0, errNoMore
	}
	// Cleared before run looks at ctx again: a deadline the context's end
	// sets after this is kept, and an end before it shows in ctx.Err.
	defer func() { _ = sp.in.SetReadDeadline(time.Time{}) }()
	if ctx.Err() != nil {
		return 0, errNoMore
	}
	n, err := sp.gatherOnce(want, true)
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
		return 0, errNoMore
	}
	return n, err
}

// frame writes a data frame of the n bytes in our pipe: its header, then
// the bytes, as one watched write. Both go through the raw descriptor, so
// a reader that went away is an error (EPIPE) for Serve to return, with
// its cleanup, whichever part of the frame meets it: os.File.Write would
// kill the process with SIGPIPE on stdout.
func (sp *splicer) frame(hdr []byte, n int) error {
	hdr[0] = byte(wire.FrameData)
	binary.BigEndian.PutUint32(hdr[1:], uint32(n))
	sp.out.since.Store(time.Now().UnixNano())
	defer sp.out.since.Store(0)
	if err := sp.writeRaw(hdr); err != nil {
		return err
	}
	return sp.drain(n)
}

// writeRaw writes b whole to the output's descriptor.
func (sp *splicer) writeRaw(b []byte) error {
	return sp.toOutput(len(b), func(fd int, left int) (int, error) {
		return unix.Write(fd, b[len(b)-left:])
	})
}
