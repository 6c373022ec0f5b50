//go:build !linux

package zfs

import "os"

// growPipe is a no-op where the pipe size cannot be set.
func growPipe(*os.File) {}

// pipeSize is the chunk a feed to zfs recv is copied in (runner.go); the
// pipe itself keeps the system's size here.
const pipeSize = 1 << 20
