// Package servetest provides a fake of the far side's zfs for the tests of
// the protocol's two ends: Fake has the method set of *zfs.CLI (so it is a
// serve.Handler), records every call and answers from its fields.
package servetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// Fake is a serve.Handler that records every call and answers from its
// fields. Fields may be set before the handler serves; the fields a call
// fills in (RecvData, RecvReadErr, RecvCount) are set under its lock before
// RecvDone is signalled.
type Fake struct {
	mu    sync.Mutex
	calls []string

	Entries  []zfs.Entry
	Props    map[string]map[string]string
	HoldTags map[string][]string
	Size     int64
	Token    zfs.ResumeToken
	Errs     map[string]error // per method name, returned instead of a result
	// ErrQueue, per method name, answers the next calls in turn (nil: a
	// success) before Errs does.
	ErrQueue map[string][]error

	// Send: SendData is streamed, then SendErr (nil: a clean end).
	SendData []byte
	SendErr  error
	// SendEndless makes Send stream forever until its context ends.
	SendEndless bool
	// SendBlock makes the Send stream's Read block until its context ends.
	SendBlock bool
	// SendStall makes the Send stream block after SendData (a far zfs
	// send that hangs mid-stream) until its context ends.
	SendStall   bool
	SendCtxDone chan struct{} // receives when a send's context ended

	// Receive: what it read, and the reader's error.
	RecvData    []byte
	RecvReadErr error
	RecvLimit   int // stop reading after this many bytes (0: read all)
	// PoolErrs is what PoolErrors returns.
	PoolErrs zfs.PoolErrors
	// RecvCountOnly makes Receive only count the bytes (into RecvCount).
	RecvCountOnly bool
	RecvCount     int
	// RecvPace makes the counting Receive read 64 KiB at a time and wait
	// this long after each read (a slow but steady far zfs recv).
	RecvPace   time.Duration
	RecvResult error // returned by Receive
	RecvDone   chan struct{}

	// Block makes List wait for its context.
	Block bool

	// Destroy, when set, answers DestroySnapshots (instead of Errs).
	Destroy func(dataset string, names []string) error
}

// NewFake returns a Fake with its maps and channels made.
func NewFake() *Fake {
	return &Fake{
		Errs:        map[string]error{},
		SendCtxDone: make(chan struct{}, 16),
		RecvDone:    make(chan struct{}, 1),
	}
}

func (f *Fake) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// Calls returns the calls so far, one line each ("Hold tag [snaps]").
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *Fake) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.ErrQueue[method]; len(q) > 0 {
		f.ErrQueue[method] = q[1:]
		return q[0]
	}
	return f.Errs[method]
}

// The Handler methods record the call, then answer from the fields.

func (f *Fake) List(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	f.record("List %v %+v", roots, o)
	if f.Block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := f.err("List"); err != nil {
		return nil, err
	}
	return append([]zfs.Entry(nil), f.Entries...), nil
}

func (f *Fake) Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error) {
	f.record("Get %v %v", names, props)
	if err := f.err("Get"); err != nil {
		return nil, err
	}
	return f.Props, nil
}

func (f *Fake) Holds(ctx context.Context, snaps []string) (map[string][]string, error) {
	f.record("Holds %v", snaps)
	if err := f.err("Holds"); err != nil {
		return nil, err
	}
	return f.HoldTags, nil
}

func (f *Fake) Hold(ctx context.Context, tag string, snaps []string) error {
	f.record("Hold %s %v", tag, snaps)
	return f.err("Hold")
}

func (f *Fake) Release(ctx context.Context, tag string, snaps []string) error {
	f.record("Release %s %v", tag, snaps)
	return f.err("Release")
}

func (f *Fake) Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error {
	f.record("Bookmark %s %s", snapOrBookmark, bookmark)
	return f.err("Bookmark")
}

func (f *Fake) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	f.record("DestroySnapshots %s %v", dataset, shortNames)
	if f.Destroy != nil {
		return f.Destroy(dataset, shortNames)
	}
	return f.err("DestroySnapshots")
}

func (f *Fake) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	f.record("DestroyBookmarks %v", bookmarks)
	return f.err("DestroyBookmarks")
}

func (f *Fake) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	f.record("Create %s %v %v", name, props, parents)
	return f.err("Create")
}

func (f *Fake) Set(ctx context.Context, name string, props map[string]string) error {
	f.record("Set %s %v", name, props)
	return f.err("Set")
}

func (f *Fake) Rename(ctx context.Context, from, to string) error {
	f.record("Rename %s %s", from, to)
	return f.err("Rename")
}

func (f *Fake) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	f.record("Send %+v", s.Options())
	if err := f.err("Send"); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		select {
		case f.SendCtxDone <- struct{}{}:
		default:
		}
	}()
	switch {
	case f.SendEndless:
		return &EndlessReader{Ctx: ctx}, nil
	case f.SendBlock:
		return &blockingReader{ctx: ctx}, nil
	case f.SendStall:
		return io.NopCloser(io.MultiReader(bytes.NewReader(f.SendData), &blockingReader{ctx: ctx})), nil
	}
	return &FailingReader{R: bytes.NewReader(f.SendData), Err: f.SendErr}, nil
}

func (f *Fake) SendSize(ctx context.Context, s zfs.ValidatedSend) (int64, error) {
	f.record("SendSize %+v", s.Options())
	return f.Size, f.err("SendSize")
}

func (f *Fake) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	f.record("Receive %+v", o)
	defer func() {
		select {
		case f.RecvDone <- struct{}{}:
		default:
		}
	}()
	if f.RecvCountOnly {
		buf := make([]byte, 1<<20)
		var n int
		var err error
		for {
			var m int
			m, err = stream.Read(buf)
			n += m
			if err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		f.mu.Lock()
		f.RecvCount, f.RecvReadErr = n, err
		f.mu.Unlock()
		return f.RecvResult
	}
	var r io.Reader = stream
	if f.RecvLimit > 0 {
		r = io.LimitReader(stream, int64(f.RecvLimit))
	}
	data, err := io.ReadAll(r)
	f.mu.Lock()
	f.RecvData, f.RecvReadErr = data, err
	f.mu.Unlock()
	return f.RecvResult
}

func (f *Fake) AbortReceive(ctx context.Context, dataset string) error {
	f.record("AbortReceive %s", dataset)
	return f.err("AbortReceive")
}

func (f *Fake) SnapshotDigest(ctx context.Context, snapshot string, o zfs.DigestOptions) (zfs.Digest, error) {
	f.record("SnapshotDigest %s %+v", snapshot, o)
	return zfs.Digest{Sum: "fake"}, f.err("SnapshotDigest")
}

func (f *Fake) PoolErrors(ctx context.Context, dataset string) (zfs.PoolErrors, error) {
	f.record("PoolErrors %s", dataset)
	return f.PoolErrs, f.err("PoolErrors")
}

func (f *Fake) DecodeResumeToken(ctx context.Context, token string) (zfs.ResumeToken, error) {
	f.record("DecodeResumeToken %s", token)
	return f.Token, f.err("DecodeResumeToken")
}

// FailingReader yields R's data, then Err instead of io.EOF (when set).
type FailingReader struct {
	R      io.Reader
	Err    error
	closed bool
}

// Read implements io.Reader.
func (r *FailingReader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if errors.Is(err, io.EOF) && r.Err != nil {
		return n, r.Err
	}
	return n, err
}

// Close implements io.Closer.
func (r *FailingReader) Close() error { r.closed = true; return nil }

// EndlessReader yields data until Ctx ends.
type EndlessReader struct{ Ctx context.Context }

// Read implements io.Reader.
func (r *EndlessReader) Read(p []byte) (int, error) {
	if err := r.Ctx.Err(); err != nil {
		return 0, err
	}
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// Close implements io.Closer.
func (r *EndlessReader) Close() error { return nil }

// blockingReader blocks until its context ends.
type blockingReader struct{ ctx context.Context }

func (r *blockingReader) Read(p []byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (r *blockingReader) Close() error { return nil }
