package wire

import (
	"errors"
	"testing"
	"unsafe"
)

func TestZstdBombRefused(t *testing.T) {
	enc, dec, err := CodecFor(CompressZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	defer dec.Close()
	bomb := enc.z.EncodeAll(make([]byte, 64<<20), nil)
	if len(bomb) > MaxDataPayload {
		t.Fatalf("bomb of %d bytes does not fit a frame", len(bomb))
	}
	if _, err := dec.Payload(FrameZData, bomb); !errors.Is(err, ErrProtocol) {
		t.Fatalf("decoding a 64 MiB bomb: %v", err)
	}
	// Within the limit it works, and garbage fails cleanly.
	ok := enc.z.EncodeAll(make([]byte, MaxDataPayload), nil)
	if out, err := dec.Payload(FrameZData, ok); err != nil || len(out) != MaxDataPayload {
		t.Fatalf("1 MiB frame: %d, %v", len(out), err)
	}
	if _, err := dec.Payload(FrameZData, []byte("not zstd at all")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage: %v", err)
	}
	var none *Decoder
	if _, err := none.Payload(FrameZData, ok); !errors.Is(err, ErrProtocol) {
		t.Fatalf("zstd frame without negotiation: %v", err)
	}
}

// The payload of a data buffer starts on a cache line, whatever the
// header length, and the buffer holds exactly one frame.
func TestNewDataBufAlignsPayload(t *testing.T) {
	for range 20 {
		buf := NewDataBuf()
		if len(buf) != FrameHeaderLen+MaxDataPayload || cap(buf) != len(buf) {
			t.Fatalf("len %d cap %d, want both %d", len(buf), cap(buf), FrameHeaderLen+MaxDataPayload)
		}
		if a := uintptr(unsafe.Pointer(&buf[FrameHeaderLen])) % payloadAlign; a != 0 {
			t.Fatalf("payload starts %d bytes past a %d-byte boundary", a, payloadAlign)
		}
	}
}
