package prefetch

import (
	"fmt"
	"math/rand/v2"
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
	big := struct{ a [300]byte }{}
	big.a[299] = 7
	Struct(&big)
	if big.a[299] != 7 {
		t.Fatal("Struct changed the struct")
	}
	for i, x := range xs {
		if x != float64(i) {
			t.Fatalf("xs[%d] = %v after prefetching, want %d", i, x, i)
		}
	}
}

// BenchmarkColdBlocks reads one value a cache line of a block at a random
// place in 1 GiB, as a fleet scorer reads a cold model: the time a block
// takes is what the machine's memory costs each cold model, whatever the
// code. The sizes are a four-metric host model's 6.5 KiB, what it would
// be with its layers' weights in float32 (4.75 KiB), and 2 KiB; "prefetch"
// asks for the block first.
//
//	go test -run '^$' -bench ColdBlocks ./internal/prefetch/
func BenchmarkColdBlocks(b *testing.B) {
	pool := make([]float64, 1<<27)
	for i := range pool {
		pool[i] = 1
	}
	for _, size := range []int{6656, 4864, 2048} {
		for _, pre := range []bool{false, true} {
			b.Run(fmt.Sprintf("bytes=%d/%s", size, map[bool]string{false: "loads", true: "prefetch"}[pre]), func(b *testing.B) {
				coldBlocks(b, pool, size/8, pre)
			})
		}
	}
}

func coldBlocks(b *testing.B, pool []float64, block int, pre bool) {
	b.SetBytes(int64(block * 8))
	rng, sum := uint64(1), 0.0
	for b.Loop() {
		rng = rng*6364136223846793005 + 1442695040888963407
		off := int(rng>>33) % (len(pool) - block) &^ 7
		xs := pool[off : off+block]
		if pre {
			Float64s(xs)
		}
		for i := 0; i < len(xs); i += 8 {
			sum += xs[i]
		}
	}
	if sum == 0 {
		b.Fatal("nothing read")
	}
}

// BenchmarkDependentReads follows a random chain of cache lines through
// 1 GiB: each read's address comes from the one before, so each op is one
// read from main memory that nothing overlaps, the latency a cold model's
// chain of pointers pays at each step.
//
//	go test -run '^$' -bench DependentReads ./internal/prefetch/
func BenchmarkDependentReads(b *testing.B) {
	const lines = 1 << 24 // 1 GiB of 64-byte lines
	next := make([]uint64, lines*8)
	perm := rand.Perm(lines)
	for i, p := range perm {
		next[p*8] = uint64(perm[(i+1)%lines] * 8)
	}
	b.ResetTimer()
	at := uint64(0)
	for b.Loop() {
		at = next[at]
	}
	if at >= uint64(len(next)) {
		b.Fatal("chain left the pool")
	}
}
