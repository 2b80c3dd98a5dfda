// Package baseline holds the simple anomaly detectors and explanation
// rankings that dagmm eval measures the model against on real data: PCA
// reconstruction error (on single rows or on a window of the last few
// rows), the mean distance to the k nearest training rows, and the absolute
// z-score. Each takes a few lines, needs no tuning, and on server metrics
// matches or beats most published deep detectors (Sarfraz et al., ICML
// 2024), which is why a model must be shown beside them.
//
// Matrices are row-major []float64 of n rows and d columns, as in package
// datasets.
package baseline

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// ErrInput is matched by every error for unusable input: too few rows or
// columns, a ragged matrix, more components than columns.
var ErrInput = errors.New("baseline: invalid input")

// checkShape checks that x holds whole rows of d values and at least min rows.
func checkShape(x []float64, d, minRows int) (n int, err error) {
	if d < 1 || len(x)%d != 0 {
		return 0, fmt.Errorf("%w: %d values do not make whole rows of %d columns", ErrInput, len(x), d)
	}
	n = len(x) / d
	if n < minRows {
		return 0, fmt.Errorf("%w: %d rows, want at least %d", ErrInput, n, minRows)
	}
	return n, nil
}

// PCA is a principal-component subspace fitted on training rows; a row's
// anomaly score is its squared distance to the subspace.
type PCA struct {
	d    int
	mean []float64
	v    *mat.Dense // d×k, orthonormal columns: the components
}

// FitPCA fits k principal components to the n×d rows x (gonum's stat.PC on
// the centred rows).
func FitPCA(x []float64, d, k int) (*PCA, error) {
	n, err := checkShape(x, d, 2)
	if err != nil {
		return nil, err
	}
	if k < 1 || k > d || k > n {
		return nil, fmt.Errorf("%w: %d components of %d rows of %d columns", ErrInput, k, n, d)
	}
	var pc stat.PC
	if !pc.PrincipalComponents(mat.NewDense(n, d, x), nil) {
		return nil, fmt.Errorf("baseline: PCA of %d×%d rows: the decomposition failed", n, d)
	}
	var all mat.Dense
	pc.VectorsTo(&all)
	p := &PCA{d: d, mean: make([]float64, d), v: mat.DenseCopyOf(all.Slice(0, d, 0, k))}
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			p.mean[j] += v
		}
	}
	for j := range p.mean {
		p.mean[j] /= float64(n)
	}
	return p, nil
}

// Residuals returns, for each row of x (n×d), the squared residual of each
// column after projecting the centred row on the subspace: n×d values whose
// row sums are [PCA.Scores]. A column's residual ranks it as a cause.
func (p *PCA) Residuals(x []float64) ([]float64, error) {
	n, err := checkShape(x, p.d, 1)
	if err != nil {
		return nil, err
	}
	c := mat.NewDense(n, p.d, nil)
	for i := range n {
		for j := range p.d {
			c.Set(i, j, x[i*p.d+j]-p.mean[j])
		}
	}
	var proj, back mat.Dense
	proj.Mul(c, p.v)              // n×k
	back.Mul(&proj, p.v.T())      // n×d
	c.Sub(c, &back)               // residual
	out := make([]float64, n*p.d) // squared
	raw := c.RawMatrix()
	for i := range n {
		for j := range p.d {
			r := raw.Data[i*raw.Stride+j]
			out[i*p.d+j] = r * r
		}
	}
	return out, nil
}

// Scores returns each row's squared reconstruction error: its squared
// distance to the subspace.
func (p *PCA) Scores(x []float64) ([]float64, error) {
	r, err := p.Residuals(x)
	if err != nil {
		return nil, err
	}
	return rowSums(r, p.d), nil
}

func rowSums(x []float64, d int) []float64 {
	out := make([]float64, len(x)/d)
	for i := range out {
		for _, v := range x[i*d : (i+1)*d] {
			out[i] += v
		}
	}
	return out
}

// Window returns the n×(w·d) matrix whose row i is row i of x followed by
// its w−1 predecessors (row i−1, then i−2, ...); before the first row the
// first row stands in for the missing ones.
func Window(x []float64, d, w int) []float64 {
	n := len(x) / d
	out := make([]float64, 0, n*w*d)
	for i := range n {
		for lag := range w {
			r := max(i-lag, 0)
			out = append(out, x[r*d:(r+1)*d]...)
		}
	}
	return out
}

// ZScore holds the mean and standard deviation of each column of the
// training rows; it ranks a row's columns by their absolute z-score.
type ZScore struct {
	mean, sd []float64
}

// FitZScore computes the mean and sample standard deviation of each column
// of x (n×d). A constant column gets sd 1 (its z-score is then its distance
// from the constant).
func FitZScore(x []float64, d int) (*ZScore, error) {
	n, err := checkShape(x, d, 2)
	if err != nil {
		return nil, err
	}
	z := &ZScore{mean: make([]float64, d), sd: make([]float64, d)}
	col := make([]float64, n)
	for j := range d {
		for i := range n {
			col[i] = x[i*d+j]
		}
		z.mean[j], z.sd[j] = stat.MeanStdDev(col, nil)
		if z.sd[j] == 0 {
			z.sd[j] = 1
		}
	}
	return z, nil
}

// Row returns the absolute z-score of each value of one row into dst.
func (z *ZScore) Row(dst, row []float64) []float64 {
	dst = dst[:0]
	for j, v := range row {
		dst = append(dst, math.Abs(v-z.mean[j])/z.sd[j])
	}
	return dst
}
