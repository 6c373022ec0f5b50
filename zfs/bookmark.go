package zfs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
)

func bookmarkArgs(src, bookmark string) ([]string, error) {
	if err := ValidateVersion(src); err != nil {
		return nil, err
	}
	if err := ValidateBookmark(bookmark); err != nil {
		return nil, err
	}
	if Pool(src) != Pool(bookmark) {
		return nil, fmt.Errorf("zfs bookmark: %s and %s are in different pools", src, bookmark)
	}
	return []string{"bookmark", src, bookmark}, nil
}

// Bookmark creates bookmark (pool/fs#name) from a snapshot or, with OpenZFS
// 2.0 and later, a copy of another bookmark (`zfs bookmark src bookmark`).
// An existing bookmark of that name -> ErrExists (zfs does not say whether
// it points at the same snapshot: compare guids); a missing source ->
// ErrDatasetNotFound.
func (c *CLI) Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error {
	args, err := bookmarkArgs(snapOrBookmark, bookmark)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, args...); err != nil {
		return fmt.Errorf("zfs bookmark: %w", classify(err, []string{snapOrBookmark, bookmark}, ruleBookmarkExists))
	}
	return nil
}

var reBookmarkMissing = regexp.MustCompile(`(?m)^bookmark '([^'\n]+)' does not exist\.?$`)

// destroyBookmarkProcs bounds the concurrent `zfs destroy` calls of one
// DestroyBookmarks.
const destroyBookmarkProcs = 8

// DestroyBookmarks destroys bookmarks (full names). zfs destroys one
// bookmark per call, and each call waits for a transaction group to sync:
// so the calls run up to eight at a time, and calls that run together
// share their transaction groups. Every bookmark is tried; the error joins
// each failure, in the order of bookmarks, each naming its bookmark.
// Bookmarks that do not exist are skipped (idempotent).
func (c *CLI) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	if err := validateNames("bookmark", bookmarks, ValidateBookmark); err != nil {
		return err
	}
	errs := make([]error, len(bookmarks))
	sem := make(chan struct{}, destroyBookmarkProcs)
	var wg sync.WaitGroup
	for i, b := range bookmarks {
		sem <- struct{}{}
		if err := ctx.Err(); err != nil {
			<-sem
			errs[i] = fmt.Errorf("zfs destroy %s: %w", b, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = c.destroyBookmark(ctx, b)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *CLI) destroyBookmark(ctx context.Context, b string) error {
	_, err := c.run(ctx, "destroy", b)
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) && ce.ExitCode > 0 {
		if m := reBookmarkMissing.FindStringSubmatch(ce.Stderr); m != nil && m[1] == b {
			return nil
		}
	}
	return fmt.Errorf("zfs destroy %s: %w", b, classify(err, []string{b}))
}
