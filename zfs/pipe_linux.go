package zfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the kernel buffer zsync asks for on the pipes to and from zfs
// send and zfs recv: 1 MiB instead of Linux's default 64 KiB, so zfs keeps
// working while the network side is busy. Failing to grow it (an
// unprivileged user over /proc/sys/fs/pipe-max-size) is harmless.
const pipeSize = 1 << 20

func growPipe(f *os.File) {
	// through SyscallConn: f.Fd() would switch the file to blocking mode,
	// after which Close no longer unblocks a pending Read or Write
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}
