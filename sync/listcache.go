package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// Listing snapshots is what a run with nothing to do spends its time on:
// OpenZFS opens every snapshot it lists, and for a dataset that is not
// mounted (every replica) that costs milliseconds per snapshot. Since
// OpenZFS 2.2 a filesystem or volume has snapshots_changed, the time
// (seconds) its set of snapshots last changed: a snapshot created,
// received, destroyed or renamed. A run that finds a dataset's value as it
// was when an earlier run listed its snapshots reuses that listing.
//
// The cache is an optimisation only. Anything unexpected (no cache, an
// unreadable one, a failed listing) lists as if there were none; a side
// without the property is handled below (namedReuse). A listing is reused only for the same dataset (guid)
// with the same origin (a promote moves snapshots between a clone and its
// origin) and the same value. Holds and bookmarks do not change
// snapshots_changed: the source's bookmarks are always listed, the holds
// of cached snapshots that had any are asked for as usual, and a dataset
// whose holds, bookmarks or snapshots the run changed keeps no listing for
// the next run, but for a target the run replicated into and verified (see
// "Checked by name" below). A dataset whose value is unset ("-": it never
// had a snapshot, like a placeholder, or its pool cannot keep the value)
// and that had no snapshot is checked by name too. While a run works the
// cache holds no listing at all, so a
// run killed midway leaves none that predates its changes. What the cache
// cannot see: a hold put by hand (or by a one-off run) on a cached
// snapshot that had none is noticed when the dataset is next listed: at its
// next snapshot change, or for a listing checked by name (which a run
// receiving into the replica keeps checking) within maxNamedAge of the
// last real listing.
//
// The value has a one-second granularity: a change in the same second as
// the one it records would not change it. A listing is therefore kept only
// when it began at least settleTime after the value was first seen (so
// every change in that second was over before the listing began, whatever
// the far host's clock says: the value is never later than the moment it
// was read, and a change after the listing gets a later second). The first
// run after a change lists, the next ones reuse. A clock set backwards
// between runs makes a listing look unsettled, which only costs a listing.
// Not covered: the far host's clock stepped backwards across the recorded
// second, and a pool imported meanwhile by an OpenZFS older than 2.2 (which
// changes snapshots without keeping the value); delete the cache
// (listings/ in the state directory) after either.

// settleTime is how long after a snapshots_changed value was first seen a
// listing must begin to be kept for it (one second, and a margin for the
// local clock's adjustments).
const settleTime = 2 * time.Second

// retryUnsupported is how long a side found without snapshots_changed
// (OpenZFS before 2.2) is listed in full before the property is tried again.
const retryUnsupported = 24 * time.Hour

// ListingCache stores what a job's runs learnt about snapshot listings
// between runs (the state directory's job file, for cmd). Load of nothing
// stored yet is an empty ListingState and no error.
type ListingCache interface {
	Load() (ListingState, error)
	Save(ListingState) error
}

// ListingState is the cache of one job: per side ("source", "target").
type ListingState struct {
	Sides map[string]*SideListing `json:"sides"`
}

// SideListing is what is known of one side's datasets.
type SideListing struct {
	// Unsupported is when the side was found without snapshots_changed.
	Unsupported time.Time                 `json:"unsupported,omitzero"`
	Datasets    map[string]DatasetListing `json:"datasets,omitempty"`
}

// DatasetListing is one dataset's snapshots as a run listed them.
type DatasetListing struct {
	GUID   uint64    `json:"guid"`             // the dataset's: a name reused or swapped is another dataset
	Origin string    `json:"origin,omitempty"` // a promote moves snapshots between a clone and its origin
	Stamp  string    `json:"stamp"`            // snapshots_changed as listed ("" unset)
	Seen   time.Time `json:"seen"`             // when this value was first seen (local clock)
	// Listed is when Snapshots were listed (zero: no listing kept).
	Listed    time.Time        `json:"listed,omitzero"`
	Snapshots []CachedSnapshot `json:"snapshots,omitempty"`
	// Named: the snapshots are what a run knew of a target it replicated
	// into when it finished (see Finished), not a listing; they are
	// checked by name before reuse, whatever the value (namedReuse).
	Named bool `json:"named,omitempty"`
}

// CachedSnapshot is what the planner and the reconciler use of a snapshot,
// kept short: a cache of many thousand snapshots is read and written on
// every run.
type CachedSnapshot struct {
	Name      string `json:"n"` // after the '@'
	GUID      uint64 `json:"g"`
	CreateTXG uint64 `json:"t"`
	Creation  int64  `json:"c"` // seconds since the epoch
	UserRefs  uint64 `json:"u,omitempty"`
}

func cacheSnapshots(es []zfs.Entry) []CachedSnapshot {
	out := make([]CachedSnapshot, 0, len(es))
	for _, e := range es {
		out = append(out, CachedSnapshot{Name: e.Short(), GUID: e.GUID, CreateTXG: e.CreateTXG, Creation: e.Creation.Unix(), UserRefs: e.UserRefs})
	}
	return out
}

// entries restores the snapshot entries of dataset ds (of dataset entry d,
// whose encryption its snapshots share).
func (l DatasetListing) entries(d zfs.Entry) []zfs.Entry {
	out := make([]zfs.Entry, 0, len(l.Snapshots))
	for _, c := range l.Snapshots {
		e := zfs.Entry{Name: d.Name + "@" + c.Name, Type: zfs.Snapshot, GUID: c.GUID, CreateTXG: c.CreateTXG, UserRefs: c.UserRefs,
			Encryption: d.Encryption, EncryptionRoot: d.EncryptionRoot, KeyStatus: d.KeyStatus}
		if c.Creation != 0 {
			e.Creation = time.Unix(c.Creation, 0).UTC()
		}
		out = append(out, e)
	}
	return out
}

// usable reports whether l's snapshots stand for dataset d, whose
// snapshots_changed is stamp, now.
func (l DatasetListing) usable(d zfs.Entry, stamp string, now time.Time) bool {
	if l.Listed.IsZero() || l.Stamp != stamp || stamp == "" || l.GUID != d.GUID || d.GUID == 0 || l.Origin != d.Origin {
		return false
	}
	return l.Listed.Sub(l.Seen) >= settleTime && !now.Before(l.Listed)
}

// withoutSnapshotsChanged reports whether a listing failed because the side
// does not know snapshots_changed: zfs before 2.2 ("bad property list:
// invalid property 'snapshots_changed'"), or a far zsync too old to pass the
// option on (its decoder refuses the unknown field).
func withoutSnapshotsChanged(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "invalid property") && strings.Contains(msg, "snapshots_changed") ||
		strings.Contains(msg, "unknown field") && strings.Contains(msg, "SnapshotsChanged")
}

// sideListing is one side's listing in a run, with what the cache needs to
// be updated after it.
type sideListing struct {
	entries []zfs.Entry
	// with the cache: the values read, when, what was listed afresh
	cached  bool
	stamps  map[string]string
	dss     map[string]zfs.Entry
	seen    time.Time
	listed  time.Time
	fresh   map[string]bool // datasets whose snapshots were listed this run
	prev    *SideListing
	reused  int
	listing int
	// named: the side has no snapshots_changed (since unsupported, when
	// it was found so), and listings are checked by name (namedReuse)
	named       bool
	unsupported time.Time
}

// A side without snapshots_changed (OpenZFS 2.1) cannot tell which
// datasets' snapshots changed, so its source side is listed in full every
// run. Its target side reuses the listing an earlier run kept for a target
// dataset (one that run did not change) when all of this holds, and lists
// it otherwise:
//
//   - its source dataset is quiet: its snapshots (GUIDs and createtxgs) are
//     what the earlier run recorded, so there is nothing to send and the
//     plan needs no more than the target's newest snapshot, and the
//     relationship's cursor on the source is at that newest kept snapshot
//     (Job.quietTargets): nothing moved the replica on since;
//   - the listing is less than a day old (maxNamedAge);
//   - it is the same dataset (guid, origin) and has no partial receive;
//   - its newest kept snapshot, and every kept snapshot that was held,
//     exist under their names with the same guid and createtxg: looked up
//     by name in one call for all such datasets (a few snapshots instead of
//     all of them; the hold counts come from that lookup).
//
//   - its prevsnap (the name of its newest snapshot, which zfs keeps per
//     dataset and changes with every snapshot made, received, destroyed or
//     renamed at the top) is the newest kept snapshot: read in the same
//     call.
//
// Checked by name: the same checks (all but the first) stand for the
// snapshots_changed of a target that the earlier run replicated into and
// verified (its receive changed the value): the run keeps the target's
// snapshots as its finish knew them (DatasetListing.Named), so that the
// every-15-minutes run, which receives into every replica each time, does
// not list every replica each time. A dataset that had no snapshot at all
// (a placeholder) is kept so too, and checked by prevsnap being unset.
//
// A snapshot taken on (or received into) the target by hand is therefore
// noticed at once (prevsnap), as is the newest or a held one destroyed or
// renamed; an older unheld one destroyed or renamed by hand is not, and is
// harmless (no plan uses it).

// namedChecks are the kept snapshots a lookup by name must find: the newest
// and every one that was held.
func (l DatasetListing) namedChecks() []CachedSnapshot {
	var out []CachedSnapshot
	for _, c := range l.Snapshots {
		if c.UserRefs > 0 {
			out = append(out, c)
		}
	}
	if newest := l.newest(); newest != nil && newest.UserRefs == 0 {
		out = append(out, *newest)
	}
	return out
}

// newest returns the kept snapshot with the highest createtxg (nil: none).
func (l DatasetListing) newest() *CachedSnapshot {
	var n *CachedSnapshot
	for i, c := range l.Snapshots {
		if n == nil || c.CreateTXG > n.CreateTXG {
			n = &l.Snapshots[i]
		}
	}
	return n
}

// usableNamed reports whether l may stand for dataset d on a side without
// snapshots_changed, once its namedChecks are found. A listing older than
// maxNamedAge is not: what a lookup by name cannot see (a snapshot made on
// the replica by hand) is noticed within that time even if the source
// stays idle.
func (l DatasetListing) usableNamed(d zfs.Entry, now time.Time) bool {
	return !l.Listed.IsZero() && (len(l.Snapshots) > 0 || l.Named) && l.GUID == d.GUID && d.GUID != 0 &&
		l.Origin == d.Origin && d.ResumeToken == "" && !now.Before(l.Listed) && now.Sub(l.Listed) < maxNamedAge
}

// maxNamedAge is how long a listing checked by name is reused (see
// usableNamed).
const maxNamedAge = 24 * time.Hour

// sameSnapshots reports whether a dataset's snapshots are the ones l kept.
func (l DatasetListing) sameSnapshots(es []zfs.Entry) bool {
	type id struct{ guid, txg uint64 }
	var have []id
	for _, e := range es {
		if e.Type == zfs.Snapshot {
			have = append(have, id{e.GUID, e.CreateTXG})
		}
	}
	if l.Listed.IsZero() || len(have) != len(l.Snapshots) {
		return false
	}
	kept := make(map[id]bool, len(l.Snapshots))
	for _, c := range l.Snapshots {
		kept[id{c.GUID, c.CreateTXG}] = true
	}
	for _, h := range have {
		if !kept[h] {
			return false
		}
	}
	return true
}

// namedReuse looks up the namedChecks of the candidates' kept listings in
// one call, with each candidate's prevsnap (the name of its newest
// snapshot, a property zfs keeps per dataset), and returns the entries of
// those whose checks all match and whose newest snapshot is the newest
// kept (with the hold counts just read), and the candidates to list
// instead. A snapshot made since the listing was kept (by hand, by a
// receive, by another run) is therefore always seen.
func namedReuse(ctx context.Context, e Endpoint, prev *SideListing, cands []zfs.Entry) (entries []zfs.Entry, reused int, relist []string) {
	var ask []string
	for _, d := range cands {
		ask = append(ask, d.Name)
		for _, c := range prev.Datasets[d.Name].namedChecks() {
			ask = append(ask, d.Name+"@"+c.Name)
		}
	}
	got, err := e.Get(ctx, ask, []string{"guid", "createtxg", "userrefs", "prevsnap"})
	for _, d := range cands {
		l := prev.Datasets[d.Name]
		ok := err == nil
		// prevsnap is unset on a dataset without snapshots (a clone's is
		// its origin)
		want := ""
		if newest := l.newest(); newest != nil {
			want = d.Name + "@" + newest.Name
		}
		if ok && got[d.Name]["prevsnap"] != want {
			ok = false
		}
		refs := map[string]uint64{}
		for _, c := range l.namedChecks() {
			if !ok {
				break
			}
			p := got[d.Name+"@"+c.Name]
			guid, gerr := strconv.ParseUint(p["guid"], 10, 64)
			txg, terr := strconv.ParseUint(p["createtxg"], 10, 64)
			n, nerr := strconv.ParseUint(p["userrefs"], 10, 64)
			ok = gerr == nil && terr == nil && nerr == nil && guid == c.GUID && txg == c.CreateTXG
			refs[c.Name] = n
		}
		if !ok {
			relist = append(relist, d.Name)
			continue
		}
		for _, s := range l.entries(d) {
			if n, looked := refs[s.Short()]; looked {
				s.UserRefs = n
			}
			entries = append(entries, s)
		}
		reused++
	}
	return entries, reused, relist
}

// listSide lists the datasets below roots with their snapshots (and, with
// bookmarks, bookmarks), through the cache when the job has one. scope
// picks the datasets whose snapshots are needed (nil: all). quiet, on the
// target side, tells which datasets' sources are quiet (see above; nil
// when unknown).
func (j *Job) listSide(ctx context.Context, e Endpoint, roots []string, prev *SideListing, bookmarks bool, scope func(zfs.Entry) bool, quiet func(string) bool) (*sideListing, error) {
	full := func() (*sideListing, error) {
		es, err := e.List(ctx, roots, zfs.ListOptions{UserProps: []string{PlaceholderProperty, OwnerProperty}})
		return &sideListing{entries: es, prev: prev}, err
	}
	now := time.Now()
	if prev == nil {
		prev = &SideListing{}
	}
	if j.Listings == nil {
		return full()
	}
	named := !prev.Unsupported.IsZero() && now.Sub(prev.Unsupported) < retryUnsupported && !now.Before(prev.Unsupported)
	unsupported := prev.Unsupported
	o := zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume}, UserProps: []string{PlaceholderProperty, OwnerProperty}, SnapshotsChanged: !named}
	dss, err := e.List(ctx, roots, o)
	if err != nil && !named && withoutSnapshotsChanged(err) {
		named, unsupported = true, time.Now()
		o.SnapshotsChanged = false
		dss, err = e.List(ctx, roots, o)
	}
	if err != nil {
		if errors.Is(err, zfs.ErrDatasetNotFound) {
			return nil, err
		}
		return full()
	}
	// seen is after the values were read: a value is never later than
	// the moment it was read, so its second began before seen
	l := &sideListing{cached: true, stamps: map[string]string{}, dss: map[string]zfs.Entry{}, seen: time.Now(), fresh: map[string]bool{}, prev: prev, named: named, unsupported: unsupported}
	var relist, reuse []string
	var cands []zfs.Entry
	l.listed = time.Now() // before the snapshots are listed
	for _, d := range dss {
		var stamp string
		if d.SnapshotsChanged != 0 {
			stamp = strconv.FormatUint(d.SnapshotsChanged, 10)
		}
		d.SnapshotsChanged = 0
		l.entries = append(l.entries, d)
		if scope != nil && !scope(d) {
			continue
		}
		l.stamps[d.Name], l.dss[d.Name] = stamp, d
		c, ok := prev.Datasets[d.Name]
		switch {
		case ok && c.Named && !bookmarks && c.usableNamed(d, l.listed):
			cands = append(cands, d)
		case named && ok && quiet != nil && quiet(d.Name) && c.usableNamed(d, l.listed):
			cands = append(cands, d)
		case !named && ok && c.usable(d, stamp, l.listed):
			reuse = append(reuse, d.Name)
			l.entries = append(l.entries, c.entries(d)...)
		default:
			relist = append(relist, d.Name)
		}
	}
	if len(cands) > 0 {
		es, n, more := namedReuse(ctx, e, prev, cands)
		l.entries = append(l.entries, es...)
		l.reused += n
		relist = append(relist, more...)
	}
	for _, ds := range relist {
		l.fresh[ds] = true
	}
	if len(relist) > 0 {
		ts := []zfs.Type{zfs.Snapshot}
		if bookmarks {
			ts = append(ts, zfs.Bookmark)
		}
		es, err := e.List(ctx, relist, zfs.ListOptions{Depth: 1, Types: ts})
		if err != nil {
			return full()
		}
		l.entries = append(l.entries, es...)
	}
	if len(reuse) > 0 && bookmarks {
		es, err := e.List(ctx, reuse, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Bookmark}})
		if err != nil {
			return full()
		}
		l.entries = append(l.entries, es...)
	}
	l.reused += len(reuse)
	l.listing = len(relist)
	return l, nil
}

// update returns the side's cache after the run: a dataset keeps this
// run's listing of its snapshots (fresh or reused) unless the run changed
// it (dirty) or the listing did not settle; a changed value restarts its
// settling.
func (l *sideListing) update(dirty func(string) bool, kept map[string][]zfs.Entry) *SideListing {
	out := &SideListing{Datasets: map[string]DatasetListing{}}
	if l.named {
		out.Unsupported = l.unsupported
	}
	if !l.cached {
		return out // no values: the next run starts the cache
	}
	snaps := map[string][]zfs.Entry{}
	for _, e := range l.entries {
		if e.Type == zfs.Snapshot {
			snaps[e.Dataset()] = append(snaps[e.Dataset()], e)
		}
	}
	for ds, stamp := range l.stamps {
		d := l.dss[ds]
		c := DatasetListing{GUID: d.GUID, Origin: d.Origin, Stamp: stamp, Seen: l.seen}
		if p, ok := l.prev.Datasets[ds]; ok && p.GUID == c.GUID && p.Origin == c.Origin && p.Stamp == stamp && !p.Seen.After(l.seen) {
			c.Seen = p.Seen
		}
		// when the dataset's snapshots were last listed: a listing reused
		// (by its value or by name) carries the time of the real one, so
		// that a chain of reuses by name ends within maxNamedAge
		listed := l.listed
		if !l.fresh[ds] {
			listed = l.prev.Datasets[ds].Listed
		}
		switch {
		case !dirty(ds):
			if l.named || stamp != "" && listed.Sub(c.Seen) >= settleTime {
				c.Listed, c.Snapshots = listed, cacheSnapshots(snaps[ds])
			}
			if !l.fresh[ds] && l.prev.Datasets[ds].Named || stamp == "" && len(snaps[ds]) == 0 {
				// reused by name, it stays checked by name; a dataset that
				// never had a snapshot (a placeholder, its value unset) is
				// checked by name too: a snapshot made since shows in its
				// prevsnap
				c = DatasetListing{GUID: d.GUID, Origin: d.Origin, Listed: listed, Snapshots: cacheSnapshots(snaps[ds]), Named: true}
			}
		case len(kept[ds]) > 0:
			// replicated into and verified: the finish's knowledge, which
			// is this run's first listing (or the one it reused) and
			// what the run received
			c = DatasetListing{GUID: d.GUID, Origin: d.Origin, Listed: listed, Snapshots: cacheSnapshots(kept[ds]), Named: true}
		}
		out.Datasets[ds] = c
	}
	return out
}

func (l *sideListing) String() string {
	if !l.cached {
		return "listed in full"
	}
	return fmt.Sprintf("%d datasets' snapshots listed, %d reused", l.listing, l.reused)
}

// touchSet records the datasets a run changed on one side: their own names,
// and subtrees that a rename moved.
type touchSet struct {
	mu      stdsync.Mutex
	exact   map[string]bool
	subtree map[string]bool
}

func newTouchSet() *touchSet {
	return &touchSet{exact: map[string]bool{}, subtree: map[string]bool{}}
}

func (t *touchSet) mark(tree bool, names ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		ds, _, _ := strings.Cut(strings.SplitN(n, "#", 2)[0], "@")
		t.exact[ds] = true
		if tree {
			t.subtree[ds] = true
		}
	}
}

func (t *touchSet) has(ds string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exact[ds] {
		return true
	}
	for p := parentOf(ds); p != ""; p = parentOf(p) {
		if t.subtree[p] {
			return true
		}
	}
	return false
}

// touching is an Endpoint that records in set the datasets its changing
// calls are about.
type touching struct {
	Endpoint
	set *touchSet
}

func (e touching) Hold(ctx context.Context, tag string, snaps []string) error {
	e.set.mark(false, snaps...)
	return e.Endpoint.Hold(ctx, tag, snaps)
}

func (e touching) Release(ctx context.Context, tag string, snaps []string) error {
	e.set.mark(false, snaps...)
	return e.Endpoint.Release(ctx, tag, snaps)
}

func (e touching) Bookmark(ctx context.Context, snapOrBookmark, bookmark string) error {
	e.set.mark(false, snapOrBookmark, bookmark)
	return e.Endpoint.Bookmark(ctx, snapOrBookmark, bookmark)
}

func (e touching) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	e.set.mark(false, dataset)
	return e.Endpoint.DestroySnapshots(ctx, dataset, shortNames)
}

func (e touching) DestroyBookmarks(ctx context.Context, bookmarks []string) error {
	e.set.mark(false, bookmarks...)
	return e.Endpoint.DestroyBookmarks(ctx, bookmarks)
}

func (e touching) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	e.set.mark(false, name)
	return e.Endpoint.Create(ctx, name, props, parents)
}

func (e touching) Set(ctx context.Context, name string, props map[string]string) error {
	e.set.mark(false, name)
	return e.Endpoint.Set(ctx, name, props)
}

func (e touching) Rename(ctx context.Context, from, to string) error {
	e.set.mark(true, from, to)
	return e.Endpoint.Rename(ctx, from, to)
}

func (e touching) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	e.set.mark(false, o.Target)
	return e.Endpoint.Receive(ctx, o, stream)
}

func (e touching) AbortReceive(ctx context.Context, dataset string) error {
	e.set.mark(false, dataset)
	return e.Endpoint.AbortReceive(ctx, dataset)
}
