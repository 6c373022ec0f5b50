package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TargetIDProperty is the user property on the target root that stores the
// relationship's target id.
const TargetIDProperty = "zsync:target-id"

// PlaceholderProperty is the user property (set to the dataset's own name) that marks an intermediate
// dataset zsync created on the target only to hold replicated children.
const PlaceholderProperty = "zsync:placeholder"

// OwnerProperty is the user property every receive sets on its replica
// (zfs recv -o): OwnerValue of the job's step root id and the replica's
// name. A replica carries it where it was received into by the mapping of
// that id (a job, or a one-off's source and target), which is what lets a
// rename be followed only by the mapping the replica belongs to. The name
// tells a value set on the dataset from one inherited from a parent.
const OwnerProperty = "zsync:owner"

// OwnerValue is the value of OwnerProperty on the replica name received
// into by the mapping with step root id stepRoot.
func OwnerValue(stepRoot TargetID, name string) string {
	return string(stepRoot) + ":" + name
}

// RotatedInfix joins a diverged target's name and the time in the name of
// the copy that Job.Rotate renames it to: "<target>.zsync-rotated-<time>".
const RotatedInfix = ".zsync-rotated-"

// AsideInfix joins a placeholder's name and the time in the name it is
// renamed to while its real replica is received in its place (see
// datasetRun.setAside): <target>.zsync-placeholder-<time>.
const AsideInfix = ".zsync-placeholder-"

// targetIDLen is the length of a target id: 8 random bytes in lowercase hex.
const targetIDLen = 16

// TargetID identifies one replication relationship (one source tree to one
// target root). It is 16 lowercase hexadecimal characters, generated once
// with NewTargetID and stored on the target root under TargetIDProperty.
// Every hold tag and bookmark zsync creates carries it, so relationships
// never share or destroy each other's state.
//
// Only values returned by NewTargetID or ParseTargetID are valid; the name
// constructors of this package build invalid names from any other value,
// which the zfs package's validation then refuses.
type TargetID string

// ErrInvalidTargetID is wrapped by ParseTargetID and NewTargetID errors.
var ErrInvalidTargetID = errors.New("invalid target id")

// NewTargetID reads 8 bytes from rand (crypto/rand.Reader in production)
// and returns them as a target id.
func NewTargetID(rand io.Reader) (TargetID, error) {
	var b [targetIDLen / 2]byte
	if rand == nil {
		return "", fmt.Errorf("new target id: %w: no random source", ErrInvalidTargetID)
	}
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("new target id: reading random bytes: %w", err)
	}
	return TargetID(hex.EncodeToString(b[:])), nil
}

// ParseTargetID checks that s is exactly 16 lowercase hexadecimal characters
// and returns it as a TargetID. Errors wrap ErrInvalidTargetID.
func ParseTargetID(s string) (TargetID, error) {
	if !isLowerHex(s, targetIDLen) {
		return "", fmt.Errorf("%w %q: want %d lowercase hexadecimal characters", ErrInvalidTargetID, s, targetIDLen)
	}
	return TargetID(s), nil
}

// String returns the id itself.
func (t TargetID) String() string { return string(t) }

// Valid reports whether t has the form ParseTargetID accepts.
func (t TargetID) Valid() bool { return isLowerHex(string(t), targetIDLen) }

// Fixed prefixes of zsync's names. The target id follows each prefix
// directly; bookmarks then carry "_G" and the snapshot GUID as %016x.
const (
	cursorPrefix       = "zsync_cursor_T"
	tentativePrefix    = "zsync_tentative_T"
	stepHoldPrefix     = "zsync_step_T"
	lastReceivedPrefix = "zsync_last_T"
	guidInfix          = "_G"
	// The hold tags a run places now carry a root's id instead of one
	// relationship's, so that one `zfs hold`/`zfs release` call covers
	// every dataset of a pool (see StepRootID and RootHoldTags).
	stepRootPrefix = "zsync_step_R"
	lastRootPrefix = "zsync_last_R"
)

// CursorName returns the short name (after '#') of the replication cursor
// bookmark of target tid for the snapshot with the given GUID, for example
// "zsync_cursor_T0123456789abcdef_G00000000deadbeef".
func CursorName(tid TargetID, guid uint64) string {
	return bookmarkName(cursorPrefix, tid, guid)
}

// TentativeName returns the short name (after '#') of the tentative cursor
// bookmark of target tid for the snapshot with the given GUID.
func TentativeName(tid TargetID, guid uint64) string {
	return bookmarkName(tentativePrefix, tid, guid)
}

// StepHoldTag returns the hold tag that keeps the source snapshots of an
// in-progress step of target tid ("zsync_step_T<tid>").
func StepHoldTag(tid TargetID) string { return stepHoldPrefix + string(tid) }

// LastReceivedHoldTag returns the hold tag that keeps the target's newest
// received snapshot of target tid ("zsync_last_T<tid>").
func LastReceivedHoldTag(tid TargetID) string { return lastReceivedPrefix + string(tid) }

// StepRootID is the id the step holds of every relationship of one job
// below one target root carry: derived from the root's id, the target
// root's name (the id alone may be inherited from an ancestor that is
// another job's root) and mapping, which names how the job maps source
// datasets to targets (Job.MapID: two jobs below one root that map a
// source dataset to two targets, or a one-off push beside a job, must not
// share step holds). A step hold with it on a source dataset belongs to
// the relationship that dataset has under that job's mapping.
func StepRootID(rootTID TargetID, targetRoot, mapping string) TargetID {
	if rootTID == "" {
		return ""
	}
	h := sha256.Sum256([]byte("step-holds\x00" + string(rootTID) + "\x00" + targetRoot + "\x00" + mapping))
	return TargetID(hex.EncodeToString(h[:])[:targetIDLen])
}

// RootStepHoldTag returns the step hold tag of the relationships below a
// target root, with root = StepRootID(...): "zsync_step_R<root>".
func RootStepHoldTag(root TargetID) string { return stepRootPrefix + string(root) }

// RootLastReceivedHoldTag returns the last-received hold tag of the
// relationships below a target root whose id (TargetIDProperty) is rootTID:
// "zsync_last_R<rootTID>". On a snapshot of target dataset X it belongs to
// the relationship RelationID(rootTID, X), the one that receives into X.
func RootLastReceivedHoldTag(rootTID TargetID) string { return lastRootPrefix + string(rootTID) }

func bookmarkName(prefix string, tid TargetID, guid uint64) string {
	return fmt.Sprintf("%s%s%s%016x", prefix, tid, guidInfix, guid)
}

// ParseBookmark parses the short name of a bookmark (the part after '#').
// ok is true only for a well-formed cursor or tentative cursor name, with
// kind Cursor or Tentative, the embedded target id and the embedded GUID.
// The caller must still compare guid with the bookmark's actual guid
// property: a mismatch means the name was copied or tinkered with, and the
// bookmark must not be trusted (ListAbstractions does this).
func ParseBookmark(short string) (kind AbstractionKind, tid TargetID, guid uint64, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(short, cursorPrefix):
		kind, rest = Cursor, short[len(cursorPrefix):]
	case strings.HasPrefix(short, tentativePrefix):
		kind, rest = Tentative, short[len(tentativePrefix):]
	default:
		return 0, "", 0, false
	}
	// rest = <tid:16>_G<guid:16>
	if len(rest) != targetIDLen+len(guidInfix)+16 {
		return 0, "", 0, false
	}
	t, infix, g := rest[:targetIDLen], rest[targetIDLen:targetIDLen+len(guidInfix)], rest[targetIDLen+len(guidInfix):]
	if !isLowerHex(t, targetIDLen) || infix != guidInfix || !isLowerHex(g, 16) {
		return 0, "", 0, false
	}
	guid, err := strconv.ParseUint(g, 16, 64)
	if err != nil {
		return 0, "", 0, false
	}
	return kind, TargetID(t), guid, true
}

// ParseHoldTag parses a hold tag. ok is true only for a well-formed step
// hold (kind StepHold) or last-received hold (kind LastReceivedHold) tag.
// id is the relationship's id for the per-relationship tags
// (zsync_<kind>_T<id>); root is true for the per-root tags
// (zsync_<kind>_R<id>), whose id is StepRootID's for a step hold and the
// target root's id for a last-received hold.
func ParseHoldTag(tag string) (kind AbstractionKind, id TargetID, root, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(tag, stepHoldPrefix):
		kind, rest = StepHold, tag[len(stepHoldPrefix):]
	case strings.HasPrefix(tag, lastReceivedPrefix):
		kind, rest = LastReceivedHold, tag[len(lastReceivedPrefix):]
	case strings.HasPrefix(tag, stepRootPrefix):
		kind, rest, root = StepHold, tag[len(stepRootPrefix):], true
	case strings.HasPrefix(tag, lastRootPrefix):
		kind, rest, root = LastReceivedHold, tag[len(lastRootPrefix):], true
	default:
		return 0, "", false, false
	}
	if !isLowerHex(rest, targetIDLen) {
		return 0, "", false, false
	}
	return kind, TargetID(rest), root, true
}

// ClientInfix joins one of zsync's hold tags or bookmark names and the
// client it is bound to in a far side's send area:
// "<name>_C<client>" (see sshtransport/serve). The client sees the name
// without it; on the far host itself such names belong to that client's
// relationships, not to any of the host's own.
const ClientInfix = "_C"

// SplitClient splits a hold tag or bookmark short name of zsync's shape
// bound to a serve client into the name and the client. ok is false when
// name carries no client (or is not one of zsync's).
func SplitClient(name string) (base, client string, ok bool) {
	var n int
	switch {
	case strings.HasPrefix(name, cursorPrefix):
		n = len(cursorPrefix) + targetIDLen + len(guidInfix) + 16
	case strings.HasPrefix(name, tentativePrefix):
		n = len(tentativePrefix) + targetIDLen + len(guidInfix) + 16
	case strings.HasPrefix(name, stepHoldPrefix):
		n = len(stepHoldPrefix) + targetIDLen
	case strings.HasPrefix(name, lastReceivedPrefix):
		n = len(lastReceivedPrefix) + targetIDLen
	case strings.HasPrefix(name, stepRootPrefix):
		n = len(stepRootPrefix) + targetIDLen
	case strings.HasPrefix(name, lastRootPrefix):
		n = len(lastRootPrefix) + targetIDLen
	default:
		return "", "", false
	}
	if len(name) <= n+len(ClientInfix) || name[n:n+len(ClientInfix)] != ClientInfix {
		return "", "", false
	}
	return name[:n], name[n+len(ClientInfix):], true
}

// looksLikeZsyncBookmark reports whether a bookmark short name uses one of
// zsync's bookmark prefixes (whether or not it parses).
func looksLikeZsyncBookmark(short string) bool {
	return strings.HasPrefix(short, strings.TrimSuffix(cursorPrefix, "T")) ||
		strings.HasPrefix(short, strings.TrimSuffix(tentativePrefix, "T"))
}

// looksLikeZsyncHold reports whether a hold tag uses one of zsync's hold
// prefixes (whether or not it parses).
func looksLikeZsyncHold(tag string) bool {
	return strings.HasPrefix(tag, strings.TrimSuffix(stepHoldPrefix, "T")) ||
		strings.HasPrefix(tag, strings.TrimSuffix(lastReceivedPrefix, "T"))
}

// isLowerHex reports whether s is exactly n characters of [0-9a-f].
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
