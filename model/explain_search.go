package model

import "math"

// The search method ([MethodSearch]) asks, for each feature and for pairs
// of features, which values would make the sample most normal, the others
// unchanged: it minimises the energy over those features' normalised values
// within the range the model's normal samples span, by a grid and a
// golden-section refinement. A pair explains the anomaly when it lowers the
// energy more than the best single feature does by at least
// SearchPairMargin·(q99 − q50) of the training energies, a margin that keeps
// one broken feature from being blamed on two.

// Search settings. Their values were chosen on generated data
// (docs/explanations.md).
const (
	searchGrid1   = 8 // grid points per feature
	searchGolden1 = 5 // golden-section steps after the grid, one feature
	searchGrid2   = 5 // grid points per feature of a pair
	searchGolden2 = 3 // golden-section steps per coordinate and round, pairs
	searchRounds2 = 2 // coordinate rounds, pairs
	searchTop     = 4 // pairs are searched among this many best single features
	// SearchPairMargin scales the energy margin by which a pair must beat
	// the best single feature to explain an anomaly ([MethodSearch]).
	SearchPairMargin = 0.25
	// searchWiden widens each feature's range of normal values by this
	// fraction on each side.
	searchWiden = 0.1
)

// normalRange returns, per feature, the range of normalised values that the
// decoder produces over the codes the mixture considers normal: each
// component's mean code and the points 3 standard deviations away along
// each code axis, widened by searchWiden on each side.
func (s *Scorer) normalRange() (lo, hi []float64) {
	d, code, dim := s.d, s.code, s.dim
	lo, hi = make([]float64, d), make([]float64, d)
	for j := range d {
		lo[j], hi[j] = math.Inf(1), math.Inf(-1)
	}
	n := 0
	for _, l := range s.dec {
		n += l.out
	}
	acts := make([]float64, n)
	c := make([]float64, code)
	g := s.meta.GMM
	visit := func() {
		in := c
		off := 0
		for i := range s.dec {
			l := &s.dec[i]
			out := acts[off : off+l.out]
			l.forward1(in, out)
			in, off = out, off+l.out
		}
		for j, v := range in[:d] {
			lo[j], hi[j] = min(lo[j], v), max(hi[j], v)
		}
	}
	for k := range g.K {
		mu := g.Mu[k*dim : k*dim+code]
		copy(c, mu)
		visit()
		for a := range code {
			sd := math.Sqrt(g.Sigma[k*dim*dim+a*dim+a])
			for _, sign := range []float64{-3, 3} {
				copy(c, mu)
				c[a] += sign * sd
				visit()
			}
		}
	}
	for j := range d {
		w := searchWiden * (hi[j] - lo[j])
		lo[j], hi[j] = lo[j]-w, hi[j]+w
		if !(hi[j] > lo[j]) || !isFinite(lo[j]) || !isFinite(hi[j]) {
			lo[j], hi[j] = -1, 2 // a degenerate decoder: a generous default
		}
	}
	return lo, hi
}

// energyWith returns the energy of ex.xc, a copy of the sample with some
// features changed.
func (s *Scorer) energyWith(ex *explainScratch) float64 {
	_, e := s.pass(ex.xc, ex.acts, ex.z, ex.mix)
	return e
}

// golden minimises the energy over ex.xc[j] in [l, r] by golden-section
// steps, starting from ex.xc as it is, and returns the best value and
// energy it saw; it leaves ex.xc[j] set to that value.
func (s *Scorer) golden(ex *explainScratch, j int, l, r float64, steps int) (v, e float64) {
	const g = 0.6180339887498949
	xc := ex.xc
	a, b := r-g*(r-l), l+g*(r-l)
	xc[j] = a
	fa := s.energyWith(ex)
	xc[j] = b
	fb := s.energyWith(ex)
	for range steps {
		if fa < fb {
			r, b, fb = b, a, fa
			a = r - g*(r-l)
			xc[j] = a
			fa = s.energyWith(ex)
		} else {
			l, a, fa = a, b, fb
			b = l + g*(r-l)
			xc[j] = b
			fb = s.energyWith(ex)
		}
	}
	v, e = b, fb
	if fa < fb {
		v, e = a, fa
	}
	xc[j] = v
	return v, e
}

// grid returns the i-th of n points spread over [lo, hi].
func grid(lo, hi float64, i, n int) float64 {
	return lo + (hi-lo)*float64(i)/float64(n-1)
}

// search1 minimises the energy over feature j alone (ex.xc equals ex.xn on
// entry and on return) and returns the best value and energy.
func (s *Scorer) search1(ex *explainScratch, j int) (v, e float64) {
	lo, hi := s.searchLo[j], s.searchHi[j]
	xc := ex.xc
	bi, be := 0, math.Inf(1)
	for i := range searchGrid1 {
		xc[j] = grid(lo, hi, i, searchGrid1)
		if en := s.energyWith(ex); en < be {
			bi, be = i, en
		}
	}
	v, e = grid(lo, hi, bi, searchGrid1), be
	l, r := grid(lo, hi, max(bi-1, 0), searchGrid1), grid(lo, hi, min(bi+1, searchGrid1-1), searchGrid1)
	if gv, ge := s.golden(ex, j, l, r, searchGolden1); ge < e {
		v, e = gv, ge
	}
	xc[j] = ex.xn[j]
	return v, e
}

// search2 minimises the energy over features a and b together (ex.xc
// equals ex.xn on entry and on return) and returns the best values and
// energy.
func (s *Scorer) search2(ex *explainScratch, a, b int) (va, vb, e float64) {
	xc := ex.xc
	bi, bk, be := 0, 0, math.Inf(1)
	for i := range searchGrid2 {
		xc[a] = grid(s.searchLo[a], s.searchHi[a], i, searchGrid2)
		for k := range searchGrid2 {
			xc[b] = grid(s.searchLo[b], s.searchHi[b], k, searchGrid2)
			if en := s.energyWith(ex); en < be {
				bi, bk, be = i, k, en
			}
		}
	}
	va = grid(s.searchLo[a], s.searchHi[a], bi, searchGrid2)
	vb = grid(s.searchLo[b], s.searchHi[b], bk, searchGrid2)
	e = be
	// Coordinate rounds of golden sections within a grid cell of the best point.
	wa := (s.searchHi[a] - s.searchLo[a]) / float64(searchGrid2-1)
	wb := (s.searchHi[b] - s.searchLo[b]) / float64(searchGrid2-1)
	for range searchRounds2 {
		xc[b] = vb
		if v, en := s.golden(ex, a, va-wa, va+wa, searchGolden2); en < e {
			va, e = v, en
		}
		xc[a] = va
		if v, en := s.golden(ex, b, vb-wb, vb+wb, searchGolden2); en < e {
			vb, e = v, en
		}
		wa, wb = wa/2, wb/2
	}
	xc[a], xc[b] = ex.xn[a], ex.xn[b]
	return va, vb, e
}

// searchExplain fills ex.attr, ex.expected and ex.inSet for
// [MethodSearch]. When one feature explains the anomaly (the one whose best
// value lowers the energy most) it takes the whole drop and its best value
// is its expected value; when a pair does (see the top of this file), the
// pair's drop is split between its two features in proportion to their
// own drops, and their jointly best values are their expected values. The
// other features get no attribution.
func (s *Scorer) searchExplain(ex *explainScratch, e0 float64) {
	d := s.d
	copy(ex.xc, ex.xn)
	clear(ex.inSet)
	best1, b1 := math.Inf(1), 0
	for j := range d {
		v, e := s.search1(ex, j)
		ex.expected[j] = v
		ex.attr[j] = drop(e0, e)
		if e < best1 {
			best1, b1 = e, j
		}
	}
	if ex.attr[b1] <= 0 {
		return // nothing lowers the energy: no feature explains it
	}
	if d < 2 {
		ex.inSet[b1] = true
		return
	}
	// The searchTop features with the largest single drops.
	top := ex.order[:d]
	for j := range top {
		top[j] = j
	}
	for i := 1; i < len(top); i++ {
		for k := i; k > 0 && ex.attr[top[k]] > ex.attr[top[k-1]]; k-- {
			top[k], top[k-1] = top[k-1], top[k]
		}
	}
	top = top[:min(searchTop, d)]
	best2, ba, bb, va, vb := math.Inf(1), -1, -1, 0.0, 0.0
	for i := range top {
		for k := i + 1; k < len(top); k++ {
			a, b := top[i], top[k]
			if a > b {
				a, b = b, a
			}
			x, y, e := s.search2(ex, a, b)
			if e < best2 {
				best2, ba, bb, va, vb = e, a, b, x, y
			}
		}
	}
	q := s.meta.Calibration.Quantiles
	margin := SearchPairMargin * (q[99] - q[50])
	if ba < 0 || !(best1-best2 >= margin) {
		// One feature explains the anomaly: it takes it all.
		for j := range d {
			if j != b1 {
				ex.attr[j] = 0
			}
		}
		ex.inSet[b1] = true
		return
	}
	pa, pb := max(ex.attr[ba], 0), max(ex.attr[bb], 0)
	if pa+pb == 0 {
		pa, pb = 1, 1
	}
	pd := drop(e0, best2)
	for j := range d {
		ex.attr[j] = 0
	}
	ex.attr[ba] = pd * pa / (pa + pb)
	ex.attr[bb] = pd * pb / (pa + pb)
	ex.expected[ba], ex.expected[bb] = va, vb
	ex.inSet[ba], ex.inSet[bb] = true, true
}
