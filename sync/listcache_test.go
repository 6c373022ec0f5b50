package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

func TestListingUsable(t *testing.T) {
	seen := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	ok := DatasetListing{GUID: 7, Stamp: "100", Seen: seen, Listed: seen.Add(settleTime)}
	now := ok.Listed.Add(time.Hour)
	ds := zfs.Entry{Name: "tank/a", Type: zfs.Filesystem, GUID: 7}
	other, clone := ds, ds
	other.GUID = 8
	clone.Origin = "tank/o@s1"
	cases := []struct {
		name  string
		l     DatasetListing
		d     zfs.Entry
		stamp string
		now   time.Time
		want  bool
	}{
		{"same value, settled", ok, ds, "100", now, true},
		{"value changed", ok, ds, "101", now, false},
		{"another dataset under the name", ok, other, "100", now, false},
		{"promoted or cloned since", ok, clone, "100", now, false},
		{"no listing kept", DatasetListing{GUID: 7, Stamp: "100", Seen: seen}, ds, "100", now, false},
		{"listed in the second the value was seen", DatasetListing{GUID: 7, Stamp: "100", Seen: seen, Listed: seen.Add(settleTime - time.Millisecond)}, ds, "100", now, false},
		{"never changed (unset)", DatasetListing{GUID: 7, Seen: seen, Listed: seen.Add(time.Hour)}, ds, "", now, false},
		{"clock set back since the listing", ok, ds, "100", ok.Listed.Add(-time.Second), false},
	}
	for _, c := range cases {
		if got := c.l.usable(c.d, c.stamp, c.now); got != c.want {
			t.Errorf("%s: usable = %v, want %v", c.name, got, c.want)
		}
	}
}

// listFake answers List from a table of datasets (name -> stamp) and their
// snapshots and bookmarks, and records each call.
type listFake struct {
	Endpoint
	stamps map[string]string // "" -> property unsupported
	items  []zfs.Entry
	calls  []string
}

func (f *listFake) List(_ context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error) {
	var ts []string
	for _, t := range o.Types {
		ts = append(ts, string(t))
	}
	props := slices.Clone(o.UserProps)
	if o.SnapshotsChanged {
		props = append(props, "snapshots_changed")
	}
	f.calls = append(f.calls, fmt.Sprintf("%s d=%d %s %s", strings.Join(roots, ","), o.Depth, strings.Join(ts, ","), strings.Join(props, ",")))
	if o.SnapshotsChanged && f.stamps == nil {
		return nil, errors.New("zfs list: exit status 2: bad property list: invalid property 'snapshots_changed'")
	}
	var out []zfs.Entry
	for _, e := range f.items {
		if len(o.Types) > 0 && !slices.Contains(o.Types, e.Type) {
			continue
		}
		under := false
		for _, r := range roots {
			switch {
			case e.IsDataset():
				under = under || e.Name == r || strings.HasPrefix(e.Name, r+"/")
			case o.Depth == 1:
				under = under || e.Dataset() == r
			default:
				under = under || e.Dataset() == r || strings.HasPrefix(e.Dataset(), r+"/")
			}
		}
		if !under {
			continue
		}
		if e.IsDataset() && o.SnapshotsChanged {
			e.SnapshotsChanged, _ = strconv.ParseUint(f.stamps[e.Name], 10, 64)
		}
		out = append(out, e)
	}
	return out, nil
}

type memCache struct{ s ListingState }

func (m *memCache) Load() (ListingState, error) { return m.s, nil }
func (m *memCache) Save(s ListingState) error   { m.s = s; return nil }

func fakeTree() *listFake {
	return &listFake{
		stamps: map[string]string{"tank/a": "100", "tank/b": "200"},
		items: []zfs.Entry{
			{Name: "tank/a", Type: zfs.Filesystem, GUID: 1},
			{Name: "tank/a@s1", Type: zfs.Snapshot, GUID: 11, CreateTXG: 5},
			{Name: "tank/a#zsync_cursor", Type: zfs.Bookmark, GUID: 11, CreateTXG: 5},
			{Name: "tank/b", Type: zfs.Filesystem, GUID: 2},
			{Name: "tank/b@s1", Type: zfs.Snapshot, GUID: 21, CreateTXG: 6},
		},
	}
}

func names(es []zfs.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	slices.Sort(out)
	return out
}

// A dataset whose snapshots_changed is what a settled listing recorded is
// not listed again; its bookmarks are. A changed one is listed.
func TestListSideReusesASettledListing(t *testing.T) {
	f := fakeTree()
	old := time.Now().Add(-time.Hour)
	prev := &SideListing{Datasets: map[string]DatasetListing{
		"tank/a": {GUID: 1, Stamp: "100", Seen: old, Listed: old.Add(time.Minute), Snapshots: []CachedSnapshot{{Name: "s1", GUID: 11, CreateTXG: 5}}},
		"tank/b": {GUID: 2, Stamp: "199", Seen: old, Listed: old.Add(time.Minute), Snapshots: []CachedSnapshot{{Name: "gone", GUID: 20}}},
	}}
	j := &Job{Listings: &memCache{}}
	l, err := j.listSide(context.Background(), f, []string{"tank"}, prev, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"tank d=0 filesystem,volume zsync:placeholder,snapshots_changed", "tank/b d=1 snapshot,bookmark ", "tank/a d=1 bookmark "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	if got, want := names(l.entries), []string{"tank/a", "tank/a#zsync_cursor", "tank/a@s1", "tank/b", "tank/b@s1"}; !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	for _, e := range l.entries {
		if e.SnapshotsChanged != 0 {
			t.Errorf("%s: the cache's property leaked into the entries", e.Name)
		}
	}
	// the next run: tank/b's listing was taken right after its new value
	// was first seen, so it is not kept yet; tank/a's is
	next := l.update(func(string) bool { return false })
	if a := next.Datasets["tank/a"]; !a.usable(zfs.Entry{GUID: 1}, "100", time.Now()) {
		t.Errorf("tank/a not reusable after the run: %+v", a)
	}
	if b := next.Datasets["tank/b"]; b.Stamp != "200" || !b.Listed.IsZero() {
		t.Errorf("tank/b after the run: %+v, want value 200 and no listing kept", b)
	}
	// a later run lists tank/b once more, after its value settled
	next.Datasets["tank/b"] = DatasetListing{GUID: 2, Stamp: "200", Seen: time.Now().Add(-time.Minute)}
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"tank"}, next, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := l.update(func(string) bool { return false })
	if b := after.Datasets["tank/b"]; !b.usable(zfs.Entry{GUID: 2}, "200", time.Now()) || len(b.Snapshots) != 1 {
		t.Errorf("tank/b after its value settled: %+v", b)
	}
	// what a run changed keeps only the value
	dirty := l.update(func(ds string) bool { return ds == "tank/a" })
	if a := dirty.Datasets["tank/a"]; !a.Listed.IsZero() || a.Snapshots != nil {
		t.Errorf("tank/a changed by the run kept its listing: %+v", a)
	}
}

// Without snapshots_changed (OpenZFS 2.1) the side is listed in full, and
// the next runs within a day do not try the property again.
func TestListSideWithoutTheProperty(t *testing.T) {
	f := fakeTree()
	f.stamps = nil
	j := &Job{Listings: &memCache{}}
	l, err := j.listSide(context.Background(), f, []string{"tank"}, nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.entries) != len(f.items) {
		t.Errorf("entries %q, want the full listing", names(l.entries))
	}
	next := l.update(func(string) bool { return false })
	if next.Unsupported.IsZero() {
		t.Fatalf("the side is not marked as without the property")
	}
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"tank"}, next, true, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tank d=0  zsync:placeholder"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want only the full listing %q", f.calls, want)
	}
}

// Without a cache the listing is the one full listing of before.
func TestListSideWithoutACache(t *testing.T) {
	f := fakeTree()
	if _, err := (&Job{}).listSide(context.Background(), f, []string{"tank"}, nil, true, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tank d=0  zsync:placeholder"}; !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
}

func TestTouchSet(t *testing.T) {
	s := newTouchSet()
	s.mark(false, "tank/a@s1", "tank/b#bm")
	s.mark(true, "tank/c")
	for ds, want := range map[string]bool{"tank/a": true, "tank/a/x": false, "tank/b": true, "tank/c": true, "tank/c/x/y": true, "tank": false, "tank/d": false} {
		if got := s.has(ds); got != want {
			t.Errorf("has(%s) = %v, want %v", ds, got, want)
		}
	}
}
