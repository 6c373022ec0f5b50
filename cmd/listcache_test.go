package cmd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	zsync "github.com/zsync-dev/zsync/sync"
)

// The listing cache survives its file: what Save wrote, Load reads back;
// nothing stored is an empty state; a damaged file is an error (the run
// then lists in full); another job's or another place's file is another
// file.
func TestListingCacheFile(t *testing.T) {
	dir := t.TempDir()
	j := &jobConfig{Name: "home", Type: "push", Datasets: []string{"tank/home<"}, Root: "backup/zsync"}
	c := newListingCache(dir, j)
	if s, err := c.Load(); err != nil || s.Sides != nil {
		t.Fatalf("empty: %+v, %v", s, err)
	}
	seen := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	want := zsync.ListingState{Sides: map[string]*zsync.SideListing{
		"source": {Datasets: map[string]zsync.DatasetListing{"tank/home": {GUID: 1 << 63, Stamp: "1764650000", Seen: seen, Listed: seen.Add(time.Minute),
			Snapshots: []zsync.CachedSnapshot{{Name: "zsync_20261202T040000Z", GUID: 18446744073709551615, CreateTXG: 9, Creation: 1764650000, UserRefs: 1}}}}},
		"target": {Unsupported: seen},
	}}
	if err := c.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got.Sides["source"], want.Sides["source"])
	}
	if err := os.WriteFile(c.path, []byte("{\"sides\": [1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(); err == nil {
		t.Errorf("a damaged cache file was read without an error")
	}
	moved := *j
	moved.Root = "elsewhere/zsync"
	other := *j
	other.Name = "other"
	for _, o := range []*jobConfig{&moved, &other} {
		if p := newListingCache(dir, o).path; p == c.path {
			t.Errorf("%+v shares the cache file %s", o, p)
		}
	}
}

// A save that fails takes the older file away, so that the next run does
// not read it as if this run had not happened.
func TestListingCacheFailedSaveDropsTheOldFile(t *testing.T) {
	c := &listingCache{path: filepath.Join(t.TempDir(), "listings", "j.json")}
	if err := c.Save(zsync.ListingState{Sides: map[string]*zsync.SideListing{"source": {}}}); err != nil {
		t.Fatal(err)
	}
	// the next write cannot replace the file (even as root): an empty
	// directory stands where the file was, and a rename onto it fails
	if err := os.Remove(c.path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(zsync.ListingState{}); err == nil {
		t.Fatalf("save over a directory succeeded")
	}
	if _, err := os.Stat(c.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a failed save %s is still there (%v)", c.path, err)
	}
	s, err := c.Load()
	if err != nil || s.Sides != nil {
		t.Errorf("load after a failed save: %+v, %v; want nothing", s, err)
	}
}
