package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
)

// Policy restricts what one client of `zsync serve --client NAME` may do
// (SPEC §8). Serve with a nil *Policy grants the full rights of the user it
// runs as, as zfs itself would; names are validated either way.
//
// Two areas are defined. The send area is the datasets Send matches; the
// client may list them, read their properties and holds, send them, and
// hold, release and bookmark their snapshots (the sending side of a pull
// job, which also destroys its own stale bookmarks there). The receive area
// is ReceiveRoot and everything below it; the client may do everything
// there (the receiving side of a push job): receive, create, set, rename,
// destroy, hold, release, bookmark. Anything outside both areas is refused
// with an error wrapping wire.ErrForbidden, and nothing runs. (Create with
// parents may still create missing ancestors of ReceiveRoot itself, empty
// filesystems, as `zfs create -p` of a dataset below it would; the far side
// creates each one itself as a placeholder, canmount=noauto and never
// mounted, see createParents.)
//
// AppendOnly means received data can only grow: it refuses DestroySnapshots,
// Rename and Receive with Force (a rollback) everywhere, and Set of
// anything but zsync's own user properties ("zsync:*"). It still allows
// receiving, creating placeholders, holds and releases, aborting a partial
// receive (which discards no snapshot), and destroying zsync's own
// bookmarks (names starting with "zsync_"): bookmarks hold no data, and the
// replication cursors must be able to move.
type Policy struct {
	// Client names the client in refusals and logs ("laptop").
	Client string
	// ReceiveRoot is the dataset at or below which the client may
	// receive and manage datasets; "" means it may not receive at all.
	ReceiveRoot string
	// Send reports whether the client may read and send dataset (the
	// lead passes zfs.Filter.Match); nil means no dataset.
	Send func(dataset string) bool
	// AppendOnly refuses destroying and rolling back data (see above).
	AppendOnly bool
	// PruneSend lets the client destroy snapshots in the send area (a
	// pull job pruning its source). Off by default: a client that may
	// read data may not destroy it. AppendOnly overrides it.
	PruneSend bool
	// AllowHeal lets the client repair snapshots in the receive area by
	// corrective receives (zfs recv -c). Off by default: a kernel VERIFY
	// is reachable through them (OpenZFS 2.2-2.3 panic when the snapshot
	// is busy), and with the fletcher4 checksum a client that knows a
	// damaged block can make it read back other data that matches it.
	AllowHeal bool
	// AllowProperties are the properties the client may set on what it
	// receives and creates beyond the default allowlist (compression,
	// recordsize, atime, readonly, zsync:*). The far side's own choices
	// (mountpoint, canmount, volmode) cannot be allowed (props.go).
	AllowProperties []string
	// MaxHolds caps the holds the client may have at a time on the
	// snapshots of one dataset in its send area: hold objects, one per
	// (snapshot, tag), so many tags on one snapshot count as many. A hold
	// that would pass it is refused. 0 means DefaultMaxHolds.
	MaxHolds int
	// MaxStreams caps the SSH channels the client may stripe one
	// connection's streams over (each runs a serve process here); 1
	// refuses striping. 0 means DefaultMaxStreams.
	MaxStreams int
}

// minDigestRate is the slowest read a restricted client may ask a checksum
// to make (1 MiB/s).
const minDigestRate = 1 << 20

// DefaultMaxStreams is a client's stripe cap when Policy.MaxStreams is 0.
const DefaultMaxStreams = 4

func (p *Policy) maxStreams() int {
	if p.MaxStreams == 0 {
		return DefaultMaxStreams
	}
	return p.MaxStreams
}

// DefaultMaxHolds is a client's hold cap when Policy.MaxHolds is 0. An -I
// step holds every snapshot it delivers, so a client offline for a week
// behind a per-minute snapshot schedule comes back needing ~10,000 holds on
// one dataset; the cap is there to bound what a stolen key can pin, not to
// fail such a catch-up.
const DefaultMaxHolds = 100000

// Ownership (owner.go): wherever a client works, its hold tags and
// bookmark names are bound to it on disk. That includes its receive area,
// where the far host's own jobs may keep the cursors and holds of their
// copies of the client's replicas.

// legacyLastHold reports whether an unsuffixed on-disk tag on a snapshot of
// dataset is a last-received hold the client made before names were bound
// to clients: in its own receive area (no other client receives there) it
// still counts as the client's, so it can be seen and released.
func (p *Policy) legacyLastHold(dataset, tag string) bool {
	return p.inReceive(dataset) && reLegacyLastHold.MatchString(tag)
}

func (p *Policy) owner() owner { return owner{client: p.Client} }

func (p *Policy) rules() propRules { return propRules{client: p.Client, allow: p.AllowProperties} }

func (p *Policy) maxHolds() int {
	if p.MaxHolds > 0 {
		return p.MaxHolds
	}
	return DefaultMaxHolds
}

// checkProps refuses the first property of props the client may not set.
func (p *Policy) checkProps(action, name string, props map[string]string) error {
	if k, why := p.rules().check(props); k != "" {
		return p.forbid(action+" "+k+"="+shortText(props[k])+" on "+name, why)
	}
	return nil
}

// diskTag maps a hold tag the client names to disk: it must have zsync's
// shape, and gets the client's suffix.
func (p *Policy) diskTag(verb, tag string) (string, error) {
	d, err := p.owner().diskTag(tag)
	if err != nil {
		return "", p.forbid(verb+" "+shortText(tag), "only its own zsync hold tags: "+err.Error())
	}
	return d, nil
}

// diskVersion maps a snapshot or bookmark name the client gives to disk
// (a zsync bookmark gets the client's suffix).
func (p *Policy) diskVersion(verb, name string) (string, error) {
	d, err := p.owner().diskVersion(name)
	if err != nil {
		return "", p.forbid(verb+" "+shortText(name), err.Error())
	}
	return d, nil
}

// zsyncBookmarkPrefix starts the short name of every bookmark zsync
// creates (package sync's cursors and tentative cursors).
const zsyncBookmarkPrefix = "zsync_"

// zsyncPropertyPrefix starts zsync's own user properties.
const zsyncPropertyPrefix = "zsync:"

// forbiddenError is a policy refusal.
type forbiddenError struct {
	client, action, reason string
}

func (e *forbiddenError) Error() string {
	return fmt.Sprintf("client %s may not %s: %s", e.client, e.action, e.reason)
}

func (e *forbiddenError) Unwrap() error { return wire.ErrForbidden }

func (p *Policy) forbid(action, reason string) error {
	name := p.Client
	if name == "" {
		name = "(unnamed)"
	}
	return &forbiddenError{client: name, action: action, reason: reason}
}

func (p *Policy) inSend(dataset string) bool { return p.Send != nil && p.Send(dataset) }

func (p *Policy) inReceive(dataset string) bool {
	return p.ReceiveRoot != "" && zfs.IsDescendant(dataset, p.ReceiveRoot)
}

func (p *Policy) readable(dataset string) bool { return p.inSend(dataset) || p.inReceive(dataset) }

// outside explains why a dataset is not in the receive area.
func (p *Policy) outside() string {
	if p.ReceiveRoot == "" {
		return "it has no receive_root"
	}
	return "outside receive_root " + p.ReceiveRoot
}

// unreadable explains why a dataset is in neither area.
func (p *Policy) unreadable() string {
	return "not among its send datasets and " + p.outside()
}

// needReadable checks that the dataset part of every name is in an area.
func (p *Policy) needReadable(verb string, names ...string) error {
	for _, n := range names {
		if ds := datasetOf(n); !p.readable(ds) {
			return p.forbid(verb+" "+n, p.unreadable())
		}
	}
	return nil
}

// needReceive checks that the dataset part of every name is in the
// receive area.
func (p *Policy) needReceive(verb string, names ...string) error {
	for _, n := range names {
		if ds := datasetOf(n); !p.inReceive(ds) {
			return p.forbid(verb+" "+n, p.outside())
		}
	}
	return nil
}

func datasetOf(name string) string {
	ds, _, _ := zfs.SplitName(name)
	return ds
}

// The server runs nothing but grants. A grant is built here, by the
// authorize method of a request type, and only after the policy's rules
// for that request passed; it holds the handler call with the zfs
// arguments this code built from the validated request. The dispatcher
// (serve.go) runs g.call, or streams g.send or g.recv (stream.go), and
// never calls the Handler with a client's arguments itself. Serve without
// a Policy (g.policy nil: full rights) goes through the same methods: the
// rules are skipped, the grant is the same.
//
// A new rule goes into the authorize method of the requests it restricts,
// inside its "if p := g.policy; p != nil" block, with a Policy field to
// configure it; a new operation needs a request type (request.go) whose
// authorize method builds its grant here.

// gate is what an authorize method may use: the client's policy (nil when
// unrestricted), and the only Handler calls a rule may make before anything
// is granted, all reads: decoding a resume token to learn what a send would
// read (decodeToken), and reading the guids that bind the token to the
// snapshot it names (get, list; see tokenBinding).
type gate struct {
	policy      *Policy
	decodeToken func(ctx context.Context, token string) (zfs.ResumeToken, error)
	get         func(ctx context.Context, names []string, props []string) (map[string]map[string]string, error)
	list        func(ctx context.Context, roots []string, o zfs.ListOptions) ([]zfs.Entry, error)
}

// gateFor returns the gate of a request served by h under policy.
func gateFor(policy *Policy, h Handler) *gate {
	return &gate{policy: policy, decodeToken: h.DecodeResumeToken, get: h.Get, list: h.List}
}

// grant is what the policy allowed to run for one request: exactly one of
// call (an operation with a result), send and recv (the streams).
type grant struct {
	call func(ctx context.Context, h Handler) (any, error)
	send *sendGrant
	recv *recvGrant
}

// sendGrant is a granted send stream: the validated options, and the
// negotiated compression of its data frames.
type sendGrant struct {
	send     zfs.ValidatedSend
	compress string
}

// recvGrant is a granted receive stream: the options of zfs recv, and the
// negotiated compression of its data frames.
type recvGrant struct {
	opts     zfs.RecvOptions
	compress string
	// land, when set (a restricted client), builds the options from the
	// stream's head instead: the stream decides the dataset type, the
	// policy how it lands (props.go).
	land func(zfs.StreamHeader) (zfs.RecvOptions, error)
}

// callGrant grants an operation with a result.
func callGrant(f func(ctx context.Context, h Handler) (any, error)) grant {
	return grant{call: f}
}

// doGrant grants an operation without a result.
func doGrant(f func(ctx context.Context, h Handler) error) grant {
	return grant{call: func(ctx context.Context, h Handler) (any, error) { return nil, f(ctx, h) }}
}

func (r listRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if len(r.Roots) == 0 {
			return grant{}, p.forbid("list all pools", "a restricted client must name the datasets it lists")
		}
		if err := p.needReadable("list", r.Roots...); err != nil {
			return grant{}, err
		}
	}
	roots := r.Roots
	o := zfs.ListOptions{Depth: r.Options.Depth, Types: r.Options.Types, UserProps: r.Options.UserProps, SnapshotsChanged: r.Options.SnapshotsChanged}
	return callGrant(func(ctx context.Context, h Handler) (any, error) {
		entries, err := h.List(ctx, roots, o)
		if err != nil {
			return nil, err
		}
		return g.policy.filter(entries), nil
	}), nil
}

func (r getRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReadable("read properties of", r.Names...); err != nil {
			return grant{}, err
		}
		disk := make([]string, len(r.Names))
		back := map[string]string{}
		for i, n := range r.Names {
			d, err := p.diskVersion("read properties of", n)
			if err != nil {
				return grant{}, err
			}
			disk[i], back[d] = d, n
		}
		props := r.Props
		return callGrant(func(ctx context.Context, h Handler) (any, error) {
			got, err := h.Get(ctx, disk, props)
			if err != nil || got == nil {
				return got, err
			}
			out := make(map[string]map[string]string, len(got))
			for k, v := range got {
				if n, ok := back[k]; ok {
					out[n] = v
				}
			}
			return out, nil
		}), nil
	}
	names, props := r.Names, r.Props
	return callGrant(func(ctx context.Context, h Handler) (any, error) { return h.Get(ctx, names, props) }), nil
}

func (r holdsRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReadable("read the holds of", r.Snaps...); err != nil {
			return grant{}, err
		}
		snaps := r.Snaps
		return callGrant(func(ctx context.Context, h Handler) (any, error) {
			got, err := h.Holds(ctx, snaps)
			if err != nil {
				return nil, err
			}
			o := p.owner()
			for snap, tags := range got {
				shown := []string{}
				for _, t := range tags {
					if c, ok := o.clientTag(t); ok {
						shown = append(shown, c)
					} else if p.legacyLastHold(datasetOf(snap), t) {
						shown = append(shown, t)
					}
				}
				got[snap] = shown
			}
			return got, nil
		}), nil
	}
	snaps := r.Snaps
	return callGrant(func(ctx context.Context, h Handler) (any, error) { return h.Holds(ctx, snaps) }), nil
}

func (r holdRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReadable("hold or release", r.Snaps...); err != nil {
			return grant{}, err
		}
		tag, err := p.diskTag("hold", r.Tag)
		if err != nil {
			return grant{}, err
		}
		snaps, max := r.Snaps, p.maxHolds()
		return doGrant(func(ctx context.Context, h Handler) error {
			ds, n, err := p.owner().overCap(ctx, h, max, tag, snaps)
			if err != nil {
				return err
			}
			if ds != "" {
				return p.forbid(fmt.Sprintf("have %d holds on the snapshots of %s", n, ds), fmt.Sprintf("its cap is %d holds per dataset (max_holds in its [[serve.client]] on this host)", max))
			}
			return h.Hold(ctx, tag, snaps)
		}), nil
	}
	tag, snaps := r.Tag, r.Snaps
	return doGrant(func(ctx context.Context, h Handler) error { return h.Hold(ctx, tag, snaps) }), nil
}

func (r releaseRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReadable("hold or release", r.Snaps...); err != nil {
			return grant{}, err
		}
		tag, err := p.diskTag("release", r.Tag)
		if err != nil {
			return grant{}, err
		}
		snaps, legacy := r.Snaps, r.Tag
		return doGrant(func(ctx context.Context, h Handler) error {
			err := h.Release(ctx, tag, snaps)
			if !errors.Is(err, zfs.ErrNoSuchHold) {
				return err
			}
			// holds from before names were bound to clients, on the
			// snapshots that lacked the bound tag
			retry := legacyRetry(err, snaps, func(s string) bool { return p.legacyLastHold(datasetOf(s), legacy) })
			if len(retry) == 0 {
				return err
			}
			if lerr := h.Release(ctx, legacy, retry); lerr != nil {
				return err
			}
			return withoutFailures(err, retry)
		}), nil
	}
	tag, snaps := r.Tag, r.Snaps
	return doGrant(func(ctx context.Context, h Handler) error { return h.Release(ctx, tag, snaps) }), nil
}

func (r bookmarkRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReadable("bookmark", r.Source, r.Bookmark); err != nil {
			return grant{}, err
		}
		source, err := p.diskVersion("bookmark from", r.Source)
		if err != nil {
			return grant{}, err
		}
		bookmark, err := p.owner().diskBookmark(r.Bookmark)
		if err != nil {
			return grant{}, p.forbid("create bookmark "+shortText(r.Bookmark), "only its own zsync bookmarks: "+err.Error())
		}
		return doGrant(func(ctx context.Context, h Handler) error { return h.Bookmark(ctx, source, bookmark) }), nil
	}
	source, bookmark := r.Source, r.Bookmark
	return doGrant(func(ctx context.Context, h Handler) error { return h.Bookmark(ctx, source, bookmark) }), nil
}

func (r destroySnapshotsRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		action := "destroy snapshots of " + r.Dataset
		switch {
		case p.AppendOnly:
			return grant{}, p.forbid(action, "append_only is set")
		case p.inReceive(r.Dataset):
		case p.inSend(r.Dataset) && p.PruneSend:
		case p.inSend(r.Dataset):
			return grant{}, p.forbid(action, "it may send but not prune its send datasets (set prune_send = true in its [[serve.client]] on this host, or drop prune.source from the pull job)")
		default:
			return grant{}, p.forbid(action, p.outside())
		}
	}
	dataset, names := r.Dataset, r.Names
	return doGrant(func(ctx context.Context, h Handler) error { return h.DestroySnapshots(ctx, dataset, names) }), nil
}

func (r destroyBookmarksRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		disk := make([]string, len(r.Bookmarks))
		for i, b := range r.Bookmarks {
			ds, _, short := zfs.SplitName(b)
			disk[i] = b
			switch {
			case p.inReceive(ds) && !strings.HasPrefix(short, zsyncBookmarkPrefix) && !p.AppendOnly:
			case p.inReceive(ds) && !strings.HasPrefix(short, zsyncBookmarkPrefix):
				return grant{}, p.forbid("destroy bookmark "+b, "append_only is set: only its own zsync bookmarks may be destroyed there")
			case p.readable(ds):
				d, err := p.owner().diskBookmark(b)
				if err != nil {
					return grant{}, p.forbid("destroy bookmark "+shortText(b), "only its own zsync bookmarks may be destroyed there: "+err.Error())
				}
				disk[i] = d
			default:
				return grant{}, p.forbid("destroy bookmark "+b, p.unreadable())
			}
		}
		return doGrant(func(ctx context.Context, h Handler) error { return h.DestroyBookmarks(ctx, disk) }), nil
	}
	bookmarks := r.Bookmarks
	return doGrant(func(ctx context.Context, h Handler) error { return h.DestroyBookmarks(ctx, bookmarks) }), nil
}

func (r createRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReceive("create", r.Name); err != nil {
			return grant{}, err
		}
		if err := p.checkProps("create with", r.Name, r.Props); err != nil {
			return grant{}, err
		}
		name, props := r.Name, createProps(r.Props)
		if !r.Parents {
			return doGrant(func(ctx context.Context, h Handler) error { return h.Create(ctx, name, props, false) }), nil
		}
		parents := ancestors(name)
		return doGrant(func(ctx context.Context, h Handler) error { return createParents(ctx, h, parents, name, props) }), nil
	}
	name, props, parents := r.Name, r.Props, r.Parents
	return doGrant(func(ctx context.Context, h Handler) error { return h.Create(ctx, name, props, parents) }), nil
}

// createParents is a restricted client's `zfs create -p`: zfs would make
// the missing parents with default properties, canmount=on, and mount
// them. Instead each parent is created here, top-down, as a placeholder
// (canmount=noauto, never mounted) without -p; one that exists already is
// left as it is. Then name is created with its checked properties; that it
// exists already is no error, as with -p.
func createParents(ctx context.Context, h Handler, parents []string, name string, props map[string]string) error {
	for _, a := range parents {
		err := h.Create(ctx, a, map[string]string{"canmount": "noauto"}, false)
		if err != nil && !errors.Is(err, zfs.ErrExists) {
			return fmt.Errorf("creating %s, a parent of %s: %w", a, name, err)
		}
	}
	if err := h.Create(ctx, name, props, false); err != nil && !errors.Is(err, zfs.ErrExists) {
		return err
	}
	return nil
}

// ancestors returns the datasets above name, top-down, without the pool
// (the first component), which always exists: "a/b/c/d" -> a/b, a/b/c.
// With the policy's rule that name is in the receive area, they are the
// ancestors of the receive root and the datasets between it and name.
func ancestors(name string) []string {
	var out []string
	for i := strings.IndexByte(name, '/'); i >= 0; {
		j := strings.IndexByte(name[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
		out = append(out, name[:i])
	}
	return out
}

func (r setRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReceive("set properties on", r.Name); err != nil {
			return grant{}, err
		}
		if p.AppendOnly {
			for k := range r.Props {
				if !strings.HasPrefix(k, zsyncPropertyPrefix) {
					return grant{}, p.forbid("set "+k+" on "+r.Name, "append_only allows setting only zsync's own properties ("+zsyncPropertyPrefix+"*)")
				}
			}
		}
		if err := p.checkProps("set", r.Name, r.Props); err != nil {
			return grant{}, err
		}
	}
	name, props := r.Name, r.Props
	return doGrant(func(ctx context.Context, h Handler) error { return h.Set(ctx, name, props) }), nil
}

func (r renameRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if p.AppendOnly {
			return grant{}, p.forbid("rename "+r.From, "append_only is set")
		}
		if err := p.needReceive("rename", r.From, r.To); err != nil {
			return grant{}, err
		}
	}
	from, to := r.From, r.To
	return doGrant(func(ctx context.Context, h Handler) error { return h.Rename(ctx, from, to) }), nil
}

func (r sendRequest) authorize(ctx context.Context, g *gate) (grant, error) {
	vs, err := g.authorizeSend(ctx, r.Options)
	if err != nil {
		return grant{}, err
	}
	return grant{send: &sendGrant{send: vs, compress: r.Compress}}, nil
}

func (r sendSizeRequest) authorize(ctx context.Context, g *gate) (grant, error) {
	vs, err := g.authorizeSend(ctx, r.Options)
	if err != nil {
		return grant{}, err
	}
	return callGrant(func(ctx context.Context, h Handler) (any, error) { return h.SendSize(ctx, vs) }), nil
}

// authorizeSend checks that a send reads only the send area (a resume
// token is decoded first: it names the snapshot it sends, and is then bound
// to it by guid) and returns the options to run it with, built field by
// field: a field added to zfs.SendOptions reaches zfs only once it is
// passed on here.
func (g *gate) authorizeSend(ctx context.Context, o zfs.SendOptions) (zfs.ValidatedSend, error) {
	if p := g.policy; p != nil {
		to := o.To
		var token *zfs.ResumeToken
		if o.ResumeToken != "" {
			t, err := g.decodeToken(ctx, o.ResumeToken)
			if err != nil {
				return zfs.ValidatedSend{}, fmt.Errorf("checking the resume token: %w", err)
			}
			if err := zfs.ValidateSnapshot(t.ToName); err != nil {
				return zfs.ValidatedSend{}, fmt.Errorf("checking the resume token: %w", err)
			}
			to, token = t.ToName, &t
		}
		if ds := datasetOf(to); !p.inSend(ds) {
			return zfs.ValidatedSend{}, p.forbid("send "+to, "not among its send datasets")
		}
		if token != nil {
			if err := g.tokenBinding(ctx, p, *token); err != nil {
				return zfs.ValidatedSend{}, err
			}
		}
		if o.From != "" {
			from, err := p.diskVersion("send from", o.From)
			if err != nil {
				return zfs.ValidatedSend{}, err
			}
			o.From = from
		}
	}
	return zfs.SendOptions{
		From:          o.From,
		To:            o.To,
		Intermediates: o.Intermediates,
		Raw:           o.Raw,
		Compressed:    o.Compressed,
		LargeBlocks:   o.LargeBlocks,
		EmbeddedData:  o.EmbeddedData,
		Props:         o.Props,
		ResumeToken:   o.ResumeToken,
	}.Validate()
}

// tokenBinding checks that `zfs send -t` of t sends the snapshot the
// policy checked, t.ToName. zfs does not send toname: it looks up the
// snapshot whose guid is toguid, searching outward from toname's dataset
// through the whole pool, and the incremental source by fromguid alone
// (a snapshot or a bookmark, anywhere it finds one). So the snapshot
// toname must exist with guid toguid, and a fromguid must be the guid of a
// snapshot or bookmark of toname's dataset; otherwise the send is refused
// and nothing runs. A toname that no longer exists is reported as zfs
// would (ErrResumeTokenStale), so the client drops the token.
func (g *gate) tokenBinding(ctx context.Context, p *Policy, t zfs.ResumeToken) error {
	action := "resume a send of " + t.ToName
	if g.get == nil || g.list == nil {
		return p.forbid(action, "the far side cannot check the resume token")
	}
	got, err := g.get(ctx, []string{t.ToName}, []string{"guid"})
	if errors.Is(err, zfs.ErrDatasetNotFound) {
		return fmt.Errorf("checking the resume token: %s used in the initial send no longer exists: %w", t.ToName, zfs.ErrResumeTokenStale)
	}
	if err != nil {
		return fmt.Errorf("checking the resume token: %w", err)
	}
	if guid, err := strconv.ParseUint(got[t.ToName]["guid"], 10, 64); err != nil || guid != t.ToGUID {
		return p.forbid(action, fmt.Sprintf("the token's snapshot guid %#x is not the guid of %s", t.ToGUID, t.ToName))
	}
	if t.FromGUID == 0 {
		return nil
	}
	ds := datasetOf(t.ToName)
	versions, err := g.list(ctx, []string{ds}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Snapshot, zfs.Bookmark}})
	if err != nil {
		return fmt.Errorf("checking the resume token's incremental source: %w", err)
	}
	for _, v := range versions {
		if (v.Type == zfs.Snapshot || v.Type == zfs.Bookmark) && v.Dataset() == ds && v.GUID == t.FromGUID {
			return nil
		}
	}
	return p.forbid(action, fmt.Sprintf("the token's incremental source guid %#x is no snapshot or bookmark of %s", t.FromGUID, ds))
}

func (r receiveRequest) authorize(_ context.Context, g *gate) (grant, error) {
	o := r.Options
	if p := g.policy; p != nil {
		if err := p.needReceive("receive into", o.Target); err != nil {
			return grant{}, err
		}
		if o.Force && p.AppendOnly {
			return grant{}, p.forbid("receive with force (rollback) into "+o.Target, "append_only is set")
		}
		if o.Corrective {
			// zfs recv -c rewrites only blocks that read back damaged,
			// with data matching the checksums the pool has for them, and
			// creates, destroys or rolls back nothing: append_only allows
			// it where allow_heal does
			if !p.AllowHeal {
				return grant{}, p.forbid("repair "+o.Target+" (a corrective receive)", "allow_heal is not set in its [[serve.client]]")
			}
			if _, sep, _ := zfs.SplitName(o.Target); sep != '@' {
				return grant{}, p.forbid("repair "+o.Target, "a corrective receive repairs a snapshot")
			}
			if o.Resumable || o.NoMount || o.Force || len(o.Set) > 0 || len(o.Exclude) > 0 {
				return grant{}, p.forbid("repair "+o.Target+" with other receive options", "a corrective receive takes none")
			}
			asked := zfs.RecvOptions{Target: o.Target, Corrective: true}
			return grant{recv: &recvGrant{opts: asked, compress: r.Compress, land: func(h zfs.StreamHeader) (zfs.RecvOptions, error) {
				if h.Properties || h.Compound || h.FromGUID != 0 {
					return zfs.RecvOptions{}, p.forbid("repair "+o.Target+" from anything but the full stream of one snapshot", "a corrective receive repairs from its twin's full stream")
				}
				return asked, nil
			}}}, nil
		}
		if err := p.checkProps("receive with", o.Target, o.Set); err != nil {
			return grant{}, err
		}
		asked := zfs.RecvOptions{Target: o.Target, Resumable: o.Resumable, Force: o.Force, Set: o.Set, Exclude: o.Exclude}
		return grant{recv: &recvGrant{opts: asked, compress: r.Compress, land: func(h zfs.StreamHeader) (zfs.RecvOptions, error) {
			if h.Properties {
				return zfs.RecvOptions{}, p.forbid("receive a stream with properties (zfs send -p or -R) into "+o.Target, "the far side decides the properties of what it receives")
			}
			return landing(h, asked), nil
		}}}, nil
	}
	// field by field: a field added to zfs.RecvOptions reaches zfs only
	// once it is passed on here
	opts := zfs.RecvOptions{
		Target:     o.Target,
		Resumable:  o.Resumable,
		NoMount:    o.NoMount,
		Force:      o.Force,
		Set:        o.Set,
		Exclude:    o.Exclude,
		Corrective: o.Corrective,
	}
	return grant{recv: &recvGrant{opts: opts, compress: r.Compress}}, nil
}

func (r abortReceiveRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		if err := p.needReceive("abort the partial receive of", r.Dataset); err != nil {
			return grant{}, err
		}
	}
	dataset := r.Dataset
	return doGrant(func(ctx context.Context, h Handler) error { return h.AbortReceive(ctx, dataset) }), nil
}

func (r decodeTokenRequest) authorize(_ context.Context, g *gate) (grant, error) {
	// No rule: decoding tells only what the token itself contains; the
	// receiving side of a push decodes tokens naming the sender's
	// snapshots, which are in no area here.
	token := r.Token
	return callGrant(func(ctx context.Context, h Handler) (any, error) { return h.DecodeResumeToken(ctx, token) }), nil
}

func (r digestRequest) authorize(_ context.Context, g *gate) (grant, error) {
	if p := g.policy; p != nil {
		// it reads the snapshot, as a send does, and returns only a sum
		if err := p.needReadable("checksum", r.Snapshot); err != nil {
			return grant{}, err
		}
	}
	snapshot, o := r.Snapshot, zfs.DigestOptions{Limit: r.Limit, Sample: r.Sample}
	if p := g.policy; p != nil {
		// a small request reads a whole snapshot here: one at a time per
		// client, and not so slowly that it keeps the snapshot busy
		// (a running send makes its destroy fail) for days
		if o.Limit > 0 && o.Limit < minDigestRate {
			return grant{}, p.forbid(fmt.Sprintf("checksum %s at %d bytes/s", snapshot, o.Limit), fmt.Sprintf("a checksum reads at least %d bytes/s here (or without a limit)", minDigestRate))
		}
		client := p.Client
		return callGrant(func(ctx context.Context, h Handler) (any, error) {
			unlock, err := zfs.LockHost("digest-" + client)
			if err != nil {
				return nil, fmt.Errorf("one checksum at a time per client: %w", err)
			}
			defer unlock()
			return h.SnapshotDigest(ctx, snapshot, o)
		}), nil
	}
	return callGrant(func(ctx context.Context, h Handler) (any, error) { return h.SnapshotDigest(ctx, snapshot, o) }), nil
}

func (r poolErrorsRequest) authorize(_ context.Context, g *gate) (grant, error) {
	p := g.policy
	if p != nil {
		if err := p.needReadable("list the permanent errors of the pool of", r.Dataset); err != nil {
			return grant{}, err
		}
	}
	dataset := r.Dataset
	return callGrant(func(ctx context.Context, h Handler) (any, error) {
		pe, err := h.PoolErrors(ctx, dataset)
		if p == nil {
			return pe, err
		}
		if err != nil {
			// zfs's words may name others' datasets (a damaged pool
			// says "cannot open ..."): the log has them, not the client
			return zfs.PoolErrors{}, fmt.Errorf("reading the permanent errors of the pool of %s failed on the far side (zpool status -v there says why)", dataset)
		}
		// only what the client may see: others' datasets are counted
		var seen []string
		for _, n := range pe.Damaged {
			if p.readable(datasetOf(n)) {
				seen = append(seen, n)
			} else {
				pe.Other++
			}
		}
		pe.Damaged = seen
		return pe, nil
	}), nil
}

// filter keeps the entries of a listing the client may see.
func (p *Policy) filter(entries []zfs.Entry) []zfs.Entry {
	if p == nil {
		return entries
	}
	out := entries[:0]
	o := p.owner()
	for _, e := range entries {
		if !p.readable(e.Dataset()) {
			continue
		}
		if e.Type == zfs.Bookmark {
			name, ok := o.clientName(e.Name)
			if !ok {
				continue
			}
			e.Name = name
		}
		out = append(out, e)
	}
	return out
}

// legacyRetry returns the snapshots of a release that failed on them for
// want of the tag and for which eligible holds: those a *zfs.HoldError
// names so, or the one snapshot of a single release.
func legacyRetry(err error, snaps []string, eligible func(string) bool) []string {
	var he *zfs.HoldError
	if !errors.As(err, &he) {
		if len(snaps) == 1 && eligible(snaps[0]) {
			return snaps
		}
		return nil
	}
	var out []string
	for s, e := range he.Failed {
		if errors.Is(e, zfs.ErrNoSuchHold) && eligible(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// withoutFailures returns err without its failures on done (released after
// all), or nil when nothing else failed.
func withoutFailures(err error, done []string) error {
	var he *zfs.HoldError
	if !errors.As(err, &he) {
		return nil
	}
	rest := map[string]error{}
	for s, e := range he.Failed {
		if !slices.Contains(done, s) {
			rest[s] = e
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return &zfs.HoldError{Op: he.Op, Tag: he.Tag, Failed: rest}
}
