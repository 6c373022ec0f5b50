//go:build realzfs

package snap

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// TestRealZFSPlanTake plans and takes snapshots on real OpenZFS: two
// datasets of one pool (one with a space in its name), a prefix with a space,
// one atomic call, nothing due within the interval, due again after it.
func TestRealZFSPlanTake(t *testing.T) {
	ctx := context.Background()
	pool := zfstest.NewPool(t, 64)
	a, b := pool+"/data", pool+"/my data"
	zfstest.MustCreate(t, a)
	zfstest.MustCreate(t, b)

	cli := zfs.New()
	filter, err := zfs.ParseFilter([]string{pool + "<", "!" + pool})
	if err != nil {
		t.Fatal(err)
	}
	list := func() []zfs.Entry {
		t.Helper()
		ls, err := cli.List(ctx, filter.Roots(), zfs.ListOptions{Types: []zfs.Type{zfs.Filesystem, zfs.Volume, zfs.Snapshot}})
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	o := Options{
		Prefix:   "zsync snap ",
		Interval: 15 * time.Minute,
		// The post-hook sees the snapshot it was told about, by its exact name.
		PostHook: []string{"/bin/sh", "-c", `zfs list -H -o name "$ZSYNC_SNAPSHOT"`},
	}

	// First run: both due, one atomic call.
	now := time.Now()
	p := NewPlan(list(), filter, o, now)
	if len(p.Due) != 2 || len(p.NotDue) != 0 {
		t.Fatalf("first plan: due %+v not due %+v", p.Due, p.NotDue)
	}
	r := Take(ctx, cli, p, o)
	if err := r.Err(); err != nil {
		t.Fatalf("first take: %v\n%s", err, zfstest.Describe(t, pool))
	}
	snapA, snapB := a+"@"+p.Name, b+"@"+p.Name
	for _, res := range r.Results {
		if res.Outcome != Taken || res.PostHook == nil || res.PostHook.Output != res.Snapshot+"\n" {
			t.Errorf("%s: %v, post-hook %+v", res.Dataset, res.Outcome, res.PostHook)
		}
	}
	out := zfstest.Zfs(t, "get", "-H", "-p", "-o", "value", "createtxg", snapA, snapB)
	txgs := strings.Fields(out)
	if len(txgs) != 2 || txgs[0] != txgs[1] {
		t.Fatalf("createtxg of %s and %s: %q, want two equal values (one atomic call)", snapA, snapB, out)
	}

	// Within the interval: nothing due.
	p = NewPlan(list(), filter, o, now.Add(time.Minute))
	if len(p.Due) != 0 || len(p.NotDue) != 2 {
		t.Fatalf("plan within interval: due %+v not due %+v", p.Due, p.NotDue)
	}
	for _, d := range p.NotDue {
		if !strings.Contains(d.Reason, "is 1m0s old, interval 15m0s") {
			t.Errorf("%s: reason %q", d.Dataset, d.Reason)
		}
	}

	// Past the interval: due again, second snapshots taken together.
	later := now.Add(16 * time.Minute)
	p = NewPlan(list(), filter, o, later)
	if len(p.Due) != 2 {
		t.Fatalf("plan after interval: due %+v not due %+v", p.Due, p.NotDue)
	}
	o.PostHook = nil
	if r := Take(ctx, cli, p, o); r.Err() != nil {
		t.Fatalf("second take: %v\n%s", r.Err(), zfstest.Describe(t, pool))
	}
	ls := list()
	perDataset := map[string][]zfs.Entry{}
	for _, e := range ls {
		if _, ok := ParseName(o.Prefix, e.Short()); ok && e.Type == zfs.Snapshot {
			perDataset[e.Dataset()] = append(perDataset[e.Dataset()], e)
		}
	}
	if len(perDataset[a]) != 2 || len(perDataset[b]) != 2 {
		t.Fatalf("prefixed snapshots per dataset: %+v\n%s", perDataset, zfstest.Describe(t, pool))
	}
	var second []uint64
	for _, ds := range []string{a, b} {
		for _, e := range perDataset[ds] {
			if e.Short() == p.Name {
				second = append(second, e.CreateTXG)
			}
		}
	}
	if len(second) != 2 || second[0] != second[1] {
		t.Fatalf("second snapshots' createtxg %v, want two equal values", second)
	}

	// Same second again: idempotent.
	if p := NewPlan(ls, filter, o, later); len(p.Due) != 0 {
		t.Fatalf("replan at the same time: due %+v", p.Due)
	}
}
