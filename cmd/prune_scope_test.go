package cmd

import (
	"testing"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

func fsEntry(name string, placeholder bool) zfs.Entry {
	e := zfs.Entry{Name: name, Type: zfs.Filesystem}
	if placeholder {
		e.User = map[string]string{zsync.PlaceholderProperty: name}
	}
	return e
}

// The target prune of a job selects exactly the targets its own selected
// sources map to.
func TestTargetsOf(t *testing.T) {
	filter, err := zfs.ParseFilter([]string{"tank/a<", "!tank/a/skip"})
	if err != nil {
		t.Fatal(err)
	}
	sources := []zfs.Entry{
		fsEntry("tank", false),
		fsEntry("tank/a", false),
		fsEntry("tank/a/child", false),
		fsEntry("tank/a/skip", false),       // excluded by the filter
		fsEntry("tank/a/holder", true),      // a placeholder: not replicated
		fsEntry("tank/a/holder/sub", false), // its selected child is
		{Name: "tank/a@s1", Type: zfs.Snapshot},
	}
	tests := []struct {
		strip int
		yes   []string
		no    []string
	}{
		{0,
			[]string{"backup/tank/a", "backup/tank/a/child", "backup/tank/a/holder/sub"},
			[]string{
				"backup", "backup/tank", "backup/tank/a/skip", "backup/tank/a/holder",
				"backup/tank/b", // another job's replica
				"backup/tank/a.zsync-rotated-20260101T000000Z",
				"backup/tank/a/child.zsync-rotated-20260101T000000Z",
				"backup/tank/a/stray", "backup/other", "backup/a", "backup/tank/a@s1",
			}},
		{1,
			[]string{"backup/a", "backup/a/child", "backup/a/holder/sub"},
			[]string{"backup/tank/a", "backup/a/skip", "backup/a/holder", "backup/b", "backup/a.zsync-rotated-20260101T000000Z"}},
	}
	for _, tt := range tests {
		own := targetsOf(sources, filter, "backup", tt.strip)
		for _, ds := range tt.yes {
			if !own(ds) {
				t.Errorf("strip %d: %s not selected", tt.strip, ds)
			}
		}
		for _, ds := range tt.no {
			if own(ds) {
				t.Errorf("strip %d: %s selected", tt.strip, ds)
			}
		}
	}
	// a source that strip_components cannot map is skipped, not an error
	if own := targetsOf([]zfs.Entry{fsEntry("tank", false)}, mustFilter(t, "tank"), "backup", 1); own("backup") || own("backup/tank") {
		t.Error("an unmappable source selected something")
	}
}

func mustFilter(t *testing.T, patterns ...string) zfs.Filter {
	t.Helper()
	f, err := zfs.ParseFilter(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
