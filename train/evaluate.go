package train

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// evalChunk is the most rows the evaluation graph takes at once.
const evalChunk = 4096

// Outputs holds a model's forward pass over n rows, computed by a float64
// Gorgonia graph with dropout off.
type Outputs struct {
	// Recon holds the reconstructions, n×d row-major, in normalised units.
	Recon []float64
	// Z holds the estimation inputs [z_c, rel, cos], n×(code+2).
	Z []float64
	// Gamma holds the estimation network's memberships, n×(its outputs),
	// which can be more than the mixture's K (Config.MinComponentWeight).
	Gamma []float64
	// Energy holds the sample energies under the model's mixture.
	Energy []float64
}

// Forward runs the rows x (raw values, row-major n×len(m.Features)) through
// m in a float64 Gorgonia graph with dropout off: normalisation,
// compression network, z, estimation network, and the energy under m's
// mixture (from Gorgonia primitives, [BatchedInverse] and [BatchedLogDet]).
// It is an independent check on the pure-Go scorer, not a fast path.
func Forward(m *model.Model, x []float64) (*Outputs, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("train: forward: %w", err)
	}
	d := len(m.Features)
	if len(x) == 0 || len(x)%d != 0 {
		return nil, fmt.Errorf("%w: forward: %d values do not make whole rows of %d features", ErrInput, len(x), d)
	}
	n := len(x) / d
	for i, v := range x {
		if !isFinite(v) {
			return nil, fmt.Errorf("%w: forward: row %d, column %q: value is %v", ErrInput, i/d, m.Features[i%d], v)
		}
	}
	xn := make([]float64, len(x))
	normalise(xn, x, m.Norm)
	return forwardNormalised(m, &m.GMM, xn, n)
}

// Energies returns the energy of each row of x (raw values, row-major
// n×len(m.Features)) under m, computed by the Gorgonia graph of [Forward].
func Energies(m *model.Model, x []float64) ([]float64, error) {
	out, err := Forward(m, x)
	if err != nil {
		return nil, err
	}
	return out.Energy, nil
}

// forwardNormalised runs the normalised rows xn (n×d) through m's networks
// and the energy under gmm, chunk by chunk; with gmm nil it leaves the
// energies out (Outputs.Energy nil).
func forwardNormalised(m *model.Model, gmm *model.GMM, xn []float64, n int) (*Outputs, error) {
	d := len(m.Features)
	chunk := min(n, evalChunk)
	eg, err := buildEvalGraph(m, gmm, chunk)
	if err != nil {
		return nil, err
	}
	defer eg.vm.Close()
	dim, k := m.CodeSize()+2, m.Estimator[len(m.Estimator)-1].Out
	out := &Outputs{
		Recon: make([]float64, n*d),
		Z:     make([]float64, n*dim),
		Gamma: make([]float64, n*k),
	}
	if gmm != nil {
		out.Energy = make([]float64, n)
	}
	buf := make([]float64, chunk*d)
	recon := make([]float64, chunk*d)
	z := make([]float64, chunk*dim)
	gamma := make([]float64, chunk*k)
	energy := make([]float64, chunk)
	for lo := 0; lo < n; lo += chunk {
		rows := min(chunk, n-lo)
		copy(buf, xn[lo*d:(lo+rows)*d])
		for r := rows; r < chunk; r++ { // pad the last chunk with its last row
			copy(buf[r*d:(r+1)*d], xn[(lo+rows-1)*d:(lo+rows)*d])
		}
		setFloats(eg.xVal, buf)
		err := eg.vm.RunAll()
		eg.vm.Reset()
		if err != nil {
			return nil, fmt.Errorf("train: forward pass over rows %d to %d: %w", lo, lo+rows-1, err)
		}
		for _, p := range []struct {
			dst []float64
			v   G.Value
		}{{recon, eg.xrV}, {z, eg.zV}, {gamma, eg.gammaV}} {
			if err := getFloats(p.dst, p.v); err != nil {
				return nil, err
			}
		}
		copy(out.Recon[lo*d:], recon[:rows*d])
		copy(out.Z[lo*dim:], z[:rows*dim])
		copy(out.Gamma[lo*k:], gamma[:rows*k])
		if gmm != nil {
			if err := getFloats(energy, eg.eV); err != nil {
				return nil, err
			}
			copy(out.Energy[lo:], energy[:rows])
		}
	}
	if gmm != nil {
		addRecon(out.Energy, m.ReconWeight, xn, out.Recon, d)
	}
	return out, nil
}

// addRecon adds w·‖x − x'‖² to each row's energy in e, for the normalised
// rows xn and their reconstructions xr (both n×d): the sample energy of a
// model with [model.Model.ReconWeight] w. With w = 0 it leaves e alone.
func addRecon(e []float64, w float64, xn, xr []float64, d int) {
	if w == 0 {
		return
	}
	for i := range e {
		sdd := 0.0
		for j := i * d; j < (i+1)*d; j++ {
			diff := xn[j] - xr[j]
			sdd += diff * diff
		}
		e[i] += w * sdd
	}
}

// evalGraph is a model's forward pass over a fixed number of rows.
type evalGraph struct {
	vm                  G.VM
	xVal                *tensor.Dense
	xrV, zV, gammaV, eV G.Value
}

// buildEvalGraph builds the float64 forward graph of m with the mixture gmm
// for chunk rows; with gmm nil, without the energy.
func buildEvalGraph(m *model.Model, gmm *model.GMM, chunk int) (*evalGraph, error) {
	g := G.NewGraph()
	dt := tensor.Float64
	d := len(m.Features)
	eg := &evalGraph{xVal: newTensor(dt, chunk, d)}
	x := G.NewMatrix(g, dt, G.WithShape(chunk, d), G.WithName("x"), G.WithValue(eg.xVal))
	layer := func(h *G.Node, name string, l *model.Layer) (*G.Node, error) {
		w := dense(slices.Clone(l.W), l.In, l.Out)
		b := dense(slices.Clone(l.B), l.Out)
		wn := G.NewMatrix(g, dt, G.WithShape(l.In, l.Out), G.WithName("w"+name), G.WithValue(w))
		bn := G.NewVector(g, dt, G.WithShape(l.Out), G.WithName("b"+name), G.WithValue(b))
		return denseLayer(h, wn, bn, nil, l.Activation, false)
	}
	var err error
	h := x
	for i := range m.Encoder {
		if h, err = layer(h, fmt.Sprint("enc", i), &m.Encoder[i]); err != nil {
			return nil, err
		}
	}
	zc := h
	for i := range m.Decoder {
		if h, err = layer(h, fmt.Sprint("dec", i), &m.Decoder[i]); err != nil {
			return nil, err
		}
	}
	xr := h
	z, err := estimationInput(x, zc, xr)
	if err != nil {
		return nil, err
	}
	h = z
	for i := range m.Estimator {
		if h, err = layer(h, fmt.Sprint("est", i), &m.Estimator[i]); err != nil {
			return nil, err
		}
	}
	gamma := h
	G.Read(xr, &eg.xrV)
	G.Read(z, &eg.zV)
	G.Read(gamma, &eg.gammaV)
	if gmm == nil {
		eg.vm = G.NewTapeMachine(g)
		return eg, nil
	}
	k, dim := gmm.K, gmm.Dim
	phi := G.NewVector(g, dt, G.WithShape(k), G.WithName("phi"), G.WithValue(dense(slices.Clone(gmm.Phi), k)))
	mu := G.NewMatrix(g, dt, G.WithShape(k, dim), G.WithName("mu"), G.WithValue(dense(slices.Clone(gmm.Mu), k, dim)))
	sigma := G.NewTensor(g, dt, 3, G.WithShape(k, dim, dim), G.WithName("sigma"), G.WithValue(dense(slices.Clone(gmm.Sigma), k, dim, dim)))
	prec, err := BatchedInverse(sigma)
	if err != nil {
		return nil, err
	}
	logdet, err := BatchedLogDet(sigma)
	if err != nil {
		return nil, err
	}
	energy, err := mixtureEnergy(z, phi, mu, prec, logdet)
	if err != nil {
		return nil, err
	}
	G.Read(energy, &eg.eV)
	eg.vm = G.NewTapeMachine(g)
	return eg, nil
}

// calibrate fits m's mixture on all normalised training rows xn (dropout
// off), drops the components lighter than cfg.MinComponentWeight, computes
// the rows' sample energies under what is left (with m.ReconWeight's
// reconstruction term) and their scores (m.Window), and sets the threshold
// at cfg.Percentile of the energies.
func calibrate(m *model.Model, xn []float64, cfg *Config, rep *Report) error {
	d := len(m.Features)
	n := len(xn) / d
	k := m.Estimator[len(m.Estimator)-1].Out
	dim := m.CodeSize() + 2
	out, err := forwardNormalised(m, nil, xn, n) // z and gamma; the mixture comes from them
	if err != nil {
		return err
	}
	var st gmmState
	st.setup(n, dim, k, cfg.Jitter)
	copy(st.z, out.Z)
	copy(st.gamma, out.Gamma)
	if err := st.forward(); err != nil {
		return fmt.Errorf("%w after the last epoch: the mixture fitted on all rows is degenerate (%w): try a larger jitter", ErrDiverged, err)
	}
	full := model.GMM{K: k, Dim: dim, Phi: slices.Clone(st.phi), Mu: slices.Clone(st.mu), Sigma: slices.Clone(st.sigma)}
	var dropped int
	m.GMM, dropped = dropLightComponents(full, cfg.MinComponentWeight)
	m.Provenance.MinComponentWeight = cfg.MinComponentWeight
	m.Provenance.ComponentsDropped = dropped
	energies := slices.Clone(st.energy)
	if dropped > 0 {
		if energies, err = mixtureEnergies(m.GMM, out.Z, n); err != nil {
			return err
		}
	}
	addRecon(energies, m.ReconWeight, xn, out.Recon, d)
	// The threshold is a percentile of the energies, not of the window
	// scores: a window only ever raises a sample's score, and the scores of
	// a window's neighbours move together, which would push the percentile
	// up (own-threshold F1 on the six SMD machines: 0.27 against 0.36).
	cal, err := model.Calibrate(energies, cfg.Percentile)
	if err != nil {
		return fmt.Errorf("train: calibrate the threshold: %w", err)
	}
	m.Calibration = cal
	rep.Energies = energies
	return nil
}

// dropLightComponents returns g without the components whose weight is below
// minWeight (the heaviest is always kept), the others' weights renormalised,
// and how many it dropped.
func dropLightComponents(g model.GMM, minWeight float64) (model.GMM, int) {
	heaviest := 0
	for c, p := range g.Phi {
		if p > g.Phi[heaviest] {
			heaviest = c
		}
	}
	out := model.GMM{Dim: g.Dim}
	dd := g.Dim * g.Dim
	total := 0.0
	for c, p := range g.Phi {
		if p < minWeight && c != heaviest {
			continue
		}
		out.K++
		out.Phi = append(out.Phi, p)
		out.Mu = append(out.Mu, g.Mu[c*g.Dim:(c+1)*g.Dim]...)
		out.Sigma = append(out.Sigma, g.Sigma[c*dd:(c+1)*dd]...)
		total += p
	}
	for c := range out.Phi {
		out.Phi[c] /= total
	}
	return out, g.K - out.K
}

// mixtureEnergies returns the energy of each of the n rows of z under g.
func mixtureEnergies(g model.GMM, z []float64, n int) ([]float64, error) {
	mx, err := model.NewMixture(g)
	if err != nil {
		return nil, fmt.Errorf("train: the mixture without its light components: %w", err)
	}
	e := make([]float64, n)
	for i := range e {
		if e[i], err = mx.Energy(z[i*g.Dim : (i+1)*g.Dim]); err != nil {
			return nil, fmt.Errorf("train: energy of row %d: %w", i, err)
		}
	}
	return e, nil
}
