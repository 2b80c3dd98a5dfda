package baseline

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// subspaceRows returns n rows of d columns lying in a k-dimensional affine
// subspace (random basis, offset), and the basis.
func subspaceRows(rng *rand.Rand, n, d, k int) (x, basis, offset []float64) {
	basis = make([]float64, k*d)
	for i := range basis {
		basis[i] = rng.NormFloat64()
	}
	offset = make([]float64, d)
	for j := range offset {
		offset[j] = rng.Float64()
	}
	x = make([]float64, n*d)
	for i := range n {
		for c := range k {
			a := rng.NormFloat64() * float64(k-c)
			for j := range d {
				x[i*d+j] += a * basis[c*d+j]
			}
		}
		for j := range d {
			x[i*d+j] += offset[j]
		}
	}
	return x, basis, offset
}

func TestPCAReconstruction(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d, k = 300, 8, 3
	x, basis, offset := subspaceRows(rng, n, d, k)
	p, err := FitPCA(x, d, k)
	if err != nil {
		t.Fatal(err)
	}
	// New points in the subspace: error zero. A point moved off it along a
	// direction orthogonal to the basis: error the squared length moved.
	in := make([]float64, 20*d)
	for i := range 20 {
		copy(in[i*d:], offset)
		for c := range k {
			a := 5 * rng.NormFloat64()
			for j := range d {
				in[i*d+j] += a * basis[c*d+j]
			}
		}
	}
	s, err := p.Scores(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range s {
		if v > 1e-12 {
			t.Errorf("row %d in the subspace: score %g, want 0", i, v)
		}
	}
	off := orthogonal(basis, d, k, rng)
	moved := slices.Clone(in[:d])
	for j := range moved {
		moved[j] += 2 * off[j]
	}
	s, err = p.Scores(moved)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(s[0]-4) > 1e-9 {
		t.Errorf("row moved by 2 off the subspace: score %g, want 4", s[0])
	}
	r, err := p.Residuals(moved)
	if err != nil {
		t.Fatal(err)
	}
	for j := range d {
		if want := 4 * off[j] * off[j]; math.Abs(r[j]-want) > 1e-9 {
			t.Errorf("column %d residual %g, want %g", j, r[j], want)
		}
	}
}

// orthogonal returns a unit vector orthogonal to the k rows of basis (Gram–Schmidt).
func orthogonal(basis []float64, d, k int, rng *rand.Rand) []float64 {
	vs := make([][]float64, 0, k+1)
	for c := range k {
		vs = append(vs, slices.Clone(basis[c*d:(c+1)*d]))
	}
	r := make([]float64, d)
	for j := range r {
		r[j] = rng.NormFloat64()
	}
	vs = append(vs, r)
	for i := range vs {
		for p := range i {
			dot := 0.0
			for j := range d {
				dot += vs[i][j] * vs[p][j]
			}
			for j := range d {
				vs[i][j] -= dot * vs[p][j]
			}
		}
		norm := 0.0
		for _, v := range vs[i] {
			norm += v * v
		}
		for j := range d {
			vs[i][j] /= math.Sqrt(norm)
		}
	}
	return vs[k]
}

func TestFitPCAErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float64
		d, k int
	}{
		{"ragged", make([]float64, 7), 2, 1},
		{"one row", make([]float64, 3), 3, 1},
		{"too many components", make([]float64, 30), 3, 4},
		{"no components", make([]float64, 30), 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := FitPCA(tc.x, tc.d, tc.k); !errors.Is(err, ErrInput) {
				t.Errorf("err = %v, want ErrInput", err)
			}
		})
	}
}

// naiveKNN is the O(n²) definition: mean distance to the k nearest training
// rows, skipping row skip (−1 for none).
func naiveKNN(train, q []float64, d, k, skip int) float64 {
	var ds []float64
	for j := range len(train) / d {
		if j == skip {
			continue
		}
		s := 0.0
		for c := range d {
			diff := q[c] - train[j*d+c]
			s += diff * diff
		}
		ds = append(ds, math.Sqrt(s))
	}
	slices.Sort(ds)
	sum := 0.0
	for _, v := range ds[:k] {
		sum += v
	}
	return sum / float64(k)
}

func TestKNNAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, q, d, k int }{
		{10, 5, 2, 1},
		{700, 600, 5, 5},  // more query rows than a block
		{2100, 300, 4, 3}, // more training rows than two tiles
		{50, 3, 38, 5},
	} {
		train := make([]float64, tc.n*tc.d)
		for i := range train {
			train[i] = rng.Float64()
		}
		copy(train[tc.d:2*tc.d], train[:tc.d]) // an exact duplicate row
		q := make([]float64, tc.q*tc.d)
		for i := range q {
			q[i] = rng.Float64() * 1.5
		}
		m, err := NewKNN(train, tc.d, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Scores(q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.q {
			if want := naiveKNN(train, q[i*tc.d:(i+1)*tc.d], tc.d, tc.k, -1); math.Abs(got[i]-want) > 1e-6 {
				t.Fatalf("n=%d d=%d k=%d: query %d: %g, naive %g", tc.n, tc.d, tc.k, i, got[i], want)
			}
		}
		self := m.TrainScores()
		for i := range tc.n {
			if want := naiveKNN(train, train[i*tc.d:(i+1)*tc.d], tc.d, tc.k, i); math.Abs(self[i]-want) > 1e-6 {
				t.Fatalf("n=%d d=%d k=%d: training row %d: %g, naive %g", tc.n, tc.d, tc.k, i, self[i], want)
			}
		}
	}
}

func TestKNNErrors(t *testing.T) {
	if _, err := NewKNN(make([]float64, 10), 2, 5); !errors.Is(err, ErrInput) {
		t.Errorf("5 rows, k=5: err = %v, want ErrInput", err)
	}
	m, err := NewKNN(make([]float64, 20), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Scores(make([]float64, 3)); !errors.Is(err, ErrInput) {
		t.Errorf("ragged query: err = %v, want ErrInput", err)
	}
}

func TestWindow(t *testing.T) {
	x := []float64{1, 10, 2, 20, 3, 30}
	got := Window(x, 2, 3)
	want := []float64{
		1, 10, 1, 10, 1, 10,
		2, 20, 1, 10, 1, 10,
		3, 30, 2, 20, 1, 10,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Window = %v, want %v", got, want)
	}
}

func TestZScore(t *testing.T) {
	x := []float64{0, 5, 2, 5, 4, 5} // column 0 mean 2 sd 2, column 1 constant
	z, err := FitZScore(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := z.Row(nil, []float64{8, 6})
	if want := []float64{3, 1}; !slices.Equal(got, want) {
		t.Errorf("Row = %v, want %v", got, want)
	}
}
