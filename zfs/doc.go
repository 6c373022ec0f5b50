// Package zfs owns every interaction of zsync with the zfs(8) command line.
//
// A CLI value holds the binary path, a Runner that executes argv slices (an
// exec-based one in production, a FakeRunner replaying recorded outputs in
// tests) and the environment (always LC_ALL=C, so stderr can be parsed). Each
// verb family lives in its own file: listing (list.go), properties
// (props.go), snapshots (snapshot.go), holds (holds.go), bookmarks
// (bookmark.go), destroy (destroy.go), send (send.go), receive (recv.go) and
// resume tokens (resume.go).
//
// Output is always requested in the scripted, parsable form (-H -p) and the
// field count of every line is checked. Failures are turned into typed errors
// (errors.go): sentinels such as ErrDatasetNotFound or ErrSnapshotHeld that
// callers test with errors.Is, structured errors such as *DestroyError or
// *ResumableRecvError for errors.As, and the generic *Error that carries the
// argv, the bounded stderr and the exit code. Every error type unwraps.
//
// Names are validated at the boundary with the OpenZFS rules (names.go), so no
// malformed name ever reaches zfs; sends go through SendOptions.Validate, which
// returns a ValidatedSend, so an unvalidated send cannot compile. Filter
// (filter.go) is the zrepl-style dataset selection shared by snap, prune and
// sync.
//
// This package imports no other zsync package.
package zfs
