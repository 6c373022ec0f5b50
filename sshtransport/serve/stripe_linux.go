package serve

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// stripeAddr is the abstract Unix socket of a striping session: abstract,
// so nothing is left on disk and no directory's permissions matter; both
// ends check that the other is a process of their own user (SO_PEERCRED),
// and the joining end proves it got the session's token from the client.
func stripeAddr(session string) string { return "@zsync-stripe-" + session }

func listenStripe(session string) (net.Listener, error) {
	return net.Listen("unix", stripeAddr(session))
}

func dialStripe(session string) (net.Conn, error) {
	return net.Dial("unix", stripeAddr(session))
}

// checkPeerUser refuses a Unix socket whose peer is not a process of the
// user this process runs as.
func checkPeerUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a Unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("reading the peer's credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("the peer runs as uid %d, not %d", cred.Uid, os.Geteuid())
	}
	return nil
}
