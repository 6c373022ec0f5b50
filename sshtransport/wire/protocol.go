package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// The protocol, in order:
//
//  1. The server writes its banner, one plain-text line, as soon as it
//     starts: "ZSYNC-SERVE <protocol> <software version>\n". Anything else
//     (a shell's "zsync: command not found") fails the client with
//     ErrNotZsync; another protocol number with *VersionMismatchError.
//  2. The client answers with its hello line:
//     "ZSYNC-CLIENT <protocol> <software version>\n".
//  3. Frames (frame.go) in both directions. The client sends one request
//     frame at a time, {"op": ..., "args": {...}}, and reads the response
//     frame(s), {"result": ...} or {"error": {...}} (Error). A List
//     result may span several response frames ("more": true on all but
//     the last).
//
// Streams:
//
//   - send: request, response (ok or error), then data frames from the
//     server, then one end frame {"error"?: ..., "bytes": n}. The client may
//     send one cancel frame at any time before it has read the end frame;
//     the server then kills zfs send and still ends the stream with an end
//     frame, so the connection stays usable. A cancel that arrives after
//     the end frame is ignored.
//   - receive: request, response (ok to stream, or error), then data frames
//     from the client, then one end frame from the client ({} when the
//     source reached its end, {"error": ...} when it failed: the server then
//     makes zfs recv fail), then the final response from the server. When
//     zfs recv ends early, the server sends the final response at once and
//     discards data frames up to the client's end frame.
//
// Data frames are 'D' (raw) or, when the request negotiated
// "compress": "zstd", 'Z' (one zstd frame per data frame; a chunk that does
// not compress travels as 'D').

// Handshake line prefixes and bound.
const (
	BannerPrefix     = "ZSYNC-SERVE"
	HelloPrefix      = "ZSYNC-CLIENT"
	MaxHandshakeLine = 256
)

// PeerInfo describes the far side as it announced itself in its banner.
type PeerInfo struct {
	// Protocol is the far side's protocol version (equal to
	// ProtocolVersion once the handshake succeeded).
	Protocol int
	// Software is the far side's zsync version string.
	Software string
}

// The operations of the protocol, one per method of Handler.
const (
	OpList              = "list"
	OpGet               = "get"
	OpHolds             = "holds"
	OpHold              = "hold"
	OpRelease           = "release"
	OpBookmark          = "bookmark"
	OpDestroySnapshots  = "destroy_snapshots"
	OpDestroyBookmarks  = "destroy_bookmarks"
	OpCreate            = "create"
	OpSet               = "set"
	OpRename            = "rename"
	OpSend              = "send"
	OpSendSize          = "send_size"
	OpReceive           = "receive"
	OpAbortReceive      = "abort_receive"
	OpDecodeResumeToken = "decode_resume_token"
	OpSnapshotDigest    = "snapshot_digest"
	OpPoolErrors        = "pool_errors"
)

// CompressZstd is the only stream compression there is.
const CompressZstd = "zstd"

// Request is the payload of a request frame.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

// Response is the payload of a response frame.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	More   bool            `json:"more,omitempty"`
}

// EndStatus is the payload of an end frame.
type EndStatus struct {
	Error *Error `json:"error,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}

// Arguments of the operations, one struct per operation (hold and release
// share HoldArgs, send and send_size SendArgs).
type (
	ListArgs struct {
		Roots   []string        `json:"roots"`
		Options zfs.ListOptions `json:"options"`
	}
	GetArgs struct {
		Names []string `json:"names"`
		Props []string `json:"props"`
	}
	HoldsArgs struct {
		Snaps []string `json:"snaps"`
	}
	HoldArgs struct {
		Tag   string   `json:"tag"`
		Snaps []string `json:"snaps"`
	}
	BookmarkArgs struct {
		Source   string `json:"source"`
		Bookmark string `json:"bookmark"`
	}
	DestroySnapshotsArgs struct {
		Dataset string   `json:"dataset"`
		Names   []string `json:"names"`
	}
	DestroyBookmarksArgs struct {
		Bookmarks []string `json:"bookmarks"`
	}
	CreateArgs struct {
		Name    string            `json:"name"`
		Props   map[string]string `json:"props,omitempty"`
		Parents bool              `json:"parents,omitempty"`
	}
	SetArgs struct {
		Name  string            `json:"name"`
		Props map[string]string `json:"props"`
	}
	RenameArgs struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	SendArgs struct {
		Options  zfs.SendOptions `json:"options"`
		Compress string          `json:"compress,omitempty"`
	}
	ReceiveArgs struct {
		Options  zfs.RecvOptions `json:"options"`
		Compress string          `json:"compress,omitempty"`
	}
	DatasetArgs struct {
		Dataset string `json:"dataset"`
	}
	TokenArgs struct {
		Token string `json:"token"`
	}
	// DigestArgs asks for the checksum of a snapshot's contents, read at
	// most Limit bytes per second (0: no limit).
	DigestArgs struct {
		Snapshot string `json:"snapshot"`
		Limit    int64  `json:"limit,omitempty"`
		Sample   int    `json:"sample,omitempty"`
	}
)

// cleanVersion makes a software version safe for a handshake line: no
// spaces or control characters, at most 64 bytes.
func cleanVersion(v string) string {
	b := []byte(v)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

// HandshakeLine renders a banner or hello line.
func HandshakeLine(prefix, software string) []byte {
	return []byte(fmt.Sprintf("%s %d %s\n", prefix, ProtocolVersion, cleanVersion(software)))
}

// ReadLine reads one line of at most max bytes (newline included). It
// returns what it read, without the newline, and an error when there was
// no newline within max bytes or the stream ended first.
func ReadLine(r io.ByteReader, max int) ([]byte, error) {
	var line []byte
	for len(line) < max {
		c, err := r.ReadByte()
		if err != nil {
			return line, err
		}
		if c == '\n' {
			return line, nil
		}
		line = append(line, c)
	}
	return line, fmt.Errorf("no end of line within %d bytes", max)
}

// ParseHandshake parses "<prefix> <protocol> <software>". ok is false when
// the line does not have the prefix at all (not zsync); err reports a
// zsync line that is malformed.
func ParseHandshake(line []byte, prefix string) (p PeerInfo, ok bool, err error) {
	s := strings.TrimSuffix(string(line), "\r")
	if !strings.HasPrefix(s, prefix+" ") {
		return PeerInfo{}, false, nil
	}
	fields := strings.Fields(s)
	if len(fields) != 3 {
		return PeerInfo{}, true, fmt.Errorf("%w: malformed handshake line %s", ErrProtocol, QuoteGot(line))
	}
	n, err := strconv.Atoi(fields[1])
	if err != nil || n < 0 {
		return PeerInfo{}, true, fmt.Errorf("%w: malformed protocol version in %s", ErrProtocol, QuoteGot(line))
	}
	return PeerInfo{Protocol: n, Software: fields[2]}, true, nil
}

// DecodeStrict decodes JSON into v, refusing unknown fields and trailing
// data, and wraps failures in ErrProtocol. The server decodes everything a
// client sends with it.
func DecodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: bad JSON: %w", ErrProtocol, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data after JSON value", ErrProtocol)
	}
	return nil
}

// DecodeLenient decodes JSON into v, ignoring unknown fields (the client
// accepts what a newer server of the same protocol version may add) but
// refusing malformed JSON and trailing data, wrapped in ErrProtocol.
func DecodeLenient(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: bad JSON: %w", ErrProtocol, err)
	}
	return nil
}
