// Package wire owns zsync's wire protocol, the part both ends of a
// connection share: the handshake lines, the frames and their limits, the
// operations with their request, response and end payloads and the
// argument structs of every operation (with the name checks both ends run
// on them), the encoding of errors (typed zfs errors survive the trip), the
// stream codecs, and the protocol version. It knows nothing of SSH
// (package sshtransport) or of what a server allows (package
// sshtransport/serve).
package wire

// ProtocolVersion is the version of zsync's wire protocol. Both ends print it
// in their banner; a mismatch is a clear one-line error.
const ProtocolVersion = 1
