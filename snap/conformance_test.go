package snap

import (
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// The zfs package's types are what cmd passes in.
var (
	_ Snapshotter = (*zfs.CLI)(nil)
	_ Filter      = zfs.Filter{}
)

func TestPlanWithZFSFilter(t *testing.T) {
	t.Parallel()
	f, err := zfs.ParseFilter([]string{"tank/home<", "!tank/home/scratch<", "tank/db"})
	if err != nil {
		t.Fatal(err)
	}
	ls := listing("tank", "tank/db", "tank/db/wal", "tank/home", "tank/home/a", "tank/home/scratch", "tank/home/scratch/x", "tank/homer")
	p := NewPlan(ls, f, Options{Prefix: "zsync_", Interval: time.Hour}, takeNow)
	var got []string
	for _, d := range p.Due {
		got = append(got, d.Dataset)
	}
	want := []string{"tank/db", "tank/home", "tank/home/a"}
	if len(p.NotDue) != 0 || len(got) != len(want) {
		t.Fatalf("due %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("due %v, want %v", got, want)
		}
	}
}
