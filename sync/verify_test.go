package sync

import (
	"regexp"
	"slices"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

func TestVerify(t *testing.T) {
	snap := func(ds, short string, guid, txg uint64) zfs.Entry {
		return zfs.Entry{Name: ds + "@" + short, Type: zfs.Snapshot, GUID: guid, CreateTXG: txg}
	}
	const tid = TargetID("0123456789abcdef")
	src := []zfs.Entry{
		// s1 pruned on the source, kept as the cursor's bookmark
		{Name: "tank/a#" + CursorName(tid, 102), Type: zfs.Bookmark, GUID: 102, CreateTXG: 20},
		snap("tank/a", "s2", 102, 20),
		snap("tank/a", "s3", 103, 30), // removed on the target
		snap("tank/a", "s4", 104, 40),
		snap("tank/a", "tmp", 105, 45), // not wanted
		snap("tank/a", "s5", 106, 50),  // not replicated yet
		snap("tank/a", "same", 107, 55),
	}
	dst := []zfs.Entry{
		snap("backup/a", "s0", 100, 5), // pruned on the source, no bookmark
		snap("backup/a", "s2", 102, 8),
		snap("backup/a", "s4", 104, 9),
		snap("backup/a", "same", 999, 10),  // same name, other data
		snap("backup/a", "local", 998, 11), // made on the target
	}
	srcAbs := []Abstraction{{Kind: Cursor, Name: "tank/a#" + CursorName(tid, 104), Target: tid, GUID: 104}}
	dstAbs := []Abstraction{{Kind: LastReceivedHold, Name: "backup/a@s4", Target: tid, GUID: 104}}
	v := Verify("tank/a", "backup/a", src, dst, srcAbs, dstAbs, tid, regexp.MustCompile(`^s`))
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	if v.Common != 2 || v.NewestCommon != "backup/a@s4" {
		t.Errorf("common %d, newest %q; want 2, backup/a@s4", v.Common, v.NewestCommon)
	}
	check("missing", v.Missing, "tank/a@s3")
	check("pending", v.Pending, "tank/a@s5", "tank/a@same")
	check("mismatched", v.Mismatched, "backup/a@same")
	check("foreign", v.Foreign, "backup/a@local")
	check("pruned", v.Pruned, "backup/a@s0")
	if v.Cursors != 1 || !v.CursorAt || v.LastHolds != 1 || !v.LastHoldAt {
		t.Errorf("cursor %d at %v, last holds %d at %v: want 1 true 1 true", v.Cursors, v.CursorAt, v.LastHolds, v.LastHoldAt)
	}

	// nothing in common: every target snapshot is foreign
	v = Verify("tank/a", "backup/a", src, []zfs.Entry{snap("backup/a", "x", 1, 1)}, nil, nil, tid, nil)
	check("foreign without common", v.Foreign, "backup/a@x")
	if v.Common != 0 || v.NewestCommon != "" || len(v.Pending) != 6 || v.CursorAt {
		t.Errorf("without common: %+v", v)
	}
	// a cursor elsewhere is counted but not at the newest
	v = Verify("tank/a", "backup/a", src, dst, []Abstraction{{Kind: Cursor, Name: "tank/a#c", Target: tid, GUID: 102}}, nil, tid, nil)
	if v.Cursors != 1 || v.CursorAt || v.LastHolds != 0 {
		t.Errorf("stale cursor: %d at %v, holds %d", v.Cursors, v.CursorAt, v.LastHolds)
	}
}
