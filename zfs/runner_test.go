package zfs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// script writes an executable /bin/sh script (fixed content) and returns
// its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fakezfs")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecRunnerRun(t *testing.T) {
	p := script(t, `echo "out $LC_ALL ${LANG:-nolang} $1"; echo "err line" >&2; exit 3`)
	t.Setenv("LANG", "de_DE.UTF-8")
	res, err := ExecRunner{}.Run(context.Background(), Cmd{Argv: []string{p, "arg with space"}, Env: []string{"LC_ALL=C"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "out C nolang arg with space\n" || string(res.Stderr) != "err line\n" {
		t.Errorf("res = %+v (stdout %q stderr %q)", res, res.Stdout, res.Stderr)
	}
}

func TestExecRunnerStdin(t *testing.T) {
	res, err := ExecRunner{}.Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: strings.NewReader("stream bytes")})
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "stream bytes" {
		t.Errorf("res = %+v, %v", res, err)
	}
}

func TestExecRunnerErrors(t *testing.T) {
	if _, err := (ExecRunner{}).Run(context.Background(), Cmd{Argv: []string{"/nonexistent/zfs"}}); err == nil {
		t.Error("missing binary: no error")
	}
	if _, err := (ExecRunner{}).Run(context.Background(), Cmd{}); err == nil {
		t.Error("empty argv: no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ExecRunner{}.Run(ctx, Cmd{Argv: []string{"sleep", "10"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled run: %v after %v", err, time.Since(start))
	}
}

func TestExecSendFailureReportsStderr(t *testing.T) {
	p := script(t, `head -c 200000 /dev/zero; echo "warning: cannot send 'tank/a@s2': Input/output error" >&2; exit 1`)
	c := New(WithBinary(p))
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s2"}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	var ce *Error
	if n != 200000 || !errors.As(err, &ce) || ce.ExitCode != 1 || !strings.Contains(ce.Stderr, "Input/output error") {
		t.Errorf("copied %d, err = %v; want 200000 and the process error", n, err)
	}
}

func TestExecSendSuccessAndArgs(t *testing.T) {
	p := script(t, `echo "$@"`)
	c := New(WithBinary(p))
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{From: "tank/a b#c", To: "tank/a b@s", Raw: true}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil || string(out) != "send -w -i tank/a b#c tank/a b@s\n" {
		t.Errorf("out = %q, %v", out, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestExecSendCloseKills(t *testing.T) {
	p := script(t, `exec yes`)
	c := New(WithBinary(p))
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close = %v, want nil for a send killed by Close", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

func TestExecSendContextCancel(t *testing.T) {
	p := script(t, `exec sleep 10`)
	c := New(WithBinary(p))
	ctx, cancel := context.WithCancel(context.Background())
	r, err := c.Send(ctx, mustValidate(t, SendOptions{To: "tank/a@s"}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = io.ReadAll(r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "LANG=de", "LC_MESSAGES=de", "LANGUAGE=de", "HOME=/root", "ZFS_X=old"}, []string{"ZFS_X=new", "LC_ALL=C"})
	want := []string{"PATH=/bin", "HOME=/root", "ZFS_X=new", "LC_ALL=C"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

func TestCapBuffer(t *testing.T) {
	b := &capBuffer{limit: 10}
	for _, s := range []string{"abc", "defgh", "ijklmnop", "qrstuvwxyz"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := string(b.Bytes()); got != "abcde\n[...]\nvwxyz" {
		t.Errorf("Bytes = %q", got)
	}
	small := &capBuffer{limit: 100}
	small.Write([]byte("short"))
	if got := string(small.Bytes()); got != "short" {
		t.Errorf("Bytes = %q", got)
	}
}
