package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

// existsEP answers Get for the datasets in exists and ErrDatasetNotFound
// for any other.
type existsEP struct {
	Endpoint
	exists map[string]bool
	gets   []string
}

func (e *existsEP) Get(_ context.Context, names []string, _ []string) (map[string]map[string]string, error) {
	e.gets = append(e.gets, names...)
	out := map[string]map[string]string{}
	for _, n := range names {
		if !e.exists[n] {
			return nil, fmt.Errorf("%s: %w", n, zfs.ErrDatasetNotFound)
		}
		out[n] = map[string]string{"guid": "1"}
	}
	return out, nil
}

// followWorld is a source and a target listing for planFollows: the
// datasets of each side with the guids of their snapshots, oldest first.
type followWorld struct {
	src, dst map[string][]uint64
	// fresh are source datasets created after every snapshot here (a
	// reused name); the others are older than all snapshots
	fresh []string
	// foreign are replicas another mapping received (their owner mark
	// is not this job's)
	foreign []string
}

const testStepRoot = TargetID("00000000000000aa")

func (w followWorld) plan(t *testing.T, exists ...string) ([]follow, []string) {
	t.Helper()
	var warnings []string
	j := &Job{
		TargetRoot: "backup",
		Map:        func(s string) (string, error) { return TargetName("backup", s, 0) },
		Unmap:      func(t string) []string { return SourceNames("backup", t, 0, []string{"tank"}) },
		Events: func(ev Event) {
			if ev.Kind == "warning" {
				warnings = append(warnings, ev.Message)
			}
		},
	}
	var selected []string
	srcInfo, bySource := map[string]zfs.Entry{}, map[string][]zfs.Entry{}
	for ds, gs := range w.src {
		selected = append(selected, ds)
		srcInfo[ds] = zfs.Entry{Name: ds, Type: zfs.Filesystem, CreateTXG: 1}
		if slices.Contains(w.fresh, ds) {
			srcInfo[ds] = zfs.Entry{Name: ds, Type: zfs.Filesystem, CreateTXG: 1000}
		}
		for i, g := range gs {
			bySource[ds] = append(bySource[ds], zfs.Entry{Name: fmt.Sprintf("%s@s%d", ds, g), Type: zfs.Snapshot, GUID: g, CreateTXG: uint64(i + 1)})
		}
	}
	dstInfo, byTarget := map[string]zfs.Entry{"backup": {Name: "backup", Type: zfs.Filesystem}}, map[string][]zfs.Entry{}
	for ds, gs := range w.dst {
		owner := OwnerValue(testStepRoot, ds)
		if slices.Contains(w.foreign, ds) {
			owner = OwnerValue("00000000000000bb", ds)
		}
		dstInfo[ds] = zfs.Entry{Name: ds, Type: zfs.Filesystem, User: map[string]string{OwnerProperty: owner}}
		for i, g := range gs {
			byTarget[ds] = append(byTarget[ds], zfs.Entry{Name: fmt.Sprintf("%s@s%d", ds, g), Type: zfs.Snapshot, GUID: g, CreateTXG: uint64(i + 1)})
		}
	}
	for ds := range dstInfo {
		for p := parentOf(ds); p != "" && p != "backup"; p = parentOf(p) {
			if _, ok := dstInfo[p]; !ok {
				dstInfo[p] = zfs.Entry{Name: p, Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: p}}
			}
		}
	}
	ex := map[string]bool{}
	for _, e := range exists {
		ex[e] = true
	}
	selected = OrderParentsFirst(selected)
	got := j.planFollows(context.Background(), &existsEP{exists: ex}, testStepRoot, selected, srcInfo, bySource, dstInfo, byTarget)
	return got, warnings
}

func TestPlanFollows(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w      followWorld
		exists []string
		want   string // "source:from>to" sorted by source, space separated
		warn   string
	}{
		{
			name: "leaf rename",
			w:    followWorld{src: map[string][]uint64{"tank/a2": {1, 2, 3}}, dst: map[string][]uint64{"backup/tank/a": {1, 2}}},
			want: "tank/a2:backup/tank/a>backup/tank/a2",
		},
		{
			name: "name reused by a new dataset",
			w: followWorld{
				src:   map[string][]uint64{"tank/a": {9}, "tank/a2": {1, 2}},
				dst:   map[string][]uint64{"backup/tank/a": {1, 2}},
				fresh: []string{"tank/a"},
			},
			want: "tank/a2:backup/tank/a>backup/tank/a2",
		},
		{
			name: "a promoted clone took the snapshots of a dataset that stays",
			w: followWorld{
				src: map[string][]uint64{"tank/a": {9}, "tank/c": {1, 2}},
				dst: map[string][]uint64{"backup/tank/a": {1, 2}},
			},
		},
		{
			name: "another mapping's replica below the same root",
			w: followWorld{
				src:     map[string][]uint64{"tank/a2": {1, 2}},
				dst:     map[string][]uint64{"backup/tank/a": {1, 2}},
				foreign: []string{"backup/tank/a"},
			},
		},
		{
			name: "a copy made with zfs send shares the guids: the original keeps its replica",
			w: followWorld{
				src: map[string][]uint64{"tank/a": {1, 2}, "tank/copy": {1, 2}},
				dst: map[string][]uint64{"backup/tank/a": {1, 2}},
			},
		},
		{
			name:   "the old source exists outside the selection",
			w:      followWorld{src: map[string][]uint64{"tank/a2": {1, 2}}, dst: map[string][]uint64{"backup/tank/a": {1, 2}}},
			exists: []string{"tank/a"},
		},
		{
			name: "a moved subtree is one rename",
			w: followWorld{
				src: map[string][]uint64{"tank/y": {1, 2}, "tank/y/c": {5, 6}},
				dst: map[string][]uint64{"backup/tank/x": {1, 2}, "backup/tank/x/c": {5, 6}},
			},
			want: "tank/y:backup/tank/x>backup/tank/y",
		},
		{
			name: "a leaf moved to another parent",
			w: followWorld{
				src: map[string][]uint64{"tank/p": {1}, "tank/q": {2}, "tank/q/c": {5, 6}},
				dst: map[string][]uint64{"backup/tank/p": {1}, "backup/tank/p/c": {5, 6}, "backup/tank/q": {2}},
			},
			want: "tank/q/c:backup/tank/p/c>backup/tank/q/c",
		},
		{
			name: "a moved subtree whose child stays behind is not renamed",
			w: followWorld{
				src: map[string][]uint64{"tank/y": {1, 2}, "tank/x/c": {5, 6}},
				dst: map[string][]uint64{"backup/tank/x": {1, 2}, "backup/tank/x/c": {5, 6}},
			},
			warn: "a replica below it stays",
		},
		{
			name: "a diverged replica is not followed",
			w:    followWorld{src: map[string][]uint64{"tank/a2": {1, 2}}, dst: map[string][]uint64{"backup/tank/a": {1, 7}}},
		},
		{
			name: "two replicas of one history follow neither",
			w: followWorld{
				src: map[string][]uint64{"tank/n": {1, 2}},
				dst: map[string][]uint64{"backup/tank/a": {1, 2}, "backup/tank/b": {1, 2}},
			},
			warn: "all hold its history",
		},
		{
			name: "a replica outside the job's mapping is not the job's",
			w:    followWorld{src: map[string][]uint64{"tank/a2": {1, 2}}, dst: map[string][]uint64{"backup/other/a": {1, 2}}},
		},
		{
			name: "a rotated copy is never renamed back",
			w:    followWorld{src: map[string][]uint64{"tank/a2": {1, 2}}, dst: map[string][]uint64{"backup/tank/a" + RotatedInfix + "20260101T000000Z": {1, 2}}},
		},
		{
			name: "an existing target is planned as before",
			w:    followWorld{src: map[string][]uint64{"tank/a": {1, 2}, "tank/b": {3}}, dst: map[string][]uint64{"backup/tank/a": {1}, "backup/tank/b": {4}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings := tc.w.plan(t, tc.exists...)
			var parts []string
			for _, f := range got {
				parts = append(parts, f.source+":"+f.from+">"+f.to)
			}
			if g := strings.Join(parts, " "); g != tc.want {
				t.Errorf("follows %q, want %q", g, tc.want)
			}
			w := strings.Join(warnings, "\n")
			if (tc.warn == "") != (w == "") || !strings.Contains(w, tc.warn) {
				t.Errorf("warnings %q, want one with %q", w, tc.warn)
			}
		})
	}
}

func TestSourceNames(t *testing.T) {
	for _, tc := range []struct {
		target string
		strip  int
		roots  []string
		want   string
	}{
		{"backup/tank/a", 0, []string{"tank"}, "tank/a"},
		{"backup/a/b", 1, []string{"tank/a", "zroot/a"}, "tank/a/b zroot/a/b"},
		{"backup/b", 2, []string{"tank"}, ""}, // the dropped components are unknown
		{"elsewhere/a", 0, []string{"tank"}, ""},
		{"backup", 0, []string{"tank"}, ""},
	} {
		if got := strings.Join(SourceNames("backup", tc.target, tc.strip, tc.roots), " "); got != tc.want {
			t.Errorf("SourceNames(%s, strip %d, %v) = %q, want %q", tc.target, tc.strip, tc.roots, got, tc.want)
		}
	}
	if got := OneOffSource("tank/a", "backup/a", "backup/a/c"); len(got) != 1 || got[0] != "tank/a/c" {
		t.Errorf("OneOffSource = %v", got)
	}
	if got := OneOffSource("tank/a", "backup/a", "backup/ab"); got != nil {
		t.Errorf("OneOffSource outside = %v", got)
	}
}
