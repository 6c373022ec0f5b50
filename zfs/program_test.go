package zfs

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// CreateBookmarks passes the names to one fixed program as its arguments
// and maps each bookmark's errno (the outputs are OpenZFS 2.1.11's).
func TestCreateBookmarks(t *testing.T) {
	c, f := newFake(t)
	argv := []string{"zfs", "program", "-j", "tank", "/dev/stdin", "tank/a@s2", "tank/a#new", "tank/b@s2", "tank/b#old", "tank/c@gone", "tank/c#x"}
	f.Expect(argv, FakeResponse{Stdout: `{"return":{"tank/a#new":0,"tank/b#old":17,"tank/c#x":2}}`})
	failed, err := c.CreateBookmarks(context.Background(), []NewBookmark{
		{Bookmark: "tank/a#new", From: "tank/a@s2"},
		{Bookmark: "tank/b#old", From: "tank/b@s2"},
		{Bookmark: "tank/c#x", From: "tank/c@gone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if failed["tank/a#new"] != nil || !errors.Is(failed["tank/b#old"], ErrExists) || !errors.Is(failed["tank/c#x"], ErrDatasetNotFound) || len(failed) != 2 {
		t.Errorf("failed = %v", failed)
	}
	calls := f.Calls()
	if len(calls) != 1 || !strings.Contains(string(calls[0].Stdin), "zfs.sync.bookmark(argv[i], argv[i + 1])") {
		t.Fatalf("calls %+v: want one with the program on stdin", calls)
	}
}

// A delegated user's zfs refuses channel programs: the whole call fails
// with ErrProgramUnavailable, for the caller to fall back.
func TestCreateBookmarksNotRoot(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "program", "-j", "tank", "/dev/stdin", "tank/a@s2", "tank/a#new"}, FakeResponse{
		ExitCode: 1, Stderr: "Channel program execution failed:\nPermission denied. Channel programs must be run as root.\n"})
	_, err := c.CreateBookmarks(context.Background(), []NewBookmark{{Bookmark: "tank/a#new", From: "tank/a@s2"}})
	if !errors.Is(err, ErrProgramUnavailable) {
		t.Fatalf("err = %v, want ErrProgramUnavailable", err)
	}
}

// Names are checked before anything runs, and all must be in one pool.
func TestCreateBookmarksRefusesBadNames(t *testing.T) {
	c, f := newFake(t)
	for _, bms := range [][]NewBookmark{
		{{Bookmark: "tank/a#new", From: "-j"}},
		{{Bookmark: "tank/a@new", From: "tank/a@s1"}},
		{{Bookmark: "tank/a#new", From: "tank/a@s1"}, {Bookmark: "other/b#new", From: "other/b@s1"}},
		{{Bookmark: "tank/a#new", From: "other/a@s1"}},
	} {
		if _, err := c.CreateBookmarks(context.Background(), bms); err == nil {
			t.Errorf("%v: no error", bms)
		}
	}
	if n := len(f.Calls()); n > 0 {
		t.Errorf("%d zfs calls for bad names", n)
	}
}
