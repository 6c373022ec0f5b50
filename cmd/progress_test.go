package cmd

import "testing"

const mib = 1 << 20

func TestIBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", -5: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 * mib: "3.0 MiB", 80 * mib: "80 MiB", 5 << 40: "5.0 TiB"} {
		if got := ibytes(n); got != want {
			t.Errorf("ibytes(%d) = %q, want %q", n, got, want)
		}
	}
}
