package sshtransport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

func TestIdleTimeoutClosesAHungFarSide(t *testing.T) {
	h := newFake()
	h.block = true // List never answers
	s := newSession(t, h, ServeOptions{}, ClientOptions{IdleTimeout: 200 * time.Millisecond})
	_, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{})
	var ie *IdleTimeoutError
	if !errors.Is(err, ErrIdleTimeout) || !errors.As(err, &ie) || ie.Timeout != 200*time.Millisecond {
		t.Fatalf("List on a hung far side: %v; want an *IdleTimeoutError of 200ms", err)
	}
	// The client is unusable afterwards, and says so at once.
	if _, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{}); err == nil {
		t.Fatal("a second List after the idle timeout succeeded")
	}
}

func TestIdleTimeoutSparesSlowSteadyStreams(t *testing.T) {
	h := newFake()
	h.recvCountOnly = true
	h.recvPace = 5 * time.Millisecond // 64 KiB per 5 ms: at most 12 MiB/s
	// The timeout must cover the far side draining what it has buffered
	// (about 3 MiB, a quarter second at this pace) after the last byte
	// left; 1.5s leaves a wide margin on a loaded machine. The whole stream
	// takes almost twice that at least.
	s := newSession(t, h, ServeOptions{}, ClientOptions{IdleTimeout: 1500 * time.Millisecond})
	data := testData(32 << 20)
	if err := s.c.Receive(context.Background(), zfs.RecvOptions{Target: "backup/a"}, bytes.NewReader(data)); err != nil {
		t.Fatalf("slow but moving receive: %v", err)
	}
	h.mu.Lock()
	got := h.recvCount
	h.mu.Unlock()
	if got != len(data) {
		t.Fatalf("far side received %d bytes, want %d", got, len(data))
	}
}

func TestIdleTimeoutIgnoresPausesBetweenCalls(t *testing.T) {
	h := newFake()
	s := newSession(t, h, ServeOptions{}, ClientOptions{IdleTimeout: 100 * time.Millisecond})
	for i := range 2 {
		if _, err := s.c.List(context.Background(), []string{"tank"}, zfs.ListOptions{}); err != nil {
			t.Fatalf("List %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond) // the client busy elsewhere: not the far side's fault
	}
}
