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

func TestSetStreamProcsRestores(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	runtime.GOMAXPROCS(8)
	restore := SetStreamProcs(1)
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS during a one-stream transfer on 8 = %d, want 2", got)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Fatalf("GOMAXPROCS after restore = %d, want 8", got)
	}
}

func TestSetStreamProcsRespectsTheEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "8")
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	runtime.GOMAXPROCS(8)
	restore := SetStreamProcs(1)
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Fatalf("GOMAXPROCS with GOMAXPROCS=8 in the environment = %d, want 8 (unchanged)", got)
	}
	restore()
}
