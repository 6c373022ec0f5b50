package sync

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/zsync-dev/zsync/zfs"
)

// InitialPolicy says what to do when the target has no snapshots yet.
type InitialPolicy int

// The initial replication policies.
const (
	// InitialMostRecent sends the newest wanted sender snapshot in full.
	InitialMostRecent InitialPolicy = iota
	// InitialAll sends the oldest wanted snapshot in full, then every newer
	// wanted snapshot incrementally.
	InitialAll
	// InitialFail refuses with *InitialReplicationError.
	InitialFail
)

// String returns the configuration spelling of the policy.
func (p InitialPolicy) String() string {
	switch p {
	case InitialMostRecent:
		return "most_recent"
	case InitialAll:
		return "all"
	case InitialFail:
		return "fail"
	}
	return fmt.Sprintf("InitialPolicy(%d)", int(p))
}

// PlanOptions are the job settings planning depends on.
type PlanOptions struct {
	// Initial applies when the target has no snapshots.
	Initial InitialPolicy
	// SnapshotFilter selects the wanted sender snapshots by short name
	// (after '@'); nil wants every snapshot. Receiver snapshots and the
	// common base are never filtered.
	SnapshotFilter *regexp.Regexp
	// Raw is whether the steps will be sent raw (zfs send -w); a resume
	// token of the other raw-ness is aborted.
	Raw bool
}

// Step is one zfs send | zfs recv of a plan.
type Step struct {
	// From is the incremental source on the sender, a snapshot or a
	// bookmark; the zero Entry (empty Name) means a full send of To.
	From zfs.Entry
	// To is the sender snapshot the step ends with. After the step the
	// target's newest snapshot must have To.GUID.
	To zfs.Entry
	// Intermediates means send -I: every sender snapshot between From and
	// To is sent too. It is set only when there is at least one such
	// snapshot and all of them are wanted; From is then a snapshot.
	Intermediates bool
	// ResumeToken is the target's receive_resume_token when this step
	// resumes an interrupted receive (zfs send -t); From and To are then the
	// sender versions the token names.
	ResumeToken string
}

// Full reports whether the step is a full (non-incremental) send.
func (s Step) Full() bool { return s.From.Name == "" }

// String describes the step with full names, for logs and dry runs, e.g.
// "full tank/a@1", "-i tank/a#c..tank/a@2", "-I tank/a@2..tank/a@5" and a
// "resume " prefix for a resumed step.
func (s Step) String() string {
	var b strings.Builder
	if s.ResumeToken != "" {
		b.WriteString("resume ")
	}
	switch {
	case s.Full():
		b.WriteString("full " + s.To.Name)
	case s.Intermediates:
		b.WriteString("-I " + s.From.Name + ".." + s.To.Name)
	default:
		b.WriteString("-i " + s.From.Name + ".." + s.To.Name)
	}
	return b.String()
}

// Plan is what one dataset needs to catch up with its sender.
type Plan struct {
	// Steps in execution order; none means the target is up to date.
	Steps []Step
	// AbortResume means the target has a resume token that does not fit
	// this plan: the caller must abort the partial receive (zfs recv -A)
	// before the first step, and should tell the user AbortReason.
	AbortResume bool
	// AbortReason explains AbortResume in one human sentence.
	AbortReason string
	// Base is the sender's version (snapshot preferred, else bookmark) of
	// the common base, the receiver's newest snapshot; nil when the
	// receiver has no snapshots.
	Base *zfs.Entry
}

// ErrConflict is wrapped by every planning conflict (*DivergedError,
// *NoCommonError, *NoSenderSnapshotsError, *InitialReplicationError): the
// dataset cannot be replicated until someone acts.
var ErrConflict = errors.New("replication conflict")

// maxListed bounds how many names a conflict message lists.
const maxListed = 10

func listNames(es []zfs.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	var names []string
	for i, e := range es {
		if i == maxListed {
			names = append(names, fmt.Sprintf("and %d more", len(es)-maxListed))
			break
		}
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

// DivergedError means the receiver's newest snapshot is not on the sender,
// but an older one is: the target was changed (or the sender lost versions)
// after their common version. Nothing is sent; zsync never rolls back.
type DivergedError struct {
	// Common is the sender's version (snapshot or bookmark) of the newest
	// receiver snapshot that the sender still has.
	Common zfs.Entry
	// SenderOnly are the sender snapshots after Common, oldest first.
	SenderOnly []zfs.Entry
	// ReceiverOnly are the receiver snapshots after Common, oldest first.
	ReceiverOnly []zfs.Entry
}

// Error lists the common version and both sides' versions after it.
func (e *DivergedError) Error() string {
	return fmt.Sprintf("sender and receiver diverged after common version %s: receiver-only snapshots: %s; sender-only snapshots: %s",
		e.Common.Name, listNames(e.ReceiverOnly), listNames(e.SenderOnly))
}

// Unwrap returns ErrConflict.
func (e *DivergedError) Unwrap() error { return ErrConflict }

// NoCommonError means the receiver has snapshots but none of their GUIDs
// exists on the sender, as a snapshot or a bookmark.
type NoCommonError struct {
	SenderNewest   zfs.Entry // the sender's newest snapshot
	ReceiverNewest zfs.Entry // the receiver's newest snapshot
}

// Error names both sides' newest snapshots.
func (e *NoCommonError) Error() string {
	return fmt.Sprintf("no common snapshot or bookmark between sender and receiver (sender's newest is %s, receiver's newest is %s)",
		e.SenderNewest.Name, e.ReceiverNewest.Name)
}

// Unwrap returns ErrConflict.
func (e *NoCommonError) Unwrap() error { return ErrConflict }

// NoSenderSnapshotsError means there is nothing to send: the sender has no
// snapshots, or (Filtered) none the snapshot filter wants while the
// receiver has none either.
type NoSenderSnapshotsError struct {
	Dataset  string // the sender dataset, when known from the listing
	Filtered bool   // the sender has snapshots, but the filter wants none
}

// Error says which of the two cases it is.
func (e *NoSenderSnapshotsError) Error() string {
	what := "sender has no snapshots"
	if e.Filtered {
		what = "sender has no snapshots that the snapshot filter selects"
	}
	if e.Dataset != "" {
		return fmt.Sprintf("%s: %s", e.Dataset, what)
	}
	return what
}

// Unwrap returns ErrConflict.
func (e *NoSenderSnapshotsError) Unwrap() error { return ErrConflict }

// InitialReplicationError means the receiver has no snapshots and the job's
// initial policy is InitialFail.
type InitialReplicationError struct {
	Dataset string // the sender dataset, when known from the listing
}

// Error explains the refusal.
func (e *InitialReplicationError) Error() string {
	return fmt.Sprintf("%s: receiver has no snapshots and initial replication is set to fail", e.Dataset)
}

// Unwrap returns ErrConflict.
func (e *InitialReplicationError) Unwrap() error { return ErrConflict }

// compareVersions orders versions of one dataset by createtxg, a bookmark
// before a snapshot of the same txg, then by name for determinism.
func compareVersions(a, b zfs.Entry) int {
	if c := cmp.Compare(a.CreateTXG, b.CreateTXG); c != 0 {
		return c
	}
	if a.Type != b.Type {
		if a.Type == zfs.Bookmark {
			return -1
		}
		if b.Type == zfs.Bookmark {
			return 1
		}
	}
	return strings.Compare(a.Name, b.Name)
}

// versions returns the entries of the given types sorted by compareVersions,
// checking that they have a GUID and all belong to one dataset.
func versions(side string, entries []zfs.Entry, types ...zfs.Type) (out []zfs.Entry, dataset string, err error) {
	for _, e := range entries {
		if !slices.Contains(types, e.Type) {
			continue
		}
		if e.GUID == 0 {
			return nil, "", fmt.Errorf("plan: %s version %q has no guid", side, e.Name)
		}
		if dataset == "" {
			dataset = e.Dataset()
		} else if e.Dataset() != dataset {
			return nil, "", fmt.Errorf("plan: %s versions of two datasets, %q and %q", side, dataset, e.Dataset())
		}
		out = append(out, e)
	}
	slices.SortFunc(out, compareVersions)
	return out, dataset, nil
}

// PlanDataset plans the replication of one dataset. It is a pure function
// of its inputs:
//
//   - sender: the sending dataset's snapshots and bookmarks (other entry
//     types are ignored);
//   - receiver: the target dataset's snapshots (bookmarks are ignored), empty
//     when the target is missing or has none, plus the target dataset's own
//     entry (filesystem or volume) whenever token is not nil: its
//     ResumeToken text becomes Step.ResumeToken of a resumed step, and a
//     token without that text is an error (not a conflict);
//   - token: the decoded receive_resume_token of the target, or nil;
//   - o: the job's options.
//
// Versions are matched by GUID and ordered by createtxg, never by name or
// creation time. The common base is the receiver's newest snapshot whose
// GUID exists on the sender (as a snapshot, preferred, or a bookmark). The
// conflicts are *DivergedError, *NoCommonError, *NoSenderSnapshotsError and
// *InitialReplicationError, all wrapping ErrConflict; a plan without steps
// and a nil error means the target is up to date.
//
// Steps are batched: a step uses -I over a run of consecutive wanted sender
// snapshots when its source is a snapshot, and -i wherever the filter skips
// a snapshot or the source is a bookmark. Without a filter that is one -I
// step from the base to the newest snapshot (a -i step first when the base
// is a bookmark).
//
// A token is validated against the plan: its toguid must be a sender
// snapshot newer than the base (any sender snapshot when the receiver has
// none), its fromguid the base's GUID (0, a full send, only when the
// receiver has no snapshots), and its raw-ness o.Raw. A valid token becomes
// the first step (ResumeToken is the target entry's ResumeToken text) and
// planning continues from its snapshot; an invalid one sets
// AbortResume and the plan is made as if there were no token.
func PlanDataset(sender, receiver []zfs.Entry, token *zfs.ResumeToken, o PlanOptions) (Plan, error) {
	snd, sndDataset, err := versions("sender", sender, zfs.Snapshot, zfs.Bookmark)
	if err != nil {
		return Plan{}, err
	}
	rcv, _, err := versions("receiver", receiver, zfs.Snapshot)
	if err != nil {
		return Plan{}, err
	}
	var snaps []zfs.Entry                // sender snapshots, oldest first
	byGUID := make(map[uint64]zfs.Entry) // a snapshot replaces its bookmark
	for _, e := range snd {
		if e.Type == zfs.Snapshot {
			snaps = append(snaps, e)
			byGUID[e.GUID] = e
		} else if _, ok := byGUID[e.GUID]; !ok {
			byGUID[e.GUID] = e
		}
	}
	if len(snaps) == 0 {
		return Plan{}, &NoSenderSnapshotsError{Dataset: sndDataset}
	}
	var text string
	if token != nil {
		if text = resumeText(receiver); text == "" {
			return Plan{}, errors.New("plan: a decoded resume token was given, but receiver has no dataset entry with its receive_resume_token text")
		}
	}
	p := planner{snaps: snaps, byGUID: byGUID, o: o}

	if len(rcv) == 0 {
		if o.Initial == InitialFail {
			return Plan{}, &InitialReplicationError{Dataset: sndDataset}
		}
		var plan Plan
		if token != nil {
			from, to, reason := p.checkToken(token, nil)
			if reason == "" {
				first := Step{From: from, To: to, ResumeToken: text}
				plan.Steps = append([]Step{first}, p.steps(to)...)
				return plan, nil
			}
			plan.AbortResume, plan.AbortReason = true, reason
		}
		var wanted []zfs.Entry
		for _, e := range snaps {
			if p.wanted(e) {
				wanted = append(wanted, e)
			}
		}
		if len(wanted) == 0 {
			return Plan{}, &NoSenderSnapshotsError{Dataset: sndDataset, Filtered: true}
		}
		first := wanted[len(wanted)-1]
		if o.Initial == InitialAll {
			first = wanted[0]
		}
		plan.Steps = append([]Step{{To: first}}, p.steps(first)...)
		return plan, nil
	}

	// The common base: the receiver's newest snapshot known to the sender.
	bi := -1
	var base zfs.Entry
	for i := len(rcv) - 1; i >= 0; i-- {
		if e, ok := byGUID[rcv[i].GUID]; ok {
			bi, base = i, e
			break
		}
	}
	if bi < 0 {
		return Plan{}, &NoCommonError{SenderNewest: snaps[len(snaps)-1], ReceiverNewest: rcv[len(rcv)-1]}
	}
	if bi != len(rcv)-1 {
		return Plan{}, &DivergedError{
			Common:       base,
			SenderOnly:   p.after(base),
			ReceiverOnly: slices.Clone(rcv[bi+1:]),
		}
	}
	plan := Plan{Base: &base}
	if token != nil {
		from, to, reason := p.checkToken(token, &base)
		if reason == "" {
			first := Step{From: from, To: to, ResumeToken: text}
			plan.Steps = append([]Step{first}, p.steps(to)...)
			return plan, nil
		}
		plan.AbortResume, plan.AbortReason = true, reason
	}
	plan.Steps = p.steps(base)
	return plan, nil
}

// resumeText returns the raw receive_resume_token text for a resumed step:
// the ResumeToken of the target dataset's entry in receiver.
func resumeText(receiver []zfs.Entry) string {
	for _, e := range receiver {
		if e.IsDataset() && e.ResumeToken != "" {
			return e.ResumeToken
		}
	}
	return ""
}

// planner holds the sender side of one PlanDataset call.
type planner struct {
	snaps  []zfs.Entry          // sender snapshots, oldest first
	byGUID map[uint64]zfs.Entry // sender versions, snapshot preferred
	o      PlanOptions
}

func (p *planner) wanted(e zfs.Entry) bool {
	return p.o.SnapshotFilter == nil || p.o.SnapshotFilter.MatchString(e.Short())
}

// after returns the sender snapshots newer than v (a sender version).
func (p *planner) after(v zfs.Entry) []zfs.Entry {
	var out []zfs.Entry
	for _, e := range p.snaps {
		if e.CreateTXG > v.CreateTXG {
			out = append(out, e)
		}
	}
	return out
}

// steps returns the steps from the sender version from to the newest wanted
// sender snapshot: -I over runs of consecutive wanted snapshots when the
// source is a snapshot, -i otherwise.
func (p *planner) steps(from zfs.Entry) []Step {
	rest := p.after(from)
	var out []Step
	cur, i := from, 0
	for i < len(rest) {
		j := i
		for j < len(rest) && !p.wanted(rest[j]) {
			j++
		}
		if j == len(rest) {
			break // nothing wanted remains
		}
		if j > i || cur.Type != zfs.Snapshot {
			// The filter skips rest[i:j], or the source is a bookmark.
			out = append(out, Step{From: cur, To: rest[j]})
			cur, i = rest[j], j+1
			continue
		}
		k := j
		for k+1 < len(rest) && p.wanted(rest[k+1]) {
			k++
		}
		out = append(out, Step{From: cur, To: rest[k], Intermediates: k > i})
		cur, i = rest[k], k+1
	}
	return out
}

// checkToken validates a resume token against the plan's base (nil when the
// receiver has no snapshots). It returns the sender versions the token
// names, or a non-empty reason why it must be aborted.
func (p *planner) checkToken(t *zfs.ResumeToken, base *zfs.Entry) (from, to zfs.Entry, reason string) {
	to, ok := p.byGUID[t.ToGUID]
	if !ok || to.Type != zfs.Snapshot {
		name := ""
		if t.ToName != "" {
			name = " " + t.ToName
		}
		return from, to, fmt.Sprintf("resume token's snapshot%s (toguid 0x%016x) no longer exists on the sender", name, t.ToGUID)
	}
	switch {
	case base != nil && to.CreateTXG <= base.CreateTXG:
		return from, to, fmt.Sprintf("resume token's snapshot %s is not newer than the common base %s", to.Name, base.Name)
	case t.FromGUID == 0 && base != nil:
		return from, to, fmt.Sprintf("resume token is for a full send but the receiver already has snapshots (common base %s)", base.Name)
	case t.FromGUID != 0 && base == nil:
		return from, to, fmt.Sprintf("resume token's incremental source (fromguid 0x%016x) does not match the common base: the receiver has no snapshots", t.FromGUID)
	case t.FromGUID != 0 && t.FromGUID != base.GUID:
		return from, to, fmt.Sprintf("resume token's incremental source (fromguid 0x%016x) does not match the common base %s (guid 0x%016x)", t.FromGUID, base.Name, base.GUID)
	case t.Raw && !p.o.Raw:
		return from, to, "resume token is raw but the plan is not"
	case !t.Raw && p.o.Raw:
		return from, to, "resume token is not raw but the plan is"
	}
	if base != nil {
		from = *base
	}
	return from, to, ""
}
