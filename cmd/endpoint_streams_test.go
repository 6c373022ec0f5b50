package cmd

import (
	"strings"
	"testing"
)

// max_streams stays within sshd's default MaxSessions across the job's
// workers, and never below one channel.
func TestStreamsWithinSessionBudget(t *testing.T) {
	for _, c := range []struct{ streams, conc, want int }{
		{4, 1, 4}, {4, 2, 4}, {4, 3, 3}, {16, 1, 10}, {8, 4, 2}, {4, 10, 1}, {4, 64, 1}, {1, 1, 1},
	} {
		if got := streamsWithin(c.streams, c.conc); got != c.want {
			t.Errorf("max_streams %d, concurrency %d: %d channels, want %d", c.streams, c.conc, got, c.want)
		}
	}
}

// A job whose file sets no concurrency replicates two datasets at a time
// when both its sides are on this host, and one at a time with a remote
// (see defaultConcurrency); a concurrency the file sets is kept as
// written, and config check has nothing to warn about.
func TestDefaultConcurrency(t *testing.T) {
	for _, c := range []struct {
		remote string
		want   int
	}{
		{"", 2},
		{"  [job.remote]\n  host = \"b\"\n", 1},
		{"  [job.remote]\n  host = \"b\"\n  max_streams = 5\n", 1},
		{"  [job.remote]\n  host = \"b\"\n  max_streams = 10\n", 1},
		{"  [job.remote]\n  host = \"b\"\n  [job.replication]\n  concurrency = 2\n", 2},
		{"  [job.replication]\n  concurrency = 1\n", 1},
		{"  [job.replication]\n  concurrency = 5\n", 5},
	} {
		text := "[[job]]\nname = \"h\"\ntype = \"push\"\ndatasets = [\"tank/h<\"]\nroot = \"b/h\"\n" + c.remote
		cfg, err := parseConfig("zsync.toml", text)
		if err != nil {
			t.Fatalf("%q: %v", c.remote, err)
		}
		j := cfg.Jobs[0]
		if got := j.Replication.Concurrency; got != c.want {
			t.Errorf("%q: concurrency %d, want %d", c.remote, got, c.want)
		}
		if j.Remote != nil && streamsWithin(j.Remote.MaxStreams, j.Replication.Concurrency) != j.Remote.MaxStreams {
			t.Errorf("%q: the default concurrency %d cuts max_streams %d", c.remote, j.Replication.Concurrency, j.Remote.MaxStreams)
		}
		code, _, errOut := runUnit(t, "--config", configFile(t, text), "config", "check")
		if code != 0 || strings.Contains(errOut, "max_streams") {
			t.Errorf("%q: config check exit %d, stderr %s", c.remote, code, errOut)
		}
	}
}
