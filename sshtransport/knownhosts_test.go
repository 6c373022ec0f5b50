package sshtransport

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestHostKeyStrictUnknown(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	o.KnownHostsFile = filepath.Join(f.home, "etc", "zsync", "known_hosts") // does not exist
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("err = %v, want ErrHostKeyUnknown", err)
	}
	fp := ssh.FingerprintSHA256(f.sshd.hostKeys[0].PublicKey())
	for _, want := range []string{
		"host key for " + f.sshd.addr() + " is unknown",
		fp,
		"ssh-keyscan -p " + strconv.Itoa(f.sshd.port) + " 127.0.0.1 >> " + o.KnownHostsFile,
		`host_key_policy = "accept-new"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	assertOneLine(t, err)
	var hkErr *HostKeyError
	if !errors.As(err, &hkErr) || hkErr.Fingerprint != fp || hkErr.Addr != f.sshd.addr() {
		t.Errorf("HostKeyError fields: %+v", hkErr)
	}
	if errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrConnect) || errors.Is(err, ErrAuth) {
		t.Error("unknown host error matches another sentinel")
	}
	if _, err := os.Stat(o.KnownHostsFile); !os.IsNotExist(err) {
		t.Errorf("strict policy touched known_hosts: %v", err)
	}
}

func TestHostKeyAcceptNewThenStrict(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	o.KnownHostsFile = filepath.Join(f.home, "etc", "zsync", "known_hosts")
	o.HostKeyPolicy = HostKeyAcceptNew
	c := f.dial(t, o)
	_ = c.Close()

	data, err := os.ReadFile(o.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := knownhosts.Line([]string{f.sshd.addr()}, f.sshd.hostKeys[0].PublicKey()) + "\n"
	if string(data) != want {
		t.Errorf("known_hosts = %q, want %q", data, want)
	}
	if st, _ := os.Stat(o.KnownHostsFile); st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(o.KnownHostsFile)); st.Mode().Perm() != 0o700 {
		t.Errorf("known_hosts dir mode %v, want 0700", st.Mode().Perm())
	}
	if !f.logs.find("warn", "recorded new host key") {
		t.Error("recording a host key was not logged")
	}

	o.HostKeyPolicy = HostKeyStrict
	c = f.dial(t, o)
	_ = c.Close()
	after, _ := os.ReadFile(o.KnownHostsFile)
	if string(after) != want {
		t.Errorf("a known host was recorded again: %q", after)
	}
}

func TestHostKeyAcceptNewKeepsLastLine(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	other := newEd25519Signer(t).PublicKey()
	existing := knownhosts.Line([]string{"other.example.net"}, other) // no trailing newline
	if err := os.WriteFile(o.KnownHostsFile, []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	o.HostKeyPolicy = HostKeyAcceptNew
	_ = f.dial(t, o).Close()
	data, _ := os.ReadFile(o.KnownHostsFile)
	want := existing + "\n" + knownhosts.Line([]string{f.sshd.addr()}, f.sshd.hostKeys[0].PublicKey()) + "\n"
	if string(data) != want {
		t.Errorf("known_hosts = %q, want %q", data, want)
	}
}

func TestHostKeyChangedRefused(t *testing.T) {
	for _, policy := range []HostKeyPolicy{HostKeyStrict, HostKeyAcceptNew} {
		t.Run(policy.String(), func(t *testing.T) {
			f := newDialFixture(t)
			o := f.opts()
			o.HostKeyPolicy = policy
			old := newEd25519Signer(t).PublicKey()
			content := knownhosts.Line([]string{f.sshd.addr()}, old) + "\n"
			if err := os.WriteFile(o.KnownHostsFile, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Dial(context.Background(), o)
			if !errors.Is(err, ErrHostKeyMismatch) {
				t.Fatalf("err = %v, want ErrHostKeyMismatch", err)
			}
			for _, want := range []string{"CHANGED", "man-in-the-middle", ssh.FingerprintSHA256(old),
				ssh.FingerprintSHA256(f.sshd.hostKeys[0].PublicKey()), o.KnownHostsFile + ":1"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
			assertOneLine(t, err)
			if errors.Is(err, ErrHostKeyUnknown) {
				t.Error("mismatch also matches ErrHostKeyUnknown")
			}
			if data, _ := os.ReadFile(o.KnownHostsFile); string(data) != content {
				t.Errorf("known_hosts changed to %q", data)
			}
		})
	}
}

func TestHostKeyRevoked(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	revoked := "@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(f.sshd.hostKeys[0].PublicKey()))) + "\n"
	if err := os.WriteFile(o.KnownHostsFile, []byte(revoked), 0o600); err != nil {
		t.Fatal(err)
	}
	o.HostKeyPolicy = HostKeyAcceptNew
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("err = %v, want ErrHostKeyMismatch about a revoked key", err)
	}
}

func TestHostKeyInsecure(t *testing.T) {
	f := newDialFixture(t)
	o := f.opts()
	o.KnownHostsFile = filepath.Join(f.home, "absent")
	o.HostKeyPolicy = HostKeyInsecure
	c := f.dial(t, o)
	rw, err := c.Exec(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rw, []byte("insecure but working"))
	_ = rw.Close()
	if !f.logs.find("warn", "HOST KEY CHECKING IS DISABLED") {
		t.Errorf("no loud warning logged; events: %q", f.logs.events)
	}
	if _, err := os.Stat(o.KnownHostsFile); !os.IsNotExist(err) {
		t.Error("insecure policy wrote known_hosts")
	}
}

// The server has ecdsa and ed25519 host keys; the library's default
// preference asks for ecdsa first. With only the ed25519 key known, Dial
// must ask for ed25519 to verify the host.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	ed, ec := newEd25519Signer(t), newECDSASigner(t)
	f := newDialFixture(t, ec, ed)
	o := f.opts()
	for _, known := range []ssh.Signer{ed, ec} {
		line := knownhosts.Line([]string{f.sshd.addr()}, known.PublicKey()) + "\n"
		if err := os.WriteFile(o.KnownHostsFile, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = f.dial(t, o).Close()
	}

	// Only an RSA key type known, which the server does not have: refused
	// as a possible attack, never silently accepted under accept-new.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaLine := knownhosts.Line([]string{f.sshd.addr()}, rsaPub) + "\n"
	if err := os.WriteFile(o.KnownHostsFile, []byte(rsaLine), 0o600); err != nil {
		t.Fatal(err)
	}
	o.HostKeyPolicy = HostKeyAcceptNew
	_, err = Dial(context.Background(), o)
	if !errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), "ssh-rsa") {
		t.Fatalf("err = %v, want ErrHostKeyMismatch naming the known key type", err)
	}
	assertOneLine(t, err)
}

func TestHostKeyAlgorithmsFor(t *testing.T) {
	for _, tc := range []struct {
		types []string
		want  []string
	}{
		{[]string{"ssh-ed25519"}, []string{"ssh-ed25519"}},
		{[]string{"ssh-rsa"}, []string{"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"}},
		{[]string{"ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"},
			[]string{"ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"}},
		{[]string{"ssh-mldsa-65"}, []string{"ssh-mldsa-65"}},
	} {
		if got := hostKeyAlgorithmsFor(tc.types); !slices.Equal(got, tc.want) {
			t.Errorf("hostKeyAlgorithmsFor(%q) = %q, want %q", tc.types, got, tc.want)
		}
	}
}

func TestHostKeyCheckerAlgorithms(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "known_hosts")
	ed := newEd25519Signer(t).PublicKey()
	ec := newECDSASigner(t).PublicKey()
	plain := knownhosts.Line([]string{"a.example:22"}, ed) + "\n" +
		knownhosts.Line([]string{"b.example:2222"}, ec) + "\n" +
		knownhosts.HashHostname(knownhosts.Normalize("c.example:22")) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ec))) + "\n"
	if err := os.WriteFile(file, []byte(plain), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr   string
		policy HostKeyPolicy
		want   []string
	}{
		{"a.example:22", HostKeyStrict, []string{"ssh-ed25519"}},
		{"b.example:2222", HostKeyStrict, []string{"ecdsa-sha2-nistp256"}},
		{"b.example:22", HostKeyStrict, nil}, // other port: unknown host, defaults
		{"c.example:22", HostKeyStrict, []string{"ecdsa-sha2-nistp256"}},
		{"a.example:22", HostKeyInsecure, nil},
	} {
		h, err := newHostKeyChecker(file, tc.addr, tc.policy, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.algorithms(); !slices.Equal(got, tc.want) {
			t.Errorf("%s (%v): algorithms %q, want %q", tc.addr, tc.policy, got, tc.want)
		}
	}

	// A @cert-authority line means certificates may be offered: defaults.
	ca := "@cert-authority *.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ec))) + "\n"
	if err := os.WriteFile(file, []byte(plain+ca), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := newHostKeyChecker(file, "a.example:22", HostKeyStrict, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.algorithms(); got != nil {
		t.Errorf("with a CA line: algorithms %q, want library defaults", got)
	}

	// A broken known_hosts file is an error naming it.
	if err := os.WriteFile(file, []byte("a.example ssh-ed25519 not-base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newHostKeyChecker(file, "a.example:22", HostKeyStrict, nil); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("broken known_hosts: err = %v", err)
	}
}

func TestParseHostKeyPolicy(t *testing.T) {
	for in, want := range map[string]HostKeyPolicy{
		"": HostKeyStrict, "strict": HostKeyStrict, "accept-new": HostKeyAcceptNew, "insecure": HostKeyInsecure,
	} {
		got, err := ParseHostKeyPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseHostKeyPolicy(%q) = %v, %v", in, got, err)
		}
		if in != "" && got.String() != in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	if _, err := ParseHostKeyPolicy("yes"); err == nil {
		t.Error("ParseHostKeyPolicy(yes) accepted")
	}
}
