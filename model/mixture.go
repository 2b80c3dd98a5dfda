package model

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// DistanceEpsilon keeps the estimation features finite when a vector is zero:
// rel = ‖x − x'‖₂ / (‖x‖₂ + DistanceEpsilon) and
// cos = x·x' / (‖x‖₂·‖x'‖₂ + DistanceEpsilon). Package train uses the same value.
const DistanceEpsilon = 1e-8

// log2Pi is log(2π).
var log2Pi = math.Log(2 * math.Pi)

// reconStats returns, in one pass over the normalised input x and its
// reconstruction xr (same length), Σx², Σx'², Σ(x−x')² and Σx·x'.
func reconStats(x, xr []float64) (sxx, srr, sdd, sxr float64) {
	xr = xr[:len(x)]
	for j, a := range x {
		b := xr[j]
		e := a - b
		sxx += a * a
		srr += b * b
		sdd += e * e
		sxr += a * b
	}
	return sxx, srr, sdd, sxr
}

// relCos turns the sums of [reconStats] into the relative Euclidean distance
// and the cosine similarity.
func relCos(sxx, srr, sdd, sxr float64) (rel, cos float64) {
	nx := math.Sqrt(sxx)
	rel = math.Sqrt(sdd) / (nx + DistanceEpsilon)
	cos = sxr / (nx*math.Sqrt(srr) + DistanceEpsilon)
	return rel, cos
}

// RelativeDistance returns ‖x − x'‖₂ / (‖x‖₂ + [DistanceEpsilon]) for the
// normalised input x and its reconstruction xr, the estimation input's
// second-to-last element. The sums run in index order. It panics if xr is
// shorter than x.
func RelativeDistance(x, xr []float64) float64 {
	rel, _ := relCos(reconStats(x, xr))
	return rel
}

// CosineSimilarity returns x·x' / (‖x‖₂·‖x'‖₂ + [DistanceEpsilon]) for the
// normalised input x and its reconstruction xr, the estimation input's last
// element. The sums run in index order. It panics if xr is shorter than x.
func CosineSimilarity(x, xr []float64) float64 {
	_, cos := relCos(reconStats(x, xr))
	return cos
}

// Mixture is a [GMM] prepared for evaluating the DAGMM sample energy
//
//	E(z) = −log Σ_k φ_k · exp(−½ (z−μ_k)ᵀ Σ_k⁻¹ (z−μ_k)) / sqrt(det(2π Σ_k))
//
// It holds the Cholesky factor L_k of each Σ_k (Σ_k = L_k L_kᵀ) and the
// constants c_k = log φ_k − ½ (Dim·log 2π + log det Σ_k), so that
// E(z) = −logsumexp_k (c_k − ½ ‖L_k⁻¹ (z−μ_k)‖²), computed stably by
// subtracting the largest term. A Mixture is immutable and safe for
// concurrent use.
type Mixture struct {
	k, dim  int
	mu      []float64 // k×dim
	l       []float64 // k×dim×dim, lower triangle of L_k, row-major
	invDiag []float64 // k×dim, 1 / L_k[i][i]
	logc    []float64 // k, c_k
}

// NewMixture validates g (shapes, finite values, Phi positive and summing to
// 1, each Sigma symmetric and positive definite) and precomputes what the
// energy needs. It copies what it keeps: changing g afterwards does not
// change the Mixture.
func NewMixture(g GMM) (*Mixture, error) {
	chols, err := g.factorize()
	if err != nil {
		return nil, err
	}
	k, dim := g.K, g.Dim
	mx := &Mixture{
		k:       k,
		dim:     dim,
		mu:      slices.Clone(g.Mu),
		l:       make([]float64, k*dim*dim),
		invDiag: make([]float64, k*dim),
		logc:    make([]float64, k),
	}
	for c := range k {
		var lt mat.TriDense
		chols[c].LTo(&lt)
		raw := lt.RawTriangular()
		l := mx.l[c*dim*dim : (c+1)*dim*dim]
		for i := range dim {
			copy(l[i*dim:i*dim+i+1], raw.Data[i*raw.Stride:i*raw.Stride+i+1])
			mx.invDiag[c*dim+i] = 1 / l[i*dim+i]
		}
		mx.logc[c] = math.Log(g.Phi[c]) - 0.5*(float64(dim)*log2Pi+chols[c].LogDet())
	}
	return mx, nil
}

// K returns the number of components.
func (mx *Mixture) K() int { return mx.k }

// Dim returns the dimension of z.
func (mx *Mixture) Dim() int { return mx.dim }

// energy computes E(z). It needs scratch of at least dim+k values.
func (mx *Mixture) energy(z, scratch []float64) float64 {
	dim, k := mx.dim, mx.k
	z = z[:dim]
	y := scratch[:dim]
	terms := scratch[dim : dim+k]
	best := math.Inf(-1)
	for c := range k {
		mu := mx.mu[c*dim : (c+1)*dim]
		l := mx.l[c*dim*dim : (c+1)*dim*dim]
		inv := mx.invDiag[c*dim : (c+1)*dim]
		// Forward substitution: L y = z − μ; the Mahalanobis distance is ‖y‖².
		m := 0.0
		for i := range dim {
			s := z[i] - mu[i]
			for j, v := range l[i*dim : i*dim+i] {
				s -= v * y[j]
			}
			yi := s * inv[i]
			y[i] = yi
			m += yi * yi
		}
		t := mx.logc[c] - 0.5*m
		terms[c] = t
		if t > best {
			best = t
		}
	}
	if math.IsInf(best, -1) {
		// Every density underflows, or z holds NaN (a NaN term never
		// becomes best): z is beyond anything the model describes.
		return math.Inf(1)
	}
	sum := 0.0
	for _, t := range terms {
		if t == t { // a NaN term counts as zero density
			sum += math.Exp(t - best)
		}
	}
	return -(best + math.Log(sum))
}

// Energy returns E(z) for one estimation input z = [z_c, rel, cos] of
// length Dim. E is +Inf when z is so far from every component that each
// density underflows. It does not allocate when Dim + K ≤ 64. It returns an
// [*InputError] when z has the wrong length or holds NaN or ±Inf.
func (mx *Mixture) Energy(z []float64) (float64, error) {
	if len(z) != mx.dim {
		return 0, &InputError{Sample: -1, Problem: fmt.Sprintf("z has %d values, want %d (gmm dim)", len(z), mx.dim)}
	}
	for i, v := range z {
		if !isFinite(v) {
			return 0, &InputError{Sample: -1, Problem: fmt.Sprintf("z[%d] is %v", i, v)}
		}
	}
	var buf [64]float64
	scratch := buf[:]
	if n := mx.dim + mx.k; n > len(buf) {
		scratch = make([]float64, n)
	}
	return mx.energy(z, scratch), nil
}

// Calibrate places the anomaly threshold at the given percentile (0 to 100)
// of the training energies and records the energies' quantiles at the
// percentiles 0, 1, ..., 100. Quantiles interpolate linearly between order
// statistics (NumPy's default, "linear"): the q-th percentile of n sorted
// energies e is e[h] + (h − ⌊h⌋)(e[⌊h⌋+1] − e[⌊h⌋]) with h = (n−1)·q/100.
// It copies energies before sorting them and returns an error when they are
// empty or not all finite, or when percentile is outside [0, 100].
func Calibrate(energies []float64, percentile float64) (Calibration, error) {
	if len(energies) == 0 {
		return Calibration{}, fmt.Errorf("model: calibrate: no energies")
	}
	if !isFinite(percentile) || percentile < 0 || percentile > 100 {
		return Calibration{}, fmt.Errorf("model: calibrate: percentile is %v, want a number in [0, 100]", percentile)
	}
	for i, e := range energies {
		if !isFinite(e) {
			return Calibration{}, fmt.Errorf("model: calibrate: energy %d is %v", i, e)
		}
	}
	s := slices.Clone(energies)
	slices.Sort(s)
	q := make([]float64, NumQuantiles)
	for i := range q {
		q[i] = quantile(s, float64(i))
	}
	return Calibration{Percentile: percentile, Threshold: quantile(s, percentile), Quantiles: q}, nil
}

// quantile returns the p-th percentile (0 to 100) of the sorted values s.
func quantile(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}
