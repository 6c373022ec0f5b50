package cmd

import (
	"context"
	"errors"
	"fmt"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

// bothSides is one look at a replication job's two sides, for status and
// verify: each side's listing, the target root's id, and zsync's holds and
// bookmarks found on each.
type bothSides struct {
	src, dst       []zfs.Entry
	rootTID        zsync.TargetID
	srcAbs, dstAbs []zsync.Abstraction
}

// listBothSides lists the job's source roots and its target root (a
// target root that does not exist yet lists empty) with their holds;
// resolve attributes the source's step holds to relationships.
func listBothSides(ctx context.Context, job *zsync.Job, src, dst zsync.Endpoint, resolve func(zsync.TargetID) zsync.StepResolver) (*bothSides, error) {
	var b bothSides
	var err error
	if b.src, err = src.List(ctx, job.Datasets.Roots(), zfs.ListOptions{}); err != nil {
		return nil, fmt.Errorf("list source: %w", err)
	}
	if b.dst, err = dst.List(ctx, []string{job.TargetRoot}, zfs.ListOptions{}); err != nil && !errors.Is(err, zfs.ErrDatasetNotFound) {
		return nil, fmt.Errorf("list target: %w", err)
	}
	props, _ := dst.Get(ctx, []string{job.TargetRoot}, []string{zsync.TargetIDProperty})
	b.rootTID = zsync.TargetID(props[job.TargetRoot][zsync.TargetIDProperty])
	sh, err := zsync.HoldsOf(ctx, src, b.src)
	if err != nil {
		return nil, err
	}
	dh, err := zsync.HoldsOf(ctx, dst, b.dst)
	if err != nil {
		return nil, err
	}
	b.srcAbs, _ = zsync.ListAbstractionsWith(b.src, sh, resolve(b.rootTID))
	b.dstAbs, _ = zsync.ListAbstractions(b.dst, dh)
	return &b, nil
}
