package serve

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport/serve/servetest"
	"github.com/zsync-dev/zsync/sshtransport/wire"
)

func TestServeHandshake(t *testing.T) {
	for _, tc := range []struct {
		hello string
		check func(error) bool
	}{
		{"ZSYNC-CLIENT 1 v1\n", func(err error) bool { return err == nil }},
		{"ZSYNC-CLIENT 3 v3\n", func(err error) bool {
			var vm *wire.VersionMismatchError
			return errors.As(err, &vm) && vm.Remote == 3
		}},
		{"GET / HTTP/1.1\r\n", func(err error) bool { return errors.Is(err, wire.ErrProtocol) }},
		{"", func(err error) bool { return errors.Is(err, wire.ErrProtocol) }},
		{strings.Repeat("Z", 300), func(err error) bool { return errors.Is(err, wire.ErrProtocol) }},
	} {
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), b, b, servetest.NewFake(), Options{SoftwareVersion: "v 1\n2"})
		}()
		br := bufio.NewReader(a)
		banner, err := br.ReadString('\n')
		if err != nil || banner != "ZSYNC-SERVE 1 v_1_2\n" {
			t.Fatalf("banner %q, %v", banner, err)
		}
		go func() {
			_, _ = a.Write([]byte(tc.hello))
			_ = a.Close()
		}()
		select {
		case err := <-done:
			if !tc.check(err) {
				t.Errorf("hello %q: Serve = %v", tc.hello, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("hello %q: Serve did not return", tc.hello)
		}
	}
}

func TestServeContextCancel(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, b, b, servetest.NewFake(), Options{}) }()
	br := bufio.NewReader(a)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("ZSYNC-CLIENT 1 x\n")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve ignored its context")
	}
}

func TestUnknownOpIsUnsupported(t *testing.T) {
	r := newRaw(t, servetest.NewFake(), Options{})
	resp := r.call("format_disk", map[string]string{"pool": "tank"})
	if resp.Error == nil || !errors.Is(resp.Error.Decode(), errors.ErrUnsupported) {
		t.Fatalf("response = %+v", resp)
	}
	// Still usable.
	if resp := r.call(wire.OpHolds, wire.HoldsArgs{Snaps: []string{"tank/a@b"}}); resp.Error != nil {
		t.Fatalf("after an unknown op: %+v", resp.Error)
	}
}
