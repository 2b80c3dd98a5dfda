package model_test

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"github.com/dagmm/dagmm/model"
)

// tinyModel is a hand-made model: two features (one zscore, one log), encoder
// 2-3-1, decoder 1-3-2, estimator 3-2, K=2.
func tinyModel() *model.Model {
	quantiles := make([]float64, model.NumQuantiles)
	for i := range quantiles {
		quantiles[i] = -1 + 0.05*float64(i)
	}
	return &model.Model{
		Features: []string{"cpu_usage", "net_in_bps"},
		Norm: []model.Transform{
			{Kind: model.NormZScore, Offset: 40, Scale: 12.5},
			{Kind: model.NormLog, Offset: 13.2, Scale: 1.75},
		},
		Encoder: []model.Layer{
			{In: 2, Out: 3, Activation: model.Tanh,
				W: []float64{0.5, -0.25, 0.75, -0.5, 1.25, 0.125},
				B: []float64{0.1, -0.2, 0.05}},
			{In: 3, Out: 1, Activation: model.Linear,
				W: []float64{0.8, -0.6, 0.4},
				B: []float64{0.01}},
		},
		Decoder: []model.Layer{
			{In: 1, Out: 3, Activation: model.Tanh,
				W: []float64{0.9, -0.7, 0.3},
				B: []float64{-0.05, 0.15, 0.02}},
			{In: 3, Out: 2, Activation: model.Linear,
				W: []float64{1.1, -0.4, -0.9, 0.6, 0.35, 1.05},
				B: []float64{0.02, -0.03}},
		},
		Estimator: []model.Layer{
			{In: 3, Out: 2, Activation: model.Softmax,
				W: []float64{0.3, -0.3, 1.5, -1.5, 0.7, 0.2},
				B: []float64{0, 0.1}},
		},
		GMM: model.GMM{
			K: 2, Dim: 3,
			Phi: []float64{0.625, 0.375},
			Mu:  []float64{0.2, 0.1, 0.9, -0.4, 0.6, 0.7},
			Sigma: []float64{
				0.5, 0.1, -0.05,
				0.1, 0.3, 0.02,
				-0.05, 0.02, 0.2,

				0.8, -0.2, 0.1,
				-0.2, 0.6, 0,
				0.1, 0, 0.4,
			},
		},
		Calibration: model.Calibration{Percentile: 99, Threshold: quantiles[99], Quantiles: quantiles},
		Provenance: model.Provenance{
			Input: "metrics.parquet", InputSHA256: "00ff", RowsUsed: 998, RowsExcluded: 2,
			Seed: 42, Epochs: 3, BatchSize: 128, LearningRate: 1e-4, Lambda1: 0.1, Lambda2: 0.005,
			Dropout: 0.5, Jitter: 1e-6, DType: "float64", Losses: []float64{1.5, 0.75, 0.5}, ProjectVersion: "test",
		},
	}
}

// tinySamples are raw samples for tinyModel: ordinary ones, a far one, and
// zeros and negatives (the log transform's odd branch). The first normalises
// to nearly the zero vector, where rel = ‖x − x'‖ / (‖x‖ + ε) is huge: the
// case DistanceEpsilon is there for.
var tinySamples = [][]float64{
	{40, 540000},
	{55.5, 1.2e6},
	{12, 30000},
	{99, 5e3},
	{0, 0},
	{-3, -250},
	{250, 1e12},
	{41.25, 612345.5},
}

// reference is a slow, obviously correct DAGMM forward pass written
// independently of the scorer: gonum mat for the layers, the Gaussian
// densities from an LU inverse and determinant (the scorer uses Cholesky and
// forward substitution), and floats.LogSumExp for the mixture. (gonum's
// stat/distmv would pull golang.org/x/tools into go.sum for its Student's t.)
type reference struct {
	energy   float64
	z        []float64
	expected []float64
	share    []float64
}

func refScore(t testing.TB, m *model.Model, x []float64) reference {
	t.Helper()
	d := len(m.Features)
	xn := make([]float64, d)
	for j, v := range x {
		tr := m.Norm[j]
		if tr.Kind == model.NormLog || tr.Kind == model.NormLogMinSD {
			v = math.Copysign(math.Log1p(math.Abs(v)), v)
		}
		xn[j] = (v - tr.Offset) / tr.Scale
	}
	code := refLayers(m.Encoder, xn)
	xr := refLayers(m.Decoder, code)
	diff := make([]float64, d)
	floats.SubTo(diff, xn, xr)
	nx, nr := floats.Norm(xn, 2), floats.Norm(xr, 2)
	rel := floats.Norm(diff, 2) / (nx + model.DistanceEpsilon)
	cos := floats.Dot(xn, xr) / (nx*nr + model.DistanceEpsilon)
	z := append(append([]float64(nil), code...), rel, cos)

	g := m.GMM
	logp := make([]float64, g.K)
	for k := range g.K {
		sigma := mat.NewDense(g.Dim, g.Dim, append([]float64(nil), g.Sigma[k*g.Dim*g.Dim:(k+1)*g.Dim*g.Dim]...))
		var inv mat.Dense
		if err := inv.Inverse(sigma); err != nil {
			t.Fatalf("reference: sigma %d: %v", k, err)
		}
		logDet, sign := mat.LogDet(sigma)
		if sign <= 0 {
			t.Fatalf("reference: sigma %d has determinant sign %v", k, sign)
		}
		dz := mat.NewVecDense(g.Dim, nil)
		dz.SubVec(mat.NewVecDense(g.Dim, z), mat.NewVecDense(g.Dim, g.Mu[k*g.Dim:(k+1)*g.Dim]))
		quad := mat.Inner(dz, &inv, dz)
		logp[k] = math.Log(g.Phi[k]) - 0.5*quad - 0.5*(float64(g.Dim)*math.Log(2*math.Pi)+logDet)
	}
	total := floats.Dot(diff, diff)
	r := reference{energy: -floats.LogSumExp(logp) + m.ReconWeight*total, z: z, expected: make([]float64, d), share: make([]float64, d)}
	for j := range d {
		tr := m.Norm[j]
		v := xr[j]*tr.Scale + tr.Offset
		if tr.Kind == model.NormLog || tr.Kind == model.NormLogMinSD {
			v = math.Copysign(math.Expm1(math.Abs(v)), v)
		}
		r.expected[j] = v
		r.share[j] = diff[j] * diff[j] / total
	}
	return r
}

func refLayers(layers []model.Layer, x []float64) []float64 {
	v := mat.NewDense(1, len(x), append([]float64(nil), x...))
	for _, l := range layers {
		var out mat.Dense
		out.Mul(v, mat.NewDense(l.In, l.Out, l.W))
		out.Apply(func(_, j int, s float64) float64 {
			s += l.B[j]
			if l.Activation == model.Tanh {
				s = math.Tanh(s)
			}
			return s
		}, &out)
		v = &out
	}
	return mat.Row(nil, 0, v)
}
