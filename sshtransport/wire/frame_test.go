package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

func header(t FrameType, n uint32) []byte {
	h := make([]byte, FrameHeaderLen)
	h[0] = byte(t)
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := map[FrameType][]byte{
		FrameRequest: []byte(`{"op":"list"}`),
		FrameData:    bytes.Repeat([]byte{7}, MaxDataPayload),
		FrameCancel:  nil,
		FrameEnd:     []byte(`{}`),
	}
	order := []FrameType{FrameRequest, FrameData, FrameCancel, FrameEnd}
	for _, ft := range order {
		if err := WriteFrame(&buf, ft, payloads[ft]); err != nil {
			t.Fatal(err)
		}
	}
	rbuf := make([]byte, MaxDataPayload)
	for _, want := range order {
		ft, p, err := ReadFrame(&buf, rbuf)
		if err != nil || ft != want || !bytes.Equal(p, payloads[want]) {
			t.Fatalf("frame %s: got %s (%d bytes), %v", want, ft, len(p), err)
		}
	}
	if _, _, err := ReadFrame(&buf, nil); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	// Writers refuse what readers would refuse.
	if err := WriteFrame(io.Discard, FrameData, make([]byte, MaxDataPayload+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized write: %v", err)
	}
	if err := WriteFrame(io.Discard, FrameType('?'), nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown type write: %v", err)
	}
}

func TestFrameMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"oversized data", header(FrameData, MaxDataPayload+1), "exceeds the limit"},
		{"oversized control", header(FrameResponse, MaxControlPayload+1), "exceeds the limit"},
		{"huge length", header(FrameRequest, 0xffffffff), "exceeds the limit"},
		{"cancel with payload", header(FrameCancel, 1), "exceeds the limit"},
		{"unknown type", header(FrameType(0), 3), "unknown frame type 0x00"},
		{"lowercase type", header(FrameType('q'), 3), "unknown frame type 0x71"},
		{"truncated header", []byte{'D', 0, 0}, "truncated frame header"},
		{"truncated payload", append(header(FrameData, 10), 1, 2, 3), "truncated data frame"},
	} {
		_, _, err := ReadFrame(bytes.NewReader(tc.in), nil)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrProtocol with %q", tc.name, err, tc.want)
		}
	}
}

// TestFrameOversizedAllocatesNothing: a header announcing a huge frame is
// refused before any payload allocation.
func TestFrameOversizedAllocatesNothing(t *testing.T) {
	h := header(FrameRequest, 0xfffffff0)
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = ReadFrame(bytes.NewReader(h), nil)
	})
	if allocs > 8 {
		t.Errorf("%v allocations for a refused frame", allocs)
	}
	// A data frame reuses the caller's buffer.
	frame := append(header(FrameData, 4096), make([]byte, 4096)...)
	buf := make([]byte, MaxDataPayload)
	allocs = testing.AllocsPerRun(100, func() {
		_, _, _ = ReadFrame(bytes.NewReader(frame), buf)
	})
	if allocs > 2 {
		t.Errorf("%v allocations for a data frame read into a buffer", allocs)
	}
}

func TestDecodeResponseUnknownKindsIgnored(t *testing.T) {
	var r Response
	p := []byte(`{"error":{"kinds":["dataset_not_found","from_the_future"],"message":"m"}}`)
	if err := DecodeStrict(p, &r); err != nil {
		t.Fatal(err)
	}
	err := r.Error.Decode()
	if !errors.Is(err, zfs.ErrDatasetNotFound) || err.Error() != "m" {
		t.Fatalf("err = %v", err)
	}
}
