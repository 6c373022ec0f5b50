package cmd

import (
	"errors"

	"github.com/rs/zerolog"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// errorKinds are the classes a failure is sorted into for the error_kind
// field of log lines and run reports, so that monitoring and people reading
// logs can tell a changed host key from a full pool without parsing
// messages. The first class an error matches wins (an error that joins
// several failures gets the first in this order).
var errorKinds = []struct {
	kind  string
	match func(error) bool
}{
	// only when nothing else failed (else the failure names its kind), and
	// before the rest: a connection whose dial was interrupted is not an
	// ssh_connect failure
	{"interrupted", onlyInterrupted},
	{"ssh_host_key_mismatch", is(sshtransport.ErrHostKeyMismatch)},
	{"ssh_host_key_unknown", is(sshtransport.ErrHostKeyUnknown)},
	{"ssh_auth", is(sshtransport.ErrAuth)},
	{"far_side_idle", is(sshtransport.ErrIdleTimeout)}, // also the connection it closed
	{"ssh_connect", is(sshtransport.ErrConnect)},
	{"remote_not_zsync", is(sshtransport.ErrNotZsync)},
	{"protocol_version", func(err error) bool {
		var vm *sshtransport.VersionMismatchError
		return errors.As(err, &vm)
	}},
	{"forbidden", is(sshtransport.ErrForbidden)},
	{"protocol", is(sshtransport.ErrProtocol)},
	{"locked", func(err error) bool { return errors.Is(err, state.ErrLocked) && onlyLocked(err) }}, // a job that failed besides names its own kind
	{"config", func(err error) bool {
		var ue *usageError
		var ce *ConfigError
		return errors.As(err, &ue) || errors.As(err, &ce)
	}},
	{"replication_conflict", is(zsync.ErrConflict)},
	{"zfs_permission_denied", is(zfs.ErrPermissionDenied)},
	{"zfs_no_space", is(zfs.ErrNoSpace)},
	{"zfs_busy", is(zfs.ErrBusy)},
	{"zfs_dataset_not_found", is(zfs.ErrDatasetNotFound)},
	{"zfs_destination_modified", is(zfs.ErrDestinationModified)},
	{"zfs_stream_incomplete", is(zfs.ErrStreamIncomplete)},
	{"ssh_connection_lost", is(sshtransport.ErrClosed)},
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// errorKind returns the class of err (see errorKinds), or "" when err is
// nil or nothing more specific than "failed" is known.
func errorKind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range errorKinds {
		if k.match(err) {
			return k.kind
		}
	}
	return ""
}

// withErrorKind adds the error_kind field of err to a log event, when err
// has a class.
func withErrorKind(ev *zerolog.Event, err error) *zerolog.Event {
	if k := errorKind(err); k != "" {
		return ev.Str("error_kind", k)
	}
	return ev
}
