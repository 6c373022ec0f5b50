package sync

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

func TestPlanRepairs(t *testing.T) {
	snap := func(name string, guid, txg uint64) zfs.Entry {
		return zfs.Entry{Name: name, Type: zfs.Snapshot, GUID: guid, CreateTXG: txg}
	}
	src := []zfs.Entry{
		{Name: "tank/a", Type: zfs.Filesystem},
		snap("tank/a@s1", 1, 10), snap("tank/a@s2", 2, 20), snap("tank/a@s3", 3, 30), // s3 not replicated yet
		{Name: "tank/b", Type: zfs.Filesystem},
		snap("tank/b@x", 7, 10),
	}
	dst := []zfs.Entry{
		{Name: "backup/a", Type: zfs.Filesystem},
		snap("backup/a@s1", 1, 5), snap("backup/a@s2", 2, 6),
		{Name: "backup/b", Type: zfs.Filesystem},
		snap("backup/b@other", 99, 5),
	}
	pairs := map[string]string{"tank/a": "backup/a", "tank/b": "backup/b"}
	repairs, left := PlanRepairs(pairs, src, dst,
		[]string{"tank/a@s1", "tank/a", "tank/a@s2", "tank/b", "tank/elsewhere@s"},
		[]string{"backup/a@s2", "backup/b@other"})
	var got []string
	for _, r := range repairs {
		got = append(got, fmt.Sprintf("%s %s<-%s", r.Side, r.Damaged, r.Twin))
	}
	// tank/a itself: its newest snapshot with a twin is s2 (s3 has none),
	// which its own entry already repairs: once
	want := "source tank/a@s1<-backup/a@s1 source tank/a@s2<-backup/a@s2 target backup/a@s2<-tank/a@s2"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("repairs %q, want %q", g, want)
	}
	var why []string
	for _, u := range left {
		why = append(why, u.Side+" "+u.Name)
	}
	// tank/b has no snapshot in common; backup/b@other has no twin; damage
	// outside the job's datasets is not the job's
	if g := strings.Join(why, ", "); g != "source tank/b, target backup/b@other" {
		t.Errorf("unrepairable %q", g)
	}
	for _, u := range left {
		if !strings.Contains(u.Why, "zpool status -v") {
			t.Errorf("%s: %q does not say what to do", u.Name, u.Why)
		}
	}
}
