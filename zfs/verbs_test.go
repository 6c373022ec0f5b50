package zfs

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestVerbArgv is the golden argv table: each verb, called with valid
// input, runs exactly these commands.
func TestVerbArgv(t *testing.T) {
	ctx := context.Background()
	validated := func(o SendOptions) ValidatedSend {
		v, err := o.Validate()
		if err != nil {
			t.Fatalf("Validate(%+v): %v", o, err)
		}
		return v
	}
	tests := []struct {
		name   string
		stdout string
		call   func(c *CLI) error
		want   [][]string
	}{
		{"get", "tank/a\tguid\t123\t-\n", func(c *CLI) error {
			_, err := c.Get(ctx, []string{"tank/a", "tank/a@s 1"}, []string{"guid", "zsync:target-id"})
			return err
		}, [][]string{{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid,zsync:target-id", "tank/a", "tank/a@s 1"}}},
		{"set sorted", "", func(c *CLI) error {
			return c.Set(ctx, "tank/my fs", map[string]string{"zsync:target-id": "x y", "canmount": "noauto", "atime": "off"})
		}, [][]string{{"zfs", "set", "atime=off", "canmount=noauto", "zsync:target-id=x y", "tank/my fs"}}},
		{"inherit", "", func(c *CLI) error { return c.Inherit(ctx, "tank/a", "zsync:target-id") },
			[][]string{{"zfs", "inherit", "zsync:target-id", "tank/a"}}},
		{"create", "", func(c *CLI) error {
			return c.Create(ctx, "tank/a/b c", map[string]string{"mountpoint": "none", "canmount": "off"}, true)
		}, [][]string{{"zfs", "create", "-p", "-o", "canmount=off", "-o", "mountpoint=none", "tank/a/b c"}}},
		{"create plain", "", func(c *CLI) error { return c.Create(ctx, "tank/a", nil, false) },
			[][]string{{"zfs", "create", "tank/a"}}},
		{"snapshot", "", func(c *CLI) error {
			return c.Snapshot(ctx, []string{"tank/a@z1", "tank/b c@z1"}, map[string]string{"zsync:job": "home"})
		}, [][]string{{"zfs", "snapshot", "-o", "zsync:job=home", "tank/a@z1", "tank/b c@z1"}}},
		{"hold", "", func(c *CLI) error { return c.Hold(ctx, "zsync_step", []string{"tank/a@s1", "tank/a@s 2"}) },
			[][]string{{"zfs", "hold", "zsync_step", "tank/a@s1", "tank/a@s 2"}}},
		{"release", "", func(c *CLI) error { return c.Release(ctx, "zsync_step", []string{"tank/a@s1"}) },
			[][]string{{"zfs", "release", "zsync_step", "tank/a@s1"}}},
		{"holds", "", func(c *CLI) error { _, err := c.Holds(ctx, []string{"tank/a@s1", "tank/b@s2"}); return err },
			[][]string{{"zfs", "holds", "-H", "tank/a@s1", "tank/b@s2"}}},
		{"bookmark", "", func(c *CLI) error { return c.Bookmark(ctx, "tank/a@s1", "tank/a#c1") },
			[][]string{{"zfs", "bookmark", "tank/a@s1", "tank/a#c1"}}},
		{"bookmark copy", "", func(c *CLI) error { return c.Bookmark(ctx, "tank/a#c1", "tank/a#c2") },
			[][]string{{"zfs", "bookmark", "tank/a#c1", "tank/a#c2"}}},
		{"destroy snapshots dedup", "", func(c *CLI) error {
			return c.DestroySnapshots(ctx, "tank/my fs", []string{"a", "b 2", "a", "c"})
		}, [][]string{{"zfs", "destroy", "tank/my fs@a,b 2,c"}}},
		{"destroy bookmark", "", func(c *CLI) error { return c.DestroyBookmarks(ctx, []string{"tank/a#x"}) },
			[][]string{{"zfs", "destroy", "tank/a#x"}}},
		{"rename", "", func(c *CLI) error { return c.Rename(ctx, "tank/a", "tank/a.old 1") },
			[][]string{{"zfs", "rename", "tank/a", "tank/a.old 1"}}},
		{"rollback", "", func(c *CLI) error { return c.Rollback(ctx, "tank/a@s2") },
			[][]string{{"zfs", "rollback", "tank/a@s2"}}},
		{"send size full raw", "full\ttank/a@s1\t12345\nsize\t12345\n", func(c *CLI) error {
			_, err := c.SendSize(ctx, validated(SendOptions{To: "tank/a@s1", Raw: true}))
			return err
		}, [][]string{{"zfs", "send", "-n", "-P", "-w", "tank/a@s1"}}},
		{"send size all flags -I", "size\t1\n", func(c *CLI) error {
			_, err := c.SendSize(ctx, validated(SendOptions{From: "tank/a@s1", To: "tank/a@s3", Intermediates: true,
				Raw: true, Compressed: true, LargeBlocks: true, EmbeddedData: true, Props: true}))
			return err
		}, [][]string{{"zfs", "send", "-n", "-P", "-w", "-c", "-L", "-e", "-p", "-I", "tank/a@s1", "tank/a@s3"}}},
		{"send size from bookmark", "size\t1\n", func(c *CLI) error {
			_, err := c.SendSize(ctx, validated(SendOptions{From: "tank/a#c1", To: "tank/a@s3", Compressed: true}))
			return err
		}, [][]string{{"zfs", "send", "-n", "-P", "-c", "-i", "tank/a#c1", "tank/a@s3"}}},
		{"send size token", "size\t7\n", func(c *CLI) error {
			_, err := c.SendSize(ctx, validated(SendOptions{ResumeToken: "1-abc-12-789c"}))
			return err
		}, [][]string{{"zfs", "send", "-n", "-P", "-t", "1-abc-12-789c"}}},
		{"send", "", func(c *CLI) error {
			r, err := c.Send(ctx, validated(SendOptions{From: "tank/a@s1", To: "tank/a@s2", LargeBlocks: true}))
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			return err
		}, [][]string{{"zfs", "send", "-L", "-i", "tank/a@s1", "tank/a@s2"}}},
		{"recv all options", "", func(c *CLI) error {
			return c.Receive(ctx, RecvOptions{Target: "back/tank/my fs", Resumable: true, NoMount: true, Force: true,
				Set: map[string]string{"readonly": "on", "canmount": "noauto"}, Exclude: []string{"mountpoint", "sharenfs"}},
				strings.NewReader("stream"))
		}, [][]string{{"zfs", "recv", "-s", "-u", "-F", "-o", "canmount=noauto", "-o", "readonly=on", "-x", "mountpoint", "-x", "sharenfs", "back/tank/my fs"}}},
		{"recv plain", "", func(c *CLI) error {
			return c.Receive(ctx, RecvOptions{Target: "back/a"}, strings.NewReader(""))
		}, [][]string{{"zfs", "recv", "back/a"}}},
		{"abort receive", "", func(c *CLI) error { return c.AbortReceive(ctx, "back/a") },
			[][]string{{"zfs", "recv", "-A", "back/a"}}},
		{"version", "zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n", func(c *CLI) error { _, err := c.Version(ctx); return err },
			[][]string{{"zfs", "version"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFakeRunner()
			f.Fallback = func(Cmd) (FakeResponse, bool) { return FakeResponse{Stdout: tt.stdout}, true }
			c := New(WithRunner(f))
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			wantArgv(t, f, tt.want...)
			for _, call := range f.Calls() {
				if !reflect.DeepEqual(call.Env, []string{"LC_ALL=C"}) {
					t.Errorf("env = %q, want LC_ALL=C", call.Env)
				}
			}
		})
	}
}

// TestVerbsRejectBadInput checks that nothing malformed reaches zfs.
func TestVerbsRejectBadInput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *CLI) error
	}{
		{"get no names", func(c *CLI) error { _, err := c.Get(ctx, nil, []string{"guid"}); return err }},
		{"get bad prop", func(c *CLI) error { _, err := c.Get(ctx, []string{"tank"}, []string{"a,b"}); return err }},
		{"set no props", func(c *CLI) error { return c.Set(ctx, "tank/a", nil) }},
		{"set option-like prop", func(c *CLI) error { return c.Set(ctx, "tank/a", map[string]string{"-r": "x"}) }},
		{"set bad name", func(c *CLI) error { return c.Set(ctx, "tank/a/", map[string]string{"a:b": "x"}) }},
		{"inherit bad prop", func(c *CLI) error { return c.Inherit(ctx, "tank/a", "a=b") }},
		{"create snapshot name", func(c *CLI) error { return c.Create(ctx, "tank/a@s", nil, false) }},
		{"snapshot two pools", func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/a@s", "pool2/a@s"}, nil) }},
		{"snapshot twice one dataset", func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/a@s", "tank/a@t"}, nil) }},
		{"snapshot none", func(c *CLI) error { return c.Snapshot(ctx, nil, nil) }},
		{"snapshot dataset name", func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/a"}, nil) }},
		{"hold empty tag", func(c *CLI) error { return c.Hold(ctx, "", []string{"tank/a@s"}) }},
		{"hold option tag", func(c *CLI) error { return c.Hold(ctx, "-r", []string{"tank/a@s"}) }},
		{"hold bookmark", func(c *CLI) error { return c.Hold(ctx, "t", []string{"tank/a#s"}) }},
		{"release none", func(c *CLI) error { return c.Release(ctx, "t", nil) }},
		{"holds dataset", func(c *CLI) error { _, err := c.Holds(ctx, []string{"tank/a"}); return err }},
		{"bookmark to snapshot", func(c *CLI) error { return c.Bookmark(ctx, "tank/a@s", "tank/a@t") }},
		{"bookmark other pool", func(c *CLI) error { return c.Bookmark(ctx, "tank/a@s", "pool2/a#t") }},
		{"destroy bad short", func(c *CLI) error { return c.DestroySnapshots(ctx, "tank/a", []string{"a,b"}) }},
		{"destroy empty short", func(c *CLI) error { return c.DestroySnapshots(ctx, "tank/a", []string{""}) }},
		{"destroy snapshot as dataset", func(c *CLI) error { return c.DestroySnapshots(ctx, "tank/a@s", []string{"x"}) }},
		{"destroy bookmarks snapshot", func(c *CLI) error { return c.DestroyBookmarks(ctx, []string{"tank/a@s"}) }},
		{"rename across kinds", func(c *CLI) error { return c.Rename(ctx, "tank/a@s", "tank/b") }},
		{"rename snapshot across datasets", func(c *CLI) error { return c.Rename(ctx, "tank/a@s", "tank/b@s") }},
		{"rollback dataset", func(c *CLI) error { return c.Rollback(ctx, "tank/a") }},
		{"recv bookmark target", func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/a#b"}, strings.NewReader("")) }},
		{"recv set and exclude", func(c *CLI) error {
			return c.Receive(ctx, RecvOptions{Target: "tank/a", Set: map[string]string{"x:y": "1"}, Exclude: []string{"x:y"}}, strings.NewReader(""))
		}},
		{"recv nil stream", func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/a"}, nil) }},
		{"abort snapshot", func(c *CLI) error { return c.AbortReceive(ctx, "tank/a@s") }},
		{"decode bad token", func(c *CLI) error { _, err := c.DecodeResumeToken(ctx, "-v"); return err }},
		{"send unvalidated", func(c *CLI) error { _, err := c.Send(ctx, ValidatedSend{}); return err }},
		{"send size unvalidated", func(c *CLI) error { _, err := c.SendSize(ctx, ValidatedSend{}); return err }},
	}
	for _, tt := range tests {
		f := NewFakeRunner()
		c := New(WithRunner(f))
		if err := tt.call(c); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
		if calls := f.Calls(); len(calls) != 0 {
			t.Errorf("%s: ran %q", tt.name, argvOf(calls))
		}
	}
}

func TestOptions(t *testing.T) {
	f := NewFakeRunner()
	f.Fallback = func(Cmd) (FakeResponse, bool) { return FakeResponse{}, true }
	var traced [][]string
	c := New(WithRunner(f), WithBinary("/sbin/zfs"), WithEnv("LC_ALL=fr_FR", "ZFS_VERBOSE=1"),
		WithTrace(func(argv []string, _ time.Duration, err error) { traced = append(traced, argv) }))
	if err := c.Rollback(context.Background(), "tank/a@s"); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Argv[0] != "/sbin/zfs" {
		t.Fatalf("calls = %+v", calls)
	}
	if want := []string{"ZFS_VERBOSE=1", "LC_ALL=C"}; !reflect.DeepEqual(calls[0].Env, want) {
		t.Errorf("env = %q, want %q", calls[0].Env, want)
	}
	if len(traced) != 1 || !reflect.DeepEqual(traced[0], calls[0].Argv) {
		t.Errorf("traced = %q", traced)
	}
	if c.Runner() != f {
		t.Error("Runner() is not the configured runner")
	}
}
