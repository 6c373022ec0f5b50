package zfs

import (
	"errors"
	"fmt"
	"strings"
)

// Length limits from OpenZFS (ZFS_MAX_DATASET_NAME_LEN is 256 including the
// terminating NUL byte).
const (
	// MaxNameLen is the maximum length in bytes of a full dataset, snapshot or
	// bookmark name, and of one component.
	MaxNameLen = 255
	// MaxPoolNameLen is the maximum length in bytes of a pool name: OpenZFS
	// reserves room for "pool/$ORIGIN@$ORIGIN".
	MaxPoolNameLen = 255 - 2 - 2*len("$ORIGIN")
	// MaxHoldTagLen is the maximum length in bytes of a hold tag.
	MaxHoldTagLen = 255
)

// ErrInvalidName is wrapped by every *NameError.
var ErrInvalidName = errors.New("invalid zfs name")

// NameError reports why a name is not acceptable to zfs. It wraps
// ErrInvalidName.
type NameError struct {
	Name   string
	Reason string
}

// Error implements error.
func (e *NameError) Error() string {
	return fmt.Sprintf("invalid zfs name %q: %s", e.Name, e.Reason)
}

// Unwrap returns ErrInvalidName.
func (e *NameError) Unwrap() error { return ErrInvalidName }

func nameErr(name, format string, args ...any) error {
	return &NameError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// validChar reports whether c may appear in a name component (OpenZFS
// valid_char: alphanumerics and "-_.: ", space included).
func validChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_' || c == '.' || c == ':' || c == ' '
}

// reservedPoolNames cannot be pool names because they are vdev keywords of
// zpool create.
var reservedPoolNames = map[string]bool{
	"mirror": true, "raidz": true, "draid": true, "spare": true, "log": true,
}

// ValidateComponent checks one component of a name: a path element between
// slashes, or the short name of a snapshot or bookmark. It must be non-empty,
// at most MaxNameLen bytes, made of alphanumerics and "-_.: " only, and not
// "." or "..".
func ValidateComponent(c string) error {
	switch {
	case c == "":
		return nameErr(c, "empty component")
	case len(c) > MaxNameLen:
		return nameErr(c, "component longer than %d bytes", MaxNameLen)
	case c == ".":
		return nameErr(c, `component "." is not allowed`)
	case c == "..":
		return nameErr(c, `component ".." is not allowed`)
	}
	for i := 0; i < len(c); i++ {
		if !validChar(c[i]) {
			return nameErr(c, "invalid character %q", c[i])
		}
	}
	return nil
}

// ValidatePool checks a pool name: a valid component that begins with a
// letter, is at most MaxPoolNameLen bytes and is not a reserved vdev keyword
// (mirror, raidz, draid, spare, log). The historical Solaris "c[0-9]" rule is
// not applied: current OpenZFS dropped it and such pools exist.
func ValidatePool(pool string) error {
	if err := ValidateComponent(pool); err != nil {
		return err
	}
	if len(pool) > MaxPoolNameLen {
		return nameErr(pool, "pool name longer than %d bytes", MaxPoolNameLen)
	}
	if c := pool[0]; !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') {
		return nameErr(pool, "pool name must begin with a letter")
	}
	if reservedPoolNames[pool] {
		return nameErr(pool, "pool name is reserved")
	}
	return nil
}

// ValidateDataset checks the name of a filesystem or volume: "pool[/comp]...",
// no leading or trailing slash, no empty, "." or ".." component, no '@' or
// '#', at most MaxNameLen bytes in all.
func ValidateDataset(name string) error {
	if name == "" {
		return nameErr(name, "empty name")
	}
	if len(name) > MaxNameLen {
		return nameErr(name, "name longer than %d bytes", MaxNameLen)
	}
	if strings.ContainsAny(name, "@#") {
		return nameErr(name, "a dataset name contains no '@' or '#'")
	}
	if strings.HasPrefix(name, "/") {
		return nameErr(name, "leading slash")
	}
	if strings.HasSuffix(name, "/") {
		return nameErr(name, "trailing slash")
	}
	parts := strings.Split(name, "/")
	if err := ValidatePool(parts[0]); err != nil {
		return wrapName(name, err)
	}
	for _, p := range parts[1:] {
		if err := ValidateComponent(p); err != nil {
			return wrapName(name, err)
		}
	}
	return nil
}

// ValidateSnapshot checks a full snapshot name "dataset@short".
func ValidateSnapshot(name string) error { return validateVersion(name, '@', "snapshot") }

// ValidateBookmark checks a full bookmark name "dataset#short".
func ValidateBookmark(name string) error { return validateVersion(name, '#', "bookmark") }

func validateVersion(name string, sep byte, kind string) error {
	if len(name) > MaxNameLen {
		return nameErr(name, "name longer than %d bytes", MaxNameLen)
	}
	if n := strings.Count(name, "@") + strings.Count(name, "#"); n != 1 || strings.IndexByte(name, sep) < 0 {
		return nameErr(name, "a %s name has exactly one %q and no other '@' or '#'", kind, sep)
	}
	ds, _, short := SplitName(name)
	if err := ValidateDataset(ds); err != nil {
		return wrapName(name, err)
	}
	if err := ValidateComponent(short); err != nil {
		return wrapName(name, err)
	}
	return nil
}

// ValidateVersion checks a full snapshot or bookmark name.
func ValidateVersion(name string) error {
	if strings.Contains(name, "#") {
		return ValidateBookmark(name)
	}
	return ValidateSnapshot(name)
}

// ValidateHoldTag checks a hold tag: non-empty, at most MaxHoldTagLen bytes,
// not beginning with '-' (zfs hold would take it as an option) and without
// control characters (which would break the tab-separated output of zfs
// holds -H).
func ValidateHoldTag(tag string) error {
	if tag == "" {
		return nameErr(tag, "empty hold tag")
	}
	if tag[0] == '-' {
		return nameErr(tag, "hold tag must not begin with '-'")
	}
	if len(tag) > MaxHoldTagLen {
		return nameErr(tag, "hold tag longer than %d bytes", MaxHoldTagLen)
	}
	for i := 0; i < len(tag); i++ {
		if tag[i] < 0x20 || tag[i] == 0x7f {
			return nameErr(tag, "control character %q in hold tag", tag[i])
		}
	}
	return nil
}

// wrapName re-attributes a component error to the full name.
func wrapName(name string, err error) error {
	var ne *NameError
	if errors.As(err, &ne) {
		if ne.Name == name {
			return err
		}
		return nameErr(name, "%s (in %q)", ne.Reason, ne.Name)
	}
	return err
}

// SplitName splits "pool/fs@snap" into ("pool/fs", '@', "snap"),
// "pool/fs#bm" into ("pool/fs", '#', "bm") and "pool/fs" into ("pool/fs", 0,
// ""). It splits at the first '@' or '#'.
func SplitName(name string) (dataset string, sep byte, short string) {
	i := strings.IndexAny(name, "@#")
	if i < 0 {
		return name, 0, ""
	}
	return name[:i], name[i], name[i+1:]
}

// Pool returns the pool part of any name (everything before the first '/',
// '@' or '#').
func Pool(name string) string {
	if i := strings.IndexAny(name, "/@#"); i >= 0 {
		return name[:i]
	}
	return name
}

// IsDescendant reports whether dataset is ancestor itself or lies below it
// ("tank/a/b" is below "tank/a", "tank/ab" is not).
func IsDescendant(dataset, ancestor string) bool {
	return dataset == ancestor || strings.HasPrefix(dataset, ancestor+"/")
}
