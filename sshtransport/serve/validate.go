package serve

import "github.com/zsync-dev/zsync/sshtransport/wire"

// The validate methods of the requests. Each runs the checks of its
// argument struct in package wire, the same ones the client runs before it
// sends (every name by the OpenZFS rules, property names, list depth and
// types, compression, resume tokens): the server never relies on the
// client's. Checks only the server makes (of values, not of who may do
// what: that is policy.go) go here, next to the wire's.

func (r listRequest) validate() error             { return wire.ListArgs(r).Validate() }
func (r getRequest) validate() error              { return wire.GetArgs(r).Validate() }
func (r holdsRequest) validate() error            { return wire.HoldsArgs(r).Validate() }
func (r holdRequest) validate() error             { return wire.HoldArgs(r).Validate() }
func (r releaseRequest) validate() error          { return wire.HoldArgs(r).Validate() }
func (r bookmarkRequest) validate() error         { return wire.BookmarkArgs(r).Validate() }
func (r destroySnapshotsRequest) validate() error { return wire.DestroySnapshotsArgs(r).Validate() }
func (r destroyBookmarksRequest) validate() error { return wire.DestroyBookmarksArgs(r).Validate() }
func (r createRequest) validate() error           { return wire.CreateArgs(r).Validate() }
func (r setRequest) validate() error              { return wire.SetArgs(r).Validate() }
func (r renameRequest) validate() error           { return wire.RenameArgs(r).Validate() }
func (r sendRequest) validate() error             { return wire.SendArgs(r).Validate() }
func (r sendSizeRequest) validate() error         { return wire.SendArgs(r).Validate() }
func (r receiveRequest) validate() error          { return wire.ReceiveArgs(r).Validate() }
func (r abortReceiveRequest) validate() error     { return wire.DatasetArgs(r).Validate() }
func (r decodeTokenRequest) validate() error      { return wire.TokenArgs(r).Validate() }
func (r digestRequest) validate() error           { return wire.DigestArgs(r).Validate() }
func (r poolErrorsRequest) validate() error       { return wire.DatasetArgs(r).Validate() }
