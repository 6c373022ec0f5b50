package zfs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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

// DestroyBookmarks destroys bookmarks (full names). zfs destroys one
// bookmark per call, so this runs one call per bookmark, in order, and
// stops at the first failure. Bookmarks that do not exist are skipped
// (idempotent).
func (c *CLI) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	if err := validateNames("bookmark", bookmarks, ValidateBookmark); err != nil {
		return err
	}
	for _, b := range bookmarks {
		_, err := c.run(ctx, "destroy", b)
		if err == nil {
			continue
		}
		var ce *Error
		if errors.As(err, &ce) && ce.ExitCode > 0 {
			if m := reBookmarkMissing.FindStringSubmatch(ce.Stderr); m != nil && m[1] == b {
				continue
			}
		}
		return fmt.Errorf("zfs destroy %s: %w", b, classify(err, []string{b}))
	}
	return nil
}
