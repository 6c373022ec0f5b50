package zfs

import (
	"strings"
	"time"
)

// Type is the kind of a ZFS object as `zfs list -o type` prints it.
type Type string

// The object kinds zsync deals with.
const (
	Filesystem Type = "filesystem"
	Volume     Type = "volume"
	Snapshot   Type = "snapshot"
	Bookmark   Type = "bookmark"
)

// Entry is one line of a recursive `zfs list -H -p -t all` listing: a dataset,
// a snapshot or a bookmark, with the properties the planner, the pruner and the
// reconciler need. Numeric properties that do not apply to the kind (userrefs
// of a filesystem, for instance) are zero; string properties that are unset
// ("-" in the listing) are empty.
type Entry struct {
	Name      string // full name: pool/fs, pool/fs@snap or pool/fs#bookmark
	Type      Type
	GUID      uint64
	CreateTXG uint64
	Creation  time.Time // second precision, UTC
	UserRefs  uint64    // number of holds on a snapshot

	ResumeToken    string // receive_resume_token of a filesystem or volume
	Encryption     string // "off", "aes-256-gcm", ...
	EncryptionRoot string
	KeyStatus      string // "available", "unavailable" or empty when unencrypted
	Origin         string // origin snapshot of a clone
	// SnapshotsChanged is a dataset's snapshots_changed (seconds since the
	// epoch its set of snapshots last changed), listed only with
	// ListOptions.SnapshotsChanged; 0 when unset or not asked for.
	SnapshotsChanged uint64 `json:",omitempty"`

	// User holds the zsync user properties (name -> value) of datasets, for
	// the names passed in ListOptions.UserProps. Unset ones are absent.
	User map[string]string
}

// Dataset returns the dataset part of the entry's name (the whole name for a
// filesystem or volume).
func (e Entry) Dataset() string {
	if i := strings.IndexAny(e.Name, "@#"); i >= 0 {
		return e.Name[:i]
	}
	return e.Name
}

// Short returns the snapshot or bookmark name without its dataset, and the
// empty string for a filesystem or volume.
func (e Entry) Short() string {
	if i := strings.IndexAny(e.Name, "@#"); i >= 0 {
		return e.Name[i+1:]
	}
	return ""
}

// IsDataset reports whether the entry is a filesystem or a volume.
func (e Entry) IsDataset() bool { return e.Type == Filesystem || e.Type == Volume }

// Encrypted reports whether the entry belongs to an encrypted dataset.
func (e Entry) Encrypted() bool { return e.Encryption != "" && e.Encryption != "off" }
