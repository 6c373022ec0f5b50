package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// Errors both ends share. The far side's zfs errors cross the wire as
// Error values and come back as *RemoteError values that unwrap to the same
// zfs sentinels and types as a local call would return.
var (
	// ErrProtocol: a malformed, oversized, unexpected or unknown frame or
	// message. The connection is unusable afterwards.
	ErrProtocol = errors.New("zsync protocol error")
	// ErrForbidden: the far side's policy (serve --client) refused the
	// request; the message says what was refused and why. Nothing ran.
	ErrForbidden = errors.New("forbidden by the far side's policy")
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
	{"stream_header", zfs.ErrStreamHeader},
	{"program_unavailable", zfs.ErrProgramUnavailable},
	{"digest_stream", zfs.ErrDigestStream},
	{"forbidden", ErrForbidden},
	{"protocol", ErrProtocol},
	{"stream_aborted", ErrStreamAborted},
	{"unsupported", errors.ErrUnsupported},
}

// Kind is a sentinel error that crosses the wire, with its wire name.
type Kind struct {
	Name string
	Err  error
}

// Kinds returns the sentinels that cross the wire (a copy), in the order
// they are encoded: a decoded error wraps each of them that the original
// error wrapped, and no other.
func Kinds() []Kind {
	out := make([]Kind, len(wireKinds))
	for i, k := range wireKinds {
		out[i] = Kind{Name: k.name, Err: k.err}
	}
	return out
}

// Bounds of what an encoded error carries. A batch failure (*zfs.DestroyError,
// *zfs.HoldError) lists every failed name while its entries fit in
// maxWireBatch bytes of JSON: the first maxWireBatchDetail bytes of entries
// in full (zfs's argv, stderr), the rest with their kinds and a short
// message only. Two batches and the message stay well below
// MaxControlPayload. Names past maxWireBatch are omitted and counted, and
// the client then takes every name the batch does not list as failed, never
// as done.
const (
	maxWireMessage      = 16 << 10
	maxWireArg          = 1 << 10
	maxWireShortMessage = 512
	maxWireBatchDetail  = 1 << 20
	maxWireBatch        = 6 << 20
	// legacyWireFailed is the cap of older servers (of this protocol
	// version), which dropped the names past it without saying so.
	legacyWireFailed = 1000
)

// Error is the JSON form of an error: the message verbatim, the kinds
// (sentinels) it wraps, and the structured parts zsync's callers inspect.
type Error struct {
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
	// Complete is set when Failed lists every name that failed. Older
	// servers do not set it; they listed at most legacyWireFailed names.
	Complete bool `json:"complete,omitempty"`
	// Omitted counts the failed names left out of Failed.
	Omitted int `json:"omitted,omitempty"`
}

// incomplete reports whether names that failed may be missing from Failed.
func (b *wireBatch) incomplete() bool {
	return !b.Complete && (b.Omitted > 0 || len(b.Failed) >= legacyWireFailed)
}

// EncodeError turns any error into its wire form.
func EncodeError(err error) *Error {
	w := &Error{wireLeaf: encodeLeaf(err)}
	var rr *zfs.ResumableRecvError
	if errors.As(err, &rr) {
		w.Resumable = &wireResumable{Dataset: rr.Dataset, Token: rr.Token}
	}
	var de *zfs.DestroyError
	if errors.As(err, &de) {
		w.Destroy = encodeBatch(de.Failed)
		w.Destroy.Dataset = de.Dataset
	}
	var he *zfs.HoldError
	if errors.As(err, &he) {
		w.Hold = encodeBatch(he.Failed)
		w.Hold.Op, w.Hold.Tag = he.Op, he.Tag
	}
	return w
}

// errNoDetail stands for a nil error in a batch's Failed map: the name
// failed, without an error to say why.
var errNoDetail = errors.New("failed (no detail)")

// encodeBatch encodes the Failed map of a batch failure within the bounds
// above, in name order.
func encodeBatch(m map[string]error) *wireBatch {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := &wireBatch{Failed: make(map[string]wireLeaf, len(keys)), Complete: true}
	detail, total := 0, 0
	for i, k := range keys {
		err := m[k]
		if err == nil {
			err = errNoDetail
		}
		l := encodeLeaf(err)
		n := wireSize(k, l)
		if detail+n > maxWireBatchDetail {
			l = l.short()
			n = wireSize(k, l)
		} else {
			detail += n
		}
		if total+n > maxWireBatch {
			b.Complete, b.Omitted = false, len(keys)-i
			break
		}
		total += n
		b.Failed[k] = l
	}
	return b
}

// wireSize is the size of one entry of a batch's JSON object.
func wireSize(name string, l wireLeaf) int {
	kb, _ := json.Marshal(name)
	lb, _ := json.Marshal(l)
	return len(kb) + len(lb) + 2 // ':' and ','
}

// short is the leaf without zfs's argv and stderr, with a short message.
func (l wireLeaf) short() wireLeaf {
	return wireLeaf{Kinds: l.Kinds, Message: bound(l.Message, maxWireShortMessage)}
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
		args := make([]string, len(ze.Args))
		for i, a := range ze.Args {
			args[i] = bound(a, maxWireArg)
		}
		l.ZFS = &wireZFSError{Args: args, Stderr: bound(ze.Stderr, maxWireMessage), ExitCode: ze.ExitCode}
	}
	var ne *zfs.NameError
	if errors.As(err, &ne) {
		l.Name = &wireName{Name: bound(ne.Name, 1024), Reason: bound(ne.Reason, 1024)}
	}
	return l
}

// Decode rebuilds the error on the receiving side: a *RemoteError (see
// there), or an ErrProtocol error for a nil Error.
func (w *Error) Decode() error {
	if w == nil {
		return fmt.Errorf("%w: error response without an error", ErrProtocol)
	}
	e := w.wireLeaf.decode()
	if r := w.Resumable; r != nil {
		e.errs = append(e.errs, &zfs.ResumableRecvError{Dataset: r.Dataset, Token: r.Token})
	}
	if d := w.Destroy; d != nil {
		de := &zfs.DestroyError{Dataset: d.Dataset, Failed: decodeFailed(d.Failed)}
		e.errs = append(e.errs, de)
		if d.incomplete() {
			e.errs = append(e.errs, &incompleteBatch{failed: de.Failed, omitted: d.Omitted})
		}
	}
	if h := w.Hold; h != nil {
		he := &zfs.HoldError{Op: h.Op, Tag: h.Tag, Failed: decodeFailed(h.Failed)}
		e.errs = append(e.errs, he)
		if h.incomplete() {
			e.errs = append(e.errs, &incompleteBatch{failed: he.Failed, omitted: h.Omitted})
		}
	}
	return e
}

// DecodeFatal decodes the payload of an error frame (the far side gave up
// on the connection) into an error wrapping ErrProtocol.
func DecodeFatal(p []byte) error {
	var w Error
	if err := DecodeLenient(p, &w); err != nil {
		return err
	}
	e := w.Decode()
	if !errors.Is(e, ErrProtocol) {
		return fmt.Errorf("%w: the far side gave up: %w", ErrProtocol, e)
	}
	return fmt.Errorf("the far side gave up: %w", e)
}

// incompleteBatch is wrapped by a decoded error whose batch failure may not
// list every name that failed. failed is the rebuilt *zfs.DestroyError's or
// *zfs.HoldError's Failed map: the client method that made the request
// completes it with CompleteBatch.
type incompleteBatch struct {
	failed  map[string]error
	omitted int
}

func (e *incompleteBatch) Error() string {
	if e.omitted > 0 {
		return fmt.Sprintf("the far side did not list %d of the names that failed", e.omitted)
	}
	return "the far side may not have listed every name that failed"
}

// ErrUnreported is wrapped by the per-name errors that Client methods add
// to a batch failure for the names the far side did not report on: their
// outcome is unknown, and they count as failed.
var ErrUnreported = errors.New("the far side did not report the outcome")

// CompleteBatch makes a batch failure in err exact for a request of names:
// when the far side did not list every failed name, each name of the
// request that the batch does not list is added as failed, wrapping
// ErrUnreported (it may or may not have been processed). The names of the
// request are the batch's keys: short snapshot names for a destroy, full
// snapshot names for a hold or release.
func CompleteBatch(err error, names []string) {
	var ib *incompleteBatch
	if err == nil || !errors.As(err, &ib) || ib.failed == nil {
		return
	}
	for _, n := range names {
		if _, ok := ib.failed[n]; !ok {
			ib.failed[n] = fmt.Errorf("%s: %w", n, ErrUnreported)
		}
	}
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

// QuoteGot renders what the far side said instead of a banner, for
// ErrNotZsync messages.
func QuoteGot(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return fmt.Sprintf("%q", s)
}
