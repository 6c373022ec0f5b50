package sshtransport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says what Dial does with a host key that known_hosts does
// not vouch for. Whatever the policy, a key that differs from the one
// recorded for the host is refused, except under HostKeyInsecure.
type HostKeyPolicy int

const (
	// HostKeyStrict (the default) refuses hosts whose key is not in
	// known_hosts; the error says how to add it.
	HostKeyStrict HostKeyPolicy = iota
	// HostKeyAcceptNew records the key of a host known_hosts has no key for
	// (trust on first use) and refuses a changed key.
	HostKeyAcceptNew
	// HostKeyInsecure accepts any key and logs a loud warning on every
	// connection. For throw-away test setups only.
	HostKeyInsecure
)

// String returns the policy's configuration spelling: "strict",
// "accept-new" or "insecure".
func (p HostKeyPolicy) String() string {
	switch p {
	case HostKeyStrict:
		return "strict"
	case HostKeyAcceptNew:
		return "accept-new"
	case HostKeyInsecure:
		return "insecure"
	}
	return "HostKeyPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ParseHostKeyPolicy parses the configuration spelling of a policy ("" is
// strict).
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch s {
	case "", "strict":
		return HostKeyStrict, nil
	case "accept-new":
		return HostKeyAcceptNew, nil
	case "insecure":
		return HostKeyInsecure, nil
	}
	return 0, fmt.Errorf("unknown host key policy %q (want strict, accept-new or insecure)", s)
}

// HostKeyError is the error Dial returns when it refuses the far host's key.
// It unwraps to Kind (ErrHostKeyUnknown or ErrHostKeyMismatch) and to the
// underlying cause, if any. Its message is one line that says what to do.
type HostKeyError struct {
	Kind           error  // ErrHostKeyUnknown or ErrHostKeyMismatch
	Addr           string // host:port as checked in known_hosts
	KeyType        string // type of the key the host presented ("" if none)
	Fingerprint    string // SHA256 fingerprint of that key ("" if none)
	KnownHostsFile string
	msg            string
	cause          error
}

// Error implements error.
func (e *HostKeyError) Error() string { return e.msg }

// Unwrap returns Kind and the cause.
func (e *HostKeyError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

// hostKeyChecker verifies host keys for one Dial.
type hostKeyChecker struct {
	policy HostKeyPolicy
	file   string // known_hosts file
	port   int
	log    func(level, msg string, fields map[string]any)
	known  ssh.HostKeyCallback // nil under HostKeyInsecure
	// knownTypes are the key types known_hosts holds for the host, in file
	// order; hasCA is true when the file has @cert-authority lines.
	knownTypes []string
	hasCA      bool

	insecureOnce sync.Once // one warning per connection, not per re-key

	mu       sync.Mutex
	ok       bool          // a key was accepted
	refused  *HostKeyError // why the last key was refused
	accepted [][]byte      // keys recorded by this checker (accept-new)
}

// newHostKeyChecker loads file (a missing file holds no keys) for a
// connection to addr (host:port).
func newHostKeyChecker(file, addr string, policy HostKeyPolicy, log func(string, string, map[string]any)) (*hostKeyChecker, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	h := &hostKeyChecker{policy: policy, file: file, port: port, log: log}
	if policy == HostKeyInsecure {
		return h, nil
	}
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.known, err = knownhosts.New()
	case err != nil:
		return nil, fmt.Errorf("known_hosts: %w", err)
	default:
		h.hasCA = hasCertAuthority(data)
		h.known, err = knownhosts.New(file)
	}
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", file, err)
	}
	h.knownTypes = h.probeKnownTypes(addr)
	return h, nil
}

// hasCertAuthority reports whether known_hosts data has @cert-authority
// lines (host certificates may then be offered).
func hasCertAuthority(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("@cert-authority")) {
			return true
		}
	}
	return false
}

// probeKey is a public key no known_hosts line matches; checking it lists
// the keys known for a host.
type probeKey struct{}

func (probeKey) Type() string                                 { return "zsync-probe" }
func (probeKey) Marshal() []byte                              { return []byte("\x00\x00\x00\x0bzsync-probe") }
func (probeKey) Verify(data []byte, sig *ssh.Signature) error { return errors.New("probe key") }

// probeKnownTypes returns the distinct key types known_hosts records for
// addr.
func (h *hostKeyChecker) probeKnownTypes(addr string) []string {
	err := h.known(addr, &net.TCPAddr{IP: net.IPv4zero, Port: h.port}, probeKey{})
	var kerr *knownhosts.KeyError
	if !errors.As(err, &kerr) {
		return nil
	}
	var types []string
	for _, k := range kerr.Want {
		if !slices.Contains(types, k.Key.Type()) {
			types = append(types, k.Key.Type())
		}
	}
	return types
}

// hostKeyPreference is the order in which key algorithms are asked for
// when known_hosts knows several types for a host.
var hostKeyPreference = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// algorithms returns the host key algorithms to ask the server for: those
// matching the key types known_hosts holds for the host, so the server
// presents a key we can verify. It returns nil (the library's defaults)
// when no key is known, under HostKeyInsecure, or when known_hosts has
// @cert-authority lines.
func (h *hostKeyChecker) algorithms() []string {
	if h.policy == HostKeyInsecure || h.hasCA || len(h.knownTypes) == 0 {
		return nil
	}
	return hostKeyAlgorithmsFor(h.knownTypes)
}

// hostKeyAlgorithmsFor maps key types to signature algorithms (an RSA key
// can sign with rsa-sha2-512, rsa-sha2-256 and ssh-rsa).
func hostKeyAlgorithmsFor(types []string) []string {
	var algos []string
	for _, a := range hostKeyPreference {
		format := a
		if a == ssh.KeyAlgoRSASHA512 || a == ssh.KeyAlgoRSASHA256 {
			format = ssh.KeyAlgoRSA
		}
		if slices.Contains(types, format) {
			algos = append(algos, a)
		}
	}
	for _, t := range types {
		if !slices.Contains(algos, t) {
			algos = append(algos, t)
		}
	}
	return algos
}

// check is the ssh.HostKeyCallback. addr is host:port.
func (h *hostKeyChecker) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	if h.policy == HostKeyInsecure {
		h.mu.Lock()
		h.ok = true
		h.mu.Unlock()
		h.insecureOnce.Do(func() {
			h.logf("warn", "HOST KEY CHECKING IS DISABLED (host_key_policy = insecure): the connection to "+addr+
				" is not protected against man-in-the-middle attacks", map[string]any{
				"host": addr, "key_type": key.Type(), "fingerprint": fp,
			})
		})
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.ContainsFunc(h.accepted, func(b []byte) bool { return bytes.Equal(b, key.Marshal()) }) {
		h.ok = true
		return nil
	}
	err := h.known(addr, remote, key)
	if err == nil {
		h.ok = true
		return nil
	}
	base := HostKeyError{Addr: addr, KeyType: key.Type(), Fingerprint: fp, KnownHostsFile: h.file, cause: err}
	var kerr *knownhosts.KeyError
	var rerr *knownhosts.RevokedError
	switch {
	case errors.As(err, &rerr):
		base.Kind = ErrHostKeyMismatch
		base.msg = fmt.Sprintf("host key %s %s of %s is revoked (%s:%d); refusing to connect",
			key.Type(), fp, addr, rerr.Revoked.Filename, rerr.Revoked.Line)
	case errors.As(err, &kerr) && len(kerr.Want) > 0:
		var want []string
		for _, k := range kerr.Want {
			want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		base.Kind = ErrHostKeyMismatch
		base.msg = fmt.Sprintf("host key for %s has CHANGED: it presented %s %s but known_hosts has %s; possible man-in-the-middle attack, refusing to connect (if the host was reinstalled, verify the new fingerprint and replace its line in %s)",
			addr, key.Type(), fp, strings.Join(want, ", "), h.file)
	case errors.As(err, &kerr):
		if h.policy == HostKeyAcceptNew {
			if err := h.record(addr, key); err != nil {
				base.Kind = ErrHostKeyUnknown
				base.cause = err
				base.msg = fmt.Sprintf("host key for %s is unknown and could not be recorded: %v", addr, err)
				h.refused = &base
				return &base
			}
			h.logf("warn", "recorded new host key (host_key_policy = accept-new)", map[string]any{
				"host": addr, "key_type": key.Type(), "fingerprint": fp, "known_hosts": h.file,
			})
			h.ok = true
			return nil
		}
		base.Kind = ErrHostKeyUnknown
		base.msg = fmt.Sprintf("host key for %s is unknown; verify its fingerprint %s %s and add it with: %s, or set host_key_policy = \"accept-new\" once",
			addr, key.Type(), fp, h.keyscanHint(addr))
	default:
		base.Kind = ErrHostKeyUnknown
		base.msg = fmt.Sprintf("host key %s %s of %s not accepted: %v", key.Type(), fp, addr, err)
	}
	h.refused = &base
	return &base
}

// keyscanHint is the shell command that records addr's key in h.file.
func (h *hostKeyChecker) keyscanHint(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("ssh-keyscan -p %d %s >> %s", h.port, RemoteCommand(host), RemoteCommand(h.file))
}

// record appends key for addr to the known_hosts file, creating the file
// (0600) and its directory (0700) when missing.
func (h *hostKeyChecker) record(addr string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return fmt.Errorf("create known_hosts directory: %w", err)
	}
	line := knownhosts.Line([]string{addr}, key) + "\n"
	if st, err := os.Stat(h.file); err == nil && st.Size() > 0 {
		// Never glue our line onto a last line without a newline.
		if last, err := lastByte(h.file, st.Size()); err != nil {
			return err
		} else if last != '\n' {
			line = "\n" + line
		}
	}
	f, err := os.OpenFile(h.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open known_hosts: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	h.accepted = append(h.accepted, key.Marshal())
	return nil
}

// lastByte returns the byte at offset size-1 of file.
func lastByte(file string, size int64) (byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, fmt.Errorf("read known_hosts: %w", err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size-1); err != nil {
		return 0, fmt.Errorf("read known_hosts: %w", err)
	}
	return b[0], nil
}

// passed reports whether a host key was accepted.
func (h *hostKeyChecker) passed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok
}

// refusal returns the error of the last refused key, or nil.
func (h *hostKeyChecker) refusal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refused == nil {
		return nil
	}
	return h.refused
}

// logf forwards to the caller's logger, if any.
func (h *hostKeyChecker) logf(level, msg string, fields map[string]any) {
	if h.log != nil {
		h.log(level, msg, fields)
	}
}
