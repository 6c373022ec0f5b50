package sync

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestTargetName(t *testing.T) {
	for _, c := range []struct {
		root, ds string
		strip    int
		want     string // "" = error
	}{
		{"backup/host", "tank/data", 0, "backup/host/tank/data"},
		{"backup/host", "tank", 0, "backup/host/tank"},
		{"backup", "tank/data/home", 1, "backup/data/home"},
		{"backup", "tank/data/home", 2, "backup/home"},
		{"backup", "tank/data/home", 3, ""},
		{"backup", "tank", 1, ""},
		{"backup", "tank/data", -1, ""},
		{"backup/", "tank/data", 0, ""},
		{"backup", "tank/data@snap", 0, ""},
		{"", "tank/data", 0, ""},
		{"backup", "", 0, ""},
		{"backup/" + strings.Repeat("x", 200), "tank/" + strings.Repeat("y", 60), 0, ""}, // too long
	} {
		got, err := TargetName(c.root, c.ds, c.strip)
		if c.want == "" {
			if !errors.Is(err, ErrTargetName) {
				t.Errorf("TargetName(%q, %q, %d) = %q, %v; want an ErrTargetName error", c.root, c.ds, c.strip, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("TargetName(%q, %q, %d) = %q, %v; want %q", c.root, c.ds, c.strip, got, err, c.want)
		}
	}
}

func TestOneOffTarget(t *testing.T) {
	for _, c := range []struct {
		src, dst, ds string
		want         string // "" = error
	}{
		{"tank/data", "pool/laptop/data", "tank/data", "pool/laptop/data"},
		{"tank/data", "pool/laptop/data", "tank/data/home", "pool/laptop/data/home"},
		{"tank/data", "pool/laptop/data", "tank/data/home/u", "pool/laptop/data/home/u"},
		{"tank/data", "pool2", "tank/data/x", "pool2/x"},
		{"tank/data", "pool/x", "tank/database", ""}, // a sibling with a common prefix
		{"tank/data", "pool/x", "tank", ""},
		{"tank/data", "pool/x/", "tank/data", ""},
		{"tank/data", "pool/x", "tank/data@s", ""},
	} {
		got, err := OneOffTarget(c.src, c.dst, c.ds)
		if c.want == "" {
			if !errors.Is(err, ErrTargetName) {
				t.Errorf("OneOffTarget(%q, %q, %q) = %q, %v; want an ErrTargetName error", c.src, c.dst, c.ds, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("OneOffTarget(%q, %q, %q) = %q, %v; want %q", c.src, c.dst, c.ds, got, err, c.want)
		}
	}
}

func TestOrderParentsFirst(t *testing.T) {
	in := []string{"tank/a-b", "tank/a/b/c", "tank", "tank/a/b", "tank/a", "pool/z", "tank/a", "tank/a.b/c", "tank/a.b"}
	orig := slices.Clone(in)
	got := OrderParentsFirst(in)
	want := []string{"pool/z", "tank", "tank/a", "tank/a/b", "tank/a/b/c", "tank/a-b", "tank/a.b", "tank/a.b/c"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("input modified: %q", in)
	}
	// Every dataset comes after all of its ancestors.
	pos := make(map[string]int)
	for i, d := range got {
		pos[d] = i
	}
	for i, d := range got {
		for p := d; strings.Contains(p, "/"); {
			p = p[:strings.LastIndex(p, "/")]
			if j, ok := pos[p]; ok && j > i {
				t.Errorf("%s at %d before its parent %s at %d", d, i, p, j)
			}
		}
	}
	if got := OrderParentsFirst(nil); len(got) != 0 {
		t.Errorf("nil input: got %q", got)
	}
}

func TestPlaceholders(t *testing.T) {
	for _, c := range []struct {
		name     string
		root     string
		targets  []string
		existing []string
		want     []string
	}{
		{"direct children need none", "b", []string{"b/tank", "b/pool"}, nil, nil},
		{"intermediates parents first", "b/host", []string{"b/host/tank/data/home", "b/host/tank/data/x/y"}, nil,
			[]string{"b/host/tank", "b/host/tank/data", "b/host/tank/data/x"}},
		{"existing ones are skipped", "b", []string{"b/tank/data/home"}, []string{"b/tank"}, []string{"b/tank/data"}},
		{"targets are not placeholders", "b", []string{"b/tank/data/home", "b/tank/data", "b/tank"}, nil, nil},
		{"target itself missing is not a placeholder", "b", []string{"b/tank/data"}, []string{}, []string{"b/tank"}},
		{"root and outside targets ignored", "b", []string{"b", "c/tank/x", "bb/tank/x"}, nil, nil},
		{"no targets", "b", nil, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex := make(map[string]bool)
			for _, e := range c.existing {
				ex[e] = true
			}
			got := Placeholders(c.root, c.targets, ex)
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// Sources of one job that map to one target all fail, each naming the
// others; sources with a target of their own are not touched.
func TestSharedTargets(t *testing.T) {
	j := &Job{Map: func(s string) (string, error) { return TargetName("backup/r", s, 2) }}
	got := j.sharedTargets([]string{"tank/one/data", "tank/two/data", "tank/one/other", "pool/x/data", "tank"})
	want := map[string]string{
		"tank/one/data": "tank/two/data, pool/x/data",
		"tank/two/data": "tank/one/data, pool/x/data",
		"pool/x/data":   "tank/one/data, tank/two/data",
	}
	if len(got) != len(want) {
		t.Fatalf("failed %d sources, want %d: %v", len(got), len(want), got)
	}
	for ds, others := range want {
		r := got[ds]
		if r == nil || r.Status != StatusFailed || r.Target != "backup/r/data" || r.Source != ds {
			t.Fatalf("%s: result %+v, want failed with target backup/r/data", ds, r)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, ds+" maps to the target backup/r/data, and so does "+others+";") {
			t.Errorf("%s: %q does not name %s", ds, msg, others)
		}
	}
	if (&Job{}).sharedTargets([]string{"a/b"}) != nil {
		t.Errorf("a job without a Map found shared targets")
	}
}
