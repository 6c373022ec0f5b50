package serve

import (
	"reflect"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

func TestPropRules(t *testing.T) {
	r := propRules{client: "laptop", allow: []string{"checksum"}}
	for _, c := range []struct {
		prop, value string
		ok          bool
		why         string
	}{
		{"compression", "zstd", true, ""},
		{"zsync:target-id", "0123", true, ""},
		{"checksum", "sha256", true, ""},
		{"canmount", "noauto", true, ""},
		{"canmount", "off", true, ""},
		{"canmount", "on", false, "canmount is decided by the far side (it may be noauto or off; drop it from the job's properties_override)"},
		{"volmode", "none", true, ""},
		{"volmode", "dev", false, "volmode is decided by the far side (it may be none; drop it from the job's properties_override)"},
		{"mountpoint", "/etc/cron.d", false, "mountpoint is decided by the far side: received and created datasets inherit it from below the receive root (drop it from the job's properties_override)"},
		{"mountpoint", "none", false, "mountpoint is decided by the far side"},
		{"setuid", "on", false, `property setuid is not allowed (add "setuid" to allow_properties in [[serve.client]] laptop on this host, or drop it from the job's properties_override)`},
		{"sharenfs", "rw", false, "sharenfs"},
		{"reservation", "10G", false, "reservation"},
		{"origin", "dst/other@s", false, "origin"},
		{"com.example:x", "1", false, "com.example:x"},
	} {
		why := r.refusal(c.prop, c.value)
		if (why == "") != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s=%s: refusal %q; want ok %v containing %q", c.prop, c.value, why, c.ok, c.why)
		}
	}
	if k, why := r.check(map[string]string{"compression": "lz4", "exec": "on", "devices": "on"}); k != "devices" || why == "" {
		t.Errorf("check names %q (%s); want the first refused in name order, devices", k, why)
	}
}

func TestLanding(t *testing.T) {
	asked := zfs.RecvOptions{Target: "dst/laptop/a", Resumable: true, NoMount: false, Force: true,
		Set: map[string]string{"canmount": "noauto", "compression": "lz4"}, Exclude: []string{"mountpoint", "canmount", "atime"}}
	fs := landing(zfs.StreamHeader{Type: zfs.Filesystem}, asked)
	if !fs.NoMount || !fs.Resumable || !fs.Force || fs.Target != asked.Target {
		t.Errorf("flags: %+v", fs)
	}
	if want := map[string]string{"canmount": "noauto", "compression": "lz4", "volmode": "none"}; !reflect.DeepEqual(fs.Set, want) {
		t.Errorf("filesystem -o %v, want %v", fs.Set, want)
	}
	for _, x := range []string{"mountpoint", "setuid", "exec", "devices", "sharenfs", "reservation", "atime"} {
		if !hasString(fs.Exclude, x) {
			t.Errorf("filesystem -x lacks %s: %v", x, fs.Exclude)
		}
	}
	if hasString(fs.Exclude, "canmount") {
		t.Errorf("-x canmount with -o canmount: %v", fs.Exclude)
	}
	vol := landing(zfs.StreamHeader{Type: zfs.Volume}, asked)
	if _, ok := vol.Set["canmount"]; ok || vol.Set["volmode"] != "none" {
		t.Errorf("volume -o %v", vol.Set)
	}
	if !hasString(vol.Exclude, "refreservation") || hasString(vol.Exclude, "setuid") {
		t.Errorf("volume -x %v", vol.Exclude)
	}
	off := landing(zfs.StreamHeader{Type: zfs.Filesystem}, zfs.RecvOptions{Target: "d/x", Set: map[string]string{"canmount": "off"}})
	if off.Set["canmount"] != "off" || !off.NoMount {
		t.Errorf("canmount=off asked: %+v", off)
	}
	if p := createProps(map[string]string{"zsync:placeholder": "d/x"}); p["canmount"] != "noauto" {
		t.Errorf("createProps: %v", p)
	}
	if p := createProps(map[string]string{"canmount": "off"}); p["canmount"] != "off" {
		t.Errorf("createProps off: %v", p)
	}
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
