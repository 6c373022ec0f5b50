//go:build realzfs

package zfs_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// TestRealListPropsHoldsBookmarks exercises listing, properties, snapshots,
// holds, bookmarks, rename and rollback on names with spaces, and the typed
// errors each verb produces.
func TestRealListPropsHoldsBookmarks(t *testing.T) {
	c, x := newCLI(t), ctx(t)
	pool := zfstest.NewPool(t, 64)
	fs := pool + "/my data"
	child := fs + "/child"

	if err := c.Create(x, fs, map[string]string{"zsync:target-id": "t-1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(x, child, nil, true); err != nil {
		t.Fatal(err)
	}
	zfstest.MustWriteFile(t, fs, "f1", 64)
	s1, s1c := fs+"@snap 1", child+"@snap 1"
	if err := c.Snapshot(x, []string{s1, s1c}, nil); err != nil {
		t.Fatal(err)
	}
	zfstest.MustWriteFile(t, fs, "f2", 64)
	s2 := fs + "@s2"
	if err := c.Snapshot(x, []string{s2}, map[string]string{"zsync:note": "second"}); err != nil {
		t.Fatal(err)
	}
	bm := fs + "#bm 1"
	if err := c.Bookmark(x, s1, bm); err != nil {
		t.Fatal(err)
	}
	if err := c.Hold(x, "keep", []string{s2}); err != nil {
		t.Fatal(err)
	}

	t.Run("list", func(t *testing.T) {
		entries, err := c.List(x, []string{fs}, zfs.ListOptions{UserProps: []string{"zsync:target-id"}})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]zfs.Entry{}
		for _, e := range entries {
			byName[e.Name] = e
		}
		wantTypes := map[string]zfs.Type{fs: zfs.Filesystem, child: zfs.Filesystem, s1: zfs.Snapshot, s1c: zfs.Snapshot, s2: zfs.Snapshot, bm: zfs.Bookmark}
		if len(entries) != len(wantTypes) {
			t.Errorf("listed %d entries, want %d: %+v", len(entries), len(wantTypes), entries)
		}
		for name, typ := range wantTypes {
			e, ok := byName[name]
			if !ok {
				t.Errorf("%q not listed", name)
				continue
			}
			if e.Type != typ {
				t.Errorf("%q type %q, want %q", name, e.Type, typ)
			}
			if name != bm && e.GUID != guid(t, name) {
				t.Errorf("%q guid %d, want %d", name, e.GUID, guid(t, name))
			}
			if e.CreateTXG == 0 || e.Creation.IsZero() {
				t.Errorf("%q createtxg %d creation %v", name, e.CreateTXG, e.Creation)
			}
		}
		if byName[bm].GUID != byName[s1].GUID || byName[bm].CreateTXG != byName[s1].CreateTXG {
			t.Errorf("bookmark %+v does not carry the snapshot's guid/createtxg %+v", byName[bm], byName[s1])
		}
		if !(byName[s1].CreateTXG < byName[s2].CreateTXG) {
			t.Errorf("createtxg order: %d !< %d", byName[s1].CreateTXG, byName[s2].CreateTXG)
		}
		if byName[s2].UserRefs != 1 || byName[s1].UserRefs != 0 {
			t.Errorf("userrefs s2=%d s1=%d, want 1 and 0", byName[s2].UserRefs, byName[s1].UserRefs)
		}
		if got := byName[fs].User["zsync:target-id"]; got != "t-1" {
			t.Errorf("user property = %q", got)
		}
		if _, ok := byName[child].User["zsync:target-id"]; !ok {
			t.Errorf("inherited user property missing on child: %+v", byName[child].User)
		}
		if byName[fs].Encryption != "off" || byName[fs].Origin != "" || byName[fs].ResumeToken != "" {
			t.Errorf("fs entry %+v", byName[fs])
		}

		only, err := c.List(x, []string{fs}, zfs.ListOptions{Depth: -1})
		if err != nil || len(only) != 1 || only[0].Name != fs {
			t.Errorf("Depth -1: %+v, %v", only, err)
		}
		snaps, err := c.List(x, []string{fs}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
		if err != nil || len(snaps) != 2 {
			t.Errorf("Depth 1 snapshots: %+v, %v", snaps, err)
		}

		_, err = c.List(x, []string{fs, pool + "/nope"}, zfs.ListOptions{})
		if !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("missing root: %v, want ErrDatasetNotFound", err)
		}
	})

	t.Run("props", func(t *testing.T) {
		if err := c.Set(x, fs, map[string]string{"zsync:a": "1 2", "zsync:b": "x"}); err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(x, []string{fs, s2}, []string{"zsync:a", "zsync:note", "guid", "receive_resume_token"})
		if err != nil {
			t.Fatal(err)
		}
		if got[fs]["zsync:a"] != "1 2" || got[s2]["zsync:note"] != "second" || got[s2]["guid"] == "" {
			t.Errorf("Get = %q", got)
		}
		if _, ok := got[fs]["receive_resume_token"]; ok {
			t.Errorf("unset receive_resume_token reported: %q", got[fs])
		}
		if err := c.Inherit(x, fs, "zsync:a"); err != nil {
			t.Fatal(err)
		}
		got, err = c.Get(x, []string{fs}, []string{"zsync:a"})
		if err != nil || len(got[fs]) != 0 {
			t.Errorf("after inherit: %q, %v", got, err)
		}
		if _, err := c.Get(x, []string{pool + "/nope"}, []string{"guid"}); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("get missing: %v", err)
		}
		if err := c.Set(x, pool+"/nope", map[string]string{"zsync:a": "1"}); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("set missing: %v", err)
		}
	})

	t.Run("create and snapshot errors", func(t *testing.T) {
		if err := c.Create(x, fs, nil, false); !errors.Is(err, zfs.ErrExists) {
			t.Errorf("create existing: %v", err)
		}
		if err := c.Create(x, pool+"/no/parent", nil, false); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("create without parent: %v", err)
		}
		if err := c.Snapshot(x, []string{s2}, nil); !errors.Is(err, zfs.ErrExists) {
			t.Errorf("snapshot existing: %v", err)
		}
		if err := c.Snapshot(x, []string{pool + "/nope@s"}, nil); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("snapshot of missing dataset: %v", err)
		}
	})

	t.Run("holds", func(t *testing.T) {
		err := c.Hold(x, "keep", []string{s1, s2})
		if !errors.Is(err, zfs.ErrHoldExists) {
			t.Fatalf("second hold: %v, want ErrHoldExists", err)
		}
		var he *zfs.HoldError
		if !errors.As(err, &he) || len(he.Failed) != 1 || he.Failed[s2] == nil {
			t.Errorf("HoldError = %+v", he)
		}
		holds, err := c.Holds(x, []string{s1, s2, s1c})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{s1: {"keep"}, s2: {"keep"}, s1c: {}}
		if !reflect.DeepEqual(holds, want) {
			t.Errorf("Holds = %q, want %q", holds, want)
		}
		if err := c.Release(x, "nope", []string{s2}); !errors.Is(err, zfs.ErrNoSuchHold) {
			t.Errorf("release unknown tag: %v, want ErrNoSuchHold", err)
		}
		if err := c.Hold(x, "keep", []string{fs + "@gone"}); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("hold missing snapshot: %v, want ErrDatasetNotFound", err)
		}
		if err := c.Release(x, "keep", []string{s1}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bookmarks", func(t *testing.T) {
		if err := c.Bookmark(x, s1, bm); !errors.Is(err, zfs.ErrExists) {
			t.Errorf("existing bookmark: %v, want ErrExists", err)
		}
		cp := fs + "#bm copy"
		if err := c.Bookmark(x, bm, cp); err != nil {
			t.Fatalf("bookmark copy: %v", err)
		}
		if guid(t, cp) != guid(t, s1) {
			t.Errorf("copied bookmark guid differs")
		}
		if err := c.DestroyBookmarks(x, []string{cp, fs + "#never existed"}); err != nil {
			t.Fatalf("destroy bookmarks: %v", err)
		}
		if zfstest.Exists(t, cp) {
			t.Errorf("%s still exists", cp)
		}
		if err := c.DestroyBookmarks(x, []string{cp}); err != nil {
			t.Errorf("destroying again: %v", err)
		}
	})

	t.Run("rename and rollback", func(t *testing.T) {
		sib := fs + "/sibling"
		zfstest.MustCreate(t, sib)
		if err := c.Rename(x, child, sib); !errors.Is(err, zfs.ErrExists) {
			t.Errorf("rename onto existing: %v, want ErrExists", err)
		}
		renamed := fs + "/child 2"
		if err := c.Rename(x, child, renamed); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename(x, renamed+"@snap 1", renamed+"@snap one"); err != nil {
			t.Fatal(err)
		}
		if !zfstest.Exists(t, renamed+"@snap one") {
			t.Error("renamed snapshot missing")
		}
		if err := c.Rollback(x, s1); !errors.Is(err, zfs.ErrNotMostRecent) {
			t.Errorf("rollback to older: %v, want ErrNotMostRecent", err)
		}
		zfstest.MustWriteFile(t, fs, "f3", 4)
		if err := c.Rollback(x, s2); err != nil {
			t.Fatalf("rollback to newest: %v", err)
		}
	})

	t.Run("batched destroy with a held snapshot", func(t *testing.T) {
		ds := pool + "/d"
		zfstest.MustCreate(t, ds)
		for _, s := range []string{"a", "b", "c"} {
			zfstest.MustSnapshot(t, ds+"@"+s)
		}
		zfstest.Zfs(t, "hold", "pin", ds+"@b")
		err := c.DestroySnapshots(x, ds, []string{"a", "b", "gone", "c"})
		var de *zfs.DestroyError
		if !errors.As(err, &de) {
			t.Fatalf("err = %v, want *DestroyError", err)
		}
		if de.Dataset != ds || len(de.Failed) != 1 || !errors.Is(de.Failed["b"], zfs.ErrSnapshotHeld) {
			t.Errorf("DestroyError = %+v (%v)", de, err)
		}
		if zfstest.Exists(t, ds+"@a") || zfstest.Exists(t, ds+"@c") || !zfstest.Exists(t, ds+"@b") {
			t.Errorf("after destroy:\n%s", zfstest.Describe(t, ds))
		}
		zfstest.Zfs(t, "release", "pin", ds+"@b")
		if err := c.DestroySnapshots(x, ds, []string{"b"}); err != nil {
			t.Fatal(err)
		}
		if err := c.DestroySnapshots(x, ds, []string{"b", "a"}); err != nil {
			t.Errorf("destroying missing snapshots again: %v", err)
		}
		if err := c.DestroySnapshots(x, pool+"/nope", []string{"a"}); !errors.Is(err, zfs.ErrDatasetNotFound) {
			t.Errorf("destroy in missing dataset: %v", err)
		}
	})
}
