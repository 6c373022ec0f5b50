package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// send runs a send stream: ok, data frames, end frame. A cancel frame from
// the client kills the far zfs send; the stream still ends with an end
// frame, so the connection stays usable.
func (s *server) send(g sendGrant, logged map[string]any) error {
	enc, _, err := wire.CodecFor(g.compress)
	if err != nil {
		s.log(wire.OpSend, logged, err)
		return s.respond(nil, err)
	}
	defer enc.Close()
	sctx, cancel := context.WithCancel(s.opCtx)
	defer cancel()
	rc, err := s.h.Send(sctx, g.send)
	if err != nil {
		s.log(wire.OpSend, logged, err)
		return s.respond(nil, err)
	}
	if err := s.respond(nil, nil); err != nil {
		_ = rc.Close()
		return err
	}

	// Watch for a cancel (or the client going away) while streaming.
	var canceled bool
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case f := <-s.frames:
			if f.err == nil && f.t == wire.FrameCancel {
				canceled = true
			} else {
				s.held = &f // for the main loop: EOF, error or a protocol violation
			}
			cancel()
		case <-stop:
		case <-s.ctx.Done():
		}
	}()

	var (
		buf             = wire.NewDataBuf()
		total           int64
		out             = s.streamOut()
		sendErr, netErr error
	)
	// a return before out.Close below is an error Serve returns: nothing
	// waits for the writes still in flight (they end with the connection)
	defer out.Abandon()
	var sp *splicer
	if enc == nil && len(s.links) == 0 {
		sp = newSplicer(rc, s.out)
	}
	if sp != nil {
		total, sendErr, netErr = sp.run(sctx)
	}
	for sp == nil {
		n, rerr := wire.FillChunk(sctx, rc, buf[wire.FrameHeaderLen:])
		if n > 0 {
			t, fr := enc.Frame(buf[:wire.FrameHeaderLen+n])
			if err := out.WriteFramed(t, fr); err != nil {
				netErr = err
				break
			}
			total += int64(n)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				sendErr = rerr
			}
			break
		}
	}
	if netErr != nil {
		cancel()
	}
	if cerr := rc.Close(); cerr != nil && sendErr == nil {
		sendErr = cerr
	}
	close(stop)
	<-watched
	if canceled {
		sendErr = nil // the client asked for it
	}
	s.log(wire.OpSend, logged, firstErr(netErr, sendErr))
	if netErr != nil {
		return fmt.Errorf("sending the stream: %w", netErr)
	}
	st := wire.EndStatus{Bytes: total}
	if sendErr != nil {
		st.Error = wire.EncodeError(sendErr)
	}
	p, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding the end frame: %w", err)
	}
	err = out.WriteFrame(wire.FrameEnd, p)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the end frame: %w", err)
	}
	return nil
}

// receive runs a receive stream: ok, the client's data frames into the
// handler's Receive through a pipe, the client's end frame, the final
// response. An abort end frame or a lost connection closes the pipe with
// an error, so the handler's receive fails instead of completing on a
// truncated stream.
func (s *server) receive(g recvGrant, logged map[string]any) error {
	_, dec, err := wire.CodecFor(g.compress)
	if err != nil {
		s.log(wire.OpReceive, logged, err)
		return s.respond(nil, err)
	}
	defer dec.Close()
	if err := s.respond(nil, nil); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	go func() {
		err := s.receiveLanded(g, pr)
		pr.CloseWithError(errReceiverDone)
		result <- err
	}()

	var (
		recvErr   error
		received  int64 // stream bytes handed to the handler
		finished  bool  // the handler returned and recvErr is its result
		responded bool
		fatal     error
		seq       int // the stream's frames, numbered for striping
	)
	finish := func() {
		if !finished {
			recvErr = <-result
			finished = true
		}
	}
	for fatal == nil {
		var f inFrame
		if finished && !responded {
			s.log(wire.OpReceive, logged, recvErr)
			if err := s.respond(nil, recvErr); err != nil {
				pw.CloseWithError(err)
				return err
			}
			responded = true
		}
		in := s.streamIn(seq)
		if finished || (s.held != nil && in == s.frames) {
			f = s.nextOn(in)
		} else {
			idle, stop := s.idleTimer()
			select {
			case recvErr = <-result:
				finished = true
				stop()
				continue
			case f = <-in:
			case <-s.ctx.Done():
				f = inFrame{err: s.ctx.Err()}
			case <-idle:
				f = inFrame{err: s.idleErr()}
			}
			stop()
		}
		if f.err != nil {
			fatal = fmt.Errorf("receiving the stream: %w", f.err)
			if errors.Is(f.err, io.EOF) {
				fatal = fmt.Errorf("receiving the stream: the client hung up mid-stream: %w", io.ErrUnexpectedEOF)
			}
			pw.CloseWithError(fmt.Errorf("%w: %w", wire.ErrStreamAborted, fatal))
			break
		}
		seq++
		switch f.t {
		case wire.FrameData, wire.FrameZData:
			if finished {
				s.recycle(f) // zfs recv is done: discard up to the end frame
				continue
			}
			data, derr := dec.Payload(f.t, f.p)
			if derr != nil {
				fatal = derr
				pw.CloseWithError(fmt.Errorf("%w: %w", wire.ErrStreamAborted, derr))
				s.recycle(f)
				break
			}
			_, _ = pw.Write(data) // fails only when the handler is done: noticed above
			received += int64(len(data))
			s.recycle(f)
		case wire.FrameEnd:
			var st wire.EndStatus
			if derr := wire.DecodeStrict(f.p, &st); derr != nil {
				fatal = derr
				pw.CloseWithError(fmt.Errorf("%w: %w", wire.ErrStreamAborted, derr))
				break
			}
			var aborted error
			switch {
			case st.Error != nil:
				aborted = fmt.Errorf("%w: %w", wire.ErrStreamAborted, st.Error.Decode())
			case st.Bytes != received && !finished:
				aborted = fmt.Errorf("%w: %w: the client sent %d stream bytes, %d arrived (cut in transit; nothing was committed, the next run resumes)",
					wire.ErrStreamAborted, wire.ErrProtocol, st.Bytes, received)
			}
			if aborted != nil {
				pw.CloseWithError(aborted)
			} else {
				_ = pw.Close()
			}
			finish()
			if recvErr == nil && aborted != nil && !responded {
				// never report success for a stream that did not arrive
				// whole, whatever the handler made of it
				recvErr = aborted
			}
			if !responded {
				s.log(wire.OpReceive, logged, recvErr)
				return s.respond(nil, recvErr)
			}
			return nil
		default:
			fatal = fmt.Errorf("%w: unexpected %s frame in a receive stream", wire.ErrProtocol, f.t)
			pw.CloseWithError(fmt.Errorf("%w: %w", wire.ErrStreamAborted, fatal))
		}
	}
	finish()
	s.log(wire.OpReceive, logged, firstErr(fatal, recvErr))
	return s.fatal(fatal)
}

// errReceiverDone ends the pipe's write side once the handler's Receive
// returned without reading the whole stream.
var errReceiverDone = errors.New("the receive ended before its stream")

// receiveLanded runs the handler's Receive. For a restricted client it
// first reads the stream's head, which tells the dataset type the options
// depend on, and puts it back in front of the rest; a stream whose head is
// not acceptable fails before zfs recv starts.
func (s *server) receiveLanded(g recvGrant, stream io.Reader) error {
	if g.land == nil {
		return s.h.Receive(s.opCtx, g.opts, stream)
	}
	guard := zfs.NewStreamGuard(stream)
	guard.Split()
	h, err := guard.Head()
	if err != nil {
		if h.Properties {
			if _, lerr := g.land(h); lerr != nil {
				return lerr // the policy's refusal says what to do
			}
		}
		return fmt.Errorf("receive into %s: %w", g.opts.Target, err)
	}
	// One zfs recv per substream (see zfs.StreamGuard.Split): each is a
	// stream of its own, received with the far side's options.
	for {
		opts, err := g.land(h)
		if err != nil {
			return err
		}
		err = s.h.Receive(s.opCtx, opts, guard)
		if gerr := guard.Err(); gerr != nil && err != nil && !errors.Is(gerr, io.ErrUnexpectedEOF) {
			// zfs recv saw the stream end where the guard stopped it; the
			// guard's reason is the one that matters
			return fmt.Errorf("receive into %s: %w (zfs recv: %w)", g.opts.Target, gerr, err)
		}
		if err != nil {
			return err
		}
		// zfs recv may stop before the substream's end (a snapshot it
		// already has); the rest of it is still checked, not received
		if _, err := io.Copy(io.Discard, guard); err != nil {
			return fmt.Errorf("receive into %s: %w", g.opts.Target, err)
		}
		if h, err = guard.Next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("receive into %s: %w", g.opts.Target, err)
		}
	}
}
