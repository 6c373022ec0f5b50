package zfs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestListTree(t *testing.T) {
	c, _ := newFake(t, "list_tree.script")
	got, err := c.List(context.Background(), []string{"tank", "tank2/my data"}, ListOptions{UserProps: []string{"zsync:target-id"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 13 {
		t.Fatalf("got %d entries, want 13", len(got))
	}
	want := map[string]Entry{
		"tank/home": {Name: "tank/home", Type: Filesystem, GUID: 11958367473406396573, CreateTXG: 15,
			Creation: time.Unix(1700000100, 0).UTC(), Encryption: "off", User: map[string]string{"zsync:target-id": "t-7f3a"}},
		"tank/home@manual": {Name: "tank/home@manual", Type: Snapshot, GUID: 2853826118512411946, CreateTXG: 52,
			Creation: time.Unix(1700000300, 0).UTC(), UserRefs: 2, Encryption: "off", User: map[string]string{"zsync:target-id": "t-7f3a"}},
		"tank/home#zsync_CURSOR_G_804f8b1b1a4e7cc2_J_t-7f3a": {Name: "tank/home#zsync_CURSOR_G_804f8b1b1a4e7cc2_J_t-7f3a", Type: Bookmark,
			GUID: 9245731260386187458, CreateTXG: 40, Creation: time.Unix(1700000200, 0).UTC()},
		"tank/vol": {Name: "tank/vol", Type: Volume, GUID: 17293822569102704640, CreateTXG: 60,
			Creation: time.Unix(1700000400, 0).UTC(), Encryption: "off"},
		"tank/secret@s1": {Name: "tank/secret@s1", Type: Snapshot, GUID: 13512380466092447093, CreateTXG: 71,
			Creation: time.Unix(1700000510, 0).UTC(), UserRefs: 1, Encryption: "aes-256-gcm", EncryptionRoot: "tank/secret", KeyStatus: "available"},
		"tank/clone": {Name: "tank/clone", Type: Filesystem, GUID: 3303640522307880455, CreateTXG: 80,
			Creation: time.Unix(1700000600, 0).UTC(), Encryption: "off", Origin: "tank/home@manual"},
		"tank2/my data@snap 1": {Name: "tank2/my data@snap 1", Type: Snapshot, GUID: 7030437066373004417, CreateTXG: 25,
			Creation: time.Unix(1700001100, 0).UTC(), Encryption: "off"},
		"tank2/my data#book 1": {Name: "tank2/my data#book 1", Type: Bookmark, GUID: 7030437066373004417, CreateTXG: 25,
			Creation: time.Unix(1700001100, 0).UTC()},
	}
	seen := 0
	for _, e := range got {
		if w, ok := want[e.Name]; ok {
			seen++
			if !reflect.DeepEqual(e, w) {
				t.Errorf("entry %q:\n got  %+v\n want %+v", e.Name, e, w)
			}
		}
		if e.Name == "tank/recv" && !strings.HasPrefix(e.ResumeToken, "1-10f4b6d8a2-") {
			t.Errorf("tank/recv resume token = %q", e.ResumeToken)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d expected entries", seen, len(want))
	}
	if got[0].Name != "tank" || got[len(got)-1].Name != "tank2/my data#book 1" {
		t.Errorf("order not preserved: first %q last %q", got[0].Name, got[len(got)-1].Name)
	}
	e := got[3] // tank/home@manual
	if e.Dataset() != "tank/home" || e.Short() != "manual" || e.IsDataset() {
		t.Errorf("helpers on %q: %q %q %v", e.Name, e.Dataset(), e.Short(), e.IsDataset())
	}
}

func TestListRootNotFound(t *testing.T) {
	c, _ := newFake(t, "list_notfound.script")
	_, err := c.List(context.Background(), []string{"tank/a", "tank/nope"}, ListOptions{})
	if !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("err = %v, want ErrDatasetNotFound", err)
	}
	if !strings.Contains(err.Error(), "tank/nope") {
		t.Errorf("error does not name the missing root: %v", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.ExitCode != 1 {
		t.Errorf("no *Error with exit code 1 in %v", err)
	}
}

func TestListRejectsBadFieldCount(t *testing.T) {
	c, _ := newFake(t, "list_badfields.script")
	_, err := c.List(context.Background(), []string{"tank/a"}, ListOptions{Depth: 1, Types: []Type{Snapshot}})
	if err == nil || !strings.Contains(err.Error(), "10 fields, want 11") {
		t.Fatalf("err = %v, want a field count error", err)
	}
}

func TestListArgs(t *testing.T) {
	const props = "name,type,guid,createtxg,creation,userrefs,receive_resume_token,encryption,encryptionroot,keystatus,origin"
	tests := []struct {
		roots []string
		o     ListOptions
		want  string // argv after "zfs", joined by "|"
	}{
		{[]string{"tank"}, ListOptions{}, "list|-H|-p|-r|-t|filesystem,volume,snapshot,bookmark|-o|" + props + "|tank"},
		{[]string{"tank/a", "tank/b c"}, ListOptions{Depth: -1}, "list|-H|-p|-t|filesystem,volume,snapshot,bookmark|-o|" + props + "|tank/a|tank/b c"},
		{[]string{"tank"}, ListOptions{Depth: 2, Types: []Type{Filesystem, Volume}}, "list|-H|-p|-d|2|-t|filesystem,volume|-o|" + props + "|tank"},
		{nil, ListOptions{Types: []Type{Snapshot}, UserProps: []string{"zsync:target-id", "zsync:placeholder"}},
			"list|-H|-p|-r|-t|snapshot|-o|" + props + ",zsync:target-id,zsync:placeholder"},
	}
	for _, tt := range tests {
		args, err := tt.o.args(tt.roots)
		if err != nil {
			t.Errorf("%+v: %v", tt.o, err)
			continue
		}
		if got := strings.Join(args, "|"); got != tt.want {
			t.Errorf("args(%q, %+v):\n got  %s\n want %s", tt.roots, tt.o, got, tt.want)
		}
	}
	for _, bad := range []struct {
		roots []string
		o     ListOptions
	}{
		{[]string{"tank/"}, ListOptions{}},
		{[]string{"tank"}, ListOptions{Depth: -2}},
		{[]string{"tank"}, ListOptions{Types: []Type{"all"}}},
		{[]string{"tank"}, ListOptions{UserProps: []string{"nocolon"}}},
		{[]string{"tank"}, ListOptions{UserProps: []string{"a:b,c"}}},
	} {
		if _, err := bad.o.args(bad.roots); err == nil {
			t.Errorf("args(%q, %+v) accepted", bad.roots, bad.o)
		}
	}
}

// parseList keeps no entry whose name a verb would refuse or that does not
// match its type (found by FuzzParseList).
func TestParseListRejectsInvalidNames(t *testing.T) {
	const row = "\t1\t1\t1700000000\t-\t-\toff\t-\t-\t-\n"
	for _, line := range []string{
		"-o\tfilesystem" + row,
		"\tfilesystem" + row,
		"tank/a/../b\tfilesystem" + row,
		"tank/a@s\tfilesystem" + row,
		"tank/a\tsnapshot" + row,
		"tank/a@s\tbookmark" + row,
		"tank/a#b\tsnapshot" + row,
		"tank/%recv\tvolume" + row,
	} {
		if e, err := parseList([]byte("tank\tfilesystem"+row+line), nil); err == nil || !errors.Is(err, ErrInvalidName) {
			t.Errorf("parseList(%q) = %+v, %v; want an ErrInvalidName error", line, e, err)
		}
	}
}

// ListOptions.SnapshotsChanged adds the native snapshots_changed column
// before the user properties; "-" (never recorded) is 0.
func TestListSnapshotsChanged(t *testing.T) {
	args, err := ListOptions{Types: []Type{Filesystem}, UserProps: []string{"zsync:placeholder"}, SnapshotsChanged: true}.args([]string{"tank"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); !strings.Contains(got, ",origin,snapshots_changed,zsync:placeholder tank") {
		t.Errorf("args %q: want snapshots_changed between the fixed columns and the user properties", got)
	}
	row := "\t1\t2\t1700000000\t0\t-\toff\t-\t-\t-"
	out := []byte("tank" + "\tfilesystem" + row + "\t1764650000\t-\n" + "tank/b\tfilesystem" + row + "\t-\ttank/b\n")
	es, err := parseListWith(out, []string{"zsync:placeholder"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].SnapshotsChanged != 1764650000 || es[1].SnapshotsChanged != 0 || es[1].User["zsync:placeholder"] != "tank/b" || es[0].User != nil {
		t.Errorf("parsed %+v", es)
	}
}

// Many roots are listed in several calls at once, each given a run of them
// in order; the entries come back in the order of one call, and a root that
// does not exist fails the whole listing, named.
func TestListSplitsManyRoots(t *testing.T) {
	var roots []string
	for i := range 20 {
		roots = append(roots, fmt.Sprintf("tank/d%02d", i))
	}
	o := ListOptions{Depth: 1, Types: []Type{Snapshot}}
	for _, missing := range []string{"", "tank/d13"} {
		f := NewFakeRunner()
		f.Fallback = func(c Cmd) (FakeResponse, bool) {
			var out strings.Builder
			for _, a := range c.Argv {
				if !strings.HasPrefix(a, "tank/") {
					continue
				}
				if a == missing {
					return FakeResponse{Stdout: out.String(), Stderr: "cannot open '" + a + "': dataset does not exist\n", ExitCode: 1}, true
				}
				fmt.Fprintf(&out, "%s@s\tsnapshot\t1\t2\t3\t0\t-\toff\t-\t-\t-\n", a)
			}
			return FakeResponse{Stdout: out.String()}, true
		}
		c := New(WithRunner(f))
		got, err := c.List(context.Background(), roots, o)
		var given []string
		for _, call := range f.Calls() {
			given = append(given, strings.Join(call.Argv[len(call.Argv)-10:], " "))
		}
		slices.Sort(given) // the calls run at once
		if len(given) != 2 || given[0] != strings.Join(roots[:10], " ") || given[1] != strings.Join(roots[10:], " ") {
			t.Errorf("calls given %q, want the first and last ten roots", given)
		}
		if missing != "" {
			if !errors.Is(err, ErrDatasetNotFound) || !strings.Contains(err.Error(), missing) || got != nil {
				t.Errorf("with %s missing: %v, %d entries; want ErrDatasetNotFound naming it and nothing", missing, err, len(got))
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Dataset())
		}
		if !slices.Equal(names, roots) {
			t.Errorf("entries of %q, want %q", names, roots)
		}
	}
	// few roots, or roots one inside another or given twice: one call
	for _, rs := range [][]string{roots[:15], append([]string{"tank"}, roots...), append(slices.Clone(roots), "tank/d03")} {
		f := NewFakeRunner()
		f.Fallback = func(Cmd) (FakeResponse, bool) { return FakeResponse{}, true }
		if _, err := New(WithRunner(f)).List(context.Background(), rs, o); err != nil || len(f.Calls()) != 1 {
			t.Errorf("%d roots: %d calls, err %v; want one", len(rs), len(f.Calls()), err)
		}
	}
}
