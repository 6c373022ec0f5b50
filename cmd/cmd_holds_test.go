package cmd

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// holdsEP is an Endpoint with a fixed listing and holds that records what
// is destroyed and released. Every other method panics (the embedded nil).
type holdsEP struct {
	zsync.Endpoint
	list      []zfs.Entry
	holds     map[string][]string
	destroyed []string
	released  []string // "tag snapshot"
}

func (h *holdsEP) List(_ context.Context, roots []string, _ zfs.ListOptions) ([]zfs.Entry, error) {
	var out []zfs.Entry
	for _, e := range h.list {
		for _, r := range roots {
			if zfs.IsDescendant(e.Dataset(), r) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func (h *holdsEP) Holds(_ context.Context, snaps []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, s := range snaps {
		out[s] = h.holds[s]
	}
	return out, nil
}

func (h *holdsEP) DestroyBookmarks(_ context.Context, b []string) error {
	h.destroyed = append(h.destroyed, b...)
	return nil
}

func (h *holdsEP) Release(_ context.Context, tag string, snaps []string) error {
	for _, s := range snaps {
		h.released = append(h.released, tag+" "+s)
	}
	return nil
}

func TestReleaseScan(t *testing.T) {
	const unknownID zsync.TargetID = "3333333333333333"
	list, holds := pinsListing()
	list = append(list,
		// a superseded cursor of the live relationship
		zfs.Entry{Name: "tank/d#" + zsync.CursorName(liveID, 102), Type: zfs.Bookmark, GUID: 102, CreateTXG: 20},
		// a foreign bookmark: its name's GUID is not its guid
		zfs.Entry{Name: "tank/d#" + zsync.CursorName(deadID, 999), Type: zfs.Bookmark, GUID: 105, CreateTXG: 50},
		// a relationship inside a serve client's send area
		zfs.Entry{Name: "tank/served", Type: zfs.Filesystem},
		zfs.Entry{Name: "tank/served@a", Type: zfs.Snapshot, GUID: 201, CreateTXG: 3},
		zfs.Entry{Name: "tank/served#" + zsync.CursorName(unknownID, 201), Type: zfs.Bookmark, GUID: 201, CreateTXG: 3},
	)
	for i := range list {
		if list[i].Name == "tank/d@s2" {
			list[i].UserRefs = 1
		}
	}
	lv := &liveness{
		live:  map[zsync.TargetID]string{liveID: "job p: tank/d -> backup/tank/d"},
		local: []zsync.Claim{{Side: zsync.SenderSide, Covers: below("tank/served"), Reason: "inside the send area of [[serve.client]] \"laptop\""}},
	}
	run := func(orphaned, dryRun bool) (*holdsEP, string, int) {
		ep := &holdsEP{list: list, holds: holds}
		var out bytes.Buffer
		e := &env{stdout: &out}
		s := &holdsScan{where: "this host", ep: ep, sources: []string{"tank"}, claims: lv.local, closeEP: func() {}}
		kept, err := e.releaseScan(context.Background(), s, lv, orphaned, dryRun)
		if err != nil {
			t.Fatal(err)
		}
		return ep, out.String(), kept
	}
	superseded := "tank/d#" + zsync.CursorName(liveID, 102)

	// listed, kept; only the superseded cursor of the live relationship goes
	ep, out, kept := run(false, false)
	if kept != 2 { // the orphaned relationship on tank/d and the one on tank/e
		t.Errorf("kept %d orphaned relationships, want 2", kept)
	}
	if !slices.Equal(ep.destroyed, []string{superseded}) || len(ep.released) != 0 {
		t.Errorf("without --orphaned: destroyed %v released %v, want only %s", ep.destroyed, ep.released, superseded)
	}
	for _, want := range []string{
		"orphaned relationship " + string(deadID) + " on tank/d (source side, this host): " + zsync.OrphanReason,
		"pins: prune never destroys tank/d@s1, tank/d@s2; not_replicated keeps tank/d@s2\n", // the live relationship's older cursor is still there
		"unknown relationship " + string(unknownID) + " on tank/served (source side, this host): inside the send area",
		"kept foreign tank/d#" + zsync.CursorName(deadID, 999),
		"destroy " + superseded + " (cursor, stale)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// --orphaned --dry-run: says what it would do, does nothing
	ep, out, _ = run(true, true)
	if len(ep.destroyed)+len(ep.released) != 0 {
		t.Errorf("dry run destroyed %v released %v", ep.destroyed, ep.released)
	}
	if !strings.Contains(out, "would destroy tank/d#"+zsync.CursorName(deadID, 101)+" (cursor, orphaned)") {
		t.Errorf("dry run output:\n%s", out)
	}

	// --orphaned: the orphaned relationships go whole; unknown, live and
	// foreign objects stay; snapshots are never destroyed (no such call)
	ep, _, _ = run(true, false)
	wantDestroyed := []string{"tank/d#" + zsync.CursorName(deadID, 101), superseded}
	wantReleased := []string{zsync.LastReceivedHoldTag(deadID) + " tank/e@x", zsync.StepHoldTag(deadID) + " tank/d@s2"}
	slices.Sort(ep.destroyed)
	slices.Sort(wantDestroyed)
	slices.Sort(ep.released)
	if !slices.Equal(ep.destroyed, wantDestroyed) || !slices.Equal(ep.released, wantReleased) {
		t.Errorf("with --orphaned: destroyed %v released %v, want %v and %v", ep.destroyed, ep.released, wantDestroyed, wantReleased)
	}
}
