package zfs

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDataset(t *testing.T) {
	long := "tank/" + strings.Repeat("a", MaxNameLen-len("tank/"))
	tests := []struct {
		name string
		ok   bool
	}{
		{"tank", true},
		{"tank/home", true},
		{"tank/my data", true},
		{"tank/a-b_c.d:e", true},
		{"Tank2/x", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{"/tank", false},
		{"tank/", false},
		{"tank//home", false},
		{"tank/./home", false},
		{"tank/..", false},
		{"tank/.hidden", true},
		{"tank/a@s", false},
		{"tank/a#b", false},
		{"tank/a%recv", false},
		{"tank/a,b", false},
		{"tank/a\tb", false},
		{"tank/ü", false},
		{"1tank/a", false},
		{"-tank", false},
		{"mirror/a", false},
		{"raidz", false},
		{"draid/x", false},
		{"spare", false},
		{"log/x", false},
		{"mirrors/x", true},
		{"c0t0d0", true},
		{"tank/" + strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		err := ValidateDataset(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateDataset(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateDataset(%q) = %v, does not wrap ErrInvalidName", tt.name, err)
		}
	}
}

func TestValidatePoolLength(t *testing.T) {
	if err := ValidatePool("p" + strings.Repeat("a", MaxPoolNameLen-1)); err != nil {
		t.Errorf("pool of %d bytes: %v", MaxPoolNameLen, err)
	}
	if err := ValidatePool("p" + strings.Repeat("a", MaxPoolNameLen)); err == nil {
		t.Errorf("pool of %d bytes accepted", MaxPoolNameLen+1)
	}
}

func TestValidateSnapshotAndBookmark(t *testing.T) {
	tests := []struct {
		name     string
		snap, bm bool
	}{
		{"tank/a@s1", true, false},
		{"tank/my data@snap 1", true, false},
		{"tank@s", true, false},
		{"tank/a#b1", false, true},
		{"tank/my data#book 1", false, true},
		{"tank/a", false, false},
		{"tank/a@", false, false},
		{"tank/a#", false, false},
		{"@s", false, false},
		{"tank/a@s@t", false, false},
		{"tank/a@s#t", false, false},
		{"tank/a#s@t", false, false},
		{"tank/a@s/x", false, false},
		{"tank/a@..", false, false},
		{"tank/a@.", false, false},
		{"tank//a@s", false, false},
		{"tank/a@s,t", false, false},
		{"tank/a@" + strings.Repeat("s", MaxNameLen-len("tank/a@")), true, false},
		{"tank/a@" + strings.Repeat("s", MaxNameLen-len("tank/a@")+1), false, false},
	}
	for _, tt := range tests {
		if err := ValidateSnapshot(tt.name); (err == nil) != tt.snap {
			t.Errorf("ValidateSnapshot(%q) = %v, want ok=%v", tt.name, err, tt.snap)
		}
		if err := ValidateBookmark(tt.name); (err == nil) != tt.bm {
			t.Errorf("ValidateBookmark(%q) = %v, want ok=%v", tt.name, err, tt.bm)
		}
		if err := ValidateVersion(tt.name); (err == nil) != (tt.snap || tt.bm) {
			t.Errorf("ValidateVersion(%q) = %v, want ok=%v", tt.name, err, tt.snap || tt.bm)
		}
	}
}

func TestValidateComponent(t *testing.T) {
	tests := []struct {
		c  string
		ok bool
	}{
		{"zsync_20261122T050000Z", true},
		{"snap 1", true},
		{"a:b.c-d_e", true},
		{"", false},
		{".", false},
		{"..", false},
		{"...", true},
		{"a/b", false},
		{"a@b", false},
		{"a#b", false},
		{"a\nb", false},
		{strings.Repeat("x", MaxNameLen), true},
		{strings.Repeat("x", MaxNameLen+1), false},
	}
	for _, tt := range tests {
		if err := ValidateComponent(tt.c); (err == nil) != tt.ok {
			t.Errorf("ValidateComponent(%q) = %v, want ok=%v", tt.c, err, tt.ok)
		}
	}
}

func TestValidateHoldTag(t *testing.T) {
	tests := []struct {
		tag string
		ok  bool
	}{
		{"zsync_step_J_t-1", true},
		{"with space", true},
		{"", false},
		{"a\tb", false},
		{"a\nb", false},
		{"-o", false}, // zfs hold would take it as an option
		{"-", false},
		{"a-", true},
		{strings.Repeat("x", MaxHoldTagLen), true},
		{strings.Repeat("x", MaxHoldTagLen+1), false},
	}
	for _, tt := range tests {
		if err := ValidateHoldTag(tt.tag); (err == nil) != tt.ok {
			t.Errorf("ValidateHoldTag(%q) = %v, want ok=%v", tt.tag, err, tt.ok)
		}
	}
}

func TestSplitNameAndPool(t *testing.T) {
	tests := []struct {
		name, ds, short, pool string
		sep                   byte
	}{
		{"tank/a", "tank/a", "", "tank", 0},
		{"tank/a@s", "tank/a", "s", "tank", '@'},
		{"tank/my data#b 1", "tank/my data", "b 1", "tank", '#'},
		{"tank", "tank", "", "tank", 0},
		{"tank@s", "tank", "s", "tank", '@'},
	}
	for _, tt := range tests {
		ds, sep, short := SplitName(tt.name)
		if ds != tt.ds || sep != tt.sep || short != tt.short {
			t.Errorf("SplitName(%q) = %q, %q, %q", tt.name, ds, sep, short)
		}
		if p := Pool(tt.name); p != tt.pool {
			t.Errorf("Pool(%q) = %q, want %q", tt.name, p, tt.pool)
		}
	}
}

func TestIsDescendant(t *testing.T) {
	tests := []struct {
		ds, anc string
		want    bool
	}{
		{"tank/a", "tank/a", true},
		{"tank/a/b", "tank/a", true},
		{"tank/ab", "tank/a", false},
		{"tank/a b", "tank/a", false},
		{"tank", "tank/a", false},
	}
	for _, tt := range tests {
		if got := IsDescendant(tt.ds, tt.anc); got != tt.want {
			t.Errorf("IsDescendant(%q, %q) = %v", tt.ds, tt.anc, got)
		}
	}
}
