package wire

import (
	"errors"
	"fmt"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// The Validate methods of the argument structs check every name with the
// OpenZFS rules (and every property name, compression, depth, type) before
// anything is sent or run: the client checks what it sends, the server
// what it received, so no malformed name reaches zfs either way.

// validateAnyName accepts a dataset, snapshot or bookmark name.
func validateAnyName(name string) error {
	if strings.ContainsAny(name, "@#") {
		return zfs.ValidateVersion(name)
	}
	return zfs.ValidateDataset(name)
}

// validatePropName accepts native and user property names and refuses
// anything that could pass for an option or break an argument.
func validatePropName(p string) error {
	if p == "" || len(p) > 256 || p[0] == '-' {
		return fmt.Errorf("%w: %q", zfs.ErrInvalidProperty, p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == ',' || c == '=' {
			return fmt.Errorf("%w: %q", zfs.ErrInvalidProperty, p)
		}
	}
	return nil
}

func validateProps(props map[string]string) error {
	for k, v := range props {
		if err := validatePropName(k); err != nil {
			return err
		}
		if i := strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return fmt.Errorf("%w: the value of %q contains the control character %U (at byte %d); property values may not", zfs.ErrInvalidProperty, k, v[i], i)
		}
	}
	return nil
}

func validateEach(names []string, check func(string) error) error {
	for _, n := range names {
		if err := check(n); err != nil {
			return err
		}
	}
	return nil
}

func (a ListArgs) Validate() error {
	if err := validateEach(a.Roots, zfs.ValidateDataset); err != nil {
		return err
	}
	if a.Options.Depth < -1 {
		return fmt.Errorf("list: invalid depth %d", a.Options.Depth)
	}
	for _, t := range a.Options.Types {
		switch t {
		case zfs.Filesystem, zfs.Volume, zfs.Snapshot, zfs.Bookmark:
		default:
			return fmt.Errorf("list: unknown type %q", t)
		}
	}
	return validateEach(a.Options.UserProps, validatePropName)
}

func (a GetArgs) Validate() error {
	if err := validateEach(a.Names, validateAnyName); err != nil {
		return err
	}
	return validateEach(a.Props, validatePropName)
}

func (a HoldsArgs) Validate() error { return validateEach(a.Snaps, zfs.ValidateSnapshot) }

func (a HoldArgs) Validate() error {
	if err := zfs.ValidateHoldTag(a.Tag); err != nil {
		return err
	}
	return validateEach(a.Snaps, zfs.ValidateSnapshot)
}

func (a BookmarkArgs) Validate() error {
	if err := zfs.ValidateVersion(a.Source); err != nil {
		return err
	}
	return zfs.ValidateBookmark(a.Bookmark)
}

func (a DestroySnapshotsArgs) Validate() error {
	if err := zfs.ValidateDataset(a.Dataset); err != nil {
		return err
	}
	return validateEach(a.Names, func(n string) error {
		if err := zfs.ValidateComponent(n); err != nil {
			return fmt.Errorf("snapshot %s@%s: %w", a.Dataset, n, err)
		}
		return nil
	})
}

func (a DestroyBookmarksArgs) Validate() error {
	return validateEach(a.Bookmarks, zfs.ValidateBookmark)
}

func (a CreateArgs) Validate() error {
	if err := zfs.ValidateDataset(a.Name); err != nil {
		return err
	}
	return validateProps(a.Props)
}

func (a SetArgs) Validate() error {
	if err := validateAnyName(a.Name); err != nil {
		return err
	}
	return validateProps(a.Props)
}

func (a RenameArgs) Validate() error {
	if err := validateAnyName(a.From); err != nil {
		return err
	}
	if err := validateAnyName(a.To); err != nil {
		return err
	}
	_, fsep, _ := zfs.SplitName(a.From)
	_, tsep, _ := zfs.SplitName(a.To)
	if fsep != tsep {
		return fmt.Errorf("rename: %s and %s are not of the same kind", a.From, a.To)
	}
	return nil
}

func (a SendArgs) Validate() error {
	if _, err := a.Options.Validate(); err != nil {
		return err
	}
	return validateCompress(a.Compress)
}

func (a ReceiveArgs) Validate() error {
	o := a.Options
	if err := validateAnyName(o.Target); err != nil {
		return err
	}
	if _, sep, _ := zfs.SplitName(o.Target); sep == '#' {
		return fmt.Errorf("receive: target %s is a bookmark", o.Target)
	}
	if err := validateProps(o.Set); err != nil {
		return err
	}
	if err := validateEach(o.Exclude, validatePropName); err != nil {
		return err
	}
	return validateCompress(a.Compress)
}

func (a DatasetArgs) Validate() error { return zfs.ValidateDataset(a.Dataset) }

func (a TokenArgs) Validate() error { return zfs.ValidateResumeToken(a.Token) }

func (a DigestArgs) Validate() error {
	if err := (zfs.DigestOptions{Limit: a.Limit, Sample: a.Sample}).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return zfs.ValidateSnapshot(a.Snapshot)
}

func validateCompress(c string) error {
	if c != "" && c != CompressZstd {
		return fmt.Errorf("unknown stream compression %q: %w", c, errors.ErrUnsupported)
	}
	return nil
}
