package serve

import (
	"errors"
	"testing"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

func TestServerRefusesBombInReceive(t *testing.T) {
	h := servetest.NewFake()
	r := newRaw(t, h, Options{})
	resp := r.call(wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/x"}, Compress: wire.CompressZstd})
	if resp.Error != nil {
		t.Fatal(resp.Error.Decode())
	}
	if err := wire.WriteFrame(r.conn, wire.FrameZData, zstdEncode(t, make([]byte, 8<<20))); err != nil {
		t.Fatal(err)
	}
	r.expectFatal()
	err := r.serveResult()
	if !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("Serve = %v", err)
	}
	<-h.RecvDone
	if h.RecvReadErr == nil {
		t.Error("the far receive saw a clean end")
	}
}

func TestStreamLengthIsChecked(t *testing.T) {
	// Server side: an end frame announcing more than arrived fails the
	// receive instead of completing it.
	h := servetest.NewFake()
	r := newRaw(t, h, Options{})
	if resp := r.call(wire.OpReceive, wire.ReceiveArgs{Options: zfs.RecvOptions{Target: "backup/x"}}); resp.Error != nil {
		t.Fatal(resp.Error.Decode())
	}
	if err := wire.WriteFrame(r.conn, wire.FrameData, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := wire.WriteFrame(r.conn, wire.FrameEnd, []byte(`{"bytes":20}`)); err != nil {
		t.Fatal(err)
	}
	// the fake handler returns nil whatever it read: serve itself must not
	// report a short stream as received
	if resp := r.readResponse(); resp.Error == nil || !errors.Is(resp.Error.Decode(), wire.ErrStreamAborted) {
		t.Fatalf("response to a short stream: %+v, want an wire.ErrStreamAborted error", resp)
	}
	if !errors.Is(h.RecvReadErr, wire.ErrProtocol) || string(h.RecvData) != "0123456789" {
		t.Fatalf("handler read %q, %v", h.RecvData, h.RecvReadErr)
	}
}
