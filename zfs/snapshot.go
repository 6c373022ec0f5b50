package zfs

import (
	"context"
	"fmt"
)

// snapshotArgs builds `zfs snapshot [-o k=v]... snap...`.
func snapshotArgs(snaps []string, props map[string]string) ([]string, error) {
	if err := validateNames("snapshot", snaps, ValidateSnapshot); err != nil {
		return nil, err
	}
	pool := Pool(snaps[0])
	seen := map[string]string{}
	for _, s := range snaps {
		if p := Pool(s); p != pool {
			return nil, fmt.Errorf("zfs snapshot: %s and %s are in different pools (%s, %s); one atomic call covers one pool", snaps[0], s, pool, p)
		}
		ds, _, _ := SplitName(s)
		if prev, ok := seen[ds]; ok {
			return nil, fmt.Errorf("zfs snapshot: two snapshots of %s in one call (%s, %s)", ds, prev, s)
		}
		seen[ds] = s
	}
	opts, err := optionArgs("-o", props)
	if err != nil {
		return nil, err
	}
	args := append([]string{"snapshot"}, opts...)
	return append(args, snaps...), nil
}

// Snapshot creates all snaps atomically in ONE `zfs snapshot` call (all of
// them or none). They must be in one pool, at most one per dataset; this is
// checked before running. props are set on every snapshot (-o, key order).
// An existing snapshot -> ErrExists; a missing dataset -> ErrDatasetNotFound.
func (c *CLI) Snapshot(ctx context.Context, snaps []string, props map[string]string) error {
	args, err := snapshotArgs(snaps, props)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, args...); err != nil {
		names := append([]string(nil), snaps...)
		for _, s := range snaps {
			ds, _, _ := SplitName(s)
			names = append(names, ds)
		}
		return fmt.Errorf("zfs snapshot: %w", classify(err, names, ruleSnapExists, ruleSnapPermission, ruleSnapNoSpace))
	}
	return nil
}
