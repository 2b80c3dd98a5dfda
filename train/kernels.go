package train

import (
	"errors"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// gemm computes c = op(a)·op(b) + beta·c for row-major matrices, where op
// transposes when ta or tb is set; op(a) is m×k and op(b) k×n. With the
// AVX2/FMA kernels (haveFMA) and tb unset it uses them, splitting the rows of
// c over the cores unless ta is set; otherwise it calls gonum's BLAS. The
// result does not depend on the number of cores.
func gemm[T float](ta, tb bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	gemmWith(nil, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)
}

// gemmWith is gemm with the kernels' scratch kept in g between calls (nil: a
// new one), so that a caller multiplying the same shapes on every training
// step allocates nothing on one core.
func gemmWith[T float](g *fmaGemm[T], ta, tb bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if !haveFMA || tb {
		gemmBLAS(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)
		return
	}
	rsA, csA := lda, 1
	if ta {
		rsA, csA = 1, lda
	}
	if m == 0 || n == 0 {
		return
	}
	if (m-1)*rsA+(k-1)*csA >= len(a) && k > 0 || (k-1)*ldb+n-1 >= len(b) && k > 0 || (m-1)*ldc+n-1 >= len(c) {
		panic("train: gemm: slice too short")
	}
	if g == nil {
		g = new(fmaGemm[T])
	}
	g.setup(n, k, b, ldb)
	blocks := m / 4
	p := 1
	if !ta && blocks > 1 {
		// Ranges of whole 4-row blocks, so that every row goes through the
		// same kernel whatever the split.
		p = workers(blocks, max(1, (1<<16)/max(1, 4*n*k)))
	}
	if p <= 1 {
		g.run(0, m, a, rsA, csA, beta, c, ldc)
		return
	}
	parallelRows(blocks, max(1, (1<<16)/max(1, 4*n*k)), func(lo, hi int) {
		own := *g // each range its own scratch
		own.tile, own.aPad, own.cPad = nil, nil, nil
		if hi == blocks {
			own.run(4*lo, m, a, rsA, csA, beta, c, ldc) // the last range takes the rows left over
		} else {
			own.run(4*lo, 4*hi, a, rsA, csA, beta, c, ldc)
		}
	})
}

// setup prepares g for products with B (k×n, row stride ldb).
func (g *fmaGemm[T]) setup(n, k int, b []T, ldb int) {
	switch any(b).(type) {
	case []float64:
		g.wide = any(gemm4x8F64).(func(int, *T, int, int, *T, int, *T, int))
		g.narrow = any(gemm4x4F64).(func(int, *T, int, int, *T, int, *T, int))
		g.w = 8
	case []float32:
		g.wide = any(gemm4x16F32).(func(int, *T, int, int, *T, int, *T, int))
		g.narrow = any(gemm4x8F32).(func(int, *T, int, int, *T, int, *T, int))
		g.w = 16
	}
	g.n, g.k, g.b, g.ldb = n, k, b, ldb
	// The columns the kernels do not cover go through a zero-padded copy of
	// B's last columns.
	h := g.w / 2
	g.full = n - n%h
	if g.full < n {
		g.bPad = grow(g.bPad, k*h)
		clear(g.bPad)
		for l := range k {
			copy(g.bPad[l*h:], b[l*ldb+g.full:l*ldb+n])
		}
	}
}

// run computes rows lo to hi of c = A·B + beta·c.
func (g *fmaGemm[T]) run(lo, hi int, a []T, rsA, csA int, beta T, c []T, ldc int) {
	n := g.n
	if beta == 0 && ldc == n {
		clear(c[lo*ldc : hi*ldc]) // one call for the block: rows are short
	}
	for i := lo; i < hi; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			if ldc != n {
				clear(row)
			}
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
	g.rows(hi-lo, a[lo*rsA:], rsA, csA, c[lo*ldc:], ldc)
}

// gemmBLAS is gemm with gonum's BLAS.
func gemmBLAS[T float](ta, tb bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	switch a := any(a).(type) {
	case []float64:
		blas64.Implementation().Dgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	case []float32:
		blas32.Implementation().Sgemm(tA, tB, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	}
}

// fmaGemm adds A·B to blocks of rows of C with the assembly kernels: 4 rows
// and w (wide) or w/2 (narrow) columns at a time. Rows and columns left over
// go through zero-padded copies, so every element is computed by a kernel.
type fmaGemm[T float] struct {
	wide, narrow func(int, *T, int, int, *T, int, *T, int)
	w            int
	n, k         int
	b            []T // k×n, row stride ldb
	ldb          int
	full         int // columns covered without padding
	bPad         []T // k×(w/2): B's columns full..n, zero-padded
	// scratch of rows: a 4×(w/2) tile, and A's and C's last rows padded to 4
	tile, aPad, cPad []T
}

// rows adds A·B to the m×n block c (row stride ldc), where A's element
// (r, l) is a[r*rsA+l*csA].
func (g *fmaGemm[T]) rows(m int, a []T, rsA, csA int, c []T, ldc int) {
	if g.k == 0 {
		return
	}
	h := g.w / 2
	var tile []T
	if g.full < g.n {
		g.tile = grow(g.tile, 4*h)
		tile = g.tile
	}
	i := 0
	for ; i+4 <= m; i += 4 {
		g.block(&a[i*rsA], rsA, csA, c[i*ldc:], ldc, tile)
	}
	if q := m - i; q > 0 {
		// Copy the last q rows of A and C into 4-row tiles.
		g.aPad = grow(g.aPad, 4*g.k)
		g.cPad = grow(g.cPad, 4*g.n)
		aPad, cPad := g.aPad, g.cPad
		clear(aPad)
		clear(cPad)
		for r := range q {
			for l := range g.k {
				aPad[r*g.k+l] = a[(i+r)*rsA+l*csA]
			}
			copy(cPad[r*g.n:(r+1)*g.n], c[(i+r)*ldc:])
		}
		g.block(&aPad[0], g.k, 1, cPad, g.n, tile)
		for r := range q {
			copy(c[(i+r)*ldc:(i+r)*ldc+g.n], cPad[r*g.n:])
		}
	}
}

// block adds A·B to 4 rows of c; a points at A's first element.
func (g *fmaGemm[T]) block(a *T, rsA, csA int, c []T, ldc int, tile []T) {
	h := g.w / 2
	j := 0
	for ; j+g.w <= g.full; j += g.w {
		g.wide(g.k, a, rsA, csA, &g.b[j], g.ldb, &c[j], ldc)
	}
	if j < g.full {
		g.narrow(g.k, a, rsA, csA, &g.b[j], g.ldb, &c[j], ldc)
	}
	if g.full == g.n {
		return
	}
	r := g.n - g.full
	clear(tile)
	for row := range 4 {
		copy(tile[row*h:row*h+r], c[row*ldc+g.full:row*ldc+g.n])
	}
	g.narrow(g.k, a, rsA, csA, &g.bPad[0], h, &tile[0], h)
	for row := range 4 {
		copy(c[row*ldc+g.full:row*ldc+g.n], tile[row*h:row*h+r])
	}
}

// parallelRows calls fn on contiguous ranges covering [0, n), on up to
// GOMAXPROCS goroutines, with ranges of at least minRows (one range when n
// is small). fn must compute each row independently of the split, so the
// result does not depend on the number of cores.
func parallelRows(n, minRows int, fn func(lo, hi int)) {
	p := workers(n, minRows)
	if p <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + p - 1) / p
	for lo := step; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Go(func() { fn(lo, hi) })
	}
	fn(0, min(step, n))
	wg.Wait()
}

// workers is the number of goroutines parallelRows uses for n rows in
// ranges of at least minRows. A caller that checks it first and calls its
// function directly when it is 1 spares the closure's allocation.
func workers(n, minRows int) int {
	return min(runtime.GOMAXPROCS(0), n/max(minRows, 1))
}

// tnChunk is the number of rows each partial product of gemmTN sums. It is
// fixed, not derived from the number of cores, so that the order of the
// floating-point sums, hence the result, is the same on every machine.
const tnChunk = 256

// gemmTN computes c = aᵀ·b for row-major a (k×m) and b (k×n), c m×n, summing
// over k in fixed chunks of tnChunk rows on several cores; work needs
// (⌈k/tnChunk⌉−1)·m·n elements when k > tnChunk.
func gemmTN[T float](g *fmaGemm[T], m, n, k int, a, b, c, work []T) {
	chunks := (k + tnChunk - 1) / tnChunk
	if chunks <= 1 {
		gemmWith(g, true, false, m, n, k, a, m, b, n, 0, c, n)
		return
	}
	parallelRows(chunks, 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			r0, r1 := ch*tnChunk, min((ch+1)*tnChunk, k)
			dst := c
			if ch > 0 {
				dst = work[(ch-1)*m*n : ch*m*n]
			}
			gemm(true, false, m, n, r1-r0, a[r0*m:], m, b[r0*n:], n, 0, dst, n)
		}
	})
	for ch := 1; ch < chunks; ch++ {
		w := work[(ch-1)*m*n : ch*m*n]
		for i, v := range w {
			c[i] += v
		}
	}
}

// errSingular is returned for a matrix that cannot be factorised.
var errSingular = errors.New("matrix is singular")

// luInverse writes the inverse of the d×d row-major matrix a into inv and
// returns log|det a| and the sign of det a. work needs d*d elements and piv d.
// It uses LU with partial pivoting and refuses an exactly singular matrix.
func luInverse(a []float64, d int, inv, work []float64, piv []int) (logAbsDet, sign float64, err error) {
	lu := work[:d*d]
	copy(lu, a[:d*d])
	sign = 1
	for j := range d {
		// pivot
		p, best := j, math.Abs(lu[j*d+j])
		for i := j + 1; i < d; i++ {
			if v := math.Abs(lu[i*d+j]); v > best {
				p, best = i, v
			}
		}
		piv[j] = p
		if best == 0 || math.IsNaN(best) {
			return 0, 0, errSingular
		}
		if p != j {
			for c := range d {
				lu[j*d+c], lu[p*d+c] = lu[p*d+c], lu[j*d+c]
			}
			sign = -sign
		}
		pv := lu[j*d+j]
		if pv < 0 {
			sign = -sign
		}
		logAbsDet += math.Log(math.Abs(pv))
		for i := j + 1; i < d; i++ {
			f := lu[i*d+j] / pv
			lu[i*d+j] = f
			for c := j + 1; c < d; c++ {
				lu[i*d+c] -= f * lu[j*d+c]
			}
		}
	}
	// Solve LU·X = P·I column by column.
	for i := range inv[:d*d] {
		inv[i] = 0
	}
	for i := range d {
		inv[i*d+i] = 1
	}
	// apply the row swaps to the identity in order
	for j := range d {
		if p := piv[j]; p != j {
			for c := range d {
				inv[j*d+c], inv[p*d+c] = inv[p*d+c], inv[j*d+c]
			}
		}
	}
	for c := range d {
		// forward substitution with unit lower L
		for i := range d {
			s := inv[i*d+c]
			for k := range i {
				s -= lu[i*d+k] * inv[k*d+c]
			}
			inv[i*d+c] = s
		}
		// back substitution with U
		for i := d - 1; i >= 0; i-- {
			s := inv[i*d+c]
			for k := i + 1; k < d; k++ {
				s -= lu[i*d+k] * inv[k*d+c]
			}
			inv[i*d+c] = s / lu[i*d+i]
		}
	}
	return logAbsDet, sign, nil
}

// errNotPD is returned for a covariance that is not positive definite.
var errNotPD = errors.New("covariance is not positive definite")

// cholInverse writes the inverse of the symmetric positive-definite d×d
// matrix a into inv and returns log det a. work needs d*d elements. It
// returns errNotPD when the Cholesky factorisation fails.
func cholInverse(a []float64, d int, inv, work []float64) (float64, error) {
	l := work[:d*d]
	for i := range l {
		l[i] = 0
	}
	logDet := 0.0
	for j := range d {
		s := a[j*d+j]
		for k := range j {
			s -= l[j*d+k] * l[j*d+k]
		}
		if !(s > 0) || math.IsInf(s, 0) {
			return 0, errNotPD
		}
		ljj := math.Sqrt(s)
		l[j*d+j] = ljj
		logDet += 2 * math.Log(ljj)
		for i := j + 1; i < d; i++ {
			s := a[i*d+j]
			for k := range j {
				s -= l[i*d+k] * l[j*d+k]
			}
			l[i*d+j] = s / ljj
		}
	}
	// inv = L⁻ᵀ L⁻¹: first invert L in place into inv's lower triangle.
	for i := range inv[:d*d] {
		inv[i] = 0
	}
	// m = L⁻¹ (lower triangular), stored in inv.
	for c := range d {
		for i := c; i < d; i++ {
			s := 0.0
			if i == c {
				s = 1
			}
			for k := c; k < i; k++ {
				s -= l[i*d+k] * inv[k*d+c]
			}
			inv[i*d+c] = s / l[i*d+i]
		}
	}
	// inv = mᵀ m, computed into l (no longer needed), then copied back.
	for i := range d {
		for j := 0; j <= i; j++ {
			s := 0.0
			for k := i; k < d; k++ { // m[k][i] is zero for k < i
				s += inv[k*d+i] * inv[k*d+j]
			}
			l[i*d+j] = s
			l[j*d+i] = s
		}
	}
	copy(inv[:d*d], l)
	return logDet, nil
}
