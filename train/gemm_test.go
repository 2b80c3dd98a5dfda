package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveGemm is c = op(a)·op(b) + beta·c by the definition, in float64.
func naiveGemm(ta, tb bool, m, n, k int, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := range m {
		for j := range n {
			s := 0.0
			for l := range k {
				var av, bv float64
				if ta {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if tb {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += av * bv
			}
			c[i*ldc+j] = s + beta*c[i*ldc+j]
		}
	}
}

// TestGemm checks gemm (assembly kernels where the CPU has them, gonum
// otherwise) and gemmTN against the definition, on shapes that exercise every
// kernel and remainder path.
func TestGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	shapes := [][3]int{{1, 1, 1}, {4, 8, 3}, {5, 9, 7}, {7, 3, 2}, {8, 16, 1}, {13, 30, 60}, {64, 60, 118}, {33, 118, 60}, {1024, 10, 30}, {9, 1, 10}, {600, 20, 5}}
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, beta := range []float64{0, 1} {
					t.Run(fmt.Sprintf("m=%d,n=%d,k=%d,ta=%t,tb=%t,beta=%v", m, n, k, ta, tb, beta), func(t *testing.T) {
						lda, ldb := k, n
						if ta {
							lda = m
						}
						if tb {
							ldb = k
						}
						a := randVals(rng, m*k, 1)
						b := randVals(rng, k*n, 1)
						c0 := randVals(rng, m*n, 1)
						want := append([]float64(nil), c0...)
						naiveGemm(ta, tb, m, n, k, a, lda, b, ldb, beta, want, n)
						got := append([]float64(nil), c0...)
						gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, got, n)
						a32, b32, got32 := make([]float32, len(a)), make([]float32, len(b)), make([]float32, len(c0))
						for i := range a {
							a32[i] = float32(a[i])
						}
						for i := range b {
							b32[i] = float32(b[i])
						}
						for i := range c0 {
							got32[i] = float32(c0[i])
						}
						gemm(ta, tb, m, n, k, a32, lda, b32, ldb, float32(beta), got32, n)
						for i := range want {
							if d := math.Abs(got[i] - want[i]); d > 1e-12*float64(k+1) {
								t.Fatalf("float64: c[%d] = %v, want %v", i, got[i], want[i])
							}
							if d := math.Abs(float64(got32[i]) - want[i]); d > 1e-5*float64(k+1) {
								t.Fatalf("float32: c[%d] = %v, want %v", i, got32[i], want[i])
							}
						}
					})
				}
			}
		}
	}
	for _, k := range []int{100, 256, 257, 1024, 1100} {
		m, n := 13, 9
		a := randVals(rng, k*m, 1)
		b := randVals(rng, k*n, 1)
		want := make([]float64, m*n)
		naiveGemm(true, false, m, n, k, a, m, b, n, 0, want, n)
		got := make([]float64, m*n)
		gemmTN(nil, m, n, k, a, b, got, make([]float64, max(0, (k+tnChunk-1)/tnChunk-1)*m*n))
		for i := range want {
			if d := math.Abs(got[i] - want[i]); d > 1e-12*float64(k) {
				t.Fatalf("gemmTN k=%d: c[%d] = %v, want %v", k, i, got[i], want[i])
			}
		}
	}
}
