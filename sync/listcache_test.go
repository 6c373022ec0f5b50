package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

func (f *listFake) Get(_ context.Context, names, props []string) (map[string]map[string]string, error) {
	f.calls = append(f.calls, "get "+strings.Join(props, ",")+" "+strings.Join(names, " "))
	out := map[string]map[string]string{}
	for _, n := range names {
		i := slices.IndexFunc(f.items, func(e zfs.Entry) bool { return e.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("zfs get: %s: %w", n, zfs.ErrDatasetNotFound)
		}
		e := f.items[i]
		out[n] = map[string]string{"guid": strconv.FormatUint(e.GUID, 10), "createtxg": strconv.FormatUint(e.CreateTXG, 10), "userrefs": strconv.FormatUint(e.UserRefs, 10)}
		if e.IsDataset() {
			// zfs's prevsnap: the dataset's newest snapshot
			var newest *zfs.Entry
			for j, s := range f.items {
				if s.Type == zfs.Snapshot && s.Dataset() == n && (newest == nil || s.CreateTXG > newest.CreateTXG) {
					newest = &f.items[j]
				}
			}
			if newest != nil {
				out[n]["prevsnap"] = newest.Name
			}
		}
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
	l, err := j.listSide(context.Background(), f, []string{"tank"}, prev, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"tank d=0 filesystem,volume zsync:placeholder,zsync:owner,snapshots_changed", "tank/b d=1 snapshot,bookmark ", "tank/a d=1 bookmark "}
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
	next := l.update(func(string) bool { return false }, nil)
	if a := next.Datasets["tank/a"]; !a.usable(zfs.Entry{GUID: 1}, "100", time.Now()) {
		t.Errorf("tank/a not reusable after the run: %+v", a)
	}
	if b := next.Datasets["tank/b"]; b.Stamp != "200" || !b.Listed.IsZero() {
		t.Errorf("tank/b after the run: %+v, want value 200 and no listing kept", b)
	}
	// a later run lists tank/b once more, after its value settled
	next.Datasets["tank/b"] = DatasetListing{GUID: 2, Stamp: "200", Seen: time.Now().Add(-time.Minute)}
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"tank"}, next, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := l.update(func(string) bool { return false }, nil)
	if b := after.Datasets["tank/b"]; !b.usable(zfs.Entry{GUID: 2}, "200", time.Now()) || len(b.Snapshots) != 1 {
		t.Errorf("tank/b after its value settled: %+v", b)
	}
	// what a run changed keeps only the value
	dirty := l.update(func(ds string) bool { return ds == "tank/a" }, nil)
	if a := dirty.Datasets["tank/a"]; !a.Listed.IsZero() || a.Snapshots != nil {
		t.Errorf("tank/a changed by the run kept its listing: %+v", a)
	}
}

// Without snapshots_changed (OpenZFS 2.1) every dataset in scope is
// listed, the property is not tried again within a day, and the listings
// are kept for the next run.
func TestListSideWithoutTheProperty(t *testing.T) {
	f := fakeTree()
	f.stamps = nil
	j := &Job{Listings: &memCache{}}
	l, err := j.listSide(context.Background(), f, []string{"tank"}, nil, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(l.entries), names(f.items); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	next := l.update(func(string) bool { return false }, nil)
	if next.Unsupported.IsZero() {
		t.Fatalf("the side is not marked as without the property")
	}
	if a := next.Datasets["tank/a"]; len(a.Snapshots) != 1 || a.Listed.IsZero() {
		t.Errorf("tank/a's listing not kept: %+v", a)
	}
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"tank"}, next, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"tank d=0 filesystem,volume zsync:placeholder,zsync:owner", "tank/a,tank/b d=1 snapshot,bookmark "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q (no source is quiet: both listed, the property not tried)", f.calls, want)
	}
	if got := next.Unsupported; !l.update(func(string) bool { return false }, nil).Unsupported.Equal(got) {
		t.Errorf("the day without the property restarted")
	}
}

// On a side without snapshots_changed, a dataset whose source is quiet
// reuses its kept listing once its newest and held snapshots are found by
// name with the same guid and createtxg; the hold counts come from that
// lookup. Anything else is listed.
func TestListSideNamedLookup(t *testing.T) {
	f := &listFake{items: []zfs.Entry{
		{Name: "bk", Type: zfs.Filesystem, GUID: 9},
		{Name: "bk/a", Type: zfs.Filesystem, GUID: 1},
		{Name: "bk/a@s1", Type: zfs.Snapshot, GUID: 11, CreateTXG: 5},
		{Name: "bk/a@s2", Type: zfs.Snapshot, GUID: 12, CreateTXG: 6, UserRefs: 1},
		{Name: "bk/b", Type: zfs.Filesystem, GUID: 2},
		{Name: "bk/b@s1", Type: zfs.Snapshot, GUID: 21, CreateTXG: 7},
		{Name: "bk/c", Type: zfs.Filesystem, GUID: 3},
		{Name: "bk/c@s1", Type: zfs.Snapshot, GUID: 31, CreateTXG: 8},
	}}
	j := &Job{Listings: &memCache{}}
	l, err := j.listSide(context.Background(), f, []string{"bk"}, nil, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := l.update(func(string) bool { return false }, nil)
	quietAll := func(string) bool { return true }

	// nothing changed: only the lookup by name (s2 of bk/a is newest and
	// held: asked once), no snapshot listing of a quiet dataset
	f.calls = nil
	f.items[3].UserRefs = 0 // the hold was released meanwhile
	l, err = j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, quietAll)
	if err != nil {
		t.Fatal(err)
	}
	// (bk, without snapshots, is checked by name too: prevsnap unset)
	want := []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner", "get guid,createtxg,userrefs,prevsnap bk bk/a bk/a@s2 bk/b bk/b@s1 bk/c bk/c@s1"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	for _, e := range l.entries {
		if e.Name == "bk/a@s2" && e.UserRefs != 0 {
			t.Errorf("bk/a@s2: hold count %d from the cache, not the lookup's 0", e.UserRefs)
		}
	}
	if got, want := names(l.entries), names(f.items); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}

	// bk/b's newest recreated under its name (another guid), bk/c's source
	// not quiet: both listed; bk/a still reused
	f.items[5].GUID = 22
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, func(ds string) bool { return ds != "bk/c" })
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner", "get guid,createtxg,userrefs,prevsnap bk bk/a bk/a@s2 bk/b bk/b@s1", "bk/c,bk/b d=1 snapshot "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	for _, e := range l.entries {
		if e.Name == "bk/b@s1" && e.GUID != 22 {
			t.Errorf("bk/b@s1 came from the cache (guid %d)", e.GUID)
		}
	}

	// bk/a's newest destroyed: the lookup fails, every candidate is listed
	f.items = slices.Delete(f.items, 3, 4)
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, quietAll)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner", "get guid,createtxg,userrefs,prevsnap bk bk/a bk/a@s2 bk/b bk/b@s1 bk/c bk/c@s1", "bk,bk/a,bk/b,bk/c d=1 snapshot "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	if got, want := names(l.entries), names(f.items); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}

	// a partial receive on bk/c: listed without a lookup
	f.items[5].ResumeToken = "1-abc"
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, func(ds string) bool { return ds == "bk/c" }); err != nil {
		t.Fatal(err)
	}
	want = []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner", "get guid,createtxg,userrefs,prevsnap bk", "bk/a,bk/b,bk/c d=1 snapshot "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
}

func TestSameSnapshots(t *testing.T) {
	l := DatasetListing{Listed: time.Now(), Snapshots: []CachedSnapshot{{Name: "s1", GUID: 1, CreateTXG: 5}, {Name: "s2", GUID: 2, CreateTXG: 6}}}
	es := []zfs.Entry{
		{Name: "t/a@s1", Type: zfs.Snapshot, GUID: 1, CreateTXG: 5},
		{Name: "t/a#b", Type: zfs.Bookmark, GUID: 9, CreateTXG: 4},
		{Name: "t/a@s2-renamed", Type: zfs.Snapshot, GUID: 2, CreateTXG: 6},
	}
	if !l.sameSnapshots(es) {
		t.Errorf("the same snapshots (one renamed, a bookmark beside) are not the same")
	}
	if l.sameSnapshots(es[:1]) {
		t.Errorf("a snapshot destroyed went unnoticed")
	}
	if l.sameSnapshots(append(slices.Clone(es), zfs.Entry{Name: "t/a@s3", Type: zfs.Snapshot, GUID: 3, CreateTXG: 7})) {
		t.Errorf("a new snapshot went unnoticed")
	}
	if (DatasetListing{}).sameSnapshots(nil) {
		t.Errorf("no listing kept counts as the same")
	}
}

// Without a cache the listing is the one full listing of before.
func TestListSideWithoutACache(t *testing.T) {
	f := fakeTree()
	if _, err := (&Job{}).listSide(context.Background(), f, []string{"tank"}, nil, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tank d=0  zsync:placeholder,zsync:owner"}; !slices.Equal(f.calls, want) {
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

// A target is quiet when its source's snapshots are the ones the cache
// kept for the source, and the relationship's cursor is at the newest
// snapshot kept for the target and nowhere else.
func TestQuietTargets(t *testing.T) {
	at := time.Now()
	const root = TargetID("00112233445566ff")
	j := &Job{Listings: &memCache{}, Map: func(s string) (string, error) { return "bk/" + s, nil }}
	prevSrc := &SideListing{Datasets: map[string]DatasetListing{}}
	prevDst := &SideListing{Datasets: map[string]DatasetListing{}}
	info := map[string]zfs.Entry{}
	by := map[string][]zfs.Entry{}
	var selected []string
	// add makes dataset ds with snapshots s1 (guid g*10+1) and s2 (g*10+2),
	// both kept for the source and s2 the newest kept for the target, and
	// the given bookmarks of the relationship (kind, guid)
	add := func(ds string, g uint64, marks ...Abstraction) {
		selected = append(selected, ds)
		info[ds] = zfs.Entry{Name: ds, GUID: g}
		snaps := []CachedSnapshot{{Name: "s1", GUID: g*10 + 1, CreateTXG: g * 10}, {Name: "s2", GUID: g*10 + 2, CreateTXG: g*10 + 1}}
		prevSrc.Datasets[ds] = DatasetListing{GUID: g, Listed: at, Snapshots: snaps}
		prevDst.Datasets["bk/"+ds] = DatasetListing{GUID: 100 + g, Listed: at, Snapshots: snaps}
		for _, c := range snaps {
			by[ds] = append(by[ds], zfs.Entry{Name: ds + "@" + c.Name, Type: zfs.Snapshot, GUID: c.GUID, CreateTXG: c.CreateTXG})
		}
		tid := RelationID(root, "bk/"+ds)
		for _, m := range marks {
			name := CursorName(tid, m.GUID)
			if m.Kind == Tentative {
				name = TentativeName(tid, m.GUID)
			}
			by[ds] = append(by[ds], zfs.Entry{Name: ds + "#" + name, Type: zfs.Bookmark, GUID: m.GUID})
		}
	}
	cursor := func(g uint64) Abstraction { return Abstraction{Kind: Cursor, GUID: g} }
	add("tank/a", 1, cursor(12))
	add("tank/b", 2, cursor(22)) // and a new snapshot, below
	by["tank/b"] = append(by["tank/b"], zfs.Entry{Name: "tank/b@s3", Type: zfs.Snapshot, GUID: 23, CreateTXG: 30})
	add("tank/c", 3, cursor(32)) // no listing kept for the source
	prevSrc.Datasets["tank/c"] = DatasetListing{GUID: 3, Stamp: "9"}
	add("tank/d", 4, cursor(42)) // another dataset under the name
	info["tank/d"] = zfs.Entry{GUID: 40}
	add("tank/e", 5, cursor(99))             // the cursor moved on (a one-off run into the same target)
	add("tank/f", 6, cursor(62), cursor(61)) // an older cursor beside
	add("tank/g", 7, cursor(72), Abstraction{Kind: Tentative, GUID: 72})
	add("tank/h", 8) // protection "nothing": no cursor
	add("tank/i", 9, cursor(92))
	delete(prevDst.Datasets, "bk/tank/i") // no listing kept for the target
	got := j.quietTargets(prevSrc, prevDst, root, selected, info, by)
	if want := map[string]bool{"bk/tank/a": true}; !maps.Equal(got, want) {
		t.Errorf("quiet %v, want %v", got, want)
	}
	if got := j.quietTargets(prevSrc, prevDst, "", selected, info, by); len(got) != 0 {
		t.Errorf("quiet without a target id: %v", got)
	}
}

// A listing checked by name is reused for a day at most.
func TestUsableNamedAge(t *testing.T) {
	now := time.Now()
	d := zfs.Entry{Name: "bk/a", GUID: 1}
	l := DatasetListing{GUID: 1, Listed: now.Add(-maxNamedAge + time.Minute), Snapshots: []CachedSnapshot{{Name: "s1", GUID: 11}}}
	if !l.usableNamed(d, now) {
		t.Errorf("a listing younger than a day is not reused")
	}
	l.Listed = now.Add(-maxNamedAge)
	if l.usableNamed(d, now) {
		t.Errorf("a listing a day old is reused")
	}
	l.Listed = now.Add(time.Minute)
	if l.usableNamed(d, now) {
		t.Errorf("a listing from the future (clock set back) is reused")
	}
}

// A target the run replicated into keeps its snapshots as the finish knew
// them, marked to be checked by name: the next run (whatever the value of
// snapshots_changed, which the receive changed) looks up the newest and the
// held ones and the dataset's prevsnap instead of listing, and lists when
// a snapshot was made since, when the newest is gone, or when the kept
// snapshots are older than maxNamedAge. A side with bookmarks (a source)
// never reuses them.
func TestFinishedTargetKeptNamed(t *testing.T) {
	f := &listFake{stamps: map[string]string{"bk/a": "100", "bk/b": "100"}, items: []zfs.Entry{
		{Name: "bk", Type: zfs.Filesystem, GUID: 9}, // no snapshots: always listed
		{Name: "bk/a", Type: zfs.Filesystem, GUID: 1},
		{Name: "bk/a@s1", Type: zfs.Snapshot, GUID: 11, CreateTXG: 5, UserRefs: 1},
		{Name: "bk/b", Type: zfs.Filesystem, GUID: 2},
		{Name: "bk/b@s1", Type: zfs.Snapshot, GUID: 21, CreateTXG: 7, UserRefs: 1},
	}}
	j := &Job{Listings: &memCache{}}
	l, err := j.listSide(context.Background(), f, []string{"bk"}, nil, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// the run received s2 into both and its finish verified them; the
	// receive changed the values
	for _, ds := range []string{"bk/a", "bk/b"} {
		f.items = append(f.items, zfs.Entry{Name: ds + "@s2", Type: zfs.Snapshot, GUID: 99, CreateTXG: 20})
		f.stamps[ds] = "200"
	}
	finished := map[string][]zfs.Entry{
		"bk/a": {{Name: "bk/a@s1", Type: zfs.Snapshot, GUID: 11, CreateTXG: 5, UserRefs: 1}, {Name: "bk/a@s2", Type: zfs.Snapshot, GUID: 99, CreateTXG: 20}},
		"bk/b": {{Name: "bk/b@s1", Type: zfs.Snapshot, GUID: 21, CreateTXG: 7, UserRefs: 1}, {Name: "bk/b@s2", Type: zfs.Snapshot, GUID: 99, CreateTXG: 20}},
	}
	kept := l.update(func(ds string) bool { return ds != "bk" }, finished)
	for _, ds := range []string{"bk/a", "bk/b"} {
		if c := kept.Datasets[ds]; !c.Named || len(c.Snapshots) != 2 || c.Listed.IsZero() {
			t.Fatalf("%s kept as %+v, want its two snapshots, checked by name", ds, c)
		}
	}
	// bk, without snapshots: checked by name too (prevsnap unset)
	if c := kept.Datasets["bk"]; !c.Named || c.Snapshots == nil || len(c.Snapshots) != 0 {
		t.Errorf("bk kept as %+v, want no snapshots, checked by name", c)
	}

	// the next run: both looked up (s1 held, s2 newest), none listed
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner,snapshots_changed", "get guid,createtxg,userrefs,prevsnap bk bk/a bk/a@s1 bk/a@s2 bk/b bk/b@s1 bk/b@s2"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	if got, want := names(l.entries), names(f.items); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	// what this run keeps carries the time of the real listing, whether it
	// replicated into the target again or not: a chain of reuses by name
	// ends within maxNamedAge
	again := l.update(func(ds string) bool { return ds == "bk/a" }, map[string][]zfs.Entry{"bk/a": finished["bk/a"]})
	for _, ds := range []string{"bk", "bk/a", "bk/b"} {
		if c := again.Datasets[ds]; !c.Named || !c.Listed.Equal(kept.Datasets[ds].Listed) {
			t.Errorf("%s kept again as %+v, want checked by name, listed at %v", ds, c, kept.Datasets[ds].Listed)
		}
	}

	// a snapshot made on bk/b since (by hand, or by another run): listed
	f.items = append(f.items, zfs.Entry{Name: "bk/b@mine", Type: zfs.Snapshot, GUID: 5, CreateTXG: 30})
	f.calls = nil
	l, err = j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want = append(want, "bk/b d=1 snapshot "); !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	if !slices.Contains(names(l.entries), "bk/b@mine") {
		t.Errorf("entries %q lack bk/b@mine", names(l.entries))
	}

	// kept too long ago: listed without a lookup
	old := kept.Datasets["bk/a"]
	old.Listed = time.Now().Add(-maxNamedAge - time.Minute)
	kept.Datasets["bk/a"] = old
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	want = []string{"bk d=0 filesystem,volume zsync:placeholder,zsync:owner,snapshots_changed", "get guid,createtxg,userrefs,prevsnap bk bk/b bk/b@s1 bk/b@s2", "bk/a,bk/b d=1 snapshot "}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}

	// a snapshot made on bk: listed
	f.items = append(f.items, zfs.Entry{Name: "bk@new", Type: zfs.Snapshot, GUID: 77, CreateTXG: 40})
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"bk"}, kept, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	if want[2] = "bk/a,bk,bk/b d=1 snapshot "; !slices.Equal(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}

	// a side with bookmarks does not reuse them
	f.calls = nil
	if _, err := j.listSide(context.Background(), f, []string{"bk"}, kept, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "get ") {
			t.Errorf("a side with bookmarks looked up by name: %s", c)
		}
	}
}
