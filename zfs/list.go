package zfs

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ListOptions selects what List returns.
type ListOptions struct {
	// Depth: 0 lists the roots' whole subtrees (-r), -1 only the roots
	// themselves (no -r), N > 0 down to N levels below the roots (-d N).
	Depth int
	// Types restricts the kinds listed; nil means all four.
	Types []Type
	// UserProps are extra (user) properties to fetch into Entry.User, such
	// as "zsync:target-id".
	UserProps []string
	// SnapshotsChanged fetches the snapshots_changed property of datasets
	// into Entry.SnapshotsChanged (OpenZFS 2.2+; older zfs refuses the
	// listing with "invalid property").
	SnapshotsChanged bool
}

// snapshotsChangedProp is the column ListOptions.SnapshotsChanged adds.
const snapshotsChangedProp = "snapshots_changed"

// listProps are the columns List always asks for, in Entry field order.
var listProps = []string{
	"name", "type", "guid", "createtxg", "creation", "userrefs",
	"receive_resume_token", "encryption", "encryptionroot", "keystatus", "origin",
}

// listArgs builds the zfs list arguments (without the binary).
func (o ListOptions) args(roots []string) ([]string, error) {
	args := []string{"list", "-H", "-p"}
	switch {
	case o.Depth == 0:
		args = append(args, "-r")
	case o.Depth > 0:
		args = append(args, "-d", strconv.Itoa(o.Depth))
	case o.Depth != -1:
		return nil, fmt.Errorf("zfs list: invalid depth %d", o.Depth)
	}
	types := o.Types
	if len(types) == 0 {
		types = []Type{Filesystem, Volume, Snapshot, Bookmark}
	}
	ts := make([]string, len(types))
	for i, t := range types {
		switch t {
		case Filesystem, Volume, Snapshot, Bookmark:
			ts[i] = string(t)
		default:
			return nil, fmt.Errorf("zfs list: unknown type %q", t)
		}
	}
	props := append([]string(nil), listProps...)
	if o.SnapshotsChanged {
		props = append(props, snapshotsChangedProp)
	}
	for _, p := range o.UserProps {
		if err := validatePropName(p); err != nil {
			return nil, err
		}
		if !strings.Contains(p, ":") {
			return nil, fmt.Errorf("zfs list: %q is not a user property (no ':')", p)
		}
		props = append(props, p)
	}
	args = append(args, "-t", strings.Join(ts, ","), "-o", strings.Join(props, ","))
	for _, r := range roots {
		if err := ValidateDataset(r); err != nil {
			return nil, err
		}
	}
	return append(args, roots...), nil
}

// listProcs bounds the concurrent `zfs list` calls of one List, and
// listChunkMin is the fewest roots one of them is given: listing a
// dataset's snapshots is CPU-bound in the kernel (OpenZFS opens each
// snapshot), so a listing of many datasets' snapshots takes half the time
// in two calls at once on two CPUs (50 unmounted replicas of 11 snapshots
// on OpenZFS 2.3: 8.0 s in one call, 4.5 s in two).
const (
	listProcs    = 4
	listChunkMin = 8
)

// List lists roots (all pools when roots is empty) with `zfs list -H -p`
// and returns the datasets, snapshots and bookmarks in zfs's output order.
// Many roots, none of them given twice or inside another, are split into
// up to listProcs calls at once, each given a run of them in order, and
// their outputs joined in that order: the entries one call would give,
// grouped by root in the order of roots (one call may order them
// otherwise; callers group entries by dataset).
// A root that does not exist yields an error wrapping ErrDatasetNotFound
// that names it.
func (c *CLI) List(ctx context.Context, roots []string, o ListOptions) ([]Entry, error) {
	if _, err := o.args(roots); err != nil {
		return nil, err
	}
	procs := listProcs
	if !apart(roots) {
		procs = 1
	}
	type listed struct {
		es  []Entry
		err error
	}
	var entries []Entry
	for _, r := range atOnce(roots, procs, listChunkMin, func(chunk []string) listed {
		es, err := c.list(ctx, chunk, o)
		return listed{es, err}
	}) {
		if r.err != nil {
			return nil, r.err
		}
		entries = append(entries, r.es...)
	}
	return entries, nil
}

// apart reports whether no root is given twice or lies below another.
func apart(roots []string) bool {
	seen := make(map[string]bool, len(roots))
	for _, r := range roots {
		if seen[r] {
			return false
		}
		seen[r] = true
	}
	for _, r := range roots {
		for p := r; ; {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			if p = p[:i]; seen[p] {
				return false
			}
		}
	}
	return true
}

// list runs ONE `zfs list -H -p` over roots.
func (c *CLI) list(ctx context.Context, roots []string, o ListOptions) ([]Entry, error) {
	args, err := o.args(roots)
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("zfs list: %w", classify(err, roots))
	}
	entries, err := parseListWith(out, o.UserProps, o.SnapshotsChanged)
	if err != nil {
		return nil, fmt.Errorf("zfs list: %w", err)
	}
	return entries, nil
}

// parseList parses `zfs list -H -p -o <listProps>,<userProps...>` output.
func parseList(out []byte, userProps []string) ([]Entry, error) {
	return parseListWith(out, userProps, false)
}

// parseListWith parses `zfs list -H -p -o <listProps>[,snapshots_changed],<userProps...>`
// output.
func parseListWith(out []byte, userProps []string, snapsChanged bool) ([]Entry, error) {
	base := len(listProps)
	if snapsChanged {
		base++
	}
	want := base + len(userProps)
	var entries []Entry
	for i, line := range splitLines(out) {
		f := strings.Split(line, "\t")
		if len(f) != want {
			return nil, fmt.Errorf("line %d: %d fields, want %d: %q", i+1, len(f), want, line)
		}
		e := Entry{
			Name:           f[0],
			Type:           Type(f[1]),
			ResumeToken:    unset(f[6]),
			Encryption:     unset(f[7]),
			EncryptionRoot: unset(f[8]),
			KeyStatus:      unset(f[9]),
			Origin:         unset(f[10]),
		}
		validate, ok := entryNameCheck[e.Type]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown type %q", i+1, f[1])
		}
		if err := validate(e.Name); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", i+1, e.Type, err)
		}
		var err error
		if e.GUID, err = parseUint(f[2]); err != nil {
			return nil, fmt.Errorf("line %d: guid: %w", i+1, err)
		}
		if e.CreateTXG, err = parseUint(f[3]); err != nil {
			return nil, fmt.Errorf("line %d: createtxg: %w", i+1, err)
		}
		creation, err := parseUint(f[4])
		if err != nil {
			return nil, fmt.Errorf("line %d: creation: %w", i+1, err)
		}
		if creation != 0 {
			e.Creation = time.Unix(int64(creation), 0).UTC()
		}
		if e.UserRefs, err = parseUint(f[5]); err != nil {
			return nil, fmt.Errorf("line %d: userrefs: %w", i+1, err)
		}
		if snapsChanged && f[len(listProps)] != "-" {
			// 0 is what a dataset that never recorded a change may show
			if e.SnapshotsChanged, err = parseUint(f[len(listProps)]); err != nil {
				return nil, fmt.Errorf("line %d: snapshots_changed: %w", i+1, err)
			}
		}
		for j, p := range userProps {
			if v := f[base+j]; v != "-" {
				if e.User == nil {
					e.User = map[string]string{}
				}
				e.User[p] = v
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// entryNameCheck is the name check of each type List returns: no entry
// leaves parseList with a name that a verb would refuse, nor a snapshot
// name on a filesystem line.
var entryNameCheck = map[Type]func(string) error{
	Filesystem: ValidateDataset,
	Volume:     ValidateDataset,
	Snapshot:   ValidateSnapshot,
	Bookmark:   ValidateBookmark,
}

// splitLines splits output into lines without the trailing empty one.
func splitLines(out []byte) []string {
	s := string(bytes.TrimRight(out, "\n"))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// unset maps zfs's "-" (not set, not applicable) to "".
func unset(v string) string {
	if v == "-" {
		return ""
	}
	return v
}

// parseUint parses a -p number; "-" is 0.
func parseUint(v string) (uint64, error) {
	if v == "-" || v == "" {
		return 0, nil
	}
	return strconv.ParseUint(v, 10, 64)
}
