package serve

import (
	"strings"
	"testing"
)

func TestOwnerNames(t *testing.T) {
	a, b := owner{"laptop"}, owner{"desk"}
	const tag = "zsync_step_T0123456789abcdef"
	const bm = "src/data#zsync_cursor_T0123456789abcdef_G00000000deadbeef"
	da, err := a.diskTag(tag)
	if err != nil || da != tag+"_Claptop" {
		t.Fatalf("diskTag = %q, %v", da, err)
	}
	db, _ := b.diskTag(tag)
	if da == db {
		t.Fatal("two clients share an on-disk tag")
	}
	if got, ok := a.clientTag(da); !ok || got != tag {
		t.Errorf("own tag back: %q %v", got, ok)
	}
	for _, other := range []string{db, tag, "zsync_last_T0123456789abcdef_Claptop_Cdesk", "zsync_x"} {
		if got, ok := a.clientTag(other); ok {
			t.Errorf("client sees %q as %q", other, got)
		}
	}
	if got, ok := a.clientTag("admin-keep"); !ok || got != "admin-keep" {
		t.Errorf("foreign tag: %q %v", got, ok)
	}
	dbm, err := a.diskBookmark(bm)
	if err != nil || dbm != bm+"_Claptop" {
		t.Fatalf("diskBookmark = %q, %v", dbm, err)
	}
	if got, ok := a.clientName(dbm); !ok || got != bm {
		t.Errorf("own bookmark back: %q %v", got, ok)
	}
	if _, ok := b.clientName(dbm); ok {
		t.Error("another client sees the bookmark")
	}
	for _, n := range []string{"src/data@s1", "src/data", "src/data#mine"} {
		if got, ok := b.clientName(n); !ok || got != n {
			t.Errorf("%s shown as %q %v", n, got, ok)
		}
	}
	// the per-root tags bind the same way
	for _, root := range []string{"zsync_step_R0123456789abcdef", "zsync_last_R0123456789abcdef"} {
		d, err := a.diskTag(root)
		if err != nil || d != root+"_Claptop" {
			t.Errorf("diskTag(%s) = %q, %v", root, d, err)
		}
		if got, ok := a.clientTag(d); !ok || got != root {
			t.Errorf("own root tag back: %q %v", got, ok)
		}
		if got, ok := b.clientTag(d); ok {
			t.Errorf("another client sees %q as %q", d, got)
		}
	}
	// what a client may not name
	for _, bad := range []string{"", "admin", "zsync_step_T0123456789ABCDEF", "zsync_step_X0123456789abcdef", "zsync_step_R0123456789abcde", tag + "_Cdesk", "zsync_step_T0123456789abcdef\n", "-zsync_step_T0123456789abcdef"} {
		if _, err := a.diskTag(bad); err == nil {
			t.Errorf("diskTag(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"src/data#mine", "src/data@zsync_cursor_T0123456789abcdef_G00000000deadbeef", bm + "_Cdesk", "src/data#zsync_cursor_T0123456789abcdef_G00000000deadbeef_"} {
		if _, err := a.diskBookmark(bad); err == nil {
			t.Errorf("diskBookmark(%q) accepted", bad)
		}
	}
	if d, err := a.diskVersion("src/data#zsync_cursor_T0123456789abcdef_Gnothex"); err == nil {
		t.Errorf("diskVersion of a malformed zsync bookmark: %q", d)
	}
	if d, err := a.diskVersion("src/data#user"); err != nil || d != "src/data#user" {
		t.Errorf("diskVersion of a user bookmark: %q %v", d, err)
	}
	if d, _ := a.diskVersion(bm); !strings.HasSuffix(d, "_Claptop") {
		t.Errorf("diskVersion of own cursor: %q", d)
	}
}
