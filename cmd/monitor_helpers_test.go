package cmd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/snap"
)

// Helpers of the monitoring tests (check, status, metrics) that need no
// ZFS: a fake zfs binary that replays a listing, and a far side that
// cannot be reached.

// monEntry is one line of a fake `zfs list -H -p` listing.
type monEntry struct {
	name, typ string
	guid      uint64
	txg       uint64
	created   time.Time
	userrefs  int
}

func (e monEntry) String() string {
	refs := "-"
	if e.typ == "snapshot" {
		refs = fmt.Sprint(e.userrefs)
	}
	return strings.Join([]string{e.name, e.typ, fmt.Sprint(e.guid), fmt.Sprint(e.txg), fmt.Sprint(e.created.Unix()), refs, "-", "off", "-", "-", "-"}, "\t")
}

func monFS(name string, txg uint64) monEntry {
	return monEntry{name: name, typ: "filesystem", guid: 1000 + txg, txg: txg, created: time.Unix(1700000000, 0)}
}

// monSnap is a snapshot named prefix+its time (as zsync snap names them)
// when short is empty.
func monSnap(ds, short string, guid, txg uint64, created time.Time) monEntry {
	if short == "" {
		short = snap.Name("zsync_", created)
	}
	return monEntry{name: ds + "@" + short, typ: "snapshot", guid: guid, txg: txg, created: created}
}

func monBookmark(ds, short string, guid, txg uint64, created time.Time) monEntry {
	return monEntry{name: ds + "#" + short, typ: "bookmark", guid: guid, txg: txg, created: created}
}

func monListing(es ...monEntry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.String() + "\n")
	}
	return b.String()
}

// fakeZFSBinary writes a zfs stand-in for zfs_binary: `list` prints
// listing whatever is asked, `snapshot` succeeds (and is logged to the
// returned file), anything else fails.
func fakeZFSBinary(t *testing.T, listing string) (bin, calls string) {
	t.Helper()
	dir := t.TempDir()
	lp, calls := filepath.Join(dir, "listing"), filepath.Join(dir, "calls")
	if err := os.WriteFile(lp, []byte(listing), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\ncase \"$1\" in\nlist) cat %q ;;\nsnapshot) ;;\n*) echo \"fake zfs: unexpected $*\" >&2; exit 1 ;;\nesac\n", calls, lp)
	bin = filepath.Join(dir, "zfs")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, calls
}

// unreachableRemote is a [job.remote] on 127.0.0.1 at a port nothing
// listens on, with a client key and an empty known_hosts: dialing fails
// with "connection refused" (error_kind ssh_connect).
func unreachableRemote(t *testing.T) (port int, identity, knownHosts string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	identity, knownHosts = filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(identity, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(knownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return port, identity, knownHosts
}

func unreachableRemoteConfig(t *testing.T) string {
	port, id, kh := unreachableRemote(t)
	return fmt.Sprintf("  [job.remote]\n  host = \"127.0.0.1\"\n  port = %d\n  user = \"zsync\"\n  identity_file = %q\n  known_hosts = %q\n  connect_timeout = \"5s\"\n", port, id, kh)
}

// monConfig writes a config with its own state dir (and zfs_binary when
// set) followed by body, and returns its path and the state dir.
func monConfig(t *testing.T, zfsBin, body string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	var b bytes.Buffer
	fmt.Fprintf(&b, "[global]\nstate_dir = %q\nmetrics_file = %q\n", stateDir, filepath.Join(dir, "zsync.prom"))
	if zfsBin != "" {
		fmt.Fprintf(&b, "zfs_binary = %q\n", zfsBin)
	}
	b.WriteString("\n" + body)
	path = filepath.Join(dir, "zsync.toml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

func metricsFileOf(cfgPath string) string { return filepath.Join(filepath.Dir(cfgPath), "zsync.prom") }
