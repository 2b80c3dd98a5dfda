package prefetch

import (
	"testing"
	"unsafe"
)

// TestRange asks for memory of every size and alignment, and for memory
// that is not mapped: a prefetch is a hint that never faults and never
// changes memory.
func TestRange(t *testing.T) {
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = float64(i)
	}
	for _, c := range []struct{ lo, hi int }{{0, 0}, {0, 1}, {3, 11}, {1, 999}, {0, 1000}} {
		Float64s(xs[c.lo:c.hi])
		Range(unsafe.Pointer(unsafe.SliceData(xs[c.lo:])), uintptr(c.hi-c.lo)*8+3)
	}
	Float64s(nil)
	Range(nil, 4096) // the first page is never mapped
	type big struct{ a [300]byte }
	Struct(&big{})
	for i, x := range xs {
		if x != float64(i) {
			t.Fatalf("xs[%d] = %v after prefetching, want %d", i, x, i)
		}
	}
}
