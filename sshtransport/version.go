// Package sshtransport owns the wire between the active zsync and its far
// endpoint: SSH dialing with golang.org/x/crypto/ssh, the plain-text banner and
// version handshake, the framed message protocol, and both ends of it (the
// client used by push and pull, and the `zsync serve --stdio` loop).
package sshtransport

// ProtocolVersion is the version of zsync's wire protocol. Both ends print it
// in their banner; a mismatch is a clear one-line error.
const ProtocolVersion = 1
