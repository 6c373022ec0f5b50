//go:build realzfs

package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// killPoint says where in a step's lifecycle a push ends: a real kill once
// the far zfs recv has read recvBytes bytes (mid-stream), or, for the points
// between two zfs calls, a deterministic stop: the source endpoint fails
// the first call that stop matches, so the run ends for the dataset right
// there and nothing after it in the lifecycle runs, exactly the state a
// kill at that point leaves (a kill timed from outside could not hit the
// few hundred milliseconds between the receive and the cursor reliably).
type killPoint struct {
	name      string
	stop      func(call string) bool
	recvBytes int64
}

// The kill points of a batched step's lifecycle (sync/doc.go): after the
// step's protection and before the send; mid-stream; after the receive (the
// GUID verified, the last-received hold moved) before the cursor; after the
// cursor moved, before the step holds are released (or, at level
// incremental, before the old cursor and the tentative cursors go).
func killPoints(protection string) []killPoint {
	afterCursor := func(c string) bool { return strings.HasPrefix(c, "release zsync_step_") }
	if protection == "incremental" {
		afterCursor = func(c string) bool { return strings.HasPrefix(c, "destroy-bookmarks ") }
	}
	return []killPoint{
		{name: "before recv", stop: func(c string) bool { return strings.HasPrefix(c, "send ") }},
		{name: "mid-stream", recvBytes: 1536 << 10},
		{name: "after recv before cursor", stop: func(c string) bool {
			return strings.HasPrefix(c, "bookmark ") && strings.Contains(c, "#zsync_cursor_T")
		}},
		{name: "after cursor move", stop: afterCursor},
	}
}

var errInjectedStop = errors.New("injected stop: the run ends here, as if killed")

// stoppingEndpoint fails the first call its stop function matches (and
// every call after it, as a dead process makes none).
type stoppingEndpoint struct {
	zsync.Endpoint
	stop    func(call string) bool
	stopped *bool
}

func (s stoppingEndpoint) check(call string) error {
	if *s.stopped || s.stop(call) {
		*s.stopped = true
		return fmt.Errorf("%s: %w", call, errInjectedStop)
	}
	return nil
}

func (s stoppingEndpoint) Send(ctx context.Context, v zfs.ValidatedSend) (io.ReadCloser, error) {
	if err := s.check(fmt.Sprintf("send %+v", v.Options())); err != nil {
		return nil, err
	}
	return s.Endpoint.Send(ctx, v)
}

func (s stoppingEndpoint) Bookmark(ctx context.Context, snap, bm string) error {
	if err := s.check("bookmark " + snap + " " + bm); err != nil {
		return err
	}
	return s.Endpoint.Bookmark(ctx, snap, bm)
}

func (s stoppingEndpoint) Hold(ctx context.Context, tag string, snaps []string) error {
	if err := s.check("hold " + tag); err != nil {
		return err
	}
	return s.Endpoint.Hold(ctx, tag, snaps)
}

func (s stoppingEndpoint) Release(ctx context.Context, tag string, snaps []string) error {
	if err := s.check("release " + tag); err != nil {
		return err
	}
	return s.Endpoint.Release(ctx, tag, snaps)
}

func (s stoppingEndpoint) DestroyBookmarks(ctx context.Context, bms []string) error {
	if err := s.check("destroy-bookmarks " + strings.Join(bms, " ")); err != nil {
		return err
	}
	return s.Endpoint.DestroyBookmarks(ctx, bms)
}

// killAt ends a push of the config's only job at kp.
func killAt(t *testing.T, kp killPoint, cfgPath string) {
	t.Helper()
	if kp.stop == nil {
		killWhenReceived(t, startZsync(t, "--config", cfgPath, "push"), kp.recvBytes)
		return
	}
	stopped := false
	rep, err := runJobWrapped(t, cfgPath, func(ep zsync.Endpoint) zsync.Endpoint {
		return stoppingEndpoint{Endpoint: ep, stop: kp.stop, stopped: &stopped}
	}, nil)
	if err != nil {
		t.Fatalf("push to %q: %v", kp.name, err)
	}
	if !stopped {
		t.Fatalf("the push never reached the kill point %q: %+v", kp.name, rep.Datasets)
	}
	// a stop in housekeeping after the data path is a warning, not a failure
	d := rep.Datasets[0]
	if !errors.Is(d.Err, errInjectedStop) && !strings.Contains(strings.Join(d.Warnings, "\n"), errInjectedStop.Error()) {
		t.Fatalf("the push ended with %v (warnings %q), not at the kill point %q", d.Err, d.Warnings, kp.name)
	}
	t.Logf("stopped at %q: %v %q", kp.name, d.Err, d.Warnings)
}

// runJobWrapped runs the config's first job in-process, as `zsync push` or
// `pull` would, with its source and target endpoints passed through
// wrapSrc and wrapDst (nil: unchanged).
func runJobWrapped(t *testing.T, cfgPath string, wrapSrc, wrapDst func(zsync.Endpoint) zsync.Endpoint) (*zsync.Report, error) {
	t.Helper()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, log: zerolog.Nop()}
	job, cleanup, err := e.buildJob(cfg, &cfg.Jobs[0], false, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	wrap := func(open zsync.Opener, w func(zsync.Endpoint) zsync.Endpoint) zsync.Opener {
		if w == nil {
			return open
		}
		return func(ctx context.Context) (zsync.Endpoint, error) {
			ep, err := open(ctx)
			if err != nil {
				return nil, err
			}
			return w(ep), nil
		}
	}
	job.Source, job.Target = wrap(job.Source, wrapSrc), wrap(job.Target, wrapDst)
	return job.Run(context.Background())
}

// flakyDecode is a target endpoint whose connection drops while it decodes
// a resume token.
type flakyDecode struct{ zsync.Endpoint }

func (flakyDecode) DecodeResumeToken(context.Context, string) (zfs.ResumeToken, error) {
	return zfs.ResumeToken{}, fmt.Errorf("read frame: %w", io.ErrUnexpectedEOF)
}

// A resume token that merely could not be decoded (the connection dropped)
// is not proven stale: the partial receive is kept, and the next run
// resumes it.
func TestTokenDecodeFailureKeepsPartialReceive(t *testing.T) {
	src, dst, cfg := resumeEnv(t, 4096)
	target := dst + "/backup/" + src + "/big"
	killWhenReceived(t, startZsync(t, "--config", cfg, "push"), 1<<20)
	tok := zfstest.Get(t, target, "receive_resume_token")
	if tok == "-" {
		t.Fatalf("no resume token after the kill")
	}
	rep, err := runJobWrapped(t, cfg, nil, func(ep zsync.Endpoint) zsync.Endpoint { return flakyDecode{ep} })
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Datasets[0]; d.Status != zsync.StatusFailed || !errors.Is(d.Err, io.ErrUnexpectedEOF) || d.AbortedResume != "" {
		t.Errorf("run with a dropped decode: status %s, err %v, aborted %q; want failed with the cause, nothing aborted", d.Status, d.Err, d.AbortedResume)
	}
	if got := zfstest.Get(t, target, "receive_resume_token"); got != tok {
		t.Fatalf("the partial receive was not kept: token %.40s... -> %.40s...", tok, got)
	}
	code, _, errOut := zsyncRun(t, "--config", cfg, "push")
	if code != 0 || !strings.Contains(errOut, "resume ") {
		t.Fatalf("the next push: exit %d, resumed %v", code, strings.Contains(errOut, "resume "))
	}
	checkConverged(t, src, dst)
}

// batchEnv makes src/big with one replicated snapshot, then four new
// snapshots of 1 MiB each: the next push sends them in one -I step.
func batchEnv(t *testing.T, protection string) (src, dst, cfg string) {
	t.Helper()
	src, dst, cfg = bigPushEnv(t, "zsync_1", fmt.Sprintf(`  protection = %q
  [job.prune]
  source = [{ last_n = 1, regex = "^zsync_" }]
  target = [{ last_n = 1, regex = "^zsync_" }]`, protection))
	for i := 2; i <= 5; i++ {
		zfstest.MustWriteFile(t, src+"/big", fmt.Sprintf("f%d", i), 1024)
		zfstest.MustSnapshot(t, fmt.Sprintf("%s/big@zsync_%d", src, i))
	}
	return src, dst, cfg
}

// checkConverged: the replica equals the source, no resume token, exactly
// one cursor on the source and one last-received hold on the target's
// newest snapshot (same GUID), no step holds and no tentative cursors left.
func checkConverged(t *testing.T, src, dst string) {
	t.Helper()
	e := &pushEnv{src: src, dst: dst}
	if tok := zfstest.Get(t, e.target("big"), "receive_resume_token"); tok != "-" {
		t.Errorf("leftover resume token on %s", e.target("big"))
	}
	e.checkInvariants(t, "big")
	e.checkSame(t, "big")
}

// A push killed inside a batched -I step, a prune of the source down to its
// newest snapshot, and the next push converges with exit 0, without rotate
// and without a full resend, for every kill point of the step's lifecycle
// and both protection levels that promise an incremental base.
func TestKilledBatchedStepPruneConverges(t *testing.T) {
	for _, prot := range []string{"resumability", "incremental"} {
		for _, kp := range killPoints(prot) {
			t.Run(prot+"/"+strings.ReplaceAll(kp.name, " ", "_"), func(t *testing.T) {
				src, dst, cfg := batchEnv(t, prot)
				killAt(t, kp, cfg)
				t.Logf("after the kill: target %v, source %v, holds %v", snapshotsOf(t, dst+"/backup/"+src+"/big"), snapshotsOf(t, src+"/big"), holdsOn(t, src+"/big"))
				if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
					t.Fatalf("prune after the kill: exit %d", code)
				}
				code, reps, errOut := pushJSON(t, cfg)
				if code != 0 {
					t.Fatalf("push after kill and prune: exit %d", code)
				}
				for _, s := range reps[0].Datasets[0].Steps {
					if strings.HasPrefix(s, "full ") {
						t.Errorf("converging push resent in full: %v", reps[0].Datasets[0].Steps)
					}
				}
				if strings.Contains(errOut, "renaming the target aside") {
					t.Errorf("converging push rotated the target")
				}
				checkConverged(t, src, dst)
				// and a prune after convergence keeps the chain: one more
				// snapshot, prune, push
				zfstest.MustWriteFile(t, src+"/big", "after", 64)
				zfstest.MustSnapshot(t, src+"/big@zsync_6")
				if code, _, _ := zsyncRun(t, "--config", cfg, "prune"); code != 0 {
					t.Fatalf("second prune: exit %d", code)
				}
				if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
					t.Fatalf("push after the second prune: exit %d", code)
				}
				checkConverged(t, src, dst)
			})
		}
	}
}

// raw = "always" on an unencrypted dataset: the kernel does not mark the
// stream (nor its resume token) raw, so a killed push must resume, not
// abort its partial receive as "not raw".
func TestRawAlwaysUnencryptedResumes(t *testing.T) {
	src, dst, cfg := bigPushEnv(t, "s1", `  raw = "always"`)
	zfstest.MustWriteFile(t, src+"/big", "more", 4096)
	zfstest.MustSnapshot(t, src+"/big@s2")
	killWhenReceived(t, startZsync(t, "--config", cfg, "push"), 1<<20)
	code, reps, errOut := pushJSON(t, cfg)
	if code != 0 {
		t.Fatalf("push after the kill: exit %d", code)
	}
	if reps[0].Datasets[0].AbortedResume != "" || strings.Contains(errOut, "aborting the partial receive") {
		t.Errorf("the partial receive was aborted: %q", reps[0].Datasets[0].AbortedResume)
	}
	if !strings.Contains(errOut, "resume ") {
		t.Errorf("the push did not resume")
	}
	checkConverged(t, src, dst)
}

// An encrypted source whose children were replicated first (below a
// placeholder) and whose parent joins the job later: the parent arrives raw
// in the placeholder's place, the children's replicas are untouched and
// back below it, and the marker is gone.
func TestEncryptedParentJoinsLater(t *testing.T) {
	src, dst := zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	key := zfstest.KeyFile(t, "correct horse battery")
	zfstest.MustCreate(t, src+"/enc", "encryption=on", "keyformat=passphrase", "keylocation=file://"+key)
	zfstest.MustCreate(t, src+"/enc/child")
	zfstest.MustWriteFile(t, src+"/enc", "p", 64)
	zfstest.MustWriteFile(t, src+"/enc/child", "c", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/enc@s1")
	job := func(datasets string) string {
		return writeConfig(t, fmt.Sprintf("[[job]]\nname = \"e\"\ntype = \"push\"\ndatasets = [%q]\nroot = \"%s/backup\"\n", datasets, dst))
	}
	if code, _, _ := zsyncRun(t, "--config", job(src+"/enc/child"), "push"); code != 0 {
		t.Fatalf("child-only push: exit %d", code)
	}
	parent, child := dst+"/backup/"+src+"/enc", dst+"/backup/"+src+"/enc/child"
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v != parent {
		t.Fatalf("the parent is not a placeholder: %q", v)
	}
	childGUID := zfstest.GUID(t, child+"@s1")
	zfstest.MustWriteFile(t, src+"/enc", "p2", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/enc@s2")
	cfg := job(src + "/enc<")
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push with the parent: exit %d", code)
	}
	if g := zfstest.GUID(t, child+"@s1"); g != childGUID {
		t.Errorf("the child's replica changed: guid %s -> %s", childGUID, g)
	}
	if s := snapshotsOf(t, child); !equalStrings(s, []string{"s1", "s2"}) {
		t.Errorf("child replica snapshots %v, want s1 s2", s)
	}
	if s := snapshotsOf(t, parent); len(s) == 0 || s[len(s)-1] != "s2" {
		t.Errorf("parent replica snapshots %v, want up to s2", s)
	}
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v == parent {
		t.Errorf("the parent replica is still marked as a placeholder")
	}
	if ks := zfstest.Get(t, parent, "keystatus"); ks != "unavailable" {
		t.Errorf("parent keystatus %s, want unavailable (raw receive)", ks)
	}
	// the next run is a no-op, and the data is really there
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("second push: exit %d", code)
	}
	zfstest.Zfs(t, "load-key", "-L", "file://"+key, parent)
	zfstest.Zfs(t, "load-key", "-L", "file://"+key, child)
	for _, pair := range [][2]string{{src + "/enc", parent}, {src + "/enc/child", child}} {
		want := treeSum(t, zfstest.Mountpoint(t, pair[0]))
		got := treeSum(t, mountReplica(t, pair[1]))
		unmount(t, pair[1])
		if got != want {
			t.Errorf("%s: decrypted replica differs", pair[1])
		}
	}
}

// on_diverged = "rotate" of a dataset with children renames the subtree
// aside, receives the diverged dataset afresh and moves the children, which
// did not diverge, back below it: they go on incrementally, with their
// history. No zsync hold stays on the rotated copy, and nothing is reported
// as a created placeholder that was received in the run.
func TestRotateSubtree(t *testing.T) {
	e := newPushEnv(t, "  [job.replication]\n  on_diverged = \"rotate\"\n")
	if code, _, errOut := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push: exit %d", code)
	} else if strings.Contains(errOut, "created placeholder "+e.target("data")) {
		t.Errorf("the log calls the received %s a created placeholder", e.target("data"))
	}
	childGUID := zfstest.GUID(t, e.target("data/child")+"@first snap")
	// the parent's replica diverges: a snapshot taken on the target
	zfstest.MustSnapshot(t, e.target("data")+"@local change")
	zfstest.MustWriteFile(t, e.src+"/data", "f2", 64)
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	code, reps, _ := pushJSON(t, e.cfg)
	if code != 0 {
		t.Fatalf("rotating push: exit %d (%+v)", code, reps)
	}
	rotated := reps[0].Datasets[0].Rotated
	if rotated == "" {
		t.Fatalf("no rotation reported: %+v", reps[0].Datasets[0])
	}
	if s := snapshotsOf(t, rotated); !equalStrings(s, []string{"first snap", "local change"}) {
		t.Errorf("rotated copy snapshots %v, want the diverged history", s)
	}
	for _, h := range holdsOn(t, rotated) {
		if strings.Contains(h, "zsync_") {
			t.Errorf("zsync hold left on the rotated copy: %s", h)
		}
	}
	if kids := strings.TrimSpace(zfstest.Zfs(t, "list", "-H", "-o", "name", "-d", "1", "-t", "filesystem", rotated)); kids != rotated {
		t.Errorf("children left in the rotated copy:\n%s", kids)
	}
	for _, d := range reps[0].Datasets[1:] {
		for _, st := range d.Steps {
			if strings.HasPrefix(st, "full ") {
				t.Errorf("%s was resent in full after its parent's rotation: %v", d.Source, d.Steps)
			}
		}
	}
	if g := zfstest.GUID(t, e.target("data/child")+"@first snap"); g != childGUID {
		t.Errorf("the child's replica history changed: guid %s -> %s", childGUID, g)
	}
	for _, ds := range []string{"data", "data/child", "data/with space"} {
		e.checkSame(t, ds)
	}
	e.checkInvariants(t, "data", "data/child", "data/with space")
	if code, _, _ := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push after rotate: exit %d", code)
	}
}

// Under append_only the far side refuses to turn a placeholder into the
// real replica (recv -F is a rollback there): the parent fails with a
// message naming the way out, the placeholder stays as it was, and its
// children go on replicating into it instead of being skipped.
func TestSSHAppendOnlyPlaceholderKeepsChildren(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	for _, ds := range []string{"data", "data/child"} {
		zfstest.MustCreate(t, src+"/"+ds)
		zfstest.MustWriteFile(t, src+"/"+ds, "f", 64)
	}
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s1")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, "append_only = true\n"))
	cfg := writeConfig(t,
		replicationJob("kids", "push", src+"/data/child", dst+"/laptop", c.remote(""))+
			replicationJob("all", "push", src+"/data<", dst+"/laptop", c.remote("")))
	if code, _, _ := zsyncRun(t, "--config", cfg, "push", "kids"); code != 0 {
		t.Fatalf("child-only push: exit %d", code)
	}
	parent := dst + "/laptop/" + src + "/data"
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v != parent {
		t.Fatalf("the parent is not a placeholder: %q", v)
	}
	zfstest.MustWriteFile(t, src+"/data/child", "g", 64)
	zfstest.Zfs(t, "snapshot", "-r", src+"/data@s2")
	code, reps, errOut := pushJSON(t, cfg, "all")
	if code != 3 {
		t.Fatalf("push with the parent under append_only: exit %d, want 3 (partial)", code)
	}
	if !strings.Contains(errOut, "append_only") || !strings.Contains(errOut, "keep replicating") {
		t.Errorf("the refusal does not say why and what to do:\n%s", tail(errOut, 3000))
	}
	for _, d := range reps[0].Datasets {
		switch d.Source {
		case src + "/data":
			if d.Status != "failed" {
				t.Errorf("parent status %s, want failed", d.Status)
			}
		case src + "/data/child":
			if d.Status != "replicated" {
				t.Errorf("child status %s (%s), want replicated", d.Status, d.Error)
			}
		}
	}
	if s := snapshotsOf(t, parent+"/child"); !equalStrings(s, []string{"s1", "s2"}) {
		t.Errorf("child replica snapshots %v, want s1 s2", s)
	}
	if s := snapshotsOf(t, parent); len(s) != 0 {
		t.Errorf("the placeholder got snapshots %v", s)
	}
	if v := zfstest.Get(t, parent, "zsync:placeholder"); v != parent {
		t.Errorf("the placeholder lost its marker: %q", v)
	}
}

// A bookmark under the name of the next cursor that points at another
// snapshot (a copy, tinkering) is not taken for the cursor: the push fails
// for that dataset and keeps the old cursor, and once the copy is gone the
// next push goes on incrementally. (Before, zfs bookmark's "exists" was
// taken for success and the old cursor destroyed, leaving no cursor that
// points where its name says.)
func TestTakenCursorNameKeepsTheOldCursor(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	snapshotTree(t, src, []string{"data"}, 1)
	cfg := treePushConfig(t, src, dst)
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d", code)
	}
	e := &pushEnv{src: src, dst: dst}
	target, ds := e.target("data"), src+"/data"
	rootTID := strings.TrimSpace(zfstest.Zfs(t, "get", "-H", "-o", "value", zsync.TargetIDProperty, dst+"/backup"))
	tid := zsync.RelationID(zsync.TargetID(rootTID), target)
	guid := func(snap string) uint64 {
		g, err := strconv.ParseUint(zfstest.GUID(t, snap), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	oldCursor := zsync.CursorName(tid, guid(ds+"@s1"))
	zfstest.MustWriteFile(t, ds, "g", 16)
	zfstest.Zfs(t, "snapshot", ds+"@s2")
	copyName := ds + "#" + zsync.CursorName(tid, guid(ds+"@s2"))
	zfstest.Zfs(t, "bookmark", ds+"@s1", copyName)

	code, _, errOut := zsyncRun(t, "--config", cfg, "push")
	if code == 0 {
		t.Errorf("the push succeeded with a foreign bookmark under the new cursor's name")
	}
	if !strings.Contains(errOut, "exists with guid") {
		t.Errorf("the failure does not say that the cursor's name is taken by another bookmark")
	}
	if !slices.Contains(bookmarksOf(t, ds), oldCursor) {
		t.Fatalf("the old cursor %s is gone; bookmarks: %v", oldCursor, bookmarksOf(t, ds))
	}

	zfstest.Zfs(t, "destroy", copyName)
	if code, _, _ := zsyncRun(t, "--config", cfg, "push"); code != 0 {
		t.Fatalf("push after the copy was destroyed: exit %d", code)
	}
	e.checkInvariants(t, "data")
	if got, want := zfstest.GUID(t, target+"@s2"), zfstest.GUID(t, ds+"@s2"); got != want {
		t.Errorf("%s@s2: guid %s, want %s", target, got, want)
	}
}

// Holds of the older per-relationship form (zsync_step_T<id>,
// zsync_last_T<id>), as a zsync from before per-root tags left them, are
// honoured and then released: the old last-received hold keeps its
// snapshot until the next new snapshot's hold is placed, a killed step's
// old step hold goes with the next run, and afterwards every dataset has
// exactly one cursor and one last-received hold, of the new form.
func TestOldHoldTagsMigrate(t *testing.T) {
	e := newPushEnv(t, "")
	all := []string{"data", "data/child", "data/with space"}
	if code, _, stderr := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("initial push: exit %d\n%s", code, tail(stderr, 20))
	}
	rootTID := zsync.TargetID(strings.TrimSpace(zfstest.Zfs(t, "get", "-H", "-o", "value", zsync.TargetIDProperty, e.dst+"/backup")))
	// turn the new holds into what an older zsync left
	for _, ds := range all {
		tid := zsync.RelationID(rootTID, e.target(ds))
		for _, h := range holdsOn(t, e.target(ds)) {
			i := strings.LastIndex(h, " ") // "SNAPSHOT TAG"; snapshot names may hold spaces
			snap, tag := h[:i], h[i+1:]
			if !strings.HasPrefix(tag, "zsync_last_R") {
				t.Fatalf("%s: hold %s after the push, want zsync_last_R...", ds, h)
			}
			full := e.target(ds) + "@" + snap
			zfstest.Zfs(t, "hold", zsync.LastReceivedHoldTag(tid), full)
			zfstest.Zfs(t, "release", tag, full)
		}
		// and a killed step's step hold on the source's only snapshot
		zfstest.Zfs(t, "hold", zsync.StepHoldTag(tid), e.src+"/"+ds+"@first snap")
	}
	// a killed run leaves no listing cache behind
	if err := os.RemoveAll(filepath.Join(filepath.Dir(e.cfg), "state", "listings")); err != nil {
		t.Fatal(err)
	}
	// a run with nothing new keeps the old last-received holds (they are
	// live) and releases the old step holds (nothing is in flight)
	if code, _, stderr := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push with nothing new: exit %d\n%s", code, tail(stderr, 20))
	}
	for _, ds := range all {
		if got := holdsOn(t, e.src+"/"+ds); len(got) != 0 {
			t.Errorf("%s: source holds %v after a run with nothing new, want none", ds, got)
		}
		if got := holdsOn(t, e.target(ds)); len(got) != 1 || !strings.Contains(got[0], " zsync_last_T") {
			t.Errorf("%s: target holds %v, want the old last-received hold kept", ds, got)
		}
	}
	for _, ds := range all {
		zfstest.MustWriteFile(t, e.src+"/"+ds, "f2", 64)
	}
	zfstest.Zfs(t, "snapshot", "-r", e.src+"/data@second")
	if code, _, stderr := zsyncRun(t, "--config", e.cfg, "push"); code != 0 {
		t.Fatalf("push of a new snapshot: exit %d\n%s", code, tail(stderr, 20))
	}
	e.checkInvariants(t, all...)
	for _, ds := range all {
		got := holdsOn(t, e.target(ds))
		if want := []string{"second " + zsync.RootLastReceivedHoldTag(rootTID)}; !equalStrings(got, want) {
			t.Errorf("%s: target holds %v, want %v", ds, got, want)
		}
	}
}

// Two jobs map one source dataset into one target root under different
// names (strip_components 0 and 1), and both are killed mid-step: each
// keeps its own step holds (their tags differ by mapping), so finishing one
// never releases what protects the other's resume; then both converge, each
// with exactly its own cursor and last-received hold, and the replicas
// equal the source.
func TestTwoMappingsKilledMidStep(t *testing.T) {
	src, dst := zfstest.NewPool(t, 192), zfstest.NewPool(t, 192)
	zfstest.MustCreate(t, src+"/big")
	zfstest.MustWriteFile(t, src+"/big", "base", 64)
	zfstest.MustSnapshot(t, src+"/big@s1")
	job := func(name, strip string) string {
		return fmt.Sprintf("\n[[job]]\nname = %q\ntype = \"push\"\ndatasets = [\"%s/big\"]\nroot = \"%s/backup\"\n  [job.replication]\n  bandwidth_limit = \"1MiB\"\n  strip_components = %s\n", name, src, dst, strip)
	}
	cfg := writeConfig(t, job("full", "0")+job("short", "1"))
	targets := map[string]string{"full": dst + "/backup/" + src + "/big", "short": dst + "/backup/big"}
	for _, j := range []string{"full", "short"} {
		if code, _, errOut := zsyncRun(t, "--config", cfg, "push", j); code != 0 {
			t.Fatalf("initial push %s: exit %d\n%s", j, code, errOut)
		}
	}
	zfstest.MustWriteFile(t, src+"/big", "more", 4096)
	zfstest.MustSnapshot(t, src+"/big@s2")

	stepHolds := func() []string {
		var out []string
		for _, h := range holdsOn(t, src+"/big") {
			if strings.Contains(h, "zsync_step_") {
				out = append(out, h)
			}
		}
		return out
	}
	for _, j := range []string{"full", "short"} {
		// the other job's killed zfs recv must be gone, or its bytes
		// would count for this one
		if pids := waitNone(func() []int { return pgrep("^zfs recv") }); len(pids) > 0 {
			t.Fatalf("zfs recv still running: %v", pids)
		}
		killWhenReceived(t, startZsync(t, "--config", cfg, "push", j), 1<<20)
		if tok := zfstest.Get(t, targets[j], "receive_resume_token"); tok == "-" || tok == "" {
			t.Fatalf("%s: no resume token after the kill", j)
		}
	}
	// s1 (the base) and s2 carry a step hold of each job: two tags
	tags := map[string]bool{}
	for _, h := range stepHolds() {
		tags[h[strings.IndexByte(h, ' ')+1:]] = true
	}
	if len(tags) != 2 {
		t.Fatalf("step holds after both kills %v: want the two jobs' own tags", stepHolds())
	}

	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "full"); code != 0 || !strings.Contains(errOut, "resum") {
		t.Fatalf("resuming full: exit %d\n%s", code, errOut)
	}
	// full finished: the step holds of short's interrupted step remain
	left := stepHolds()
	if len(left) == 0 {
		t.Fatalf("finishing one job released the step holds of the other's interrupted step")
	}
	for _, h := range left {
		if !tags[h[strings.IndexByte(h, ' ')+1:]] {
			t.Errorf("unexpected step hold %s", h)
		}
	}
	if code, _, errOut := zsyncRun(t, "--config", cfg, "push", "short"); code != 0 || !strings.Contains(errOut, "resum") {
		t.Fatalf("resuming short: exit %d\n%s", code, errOut)
	}
	if left := stepHolds(); len(left) != 0 {
		t.Errorf("step holds left after both converged: %v", left)
	}
	var cursors []string
	for _, b := range bookmarksOf(t, src+"/big") {
		if strings.HasPrefix(b, "zsync_cursor_") {
			cursors = append(cursors, b)
		}
	}
	if len(cursors) != 2 || cursors[0][:len("zsync_cursor_T")+16] == cursors[1][:len("zsync_cursor_T")+16] {
		t.Errorf("cursors %v: want one per job", cursors)
	}
	want := treeSum(t, zfstest.Mountpoint(t, src+"/big"))
	for j, tgt := range targets {
		if s := snapshotsOf(t, tgt); !equalStrings(s, []string{"s1", "s2"}) {
			t.Errorf("%s: target snapshots %v", j, s)
		}
		var last []string
		for _, h := range holdsOn(t, tgt) {
			if strings.Contains(h, "zsync_last_") {
				last = append(last, h)
			}
		}
		if len(last) != 1 || !strings.HasPrefix(last[0], "s2 ") {
			t.Errorf("%s: last-received holds %v, want one on s2", j, last)
		}
		if got := treeSum(t, mountReplica(t, tgt)); got != want {
			t.Errorf("%s: replica differs from the source", j)
		}
		unmount(t, tgt)
	}
}
