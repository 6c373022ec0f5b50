package zfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// RecvOptions describes a zfs receive.
type RecvOptions struct {
	// Target is the dataset to receive into (or the full name of the
	// snapshot to create).
	Target string
	// Resumable keeps partial state on interruption (-s).
	Resumable bool
	// NoMount does not mount the received filesystem (-u).
	NoMount bool
	// Force rolls the target back to its newest snapshot first and lets a
	// full stream replace it (-F). Only when the job explicitly says so.
	Force bool
	// Set overrides properties of the received dataset (-o k=v, key order).
	Set map[string]string
	// Exclude makes properties inherited instead of received (-x p).
	Exclude []string
	// Corrective repairs the existing snapshot Target from a stream of it
	// (zfs recv -c, OpenZFS 2.2 and later): blocks that read back damaged
	// are rewritten from the stream's, where they match the checksums the
	// pool has for them; nothing else changes. It excludes every other
	// option.
	Corrective bool
}

func (o RecvOptions) args() ([]string, error) {
	if err := validateAnyName(o.Target); err != nil {
		return nil, fmt.Errorf("zfs recv: target: %w", err)
	}
	if _, sep, _ := SplitName(o.Target); sep == '#' {
		return nil, fmt.Errorf("zfs recv: target %s is a bookmark", o.Target)
	}
	if o.Corrective {
		if _, sep, _ := SplitName(o.Target); sep != '@' {
			return nil, fmt.Errorf("zfs recv -c: target %s is not a snapshot", o.Target)
		}
		if o.Resumable || o.NoMount || o.Force || len(o.Set) > 0 || len(o.Exclude) > 0 {
			return nil, fmt.Errorf("zfs recv -c: a corrective receive takes no other option")
		}
		return []string{"recv", "-c", o.Target}, nil
	}
	args := []string{"recv"}
	if o.Resumable {
		args = append(args, "-s")
	}
	if o.NoMount {
		args = append(args, "-u")
	}
	if o.Force {
		args = append(args, "-F")
	}
	opts, err := optionArgs("-o", o.Set)
	if err != nil {
		return nil, err
	}
	args = append(args, opts...)
	excl := append([]string(nil), o.Exclude...)
	sort.Strings(excl)
	for i, p := range excl {
		if err := validatePropName(p); err != nil {
			return nil, err
		}
		if i > 0 && excl[i-1] == p {
			return nil, fmt.Errorf("zfs recv: property %q excluded twice", p)
		}
		if _, ok := o.Set[p]; ok {
			return nil, fmt.Errorf("zfs recv: property %q both set and excluded", p)
		}
		args = append(args, "-x", p)
	}
	return append(args, o.Target), nil
}

// Receive rules. The messages name the target without quotes in some
// wordings and with them in others; they are anchored at line starts and
// may span two lines, as zfs prints them.
var (
	ruleRecvModified   = mustRule(`(?m)^cannot receive [a-z ]*stream: destination '?([^'\n]+?)'? has been modified\s+since most recent snapshot$`, ErrDestinationModified)
	ruleRecvExists     = mustRule(`(?m)^cannot receive [a-z ]*stream: destination '?([^'\n]+?)'? exists\s+must specify -F to overwrite it$`, ErrExists)
	ruleRecvRestore    = mustRule(`(?m)^cannot restore to ([^\n]+): destination already exists$`, ErrExists)
	ruleRecvMismatch   = mustRule(`(?m)^cannot receive [a-z ]*stream: most recent snapshot of ([^\n]+?) does not\s+match incremental source$`, ErrIncrementalMismatch)
	ruleRecvHasSnaps   = mustRule(`(?m)^cannot receive [a-z ]*stream: destination has snapshots \(eg\. ([^\n]+?)\)\s+must destroy them to overwrite it$`, ErrDestinationHasSnapshots)
	ruleRecvPartial    = mustRule(`(?m)^cannot receive [a-z ]*stream: destination '?([^'\n]+?)'? contains partially-complete state from "zfs receive -s"\.?$`, ErrPartialReceive)
	ruleRecvNotExist   = mustRule(`(?m)^cannot receive [a-z ]*stream: destination '?([^'\n]+?)'? does not exist$`, ErrDatasetNotFound)
	ruleRecvIncomplete = mustRule(`(?m)^cannot receive[a-z ]*: (?:failed to read from stream|checksum mismatch or incomplete stream|checksum mismatch|incomplete stream|invalid stream \([a-z ]+\))\.?$`, ErrStreamIncomplete)
	ruleRecvBusy       = mustRule(`(?m)^cannot receive[a-z ]*: dataset is busy$`, ErrBusy)
	ruleRecvPermission = mustRule(`(?m)^cannot receive[a-z ]*: permission denied$`, ErrPermissionDenied)
	ruleRecvNoSpace    = mustRule(`(?m)^cannot receive[a-z ]*: out of space$`, ErrNoSpace)
	// EDQUOT: the target (or an ancestor) reached its quota; for the admin
	// it is the same condition as a full pool.
	ruleRecvQuota = mustRule(`(?m)^cannot receive [a-z ]*stream: destination ([^\n]+?) space quota exceeded\.?$`, ErrNoSpace)
)

var recvRules = []rule{
	ruleRecvModified, ruleRecvExists, ruleRecvRestore, ruleRecvMismatch, ruleRecvHasSnaps,
	ruleRecvPartial, ruleRecvNotExist, ruleRecvIncomplete, ruleRecvBusy, ruleRecvPermission, ruleRecvNoSpace,
	ruleRecvQuota,
}

// Receive runs `zfs recv` with stream as its input; it returns when zfs
// exits. Typed errors: ErrDestinationModified, ErrExists,
// ErrIncrementalMismatch, ErrDestinationHasSnapshots, ErrPartialReceive,
// ErrDatasetNotFound, ErrStreamIncomplete... When reading stream failed,
// the error also wraps that read error. When a resumable receive failed and
// the target now has a receive_resume_token, the error also wraps a
// *ResumableRecvError carrying it. Receive does not close stream; when zfs
// fails early the writer side of stream should be closed by the caller.
func (c *CLI) Receive(ctx context.Context, o RecvOptions, stream io.Reader) error {
	args, err := o.args()
	if err != nil {
		return err
	}
	if stream == nil {
		return errors.New("zfs recv: no stream")
	}
	if o.Corrective {
		// OpenZFS 2.2 and 2.3 panic (a VERIFY in dmu_recv_begin_sync,
		// which hangs the pool) when the snapshot is busy: mounted, as a
		// look into .zfs/snapshot leaves it for a while, or in another
		// corrective receive. One at a time per pool on this host, and
		// none into a mounted snapshot (an automount between this check
		// and the receive is not ruled out).
		unlock, err := LockHost("heal-" + Pool(o.Target))
		if err != nil {
			return fmt.Errorf("zfs recv -c: %w", err)
		}
		defer unlock()
		at, err := snapshotMountedAt(o.Target)
		if err != nil {
			return fmt.Errorf("zfs recv -c: cannot tell whether %s is mounted, and OpenZFS hangs the pool in a corrective receive into a mounted snapshot: %w", o.Target, err)
		}
		if at != "" {
			return fmt.Errorf("zfs recv -c: %s is mounted at %s (a look into .zfs/snapshot); OpenZFS hangs the pool in a corrective receive into a mounted snapshot, so unmount it first (umount %s): %w", o.Target, at, at, ErrBusy)
		}
	}
	in := &recordingReader{r: stream}
	_, runErr := c.exec(ctx, c.argv(args...), in)
	if runErr == nil {
		return nil
	}
	target, _, _ := SplitName(o.Target)
	if o.Corrective {
		var ze *Error
		if errors.As(runErr, &ze) && strings.Contains(ze.Stderr, "invalid option 'c'") {
			return fmt.Errorf("zfs recv -c: this OpenZFS has no corrective receive (it needs 2.2 or later): %w", errors.ErrUnsupported)
		}
	}
	err = classify(runErr, []string{target, o.Target, target + "@*"}, recvRules...)
	if rerr := in.Err(); rerr != nil {
		err = fmt.Errorf("%w (reading the stream: %w)", err, rerr)
	}
	if o.Resumable && ctx.Err() == nil {
		if tok := c.resumeToken(ctx, target); tok != "" {
			err = fmt.Errorf("%w; %w", err, &ResumableRecvError{Dataset: target, Token: tok})
		}
	}
	return fmt.Errorf("zfs recv: %w", err)
}

// resumeToken returns the receive_resume_token of dataset, "" if none or on
// any error.
func (c *CLI) resumeToken(ctx context.Context, dataset string) string {
	m, err := c.Get(ctx, []string{dataset}, []string{"receive_resume_token"})
	if err != nil {
		return ""
	}
	return m[dataset]["receive_resume_token"]
}

// recordingReader remembers the first read error other than io.EOF.
type recordingReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *recordingReader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// AbortReceive discards the partial state of an interrupted resumable
// receive into dataset (`zfs recv -A`). No partial state is not an error
// (idempotent); a missing dataset -> ErrDatasetNotFound.
func (c *CLI) AbortReceive(ctx context.Context, dataset string) error {
	if err := ValidateDataset(dataset); err != nil {
		return err
	}
	_, err := c.run(ctx, "recv", "-A", dataset)
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		if m := reNoResumableState.FindStringSubmatch(ce.Stderr); m != nil && m[1] == dataset {
			return nil
		}
	}
	return fmt.Errorf("zfs recv -A: %w", classify(err, []string{dataset}))
}

var reNoResumableState = regexpMust(`(?m)^'([^'\n]+)' does not have any resumable receive state to abort$`)
