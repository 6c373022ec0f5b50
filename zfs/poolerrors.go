package zfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gofrs/flock"
)

// PoolErrors are the permanent errors `zpool status -v` lists for a pool,
// by the dataset or snapshot they are in.
type PoolErrors struct {
	// Damaged are the datasets and snapshots (full names) with damaged
	// files or objects, sorted.
	Damaged []string `json:"damaged,omitempty"`
	// Other counts the entries no dataset could be named for (pool
	// metadata, a dataset destroyed since).
	Other int `json:"other,omitempty"`
}

// PoolErrors lists the permanent errors of the pool dataset lives in. zpool
// names a file of a mounted filesystem by its path, others as
// "dataset:path" or "snapshot:<0x...>"; both are turned into the name of
// the dataset or snapshot.
func (c *CLI) PoolErrors(ctx context.Context, dataset string) (PoolErrors, error) {
	if err := ValidateDataset(dataset); err != nil {
		return PoolErrors{}, err
	}
	pool := Pool(dataset)
	res, err := c.exec(ctx, []string{c.zpool, "status", "-v", pool}, nil)
	if err != nil {
		return PoolErrors{}, fmt.Errorf("zpool status: %w", classify(err, []string{pool}))
	}
	lines := errorLines(res.Stdout)
	if len(lines) == 0 {
		return PoolErrors{}, nil
	}
	out, err := c.run(ctx, "list", "-H", "-p", "-t", "filesystem,volume,snapshot", "-o", "name,mountpoint,mounted", "-r", pool)
	if err != nil {
		return PoolErrors{}, fmt.Errorf("zfs list: %w", classify(err, []string{pool}))
	}
	return resolveErrors(lines, out), nil
}

// errorLines are the entries after "errors: Permanent errors have been
// detected in the following files:" in zpool status -v output.
func errorLines(status []byte) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(status))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "errors:"):
			in = strings.Contains(l, "Permanent errors")
		case in && strings.TrimSpace(l) != "":
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// resolveErrors names the dataset or snapshot of each entry, given the
// pool's `zfs list -H -o name,mountpoint,mounted` lines.
func resolveErrors(lines []string, list []byte) PoolErrors {
	names := map[string]bool{}
	mounts := map[string]string{} // mountpoint -> filesystem
	for _, l := range strings.Split(string(list), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			continue
		}
		names[f[0]] = true
		if f[2] == "yes" && strings.HasPrefix(f[1], "/") {
			mounts[strings.TrimSuffix(f[1], "/")] = f[0]
		}
	}
	found := map[string]bool{}
	var pe PoolErrors
	for _, l := range lines {
		name := ""
		if strings.HasPrefix(l, "/") {
			best, ok := "", false
			for mp := range mounts {
				if (l == mp || strings.HasPrefix(l, mp+"/")) && (!ok || len(mp) > len(best)) {
					best, ok = mp, true
				}
			}
			if fs := mounts[best]; ok {
				name = fs
				if rest, ok := strings.CutPrefix(l[len(best):], "/.zfs/snapshot/"); ok {
					snap, _, _ := strings.Cut(rest, "/")
					if names[fs+"@"+snap] {
						name = fs + "@" + snap
					}
				}
			}
		} else {
			// the longest known name before a ':' (names may hold ':')
			for i := len(l) - 1; i > 0; i-- {
				if l[i] == ':' && names[l[:i]] {
					name = l[:i]
					break
				}
			}
		}
		if name == "" {
			pe.Other++
			continue
		}
		found[name] = true
	}
	for n := range found {
		pe.Damaged = append(pe.Damaged, n)
	}
	sort.Strings(pe.Damaged)
	return pe
}

// snapshotMountedAt returns where snapshot is mounted on this host ("" when
// it is not), in this process's mount namespace or init's; an error when
// neither can be read.
func snapshotMountedAt(snapshot string) (string, error) {
	read := 0
	var last error
	for _, f := range []string{"/proc/self/mounts", "/proc/1/mounts"} {
		b, err := os.ReadFile(f)
		if err != nil {
			last = err
			continue
		}
		read++
		if at := mountedAt(b, snapshot); at != "" {
			return at, nil
		}
	}
	if read == 0 {
		return "", last
	}
	return "", nil
}

// LockHost takes the host-wide lock named name (a file in /run/lock, or
// the temporary directory), without waiting: ErrBusy when another process
// holds it.
func LockHost(name string) (unlock func(), err error) {
	dir := "/run/lock"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	h := sha256.Sum256([]byte(name))
	path := filepath.Join(dir, "zsync-"+hex.EncodeToString(h[:8])+".lock")
	// Another user's processes share the lock (a delegated serve and
	// root's). The kernel refuses an O_CREAT open of another user's file
	// in a sticky world-writable directory (fs.protected_regular), even
	// to root: so the file is made once, readable by all, and opened
	// read-only without O_CREAT (flock needs no write access).
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644); err == nil {
		f.Close()
	}
	l := flock.New(path, flock.SetFlag(os.O_RDONLY))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", l.Path(), err)
	}
	if !ok {
		return nil, fmt.Errorf("another zsync process holds %s (%s): %w", name, l.Path(), ErrBusy)
	}
	return func() { l.Unlock() }, nil
}

func mountedAt(mounts []byte, name string) string {
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[2] == "zfs" && unescapeMount(f[0]) == name {
			return unescapeMount(f[1])
		}
	}
	return ""
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a
// space, \011, \012, \134).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if v, ok := octal3(s[i+1:]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) < 3 {
		return 0, false
	}
	v := 0
	for _, c := range s[:3] {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
