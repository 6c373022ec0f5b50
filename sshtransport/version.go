// Package sshtransport owns the active side's end of the wire to its far
// endpoint: SSH dialing with golang.org/x/crypto/ssh, known_hosts and
// ssh_config, the remote command, the local serve child, and the client of
// the protocol (Client) used by push and pull. The protocol itself lives in
// sshtransport/wire, the far end (`zsync serve --stdio`) in
// sshtransport/serve.
package sshtransport

import "github.com/zsync-dev/zsync/sshtransport/wire"

// ProtocolVersion is the version of zsync's wire protocol. Both ends print it
// in their banner; a mismatch is a clear one-line error.
const ProtocolVersion = wire.ProtocolVersion
