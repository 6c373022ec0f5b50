package cmd

import "testing"

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
