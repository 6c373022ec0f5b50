package zfs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// newFake returns a CLI on a fresh FakeRunner; the test fails at the end if
// queued responses were not consumed.
func newFake(t *testing.T, scripts ...string) (*CLI, *FakeRunner) {
	t.Helper()
	f := NewFakeRunner()
	for _, s := range scripts {
		if err := f.Load(filepath.Join("testdata", s)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if p := f.Pending(); len(p) > 0 {
			t.Errorf("responses never consumed for: %q", p)
		}
	})
	return New(WithRunner(f)), f
}

// stderrFixture returns a stderr example from testdata/stderr/other (the
// hand-kept examples with tank/ names that the unit tests expect by argv).
func stderrFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "stderr", "other", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fail is a response with a recorded stderr and exit status 1.
func fail(t *testing.T, stderrFile string) FakeResponse {
	t.Helper()
	return FakeResponse{Stderr: stderrFixture(t, stderrFile), ExitCode: 1}
}

func argvOf(calls []FakeCall) [][]string {
	out := make([][]string, len(calls))
	for i, c := range calls {
		out[i] = c.Argv
	}
	return out
}

func wantArgv(t *testing.T, f *FakeRunner, want ...[]string) {
	t.Helper()
	if got := argvOf(f.Calls()); !reflect.DeepEqual(got, want) {
		t.Errorf("argv:\n got  %q\n want %q", got, want)
	}
}
