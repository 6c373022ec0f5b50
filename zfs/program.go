package zfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// ErrProgramUnavailable is wrapped by CreateBookmarks when the channel
// program could not run at all: zfs program needs root (delegated users
// cannot run channel programs), or the kernel lacks a function it uses.
// The caller falls back to one call per bookmark.
var ErrProgramUnavailable = errors.New("zfs: channel program unavailable")

// NewBookmark is a bookmark to make, From a snapshot or (OpenZFS 2.0 and
// later) another bookmark of the same dataset.
type NewBookmark struct {
	Bookmark string
	From     string
}

// bookmarkProgram makes the bookmarks given as its arguments (pairs of
// source and bookmark), in order, and returns the errno of each (0 for
// success). The names are data passed to the program, never part of its
// text. (zfs.sync.destroy does not destroy bookmarks, on OpenZFS 2.1 at
// least: it answers ENOENT; so bookmarks are destroyed with zfs destroy.)
const bookmarkProgram = `-- zsync: make bookmarks in one transaction group
local argv = (...)["argv"]
local out = {}
for i = 1, #argv, 2 do
	out[argv[i + 1]] = zfs.sync.bookmark(argv[i], argv[i + 1])
end
return out
`

// CreateBookmarks makes the bookmarks, all of one pool, in one channel
// program (`zfs program -j POOL /dev/stdin ARGS...`; no name starts with
// "-", so none is taken for an option), so that they share one transaction
// group instead of waiting for one each.
//
// The result maps each bookmark to its own failure: ErrExists for a name
// that exists (compare guids, as for Bookmark), ErrDatasetNotFound for a
// missing source. err is for the program as a whole; it wraps
// ErrProgramUnavailable when zfs refused or stopped the program (not root,
// an old kernel, a limit reached). Some bookmarks may have been made then:
// the caller makes them again one by one, which tolerates that.
func (c *CLI) CreateBookmarks(ctx context.Context, bms []NewBookmark) (map[string]error, error) {
	if len(bms) == 0 {
		return nil, nil
	}
	pool := Pool(bms[0].Bookmark)
	args := []string{"program", "-j", pool, "/dev/stdin"}
	for _, b := range bms {
		if err := ValidateBookmark(b.Bookmark); err != nil {
			return nil, err
		}
		if err := ValidateVersion(b.From); err != nil {
			return nil, err
		}
		if Pool(b.Bookmark) != pool || Pool(b.From) != pool {
			return nil, fmt.Errorf("zfs program: %s and %s are not both in pool %s", b.From, b.Bookmark, pool)
		}
		args = append(args, b.From, b.Bookmark)
	}
	res, err := c.exec(ctx, c.argv(args...), strings.NewReader(bookmarkProgram))
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.ExitCode > 0 {
			return nil, fmt.Errorf("zfs program: %w: %w", ErrProgramUnavailable, err)
		}
		return nil, fmt.Errorf("zfs program: %w", err)
	}
	var out struct {
		Return map[string]json.Number `json:"return"`
	}
	dec := json.NewDecoder(bytes.NewReader(res.Stdout))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("zfs program: unreadable output %q: %w", boundStderr(string(res.Stdout), 512), err)
	}
	failed := map[string]error{}
	for _, b := range bms {
		n, ok := out.Return[b.Bookmark]
		if !ok {
			failed[b.Bookmark] = fmt.Errorf("zfs program: no result for %s", b.Bookmark)
			continue
		}
		code, err := n.Int64()
		if err != nil {
			failed[b.Bookmark] = fmt.Errorf("zfs program: result %q for %s", n, b.Bookmark)
			continue
		}
		if e := errnoError(syscall.Errno(code), b); e != nil {
			failed[b.Bookmark] = e
		}
	}
	return failed, nil
}

// errnoError maps zfs.sync.bookmark's errno for b to the package's errors.
func errnoError(code syscall.Errno, b NewBookmark) error {
	switch code {
	case 0:
		return nil
	case syscall.EEXIST:
		return fmt.Errorf("zfs program: bookmark %s: %w", b.Bookmark, ErrExists)
	case syscall.ENOENT:
		return fmt.Errorf("zfs program: bookmark %s from %s: %w", b.Bookmark, b.From, ErrDatasetNotFound)
	case syscall.EPERM, syscall.EACCES:
		return fmt.Errorf("zfs program: bookmark %s: %w", b.Bookmark, ErrPermissionDenied)
	}
	return fmt.Errorf("zfs program: bookmark %s from %s: %w", b.Bookmark, b.From, code)
}
