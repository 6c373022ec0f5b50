package snap

import (
	"context"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSnapshotter records Snapshot calls and fails for the pools in fail.
type fakeSnapshotter struct {
	mu    sync.Mutex
	calls [][]string
	fail  map[string]error     // pool -> error
	hook  func(snaps []string) // called during Snapshot, if set
	props []map[string]string  // props of each call
}

func (f *fakeSnapshotter) Snapshot(_ context.Context, snaps []string, props map[string]string) error {
	f.mu.Lock()
	f.calls = append(f.calls, append([]string(nil), snaps...))
	f.props = append(f.props, props)
	f.mu.Unlock()
	if f.hook != nil {
		f.hook(snaps)
	}
	if len(snaps) > 0 {
		pool, _, _ := strings.Cut(snaps[0], "/")
		if err := f.fail[pool]; err != nil {
			return err
		}
	}
	return nil
}

var takeNow = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

// duePlan plans snapshots for datasets that have none, so all are due.
func duePlan(t *testing.T, o Options, datasets ...string) Plan {
	t.Helper()
	p := NewPlan(listing(datasets...), matchAll{}, o, takeNow)
	if len(p.Due) != len(datasets) {
		t.Fatalf("plan has %d due datasets, want %d", len(p.Due), len(datasets))
	}
	return p
}

type matchAll struct{}

func (matchAll) Match(string) bool { return true }

func outcomes(r Report) map[string]Outcome {
	m := map[string]Outcome{}
	for _, res := range r.Results {
		m[res.Dataset] = res.Outcome
	}
	return m
}

func needBinary(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("test needs %s: %v", n, err)
		}
	}
}

func TestTakeOneCallPerPool(t *testing.T) {
	t.Parallel()
	o := Options{Prefix: "zsync_", Interval: time.Hour}
	p := duePlan(t, o, "tank/b", "pool2/x", "tank/a", "tank/a/c", "pool2")
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, o)

	want := [][]string{
		{"pool2@zsync_20261122T050000Z", "pool2/x@zsync_20261122T050000Z"},
		{"tank/a@zsync_20261122T050000Z", "tank/a/c@zsync_20261122T050000Z", "tank/b@zsync_20261122T050000Z"},
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("calls = %q\nwant    %q", f.calls, want)
	}
	for _, res := range r.Results {
		if res.Outcome != Taken || res.Err != nil || res.PreHook != nil || res.PostHook != nil || !res.OK() {
			t.Errorf("%s: %+v", res.Dataset, res)
		}
	}
	if r.Status() != StatusOK || r.Err() != nil || r.Name != "zsync_20261122T050000Z" || r.DryRun {
		t.Errorf("status %v err %v name %q dry %v", r.Status(), r.Err(), r.Name, r.DryRun)
	}
}

func TestTakePreHookFailureSkipsOnlyThatDataset(t *testing.T) {
	t.Parallel()
	needBinary(t, "/bin/sh")
	o := Options{
		Prefix: "zsync_",
		// Fixed script; the dataset comes from the environment.
		PreHook:  []string{"/bin/sh", "-c", `echo "checking $ZSYNC_DATASET" >&2; test "$ZSYNC_DATASET" != "tank/b"`},
		PostHook: []string{"/bin/sh", "-c", `test "$ZSYNC_DATASET" != "tank/c"`},
	}
	p := duePlan(t, o, "tank/a", "tank/b", "tank/c")
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, o)

	want := [][]string{{"tank/a@zsync_20261122T050000Z", "tank/c@zsync_20261122T050000Z"}}
	if !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("calls = %q, want %q", f.calls, want)
	}
	if got := outcomes(r); !reflect.DeepEqual(got, map[string]Outcome{"tank/a": Taken, "tank/b": Skipped, "tank/c": Taken}) {
		t.Fatalf("outcomes %v", got)
	}
	b := r.Results[1]
	var he *HookError
	if !errors.As(b.Err, &he) || he.Kind != HookPre || he.ExitCode != 1 {
		t.Fatalf("tank/b error %v, want pre-hook exit 1", b.Err)
	}
	if b.PreHook == nil || b.PreHook.Output != "checking tank/b\n" {
		t.Errorf("tank/b pre-hook output %+v", b.PreHook)
	}
	// Skipped datasets still get their post-hook (to undo the pre-hook).
	if b.PostHook == nil || b.PostHook.Err != nil {
		t.Errorf("tank/b post-hook %+v", b.PostHook)
	}
	// tank/c: snapshot taken, post-hook failed: reported, not OK.
	c := r.Results[2]
	if c.Outcome != Taken || c.OK() || c.PostHook == nil || c.PostHook.Err == nil {
		t.Errorf("tank/c %+v", c)
	}
	if r.Status() != StatusPartial {
		t.Errorf("status %v, want partial", r.Status())
	}
	err := r.Err()
	if !errors.Is(err, ErrPartial) || !errors.As(err, &he) {
		t.Fatalf("Err() = %v", err)
	}
	for _, s := range []string{"tank/b: skipped: pre-hook", "tank/c: snapshot taken, but post-hook", "2 of 3 datasets"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Err() = %q, missing %q", err, s)
		}
	}
}

func TestTakeHookNotFound(t *testing.T) {
	t.Parallel()
	o := Options{Prefix: "zsync_", PreHook: []string{"/nonexistent/zsync-test-hook", "--x"}}
	p := duePlan(t, o, "tank/a", "tank/b")
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, o)
	if len(f.calls) != 0 {
		t.Fatalf("snapshot calls %q, want none", f.calls)
	}
	for _, res := range r.Results {
		var he *HookError
		if res.Outcome != Skipped || !errors.As(res.Err, &he) || he.ExitCode != -1 {
			t.Errorf("%s: %v %v", res.Dataset, res.Outcome, res.Err)
		}
	}
	if r.Status() != StatusFailed || !errors.Is(r.Err(), ErrFailed) {
		t.Errorf("status %v err %v", r.Status(), r.Err())
	}
}

func TestTakeHookTimeout(t *testing.T) {
	t.Parallel()
	needBinary(t, "/bin/sh", "sleep")
	o := Options{
		Prefix: "zsync_",
		// The background sleep keeps the output pipe open and is in the
		// hook's process group: it must be killed too.
		PreHook:     []string{"/bin/sh", "-c", "sleep 30 & sleep 30"},
		HookTimeout: 300 * time.Millisecond,
	}
	p := duePlan(t, o, "tank/a")
	f := &fakeSnapshotter{}
	start := time.Now()
	r := Take(context.Background(), f, p, o)
	if el := time.Since(start); el > hookWaitDelay+time.Second {
		t.Errorf("Take took %v with a %v hook timeout", el, o.HookTimeout)
	}
	res := r.Results[0]
	if res.Outcome != Skipped || !errors.Is(res.Err, ErrHookTimeout) || len(f.calls) != 0 {
		t.Fatalf("outcome %v err %v calls %q", res.Outcome, res.Err, f.calls)
	}
	if !strings.Contains(res.Err.Error(), "hook timed out after 300ms") {
		t.Errorf("error %q", res.Err)
	}
}

func TestTakeHookEnv(t *testing.T) {
	// Not parallel: t.Setenv.
	needBinary(t, "/bin/sh")
	t.Setenv("ZSYNC_TEST_MARKER", "kept")
	t.Setenv(EnvSnapshotOK, "stale") // must not leak into the pre-hook
	t.Setenv(EnvDataset, "stale")
	script := `printf '%s|%s|%s|%s|%s' "$ZSYNC_HOOK" "$ZSYNC_DATASET" "$ZSYNC_SNAPSHOT" "${ZSYNC_SNAPSHOT_OK-unset}" "$ZSYNC_TEST_MARKER"`
	o := Options{
		Prefix:   "my snap ",
		PreHook:  []string{"/bin/sh", "-c", script},
		PostHook: []string{"/bin/sh", "-c", script},
	}
	p := duePlan(t, o, "tank/my data", "other/x")
	f := &fakeSnapshotter{fail: map[string]error{"other": errors.New("boom")}}
	r := Take(context.Background(), f, p, o)

	byDS := map[string]Result{}
	for _, res := range r.Results {
		byDS[res.Dataset] = res
	}
	cases := []struct{ ds, pre, post string }{
		{"tank/my data",
			"pre|tank/my data|tank/my data@my snap 20261122T050000Z|unset|kept",
			"post|tank/my data|tank/my data@my snap 20261122T050000Z|1|kept"},
		{"other/x",
			"pre|other/x|other/x@my snap 20261122T050000Z|unset|kept",
			"post|other/x|other/x@my snap 20261122T050000Z|0|kept"},
	}
	for _, c := range cases {
		res := byDS[c.ds]
		if res.PreHook == nil || res.PreHook.Err != nil || res.PreHook.Output != c.pre {
			t.Errorf("%s pre-hook: %+v, want output %q", c.ds, res.PreHook, c.pre)
		}
		if res.PostHook == nil || res.PostHook.Err != nil || res.PostHook.Output != c.post {
			t.Errorf("%s post-hook: %+v, want output %q", c.ds, res.PostHook, c.post)
		}
	}
	if x := byDS["other/x"]; x.Outcome != Failed || !strings.Contains(x.Err.Error(), "boom") {
		t.Errorf("other/x: %v %v", x.Outcome, x.Err)
	}
	if r.Status() != StatusPartial {
		t.Errorf("status %v", r.Status())
	}
}

func TestTakeDryRun(t *testing.T) {
	t.Parallel()
	o := Options{
		Prefix:   "zsync_",
		PreHook:  []string{"/nonexistent/zsync-test-hook"},
		PostHook: []string{"/nonexistent/zsync-test-hook"},
		DryRun:   true,
	}
	p := duePlan(t, o, "tank/a", "pool2/b")
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, o)
	if len(f.calls) != 0 {
		t.Fatalf("dry run made snapshot calls %q", f.calls)
	}
	for _, res := range r.Results {
		if res.Outcome != WouldTake || res.PreHook != nil || res.PostHook != nil || res.Err != nil {
			t.Errorf("%s: %+v", res.Dataset, res)
		}
	}
	if !r.DryRun || r.Status() != StatusOK || r.Err() != nil {
		t.Errorf("dry %v status %v err %v", r.DryRun, r.Status(), r.Err())
	}
}

func TestTakeNothingDue(t *testing.T) {
	t.Parallel()
	o := Options{Prefix: "zsync_", Interval: time.Hour, PreHook: []string{"/nonexistent/zsync-test-hook"}}
	p := NewPlan(listing("tank/a", "tank/a@zsync_20261122T045000Z"), matchAll{}, o, takeNow)
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, o)
	if len(f.calls) != 0 || len(r.Results) != 0 || len(r.NotDue) != 1 || r.Status() != StatusOK || r.Err() != nil {
		t.Fatalf("calls %q report %+v", f.calls, r)
	}
}

func TestTakeCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	o := Options{Prefix: "zsync_", PostHook: []string{"/nonexistent/zsync-test-hook"}}
	p := duePlan(t, o, "tank/a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeSnapshotter{}
	r := Take(ctx, f, p, o)
	res := r.Results[0]
	if len(f.calls) != 0 || res.Outcome != Failed || !errors.Is(res.Err, context.Canceled) || res.PostHook != nil {
		t.Fatalf("calls %q result %+v", f.calls, res)
	}
	if r.Status() != StatusFailed || !errors.Is(r.Err(), ErrFailed) || !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("status %v err %v", r.Status(), r.Err())
	}
}

// TestTakePostHookAfterCancel: a cancellation during the snapshot call must
// not keep the post-hook (which may thaw what the pre-hook froze) from running.
func TestTakePostHookAfterCancel(t *testing.T) {
	t.Parallel()
	needBinary(t, "/bin/sh")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := Options{Prefix: "zsync_", PostHook: []string{"/bin/sh", "-c", `echo "ok=$ZSYNC_SNAPSHOT_OK"`}}
	p := duePlan(t, o, "tank/a", "zpool/b")
	f := &fakeSnapshotter{
		hook: func([]string) { cancel() },
		fail: map[string]error{"tank": context.Canceled},
	}
	r := Take(ctx, f, p, o)
	if len(f.calls) != 1 {
		t.Fatalf("calls %q, want only the first pool", f.calls)
	}
	for _, res := range r.Results {
		if res.Outcome != Failed || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("%s: %v %v", res.Dataset, res.Outcome, res.Err)
		}
		if res.PostHook == nil || res.PostHook.Err != nil || res.PostHook.Output != "ok=0\n" {
			t.Errorf("%s post-hook %+v", res.Dataset, res.PostHook)
		}
	}
}

func TestTakeInvalidInput(t *testing.T) {
	t.Parallel()
	good := Options{Prefix: "zsync_"}
	long := "tank/" + strings.Repeat("x", 240)
	p := duePlan(t, good, "tank/a", long)

	// A name too long for ZFS fails that dataset only.
	f := &fakeSnapshotter{}
	r := Take(context.Background(), f, p, good)
	if got := outcomes(r); got["tank/a"] != Taken || got[long] != Failed {
		t.Fatalf("outcomes %v", got)
	}
	if !reflect.DeepEqual(f.calls, [][]string{{"tank/a@zsync_20261122T050000Z"}}) {
		t.Fatalf("calls %q", f.calls)
	}

	// Invalid options, or options not matching the plan, fail everything
	// before anything runs.
	for _, o := range []Options{
		{Prefix: ""},
		{Prefix: "zsync_", Interval: -time.Second},
		{Prefix: "zsync_", PreHook: []string{""}},
		{Prefix: "other_"},
	} {
		f := &fakeSnapshotter{}
		r := Take(context.Background(), f, p, o)
		if len(f.calls) != 0 || r.Status() != StatusFailed {
			t.Errorf("options %+v: calls %q status %v", o, f.calls, r.Status())
		}
		for _, res := range r.Results {
			if res.Outcome != Failed || res.Err == nil || res.PreHook != nil {
				t.Errorf("options %+v: %s %+v", o, res.Dataset, res)
			}
		}
	}

	// No snapshotter: failed, not a panic.
	if r := Take(context.Background(), nil, p, good); r.Status() != StatusFailed {
		t.Errorf("nil snapshotter: status %v", r.Status())
	}

	// A tampered plan entry is refused.
	bad := p
	bad.Due = []Decision{{Dataset: "tank/a", Snapshot: "tank/b@zsync_20261122T050000Z"}}
	f = &fakeSnapshotter{}
	r = Take(context.Background(), f, bad, good)
	if len(f.calls) != 0 || r.Results[0].Outcome != Failed {
		t.Errorf("tampered plan: calls %q result %+v", f.calls, r.Results[0])
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	ok := Options{Prefix: "zsync_", Interval: 15 * time.Minute, PreHook: []string{"true"}, HookTimeout: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", ok, err)
	}
	for _, o := range []Options{
		{Prefix: "a/b"},
		{Prefix: "zsync_", HookTimeout: -1},
		{Prefix: "zsync_", PostHook: []string{"", "x"}},
	} {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	b := &tailBuffer{limit: 10}
	for _, s := range []string{"hello ", "world, ", "this is ", "long"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if b.String() != "is is long" || b.dropped != 25-10 {
		t.Fatalf("kept %q dropped %d", b.String(), b.dropped)
	}
}

func TestHookOutputBounded(t *testing.T) {
	t.Parallel()
	needBinary(t, "/bin/sh")
	// 100000 bytes of output: 'x' repeated, then a final line.
	script := `i=0; while [ $i -lt 1000 ]; do printf '%0100d' 0; i=$((i+1)); done; echo; echo last line`
	res := runHook(context.Background(), HookPre, []string{"/bin/sh", "-c", script}, hookEnv(), 20*time.Second)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Output) != MaxHookOutput || !res.OutputTruncated || !strings.HasSuffix(res.Output, "\nlast line\n") {
		t.Fatalf("output len %d truncated %v tail %q", len(res.Output), res.OutputTruncated, res.Output[len(res.Output)-20:])
	}
}
