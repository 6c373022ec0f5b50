package prune

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// Destroyer is the part of the zfs CLI (or of a remote endpoint) that
// Execute needs. *zfs.CLI satisfies it.
type Destroyer interface {
	// List lists the roots; Execute asks for the snapshots of one dataset
	// (Depth 1, Types snapshot).
	List(ctx context.Context, roots []string, opts zfs.ListOptions) ([]zfs.Entry, error)
	// DestroySnapshots destroys dataset@name for every short name in
	// batched calls (one, unless the names are too many for one argument).
	// When only some fail it returns an error wrapping a *zfs.DestroyError
	// whose Failed map names every one not destroyed (the others are
	// destroyed); failures because of a hold wrap zfs.ErrSnapshotHeld. Any
	// other error means none was destroyed.
	DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error
}

// Report is what Execute did for one dataset. Names are short snapshot names.
type Report struct {
	Dataset string
	DryRun  bool
	// Planned lists the snapshots that passed the re-check and were handed
	// to DestroySnapshots (in a dry run: would have been), by createtxg.
	Planned []string
	// Destroyed lists the snapshots destroyed, by createtxg. Empty in a dry
	// run.
	Destroyed []string
	// Failed maps each snapshot that could not be destroyed to the error,
	// including every planned one when the re-check listing itself failed.
	// Nil when nothing failed.
	Failed map[string]error
	// Skipped maps each snapshot left alone because the re-check (or zfs at
	// destroy time) found it held, vanished or replaced, to why. Nil when
	// nothing was skipped.
	Skipped map[string]string
}

// OK reports whether nothing failed.
func (r Report) OK() bool { return len(r.Failed) == 0 }

// Execute destroys the snapshots of dataset that decisions (from Apply on a
// listing of that dataset) do not keep.
//
// Right before destroying it lists the dataset's snapshots again and skips
// any planned snapshot that is now held, has vanished, or whose GUID no
// longer matches the decision's (a snapshot destroyed and re-created under
// the same name). The rest goes to one DestroySnapshots call (batched).
// Per-snapshot failures land in Report.Failed while the others are
// destroyed; a snapshot zfs refuses because a hold appeared in the meantime
// is reported as skipped, not failed. Bookmarks are never touched. With
// dryRun, Execute still lists (read-only) but destroys nothing.
func Execute(ctx context.Context, d Destroyer, dataset string, decisions []Decision, dryRun bool) Report {
	rep := Report{Dataset: dataset, DryRun: dryRun}
	var want []Decision
	seen := make(map[string]bool)
	for _, dec := range decisions {
		if dec.Keep || seen[dec.Snapshot.Name] {
			continue
		}
		seen[dec.Snapshot.Name] = true
		want = append(want, dec)
	}
	if len(want) == 0 {
		return rep
	}
	failAll := func(decs []string, err error) {
		for _, name := range decs {
			rep.fail(name, err)
		}
	}
	names := func(decs []Decision) []string {
		out := make([]string, len(decs))
		for i, dec := range decs {
			out[i] = dec.Snapshot.Name
		}
		return out
	}
	if d == nil {
		failAll(names(want), errors.New("prune: no destroyer"))
		return rep
	}

	entries, err := d.List(ctx, []string{dataset}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot}})
	if err != nil {
		failAll(names(want), fmt.Errorf("re-checking snapshots of %s: %w", dataset, err))
		return rep
	}
	current := make(map[string]zfs.Entry)
	for _, e := range entries {
		if e.Type == zfs.Snapshot && e.Dataset() == dataset {
			current[e.Short()] = e
		}
	}
	for _, dec := range want {
		name := dec.Snapshot.Name
		e, ok := current[name]
		switch {
		case !ok:
			rep.skip(name, "no longer exists")
		case e.GUID != dec.Snapshot.GUID:
			rep.skip(name, fmt.Sprintf("guid changed from %d to %d", dec.Snapshot.GUID, e.GUID))
		case e.UserRefs > 0:
			rep.skip(name, fmt.Sprintf("held (%d holds)", e.UserRefs))
		default:
			rep.Planned = append(rep.Planned, name)
		}
	}
	if dryRun || len(rep.Planned) == 0 {
		return rep
	}
	if err := ctx.Err(); err != nil {
		failAll(rep.Planned, fmt.Errorf("destroying snapshots of %s: %w", dataset, err))
		return rep
	}

	err = d.DestroySnapshots(ctx, dataset, rep.Planned)
	if err == nil {
		rep.Destroyed = append([]string(nil), rep.Planned...)
		return rep
	}
	var de *zfs.DestroyError
	if !errors.As(err, &de) || len(de.Failed) == 0 {
		failAll(rep.Planned, fmt.Errorf("destroying snapshots of %s: %w", dataset, err))
		return rep
	}
	failed := make(map[string]error, len(de.Failed))
	for name, ferr := range de.Failed {
		if i := strings.LastIndexByte(name, '@'); i >= 0 {
			name = name[i+1:]
		}
		if ferr == nil {
			ferr = err
		}
		failed[name] = ferr
	}
	for _, name := range rep.Planned {
		ferr, ok := failed[name]
		switch {
		case !ok:
			rep.Destroyed = append(rep.Destroyed, name)
		case errors.Is(ferr, zfs.ErrSnapshotHeld):
			rep.skip(name, "held (zfs refused to destroy it)")
		default:
			rep.fail(name, fmt.Errorf("destroying %s@%s: %w", dataset, name, ferr))
		}
	}
	return rep
}

func (r *Report) fail(name string, err error) {
	if r.Failed == nil {
		r.Failed = make(map[string]error)
	}
	r.Failed[name] = err
}

func (r *Report) skip(name, why string) {
	if r.Skipped == nil {
		r.Skipped = make(map[string]string)
	}
	r.Skipped[name] = why
}

// The zfs CLI is the production Destroyer.
var _ Destroyer = (*zfs.CLI)(nil)
