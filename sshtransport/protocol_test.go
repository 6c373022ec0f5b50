package sshtransport

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeFar connects a Client to a far side that writes say and then keeps
// the connection open (hang) or closes it.
func fakeFar(t *testing.T, say string, hang bool) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		_, _ = b.Write([]byte(say))
		if hang {
			_, _ = io.Copy(io.Discard, b)
		}
		_ = b.Close()
	}()
	t.Cleanup(func() { _ = b.Close() })
	return a
}

func TestBannerNotZsync(t *testing.T) {
	for _, tc := range []struct {
		say, want string
	}{
		{"bash: zsync: command not found\n", `far side did not answer as zsync serve (got "bash: zsync: command not found")`},
		{"sh: 1: zsync: not found\n", `far side did not answer as zsync serve (got "sh: 1: zsync: not found")`},
		{"", `far side did not answer as zsync serve (got nothing: the connection closed)`},
		{"SSH-2.0-OpenSSH_9.6\r\n", `(got "SSH-2.0-OpenSSH_9.6")`},
		{strings.Repeat("x", 1000), `far side did not answer as zsync serve (got "xxxx`},
		{"ZSYNC-SERVEX 1 v1\n", `(got "ZSYNC-SERVEX 1 v1")`},
	} {
		_, err := NewClient(context.Background(), fakeFar(t, tc.say, false), ClientOptions{})
		if !errors.Is(err, ErrNotZsync) {
			t.Errorf("%q: err = %v, want ErrNotZsync", tc.say, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q lacks %q", tc.say, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line: %q", tc.say, err)
		}
	}
}

func TestBannerMalformed(t *testing.T) {
	for _, say := range []string{"ZSYNC-SERVE x v1\n", "ZSYNC-SERVE 1\n", "ZSYNC-SERVE 1 a b\n", "ZSYNC-SERVE 1 v1"} {
		_, err := NewClient(context.Background(), fakeFar(t, say, false), ClientOptions{})
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: err = %v, want ErrProtocol", say, err)
		}
	}
}

func TestBannerVersionMismatch(t *testing.T) {
	_, err := NewClient(context.Background(), fakeFar(t, "ZSYNC-SERVE 2 v9.0.0\n", true), ClientOptions{})
	var vm *VersionMismatchError
	if !errors.As(err, &vm) || vm.Local != ProtocolVersion || vm.Remote != 2 || vm.Peer != "v9.0.0" {
		t.Fatalf("err = %v, want *VersionMismatchError{1, 2}", err)
	}
	if !strings.Contains(err.Error(), "speaks protocol 1") || !strings.Contains(err.Error(), "speaks 2") {
		t.Errorf("unclear message: %q", err)
	}
}

func TestBannerSilence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := NewClient(ctx, fakeFar(t, "", true), ClientOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	// well below the 30s default: the context's 200ms deadline was used
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	// HandshakeTimeout bounds it without a context deadline.
	_, err = NewClient(context.Background(), fakeFar(t, "", true), ClientOptions{HandshakeTimeout: 100 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer from the far side within 100ms") {
		t.Fatalf("err = %v", err)
	}
}
