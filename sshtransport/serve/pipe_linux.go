package serve

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the kernel buffer asked for on the pipes between zsync and
// its transport (the sshd's pipes to `zsync serve --stdio`, the pipes to a
// local serve child): 1 MiB instead of Linux's default 64 KiB, so a whole
// data frame fits and the writer goes back to its source while the reader
// drains the pipe, instead of the two taking turns 64 KiB at a time.
const pipeSize = 1 << 20

// growPipe enlarges the kernel buffer behind v when v is a pipe. Anything
// else (a socket, a file, a plain io.Reader) is left alone, as is a pipe
// the user may not grow (over /proc/sys/fs/pipe-max-size): that only costs
// speed.
func growPipe(v any) {
	f, ok := v.(*os.File)
	if !ok {
		return
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	// through SyscallConn: f.Fd() would switch the file to blocking mode,
	// after which Close no longer unblocks a pending Read or Write
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}
