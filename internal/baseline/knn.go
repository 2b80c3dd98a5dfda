package baseline

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// The squared distances of knnBlock query rows to knnTile training rows come
// from one matrix product, 256 × 1024 values (2 MB), which stays in cache.
const (
	knnBlock = 256
	knnTile  = 1024
)

// KNN scores a row by its mean Euclidean distance to its k nearest training
// rows, by brute force: the squared distances of a block of rows to every
// training row come from one matrix product, |a|² + |b|² − 2a·b.
type KNN struct {
	d, k  int
	train *mat.Dense
	norms []float64 // squared norm of each training row
}

// NewKNN keeps the n×d training rows x (not copied) for k nearest
// neighbours; it needs more than k rows.
func NewKNN(x []float64, d, k int) (*KNN, error) {
	n, err := checkShape(x, d, k+1)
	if err != nil {
		return nil, err
	}
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, want at least 1", ErrInput, k)
	}
	return &KNN{d: d, k: k, train: mat.NewDense(n, d, x), norms: squaredNorms(x, d)}, nil
}

func squaredNorms(x []float64, d int) []float64 {
	out := make([]float64, len(x)/d)
	for i := range out {
		for _, v := range x[i*d : (i+1)*d] {
			out[i] += v * v
		}
	}
	return out
}

// Scores returns the mean distance of each row of x (n×d) to its k nearest
// training rows.
func (m *KNN) Scores(x []float64) ([]float64, error) {
	if _, err := checkShape(x, m.d, 1); err != nil {
		return nil, err
	}
	return m.scores(x, false), nil
}

// TrainScores returns each training row's mean distance to its k nearest
// other training rows (itself left out; an identical copy still counts).
func (m *KNN) TrainScores() []float64 {
	return m.scores(m.train.RawMatrix().Data, true)
}

// scores computes the scores of the rows of x; with self, x is the training
// matrix and row i skips training row i. The products are tiled so that one
// tile of distances stays in cache.
func (m *KNN) scores(x []float64, self bool) []float64 {
	n, nt := len(x)/m.d, len(m.norms)
	qn := squaredNorms(x, m.d)
	out := make([]float64, n)
	best := make([]float64, knnBlock*m.k) // each query row's k smallest squared distances, ascending
	var g mat.Dense
	for lo := 0; lo < n; lo += knnBlock {
		hi := min(lo+knnBlock, n)
		q := mat.NewDense(hi-lo, m.d, x[lo*m.d:hi*m.d])
		for i := range best {
			best[i] = math.Inf(1)
		}
		for tlo := 0; tlo < nt; tlo += knnTile {
			thi := min(tlo+knnTile, nt)
			g.Reset()
			g.Mul(q, m.train.Slice(tlo, thi, 0, m.d).T())
			raw := g.RawMatrix()
			for i := range hi - lo {
				b := best[i*m.k : (i+1)*m.k]
				row := raw.Data[i*raw.Stride : i*raw.Stride+thi-tlo]
				for c, dot := range row {
					j := tlo + c
					if dd := qn[lo+i] + m.norms[j] - 2*dot; dd < b[m.k-1] && !(self && j == lo+i) {
						insertSorted(b, dd)
					}
				}
			}
		}
		for i := range hi - lo {
			sum := 0.0
			for _, dd := range best[i*m.k : (i+1)*m.k] {
				sum += math.Sqrt(max(dd, 0)) // rounding can make a zero distance slightly negative
			}
			out[lo+i] = sum / float64(m.k)
		}
	}
	return out
}

// insertSorted puts v into the ascending slice best, dropping its last value.
func insertSorted(best []float64, v float64) {
	i := len(best) - 1
	for i > 0 && best[i-1] > v {
		best[i] = best[i-1]
		i--
	}
	best[i] = v
}
