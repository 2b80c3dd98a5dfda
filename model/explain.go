package model

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Method names a way of attributing a sample's anomaly to its features. The
// package documentation ("Explanations") gives the formulas, and
// docs/explanations.md how often each names the feature an anomaly broke.
type Method string

// Explanation methods. The zero Method means [Scorer.DefaultMethod].
//
// Most of them replace feature j of the normalised sample x by its
// reconstruction x'_j, or integrate along the straight line from x' to x,
// and measure one of two targets: the squared reconstruction error
// ‖x − x'‖² (which broken correlations raise most directly) or the energy
// E. Costs are given in forward passes of one sample; a pass costs about
// what scoring one sample in a batch does (docs/explanations.md has the
// measured figures).
const (
	// MethodRepair (the default for up to [RepairMaxFeatures] features): the
	// drop in squared reconstruction error when feature j alone is replaced
	// by x'_j, a counterfactual on the reconstruction error. One pass per
	// feature, and two more for the expected values.
	MethodRepair Method = "repair"
	// MethodRepairGradient (the default for wider models): integrated
	// gradients of the squared reconstruction error with respect to the
	// normalised input, from x' to x, in [RepairGradientSteps] steps. About
	// six passes whatever the number of features.
	MethodRepairGradient Method = "repair-gradient"
	// MethodCounterfactual: the drop in energy when feature j alone is
	// replaced by x'_j. One pass per feature, and two more.
	MethodCounterfactual Method = "counterfactual"
	// MethodGradient: integrated gradients of the energy, from x' to x, in
	// [GradientSteps] steps, with an analytic backward pass through the
	// mixture, z = [z_c, rel, cos] and the compression network.
	MethodGradient Method = "gradient"
	// MethodShare: each feature's share of the squared reconstruction
	// error, (x_j − x'_j)² / ‖x − x'‖², the values [Result.Share] holds.
	// No pass.
	MethodShare Method = "share"
	// MethodSearch: the smallest set of features (one, or two) whose values,
	// chosen to make the sample as normal as the model allows, explain the
	// anomaly. For each feature, and each pair among the four best, it
	// searches the values normal samples span for the lowest energy; a
	// pair takes the anomaly when it lowers the energy clearly more than
	// the best single feature ([SearchPairMargin]). The only method that
	// names both features of a two-feature anomaly well; a few hundred
	// passes for four features, growing with their number.
	MethodSearch Method = "search"
	// MethodRepairSearch: [MethodRepair], then [MethodSearch] when the
	// repair explanation is not resolved ([Explanation.Resolved]): the cost
	// of repair for most one-feature anomalies, the search for the rest.
	// The explanation's Method says which one answered.
	MethodRepairSearch Method = "repair-search"
	// MethodRecent: each feature's squared reconstruction error
	// (x_j − x'_j)², in units of the feature's training spread
	// ([Transform.Spread]; in normalised units for models without it), in
	// the sample or averaged over the sample and its series' samples before
	// it (up to [RecentWindow] samples in all), whichever is larger: the
	// features the model has failed to reconstruct most, for what they
	// usually vary, over the host's last samples. [Scorer.ExplainRecent]
	// takes the series' earlier samples as a [Recent]; [Scorer.Explain] has
	// none and ranks by the sample alone (as [MethodShare] does, for a
	// model without spreads). The default for a series (measured on real
	// server metrics, docs/real-metrics.md); no pass.
	MethodRecent Method = "recent"
)

// Integrated-gradients steps (midpoint rule) of [MethodGradient] and
// [MethodRepairGradient]. The energy bends more along the path than the
// reconstruction error, so it takes more steps (docs/explanations.md).
const (
	GradientSteps       = 4 // steps of MethodGradient
	RepairGradientSteps = 2 // steps of MethodRepairGradient
)

// RepairMaxFeatures is the largest number of features for which
// [Scorer.DefaultMethod] is [MethodRepair], whose cost grows with the
// number of features; above it the default is [MethodRepairGradient],
// whose cost does not.
const RepairMaxFeatures = 5

// Methods returns every explanation method.
func Methods() []Method {
	return []Method{MethodRepair, MethodRepairGradient, MethodCounterfactual, MethodGradient, MethodShare, MethodSearch, MethodRepairSearch, MethodRecent}
}

// ParseMethod returns the Method named s (case-insensitive): one of
// [Methods], or "" or "default" for the zero Method (the scorer's default).
func ParseMethod(s string) (Method, error) {
	switch m := Method(strings.ToLower(strings.TrimSpace(s))); m {
	case "", "default":
		return "", nil
	case MethodShare, MethodRepair, MethodCounterfactual, MethodGradient, MethodRepairGradient, MethodSearch, MethodRepairSearch, MethodRecent:
		return m, nil
	}
	return "", fmt.Errorf("model: unknown explanation method %q (want one of %v)", s, Methods())
}

// String returns the method's name.
func (m Method) String() string { return string(m) }

// DefaultMethod returns the method [Scorer.Explain] uses for the zero
// Method, chosen by measurement (docs/explanations.md): [MethodRepair] for
// models of at most [RepairMaxFeatures] features, [MethodRepairGradient]
// for wider ones, so that an explanation costs at most about six passes.
func (s *Scorer) DefaultMethod() Method {
	if s.d <= RepairMaxFeatures {
		return MethodRepair
	}
	return MethodRepairGradient
}

// Contribution is one feature's part in an anomaly.
type Contribution struct {
	// Feature is the feature's name and Index its position in the model's
	// feature order.
	Feature string
	Index   int
	// Actual is the sample's value, in the feature's own units.
	Actual float64
	// Expected is what the model considers normal for this feature in this
	// sample, in the feature's own units. For the features that explain the
	// anomaly (the first [Explanation.Set]) it is their repaired value: the
	// value at which the network would reconstruct the feature as itself,
	// the other features unchanged (two secant steps from x_j and x'_j), or
	// for [MethodSearch] the value that makes the sample most normal. For
	// the others it is their reconstruction once those are repaired, so
	// that a broken feature does not drag them along. [MethodShare] gives
	// the plain reconstruction, as in [Result.Expected].
	Expected float64
	// Share is the feature's share of the anomaly: non-negative, the shares
	// of a sample summing to 1. It is the positive part of Attribution over
	// the sum of the positive parts (1/d each when no attribution is
	// positive).
	Share float64
	// Attribution is the method's raw score: a drop or an integrated
	// gradient of the squared normalised reconstruction error
	// ([MethodRepair], [MethodRepairGradient]) or of the energy
	// ([MethodCounterfactual], [MethodGradient], [MethodSearch]), which may
	// be negative (that feature alone makes the sample look more normal);
	// the share itself for [MethodShare]. Drops of different features are
	// alternatives, not parts of a sum.
	Attribution float64
}

// Explanation says which features make a sample anomalous.
type Explanation struct {
	// Method is the method that produced the explanation (never empty; for
	// [MethodRepairSearch], repair or search).
	Method Method
	// Energy is the sample's energy, as in its [Result].
	Energy float64
	// Features holds one [Contribution] per feature, largest share first;
	// equal shares keep the model's feature order.
	Features []Contribution
	// Set is the number of leading Features that explain the anomaly: the
	// top-ranked one, or the two that [MethodSearch] found together; 0
	// when no attribution is positive, and for [MethodShare], which does
	// not check.
	Set int
	// RepairedEnergy is the energy of the sample with the Set features at
	// their expected values (the others unchanged), and Resolved reports
	// RepairedEnergy ≤ the threshold: the explanation accounts for the
	// anomaly. An unresolved explanation of an anomaly suggests more
	// broken features than Set; [MethodSearch] may then do better.
	// RepairedEnergy equals Energy when Set is 0.
	RepairedEnergy float64
	Resolved       bool
}

// Top returns the highest-ranked contribution, or the zero Contribution when
// e has none.
func (e *Explanation) Top() Contribution {
	if len(e.Features) == 0 {
		return Contribution{}
	}
	return e.Features[0]
}

// explainScratch is the memory one explanation needs, kept in a Workspace.
type explainScratch struct {
	xn, xr, xc []float64 // d: the sample normalised, its reconstruction, a modified sample
	acts       []float64 // the layer outputs of one pass
	z          []float64 // dim
	gz         []float64 // dim: ∂E/∂z
	mix        []float64 // k·dim + dim + k: mixture scratch
	ga, gb     []float64 // width: gradients flowing back
	gx, acc    []float64 // d: the gradient of one pass; their sum
	attr       []float64 // d: raw attributions
	expected   []float64 // d: normalised expected values
	g1         []float64 // d: g(x'_j) = x'_j(x with x_j = x'_j) − x'_j, for the second secant step
	order      []int     // d: feature indexes
	inSet      []bool    // d: the features that explain the anomaly
	repaired   float64   // the energy with them at their expected values
	pre0       []float64 // the first layer's pre-activation of the sample
}

func (s *Scorer) newExplainScratch() *explainScratch {
	d, dim, k, w := s.d, s.dim, s.mix.k, s.width
	n := 0
	for _, l := range s.enc {
		n += l.out
	}
	for _, l := range s.dec {
		n += l.out
	}
	return &explainScratch{
		xn: make([]float64, d), xr: make([]float64, d), xc: make([]float64, d),
		acts: make([]float64, n),
		z:    make([]float64, dim), gz: make([]float64, dim),
		mix: make([]float64, k*dim+dim+k),
		ga:  make([]float64, w), gb: make([]float64, w),
		gx: make([]float64, d), acc: make([]float64, d),
		attr: make([]float64, d), expected: make([]float64, d), g1: make([]float64, d),
		order: make([]int, d), inSet: make([]bool, d),
		pre0: make([]float64, s.enc[0].out),
	}
}

// Explain explains sample i of the last batch scored with ws: for each
// feature its actual value, its expected value and its share of the
// anomaly, ranked, computed with method (the zero Method means
// [Scorer.DefaultMethod]). It writes into dst, reusing dst.Features'
// memory: explaining into the same dst with the same ws again does not
// allocate (the first call allocates the d contributions, and ws's
// explainers' scratch the first time ws explains).
//
// ScoreBatch does no work for explanations; Explain costs from none to a
// few forward passes of one sample, a few hundred for [MethodSearch] (see
// [Method]), so call it for the samples you report, typically those with
// Result.Anomaly set. It uses ws's scratch
// memory but leaves the batch's results intact: the results and Explain may
// be used in any order until ws scores its next batch. It is safe for
// concurrent use with other workspaces, not with ws.
//
// It returns an [*InputError] when ws is nil or belongs to another Scorer
// or when i is not a sample of the last batch, and an error naming the
// method when method is unknown.
func (s *Scorer) Explain(ws *Workspace, i int, method Method, dst *Explanation) error {
	if ws == nil || ws.s != s {
		return &InputError{Sample: -1, Problem: "workspace is nil or belongs to another scorer"}
	}
	if i < 0 || i >= ws.n {
		return &InputError{Sample: i, Problem: fmt.Sprintf("no such sample in the last batch (it had %d)", ws.n)}
	}
	if method == "" {
		method = s.DefaultMethod()
	}
	switch method {
	case MethodRepairSearch:
		if err := s.explain(ws, i, MethodRepair, dst); err != nil || dst.Resolved {
			return err
		}
		method = MethodSearch
	case MethodRecent:
		return s.explainRecent(ws, i, nil, dst)
	}
	return s.explain(ws, i, method, dst)
}

// ExplainParallel is [Scorer.Explain] for sample i of the last
// [Scorer.ScoreParallel] call with wss, counted from the start of its x:
// it finds the workspace that scored the sample. i must be a sample of
// that call (workspaces beyond those the call used may hold older
// batches). The same explanation as Explain on one workspace.
func (s *Scorer) ExplainParallel(wss []*Workspace, i int, method Method, dst *Explanation) error {
	if i < 0 {
		return &InputError{Sample: i, Problem: "no such sample in the last batch"}
	}
	lo := i
	for _, ws := range wss {
		if ws == nil || ws.s != s {
			return &InputError{Sample: -1, Problem: "workspace is nil or belongs to another scorer"}
		}
		if lo < ws.n {
			return s.Explain(ws, lo, method, dst)
		}
		lo -= ws.n
	}
	return &InputError{Sample: i, Problem: fmt.Sprintf("no such sample in the last batch (it had %d)", i-lo)}
}

// explain is Explain for one method other than MethodRepairSearch.
func (s *Scorer) explain(ws *Workspace, i int, method Method, dst *Explanation) error {
	d, dim := s.d, s.dim
	ex := ws.explainScratch()
	raw := ws.actual[i*d : (i+1)*d]
	expected := ws.expected[i*d : (i+1)*d]
	e0 := s.energy(s.mix.energy(ws.z[i*dim:(i+1)*dim], ex.mix), ws.sdd[i])
	switch method {
	case MethodShare:
		copy(ex.attr, ws.share[i*d:(i+1)*d])
	case MethodRepair, MethodCounterfactual, MethodGradient, MethodRepairGradient, MethodSearch:
		s.prepare(ex, raw, expected)
		switch method {
		case MethodSearch:
			s.searchExplain(ex, e0)
		case MethodRepair:
			s.counterfactual(ex, e0, false)
		case MethodCounterfactual:
			s.counterfactual(ex, e0, true)
		case MethodGradient:
			s.integratedGradients(ex, GradientSteps, true)
		case MethodRepairGradient:
			s.integratedGradients(ex, RepairGradientSteps, false)
		}
		s.expectedSample(ex, method, e0)
	default:
		return fmt.Errorf("model: explain: unknown method %q (want one of %v)", method, Methods())
	}
	s.fill(ws, i, method, e0, dst)
	return nil
}

// fill writes the explanation of sample i of ws's last batch from the raw
// attributions in ws.ex.attr (and, for the methods that repair, from
// ws.ex.expected, ws.ex.inSet and ws.ex.repaired).
func (s *Scorer) fill(ws *Workspace, i int, method Method, e0 float64, dst *Explanation) {
	d := s.d
	ex := ws.explainScratch()
	raw := ws.actual[i*d : (i+1)*d]
	expected := ws.expected[i*d : (i+1)*d]
	plain := method == MethodShare || method == MethodRecent // no repair: Set 0, the plain reconstruction
	dst.Method = method
	dst.Energy = e0
	dst.Set, dst.RepairedEnergy = 0, e0
	if !plain {
		for _, in := range ex.inSet {
			if in {
				dst.Set++
			}
		}
		dst.RepairedEnergy = ex.repaired
	}
	dst.Resolved = dst.RepairedEnergy <= s.cal.Threshold
	if cap(dst.Features) < d {
		dst.Features = make([]Contribution, d)
	}
	dst.Features = dst.Features[:d]
	total := 0.0
	for j, a := range ex.attr {
		if a != a {
			a = 0 // NaN: no evidence either way
			ex.attr[j] = 0
		}
		if a > 0 {
			total += a
		}
	}
	share := ex.acc // free now
	for j, a := range ex.attr {
		switch {
		case method == MethodShare:
			share[j] = a // already a share: keep the result's value exactly
		case total > 0:
			share[j] = max(a, 0) / total
		default:
			share[j] = 1 / float64(d)
		}
	}
	// Rank: largest share first, equal shares in feature order.
	order := ex.order[:d]
	for j := range order {
		order[j] = j
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(share[b], share[a]); c != 0 {
			return c
		}
		return a - b
	})
	for k, j := range order {
		exp := expected[j]
		if !plain {
			// A repaired value beyond float64 in the feature's units keeps
			// the reconstruction.
			if v := invert(s.codes[j], s.offset[j], s.scale[j], ex.expected[j]); isFinite(v) {
				exp = v
			}
		}
		dst.Features[k] = Contribution{
			Feature:     s.meta.Features[j],
			Index:       j,
			Actual:      raw[j],
			Expected:    exp,
			Share:       share[j],
			Attribution: ex.attr[j],
		}
	}
}

// expectedSample completes ex.expected. The features that explain the
// anomaly (the top-ranked one, or the set [MethodSearch] found; none when no
// attribution is positive) take their repaired values: the method's own
// (a secant step or a search) or, for the gradient methods, one secant step
// from one more pass; then one more secant step (secantAgain), one more
// pass. The other features take their reconstruction in the
// sample so repaired, one more pass, which also gives ex.repaired: what
// the model considers normal for them once the anomaly's cause is set
// right, rather than in the anomalous sample, whose reconstruction the
// cause drags along.
func (s *Scorer) expectedSample(ex *explainScratch, method Method, e0 float64) {
	d := s.d
	ex.repaired = e0
	if method != MethodSearch {
		clear(ex.inSet)
		top := -1
		for j, a := range ex.attr {
			if a > 0 && (top < 0 || a > ex.attr[top]) {
				top = j
			}
		}
		if method == MethodGradient || method == MethodRepairGradient {
			copy(ex.expected, ex.xr)
			if top >= 0 {
				ex.expected[top] = s.secant(ex, top)
			}
		}
		if top < 0 {
			for j := range d {
				s.clampToTraining(ex.expected, j)
			}
			return
		}
		ex.inSet[top] = true
		ex.expected[top] = s.secantAgain(ex, top, ex.expected[top])
		s.clampToTraining(ex.expected, top)
	}
	copy(ex.xc, ex.xn)
	for j := range d {
		if ex.inSet[j] {
			ex.xc[j] = ex.expected[j]
		}
	}
	r, e := s.pass(ex.xc, ex.acts, ex.z, ex.mix)
	ex.repaired = e
	for j := range d {
		if !ex.inSet[j] {
			ex.expected[j] = r[j]
			s.clampToTraining(ex.expected, j)
		}
	}
}

// clampToTraining keeps the normalised value x[j] within the values seen
// in training, where they are known: a value outside is no normal value.
func (s *Scorer) clampToTraining(x []float64, j int) {
	x[j] = min(s.trainHi[j], max(s.trainLo[j], x[j]))
}

// secant returns the value at which the network would reconstruct feature
// j as itself with the others unchanged, by one secant step (see
// [Scorer.counterfactual]); it costs one pass.
func (s *Scorer) secant(ex *explainScratch, j int) float64 {
	copy(ex.xc, ex.xn)
	ex.xc[j] = ex.xr[j]
	r := s.reconstruct(ex.xc, ex.acts)
	ex.g1[j] = r[j] - ex.xr[j]
	return secantStep(ex.xn[j], ex.xr[j], r[j])
}

// secantAgain takes the secant step v2 of feature j one step further: one
// pass gives g(v2) = x'_j(x with x_j = v2) − v2, and the secant through
// (x'_j, g(x'_j)) and (v2, g(v2)) the next estimate of the root of g. It
// keeps v2 where that secant's slope says the network copies the feature
// (as [secantStep] does) or the step is not finite.
func (s *Scorer) secantAgain(ex *explainScratch, j int, v2 float64) float64 {
	v1 := ex.xr[j]
	if v2 == v1 {
		return v2
	}
	copy(ex.xc, ex.xn)
	ex.xc[j] = v2
	g2 := s.reconstruct(ex.xc, ex.acts)[j] - v2
	v := v2
	if slope := (g2 - ex.g1[j]) / (v2 - v1); slope <= -minSlope {
		v = v2 - g2/slope
	}
	if !isFinite(v) {
		v = v2
	}
	return v
}

// secantStep returns the root of g(v) = x'_j(v) − v from g at x (the
// sample's value, reconstructed as v1) and at v1 (reconstructed as r): v1
// itself when the secant's slope says the network copies the feature
// rather than infer it (∂x'_j/∂x_j > 1 − minSlope).
func secantStep(x, v1, r float64) float64 {
	g0, g1 := v1-x, r-v1
	v := v1
	if g0 != 0 {
		if slope := g1/g0 - 1; slope <= -minSlope {
			v = v1 - g1/slope
		}
	}
	if !isFinite(v) {
		v = v1
	}
	return v
}

// prepare fills ex.xn and ex.xr with the normalised sample and its
// reconstruction, from the raw values and the de-normalised reconstruction
// that ScoreBatch kept. Normalising the latter again gives the
// reconstruction up to rounding; where it does not come back finite (a
// reconstruction beyond float64 in the feature's units), it runs the pass.
func (s *Scorer) prepare(ex *explainScratch, raw, expected []float64) {
	ok := true
	for j, v := range raw {
		ex.xn[j] = apply(s.codes[j], s.offset[j], s.scale[j], v)
		r := apply(s.codes[j], s.offset[j], s.scale[j], expected[j])
		ok = ok && isFinite(r)
		ex.xr[j] = r
	}
	if !ok {
		xr, _ := s.pass(ex.xn, ex.acts, ex.z, ex.mix)
		copy(ex.xr, xr)
	}
}

// minSlope bounds 1 − ∂x'_j/∂x_j below for the secant step of
// [Scorer.counterfactual].
const minSlope = 0.05

// counterfactual writes into ex.attr, for each feature j, the drop in the
// energy (energy true) or in the squared reconstruction error when x_j
// alone is replaced by x'_j, and into ex.expected the value at which the
// network would reconstruct x_j as itself: the root of g(v) = x'_j(v) − v,
// one secant step from g(x_j) = x'_j − x_j and g(x'_j), which the pass
// gives. Where the secant's slope says the network copies the feature
// rather than infer it (∂x'_j/∂x_j > 1 − minSlope) the expected value stays
// x'_j.
func (s *Scorer) counterfactual(ex *explainScratch, e0 float64, energy bool) {
	xn, xr, xc := ex.xn, ex.xr, ex.xc
	_, _, sdd0, _ := reconStats(xn, xr)
	copy(xc, xn)
	s.enc[0].preActivation(xn, ex.pre0)
	for j := range s.d {
		v1 := xr[j]
		xc[j] = v1
		r := s.reconstructChanged(ex.pre0, j, v1-xn[j], ex.acts)
		if energy {
			ex.attr[j] = drop(e0, s.energyOf(xc, r, ex))
		} else {
			_, _, sdd, _ := reconStats(xc, r)
			ex.attr[j] = drop(sdd0, sdd)
		}
		ex.expected[j] = secantStep(xn[j], v1, r[j])
		ex.g1[j] = r[j] - v1
		xc[j] = xn[j]
	}
}

// drop returns before − after, counting an infinite before as a drop
// larger than any finite one, and an infinite after as no drop.
func drop(before, after float64) float64 {
	switch {
	case math.IsInf(after, 1) || after != after:
		return 0
	case math.IsInf(before, 1):
		return math.MaxFloat64 / 1e10
	}
	return before - after
}

// integratedGradients writes into ex.attr the integrated gradients of the
// energy (energy true) or of the squared reconstruction error along the
// straight line from the reconstruction x' to the sample x, with steps
// midpoint steps: attr_j = (x_j − x'_j) · mean_k ∂T/∂x_j(x' + α_k (x − x')),
// α_k = (k + ½)/steps. Their sum approximates T(x) − T(x').
func (s *Scorer) integratedGradients(ex *explainScratch, steps int, energy bool) {
	xn, base := ex.xn, ex.xr
	clear(ex.acc)
	for k := range steps {
		alpha := (float64(k) + 0.5) / float64(steps)
		for j, b := range base {
			ex.xc[j] = b + alpha*(xn[j]-b)
		}
		s.gradient(ex, ex.xc, ex.gx, energy)
		for j, g := range ex.gx {
			ex.acc[j] += g
		}
	}
	for j, b := range base {
		ex.attr[j] = (xn[j] - b) * ex.acc[j] / float64(steps)
	}
}

// layer returns layer li of the encoder followed by the decoder.
func (s *Scorer) layer(li int) *dense {
	if li < len(s.enc) {
		return &s.enc[li]
	}
	return &s.dec[li-len(s.enc)]
}

// pass runs one normalised sample xn through the compression network,
// keeping every layer's output in acts, fills z = [z_c, rel, cos] and
// returns the reconstruction (a view into acts) and the energy. It computes
// what ScoreBatch computes for the sample, exactly for layers below the
// Gemm size and up to rounding above (see [dense.forward1]).
func (s *Scorer) pass(xn, acts, z, mix []float64) (xr []float64, e float64) {
	xr = s.reconstruct(xn, acts)
	copy(z[:s.code], acts[s.codeOffset():])
	sxx, srr, sdd, sxr := reconStats(xn, xr)
	rel, cos := relCos(sxx, srr, sdd, sxr)
	z[s.code] = rel
	z[s.code+1] = cos
	return xr, s.energy(s.mix.energy(z, mix), sdd)
}

// energyOf returns the energy of the sample x whose pass left its layer
// outputs in ex.acts and its reconstruction in xr.
func (s *Scorer) energyOf(x, xr []float64, ex *explainScratch) float64 {
	z := ex.z
	copy(z[:s.code], ex.acts[s.codeOffset():])
	sxx, srr, sdd, sxr := reconStats(x, xr)
	rel, cos := relCos(sxx, srr, sdd, sxr)
	z[s.code] = rel
	z[s.code+1] = cos
	return s.energy(s.mix.energy(z, ex.mix), sdd)
}

// preActivation writes b + x·W, the layer's output before its activation,
// into pre.
func (l *dense) preActivation(x, pre []float64) {
	nIn := l.in
	wt, b := l.wt[:nIn*l.out], l.b[:l.out]
	for o := range pre[:l.out] {
		pre[o] = dotAdd(b[o], x[:nIn], wt[o*nIn:(o+1)*nIn])
	}
}

// reconstructChanged is [Scorer.reconstruct] for the sample whose first
// layer pre-activation is pre0 with feature j changed by delta: it updates
// the first layer instead of recomputing it (so it agrees with a full pass
// up to rounding).
func (s *Scorer) reconstructChanged(pre0 []float64, j int, delta float64, acts []float64) []float64 {
	l := &s.enc[0]
	out := acts[:l.out]
	for o, p := range pre0[:l.out] {
		v := p + delta*l.wt[o*l.in+j]
		if l.tanh {
			v = math.Tanh(v)
		}
		out[o] = v
	}
	in, off := out, l.out
	for li := 1; li < len(s.enc)+len(s.dec); li++ {
		l := s.layer(li)
		out := acts[off : off+l.out]
		l.forward1(in, out)
		in, off = out, off+l.out
	}
	return in
}

// codeOffset returns where the code z_c starts in a pass's layer outputs.
func (s *Scorer) codeOffset() int {
	off := 0
	for _, l := range s.enc[:len(s.enc)-1] {
		off += l.out
	}
	return off
}

// reconstruct runs one normalised sample xn through the encoder and the
// decoder, keeping every layer's output in acts, and returns the
// reconstruction (a view into acts).
func (s *Scorer) reconstruct(xn, acts []float64) []float64 {
	in := xn
	off := 0
	for li := range len(s.enc) + len(s.dec) {
		l := s.layer(li)
		out := acts[off : off+l.out]
		l.forward1(in, out)
		in, off = out, off+l.out
	}
	return in
}

// forward1 is [dense.forward] for one sample. Layers that the batch path
// hands to Gemm take Gemv here, which is faster for one row and agrees
// with Gemm up to rounding (it sums in another order).
func (l *dense) forward1(in, out []float64) {
	if !l.gemm {
		l.forward(in, 1, out)
		return
	}
	out = out[:l.out]
	copy(out, l.b)
	blas64.Gemv(blas.NoTrans, 1,
		blas64.General{Rows: l.out, Cols: l.in, Stride: l.in, Data: l.wt},
		blas64.Vector{N: l.in, Inc: 1, Data: in[:l.in]},
		1, blas64.Vector{N: l.out, Inc: 1, Data: out})
	if l.tanh {
		for i, v := range out {
			out[i] = math.Tanh(v)
		}
	}
}

// backward1 writes into gin (l.in values) the gradient with respect to the
// layer's input, given g, the gradient with respect to its pre-activation
// (l.out values): gin = W·g.
func (l *dense) backward1(g, gin []float64) {
	gin = gin[:l.in]
	clear(gin)
	if l.gemm {
		blas64.Gemv(blas.Trans, 1,
			blas64.General{Rows: l.out, Cols: l.in, Stride: l.in, Data: l.wt},
			blas64.Vector{N: l.out, Inc: 1, Data: g[:l.out]},
			0, blas64.Vector{N: l.in, Inc: 1, Data: gin})
		return
	}
	wt := l.wt[:l.in*l.out]
	for o, v := range g[:l.out] {
		if v == 0 {
			continue
		}
		for i, w := range wt[o*l.in : (o+1)*l.in] {
			gin[i] += v * w
		}
	}
}

// gradient writes into gx the gradient with respect to the normalised
// sample x of the energy (energy true) or of the squared reconstruction
// error ‖x − x'‖², by a backward pass through the mixture, z = [z_c, rel,
// cos] and the decoder and encoder, and returns the energy (NaN when
// energy is false: it is not computed). It uses
// ex.acts, ex.z, ex.gz, ex.mix, ex.ga and ex.gb. Where the energy is
// infinite the gradient is zero; where a norm is zero its terms are.
func (s *Scorer) gradient(ex *explainScratch, x, gx []float64, energy bool) float64 {
	d, code := s.d, s.code
	var xr []float64
	e := math.NaN()
	if energy {
		xr, e = s.pass(x, ex.acts, ex.z, ex.mix)
	} else {
		xr = s.reconstruct(x, ex.acts)
	}
	gr := ex.ga[:d] // ∂T/∂x' (x' as a free variable), then back through the network
	if energy {
		if !isFinite(e) {
			clear(gx)
			return e
		}
		s.mix.energyGrad(ex.z, ex.gz, ex.mix)
		grel, gcos := ex.gz[code], ex.gz[code+1]
		// rel = ‖x − x'‖ / (‖x‖ + ε), cos = x·x' / (‖x‖‖x'‖ + ε):
		// ∂rel/∂x_j  = (x_j − x'_j)/(‖x − x'‖(‖x‖ + ε)) − ‖x − x'‖ x_j/((‖x‖ + ε)² ‖x‖)
		// ∂rel/∂x'_j = −(x_j − x'_j)/(‖x − x'‖(‖x‖ + ε))
		// ∂cos/∂x_j  = x'_j/D − (x·x') ‖x'‖ x_j/(D² ‖x‖),  D = ‖x‖‖x'‖ + ε
		// ∂cos/∂x'_j = x_j/D − (x·x') ‖x‖ x'_j/(D² ‖x'‖)
		sxx, srr, sdd, sxr := reconStats(x, xr)
		nx, nr, nd := math.Sqrt(sxx), math.Sqrt(srr), math.Sqrt(sdd)
		den := nx*nr + DistanceEpsilon
		var cDiff, cRelX, cCosX, cCosR float64
		if nd > 0 {
			cDiff = 1 / (nd * (nx + DistanceEpsilon))
		}
		if nx > 0 {
			cRelX = -nd / ((nx + DistanceEpsilon) * (nx + DistanceEpsilon) * nx)
			cCosX = -sxr * nr / (den * den * nx)
		}
		if nr > 0 {
			cCosR = -sxr * nx / (den * den * nr)
		}
		w2 := 2 * s.reconW // the reconstruction term: ∂(w‖x − x'‖²)/∂x = 2w(x − x')
		for j, a := range x {
			b := xr[j]
			diff := a - b
			gx[j] = grel*(cDiff*diff+cRelX*a) + gcos*(b/den+cCosX*a) + w2*diff
			gr[j] = -grel*cDiff*diff + gcos*(a/den+cCosR*b) - w2*diff
		}
	} else {
		clear(ex.gz)
		for j, a := range x {
			diff := a - xr[j]
			gx[j] = 2 * diff
			gr[j] = -2 * diff
		}
	}
	// Back through the decoder, adding ∂T/∂z_c at the code, then the encoder.
	g, h := gr, ex.gb
	off := len(ex.acts)
	for li := len(s.enc) + len(s.dec) - 1; li >= 0; li-- {
		l := s.layer(li)
		off -= l.out
		if l.tanh {
			for o, y := range ex.acts[off : off+l.out] {
				g[o] *= 1 - y*y
			}
		}
		gin := h[:l.in]
		l.backward1(g, gin)
		if li == len(s.enc) { // gin is ∂T/∂z_c through the decoder
			for c := range code {
				gin[c] += ex.gz[c]
			}
		}
		g, h = gin, g[:cap(g)]
	}
	for j := range d {
		gx[j] += g[j]
	}
	return e
}

// energyGrad writes ∂E/∂z = Σ_k γ_k Σ_k⁻¹ (z − μ_k) into gz, with γ_k the
// posterior of component k (the softmax of the terms of the log-sum-exp).
// It needs scratch of k·dim + dim + k values. E(z) must be finite.
func (mx *Mixture) energyGrad(z, gz, scratch []float64) {
	dim, k := mx.dim, mx.k
	ys := scratch[:k*dim]
	w := scratch[k*dim : k*dim+dim]
	terms := scratch[k*dim+dim : k*dim+dim+k]
	best := math.Inf(-1)
	for c := range k {
		mu := mx.mu[c*dim : (c+1)*dim]
		l := mx.l[c*dim*dim : (c+1)*dim*dim]
		inv := mx.invDiag[c*dim : (c+1)*dim]
		y := ys[c*dim : (c+1)*dim]
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
		best = max(best, t)
	}
	sum := 0.0
	for c, t := range terms {
		terms[c] = math.Exp(t - best)
		sum += terms[c]
	}
	clear(gz[:dim])
	for c := range k {
		gamma := terms[c] / sum
		if gamma == 0 {
			continue
		}
		// Back substitution: Lᵀ w = y, so w = Σ⁻¹ (z − μ).
		l := mx.l[c*dim*dim : (c+1)*dim*dim]
		inv := mx.invDiag[c*dim : (c+1)*dim]
		y := ys[c*dim : (c+1)*dim]
		for i := dim - 1; i >= 0; i-- {
			s := y[i]
			for j := i + 1; j < dim; j++ {
				s -= l[j*dim+i] * w[j]
			}
			w[i] = s * inv[i]
		}
		for i := range dim {
			gz[i] += gamma * w[i]
		}
	}
}
