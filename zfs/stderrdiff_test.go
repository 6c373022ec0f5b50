package zfs_test

import (
	"fmt"
	"strings"
)

// lineDiff shows two texts line by line, marking the lines that differ
// ("-" want, "+" got).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		var wok, gok bool
		if i < len(w) {
			wl, wok = w[i], true
		}
		if i < len(g) {
			gl, gok = g[i], true
		}
		switch {
		case wok && gok && wl == gl:
			fmt.Fprintf(&b, "  %q\n", wl)
		default:
			if wok {
				fmt.Fprintf(&b, "- %q\n", wl)
			}
			if gok {
				fmt.Fprintf(&b, "+ %q\n", gl)
			}
		}
	}
	return b.String()
}
