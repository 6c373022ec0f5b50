package zfs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

// The OpenZFS versions whose stderr is recorded under testdata/stderr/X.Y
// (exactly these directories must exist).
var fixtureVersions = []string{"2.1", "2.3"}

// fixture is one recorded stderr.
type fixture struct {
	ver    string
	tc     stderrCase
	stderr string
}

// loadFixtures reads every recorded fixture; a version directory must hold
// exactly one fixture per case.
func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	byName := map[string]stderrCase{}
	for _, tc := range stderrCases {
		byName[tc.name] = tc
	}
	dirs, _ := filepath.Glob(filepath.Join("testdata", "stderr", "*"))
	reVer := regexp.MustCompile(`^\d+\.\d+$`)
	var found []string
	var out []fixture
	for _, d := range dirs {
		ver := filepath.Base(d)
		if !reVer.MatchString(ver) {
			continue
		}
		found = append(found, ver)
		files, _ := filepath.Glob(filepath.Join(d, "*.txt"))
		seen := map[string]bool{}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".txt")
			tc, ok := byName[name]
			if !ok {
				t.Errorf("%s: no case %q in stderrCases", f, name)
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			seen[name] = true
			out = append(out, fixture{ver: ver, tc: tc, stderr: denormalize(string(b))})
		}
		for _, tc := range stderrCases {
			if !seen[tc.name] {
				t.Errorf("OpenZFS %s: case %s has no recorded fixture %s", ver, tc.name, fixturePath(ver, tc.name))
			}
		}
	}
	sort.Strings(found)
	if strings.Join(found, " ") != strings.Join(fixtureVersions, " ") {
		t.Errorf("fixture versions %q, want %q", found, fixtureVersions)
	}
	return out
}

// replay runs a case's call on POOL against a fake zfs whose first
// invocation fails with stderr; later invocations (the retry of a batched
// destroy...) succeed with no output.
func replay(tc stderrCase, stderr string) error {
	f := zfs.NewFakeRunner()
	var mu sync.Mutex
	calls := 0
	f.Fallback = func(zfs.Cmd) (zfs.FakeResponse, bool) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return zfs.FakeResponse{Stderr: stderr, ExitCode: 1}, true
		}
		return zfs.FakeResponse{}, true
	}
	return tc.call(context.Background(), zfs.New(zfs.WithRunner(f)), placeholderPool, replayEnv)
}

// denormalize puts plausible values back for the placeholders of a
// recorded fixture (see normalizeStderr), as zfs would print them.
func denormalize(s string) string {
	s = strings.ReplaceAll(s, "0xGUID", "0xa3b74062afbdcc03")
	return strings.ReplaceAll(s, "TOKEN", replayEnv.token)
}

// sentinelsOf returns the sentinels err wraps.
func sentinelsOf(err error) []error {
	var out []error
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestStderrFixturesReplay replays the stderr recorded on every OpenZFS
// version through the classifier of its verb: the error must wrap the
// case's sentinel and no other, and still carry the generic *Error.
func TestStderrFixturesReplay(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.ver+"/"+fx.tc.name, func(t *testing.T) {
			err := replay(fx.tc, fx.stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, fx.tc.want) {
				t.Errorf("err = %v, want errors.Is %v", err, fx.tc.want)
			}
			for _, s := range sentinelsOf(err) {
				if s != fx.tc.want {
					t.Errorf("err = %v also matches %v", err, s)
				}
			}
			var ce *zfs.Error
			if !errors.As(err, &ce) {
				t.Errorf("err = %v does not wrap *zfs.Error", err)
			}
		})
	}
}

// checkGeneric fails when err is nil, wraps any sentinel, or lacks the
// generic *zfs.Error.
func checkGeneric(t *testing.T, what, stderr string, err error) {
	t.Helper()
	var ce *zfs.Error
	switch s := sentinelsOf(err); {
	case err == nil:
		t.Errorf("%s: no error for stderr %q", what, stderr)
	case len(s) > 0:
		t.Errorf("%s: stderr %q classified as %v: %v", what, stderr, s, err)
	case !errors.As(err, &ce):
		t.Errorf("%s: %v does not wrap *zfs.Error", what, err)
	}
}

// TestStderrUnknownMessages feeds every verb path plausible stderr it must
// not recognise, derived from each recorded fixture: a new wording of the
// reason, the same message about another pool's dataset, a truncated
// message. Each must come back as the generic *zfs.Error with no sentinel.
func TestStderrUnknownMessages(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.ver+"/"+fx.tc.name, func(t *testing.T) {
			lines := strings.Split(fx.stderr, "\n")
			first := lines[0]
			if i := strings.LastIndex(first, ": "); i >= 0 {
				reworded := append([]string{first[:i+2] + "the operation failed in a new way"}, lines[1:]...)
				s := strings.Join(reworded, "\n")
				checkGeneric(t, "new wording", s, replay(fx.tc, s))
			}
			if len(first) > 8 {
				s := first[:len(first)-5] + "\n"
				checkGeneric(t, "truncated", s, replay(fx.tc, s))
				s = first[:len(first)/2] + "\n"
				checkGeneric(t, "cut in half", s, replay(fx.tc, s))
			}
			if !fx.tc.unnamed && strings.Contains(fx.stderr, placeholderPool+"/") {
				s := strings.ReplaceAll(fx.stderr, placeholderPool+"/", "other/")
				checkGeneric(t, "another dataset", s, replay(fx.tc, s))
			}
		})
	}
}

// TestStderrOtherVerbMessages feeds each verb the recorded stderr of the
// other verbs. A verb may recognise such a message only when it is about a
// name the verb asked about and reports a condition the verb itself
// classifies (a missing dataset is worded the same by every verb) or one
// that any verb can meet (permission denied, out of space); it must never
// come back with another sentinel.
func TestStderrOtherVerbMessages(t *testing.T) {
	fxs := loadFixtures(t)
	verb := func(name string) string {
		v, _, _ := strings.Cut(name, "_")
		switch v {
		case "sendsize", "decode":
			return "send"
		case "holds", "release":
			return "hold"
		}
		return v
	}
	for _, a := range stderrCases {
		for _, b := range fxs {
			if verb(a.name) == verb(b.tc.name) {
				continue
			}
			err := replay(a, b.stderr)
			for _, s := range sentinelsOf(err) {
				shared := s == a.want || s == zfs.ErrPermissionDenied || s == zfs.ErrNoSpace
				if s != b.tc.want || !shared {
					t.Errorf("%s fed %s/%s: classified as %v: %v", a.name, b.ver, b.tc.name, s, err)
				}
			}
		}
	}
}
