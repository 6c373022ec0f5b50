package zfs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestHoldErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		stderr string
		snaps  []string
		want   map[string]error
	}{
		{"exists", "hold_exists.txt", []string{"tank/a@s1", "tank/a@s2"}, map[string]error{"tank/a@s1": ErrHoldExists}},
		{"mixed", "hold_mixed.txt", []string{"tank/a@s1", "tank/a@gone", "tank/a@s3"},
			map[string]error{"tank/a@s1": ErrHoldExists, "tank/a@gone": ErrDatasetNotFound}},
		{"dataset missing", "hold_nodataset.txt", []string{"tank/nope@s1", "tank/nope@s2", "tank/a@s1"},
			map[string]error{"tank/nope@s1": ErrDatasetNotFound, "tank/nope@s2": ErrDatasetNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			f.Expect(append([]string{"zfs", "hold", "zsync_step"}, tt.snaps...), fail(t, tt.stderr))
			err := c.Hold(ctx, "zsync_step", tt.snaps)
			var he *HoldError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v, want *HoldError", err)
			}
			if he.Op != "hold" || he.Tag != "zsync_step" || len(he.Failed) != len(tt.want) {
				t.Fatalf("HoldError = %+v", he)
			}
			for s, w := range tt.want {
				if !errors.Is(he.Failed[s], w) {
					t.Errorf("%s: %v, want %v", s, he.Failed[s], w)
				}
			}
		})
	}
}

func TestReleaseNoSuchHold(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "release", "zsync_step", "tank/a@s1", "tank/a@s2"}, fail(t, "release_nosuch.txt"))
	err := c.Release(context.Background(), "zsync_step", []string{"tank/a@s1", "tank/a@s2"})
	if !errors.Is(err, ErrNoSuchHold) {
		t.Fatalf("err = %v, want ErrNoSuchHold", err)
	}
	var he *HoldError
	if !errors.As(err, &he) || he.Op != "release" || len(he.Failed) != 1 || he.Failed["tank/a@s1"] == nil {
		t.Errorf("HoldError = %+v", he)
	}
}

func TestHoldUnattributedFailureIsGeneric(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "hold", "t", "tank/a@s1"}, FakeResponse{Stderr: "internal error: out of memory\n", ExitCode: 1})
	err := c.Hold(context.Background(), "t", []string{"tank/a@s1"})
	var he *HoldError
	var ce *Error
	if errors.As(err, &he) || !errors.As(err, &ce) {
		t.Errorf("err = %v, want a generic *Error", err)
	}
}

func TestHolds(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "holds", "-H", "tank/a@s1", "tank/a@s2", "tank/my fs@s 3"}, FakeResponse{
		Stdout: "tank/a@s1\tzsync_last_received_J_x\t1700000000\ntank/a@s1\tkeep me\t1700000100\ntank/my fs@s 3\tt\t1700000200\n",
	})
	got, err := c.Holds(context.Background(), []string{"tank/a@s1", "tank/a@s2", "tank/my fs@s 3"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"tank/a@s1":      {"zsync_last_received_J_x", "keep me"},
		"tank/a@s2":      {},
		"tank/my fs@s 3": {"t"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Holds = %q, want %q", got, want)
	}
}

func TestHoldsMissingSnapshot(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "holds", "-H", "tank/a@s1", "tank/a@gone"}, FakeResponse{
		Stdout: "tank/a@s1\tt\t1700000000\n", Stderr: stderrFixture(t, "holds_notfound.txt"), ExitCode: 1,
	})
	got, err := c.Holds(context.Background(), []string{"tank/a@s1", "tank/a@gone"})
	if !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("err = %v, want ErrDatasetNotFound", err)
	}
	if !reflect.DeepEqual(got["tank/a@s1"], []string{"t"}) {
		t.Errorf("holds of the existing snapshot lost: %q", got)
	}
}

func TestHoldsBadFieldCount(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "holds", "-H", "tank/a@s1"}, FakeResponse{Stdout: "tank/a@s1\tt\n"})
	if _, err := c.Holds(context.Background(), []string{"tank/a@s1"}); err == nil {
		t.Error("accepted a line with 2 fields")
	}
}

// Holds returns only the snapshots asked about, and no empty tag (found by
// FuzzParseList).
func TestHoldsRejectsForeignLines(t *testing.T) {
	for _, out := range []string{
		"tank/b@s1\tt\t1700000000\n",
		"-o\tt\t1700000000\n",
		"tank/a@s1\t\t1700000000\n",
	} {
		c, f := newFake(t)
		f.Expect([]string{"zfs", "holds", "-H", "tank/a@s1"}, FakeResponse{Stdout: out})
		if got, err := c.Holds(context.Background(), []string{"tank/a@s1"}); err == nil {
			t.Errorf("output %q accepted: %q", out, got)
		}
	}
}

// Many snapshots are held in several calls at once, each given a run of
// them; failures named by any call come back as one *HoldError, and a
// failure that names nothing is returned as it is (nothing counts as held).
func TestHoldSplitsManySnapshots(t *testing.T) {
	var snaps []string
	for i := range 30 {
		snaps = append(snaps, fmt.Sprintf("tank/d%02d@s", i))
	}
	for _, c := range []struct {
		name    string
		fail    map[string]FakeResponse // by the first snapshot of a call
		named   []string                // the snapshots the *HoldError names
		unnamed bool
	}{
		{name: "all held"},
		{name: "named", fail: map[string]FakeResponse{
			"tank/d00@s": {Stderr: "cannot hold snapshot 'tank/d03@s': tag already exists on this dataset\n", ExitCode: 1},
			"tank/d15@s": {Stderr: "cannot hold snapshot 'tank/d20@s': dataset does not exist\n", ExitCode: 1},
		}, named: []string{"tank/d03@s", "tank/d20@s"}},
		{name: "unnamed", fail: map[string]FakeResponse{
			"tank/d00@s": {Stderr: "cannot hold snapshot 'tank/d03@s': tag already exists on this dataset\n", ExitCode: 1},
			"tank/d15@s": {Stderr: "internal error: out of memory\n", ExitCode: 1},
		}, unnamed: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewFakeRunner()
			f.Fallback = func(cmd Cmd) (FakeResponse, bool) {
				return c.fail[cmd.Argv[3]], true // zfs hold TAG FIRST...
			}
			err := New(WithRunner(f)).Hold(context.Background(), "t", snaps)
			var given []string
			for _, call := range f.Calls() {
				given = append(given, strings.Join(call.Argv[3:], " "))
			}
			slices.Sort(given)
			if len(given) != 2 || given[0] != strings.Join(snaps[:15], " ") || given[1] != strings.Join(snaps[15:], " ") {
				t.Errorf("calls given %q, want the first and last 15 snapshots", given)
			}
			var he *HoldError
			switch {
			case c.unnamed:
				if err == nil || errors.As(err, &he) {
					t.Errorf("err %v, want a failure that names nothing", err)
				}
			case c.named != nil:
				if !errors.As(err, &he) || !slices.Equal(sortedKeys(he.Failed), c.named) || !errors.Is(err, ErrHoldExists) {
					t.Errorf("err %v, want a *HoldError naming %q", err, c.named)
				}
			default:
				if err != nil {
					t.Errorf("err %v", err)
				}
			}
		})
	}
}
