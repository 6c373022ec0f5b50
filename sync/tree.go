package sync

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// ErrTargetName is wrapped by TargetName and OneOffTarget when a sender
// dataset cannot be mapped to a target dataset.
var ErrTargetName = errors.New("cannot map sender dataset to a target")

// TargetName returns where a configured job lands sender dataset
// senderDataset: below root, the whole sender path including the pool name
// ("tank/data" under "backup/host" is "backup/host/tank/data"), after
// dropping strip leading components of the sender path. It is an error for
// strip to be negative or to leave nothing, and for either input or the
// result not to be a valid dataset name. Errors wrap ErrTargetName.
func TargetName(root, senderDataset string, strip int) (string, error) {
	if err := zfs.ValidateDataset(root); err != nil {
		return "", fmt.Errorf("%w: target root: %w", ErrTargetName, err)
	}
	if err := zfs.ValidateDataset(senderDataset); err != nil {
		return "", fmt.Errorf("%w: sender dataset: %w", ErrTargetName, err)
	}
	if strip < 0 {
		return "", fmt.Errorf("%w: negative strip count %d", ErrTargetName, strip)
	}
	parts := strings.Split(senderDataset, "/")
	if strip >= len(parts) {
		return "", fmt.Errorf("%w: stripping %d components of %q leaves nothing", ErrTargetName, strip, senderDataset)
	}
	name := root + "/" + strings.Join(parts[strip:], "/")
	if err := zfs.ValidateDataset(name); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrTargetName, senderDataset, err)
	}
	return name, nil
}

// OneOffTarget returns where one-off replication of the tree srcRoot into
// dstRoot lands senderDataset: srcRoot itself lands exactly at dstRoot and
// its descendants at the same relative path below dstRoot. senderDataset
// must be srcRoot or one of its descendants. Errors wrap ErrTargetName.
func OneOffTarget(srcRoot, dstRoot, senderDataset string) (string, error) {
	for _, n := range []string{srcRoot, dstRoot, senderDataset} {
		if err := zfs.ValidateDataset(n); err != nil {
			return "", fmt.Errorf("%w: %w", ErrTargetName, err)
		}
	}
	if senderDataset == srcRoot {
		return dstRoot, nil
	}
	rel, ok := strings.CutPrefix(senderDataset, srcRoot+"/")
	if !ok {
		return "", fmt.Errorf("%w: %q is not below %q", ErrTargetName, senderDataset, srcRoot)
	}
	name := dstRoot + "/" + rel
	if err := zfs.ValidateDataset(name); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrTargetName, senderDataset, err)
	}
	return name, nil
}

// SourceNames returns the sender datasets that TargetName(root, _, strip)
// maps to target: the components strip drops are taken from each of the
// job's dataset roots that has that many (a root with fewer leaves them
// unknown and gives none). Only names inside those roots count. None when
// target is not below root.
func SourceNames(root, target string, strip int, roots []string) []string {
	rel, ok := strings.CutPrefix(target, root+"/")
	if !ok || strip < 0 {
		return nil
	}
	var out []string
	for _, r := range roots {
		parts := strings.Split(r, "/")
		if len(parts) < strip {
			continue
		}
		name := rel
		if strip > 0 {
			name = strings.Join(parts[:strip], "/") + "/" + rel
		}
		if zfs.ValidateDataset(name) == nil && zfs.IsDescendant(name, r) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// OneOffSource is the sender dataset OneOffTarget(srcRoot, dstRoot, _)
// maps to target, if any.
func OneOffSource(srcRoot, dstRoot, target string) []string {
	if target == dstRoot {
		return []string{srcRoot}
	}
	if rel, ok := strings.CutPrefix(target, dstRoot+"/"); ok && zfs.ValidateDataset(srcRoot+"/"+rel) == nil {
		return []string{srcRoot + "/" + rel}
	}
	return nil
}

// compareDatasets orders dataset names component by component, so a parent
// sorts before all of its descendants and siblings' subtrees stay together
// ("a", "a/b", "a/b/c", "a-b").
func compareDatasets(a, b string) int {
	for {
		ha, ra, moreA := strings.Cut(a, "/")
		hb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(ha, hb); c != 0 {
			return c
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

// OrderParentsFirst returns a sorted copy of datasets without duplicates in
// which every dataset comes after its ancestors (depth-first, siblings in
// byte order). The input is not modified.
func OrderParentsFirst(datasets []string) []string {
	out := slices.Clone(datasets)
	slices.SortFunc(out, compareDatasets)
	return slices.Compact(out)
}

// Placeholders returns the intermediate datasets that must be created on the
// target before targets can be received: every ancestor of a target that is
// strictly below root, is not itself in targets and is not in existing
// (dataset name -> exists). The result is ordered parents first. Targets
// that are not strictly below root contribute nothing; root itself must
// exist or be created by the caller.
func Placeholders(root string, targets []string, existing map[string]bool) []string {
	isTarget := make(map[string]bool, len(targets))
	for _, t := range targets {
		isTarget[t] = true
	}
	seen := make(map[string]bool)
	var out []string
	for _, t := range targets {
		rel, ok := strings.CutPrefix(t, root+"/")
		if !ok || rel == "" {
			continue
		}
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			p := root + "/" + strings.Join(parts[:i], "/")
			if isTarget[p] || existing[p] || seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return OrderParentsFirst(out)
}
