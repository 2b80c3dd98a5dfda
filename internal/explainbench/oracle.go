package explainbench

import (
	"math"
	"slices"
)

// The oracle knows how datasets.Generate makes its data (the formulas below
// are copied from datasets/gen.go: metric, impliedLoad and the anomaly
// injection) and picks the most probable broken feature or pair by Bayes'
// rule. It bounds what any explanation can achieve from a row's values.

// genNoise is each generated metric's noise in load units: its standard
// deviation over its slope in the load (cpu 3/85, mem 2.5/55, disk 4/70, net
// 0.2/ln 1000).
var genNoise = [4]float64{3.0 / 85, 2.5 / 55, 4.0 / 70, 0.2 / math.Ln10 / 3}

// impliedLoad inverts the generator's metric without noise: the load that
// value v of feature f stands for.
func impliedLoad(f int, v float64) float64 {
	switch f {
	case 0:
		return (v - 5) / 85
	case 1:
		return (v - 25) / 55
	case 2:
		return (v - 2) / 70
	}
	return math.Log(max(v, 1)/1e5) / math.Log(1e3)
}

// oracleBins is the resolution of the oracle's load grid on [0, 1].
const oracleBins = 200

// oracle holds the load distribution of a training file's normal rows.
type oracle struct {
	prior [oracleBins]float64
}

// newOracle histograms the mean implied load of the rows x (n×4).
func newOracle(x []float64) *oracle {
	o := &oracle{}
	for i := range o.prior {
		o.prior[i] = 0.5 // a little mass everywhere
	}
	for i := 0; i+4 <= len(x); i += 4 {
		m := 0.0
		for f := range 4 {
			m += impliedLoad(f, x[i+f]) / 4
		}
		if b := int(m * oracleBins); b >= 0 && b < oracleBins {
			o.prior[b]++
		}
	}
	return o
}

func gauss(v, m, s float64) float64 { return math.Exp(-0.5*(v-m)*(v-m)/(s*s)) / s }

// brokenDensity is the density of implied load l of feature f, the b-th
// broken one (b = 0 or 1), when the row's load is L: the generator draws the
// distance u uniformly from 0.45 to 0.6; the first broken feature moves up
// when L < 0.5 and down otherwise, clipped to [0.05, 0.95]; the second moves
// the other way, clipped only by the metric's range; then the metric's noise.
func brokenDensity(l, L float64, f, b int) float64 {
	const n = 24
	lo, hi := math.Inf(-1), math.Inf(1)
	if f < 3 {
		lo, hi = impliedLoad(f, 0), impliedLoad(f, 100)
	}
	up := (L < 0.5) != (b == 1)
	sum := 0.0
	for k := range n {
		u := 0.45 + 0.15*(float64(k)+0.5)/n
		var other float64
		switch {
		case b == 1 && up:
			other = L + u
		case b == 1:
			other = L - u
		case up:
			other = min(0.95, L+u)
		default:
			other = max(0.05, L-u)
		}
		sum += gauss(min(hi, max(lo, other)), l, genNoise[f])
	}
	return sum / n
}

// likelihood returns the probability of the row's implied loads l when the
// features in broken are the broken ones: integrated over the load, with
// the broken features' density known (full: either of them the first) or
// flat (knowing only how normal rows look).
func (o *oracle) likelihood(l []float64, broken []int, full bool) float64 {
	lik := 0.0
	for g := range oracleBins {
		L := (float64(g) + 0.5) / oracleBins
		p := o.prior[g]
		for f := range 4 {
			if !slices.Contains(broken, f) {
				p *= gauss(l[f], L, genNoise[f])
			}
		}
		if full {
			p *= brokenPairDensity(l, L, broken)
		}
		lik += p
	}
	return lik
}

// brokenPairDensity is the density of the broken features' implied loads,
// one or two of them, averaged over which was broken first.
func brokenPairDensity(l []float64, L float64, broken []int) float64 {
	if len(broken) == 1 {
		return brokenDensity(l[broken[0]], L, broken[0], 0)
	}
	a, b := broken[0], broken[1]
	return 0.5 * (brokenDensity(l[a], L, a, 0)*brokenDensity(l[b], L, b, 1) +
		brokenDensity(l[b], L, b, 0)*brokenDensity(l[a], L, a, 1))
}

// best returns the most probable set of k broken features (k = 1 or 2) of
// the raw row x.
func (o *oracle) best(x []float64, k int, full bool) []int {
	l := make([]float64, 4)
	for f := range 4 {
		l[f] = impliedLoad(f, x[f])
	}
	var best []int
	bestLik := -1.0
	for a := range 4 {
		if k == 1 {
			if lik := o.likelihood(l, []int{a}, full); lik > bestLik {
				best, bestLik = []int{a}, lik
			}
			continue
		}
		for b := a + 1; b < 4; b++ {
			if lik := o.likelihood(l, []int{a, b}, full); lik > bestLik {
				best, bestLik = []int{a, b}, lik
			}
		}
	}
	return best
}
