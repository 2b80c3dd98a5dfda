package model_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

func TestEstimationFeatures(t *testing.T) {
	const eps = model.DistanceEpsilon
	for _, tc := range []struct {
		name     string
		x, xr    []float64
		rel, cos float64
	}{
		{"identical", []float64{3, 4}, []float64{3, 4}, 0, 25 / (25 + eps)},
		{"opposite", []float64{1, 0}, []float64{-1, 0}, 2 / (1 + eps), -1 / (1 + eps)},
		{"orthogonal", []float64{0, 2}, []float64{2, 0}, math.Sqrt(8) / (2 + eps), 0},
		{"zero input", []float64{0, 0}, []float64{1, 0}, 1 / eps, 0},
		{"both zero", []float64{0, 0}, []float64{0, 0}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := model.RelativeDistance(tc.x, tc.xr); !scalar.EqualWithinAbsOrRel(got, tc.rel, 1e-15, 1e-15) {
				t.Errorf("RelativeDistance = %v, want %v", got, tc.rel)
			}
			if got := model.CosineSimilarity(tc.x, tc.xr); !scalar.EqualWithinAbsOrRel(got, tc.cos, 1e-15, 1e-15) {
				t.Errorf("CosineSimilarity = %v, want %v", got, tc.cos)
			}
		})
	}
}

func TestMixtureEnergy(t *testing.T) {
	for _, m := range []*model.Model{tinyModel(), modeltest.KDDCup(3), modeltest.NewRandom(modeltest.Names("x", 9), []int{6, 4}, []int{5}, 9, 8)} {
		mix, err := model.NewMixture(m.GMM)
		if err != nil {
			t.Fatal(err)
		}
		if mix.K() != m.GMM.K || mix.Dim() != m.GMM.Dim {
			t.Errorf("K, Dim = %d, %d, want %d, %d", mix.K(), mix.Dim(), m.GMM.K, m.GMM.Dim)
		}
		x := modeltest.Inputs(m, 20, 1)
		d := len(m.Features)
		for i := range 20 {
			ref := refScore(t, m, x[i*d:(i+1)*d])
			got, err := mix.Energy(ref.z)
			if err != nil {
				t.Fatal(err)
			}
			if !scalar.EqualWithinAbsOrRel(got, ref.energy, tol, tol) {
				t.Errorf("K=%d sample %d: energy %v, reference %v", m.GMM.K, i, got, ref.energy)
			}
		}
	}
}

func TestMixtureEnergyEdges(t *testing.T) {
	mix, err := model.NewMixture(tinyModel().GMM)
	if err != nil {
		t.Fatal(err)
	}
	// So far from every component that each density underflows to 0.
	if e, err := mix.Energy([]float64{1e200, 0, 0}); err != nil || !math.IsInf(e, 1) {
		t.Errorf("Energy(far) = %v, %v, want +Inf", e, err)
	}
	// Far enough to underflow exp() without the log-sum-exp shift, but finite.
	if e, err := mix.Energy([]float64{60, 0, 0}); err != nil || !isFinite(e) || e < 700 {
		t.Errorf("Energy(60, 0, 0) = %v, %v, want a finite energy above 700", e, err)
	}
	for _, tc := range []struct {
		z    []float64
		want string
	}{
		{[]float64{1, 2}, "z has 2 values, want 3"},
		{[]float64{1, math.NaN(), 0}, "z[1] is NaN"},
	} {
		if _, err := mix.Energy(tc.z); !errors.Is(err, model.ErrInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Energy(%v) error = %v, want ErrInput containing %q", tc.z, err, tc.want)
		}
	}
}

func TestCalibrate(t *testing.T) {
	// 0, 1, ..., 200 shuffled: the p-th percentile is 2p exactly.
	e := make([]float64, 201)
	for i := range e {
		e[i] = float64((i * 37) % 201)
	}
	c, err := model.Calibrate(e, 99)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != 198 || c.Percentile != 99 {
		t.Errorf("threshold %v at %v, want 198 at 99", c.Threshold, c.Percentile)
	}
	for i, q := range c.Quantiles {
		if q != float64(2*i) {
			t.Errorf("quantile %d = %v, want %d", i, q, 2*i)
		}
	}
	if e[0] != 0 || e[1] != 37 {
		t.Error("Calibrate sorted its argument")
	}
	// Interpolation between order statistics (NumPy's "linear").
	c, err = model.Calibrate([]float64{10, 0, 20, 30}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != 15 || c.Quantiles[100] != 30 || c.Quantiles[0] != 0 || c.Quantiles[10] != 3 {
		t.Errorf("threshold %v, quantiles 0, 10, 100 = %v, %v, %v; want 15, 0, 3, 30", c.Threshold, c.Quantiles[0], c.Quantiles[10], c.Quantiles[100])
	}
	m := tinyModel()
	m.Calibration = c
	if err := m.Validate(); err != nil {
		t.Errorf("a model with a Calibrate result does not validate: %v", err)
	}
	for _, tc := range []struct {
		e    []float64
		p    float64
		want string
	}{
		{nil, 99, "no energies"},
		{[]float64{1, math.Inf(1)}, 99, "energy 1 is +Inf"},
		{[]float64{1, 2}, 101, "percentile is 101"},
		{[]float64{1, 2}, math.NaN(), "percentile is NaN"},
	} {
		if _, err := model.Calibrate(tc.e, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Calibrate(%v, %v) error = %v, want one containing %q", tc.e, tc.p, err, tc.want)
		}
	}
}
