package zfs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

var reNothingToDestroy = regexp.MustCompile(`(?m)^could not find any snapshots to destroy; check snapshot names\.$`)

// destroyFailure parses "cannot destroy snapshot DATASET@SHORT: REASON" for
// one of the remaining short names (names may contain ": ", so the known
// names are matched rather than the line split; the longest wins).
func destroyFailure(line, dataset string, remaining []string) (short, reason string, ok bool) {
	const prefix = "cannot destroy snapshot "
	if !strings.HasPrefix(line, prefix) {
		return "", "", false
	}
	rest := line[len(prefix):]
	for _, s := range remaining {
		head := dataset + "@" + s + ": "
		if strings.HasPrefix(rest, head) && len(s) >= len(short) {
			short, reason, ok = s, rest[len(head):], true
		}
	}
	return short, reason, ok
}

// destroyReason maps the reason of a "cannot destroy snapshot" line to a
// sentinel. OpenZFS 2.1 reports a held snapshot as "dataset is busy" (the
// EBUSY of the whole batch); other versions word it "snapshot is held" or
// "it's being held".
func destroyReason(reason string) error {
	switch {
	case reason == "dataset is busy",
		strings.Contains(reason, "is held"),
		strings.Contains(reason, "being held"),
		strings.Contains(reason, "has holds"):
		return ErrSnapshotHeld
	case strings.Contains(reason, "snapshot is cloned"), strings.Contains(reason, "dependent clones"):
		return ErrSnapshotCloned
	case reason == "permission denied":
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

// DestroySnapshots destroys snapshots of one dataset with ONE `zfs destroy
// dataset@a,b,c` (given by their short names). Snapshots that no longer
// exist are not errors (idempotent). The kernel destroys such a batch all
// or nothing, so when some snapshots cannot be destroyed (held, cloned)
// they are set aside and the batch is retried without them: the others are
// destroyed and a *DestroyError lists the failed ones (short name -> error
// wrapping ErrSnapshotHeld, ErrSnapshotCloned, ...). A missing dataset ->
// ErrDatasetNotFound. An empty list does nothing.
func (c *CLI) DestroySnapshots(ctx context.Context, dataset string, shortNames []string) error {
	var remaining []string
	seen := map[string]bool{}
	for _, s := range shortNames {
		if !seen[s] {
			seen[s] = true
			remaining = append(remaining, s)
		}
	}
	if len(remaining) == 0 {
		return nil
	}
	if _, err := destroySnapshotsArg(dataset, remaining); err != nil {
		return err
	}
	failed := map[string]error{}
	for len(remaining) > 0 {
		arg, _ := destroySnapshotsArg(dataset, remaining)
		_, err := c.run(ctx, "destroy", arg)
		if err == nil {
			break
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.ExitCode <= 0 {
			return fmt.Errorf("zfs destroy: %w", err)
		}
		if reNothingToDestroy.MatchString(ce.Stderr) {
			break // every remaining snapshot is already gone
		}
		progress := false
		for _, line := range strings.Split(ce.Stderr, "\n") {
			short, reason, ok := destroyFailure(line, dataset, remaining)
			if !ok {
				continue
			}
			failed[short] = lineError(ce, line, destroyReason(reason), dataset+"@"+short)
			remaining = remove(remaining, short)
			progress = true
		}
		if !progress {
			cerr := fmt.Errorf("zfs destroy: %w", classify(err, []string{dataset}))
			if len(failed) > 0 {
				// Keep what earlier rounds learned about specific snapshots.
				return errors.Join(&DestroyError{Dataset: dataset, Failed: failed}, cerr)
			}
			return cerr
		}
	}
	if len(failed) > 0 {
		return &DestroyError{Dataset: dataset, Failed: failed}
	}
	return nil
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
