package sync

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/zsync-dev/zsync/zfs"
)

// BookmarkBatcher is an Endpoint that can make many bookmarks of one pool
// in one call: *zfs.CLI does it with a channel program, which needs root.
// Where that fails with zfs.ErrProgramUnavailable (a delegated user), the
// run goes on with one call per bookmark.
type BookmarkBatcher interface {
	CreateBookmarks(ctx context.Context, bms []zfs.NewBookmark) (map[string]error, error)
}

// batcherOf returns e as a BookmarkBatcher, or nil.
func batcherOf(e Endpoint) BookmarkBatcher {
	if n, ok := e.(nopCloser); ok {
		e = n.Endpoint
	}
	b, _ := e.(BookmarkBatcher)
	return b
}

// byPool groups bookmarks by pool, in pool order, in chunks of at most
// programChunk.
func byPool(changes []zfs.NewBookmark) [][]zfs.NewBookmark {
	groups := map[string][]zfs.NewBookmark{}
	for _, c := range changes {
		p := zfs.Pool(c.Bookmark)
		groups[p] = append(groups[p], c)
	}
	var out [][]zfs.NewBookmark
	for _, p := range slices.Sorted(maps.Keys(groups)) {
		out = slices.AppendSeq(out, slices.Chunk(groups[p], programChunk))
	}
	return out
}

// programChunk is how many bookmarks one channel program makes at most,
// well inside zfs program's default instruction and memory limits.
const programChunk = 256

// batchCursors creates the new cursors of a level's runs whose targets
// verify, in one call per pool, and adds each one made to the run's
// listing so that its finish does not make it again. What fails here is
// left to finish, which makes the cursor with one call and reports its
// failure. An error wrapping zfs.ErrProgramUnavailable means nothing was
// made and the batcher should not be asked again.
func (j *Job) batchCursors(ctx context.Context, b BookmarkBatcher, runs []*datasetRun, listed map[string]*finishListing, touched *touchSet) error {
	if !j.Protection.Allows(Cursor) {
		return nil
	}
	type made struct {
		l     *finishListing
		entry zfs.Entry
	}
	var changes []zfs.NewBookmark
	want := map[string]made{}
	for _, r := range runs {
		p, l := r.pending, listed[r.source]
		if p == nil || p.tid == "" || p.to.GUID == 0 || l == nil || l.src == nil || p.verify(l.dst) != nil {
			continue
		}
		abs, _ := ListAbstractions(l.src, nil)
		if hasAbstraction(abs, p.tid, Cursor, p.to.GUID) {
			continue
		}
		from := versionWithGUID(l.src, p.to.GUID)
		if from == nil {
			continue
		}
		bm := r.source + "#" + CursorName(p.tid, p.to.GUID)
		changes = append(changes, zfs.NewBookmark{Bookmark: bm, From: from.Name})
		want[bm] = made{l, zfs.Entry{Name: bm, Type: zfs.Bookmark, GUID: p.to.GUID, CreateTXG: from.CreateTXG}}
	}
	for _, group := range byPool(changes) {
		for _, c := range group {
			touched.mark(false, c.Bookmark)
		}
		failed, err := b.CreateBookmarks(ctx, group)
		if err != nil {
			if errors.Is(err, zfs.ErrProgramUnavailable) {
				return err
			}
			continue
		}
		for _, c := range group {
			// one that exists already (made meanwhile) is not known to
			// point at the right snapshot: finish tries it again
			if failed[c.Bookmark] == nil {
				m := want[c.Bookmark]
				m.l.src = append(m.l.src, m.entry)
			}
		}
	}
	return nil
}
