package sshtransport

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Two users of one Limiter share its rate: together they cannot go faster
// than the limit (only a lower bound on time is asserted, so a slow machine
// cannot make this fail).
func TestSharedLimiterCapsTogether(t *testing.T) {
	const rate = 1 << 20 // 1 MiB/s, burst 256 KiB
	l := NewLimiter(rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 8; j++ { // 8 x 64 KiB = 512 KiB each
				if err := l.wait(context.Background(), 64<<10); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// 1 MiB in total, minus the 256 KiB burst: at least 0.75 s at 1 MiB/s
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Fatalf("two streams moved 1 MiB in %v through a 1 MiB/s limiter", d)
	}
	if NewLimiter(0) != nil || clientLimiter(ClientOptions{}) != nil {
		t.Error("no limit must be a nil Limiter")
	}
	if clientLimiter(ClientOptions{Limiter: l, BandwidthLimit: 5}) != l {
		t.Error("a shared Limiter must win over BandwidthLimit")
	}
}
