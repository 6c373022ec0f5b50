package sshtransport

import (
	"os"
	"runtime"
)

// StreamProcs returns the number of Go processors (GOMAXPROCS) for a
// process that moves streams streams at once when cpus CPUs are available:
// one per stream plus one, but never more than cpus-1, so that at least
// one CPU is left to the sshd and zfs processes of the same transfer; at
// least 1.
//
// Why fewer than the Go default: x/crypto/ssh hands every 32 KiB packet
// from its reading goroutine to the connection's goroutine and on to the
// channel's reader. With a spare processor each hand-off wakes another OS
// thread, which costs more than the data it moves on a small machine where
// sshd and zfs need the CPUs too. Measured with `make bench` on a 2-core
// machine, a 512 MiB pull: the client's CPU time fell from about 900 to
// 700 ms and the pull went from 0.91x-0.93x to 1.14x-1.16x OpenSSH with
// one processor instead of two.
func StreamProcs(streams, cpus int) int {
	n := min(streams+1, cpus-1)
	return max(n, 1)
}

// SetStreamProcs sets GOMAXPROCS to StreamProcs(streams, current
// GOMAXPROCS) for a transfer and returns a function that restores the
// previous value. It changes nothing when the GOMAXPROCS environment
// variable is set: the user's choice wins. Only a program's top level
// (a command running a job) should call it: the setting is process-wide.
func SetStreamProcs(streams int) (restore func()) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	prev := runtime.GOMAXPROCS(0)
	want := StreamProcs(streams, prev)
	if want == prev {
		return func() {}
	}
	runtime.GOMAXPROCS(want)
	return func() { runtime.GOMAXPROCS(prev) }
}
