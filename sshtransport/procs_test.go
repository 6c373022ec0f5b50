package sshtransport

import (
	"runtime"
	"testing"
)

func TestStreamProcs(t *testing.T) {
	for _, c := range []struct{ streams, cpus, want int }{
		{1, 1, 1},
		{1, 2, 1}, // the measured case: one stream on two CPUs
		{3, 2, 1},
		{1, 3, 2},
		{1, 4, 2},
		{3, 4, 3},
		{1, 16, 2},
		{4, 16, 5},
		{64, 16, 15},
		{0, 8, 1}, // no streams: still one processor
		{1, 0, 1}, // nonsense CPU counts never give less than one
		{-1, -1, 1},
	} {
		if got := StreamProcs(c.streams, c.cpus); got != c.want {
			t.Errorf("StreamProcs(%d streams, %d cpus) = %d, want %d", c.streams, c.cpus, got, c.want)
		}
	}
}

func TestSetStreamProcs(t *testing.T) {
	for _, c := range []struct {
		env    string // GOMAXPROCS in the environment
		during int    // GOMAXPROCS during a one-stream transfer on 8
	}{
		{"", 2},
		{"8", 8}, // the user's choice wins
	} {
		t.Run("GOMAXPROCS="+c.env, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", c.env)
			before := runtime.GOMAXPROCS(8)
			defer runtime.GOMAXPROCS(before)
			restore := SetStreamProcs(1)
			if got := runtime.GOMAXPROCS(0); got != c.during {
				t.Fatalf("GOMAXPROCS during the transfer = %d, want %d", got, c.during)
			}
			restore()
			if got := runtime.GOMAXPROCS(0); got != 8 {
				t.Fatalf("GOMAXPROCS after restore = %d, want 8", got)
			}
		})
	}
}
