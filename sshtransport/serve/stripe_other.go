//go:build !linux

package serve

import (
	"errors"
	"fmt"
	"net"
)

// Striping needs abstract Unix sockets and SO_PEERCRED (Linux): elsewhere
// stripe_open is answered as unsupported and the client uses one channel.

func listenStripe(string) (net.Listener, error) {
	return nil, fmt.Errorf("striping on this system: %w", errors.ErrUnsupported)
}

func dialStripe(string) (net.Conn, error) {
	return nil, fmt.Errorf("striping on this system: %w", errors.ErrUnsupported)
}

func checkPeerUser(net.Conn) error { return errors.ErrUnsupported }
