package prune

import (
	"math/bits"
	"time"
)

// alignDown returns the latest multiple of d since the Unix epoch
// (1970-01-01T00:00:00Z) at or before t. d must be positive. It is exact for
// every t a time.Time can hold: the remainder of t's distance from the epoch
// is computed from seconds and nanoseconds in 128 bits, never as one
// nanosecond count (which only reaches ±292 years).
func alignDown(t time.Time, d time.Duration) time.Time {
	l := uint64(d)
	sec := t.Unix() % int64(d)
	if sec < 0 {
		sec += int64(d)
	}
	// t = epoch + S seconds + ns nanoseconds, and
	// (S*1e9 + ns) mod d = ((S mod d) * (1e9 mod d) + ns) mod d.
	hi, lo := bits.Mul64(uint64(sec), uint64(time.Second)%l)
	r := bits.Rem64(hi, lo, l)
	r = (r + uint64(t.Nanosecond())) % l // r < d and ns < 1e9: no overflow
	return t.Add(-time.Duration(r))
}

// gridRange is the stretch of time one interval of a grid covers for a
// given anchor, youngest end first:
//
//	bucket 0:  [cut, top)            (partial: what is left of the aligned
//	                                  bucket that top falls in; empty when
//	                                  top is on a boundary)
//	bucket b:  [cut-b*L, cut-(b-1)*L) for b = 1..Count (whole aligned buckets)
//
// The first interval also includes top itself (the anchor). bottom =
// cut - Count*L is the next interval's top.
type gridRange struct {
	iv     Interval
	top    time.Time
	cut    time.Time
	bottom time.Time
}

// layOut places the intervals back to back into the past from anchor. Every
// cut and bottom is a multiple of its interval's length since the Unix
// epoch, so a bucket is a fixed period of time whatever the anchor.
func layOut(intervals []Interval, anchor time.Time) []gridRange {
	out := make([]gridRange, len(intervals))
	top := anchor
	for i, iv := range intervals {
		cut := alignDown(top, iv.Length)
		bottom := cut.Add(-iv.Length * time.Duration(iv.Count))
		out[i] = gridRange{iv: iv, top: top, cut: cut, bottom: bottom}
		top = bottom
	}
	return out
}

// locate finds the bucket of a snapshot created at t: interval g (index into
// ranges) and bucket b within it, 0 for the partial youngest bucket and 1 to
// Count for the whole ones, youngest first. ok is false for snapshots newer
// than the anchor or older than the grid.
func locate(ranges []gridRange, t time.Time) (g, b int, ok bool) {
	if len(ranges) == 0 || t.After(ranges[0].top) {
		return 0, 0, false
	}
	for g, r := range ranges {
		if t.Before(r.bottom) {
			continue
		}
		if !t.Before(r.cut) {
			return g, 0, true
		}
		// cut-alignDown(t) is at most Count*Length: no overflow.
		return g, int(r.cut.Sub(alignDown(t, r.iv.Length)) / r.iv.Length), true
	}
	return 0, 0, false
}
