package zfs

import (
	"context"
	"fmt"
	"strings"
)

// getArgs builds `zfs get -H -p -o name,property,value,source PROPS NAMES`.
func getArgs(names, props []string) ([]string, error) {
	if err := validateNames("name", names, validateAnyName); err != nil {
		return nil, err
	}
	if err := validateNames("property", props, validatePropName); err != nil {
		return nil, err
	}
	args := []string{"get", "-H", "-p", "-o", "name,property,value,source", strings.Join(props, ",")}
	return append(args, names...), nil
}

// Get returns name -> property -> value for the given datasets, snapshots or
// bookmarks, in ONE `zfs get -H -p` call. Properties that are unset (value
// and source both "-", e.g. an absent user property or an empty
// receive_resume_token) are absent from the inner map; every name asked for
// has a (possibly empty) inner map, and no other name is a key (a line
// about another name is an error). A name that does not exist yields an
// error wrapping ErrDatasetNotFound.
func (c *CLI) Get(ctx context.Context, names []string, props []string) (map[string]map[string]string, error) {
	args, err := getArgs(names, props)
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("zfs get: %w", classify(err, names))
	}
	res := make(map[string]map[string]string, len(names))
	for _, n := range names {
		res[n] = map[string]string{}
	}
	for i, line := range splitLines(out) {
		// name TAB property TAB value TAB source; a value may contain tabs.
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			return nil, fmt.Errorf("zfs get: line %d: %d fields, want 4: %q", i+1, len(f), line)
		}
		name, prop, source := f[0], f[1], f[len(f)-1]
		value := strings.Join(f[2:len(f)-1], "\t")
		m, asked := res[name]
		if !asked {
			return nil, fmt.Errorf("zfs get: line %d: %q was not asked about: %q", i+1, name, line)
		}
		if err := validatePropName(prop); err != nil {
			return nil, fmt.Errorf("zfs get: line %d: %w", i+1, err)
		}
		if value == "-" && source == "-" {
			continue
		}
		m[prop] = value
	}
	return res, nil
}

// Set sets properties on a dataset in one `zfs set k=v... name` call, in key
// order.
func (c *CLI) Set(ctx context.Context, name string, props map[string]string) error {
	args, err := setArgs(name, props)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, args...); err != nil {
		return fmt.Errorf("zfs set: %w", classify(err, []string{name}))
	}
	return nil
}

func setArgs(name string, props map[string]string) ([]string, error) {
	if err := validateAnyName(name); err != nil {
		return nil, err
	}
	if len(props) == 0 {
		return nil, fmt.Errorf("zfs set %s: no properties", name)
	}
	kvs, err := propArgs(props)
	if err != nil {
		return nil, err
	}
	return append(append([]string{"set"}, kvs...), name), nil
}

// Inherit clears a property of a dataset (`zfs inherit prop name`), so it is
// inherited again (user properties disappear).
func (c *CLI) Inherit(ctx context.Context, name, prop string) error {
	if err := validateAnyName(name); err != nil {
		return err
	}
	if err := validatePropName(prop); err != nil {
		return err
	}
	if _, err := c.run(ctx, "inherit", prop, name); err != nil {
		return fmt.Errorf("zfs inherit: %w", classify(err, []string{name}))
	}
	return nil
}

// Create creates a filesystem (`zfs create [-p] [-o k=v]... name`, options
// in key order). parents creates missing parents (-p; an existing dataset is
// then not an error, as with zfs). Existing -> ErrExists; a missing parent
// without parents -> ErrDatasetNotFound.
func (c *CLI) Create(ctx context.Context, name string, props map[string]string, parents bool) error {
	args, err := createArgs(name, props, parents)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, args...); err != nil {
		return fmt.Errorf("zfs create: %w", classify(err, []string{name}, ruleCreateExists))
	}
	return nil
}

func createArgs(name string, props map[string]string, parents bool) ([]string, error) {
	if err := ValidateDataset(name); err != nil {
		return nil, err
	}
	args := []string{"create"}
	if parents {
		args = append(args, "-p")
	}
	opts, err := optionArgs("-o", props)
	if err != nil {
		return nil, err
	}
	args = append(args, opts...)
	return append(args, name), nil
}

// Rename renames a dataset, snapshot or bookmark (`zfs rename from to`).
// The target existing -> ErrExists; the source missing ->
// ErrDatasetNotFound.
func (c *CLI) Rename(ctx context.Context, from, to string) error {
	if err := validateAnyName(from); err != nil {
		return err
	}
	if err := validateAnyName(to); err != nil {
		return err
	}
	fd, fsep, _ := SplitName(from)
	td, tsep, _ := SplitName(to)
	if fsep != tsep || (fsep != 0 && fd != td) {
		return fmt.Errorf("zfs rename: %q and %q are not of the same kind and dataset", from, to)
	}
	if _, err := c.run(ctx, "rename", from, to); err != nil {
		return fmt.Errorf("zfs rename: %w", classify(err, []string{from, to}, ruleRenameExists, ruleBusy))
	}
	return nil
}

// Rollback rolls a dataset back to its most recent snapshot (plain `zfs
// rollback snap`, never -r). Not the most recent -> ErrNotMostRecent.
func (c *CLI) Rollback(ctx context.Context, snapshot string) error {
	if err := ValidateSnapshot(snapshot); err != nil {
		return err
	}
	if _, err := c.run(ctx, "rollback", snapshot); err != nil {
		return fmt.Errorf("zfs rollback: %w", classify(err, []string{snapshot}, ruleRollbackNotLatest, ruleBusy))
	}
	return nil
}

var ruleRollbackNotLatest = mustRule(`(?m)^cannot rollback to '([^'\n]+)': more recent snapshots or bookmarks exist$`, ErrNotMostRecent)
