package sshtransport

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// Errors of the transport itself. The far side's zfs errors cross the wire
// as wire errors and come back as *RemoteError values that unwrap to the
// same zfs sentinels and types as a local call would return.
var (
	// ErrNotZsync: the far side's first line was not a zsync serve banner
	// (typically "zsync: command not found" from its shell). Install zsync
	// there or fix the configured command.
	ErrNotZsync = errors.New("far side did not answer as zsync serve")
	// ErrProtocol: a malformed, oversized, unexpected or unknown frame or
	// message. The connection is unusable afterwards.
	ErrProtocol = errors.New("zsync protocol error")
	// ErrForbidden: the far side's policy (serve --client) refused the
	// request; the message says what was refused and why. Nothing ran.
	ErrForbidden = errors.New("forbidden by the far side's policy")
	// ErrClosed: the client was closed, or its connection broke earlier
	// (a cancelled context, a protocol error, a dead peer).
	ErrClosed = errors.New("connection to the far side is closed")
	// ErrStreamAborted: the sending end of a stream gave up before the end
	// (its source failed or it was cancelled). A receive fed by an aborted
	// stream fails, it never completes on a truncated stream.
	ErrStreamAborted = errors.New("stream aborted by the sending end")
)

// VersionMismatchError: the far side speaks another protocol version.
type VersionMismatchError struct {
	Local  int    // ProtocolVersion of this side
	Remote int    // protocol version the far side announced
	Peer   string // the far side's software version, as announced
}

// Error implements error.
func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("zsync protocol version mismatch: this zsync speaks protocol %d, the far side (zsync %s) speaks %d; install the same zsync release on both hosts",
		e.Local, e.Peer, e.Remote)
}

// RemoteError is an error that happened on the far side. Message is the far
// side's error text verbatim (with zfs's stderr when zfs failed). It
// unwraps to the zfs sentinels the far error wrapped (zfs.ErrDatasetNotFound,
// zfs.ErrSnapshotHeld, ...), to ErrForbidden or ErrProtocol, and to rebuilt
// *zfs.Error, *zfs.NameError, *zfs.DestroyError, *zfs.HoldError and
// *zfs.ResumableRecvError values, so callers use errors.Is and errors.As as
// with a local *zfs.CLI.
type RemoteError struct {
	Message string
	errs    []error
}

// Error implements error.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the rebuilt sentinels and typed errors.
func (e *RemoteError) Unwrap() []error { return e.errs }

// wireKinds maps the sentinels that cross the wire to their wire names.
// Context errors deliberately do not cross: a far side that was cancelled
// must not look like a local interruption.
var wireKinds = []struct {
	name string
	err  error
}{
	{"dataset_not_found", zfs.ErrDatasetNotFound},
	{"exists", zfs.ErrExists},
	{"snapshot_held", zfs.ErrSnapshotHeld},
	{"snapshot_cloned", zfs.ErrSnapshotCloned},
	{"hold_exists", zfs.ErrHoldExists},
	{"no_such_hold", zfs.ErrNoSuchHold},
	{"destination_modified", zfs.ErrDestinationModified},
	{"incremental_mismatch", zfs.ErrIncrementalMismatch},
	{"destination_has_snapshots", zfs.ErrDestinationHasSnapshots},
	{"partial_receive", zfs.ErrPartialReceive},
	{"stream_incomplete", zfs.ErrStreamIncomplete},
	{"resume_token_corrupt", zfs.ErrResumeTokenCorrupt},
	{"resume_token_stale", zfs.ErrResumeTokenStale},
	{"not_most_recent", zfs.ErrNotMostRecent},
	{"busy", zfs.ErrBusy},
	{"permission_denied", zfs.ErrPermissionDenied},
	{"no_space", zfs.ErrNoSpace},
	{"invalid_name", zfs.ErrInvalidName},
	{"invalid_property", zfs.ErrInvalidProperty},
	{"forbidden", ErrForbidden},
	{"protocol", ErrProtocol},
	{"stream_aborted", ErrStreamAborted},
	{"unsupported", errors.ErrUnsupported},
}

// Bounds of what an encoded error carries.
const (
	maxWireMessage = 16 << 10
	maxWireFailed  = 1000
)

// wireError is the JSON form of an error: the message verbatim, the kinds
// (sentinels) it wraps, and the structured parts zsync's callers inspect.
type wireError struct {
	wireLeaf
	// Resumable is set when the error wraps a *zfs.ResumableRecvError.
	Resumable *wireResumable `json:"resumable,omitempty"`
	// Destroy is set when the error wraps a *zfs.DestroyError.
	Destroy *wireBatch `json:"destroy,omitempty"`
	// Hold is set when the error wraps a *zfs.HoldError.
	Hold *wireBatch `json:"hold,omitempty"`
}

// wireLeaf is an error without batch structure (one failed snapshot of a
// batch, or the top of any error).
type wireLeaf struct {
	Kinds   []string      `json:"kinds,omitempty"`
	Message string        `json:"message"`
	ZFS     *wireZFSError `json:"zfs,omitempty"`
	Name    *wireName     `json:"name,omitempty"`
}

type wireZFSError struct {
	Args     []string `json:"args,omitempty"`
	Stderr   string   `json:"stderr,omitempty"`
	ExitCode int      `json:"exit_code"`
}

type wireName struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

type wireResumable struct {
	Dataset string `json:"dataset"`
	Token   string `json:"token"`
}

type wireBatch struct {
	Dataset string              `json:"dataset,omitempty"`
	Op      string              `json:"op,omitempty"`
	Tag     string              `json:"tag,omitempty"`
	Failed  map[string]wireLeaf `json:"failed"`
}

// encodeError turns any error into its wire form.
func encodeError(err error) *wireError {
	w := &wireError{wireLeaf: encodeLeaf(err)}
	var rr *zfs.ResumableRecvError
	if errors.As(err, &rr) {
		w.Resumable = &wireResumable{Dataset: rr.Dataset, Token: rr.Token}
	}
	var de *zfs.DestroyError
	if errors.As(err, &de) {
		w.Destroy = &wireBatch{Dataset: de.Dataset, Failed: encodeFailed(de.Failed)}
	}
	var he *zfs.HoldError
	if errors.As(err, &he) {
		w.Hold = &wireBatch{Op: he.Op, Tag: he.Tag, Failed: encodeFailed(he.Failed)}
	}
	return w
}

func encodeFailed(m map[string]error) map[string]wireLeaf {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > maxWireFailed {
		keys = keys[:maxWireFailed]
	}
	out := make(map[string]wireLeaf, len(keys))
	for _, k := range keys {
		if m[k] != nil {
			out[k] = encodeLeaf(m[k])
		}
	}
	return out
}

func encodeLeaf(err error) wireLeaf {
	l := wireLeaf{Message: bound(err.Error(), maxWireMessage)}
	for _, k := range wireKinds {
		if errors.Is(err, k.err) {
			l.Kinds = append(l.Kinds, k.name)
		}
	}
	var ze *zfs.Error
	if errors.As(err, &ze) {
		l.ZFS = &wireZFSError{Args: ze.Args, Stderr: bound(ze.Stderr, maxWireMessage), ExitCode: ze.ExitCode}
	}
	var ne *zfs.NameError
	if errors.As(err, &ne) {
		l.Name = &wireName{Name: bound(ne.Name, 1024), Reason: bound(ne.Reason, 1024)}
	}
	return l
}

// decode rebuilds the error on the client side.
func (w *wireError) decode() error {
	if w == nil {
		return fmt.Errorf("%w: error response without an error", ErrProtocol)
	}
	e := w.wireLeaf.decode()
	if r := w.Resumable; r != nil {
		e.errs = append(e.errs, &zfs.ResumableRecvError{Dataset: r.Dataset, Token: r.Token})
	}
	if d := w.Destroy; d != nil {
		e.errs = append(e.errs, &zfs.DestroyError{Dataset: d.Dataset, Failed: decodeFailed(d.Failed)})
	}
	if h := w.Hold; h != nil {
		e.errs = append(e.errs, &zfs.HoldError{Op: h.Op, Tag: h.Tag, Failed: decodeFailed(h.Failed)})
	}
	return e
}

func decodeFailed(m map[string]wireLeaf) map[string]error {
	out := make(map[string]error, len(m))
	for k, l := range m {
		out[k] = l.decode()
	}
	return out
}

func (l wireLeaf) decode() *RemoteError {
	msg := l.Message
	if msg == "" {
		msg = "far side reported an error without a message"
	}
	e := &RemoteError{Message: msg}
	for _, name := range l.Kinds {
		for _, k := range wireKinds {
			if k.name == name {
				e.errs = append(e.errs, k.err)
				break
			}
		}
	}
	if z := l.ZFS; z != nil {
		e.errs = append(e.errs, &zfs.Error{Args: z.Args, Stderr: z.Stderr, ExitCode: z.ExitCode})
	}
	if n := l.Name; n != nil {
		e.errs = append(e.errs, &zfs.NameError{Name: n.Name, Reason: n.Reason})
	}
	return e
}

// bound keeps the head and the tail of a long string.
func bound(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	half := limit / 2
	return s[:half] + "\n[...]\n" + s[len(s)-half:]
}

// quoteGot renders what the far side said instead of a banner, for
// ErrNotZsync messages.
func quoteGot(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return fmt.Sprintf("%q", s)
}
