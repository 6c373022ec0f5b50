package zfs

import (
	"errors"
	"strings"
	"testing"
)

// fuzzNameSeeds are hostile and ordinary names; every validator sees each.
// They are also in testdata/fuzz/FuzzValidateNames, so plain `go test` runs
// them.
var fuzzNameSeeds = []string{
	"tank", "tank/home", "tank/my data", "tank/a@s", "tank/a#b", "tank/my data@snap 1",
	"tank/home#zsync_CURSOR_G_804f8b1b1a4e7cc2_J_t-7f3a", "zsync_step_J_t-1", "zsync:target-id",
	"userquota@alice",
	"-o", "-", "tank/-o", "tank@-o", "a/../b", "tank/./b", "tank/..", "pool/a b", "pool/x\n",
	"pool/\x00", "pool@@s", "pool@s@t", "pool#b@c", "pool@s#b", "pool/", "/pool", "pool//a", "pool@", "@s", "#b",
	"tank/%recv", "%recv", "tank/a@%s", "tank/a\tb", "tank/a\x7f", "mirror", "raidz/a", "log@s", "c0t0d0",
	"1tank", "tank/\u00e9t\u00e9", "tank/\xff", "a,b", "a=b", " tank", "tank/a ",
	strings.Repeat("a", 239), strings.Repeat("a", 240),
	"tank/" + strings.Repeat("x", 250), "tank/" + strings.Repeat("x", 251),
	"tank@" + strings.Repeat("s", 250), "tank@" + strings.Repeat("s", 251),
	strings.Repeat("x", 255), strings.Repeat("x", 256), strings.Repeat("x", 300),
	"tank/" + strings.Repeat("y", 295),
}

// nameCheck is one validator with the error it must wrap.
type nameCheck struct {
	name     string
	validate func(string) error
	sentinel error
}

var nameChecks = []nameCheck{
	{"ValidateComponent", ValidateComponent, ErrInvalidName},
	{"ValidatePool", ValidatePool, ErrInvalidName},
	{"ValidateDataset", ValidateDataset, ErrInvalidName},
	{"ValidateSnapshot", ValidateSnapshot, ErrInvalidName},
	{"ValidateBookmark", ValidateBookmark, ErrInvalidName},
	{"ValidateVersion", ValidateVersion, ErrInvalidName},
	{"validateAnyName", validateAnyName, ErrInvalidName},
	{"ValidateHoldTag", ValidateHoldTag, ErrInvalidName},
	{"validatePropName", validatePropName, ErrInvalidProperty},
}

// FuzzValidateNames checks the name validators against the properties
// their callers rely on, not just the absence of panics:
//   - a rejection wraps the validator's sentinel (and a *NameError names
//     the input itself, not a part of it);
//   - nothing accepted is empty, begins with '-', or contains NUL, newline or
//     any other control character;
//   - accepted dataset, snapshot and bookmark names are within the length
//     limits, use only the OpenZFS characters (no '%': zfs reserves it for
//     its temporary "%recv" clones) and split and rejoin to themselves;
//   - a snapshot has exactly one '@' and no '#', a bookmark the reverse, a
//     dataset neither, and the validators agree with each other.
func FuzzValidateNames(f *testing.F) {
	for _, s := range fuzzNameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := map[string]bool{}
		for _, c := range nameChecks {
			err := c.validate(s)
			ok[c.name] = err == nil
			if err != nil {
				if !errors.Is(err, c.sentinel) {
					t.Errorf("%s(%q) = %v, does not wrap %v", c.name, s, err, c.sentinel)
				}
				var ne *NameError
				if errors.As(err, &ne) && ne.Name != s {
					t.Errorf("%s(%q): error names %q: %v", c.name, s, ne.Name, err)
				}
				continue
			}
			checkAcceptedAny(t, c.name, s)
		}
		for _, c := range nameChecks[:7] { // the zfs object names
			if ok[c.name] {
				checkAcceptedObjectName(t, c.name, s)
			}
		}
		checkComponent(t, s, ok["ValidateComponent"])
		checkPool(t, s, ok["ValidatePool"])
		checkDataset(t, s, ok["ValidateDataset"])
		checkVersion(t, s, '@', ok["ValidateSnapshot"])
		checkVersion(t, s, '#', ok["ValidateBookmark"])

		if want := ok["ValidateSnapshot"] || ok["ValidateBookmark"]; ok["ValidateVersion"] != want {
			t.Errorf("ValidateVersion(%q) ok=%v, want %v (snapshot or bookmark)", s, ok["ValidateVersion"], want)
		}
		if want := ok["ValidateDataset"] || ok["ValidateVersion"]; ok["validateAnyName"] != want {
			t.Errorf("validateAnyName(%q) ok=%v, want %v", s, ok["validateAnyName"], want)
		}
		if n := btoi(ok["ValidateDataset"]) + btoi(ok["ValidateSnapshot"]) + btoi(ok["ValidateBookmark"]); n > 1 {
			t.Errorf("%q accepted as %d kinds of name: %v", s, n, ok)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkAcceptedAny holds for every validator, hold tags and property
// names included: the name can be passed as one argv element (a component
// alone never is, so it may begin with '-').
func checkAcceptedAny(t *testing.T, fn, s string) {
	t.Helper()
	switch {
	case s == "":
		t.Errorf("%s accepted the empty string", fn)
	case s[0] == '-' && fn != "ValidateComponent": // "pool/-x" is fine
		t.Errorf("%s(%q) accepted a name beginning with '-' (taken as an option)", fn, s)
	case len(s) > 256:
		t.Errorf("%s(%q) accepted %d bytes", fn, s, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			t.Errorf("%s(%q) accepted control character %q", fn, s, s[i])
		}
	}
}

// checkAcceptedObjectName holds for dataset, snapshot, bookmark, pool and
// component names.
func checkAcceptedObjectName(t *testing.T, fn, s string) {
	t.Helper()
	if len(s) > MaxNameLen {
		t.Errorf("%s accepted %d bytes (max %d)", fn, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !validChar(c) && c != '/' && c != '@' && c != '#' {
			t.Errorf("%s(%q) accepted character %q", fn, s, c)
		}
	}
	if strings.Contains(s, "%") {
		t.Errorf("%s(%q) accepted '%%' (reserved for zfs's temporary clones)", fn, s)
	}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '@' || r == '#' }) {
		if part == "." || part == ".." {
			t.Errorf("%s(%q) accepted component %q", fn, s, part)
		}
	}
	if c := s[0]; !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && fn != "ValidateComponent" {
		t.Errorf("%s(%q): a pool name begins with a letter", fn, s)
	}
}

func checkComponent(t *testing.T, s string, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	if strings.ContainsAny(s, "/@#") {
		t.Errorf("ValidateComponent(%q) accepted a separator", s)
	}
}

func checkPool(t *testing.T, s string, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	if len(s) > MaxPoolNameLen {
		t.Errorf("ValidatePool accepted %d bytes", len(s))
	}
	if reservedPoolNames[s] {
		t.Errorf("ValidatePool accepted reserved %q", s)
	}
	if ValidateComponent(s) != nil || ValidateDataset(s) != nil {
		t.Errorf("pool %q is not a valid component and dataset", s)
	}
	if Pool(s) != s {
		t.Errorf("Pool(%q) = %q", s, Pool(s))
	}
}

func checkDataset(t *testing.T, s string, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	if strings.ContainsAny(s, "@#") {
		t.Errorf("ValidateDataset(%q) accepted '@' or '#'", s)
	}
	if ds, sep, short := SplitName(s); ds != s || sep != 0 || short != "" {
		t.Errorf("SplitName(%q) = %q, %q, %q", s, ds, sep, short)
	}
	parts := strings.Split(s, "/")
	if ValidatePool(parts[0]) != nil || Pool(s) != parts[0] {
		t.Errorf("dataset %q: pool %q (Pool: %q) not valid", s, parts[0], Pool(s))
	}
	for _, p := range parts[1:] {
		if err := ValidateComponent(p); err != nil {
			t.Errorf("dataset %q accepted with component %v", s, err)
		}
	}
	if !IsDescendant(s, Pool(s)) {
		t.Errorf("%q is not a descendant of its pool", s)
	}
	// The names zsync derives from a dataset are valid when short enough.
	if len(s)+2 <= MaxNameLen {
		if err := ValidateSnapshot(s + "@x"); err != nil {
			t.Errorf("dataset %q ok, but %v", s, err)
		}
		if err := ValidateBookmark(s + "#x"); err != nil {
			t.Errorf("dataset %q ok, but %v", s, err)
		}
		if err := ValidateDataset(s + "/x"); err != nil {
			t.Errorf("dataset %q ok, but %v", s, err)
		}
	}
}

func checkVersion(t *testing.T, s string, sep byte, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	other := byte('#')
	if sep == '#' {
		other = '@'
	}
	if strings.Count(s, string(sep)) != 1 || strings.IndexByte(s, other) >= 0 {
		t.Errorf("%q accepted with sep %q: want exactly one %q and no %q", s, sep, sep, other)
	}
	ds, gotSep, short := SplitName(s)
	if gotSep != sep || ds+string(gotSep)+short != s {
		t.Errorf("SplitName(%q) = %q, %q, %q: does not round-trip", s, ds, gotSep, short)
	}
	if err := ValidateDataset(ds); err != nil {
		t.Errorf("%q accepted, but its dataset: %v", s, err)
	}
	if err := ValidateComponent(short); err != nil {
		t.Errorf("%q accepted, but its short name: %v", s, err)
	}
	e := Entry{Name: s}
	if e.Dataset() != ds || e.Short() != short {
		t.Errorf("Entry{%q}: Dataset %q, Short %q", s, e.Dataset(), e.Short())
	}
}
