package sync

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/zsync-dev/zsync/zfs"
)

const testTID TargetID = "0123456789abcdef"

func TestNewTargetID(t *testing.T) {
	tid, err := NewTargetID(bytes.NewReader([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	if tid != "deadbeef000102ff" {
		t.Errorf("got %q", tid)
	}
	if _, err := ParseTargetID(string(tid)); err != nil {
		t.Errorf("NewTargetID result does not parse: %v", err)
	}
	if _, err := NewTargetID(bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Error("short random source: no error")
	}
	if _, err := NewTargetID(iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Error("failing random source: no error")
	}
	if _, err := NewTargetID(nil); !errors.Is(err, ErrInvalidTargetID) {
		t.Errorf("nil random source: got %v", err)
	}
}

func TestParseTargetID(t *testing.T) {
	for _, s := range []string{"0123456789abcdef", "ffffffffffffffff", "0000000000000000"} {
		if tid, err := ParseTargetID(s); err != nil || string(tid) != s || !tid.Valid() {
			t.Errorf("ParseTargetID(%q) = %q, %v", s, tid, err)
		}
	}
	for _, s := range []string{"", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "0123456789abcdeg", "0123456789abcde ", "../../../../etc/"} {
		if _, err := ParseTargetID(s); !errors.Is(err, ErrInvalidTargetID) {
			t.Errorf("ParseTargetID(%q): got %v, want ErrInvalidTargetID", s, err)
		}
		if TargetID(s).Valid() {
			t.Errorf("TargetID(%q).Valid() = true", s)
		}
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{CursorName(testTID, 0xdeadbeef), "zsync_cursor_T0123456789abcdef_G00000000deadbeef"},
		{TentativeName(testTID, 0xffffffffffffffff), "zsync_tentative_T0123456789abcdef_Gffffffffffffffff"},
		{StepHoldTag(testTID), "zsync_step_T0123456789abcdef"},
		{LastReceivedHoldTag(testTID), "zsync_last_T0123456789abcdef"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestNamesAreValidZFSNames checks the names against the zfs package's
// OpenZFS rules, with a long pool/dataset path.
func TestNamesAreValidZFSNames(t *testing.T) {
	ds := "tank/" + strings.Repeat("d", 150)
	for _, guid := range []uint64{0, 1, 0xdeadbeef, 1 << 63, ^uint64(0)} {
		for _, n := range []string{CursorName(testTID, guid), TentativeName(testTID, guid)} {
			if err := zfs.ValidateBookmark(ds + "#" + n); err != nil {
				t.Errorf("%s: %v", n, err)
			}
			for i := 0; i < len(n); i++ {
				c := n[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
					t.Errorf("%s: unexpected character %q", n, c)
				}
			}
		}
	}
	for _, tag := range []string{StepHoldTag(testTID), LastReceivedHoldTag(testTID)} {
		if err := zfs.ValidateHoldTag(tag); err != nil {
			t.Errorf("%s: %v", tag, err)
		}
	}
}

func TestParseBookmark(t *testing.T) {
	for _, c := range []struct {
		short string
		kind  AbstractionKind
		tid   TargetID
		guid  uint64
		ok    bool
	}{
		{CursorName(testTID, 42), Cursor, testTID, 42, true},
		{TentativeName(testTID, ^uint64(0)), Tentative, testTID, ^uint64(0), true},
		{"zsync_cursor_T0123456789abcdef_G000000000000002a", Cursor, testTID, 42, true},
		{"zsync_cursor_T0123456789abcdef_G000000000000002A", 0, "", 0, false}, // uppercase
		{"zsync_cursor_T0123456789abcdef_G2a", 0, "", 0, false},               // short guid
		{"zsync_cursor_T0123456789abcdef_G000000000000002a_x", 0, "", 0, false},
		{"zsync_cursor_T0123456789abcde_G000000000000002a", 0, "", 0, false},  // short tid
		{"zsync_cursor_T0123456789abcdef-G000000000000002a", 0, "", 0, false}, // wrong infix
		{"zsync_cursor_0123456789abcdef_G000000000000002a", 0, "", 0, false},  // no T
		{"zsync_step_T0123456789abcdef", 0, "", 0, false},                     // a hold tag
		{"zrepl_CURSOR_G_000000000000002a_J_job", 0, "", 0, false},            // zrepl's
		{"zsync_20261122T050000Z", 0, "", 0, false},                           // a snapshot name
		{"", 0, "", 0, false},
	} {
		kind, tid, guid, ok := ParseBookmark(c.short)
		if kind != c.kind || tid != c.tid || guid != c.guid || ok != c.ok {
			t.Errorf("ParseBookmark(%q) = %v, %q, %d, %v; want %v, %q, %d, %v", c.short, kind, tid, guid, ok, c.kind, c.tid, c.guid, c.ok)
		}
	}
}

func TestParseHoldTag(t *testing.T) {
	for _, c := range []struct {
		tag      string
		kind     AbstractionKind
		tid      TargetID
		root, ok bool
	}{
		{StepHoldTag(testTID), StepHold, testTID, false, true},
		{LastReceivedHoldTag(testTID), LastReceivedHold, testTID, false, true},
		{RootStepHoldTag(testTID), StepHold, testTID, true, true},
		{RootLastReceivedHoldTag(testTID), LastReceivedHold, testTID, true, true},
		{"zsync_step_T0123456789abcdef0", 0, "", false, false},
		{"zsync_step_R0123456789abcdef0", 0, "", false, false},
		{"zsync_step_T0123456789ABCDEF", 0, "", false, false},
		{"zsync_last_T", 0, "", false, false},
		{"zsync_last_R", 0, "", false, false},
		{"zsync_last_0123456789abcdef", 0, "", false, false},
		{"zsync_last_X0123456789abcdef", 0, "", false, false},
		{"zrepl_STEP_J_job", 0, "", false, false},
		{"keep", 0, "", false, false},
		{CursorName(testTID, 1), 0, "", false, false},
	} {
		kind, tid, root, ok := ParseHoldTag(c.tag)
		if kind != c.kind || tid != c.tid || root != c.root || ok != c.ok {
			t.Errorf("ParseHoldTag(%q) = %v, %q, %v, %v; want %v, %q, %v, %v", c.tag, kind, tid, root, ok, c.kind, c.tid, c.root, c.ok)
		}
	}
}

// FuzzParseBookmark checks that parsing never panics and that whatever
// parses is rebuilt to the same name.
func FuzzParseBookmark(f *testing.F) {
	f.Add(CursorName(testTID, 7))
	f.Add(TentativeName(testTID, 7))
	f.Add("zsync_cursor_T")
	f.Fuzz(func(t *testing.T, s string) {
		kind, tid, guid, ok := ParseBookmark(s)
		if !ok {
			return
		}
		var again string
		switch kind {
		case Cursor:
			again = CursorName(tid, guid)
		case Tentative:
			again = TentativeName(tid, guid)
		default:
			t.Fatalf("ok with kind %v", kind)
		}
		if again != s {
			t.Errorf("%q parsed and rebuilt as %q", s, again)
		}
	})
}

func TestSplitClient(t *testing.T) {
	tid := TargetID("0123456789abcdef")
	for _, c := range []struct {
		in, base, client string
		ok               bool
	}{
		{CursorName(tid, 0xa1) + "_Claptop", CursorName(tid, 0xa1), "laptop", true},
		{TentativeName(tid, 1) + "_Ca_Cb", TentativeName(tid, 1), "a_Cb", true},
		{StepHoldTag(tid) + "_Cdesk.example:1", StepHoldTag(tid), "desk.example:1", true},
		{LastReceivedHoldTag(tid) + "_Cx", LastReceivedHoldTag(tid), "x", true},
		{CursorName(tid, 0xa1), "", "", false},
		{CursorName(tid, 0xa1) + "_C", "", "", false},
		{CursorName(tid, 0xa1) + "_Xlaptop", "", "", false},
		{StepHoldTag(tid), "", "", false},
		{"admin_Claptop", "", "", false},
	} {
		base, client, ok := SplitClient(c.in)
		if base != c.base || client != c.client || ok != c.ok {
			t.Errorf("SplitClient(%q) = %q, %q, %v; want %q, %q, %v", c.in, base, client, ok, c.base, c.client, c.ok)
		}
	}
	// the far side's own listing: a client's names are neither abstractions
	// nor foreign
	entries := []zfs.Entry{
		{Name: "tank/a@s", Type: zfs.Snapshot, GUID: 0xa1, CreateTXG: 5, UserRefs: 1},
		{Name: "tank/a#" + CursorName(tid, 0xa1) + "_Claptop", Type: zfs.Bookmark, GUID: 0xa1, CreateTXG: 5},
	}
	found, foreign := ListAbstractions(entries, map[string][]string{"tank/a@s": {StepHoldTag(tid) + "_Claptop"}})
	if len(found) != 0 || len(foreign) != 0 {
		t.Errorf("found %v, foreign %v; want neither", found, foreign)
	}
}
