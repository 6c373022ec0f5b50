package zfs

import (
	"errors"
	"slices"
	"testing"
)

func TestResolveErrors(t *testing.T) {
	status := []byte(`  pool: tank
 state: ONLINE
status: One or more devices has experienced an error resulting in data
	corruption.  Applications may be affected.
config:

	NAME        STATE     READ WRITE CKSUM
	tank        ONLINE       0     0     0

errors: Permanent errors have been detected in the following files:

        /tank/home/file
        /tank/home/.zfs/snapshot/daily/old
        tank/backup/a:b@s1:/x/y
        tank/vol@s2:<0x1>
        <metadata>:<0x0>
        /elsewhere/file
`)
	list := []byte("tank\t/tank\tyes\ntank/home\t/tank/home\tyes\ntank/home@daily\t-\t-\ntank/backup\t/tank/backup\tno\ntank/backup/a:b\t/tank/backup/a:b\tno\ntank/backup/a:b@s1\t-\t-\ntank/vol\t-\t-\ntank/vol@s2\t-\t-\n")
	lines := errorLines(status)
	if len(lines) != 6 {
		t.Fatalf("error lines %q", lines)
	}
	pe := resolveErrors(lines, list)
	want := []string{"tank/backup/a:b@s1", "tank/home", "tank/home@daily", "tank/vol@s2"}
	if !slices.Equal(pe.Damaged, want) || pe.Other != 2 {
		t.Errorf("resolved %v, %d other; want %v and 2 other (the metadata, a path below no mountpoint)", pe.Damaged, pe.Other, want)
	}
	if got := errorLines([]byte("errors: No known data errors\n")); len(got) != 0 {
		t.Errorf("no errors: %q", got)
	}
}

func TestMountedAt(t *testing.T) {
	m := []byte("tank/a /tank/a zfs rw 0 0\ntank/a@s1 /tank/a/.zfs/snapshot/s1 zfs ro 0 0\ntank/with\\040space@s /mnt/with\\040space zfs ro 0 0\n")
	if got := mountedAt(m, "tank/a@s1"); got != "/tank/a/.zfs/snapshot/s1" {
		t.Errorf("mounted at %q", got)
	}
	if got := mountedAt(m, "tank/with space@s"); got != "/mnt/with space" {
		t.Errorf("escaped: %q", got)
	}
	if got := mountedAt(m, "tank/a@s2"); got != "" {
		t.Errorf("not mounted: %q", got)
	}
}

func TestLockHost(t *testing.T) {
	unlock, err := LockHost("test-" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockHost("test-" + t.Name()); !errors.Is(err, ErrBusy) {
		t.Errorf("a second lock: %v, want ErrBusy", err)
	}
	unlock()
	again, err := LockHost("test-" + t.Name())
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	again()
}
