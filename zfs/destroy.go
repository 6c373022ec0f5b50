package zfs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var reNothingToDestroy = regexp.MustCompile(`(?m)^could not find any snapshots to destroy; check snapshot names\.$`)

// destroyFailure parses a line naming one of the remaining snapshots of a
// batched destroy and why it was not destroyed, in either of the forms zfs
// prints: libzfs's "cannot destroy snapshot DATASET@SHORT: REASON" (the
// kernel refused it) and zfs's own check "cannot destroy 'DATASET@SHORT':
// REASON" (a dependent clone, found before anything is destroyed). Names
// may contain ": ", so the known names are matched rather than the line
// split; the longest wins.
func destroyFailure(line, dataset string, remaining []string) (short, reason string, ok bool) {
	for _, form := range []struct{ prefix, sep string }{{"cannot destroy snapshot ", ": "}, {"cannot destroy '", "': "}} {
		rest, found := strings.CutPrefix(line, form.prefix)
		if !found {
			continue
		}
		for _, s := range remaining {
			head := dataset + "@" + s + form.sep
			if strings.HasPrefix(rest, head) && len(s) >= len(short) {
				short, reason, ok = s, rest[len(head):], true
			}
		}
	}
	return short, reason, ok
}

// destroyReason maps the reason of a failed snapshot of a batched destroy
// to a sentinel (whole reasons only; an unknown one stays untyped); snapshot
// is the full name the line is about. OpenZFS 2.1 reports a held snapshot as
// "dataset is busy" (the EBUSY of the whole batch); 2.3 says "it's being
// held. Run 'zfs holds -r SNAPSHOT' to see holders." (naming the same
// snapshot); "snapshot is held" is another version's wording. A dependent
// clone is "snapshot has dependent clones" (zfs's own check, before the
// batch) or "snapshot is cloned" (the kernel's EEXIST).
func destroyReason(reason, snapshot string) error {
	switch reason {
	case "dataset is busy", "snapshot is held",
		"it's being held. Run 'zfs holds -r " + snapshot + "' to see holders.":
		return ErrSnapshotHeld
	case "snapshot has dependent clones", "snapshot is cloned":
		return ErrSnapshotCloned
	case "permission denied":
		return ErrPermissionDenied
	}
	return nil
}

func destroySnapshotsArg(dataset string, shortNames []string) (string, error) {
	if err := ValidateDataset(dataset); err != nil {
		return "", err
	}
	for _, s := range shortNames {
		if err := ValidateComponent(s); err != nil {
			return "", err
		}
		if err := ValidateSnapshot(dataset + "@" + s); err != nil {
			return "", err
		}
	}
	return dataset + "@" + strings.Join(shortNames, ","), nil
}

// maxDestroyArg bounds the length of the one `dataset@a,b,c` argument of a
// `zfs destroy`. Linux refuses to exec a command with any argument longer
// than MAX_ARG_STRLEN (32 pages: 131072 bytes including the NUL); half of
// that leaves a wide margin.
const maxDestroyArg = 64 << 10

// destroyBatches splits short names (valid, without duplicates) into
// batches, in order, whose `dataset@a,b,c` argument is at most max bytes.
// A name that does not fit even alone gets a batch of its own (ZFS names are
// far shorter than any sensible max).
func destroyBatches(dataset string, shortNames []string, max int) [][]string {
	var out [][]string
	var cur []string
	size := 0
	for _, s := range shortNames {
		add := len(s) + 1 // the ',' (or the '@' for the first)
		if len(cur) > 0 && size+add > max {
			out = append(out, cur)
			cur = nil
		}
		if len(cur) == 0 {
			size = len(dataset)
		}
		cur = append(cur, s)
		size += add
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// DestroySnapshots destroys snapshots of one dataset (given by their short
// names) with one `zfs destroy dataset@a,b,c`, or, when that argument would
// be longer than the kernel allows one argument to be, with several such
// calls in order, each argument at most 64 KiB. Snapshots that no longer
// exist are not errors (idempotent). The kernel destroys each batch all or
// nothing, so when some snapshots cannot be destroyed (held, cloned) they
// are set aside and the batch is retried without them.
//
// The result is exact: nil when every snapshot was destroyed (or was gone
// already); a *DestroyError whose Failed map names every snapshot that was
// not destroyed (short name -> error wrapping ErrSnapshotHeld,
// ErrSnapshotCloned, ...) when some were, so every snapshot it does not
// name was destroyed. When a batch fails in a way that names no snapshot,
// the remaining batches are not attempted; if nothing was destroyed by then
// the error is that failure alone (a missing dataset wraps
// ErrDatasetNotFound), otherwise it joins a *DestroyError naming every
// snapshot not destroyed with that failure. An empty list does nothing.
func (c *CLI) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	names := UniqueNames(shortNames)
	if len(names) == 0 {
		return nil
	}
	if _, err := destroySnapshotsArg(dataset, names); err != nil {
		return err
	}
	return DestroyInBatches(dataset, destroyBatches(dataset, names, maxDestroyArg), func(batch []string) (map[string]error, error) {
		failed := map[string]error{}
		rest, err := c.destroyBatch(ctx, dataset, batch, failed)
		for _, s := range rest {
			failed[s] = err
		}
		return failed, err
	})
}

// UniqueNames returns names without repeats, in their first order.
func UniqueNames(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range names {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// DestroyInBatches destroys snapshots of dataset batch after batch, in
// order, and merges the outcomes exactly, as DestroySnapshots documents.
// destroy reports on one batch: the snapshots of it that were not destroyed
// (short name -> why; every other one was), and stop, non-nil when the
// batch failed in a way that names no snapshot (the snapshots it left are
// in the map with that error): the later batches are then not attempted
// and are named as not destroyed too. When nothing at all was destroyed
// because the first batch stopped with every snapshot failing for that
// reason alone, the error is stop itself; otherwise it is a *DestroyError
// (joined with stop when there is one).
func DestroyInBatches(dataset string, batches [][]string, destroy func(batch []string) (notDestroyed map[string]error, stop error)) error {
	failed := map[string]error{}
	for i, batch := range batches {
		nd, stop := destroy(batch)
		for k, v := range nd {
			failed[k] = v
		}
		if stop == nil {
			continue
		}
		if i == 0 && len(nd) == len(batch) && allAre(nd, stop) {
			return stop // nothing was destroyed, and no snapshot was named
		}
		for _, later := range batches[i+1:] {
			for _, s := range later {
				failed[s] = fmt.Errorf("not attempted after an earlier batch failed: %w", stop)
			}
		}
		return errors.Join(&DestroyError{Dataset: dataset, Failed: failed}, stop)
	}
	if len(failed) > 0 {
		return &DestroyError{Dataset: dataset, Failed: failed}
	}
	return nil
}

func allAre(m map[string]error, err error) bool {
	for _, v := range m {
		if v != err {
			return false
		}
	}
	return true
}

// destroyBatch destroys one batch of snapshots of dataset (its argument
// fits), retrying without the snapshots zfs names as failed and recording
// those in failed. When a round fails without naming any snapshot, it
// returns the snapshots of the batch that remain (none of them destroyed:
// the round was all or nothing) and the error.
func (c *CLI) destroyBatch(ctx context.Context, dataset string, remaining []string, failed map[string]error) ([]string, error) {
	for len(remaining) > 0 {
		arg, _ := destroySnapshotsArg(dataset, remaining)
		_, err := c.run(ctx, "destroy", arg)
		if err == nil {
			return nil, nil
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.ExitCode <= 0 {
			return remaining, fmt.Errorf("zfs destroy: %w", err)
		}
		if reNothingToDestroy.MatchString(ce.Stderr) {
			return nil, nil // every remaining snapshot is already gone
		}
		progress := false
		for _, line := range strings.Split(ce.Stderr, "\n") {
			short, reason, ok := destroyFailure(line, dataset, remaining)
			if !ok {
				continue
			}
			failed[short] = lineError(ce, line, destroyReason(reason, dataset+"@"+short), dataset+"@"+short)
			remaining = remove(remaining, short)
			progress = true
		}
		if !progress {
			return remaining, fmt.Errorf("zfs destroy: %w", classify(err, []string{dataset}))
		}
	}
	return nil, nil
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
