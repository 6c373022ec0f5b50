package sync

import (
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

const otherTID TargetID = "fedcba9876543210"

// The reconcile test notation, one case per line:
//
//	OPTIONS | ABSTRACTIONS => STALE
//
// ABSTRACTIONS are space-separated KIND:x with KIND C (cursor), T
// (tentative cursor), S (step hold) or L (last-received hold) on the
// snapshot x, whose GUID is testGUID(x) and whose createtxg follows the
// letter's alphabetical order. A "!" suffix puts it on otherTID, a "~"
// suffix on another dataset. OPTIONS: "lvl=r|i|n" (protection of testTID,
// default r), "cursor=x" (cursor GUID; "-" or absent = 0), "inflight=a>b"
// (from>to, from "-" = full send), "recv=x" (received GUID for
// StaleTarget), "other=r|i|n" (level of otherTID for StaleAll). STALE lists
// the stale abstractions in the same notation, in any order.

func parseAbstractions(t *testing.T, s string) []Abstraction {
	t.Helper()
	var out []Abstraction
	for _, f := range strings.Fields(s) {
		kindS, x, ok := strings.Cut(f, ":")
		if !ok || x == "" {
			t.Fatalf("bad abstraction %q", f)
		}
		tid, ds := testTID, "tank/ds"
		if x, ok = strings.CutSuffix(x, "!"); ok {
			tid = otherTID
		}
		if x, ok = strings.CutSuffix(x, "~"); ok {
			ds = "tank/other"
		}
		a := Abstraction{Target: tid, GUID: testGUID(x), CreateTXG: uint64(x[0]) * 10}
		switch kindS {
		case "C":
			a.Kind, a.Name = Cursor, ds+"#"+CursorName(tid, a.GUID)
		case "T":
			a.Kind, a.Name = Tentative, ds+"#"+TentativeName(tid, a.GUID)
		case "S":
			a.Kind, a.Name, a.Tag = StepHold, ds+"@"+x, StepHoldTag(tid)
		case "L":
			a.Kind, a.Name, a.Tag = LastReceivedHold, ds+"@"+x, LastReceivedHoldTag(tid)
		default:
			t.Fatalf("bad kind in %q", f)
		}
		out = append(out, a)
	}
	return out
}

// renderAbstractions renders abstractions back into the notation, sorted.
func renderAbstractions(t *testing.T, abs []Abstraction) string {
	t.Helper()
	var out []string
	for _, a := range abs {
		var k string
		switch a.Kind {
		case Cursor:
			k = "C"
		case Tentative:
			k = "T"
		case StepHold:
			k = "S"
		case LastReceivedHold:
			k = "L"
		}
		// The snapshot letter is recovered from the createtxg.
		s := k + ":" + string(rune(a.CreateTXG/10))
		if a.Dataset() != "tank/ds" {
			s += "~"
		}
		if a.Target == otherTID {
			s += "!"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func sortedFields(s string) string {
	f := strings.Fields(s)
	slices.Sort(f)
	return strings.Join(f, " ")
}

type reconcileCase struct {
	level, other Protection
	cursor, recv uint64
	inFlight     *InFlight
	abs          []Abstraction
	want         string
}

func parseReconcileCase(t *testing.T, line string) reconcileCase {
	t.Helper()
	left, want, ok := strings.Cut(line, "=>")
	if !ok {
		t.Fatalf("no => in %q", line)
	}
	opts, abs, ok := strings.Cut(left, "|")
	if !ok {
		t.Fatalf("no | in %q", line)
	}
	c := reconcileCase{abs: parseAbstractions(t, abs), want: sortedFields(want)}
	lvl := map[string]Protection{"r": ProtectionResumability, "i": ProtectionIncremental, "n": ProtectionNothing}
	guid := func(x string) uint64 {
		if x == "-" || x == "" {
			return 0
		}
		return testGUID(x)
	}
	for _, f := range strings.Fields(opts) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "lvl", "other":
			p, ok := lvl[v]
			if !ok {
				t.Fatalf("bad level %q", f)
			}
			if k == "lvl" {
				c.level = p
			} else {
				c.other = p
			}
		case "cursor":
			c.cursor = guid(v)
		case "recv":
			c.recv = guid(v)
		case "inflight":
			from, to, ok := strings.Cut(v, ">")
			if !ok {
				t.Fatalf("bad inflight %q", f)
			}
			c.inFlight = &InFlight{FromGUID: guid(from), ToGUID: guid(to)}
		default:
			t.Fatalf("bad option %q", f)
		}
	}
	return c
}

func TestStale(t *testing.T) {
	for _, line := range []string{
		// cursors: exactly one stays, the new one before the old goes
		"cursor=b | C:a C:b => C:a",
		"cursor=b | C:b => ",
		"cursor=c | C:a C:b => ",            // the new cursor is not there yet
		"cursor=- | C:a C:c C:b => C:a C:b", // unknown: the newest stays
		"cursor=b | C:a! C:b C:c! => ",      // other targets are never touched
		"cursor=b | C:a~ C:b => ",           // nor other datasets
		"cursor=b | L:a L:b => ",            // last-received holds are the target's business
		// step holds
		"cursor=b | S:a S:b C:b => S:a S:b", // no step in flight
		"cursor=a inflight=a>b | C:a S:a S:b S:c => S:c",
		"cursor=- inflight=->b | S:b S:a => S:a", // interrupted initial full send
		"cursor=b inflight=a>b | S:b S:b! => ",   // other target's hold on the same snapshot
		"cursor=b | S:b! => ",
		// tentative cursors
		"lvl=i cursor=b | C:b T:a T:b => T:a T:b", // the cursor is at or after them
		"lvl=i cursor=b inflight=b>c | C:b T:b T:c => T:b",
		"lvl=i cursor=b | C:b T:c => T:c", // left over from an aborted step
		"lvl=i cursor=c | C:b T:c => ",    // cursor not moved yet: the tentative is the base
		"lvl=i cursor=c | C:b C:c T:c => C:b T:c",
		"lvl=i cursor=- | T:a => T:a",
		// protection levels
		"lvl=i cursor=a inflight=a>b | C:a S:a S:b => S:a S:b",
		"lvl=n cursor=b inflight=b>c | C:b T:c S:b S:c C:a! => C:b T:c S:b S:c",
		"lvl=r cursor=a inflight=a>b | C:a T:b S:a S:b => ",
	} {
		t.Run(line, func(t *testing.T) {
			c := parseReconcileCase(t, line)
			got := Stale(testTID, c.level, "tank/ds", c.abs, c.cursor, c.inFlight)
			if r := renderAbstractions(t, got); r != c.want {
				t.Errorf("got %q, want %q", r, c.want)
			}
		})
	}
}

func TestStaleTarget(t *testing.T) {
	for _, line := range []string{
		"recv=b | L:a L:b => L:a",
		"recv=b | L:b => ",
		"recv=c | L:a L:b => ", // the new hold is not there yet
		"recv=- | L:c L:a L:b => L:a L:b",
		"lvl=n recv=b | L:b => L:b",
		"lvl=i recv=b | L:a L:b L:a! L:a~ => L:a",
		"recv=b | C:a S:a T:a L:b => ", // source kinds are ignored
	} {
		t.Run(line, func(t *testing.T) {
			c := parseReconcileCase(t, line)
			got := StaleTarget(testTID, c.level, "tank/ds", c.abs, c.recv)
			if r := renderAbstractions(t, got); r != c.want {
				t.Errorf("got %q, want %q", r, c.want)
			}
		})
	}
}

func TestStaleAll(t *testing.T) {
	for _, line := range []string{
		// a step hold on the newest cursor's own snapshot stays: it may be
		// the from of a step in flight
		"| C:a C:b T:a T:c S:a S:b S:c L:x L:y => C:a T:a S:a L:x",
		"| S:a S:b => ", // no cursor: an interrupted initial step keeps its holds
		"| C:a C:b C:a! C:c! => C:a C:a!",
		"| C:a C:b~ C:c => C:a", // per dataset
		"| L:x L:y L:x! L:z~ => L:x",
		"other=n | C:a C:b C:c! S:c! L:x! => C:a C:c! S:c! L:x!",
		"other=i | C:b! S:c! T:c! => S:c!",
	} {
		t.Run(line, func(t *testing.T) {
			c := parseReconcileCase(t, line)
			got := StaleAll(c.abs, map[TargetID]Protection{testTID: c.level, otherTID: c.other})
			if r := renderAbstractions(t, got); r != c.want {
				t.Errorf("got %q, want %q", r, c.want)
			}
			if !slices.IsSortedFunc(got, compareAbstractions) {
				t.Errorf("result not sorted: %v", got)
			}
		})
	}
	// A target id missing from levels is treated as resumability.
	abs := parseAbstractions(t, "C:a! C:b! S:c!")
	if r := renderAbstractions(t, StaleAll(abs, nil)); r != "C:a!" {
		t.Errorf("unknown level: got %q", r)
	}
}

func TestListAbstractions(t *testing.T) {
	g := testGUID
	entries := []zfs.Entry{
		{Name: "tank/ds", Type: zfs.Filesystem, GUID: 1},
		{Name: "tank/ds@a", Type: zfs.Snapshot, GUID: g("a"), CreateTXG: 10, UserRefs: 2},
		{Name: "tank/ds@b", Type: zfs.Snapshot, GUID: g("b"), CreateTXG: 20, UserRefs: 1},
		{Name: "tank/ds#" + CursorName(testTID, g("a")), Type: zfs.Bookmark, GUID: g("a"), CreateTXG: 10},
		{Name: "tank/ds#" + TentativeName(testTID, g("b")), Type: zfs.Bookmark, GUID: g("b"), CreateTXG: 20},
		{Name: "tank/ds#" + CursorName(otherTID, g("b")), Type: zfs.Bookmark, GUID: g("b"), CreateTXG: 20},
		// copied from another dataset or renamed: the name's GUID is not its guid
		{Name: "tank/ds#" + CursorName(testTID, g("b")), Type: zfs.Bookmark, GUID: g("a"), CreateTXG: 10},
		{Name: "tank/ds#zsync_cursor_Tbogus", Type: zfs.Bookmark, GUID: g("a"), CreateTXG: 10},
		{Name: "tank/ds#zsync_20261122T050000Z", Type: zfs.Bookmark, GUID: g("a"), CreateTXG: 10}, // a user's bookmark
		{Name: "tank/ds#zrepl_CURSOR_G_0000000000000001_J_job", Type: zfs.Bookmark, GUID: 5},
		{Name: "tank/ds@zsync_cursor_T0123456789abcdef_G0000000000000001", Type: zfs.Snapshot, GUID: 9, CreateTXG: 30},
	}
	holds := map[string][]string{
		"tank/ds@b":   {StepHoldTag(testTID), "zsync_step_Tnope", "keep"},
		"tank/ds@a":   {LastReceivedHoldTag(testTID), StepHoldTag(otherTID)},
		"tank/gone@x": {StepHoldTag(testTID)},
	}
	found, foreign := ListAbstractions(entries, holds)

	want := []Abstraction{
		{Kind: StepHold, Name: "tank/gone@x", Tag: StepHoldTag(testTID), Target: testTID},
		{Kind: Cursor, Name: "tank/ds#" + CursorName(testTID, g("a")), Target: testTID, GUID: g("a"), CreateTXG: 10},
		{Kind: Cursor, Name: "tank/ds#" + CursorName(otherTID, g("b")), Target: otherTID, GUID: g("b"), CreateTXG: 20},
		{Kind: Tentative, Name: "tank/ds#" + TentativeName(testTID, g("b")), Target: testTID, GUID: g("b"), CreateTXG: 20},
		{Kind: StepHold, Name: "tank/ds@b", Tag: StepHoldTag(testTID), Target: testTID, GUID: g("b"), CreateTXG: 20},
		{Kind: StepHold, Name: "tank/ds@a", Tag: StepHoldTag(otherTID), Target: otherTID, GUID: g("a"), CreateTXG: 10},
		{Kind: LastReceivedHold, Name: "tank/ds@a", Tag: LastReceivedHoldTag(testTID), Target: testTID, GUID: g("a"), CreateTXG: 10},
	}
	slices.SortFunc(want, compareAbstractions)
	if !slices.Equal(found, want) {
		t.Errorf("found:\n%v\nwant:\n%v", found, want)
	}
	wantForeign := []string{
		"tank/ds#" + CursorName(testTID, g("b")),
		"tank/ds#zsync_cursor_Tbogus",
		"tank/ds@b (hold zsync_step_Tnope)",
	}
	slices.Sort(wantForeign)
	if !slices.Equal(foreign, wantForeign) {
		t.Errorf("foreign:\n%q\nwant:\n%q", foreign, wantForeign)
	}

	// The tinkered cursor is not trusted: with cursorGUID b, there is no
	// cursor at b, so the cursor at a is kept.
	if st := Stale(testTID, ProtectionResumability, "tank/ds", found, g("b"), nil); slices.ContainsFunc(st, func(a Abstraction) bool { return a.Kind == Cursor }) {
		t.Errorf("a cursor was judged stale although the new one is tinkered: %v", st)
	}
}

func TestProtection(t *testing.T) {
	for _, s := range []string{"resumability", "incremental", "nothing"} {
		p, err := ParseProtection(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseProtection(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseProtection("guarantee_resumability"); err == nil {
		t.Error("unknown level accepted")
	}
	for _, c := range []struct {
		p    Protection
		want string
	}{
		{ProtectionResumability, "cursor tentative-cursor step-hold last-received-hold"},
		{ProtectionIncremental, "cursor tentative-cursor last-received-hold"},
		{ProtectionNothing, ""},
	} {
		var got []string
		for _, k := range []AbstractionKind{Cursor, Tentative, StepHold, LastReceivedHold} {
			if c.p.Allows(k) {
				got = append(got, k.String())
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%v allows %q, want %q", c.p, got, c.want)
		}
	}
}
