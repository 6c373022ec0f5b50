package zfs

import (
	"reflect"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	f, err := ParseFilter([]string{
		"tank/home<", "!tank/home/scratch<", "tank/home/scratch/keep",
		"!tank/home/bob", "tank/var", "pool2<", "!pool2",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ds   string
		want bool
	}{
		{"tank", false},
		{"tank/home", true},
		{"tank/home/alice", true},
		{"tank/home/alice/docs", true},
		{"tank/homer", false},
		{"tank/home/scratch", false},
		{"tank/home/scratch/tmp", false},
		{"tank/home/scratch/keep", true},
		{"tank/home/scratch/keep/sub", false},
		{"tank/home/bob", false},
		{"tank/home/bob/x", true},
		{"tank/var", true},
		{"tank/var/log", false},
		{"pool2", false},
		{"pool2/x", true},
		{"other", false},
	}
	for _, tt := range tests {
		if got := f.Match(tt.ds); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.ds, got, tt.want)
		}
	}
}

func TestFilterExactBeatsSubtreeOnSamePath(t *testing.T) {
	f, err := ParseFilter([]string{"tank/a<", "!tank/a"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Match("tank/a") || !f.Match("tank/a/b") {
		t.Errorf("Match(tank/a)=%v Match(tank/a/b)=%v, want false, true", f.Match("tank/a"), f.Match("tank/a/b"))
	}
	f, err = ParseFilter([]string{"!tank/a<", "tank/a"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match("tank/a") || f.Match("tank/a/b") {
		t.Errorf("Match(tank/a)=%v Match(tank/a/b)=%v, want true, false", f.Match("tank/a"), f.Match("tank/a/b"))
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := [][]string{
		{"tank/a<", "tank/a<"},
		{"tank/a", "!tank/a"},
		{"tank/a<", "!tank/a<"},
		{"tank/a@s"},
		{"tank/"},
		{"!"},
		{"<"},
		{"tank/a<<"},
		{""},
	}
	for _, p := range tests {
		if _, err := ParseFilter(p); err == nil {
			t.Errorf("ParseFilter(%q) accepted", p)
		}
	}
}

func TestFilterRoots(t *testing.T) {
	tests := []struct {
		patterns []string
		want     []string
	}{
		{[]string{"tank/home<", "!tank/home/scratch<", "tank/home/x"}, []string{"tank/home"}},
		{[]string{"tank/b", "tank/a<", "tank/a/c", "pool<"}, []string{"pool", "tank/a", "tank/b"}},
		{[]string{"tank/a b", "tank/a", "tank/a/c"}, []string{"tank/a", "tank/a b"}},
		{[]string{"!tank<"}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Roots(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Roots(%q) = %q, want %q", tt.patterns, got, tt.want)
		}
	}
}

func TestFilterPatternsAndZero(t *testing.T) {
	f, err := ParseFilter([]string{" tank/a< ", "!tank/a/b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Patterns(), []string{"tank/a<", "!tank/a/b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Patterns = %q, want %q", got, want)
	}
	var zero Filter
	if zero.Match("tank") {
		t.Error("zero Filter matched")
	}
}
