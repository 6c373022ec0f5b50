package serve

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// In the send area several clients (and the host's own jobs) share
// datasets. A client's holds and bookmarks there are bound to it on disk:
// the far side appends "_C<client>" to every hold tag and bookmark name it
// uses, and strips it from what it returns. A client cannot name another
// client's (or the host's, or an admin's) holds and bookmarks, because
// what it sends must have zsync's exact shapes and always gets its own
// suffix; names with zsync's prefix that are not its own are hidden from
// it.
var (
	reLegacyLastHold = regexp.MustCompile(`^zsync_last_T[0-9a-f]{16}$`)
	// per relationship (_T<relation id>) or per target root (_R<root id>)
	reZsyncTag      = regexp.MustCompile(`^zsync_[a-z]+_[TR][0-9a-f]{16}$`)
	reZsyncBookmark = regexp.MustCompile(`^zsync_[a-z]+_T[0-9a-f]{16}_G[0-9a-f]{16}$`)
)

// clientInfix joins a zsync name and the client it belongs to on disk.
const clientInfix = "_C"

// owner maps one client's hold tags and bookmark names between the client's
// view and the disk.
type owner struct{ client string }

func (o owner) suffix() string { return clientInfix + o.client }

// diskTag returns the on-disk hold tag for the client's tag, which must
// have zsync's shape.
func (o owner) diskTag(tag string) (string, error) {
	if !reZsyncTag.MatchString(tag) {
		return "", fmt.Errorf("hold tag %q is not one of zsync's (zsync_<kind>_T<target id> or zsync_<kind>_R<root id>)", shortText(tag))
	}
	d := tag + o.suffix()
	if err := zfs.ValidateHoldTag(d); err != nil {
		return "", err
	}
	return d, nil
}

// diskBookmark returns the on-disk name of the client's bookmark
// (dataset#short), whose short name must have zsync's shape.
func (o owner) diskBookmark(name string) (string, error) {
	ds, sep, short := zfs.SplitName(name)
	if sep != '#' || !reZsyncBookmark.MatchString(short) {
		return "", fmt.Errorf("bookmark %q is not one of zsync's (zsync_<kind>_T<target id>_G<guid>)", shortText(name))
	}
	d := ds + "#" + short + o.suffix()
	if err := zfs.ValidateBookmark(d); err != nil {
		return "", err
	}
	return d, nil
}

// clientShort maps an on-disk hold tag or bookmark short name to the
// client's view: its own names lose their suffix, other zsync-shaped names
// are hidden (ok false), anything else is shown as it is.
func (o owner) clientShort(disk string, shape *regexp.Regexp) (string, bool) {
	if !strings.HasPrefix(disk, zsyncBookmarkPrefix) {
		return disk, true
	}
	base, ok := strings.CutSuffix(disk, o.suffix())
	if !ok || !shape.MatchString(base) {
		return "", false
	}
	return base, true
}

// clientTag is clientShort for hold tags.
func (o owner) clientTag(disk string) (string, bool) { return o.clientShort(disk, reZsyncTag) }

// clientName maps an on-disk dataset, snapshot or bookmark name to the
// client's view (only bookmarks change).
func (o owner) clientName(disk string) (string, bool) {
	ds, sep, short := zfs.SplitName(disk)
	if sep != '#' {
		return disk, true
	}
	s, ok := o.clientShort(short, reZsyncBookmark)
	if !ok {
		return "", false
	}
	return ds + "#" + s, true
}

// diskVersion maps a snapshot or bookmark the client names (the source of a
// bookmark, the from of a send) to disk: a bookmark with zsync's prefix
// must be its own; anything else is used as it is.
func (o owner) diskVersion(name string) (string, error) {
	_, sep, short := zfs.SplitName(name)
	if sep != '#' || !strings.HasPrefix(short, zsyncBookmarkPrefix) {
		return name, nil
	}
	return o.diskBookmark(name)
}

// holdPair is one hold object: a snapshot and a tag on it.
type holdPair struct{ snap, tag string }

// holdsOn returns the holds o has now on the snapshots of dataset (its own
// on-disk tags), with h.
func (o owner) holdsOn(ctx context.Context, h Handler, dataset string) (map[holdPair]bool, error) {
	entries, err := h.List(ctx, []string{dataset}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
	if err != nil {
		return nil, err
	}
	var held []string
	for _, e := range entries {
		if e.Type == zfs.Snapshot && e.UserRefs > 0 && e.Dataset() == dataset {
			held = append(held, e.Name)
		}
	}
	mine := map[holdPair]bool{}
	if len(held) == 0 {
		return mine, nil
	}
	tags, err := h.Holds(ctx, held)
	if err != nil {
		return nil, err
	}
	for snap, ts := range tags {
		if datasetOf(snap) != dataset {
			continue
		}
		for _, t := range ts {
			if base, ok := strings.CutSuffix(t, o.suffix()); ok && reZsyncTag.MatchString(base) {
				mine[holdPair{snap, t}] = true
			}
		}
	}
	return mine, nil
}

// overCap returns the first dataset on which holding snaps with the
// on-disk tag would leave o with more than max holds, and how many that
// would be. It counts hold objects, (snapshot, tag) pairs: the client's
// own holds on the dataset now plus those the request adds (a pair it has
// already is not counted twice), so neither many snapshots nor many tags
// on one snapshot pass the cap.
func (o owner) overCap(ctx context.Context, h Handler, max int, tag string, snaps []string) (string, int, error) {
	byDataset := map[string][]string{}
	var order []string
	for _, s := range snaps {
		ds := datasetOf(s)
		if _, ok := byDataset[ds]; !ok {
			order = append(order, ds)
		}
		byDataset[ds] = append(byDataset[ds], s)
	}
	for _, ds := range order {
		mine, err := o.holdsOn(ctx, h, ds)
		if err != nil {
			return "", 0, fmt.Errorf("counting the holds of client %s on %s: %w", o.client, ds, err)
		}
		for _, s := range byDataset[ds] {
			mine[holdPair{s, tag}] = true
		}
		if len(mine) > max {
			return ds, len(mine), nil
		}
	}
	return "", 0, nil
}
