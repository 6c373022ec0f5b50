package sync

import (
	"context"
	"io"

	"github.com/zsync-dev/zsync/zfs"
)

// Endpoint is one side of a replication: the zfs operations the engine needs.
// Its method set is exactly that of *zfs.CLI, so the local side is a
// *zfs.CLI and the far side is the protocol client of sshtransport (a
// `zsync serve --stdio` over SSH or as a local child); cmd wires them. Errors
// wrap the zfs sentinels (zfs.ErrDatasetNotFound, zfs.ErrExists, ...) on both.
//
// An Endpoint need not be safe for concurrent use: the engine opens one per
// worker through an Opener. When the value also implements io.Closer, the
// engine closes it when the worker is done.
type Endpoint interface {
	List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error)
	Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error)
	Holds(ctx context.Context, snaps []string) (map[string][]string, error)
	Hold(ctx context.Context, tag string, snaps []string) error
	Release(ctx context.Context, tag string, snaps []string) error
	Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error
	DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error
	DestroyBookmarks(ctx context.Context, bookmarks []string) error
	Create(ctx context.Context, name string, props map[string]string, parents bool) error
	Set(ctx context.Context, name string, props map[string]string) error
	Rename(ctx context.Context, from, to string) error
	Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error)
	SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error)
	Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error
	AbortReceive(ctx context.Context, dataset string) error
	DecodeResumeToken(ctx context.Context, token string) (zfs.ResumeToken, error)
	SnapshotDigest(ctx context.Context, snapshot string, o zfs.DigestOptions) (zfs.Digest, error)
	PoolErrors(ctx context.Context, dataset string) (zfs.PoolErrors, error)
}

// Opener opens an Endpoint; the engine calls it once per worker.
type Opener func(ctx context.Context) (Endpoint, error)

// Static returns an Opener that hands out e itself (for a *zfs.CLI, which is
// safe for concurrent use).
func Static(e Endpoint) Opener {
	return func(context.Context) (Endpoint, error) { return nopCloser{e}, nil }
}

type nopCloser struct{ Endpoint }

func closeEndpoint(e Endpoint) error {
	if _, ok := e.(nopCloser); ok {
		return nil
	}
	if c, ok := e.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
