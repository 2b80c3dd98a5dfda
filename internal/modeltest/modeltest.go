// Package modeltest builds random but valid DAGMM models and inputs for the
// tests and benchmarks of other packages. Everything is drawn from a seeded
// PCG source, so the same arguments always give the same model.
package modeltest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/dagmm/dagmm/model"
)

// Metrics4Features are the four host metrics of the seed's experiment.
var Metrics4Features = []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

// Metrics4 returns a random model of the four-metric architecture: features
// [Metrics4Features], encoder 4-16-8-1 and its mirror, estimator 3-10-4, K=4.
func Metrics4(seed uint64) *model.Model {
	return NewRandom(Metrics4Features, []int{16, 8, 1}, []int{10}, 4, seed)
}

// KDDCup returns a random model of the KDDCUP99 architecture of the DAGMM
// paper: 118 features, encoder 118-60-30-10-1 and its mirror, estimator
// 3-10-4, K=4.
func KDDCup(seed uint64) *model.Model {
	return NewRandom(Names("f", 118), []int{60, 30, 10, 1}, []int{10}, 4, seed)
}

// Names returns n feature names prefix0, prefix1, ...
func Names(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return names
}

// NewRandom returns a valid model with the given features, an encoder with
// the given layer sizes after the input (the last is the code size; tanh on
// all but the last, which is linear), the mirror decoder back to
// len(features), an estimator from code size + 2 through the given hidden
// sizes (tanh) to k (softmax), and a k-component mixture. Weights are
// Glorot-uniform; normalisations cycle through zscore, minmax, none and log;
// the calibration comes from scoring 1000 samples of [Inputs], with the
// threshold at the 99th percentile. It panics if the arguments cannot make a
// valid model (no features, an empty encoder, a size or k below 1).
func NewRandom(features []string, encoder []int, estimator []int, k int, seed uint64) *model.Model {
	if len(features) == 0 || len(encoder) == 0 || k < 1 {
		panic(fmt.Sprintf("modeltest: cannot build a model with %d features, encoder %v, k %d", len(features), encoder, k))
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := len(features)
	m := &model.Model{Features: append([]string(nil), features...)}
	kinds := []model.NormKind{model.NormZScore, model.NormMinMax, model.NormNone, model.NormLog}
	for i := range d {
		t := model.Transform{Kind: kinds[i%len(kinds)], Offset: 0, Scale: 1}
		switch t.Kind {
		case model.NormZScore, model.NormLog:
			t.Offset, t.Scale = rng.NormFloat64(), 0.5+rng.Float64()*2
		case model.NormMinMax:
			t.Offset, t.Scale = rng.Float64()*10, 1+rng.Float64()*100
		}
		m.Norm = append(m.Norm, t)
	}
	sizes := append([]int{d}, encoder...)
	m.Encoder = chain(rng, sizes, model.Linear)
	mirror := make([]int, len(sizes))
	for i, s := range sizes {
		mirror[len(sizes)-1-i] = s
	}
	m.Decoder = chain(rng, mirror, model.Linear)
	code := encoder[len(encoder)-1]
	dim := code + 2
	m.Estimator = chain(rng, append(append([]int{dim}, estimator...), k), model.Softmax)
	m.GMM = randomGMM(rng, k, dim)
	// A provisional calibration makes the model valid; the real one comes
	// from its own energies.
	m.Calibration = model.Calibration{Percentile: 99, Quantiles: make([]float64, model.NumQuantiles)}
	m.Provenance = model.Provenance{Seed: seed, Epochs: 1, BatchSize: 1024, LearningRate: 1e-4, Lambda1: 0.1, Lambda2: 0.005, Jitter: 1e-6, DType: "float64", ProjectVersion: "modeltest"}
	s, err := model.NewScorer(m)
	if err != nil {
		panic(fmt.Sprintf("modeltest: built an invalid model: %v", err))
	}
	const n = 1000
	x := Inputs(m, n, seed+1)
	ws := s.NewWorkspace(n)
	out := make([]model.Result, n)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		panic(fmt.Sprintf("modeltest: scoring the calibration inputs: %v", err))
	}
	energies := make([]float64, n)
	for i, r := range out {
		energies[i] = r.Energy
	}
	if m.Calibration, err = model.Calibrate(energies, 99); err != nil {
		panic(fmt.Sprintf("modeltest: calibrating: %v", err))
	}
	return m
}

// chain returns fully connected layers through the given sizes: tanh on all
// but the last, which gets activation last.
func chain(rng *rand.Rand, sizes []int, last model.Activation) []model.Layer {
	layers := make([]model.Layer, 0, len(sizes)-1)
	for i := 0; i+1 < len(sizes); i++ {
		in, out := sizes[i], sizes[i+1]
		if in < 1 || out < 1 {
			panic(fmt.Sprintf("modeltest: layer size below 1 in %v", sizes))
		}
		act := model.Tanh
		if i+2 == len(sizes) {
			act = last
		}
		limit := math.Sqrt(6 / float64(in+out))
		l := model.Layer{In: in, Out: out, Activation: act, W: make([]float64, in*out), B: make([]float64, out)}
		for j := range l.W {
			l.W[j] = (2*rng.Float64() - 1) * limit
		}
		for j := range l.B {
			l.B[j] = 0.1 * rng.NormFloat64()
		}
		layers = append(layers, l)
	}
	return layers
}

// randomGMM returns k components with weights from a flat Dirichlet, means
// near the origin and covariances AAᵀ/dim + 0.1·I (positive definite).
func randomGMM(rng *rand.Rand, k, dim int) model.GMM {
	g := model.GMM{K: k, Dim: dim, Phi: make([]float64, k), Mu: make([]float64, k*dim), Sigma: make([]float64, k*dim*dim)}
	sum := 0.0
	for c := range k {
		g.Phi[c] = 0.05 + rng.ExpFloat64()
		sum += g.Phi[c]
	}
	for c := range k {
		g.Phi[c] /= sum
	}
	for i := range g.Mu {
		g.Mu[i] = 0.5 * rng.NormFloat64()
	}
	a := make([]float64, dim*dim)
	for c := range k {
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		s := g.Sigma[c*dim*dim : (c+1)*dim*dim]
		for i := range dim {
			for j := range dim {
				v := 0.0
				for l := range dim {
					v += a[i*dim+l] * a[j*dim+l]
				}
				s[i*dim+j] = v / float64(dim)
			}
			s[i*dim+i] += 0.1
		}
	}
	return g
}

// Inputs returns n samples for m, row-major (n×len(m.Features)), in raw
// units: a standard normal draw per feature passed through the inverse of the
// feature's normalisation, so that the network sees values of the size it
// was built for.
func Inputs(m *model.Model, n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, seed^0xda942042e4dd58b5))
	d := len(m.Features)
	x := make([]float64, n*d)
	for i := range x {
		x[i] = m.Norm[i%d].Invert(rng.NormFloat64())
	}
	return x
}

// MaxSizeBody returns a valid POST /v1/score body, a JSON batch of n
// samples of m's features drawn with [Inputs], padded to at most size bytes
// by hosts as long as a host may be (255 bytes) and blanks between a
// sample's members: the heaviest body a size limit lets through. It returns
// an error when n samples do not fit in size bytes.
func MaxSizeBody(m *model.Model, n, size int) ([]byte, error) {
	x := Inputs(m, n, 1)
	enc := func(host string, blanks int) []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"host":%q,"ts":"2026-11-24T10:00:00Z",%s"values":{`, host, strings.Repeat(" ", blanks))
			for j, f := range m.Features {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%q:%v", f, x[i*len(m.Features)+j])
			}
			b.WriteString("}}")
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	pad := (size - len(enc("", 0))) / n
	if pad < 1 {
		return nil, fmt.Errorf("modeltest: %d samples take more than %d bytes", n, size)
	}
	host := min(pad, 255)
	return enc(strings.Repeat("h", host), pad-host), nil
}
