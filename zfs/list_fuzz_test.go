package zfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzUserProps are the user properties a FuzzParseList input asks for:
// the first nUser%4 of them.
var fuzzUserProps = []string{"zsync:target-id", "zsync:a", "com.example:b"}

// The names FuzzParseList asks zfs holds and zfs get about.
var (
	fuzzHoldsSnaps = []string{"tank/home@manual", "tank2/my data@snap 1"}
	fuzzGetNames   = []string{"tank/recv", "tank/home@manual", "tank/home#b"}
	fuzzGetProps   = []string{"receive_resume_token", "zsync:target-id"}
)

// listSeeds returns the recorded stdout of every `zfs list` in
// testdata/*.script, and hand-made holds/get outputs and hostile lines.
func listSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	scripts, err := filepath.Glob(filepath.Join("testdata", "*.script"))
	if err != nil {
		tb.Fatal(err)
	}
	var seeds [][]byte
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			tb.Fatal(err)
		}
		var out []byte
		inList := false
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "$ "):
				if inList && len(out) > 0 {
					seeds = append(seeds, out)
				}
				inList, out = strings.HasPrefix(line, "$ zfs list "), nil
			case inList && strings.HasPrefix(line, "> "):
				out = append(out, line[2:]+"\n"...)
			}
		}
		if inList && len(out) > 0 {
			seeds = append(seeds, out)
		}
	}
	const row = "\tfilesystem\t1\t1\t1700000000\t-\t-\toff\t-\t-\t-\t-\n"
	for _, s := range []string{
		// zfs holds -H
		"tank/home@manual\tzsync_step_J_t-7f3a\tTue Nov 14 22:15 2023\ntank/home@manual\tkeep\tTue Nov 14 22:16 2023\n",
		"tank2/my data@snap 1\tx\tWed Nov 15 10:00 2023\n",
		"tank/other@s\tx\tWed Nov 15 10:00 2023\n",
		"-o\tx\tWed\n",
		"tank/home@manual\t\tWed\n",
		"tank/home@manual\tx\n",
		// zfs get -H -p -o name,property,value,source
		"tank/recv\treceive_resume_token\t1-10f4b6d8a2-e8-789c63\t-\ntank/recv\tzsync:target-id\tt-7f3a\tlocal\n",
		"tank/home@manual\tzsync:target-id\ta\tb\tinherited from tank/home\ntank/home#b\treceive_resume_token\t-\t-\n",
		"tank/elsewhere\tzsync:target-id\tx\tlocal\n",
		"tank/recv\tzsync:target-id\tx\n",
		// zfs list lines with wrong names, types or numbers
		"-o" + row,
		"tank/a@s" + row,
		"tank/a/../b" + row,
		"tank/x\x00" + row,
		"" + row,
		"tank\tsnapshot\t1\t1\t1\t0\t-\toff\t-\t-\t-\n",
		"tank/a@s\tbookmark\t1\t1\t1\t-\t-\t-\t-\t-\t-\n",
		"tank\tpool\t1\t1\t1\t-\t-\toff\t-\t-\t-\n",
		"tank\tfilesystem\t-1\t1\t1\t-\t-\toff\t-\t-\t-\n",
		"tank\tfilesystem\t1\t1\t99999999999999999999\t-\t-\toff\t-\t-\t-\n",
		"tank\tfilesystem\t1\t1\t1\t-\t-\toff\t-\t-\t-\t\n",
		"tank\tfilesystem\t1\t1\t1\t-\t-\toff\t-\t-\n",
		"\n\n\n",
		"tank\tfilesystem\t1\t1\t1\t-\t-\toff\t-\t-\t-\r\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzParseList fuzzes the parsers of -H output with the same bytes:
// parseList (`zfs list -H -p`, behind CLI.List, with 0 to 3 user
// properties), and CLI.Holds and CLI.Get on a fake zfs that prints them.
// Properties:
//   - nothing panics;
//   - a line with the wrong number of fields is an error, never an entry;
//   - without error, List returns one entry per line, of a known type, with
//     a name valid for that type, only the user properties asked for, and
//     no "-" placeholders;
//   - Holds and Get return only the names asked about (every one of them a
//     key), hold tags non-empty and property names valid.
func FuzzParseList(f *testing.F) {
	for i, s := range listSeeds(f) {
		f.Add(s, uint8(i%4))
	}
	f.Fuzz(func(t *testing.T, out []byte, nUser uint8) {
		props := fuzzUserProps[:int(nUser)%4]
		checkParseList(t, out, props)
		checkHolds(t, out)
		checkGet(t, out)
	})
}

func checkParseList(t *testing.T, out []byte, props []string) {
	entries, err := parseList(out, props)
	lines := splitLines(out)
	if err != nil {
		if entries != nil {
			t.Errorf("parseList failed (%v) and returned %d entries", err, len(entries))
		}
		return
	}
	if len(entries) != len(lines) {
		t.Fatalf("parseList: %d entries from %d lines", len(entries), len(lines))
	}
	want := len(listProps) + len(props)
	for i, e := range entries {
		if n := len(strings.Split(lines[i], "\t")); n != want {
			t.Errorf("line %q with %d fields (want %d) accepted as %+v", lines[i], n, want, e)
		}
		var nameErr error
		switch e.Type {
		case Filesystem, Volume:
			nameErr = ValidateDataset(e.Name)
		case Snapshot:
			nameErr = ValidateSnapshot(e.Name)
		case Bookmark:
			nameErr = ValidateBookmark(e.Name)
		default:
			t.Errorf("entry of unknown type %q: %+v", e.Type, e)
		}
		if nameErr != nil {
			t.Errorf("%s entry with invalid name: %v", e.Type, nameErr)
		}
		if !strings.HasPrefix(e.Name, e.Dataset()) || e.IsDataset() != (e.Short() == "") {
			t.Errorf("entry %q: Dataset %q, Short %q, type %s", e.Name, e.Dataset(), e.Short(), e.Type)
		}
		for _, v := range []string{e.ResumeToken, e.Encryption, e.EncryptionRoot, e.KeyStatus, e.Origin} {
			if v == "-" {
				t.Errorf("entry %+v keeps a \"-\" placeholder", e)
			}
		}
		if !e.Creation.IsZero() && e.Creation.Location().String() != "UTC" {
			t.Errorf("creation %v not UTC", e.Creation)
		}
		for k, v := range e.User {
			if !contains(props, k) || v == "-" {
				t.Errorf("entry %q: user property %q=%q not asked for or unset", e.Name, k, v)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fakeOutput returns a CLI whose zfs prints out for any command.
func fakeOutput(out []byte) *CLI {
	fr := NewFakeRunner()
	fr.Fallback = func(Cmd) (FakeResponse, bool) { return FakeResponse{Stdout: string(out)}, true }
	return New(WithRunner(fr))
}

func checkHolds(t *testing.T, out []byte) {
	holds, err := fakeOutput(out).Holds(context.Background(), fuzzHoldsSnaps)
	if err != nil {
		if holds != nil {
			t.Errorf("Holds failed (%v) and returned %v", err, holds)
		}
		return
	}
	for _, line := range splitLines(out) {
		if n := len(strings.Split(line, "\t")); n != 3 {
			t.Errorf("holds line %q with %d fields accepted", line, n)
		}
	}
	for _, s := range fuzzHoldsSnaps {
		if _, ok := holds[s]; !ok {
			t.Errorf("Holds: %q asked about but not a key", s)
		}
	}
	for s, tags := range holds {
		if !contains(fuzzHoldsSnaps, s) {
			t.Errorf("Holds returned %q, not asked about", s)
		}
		for _, tag := range tags {
			if tag == "" || strings.ContainsAny(tag, "\t\n") {
				t.Errorf("Holds: snapshot %q has tag %q", s, tag)
			}
		}
	}
}

func checkGet(t *testing.T, out []byte) {
	res, err := fakeOutput(out).Get(context.Background(), fuzzGetNames, fuzzGetProps)
	if err != nil {
		if res != nil {
			t.Errorf("Get failed (%v) and returned %v", err, res)
		}
		return
	}
	for _, line := range splitLines(out) {
		if n := len(strings.Split(line, "\t")); n < 4 {
			t.Errorf("get line %q with %d fields accepted", line, n)
		}
	}
	for _, n := range fuzzGetNames {
		if _, ok := res[n]; !ok {
			t.Errorf("Get: %q asked about but not a key", n)
		}
	}
	for n, m := range res {
		if !contains(fuzzGetNames, n) {
			t.Errorf("Get returned %q, not asked about", n)
		}
		for p, v := range m {
			if err := validatePropName(p); err != nil {
				t.Errorf("Get %q: %v (value %q)", n, err, v)
			}
			if strings.Contains(v, "\n") {
				t.Errorf("Get %q: value %q spans lines", n, v)
			}
		}
	}
}
