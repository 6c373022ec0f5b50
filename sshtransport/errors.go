package sshtransport

import (
	"errors"

	"github.com/zsync-dev/zsync/sshtransport/wire"
)

// Errors of the transport. The far side's zfs errors cross the wire and
// come back as *RemoteError values that unwrap to the same zfs sentinels
// and types as a local call would return.
var (
	// ErrNotZsync: the far side's first line was not a zsync serve banner
	// (typically "zsync: command not found" from its shell). Install zsync
	// there or fix the configured command.
	ErrNotZsync = errors.New("far side did not answer as zsync serve")
	// ErrClosed: the client was closed, or its connection broke earlier
	// (a cancelled context, a protocol error, a dead peer).
	ErrClosed = errors.New("connection to the far side is closed")

	// ErrProtocol: a malformed, oversized, unexpected or unknown frame or
	// message. The connection is unusable afterwards. (wire.ErrProtocol)
	ErrProtocol = wire.ErrProtocol
	// ErrForbidden: the far side's policy (serve --client) refused the
	// request; the message says what was refused and why. Nothing ran.
	// (wire.ErrForbidden)
	ErrForbidden = wire.ErrForbidden
	// ErrStreamAborted: the sending end of a stream gave up before the end
	// (its source failed or it was cancelled). (wire.ErrStreamAborted)
	ErrStreamAborted = wire.ErrStreamAborted
	// ErrUnreported is wrapped by the per-name errors that Client methods
	// add to a batch failure for the names the far side did not report
	// on: their outcome is unknown, and they count as failed.
	// (wire.ErrUnreported)
	ErrUnreported = wire.ErrUnreported
)

// VersionMismatchError: the far side speaks another protocol version.
type VersionMismatchError = wire.VersionMismatchError

// RemoteError is an error that happened on the far side (see
// wire.RemoteError): it unwraps to the zfs sentinels and typed errors the
// far error wrapped.
type RemoteError = wire.RemoteError

// PeerInfo describes the far side as it announced itself in its banner.
type PeerInfo = wire.PeerInfo
