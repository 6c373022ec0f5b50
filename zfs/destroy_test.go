package zfs

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestDestroySnapshotsRetriesWithoutFailedOnes(t *testing.T) {
	tests := []struct {
		name    string
		stderr  string
		retry   []string // argv of the retried batch
		failed  []string
		wantErr error
	}{
		{"held 2.1 wording", "destroy_held_2.1.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"held is-held wording", "destroy_held_isheld.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"held being-held wording", "destroy_held_beingheld.txt", []string{"zfs", "destroy", "tank/a@s1,s3"}, []string{"s2"}, ErrSnapshotHeld},
		{"two held", "destroy_held_two_2.1.txt", []string{"zfs", "destroy", "tank/a@s1"}, []string{"s2", "s3"}, ErrSnapshotHeld},
		{"cloned", "destroy_cloned.txt", []string{"zfs", "destroy", "tank/a@s1,s2"}, []string{"s3"}, ErrSnapshotCloned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			first := []string{"zfs", "destroy", "tank/a@s1,s2,s3"}
			f.Expect(first, fail(t, tt.stderr))
			f.Expect(tt.retry, FakeResponse{})
			err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2", "s3"})
			var de *DestroyError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DestroyError", err)
			}
			if de.Dataset != "tank/a" {
				t.Errorf("Dataset = %q", de.Dataset)
			}
			if got := sortedKeys(de.Failed); !reflect.DeepEqual(got, tt.failed) {
				t.Errorf("Failed = %q, want %q", got, tt.failed)
			}
			for _, e := range de.Failed {
				if !errors.Is(e, tt.wantErr) {
					t.Errorf("failed entry %v does not wrap %v", e, tt.wantErr)
				}
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("failed entry %v does not wrap *Error", e)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantErr)
			}
			wantArgv(t, f, first, tt.retry)
		})
	}
}

func TestDestroySnapshotsIdempotent(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@gone1,gone2"}, fail(t, "destroy_nothing.txt"))
	if err := c.DestroySnapshots(context.Background(), "tank/a", []string{"gone1", "gone2"}); err != nil {
		t.Errorf("destroying missing snapshots: %v", err)
	}
	// Nothing to do: no call at all.
	if err := c.DestroySnapshots(context.Background(), "tank/a", nil); err != nil {
		t.Errorf("empty list: %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestDestroySnapshotsHeldThenAllGone(t *testing.T) {
	// The retry finds the remaining snapshots already destroyed by someone
	// else: the held one is still reported.
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s2,s3"}, fail(t, "destroy_held_2.1.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s3"}, fail(t, "destroy_nothing.txt"))
	err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2", "s3"})
	var de *DestroyError
	if !errors.As(err, &de) || len(de.Failed) != 1 || de.Failed["s2"] == nil {
		t.Fatalf("err = %v, want DestroyError for s2", err)
	}
}

func TestDestroySnapshotsUnattributedFailure(t *testing.T) {
	tests := []struct {
		stderr string
		want   error
	}{
		{"open_notfound.txt", ErrDatasetNotFound},
		{"destroy_other_dataset.txt", nil}, // names another dataset: generic
	}
	for _, tt := range tests {
		c, f := newFake(t)
		f.Expect([]string{"zfs", "destroy", "tank/nope@s1"}, fail(t, tt.stderr))
		err := c.DestroySnapshots(context.Background(), "tank/nope", []string{"s1"})
		var de *DestroyError
		var ce *Error
		if err == nil || errors.As(err, &de) || !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a plain *Error", tt.stderr, err)
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.stderr, err, tt.want)
		}
		if tt.want == nil && errors.Is(err, ErrSnapshotHeld) {
			t.Errorf("%s: a held snapshot of another dataset was attributed", tt.stderr)
		}
	}
}

func TestDestroyBookmarksIdempotent(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a#gone"}, fail(t, "bookmark_missing.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a#b"}, FakeResponse{})
	if err := c.DestroyBookmarks(context.Background(), []string{"tank/a#gone", "tank/a#b"}); err != nil {
		t.Fatalf("err = %v", err)
	}
	// A missing message about another bookmark is a failure.
	f.Expect([]string{"zfs", "destroy", "tank/a#other"}, fail(t, "bookmark_missing.txt"))
	if err := c.DestroyBookmarks(context.Background(), []string{"tank/a#other"}); err == nil {
		t.Error("unrelated message taken as success")
	}
}

func TestDestroySnapshotsKeepsFailuresWhenRetryFailsOtherwise(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "destroy", "tank/a@s1,s2"}, fail(t, "destroy_held_2.1.txt"))
	f.Expect([]string{"zfs", "destroy", "tank/a@s1"}, FakeResponse{Stderr: "internal error: Invalid argument\n", ExitCode: 1})
	err := c.DestroySnapshots(context.Background(), "tank/a", []string{"s1", "s2"})
	var de *DestroyError
	var ce *Error
	if !errors.As(err, &de) || de.Failed["s2"] == nil || !errors.As(err, &ce) || !errors.Is(err, ErrSnapshotHeld) {
		t.Errorf("err = %v, want the DestroyError for s2 and the generic error", err)
	}
}

func TestDestroyFailureParsing(t *testing.T) {
	tests := []struct {
		line          string
		short, reason string
		ok            bool
	}{
		{"cannot destroy snapshot tank/a@s2: dataset is busy", "s2", "dataset is busy", true},
		{"cannot destroy snapshot tank/a@x: y: dataset is busy", "x: y", "dataset is busy", true},
		{"cannot destroy snapshot tank/a@x: snapshot is cloned", "x", "snapshot is cloned", true},
		{"cannot destroy snapshot tank/b@s2: dataset is busy", "", "", false},
		{"cannot destroy snapshot tank/a@zz: dataset is busy", "", "", false},
		{"warning: cannot destroy snapshot tank/a@s2: dataset is busy", "", "", false},
	}
	for _, tt := range tests {
		short, reason, ok := destroyFailure(tt.line, "tank/a", []string{"s2", "x", "x: y"})
		if short != tt.short || reason != tt.reason || ok != tt.ok {
			t.Errorf("destroyFailure(%q) = %q, %q, %v", tt.line, short, reason, ok)
		}
	}
}
