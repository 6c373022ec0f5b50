package zfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestTypedErrors replays recorded stderr for each verb and checks the
// sentinel it maps to (nil: only the generic *Error, because the message
// names another object than the one asked about, or is not typed).
func TestTypedErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		argv   []string
		stderr string
		call   func(c *CLI) error
		want   error
	}{
		{"get not found", []string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid", "tank/nope"}, "open_notfound.txt",
			func(c *CLI) error { _, err := c.Get(ctx, []string{"tank/nope"}, []string{"guid"}); return err }, ErrDatasetNotFound},
		{"get other name", []string{"zfs", "get", "-H", "-p", "-o", "name,property,value,source", "guid", "tank/nope"}, "open_notfound_other.txt",
			func(c *CLI) error { _, err := c.Get(ctx, []string{"tank/nope"}, []string{"guid"}); return err }, nil},
		{"set not found", []string{"zfs", "set", "a:b=1", "tank/nope"}, "open_notfound.txt",
			func(c *CLI) error { return c.Set(ctx, "tank/nope", map[string]string{"a:b": "1"}) }, ErrDatasetNotFound},
		{"create exists", []string{"zfs", "create", "tank/a"}, "create_exists.txt",
			func(c *CLI) error { return c.Create(ctx, "tank/a", nil, false) }, ErrExists},
		{"create no parent", []string{"zfs", "create", "tank/x/y"}, "create_noparent.txt",
			func(c *CLI) error { return c.Create(ctx, "tank/x/y", nil, false) }, ErrDatasetNotFound},
		{"snapshot exists", []string{"zfs", "snapshot", "tank/a@s1", "tank/b@s1"}, "snapshot_exists.txt",
			func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/a@s1", "tank/b@s1"}, nil) }, ErrExists},
		{"snapshot no dataset", []string{"zfs", "snapshot", "tank/nope@s1"}, "snapshot_notfound.txt",
			func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/nope@s1"}, nil) }, ErrDatasetNotFound},
		{"snapshot permission", []string{"zfs", "snapshot", "tank/a@s1"}, "permission_denied.txt",
			func(c *CLI) error { return c.Snapshot(ctx, []string{"tank/a@s1"}, nil) }, ErrPermissionDenied},
		{"bookmark exists", []string{"zfs", "bookmark", "tank/a@s1", "tank/a#b"}, "bookmark_exists.txt",
			func(c *CLI) error { return c.Bookmark(ctx, "tank/a@s1", "tank/a#b") }, ErrExists},
		{"bookmark exists other", []string{"zfs", "bookmark", "tank/a@s1", "tank/a#c"}, "bookmark_exists.txt",
			func(c *CLI) error { return c.Bookmark(ctx, "tank/a@s1", "tank/a#c") }, nil},
		// zfs opens the source first; the message names tank/nope, not the
		// snapshot or bookmark asked about, so it stays generic.
		{"bookmark source dataset missing", []string{"zfs", "bookmark", "tank/nope@s", "tank/nope#b"}, "open_notfound.txt",
			func(c *CLI) error { return c.Bookmark(ctx, "tank/nope@s", "tank/nope#b") }, nil},
		{"rename exists", []string{"zfs", "rename", "tank/a", "tank/b"}, "rename_exists.txt",
			func(c *CLI) error { return c.Rename(ctx, "tank/a", "tank/b") }, ErrExists},
		{"rollback not latest", []string{"zfs", "rollback", "tank/a@s1"}, "rollback_notlatest.txt",
			func(c *CLI) error { return c.Rollback(ctx, "tank/a@s1") }, ErrNotMostRecent},
		{"recv modified", []string{"zfs", "recv", "tank/b"}, "recv_modified.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrDestinationModified},
		{"recv modified other dataset", []string{"zfs", "recv", "tank/b"}, "recv_modified_other.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, nil},
		{"recv exists", []string{"zfs", "recv", "tank/b"}, "recv_exists.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrExists},
		{"recv mismatch", []string{"zfs", "recv", "tank/b"}, "recv_mismatch.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrIncrementalMismatch},
		{"recv has snapshots", []string{"zfs", "recv", "-F", "tank/b"}, "recv_hassnaps.txt",
			func(c *CLI) error {
				return c.Receive(ctx, RecvOptions{Target: "tank/b", Force: true}, strings.NewReader("x"))
			}, ErrDestinationHasSnapshots},
		{"recv partial state", []string{"zfs", "recv", "tank/b"}, "recv_partial.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrPartialReceive},
		{"recv quota exceeded", []string{"zfs", "recv", "tank/b"}, "recv_quota_2.1.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrNoSpace},
		{"recv snapshot exists", []string{"zfs", "recv", "tank/b"}, "recv_snapexists.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrExists},
		{"recv read failure", []string{"zfs", "recv", "tank/b"}, "recv_readfail.txt",
			func(c *CLI) error { return c.Receive(ctx, RecvOptions{Target: "tank/b"}, strings.NewReader("x")) }, ErrStreamIncomplete},
		{"recv -A not found", []string{"zfs", "recv", "-A", "tank/nope"}, "open_notfound.txt",
			func(c *CLI) error { return c.AbortReceive(ctx, "tank/nope") }, ErrDatasetNotFound},
		{"send size stale token", []string{"zfs", "send", "-n", "-P", "-t", "1-ab-12-cd"}, "send_stale_token.txt",
			func(c *CLI) error {
				v, _ := SendOptions{ResumeToken: "1-ab-12-cd"}.Validate()
				_, err := c.SendSize(ctx, v)
				return err
			}, ErrResumeTokenStale},
		{"send size replaced token", []string{"zfs", "send", "-n", "-P", "-t", "1-ab-12-cd"}, "send_stale_token_replaced.txt",
			func(c *CLI) error {
				v, _ := SendOptions{ResumeToken: "1-ab-12-cd"}.Validate()
				_, err := c.SendSize(ctx, v)
				return err
			}, ErrResumeTokenStale},
		{"send size corrupt token", []string{"zfs", "send", "-n", "-P", "-t", "1-ab-12-cd"}, "send_corrupt_token.txt",
			func(c *CLI) error {
				v, _ := SendOptions{ResumeToken: "1-ab-12-cd"}.Validate()
				_, err := c.SendSize(ctx, v)
				return err
			}, ErrResumeTokenCorrupt},
		{"send size snapshot missing", []string{"zfs", "send", "-n", "-P", "tank/nope@s"}, "open_notfound.txt",
			func(c *CLI) error {
				v, _ := SendOptions{To: "tank/nope@s"}.Validate()
				_, err := c.SendSize(ctx, v)
				return err
			}, ErrDatasetNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			f.Expect(tt.argv, fail(t, tt.stderr))
			err := tt.call(c)
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("%v does not wrap *Error", err)
			} else if ce.ExitCode != 1 || !strings.Contains(err.Error(), strings.SplitN(stderrFixture(t, tt.stderr), "\n", 2)[0]) {
				t.Errorf("error %q lacks exit code or stderr", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.want)
			}
			for _, s := range allSentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("err = %v also matches %v", err, s)
				}
			}
		})
	}
}

var allSentinels = []error{
	ErrDatasetNotFound, ErrExists, ErrSnapshotHeld, ErrSnapshotCloned, ErrHoldExists, ErrNoSuchHold,
	ErrDestinationModified, ErrIncrementalMismatch, ErrDestinationHasSnapshots, ErrPartialReceive,
	ErrStreamIncomplete, ErrResumeTokenCorrupt, ErrResumeTokenStale, ErrNotMostRecent, ErrBusy,
	ErrPermissionDenied, ErrNoSpace,
}

func TestErrorMessageAndBounds(t *testing.T) {
	e := &Error{Args: []string{"zfs", "destroy", "tank/my fs@a"}, Stderr: "cannot destroy: x\n", ExitCode: 1}
	if got, want := e.Error(), `zfs destroy "tank/my fs@a": exit status 1: cannot destroy: x`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// a batched destroy's long argument is shortened in the message only
	arg := "tank/a@" + strings.Repeat("s,", 40000) + "end"
	e1 := &Error{Args: []string{"zfs", "destroy", arg}, Stderr: "cannot destroy snapshot tank/a@s: dataset is busy\n", ExitCode: 1}
	msg := e1.Error()
	if len(msg) > 2<<10 || !strings.HasPrefix(msg, "zfs destroy tank/a@s,s,") || !strings.Contains(msg, fmt.Sprintf(" ...[%d bytes]... ", len(arg)-1024)) ||
		!strings.HasSuffix(msg, "s,s,end: exit status 1: cannot destroy snapshot tank/a@s: dataset is busy") {
		t.Errorf("Error() of a long argv = %.300q... (%d bytes)", msg, len(msg))
	}
	if e1.Args[2] != arg {
		t.Errorf("Args changed")
	}
	cause := context.Canceled
	e2 := &Error{Args: []string{"zfs"}, ExitCode: -1, Err: cause}
	if !errors.Is(e2, context.Canceled) {
		t.Error("*Error does not unwrap its cause")
	}
	long := strings.Repeat("a", 3000) + strings.Repeat("z", 3000)
	b := boundStderr(long, maxErrStderr)
	if len(b) > maxErrStderr+16 || !strings.HasPrefix(b, "aaa") || !strings.HasSuffix(b, "zzz") || !strings.Contains(b, "[...]") {
		t.Errorf("boundStderr kept %d bytes: %q...", len(b), b[:20])
	}
	c, f := newFake(t)
	f.Expect([]string{"zfs", "rollback", "tank/a@s"}, FakeResponse{Stderr: long, ExitCode: 1})
	err := c.Rollback(context.Background(), "tank/a@s")
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Stderr) > maxErrStderr+16 {
		t.Errorf("stderr in *Error not bounded: %v", err)
	}
}

func TestResumableRecvErrorUnwraps(t *testing.T) {
	err := error(&ResumableRecvError{Dataset: "tank/b", Token: "1-aa-bb-cc"})
	if !errors.Is(err, ErrPartialReceive) {
		t.Error("ResumableRecvError does not unwrap to ErrPartialReceive")
	}
	if !strings.Contains(err.Error(), "tank/b") {
		t.Errorf("message %q lacks the dataset", err)
	}
}

func TestBatchErrorMessages(t *testing.T) {
	de := &DestroyError{Dataset: "tank/a", Failed: map[string]error{"s2": ErrSnapshotHeld, "s1": ErrSnapshotCloned}}
	if got, want := de.Error(), "zfs: cannot destroy 2 snapshot(s) of tank/a: @s1: "+ErrSnapshotCloned.Error()+"; @s2: "+ErrSnapshotHeld.Error(); got != want {
		t.Errorf("DestroyError = %q, want %q", got, want)
	}
	he := &HoldError{Op: "release", Tag: "t", Failed: map[string]error{"tank/a@s1": ErrNoSuchHold}}
	if got, want := he.Error(), `zfs: release "t" failed on 1 snapshot(s): tank/a@s1: `+ErrNoSuchHold.Error(); got != want {
		t.Errorf("HoldError = %q, want %q", got, want)
	}
	if !errors.Is(he, ErrNoSuchHold) || errors.Is(he, ErrHoldExists) {
		t.Error("HoldError unwrapping")
	}
}
