package zfs

import (
	"slices"
	"sync"
)

// atOnce gives items, in order, to up to procs calls of fn at once, each a
// run of at least minEach of them (one call when there are fewer than
// 2*minEach), and returns fn's results in the order of the runs.
func atOnce[T any](items []string, procs, minEach int, fn func([]string) T) []T {
	n := min(procs, len(items)/minEach)
	if n <= 1 {
		return []T{fn(items)}
	}
	size := (len(items) + n - 1) / n
	runs := slices.Collect(slices.Chunk(items, size))
	out := make([]T, len(runs))
	var wg sync.WaitGroup
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = fn(run)
		}()
	}
	wg.Wait()
	return out
}
