package zfs

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSendValidate(t *testing.T) {
	tests := []struct {
		o  SendOptions
		ok bool
	}{
		{SendOptions{To: "tank/a@s1"}, true},
		{SendOptions{To: "tank/my fs@snap 1", Raw: true}, true},
		{SendOptions{From: "tank/a@s1", To: "tank/a@s2"}, true},
		{SendOptions{From: "tank/a@s1", To: "tank/a@s2", Intermediates: true}, true},
		{SendOptions{From: "tank/a#c1", To: "tank/a@s2"}, true},
		{SendOptions{ResumeToken: "1-e604ea4bf-e0-789c63"}, true},
		{SendOptions{}, false},
		{SendOptions{To: "tank/a"}, false},
		{SendOptions{To: "tank/a#b"}, false},
		{SendOptions{To: "tank/a@s1", Intermediates: true}, false},
		{SendOptions{From: "tank/a#c1", To: "tank/a@s2", Intermediates: true}, false},
		{SendOptions{From: "tank/b@s1", To: "tank/a@s2"}, false},
		{SendOptions{From: "tank/a@s2", To: "tank/a@s2"}, false},
		{SendOptions{From: "tank/a", To: "tank/a@s2"}, false},
		{SendOptions{From: "s1", To: "tank/a@s2"}, false},
		{SendOptions{ResumeToken: "1-e6-e0-78", To: "tank/a@s2"}, false},
		{SendOptions{ResumeToken: "1-e6-e0-78", Raw: true}, false},
		{SendOptions{ResumeToken: "-v"}, false},
		{SendOptions{ResumeToken: "1-xyz-e0-78"}, false},
	}
	for _, tt := range tests {
		v, err := tt.o.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tt.o, err, tt.ok)
		}
		if err == nil && v.Options() != tt.o {
			t.Errorf("Options() = %+v, want %+v", v.Options(), tt.o)
		}
	}
}

func mustValidate(t *testing.T, o SendOptions) ValidatedSend {
	t.Helper()
	v, err := o.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSendStreamSuccess(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "send", "tank/a@s1"}, FakeResponse{Stdout: "STREAMDATA"})
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s1"}))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil || string(data) != "STREAMDATA" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after success: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A send that fails mid-stream must not look like a clean EOF.
func TestSendStreamFailureIsNotEOF(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "send", "-i", "tank/a@s1", "tank/a@s2"}, FakeResponse{
		Stdout: "PARTIAL", Stderr: stderrFixture(t, "send_io_error.txt"), ExitCode: 1,
	})
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{From: "tank/a@s1", To: "tank/a@s2"}))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if string(data) != "PARTIAL" {
		t.Errorf("data = %q", data)
	}
	var ce *Error
	if err == nil || !errors.As(err, &ce) || !strings.Contains(ce.Stderr, "Input/output error") {
		t.Fatalf("ReadAll err = %v, want the process's error", err)
	}
	// Later reads and Close keep reporting it.
	if _, err2 := r.Read(make([]byte, 1)); !errors.As(err2, &ce) {
		t.Errorf("second Read = %v", err2)
	}
	if cerr := r.Close(); !errors.As(cerr, &ce) {
		t.Errorf("Close = %v, want the process's error", cerr)
	}
}

func TestSendStreamStaleTokenTyped(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "send", "-t", "1-ab-12-cd"}, fail(t, "send_stale_token.txt"))
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{ResumeToken: "1-ab-12-cd"}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, ErrResumeTokenStale) {
		t.Errorf("err = %v, want ErrResumeTokenStale", err)
	}
}

func TestSendCloseEarlyKills(t *testing.T) {
	c, f := newFake(t)
	f.Expect([]string{"zfs", "send", "tank/a@s1"}, FakeResponse{Stdout: strings.Repeat("x", 1000)})
	r, err := c.Send(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close of a killed send = %v, want nil", err)
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
}

func TestSendStartFailure(t *testing.T) {
	c, _ := newFake(t)
	_, err := c.Send(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s1"}))
	var ce *Error
	if !errors.As(err, &ce) || ce.ExitCode != -1 {
		t.Errorf("err = %v, want *Error with exit -1", err)
	}
}

func TestSendSize(t *testing.T) {
	tests := []struct {
		stdout, stderr string
		want           int64
		ok             bool
	}{
		{"full\ttank/a@s1\t4248112\nsize\t4248112\n", "", 4248112, true},
		{"incremental\ttank/a@s1\ttank/a@s2\t1234\nsize\t1234\n", "", 1234, true},
		{"", "full\ttank/a@s1\t99\nsize\t99\n", 99, true},
		{"full\ttank/a@s1\t99\n", "", 0, false},
		{"size\tlots\n", "", 0, false},
	}
	for _, tt := range tests {
		c, f := newFake(t)
		f.Expect([]string{"zfs", "send", "-n", "-P", "tank/a@s1"}, FakeResponse{Stdout: tt.stdout, Stderr: tt.stderr})
		got, err := c.SendSize(context.Background(), mustValidate(t, SendOptions{To: "tank/a@s1"}))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("SendSize(%q, %q) = %d, %v; want %d ok=%v", tt.stdout, tt.stderr, got, err, tt.want, tt.ok)
		}
	}
}
