package model

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Tolerances used by [Model.Validate].
const (
	// PhiTolerance is how far the mixture weights may sum from 1.
	PhiTolerance = 1e-6
	// SymmetryTolerance is how far Sigma[i][j] and Sigma[j][i] may differ,
	// relative to sqrt(Sigma[i][i]·Sigma[j][j]).
	SymmetryTolerance = 1e-9
	// NumQuantiles is the number of training-energy quantiles a model carries
	// (percentiles 0, 1, ..., 100).
	NumQuantiles = 101
	// MaxWidth is the largest layer size and the largest K a model may have;
	// it keeps every size product far from overflowing an int.
	MaxWidth = 1 << 20
)

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate reports the first inconsistency in m as a [*ValidationError]
// (which matches [ErrInvalid]), or nil. It checks that the feature names are
// non-empty and unique, and so are the constant features' names, whose
// values are finite; that there is one valid [Transform] per feature; that
// the layer shapes chain (encoder in = number of features, decoder in = code
// size, decoder out = number of features, GMM.Dim = code size + 2, estimator
// in = Dim and out = K), each layer has In×Out weights and Out biases, all
// finite, and known activations (the last encoder and decoder layers linear,
// the last estimator layer softmax and only there); that Phi is positive and
// sums to 1 within [PhiTolerance]; that every Sigma is symmetric and positive
// definite; that the threshold is finite and the [NumQuantiles] quantiles are
// finite and non-decreasing; that ReconWeight is finite and not negative,
// and Window in [0, MaxWindow];
// and that the provenance's numbers are finite.
func (m *Model) Validate() error {
	if m == nil {
		return invalid("model", "is nil")
	}
	if err := m.validateFeatures(); err != nil {
		return err
	}
	if err := m.validateConstant(); err != nil {
		return err
	}
	d := len(m.Features)
	code, err := validateChain("encoder", m.Encoder, d, Linear)
	if err != nil {
		return err
	}
	out, err := validateChain("decoder", m.Decoder, code, Linear)
	if err != nil {
		return err
	}
	if out != d {
		return invalid(fmt.Sprintf("decoder layer %d", len(m.Decoder)-1), "out is %d, want %d (the number of features)", out, d)
	}
	if m.GMM.Dim != code+2 {
		return invalid("gmm", "dim is %d, want %d (code size %d + 2)", m.GMM.Dim, code+2, code)
	}
	if m.GMM.K < 1 || m.GMM.K > MaxWidth {
		return invalid("gmm", "k is %d, want 1 to %d", m.GMM.K, MaxWidth)
	}
	k, err := validateChain("estimator", m.Estimator, m.GMM.Dim, Softmax)
	if err != nil {
		return err
	}
	if k < m.GMM.K {
		return invalid(fmt.Sprintf("estimator layer %d", len(m.Estimator)-1), "out is %d, want at least %d (gmm k)", k, m.GMM.K)
	}
	if _, err := m.GMM.factorize(); err != nil {
		return err
	}
	if !isFinite(m.ReconWeight) || m.ReconWeight < 0 {
		return invalid("recon_weight", "is %v, want a finite number >= 0", m.ReconWeight)
	}
	if m.Window < 0 || m.Window > MaxWindow {
		return invalid("window", "is %d, want 0 to %d", m.Window, MaxWindow)
	}
	if err := m.Calibration.validate(); err != nil {
		return err
	}
	return m.Provenance.validate()
}

func (m *Model) validateFeatures() error {
	if len(m.Features) == 0 {
		return invalid("features", "none given")
	}
	seen := make(map[string]int, len(m.Features))
	for i, f := range m.Features {
		if f == "" {
			return invalid(fmt.Sprintf("features %d", i), "name is empty")
		}
		if j, ok := seen[f]; ok {
			return invalid(fmt.Sprintf("features %d", i), "name %q repeats feature %d", f, j)
		}
		seen[f] = i
	}
	if len(m.Norm) != len(m.Features) {
		return invalid("norm", "has %d transforms, want %d (one per feature)", len(m.Norm), len(m.Features))
	}
	for i, t := range m.Norm {
		if err := t.Validate(); err != nil {
			return invalid(fmt.Sprintf("norm %d (%s)", i, m.Features[i]), "%v", err)
		}
	}
	return nil
}

// validateChain checks a stack of layers whose first input has size in and
// whose last layer has activation last; it returns the last output size.
func validateChain(name string, layers []Layer, in int, last Activation) (int, error) {
	if len(layers) == 0 {
		return 0, invalid(name, "has no layers")
	}
	for i, l := range layers {
		field := fmt.Sprintf("%s layer %d", name, i)
		if l.In != in {
			return 0, invalid(field, "in is %d, want %d (the previous output)", l.In, in)
		}
		if l.Out < 1 || l.Out > MaxWidth {
			return 0, invalid(field, "out is %d, want 1 to %d", l.Out, MaxWidth)
		}
		switch l.Activation {
		case Linear, Tanh:
			if i == len(layers)-1 && l.Activation != last {
				return 0, invalid(field, "activation is %q, want %q on the last layer", l.Activation, last)
			}
		case Softmax:
			if i != len(layers)-1 || last != Softmax {
				return 0, invalid(field, "activation %q is allowed only on the estimator's last layer", l.Activation)
			}
		default:
			return 0, invalid(field, "unknown activation %q (want linear, tanh or softmax)", l.Activation)
		}
		if len(l.W) != l.In*l.Out {
			return 0, invalid(field, "w has %d values, want %d (in %d × out %d)", len(l.W), l.In*l.Out, l.In, l.Out)
		}
		if len(l.B) != l.Out {
			return 0, invalid(field, "b has %d values, want %d (out)", len(l.B), l.Out)
		}
		for j, v := range l.W {
			if !isFinite(v) {
				return 0, invalid(field, "w[%d] (in %d, out %d) is %v", j, j/l.Out, j%l.Out, v)
			}
		}
		for j, v := range l.B {
			if !isFinite(v) {
				return 0, invalid(field, "b[%d] is %v", j, v)
			}
		}
		in = l.Out
	}
	return in, nil
}

// factorize validates g and returns the Cholesky factor of each component.
func (g *GMM) factorize() ([]mat.Cholesky, error) {
	k, dim := g.K, g.Dim
	if k < 1 || k > MaxWidth {
		return nil, invalid("gmm", "k is %d, want 1 to %d", k, MaxWidth)
	}
	if dim < 1 || dim > MaxWidth+2 {
		return nil, invalid("gmm", "dim is %d, want 1 to %d", dim, MaxWidth+2)
	}
	if len(g.Phi) != k {
		return nil, invalid("gmm phi", "has %d values, want %d (k)", len(g.Phi), k)
	}
	if len(g.Mu) != k*dim {
		return nil, invalid("gmm mu", "has %d values, want %d (k %d × dim %d)", len(g.Mu), k*dim, k, dim)
	}
	if len(g.Sigma) != k*dim*dim {
		return nil, invalid("gmm sigma", "has %d values, want %d (k %d × dim %d × dim %d)", len(g.Sigma), k*dim*dim, k, dim, dim)
	}
	sum := 0.0
	for i, p := range g.Phi {
		if !isFinite(p) || p <= 0 {
			return nil, invalid(fmt.Sprintf("gmm phi %d", i), "is %v, want a finite weight > 0", p)
		}
		sum += p
	}
	if math.Abs(sum-1) > PhiTolerance {
		return nil, invalid("gmm phi", "sums to %v, want 1 (±%g)", sum, PhiTolerance)
	}
	for i, v := range g.Mu {
		if !isFinite(v) {
			return nil, invalid(fmt.Sprintf("gmm mu %d", i/dim), "value %d is %v", i%dim, v)
		}
	}
	chols := make([]mat.Cholesky, k)
	for c := range k {
		s := g.Sigma[c*dim*dim : (c+1)*dim*dim]
		field := fmt.Sprintf("gmm sigma %d", c)
		for i, v := range s {
			if !isFinite(v) {
				return nil, invalid(field, "value (%d, %d) is %v", i/dim, i%dim, v)
			}
		}
		for i := range dim {
			if s[i*dim+i] <= 0 {
				return nil, invalid(field, "diagonal (%d, %d) is %v, want > 0: not positive definite", i, i, s[i*dim+i])
			}
		}
		for i := range dim {
			for j := range i {
				a, b := s[i*dim+j], s[j*dim+i]
				if math.Abs(a-b) > SymmetryTolerance*math.Sqrt(s[i*dim+i]*s[j*dim+j]) {
					return nil, invalid(field, "not symmetric: (%d, %d) is %v but (%d, %d) is %v", i, j, a, j, i, b)
				}
			}
		}
		if ok := chols[c].Factorize(mat.NewSymDense(dim, s)); !ok {
			return nil, invalid(field, "not positive definite (Cholesky factorisation failed)")
		}
	}
	return chols, nil
}

func (c *Calibration) validate() error {
	if !isFinite(c.Percentile) || c.Percentile < 0 || c.Percentile > 100 {
		return invalid("calibration", "percentile is %v, want a number in [0, 100]", c.Percentile)
	}
	if !isFinite(c.Threshold) {
		return invalid("calibration", "threshold is %v, want a finite number", c.Threshold)
	}
	if len(c.Quantiles) != NumQuantiles {
		return invalid("calibration quantiles", "has %d values, want %d (percentiles 0 to 100)", len(c.Quantiles), NumQuantiles)
	}
	for i, q := range c.Quantiles {
		if !isFinite(q) {
			return invalid(fmt.Sprintf("calibration quantiles %d", i), "is %v, want a finite number", q)
		}
		if i > 0 && q < c.Quantiles[i-1] {
			return invalid(fmt.Sprintf("calibration quantiles %d", i), "is %v, below quantile %d (%v): want non-decreasing", q, i-1, c.Quantiles[i-1])
		}
	}
	return nil
}

func (p *Provenance) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"learning_rate", p.LearningRate},
		{"lambda1", p.Lambda1},
		{"lambda2", p.Lambda2},
		{"dropout", p.Dropout},
		{"jitter", p.Jitter},
		{"min_component_weight", p.MinComponentWeight},
	} {
		if !isFinite(f.v) {
			return invalid("provenance "+f.name, "is %v, want a finite number", f.v)
		}
	}
	for i, l := range p.Losses {
		if !isFinite(l) {
			return invalid(fmt.Sprintf("provenance losses %d", i), "is %v, want a finite number", l)
		}
	}
	if p.RowsUsed < 0 || p.RowsExcluded < 0 || p.Epochs < 0 || p.BatchSize < 0 || p.ComponentsDropped < 0 {
		return invalid("provenance", "negative count (rows_used %d, rows_excluded %d, epochs %d, batch_size %d, components_dropped %d)",
			p.RowsUsed, p.RowsExcluded, p.Epochs, p.BatchSize, p.ComponentsDropped)
	}
	return nil
}

// CodeSize returns the size of the compression network's code z_c (the last
// encoder layer's Out), or 0 when m has no encoder.
func (m *Model) CodeSize() int {
	if len(m.Encoder) == 0 {
		return 0
	}
	return m.Encoder[len(m.Encoder)-1].Out
}

// Clone returns a deep copy of m: changing one does not change the other.
func (m *Model) Clone() *Model {
	c := *m
	c.Features = slices.Clone(m.Features)
	c.Norm = slices.Clone(m.Norm)
	c.Constant = slices.Clone(m.Constant)
	c.Encoder = cloneLayers(m.Encoder)
	c.Decoder = cloneLayers(m.Decoder)
	c.Estimator = cloneLayers(m.Estimator)
	c.GMM.Phi = slices.Clone(m.GMM.Phi)
	c.GMM.Mu = slices.Clone(m.GMM.Mu)
	c.GMM.Sigma = slices.Clone(m.GMM.Sigma)
	c.Calibration.Quantiles = slices.Clone(m.Calibration.Quantiles)
	c.Provenance.Losses = slices.Clone(m.Provenance.Losses)
	return &c
}

func cloneLayers(ls []Layer) []Layer {
	out := slices.Clone(ls)
	for i := range out {
		out[i].W = slices.Clone(ls[i].W)
		out[i].B = slices.Clone(ls[i].B)
	}
	return out
}
