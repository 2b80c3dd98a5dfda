package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Scorer scores samples with a [Model] in plain Go. It is immutable and safe
// for concurrent use; the scratch memory a forward pass needs lives in a
// [Workspace], one per goroutine.
//
// For a sample x (raw values in the model's feature order) it normalises each
// feature with its [Transform], runs the encoder to the code z_c and the
// decoder to the reconstruction x', forms z = [z_c, rel, cos] (see
// [RelativeDistance], [CosineSimilarity]) and computes the energy E(z) (see
// [Mixture]).
type Scorer struct {
	// meta is a private copy of the model, never changed, without what the
	// Scorer holds in another form (the encoder and decoder, in enc and
	// dec; GMM.Mu shares the mixture's means) or does not need
	// (Provenance.Losses): [Scorer.Model] puts the layers back. It keeps a
	// loaded model's memory small, for a service that holds many.
	// params holds, in the order a forward pass reads them, every number
	// it reads: offset, scale, the layers' weights and biases, the
	// mixture's and cal's arrays; then the explainers' ranges and weights.
	// In one block, a cold model's memory is asked for at once
	// ([Scorer.Prefetch]), not met one array at a time.
	params   []float64
	d        int
	codes    []normCode
	offset   []float64
	scale    []float64
	enc, dec []dense // one array: dec follows enc
	code     int
	dim      int
	width    int // widest encoder/decoder layer output
	mix      Mixture
	cal      Calibration // meta's, its quantiles in params
	reconW   float64     // Model.ReconWeight
	window   int         // Model.Window
	// windowLimit is the most an energy counts in a window's mean.
	windowLimit float64
	hot         int // params[:hot] is what the forward pass reads
	// The fields above are those a forward pass reads ([Scorer.Prefetch]).
	meta *Model
	// searchLo and searchHi bound each feature's normal normalised values,
	// for [MethodSearch].
	searchLo, searchHi []float64
	// trainLo and trainHi bound each feature's normalised values to the
	// range seen in training where the transform keeps it ([0, 1] for
	// min-max and log, [0, ∞) for min-sd and log-min-sd), and are infinite
	// otherwise.
	trainLo, trainHi []float64
	// errWeight turns a squared reconstruction error in normalised units
	// into one in units of the feature's training spread, for
	// [MethodRecent]; nil when the model lacks them ([Transform.Spread]).
	errWeight []float64
}

// Result is one sample's score.
//
// Actual, Expected and Share have one value per feature, in the model's
// feature order. From [Scorer.ScoreBatch] they are views into the
// [Workspace]: they stay valid until the workspace is used again, so copy
// what you keep. From [Scorer.Score] they are the caller's to keep.
type Result struct {
	// Energy is the sample energy, E(z) + ReconWeight·‖x − x'‖² (see
	// [Model.ReconWeight]); higher is more unusual. It is +Inf
	// for a sample so far from the mixture that every density underflows, or
	// so large that the distances overflow (then z holds NaN or ±Inf too).
	Energy float64
	// Score is what Anomaly and Severity are judged on: Energy from
	// [Scorer.ScoreBatch]; for a model with a window ([Model.Window]),
	// max(Energy, the mean energy of the series' window) once
	// [Scorer.Smooth] has seen the sample.
	Score float64
	// Anomaly reports Score > the model's threshold.
	Anomaly bool
	// Severity places Score among the training scores on a scale of 0 to
	// 100, above 50 exactly when Anomaly is set ([Calibration.Severity]).
	Severity float64
	// Band is Severity's band: normal, low, medium, high or critical
	// ([BandOf]).
	Band Band
	// Actual holds the sample's raw values.
	Actual []float64
	// Expected holds the reconstruction, de-normalised to each feature's units.
	Expected []float64
	// Share holds each feature's share of the reconstruction error: its
	// squared error in normalised space over the total. The shares sum to 1;
	// when the reconstruction is exact each share is 1/len(Share). It is the
	// cheap explanation, [MethodShare]; [Scorer.Explain] gives the
	// default, better one for the samples you report.
	Share []float64
}

// NewScorer validates m and prepares a Scorer for it: the layers in the
// layout the forward pass reads, and the mixture's Cholesky factors,
// log-determinants and log φ_k constants. It copies what it keeps, so
// changing m afterwards does not change the Scorer.
func NewScorer(m *Model) (*Scorer, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mix, err := NewMixture(m.GMM)
	if err != nil {
		return nil, err
	}
	d := len(m.Features)
	s := &Scorer{
		d:           d,
		codes:       make([]normCode, d),
		code:        m.CodeSize(),
		dim:         m.GMM.Dim,
		width:       d,
		reconW:      m.ReconWeight,
		window:      m.Window,
		windowLimit: m.WindowLimit(),
	}
	n := 2*d + len(mix.mu) + len(mix.l) + len(mix.invDiag) + len(mix.logc) + len(m.Calibration.Quantiles)
	for _, l := range slices.Concat(m.Encoder, m.Decoder) {
		n += len(l.W) + len(l.B)
	}
	s.params = make([]float64, 0, n+5*d) // and the explainers' ranges and weights, after
	s.offset, s.scale = s.take(d), s.take(d)
	for j, t := range m.Norm {
		s.codes[j], s.offset[j], s.scale[j] = t.Kind.code(), t.Offset, t.Scale
	}
	layers := make([]dense, len(m.Encoder)+len(m.Decoder))
	for i, l := range slices.Concat(m.Encoder, m.Decoder) {
		layers[i] = newDense(l, s.take(len(l.W)), s.take(len(l.B)))
		s.width = max(s.width, l.Out)
	}
	s.enc, s.dec = layers[:len(m.Encoder):len(m.Encoder)], layers[len(m.Encoder):]
	s.mix = *mix
	s.mix.mu, s.mix.l = s.takeCopy(mix.mu), s.takeCopy(mix.l)
	s.mix.invDiag, s.mix.logc = s.takeCopy(mix.invDiag), s.takeCopy(mix.logc)
	s.cal = m.Calibration
	s.cal.Quantiles = s.takeCopy(m.Calibration.Quantiles)
	s.meta = scorerMeta(m, &s.mix, s.cal.Quantiles)
	s.hot = len(s.params)
	lo, hi := s.normalRange()
	s.searchLo, s.searchHi = s.takeCopy(lo), s.takeCopy(hi)
	lo, hi = trainingRange(m.Norm)
	s.trainLo, s.trainHi = s.takeCopy(lo), s.takeCopy(hi)
	if w := errorWeights(m.Norm); w != nil {
		s.errWeight = s.takeCopy(w)
	}
	return s, nil
}

// take returns the next n numbers of s.params, whose capacity holds them.
func (s *Scorer) take(n int) []float64 {
	k := len(s.params)
	s.params = s.params[:k+n]
	return s.params[k : k+n : k+n]
}

// takeCopy returns the next len(x) numbers of s.params, holding x.
func (s *Scorer) takeCopy(x []float64) []float64 {
	t := s.take(len(x))
	copy(t, x)
	return t
}

// scorerMeta returns the copy of m a Scorer keeps: everything but the
// encoder, the decoder and the loss history, with GMM.Mu sharing mix's
// means and the calibration's quantiles sharing q.
func scorerMeta(m *Model, mix *Mixture, q []float64) *Model {
	c := *m
	c.Features = slices.Clone(m.Features)
	c.Norm = slices.Clone(m.Norm)
	c.Constant = slices.Clone(m.Constant)
	c.Encoder, c.Decoder = nil, nil
	c.Estimator = cloneLayers(m.Estimator)
	c.GMM.Phi = slices.Clone(m.GMM.Phi)
	c.GMM.Mu = mix.mu
	c.GMM.Sigma = slices.Clone(m.GMM.Sigma)
	c.Calibration.Quantiles = q
	c.Provenance.Losses = nil
	return &c
}

// errorWeights returns each feature's (Scale/Spread)², which turns a
// squared reconstruction error in normalised units into one in units of
// the feature's training spread, or nil when some feature has no Spread
// (artifacts written before it existed) or the ratio overflows.
func errorWeights(norm []Transform) []float64 {
	w := make([]float64, len(norm))
	for j, t := range norm {
		r := t.Scale / t.Spread
		if t.Spread <= 0 || !isFinite(r*r) {
			return nil
		}
		w[j] = r * r
	}
	return w
}

// trainingRange returns the normalised range of each feature's training
// values, where the transforms keep it.
func trainingRange(norm []Transform) (lo, hi []float64) {
	lo, hi = make([]float64, len(norm)), make([]float64, len(norm))
	for j, t := range norm {
		lo[j], hi[j] = math.Inf(-1), math.Inf(1)
		switch t.Kind {
		case NormMinMax, NormLog:
			lo[j], hi[j] = 0, 1
		case NormMinSD, NormLogMinSD: // Offset is the training minimum; the maximum is not kept
			lo[j] = 0
		}
	}
	return lo, hi
}

// Model returns a deep copy of the model the Scorer scores with, without
// the training's loss history: Provenance.Losses is nil, since a Scorer
// does not keep it (read the artifact for it). It allocates the model
// afresh on every call.
func (s *Scorer) Model() *Model {
	m := s.meta.Clone()
	m.Encoder, m.Decoder = make([]Layer, len(s.enc)), make([]Layer, len(s.dec))
	for i := range s.enc {
		m.Encoder[i] = s.enc[i].layer()
	}
	for i := range s.dec {
		m.Decoder[i] = s.dec[i].layer()
	}
	return m
}

// Features returns the feature names in the order samples must give them.
// The slice is shared: do not modify it.
func (s *Scorer) Features() []string { return s.meta.Features }

// Constant returns the features constant in training ([Model.Constant]).
// The slice is shared: do not modify it.
func (s *Scorer) Constant() []ConstantFeature { return s.meta.Constant }

// FeatureIndex returns the position of the named feature in a sample, and
// whether the model has it: for callers that receive values by name. It
// searches the names in order (a scorer keeps no map, to stay small), so
// callers that look up many names of a wide model should build their own
// index once.
func (s *Scorer) FeatureIndex(name string) (int, bool) {
	j := slices.Index(s.meta.Features, name)
	return j, j >= 0
}

// NumFeatures returns the number of values in one sample.
func (s *Scorer) NumFeatures() int { return s.d }

// Threshold returns the energy above which a sample is an anomaly.
func (s *Scorer) Threshold() float64 { return s.cal.Threshold }

// Mixture returns the prepared Gaussian mixture the energies come from.
func (s *Scorer) Mixture() *Mixture { return &s.mix }

// Workspace holds the scratch memory and the per-sample explanations of one
// batch. It belongs to the [Scorer] that made it and is not safe for
// concurrent use: give each goroutine its own.
//
// Its memory grows with use: a workspace holds room for the largest batch
// it has scored (up to its capacity) and the explainers' scratch once it
// has explained, so that a service may keep one per model cheaply
// whatever its capacity.
type Workspace struct {
	s        *Scorer
	capacity int
	n        int             // samples in the last batch
	xn       []float64       // block×d normalised input
	bufA     []float64       // block×width
	bufB     []float64       // block×width
	scratch  []float64       // dim+k, for the energy
	actual   []float64       // room×d
	expected []float64       // room×d
	share    []float64       // room×d
	sdd      []float64       // room: squared reconstruction errors
	z        []float64       // room×dim
	ex       *explainScratch // nil until the first explanation
}

// DefaultBatch is a batch size that suits [Scorer.NewWorkspace] for most
// models: large enough to amortise per-batch costs, small enough to stay in
// cache.
const DefaultBatch = 1024

// NewWorkspace returns a workspace for batches of up to maxBatch samples
// (at least 1; a smaller value means 1). It allocates little: the
// workspace grows to the batches it scores (see [Workspace]).
func (s *Scorer) NewWorkspace(maxBatch int) *Workspace {
	return &Workspace{
		s:        s,
		capacity: max(maxBatch, 1),
		scratch:  make([]float64, s.dim+s.mix.k),
	}
}

// Reuse returns a workspace for s that takes over ws's memory when ws was
// made for a scorer of the same architecture (features, layer sizes,
// mixture components), as the host models of a fleet are; otherwise, or
// when ws is nil, a new workspace of ws's capacity. ws must not be used
// afterwards. It lets a service that scores many models in turn keep a few
// workspaces instead of one per model, allocating nothing when it moves
// from one model to another.
func (s *Scorer) Reuse(ws *Workspace) *Workspace {
	if ws == nil {
		return s.NewWorkspace(1)
	}
	if !sameShape(ws.s, s) {
		return s.NewWorkspace(ws.capacity)
	}
	ws.s, ws.n = s, 0
	return ws
}

// sameShape reports whether a workspace of a fits b: the same sizes of
// input, layers, estimation input and mixture.
func sameShape(a, b *Scorer) bool {
	if a == b {
		return true
	}
	if a.d != b.d || a.dim != b.dim || a.width != b.width || a.code != b.code || a.mix.k != b.mix.k ||
		len(a.enc) != len(b.enc) || len(a.dec) != len(b.dec) {
		return false
	}
	for i := range a.enc {
		if a.enc[i].out != b.enc[i].out {
			return false
		}
	}
	for i := range a.dec {
		if a.dec[i].out != b.dec[i].out {
			return false
		}
	}
	return true
}

// fit makes room in ws for a batch of n ≤ ws.capacity samples: at least
// twice the room it had when it must grow, so that batches of growing
// sizes allocate a few times only.
func (ws *Workspace) fit(n int) {
	room := len(ws.sdd)
	if n <= room {
		return
	}
	s := ws.s
	room = min(ws.capacity, max(n, 2*room))
	block := min(blockRows, room)
	ws.xn = make([]float64, block*s.d)
	ws.bufA = make([]float64, block*s.width)
	ws.bufB = make([]float64, block*s.width)
	ws.actual = make([]float64, room*s.d)
	ws.expected = make([]float64, room*s.d)
	ws.share = make([]float64, room*s.d)
	ws.sdd = make([]float64, room)
	ws.z = make([]float64, room*s.dim)
}

// explainScratch returns ws's scratch memory for the explainers, made on
// first use.
func (ws *Workspace) explainScratch() *explainScratch {
	if ws.ex == nil {
		ws.ex = ws.s.newExplainScratch()
	}
	return ws.ex
}

// Cap returns the largest batch the workspace takes.
func (ws *Workspace) Cap() int { return ws.capacity }

// Len returns the number of samples in the last batch scored with ws.
func (ws *Workspace) Len() int { return ws.n }

// Z returns the estimation input z = [z_c, rel, cos] of sample i of the last
// batch, as a view into the workspace (valid until ws is used again). It
// returns nil when i is out of range.
func (ws *Workspace) Z(i int) []float64 {
	if i < 0 || i >= ws.n {
		return nil
	}
	dim := ws.s.dim
	return ws.z[i*dim : (i+1)*dim : (i+1)*dim]
}

// ScoreBatch scores the n = len(x)/NumFeatures() samples in x (row-major,
// raw values in the model's feature order) into out[:n], using ws for all
// its memory: it does not allocate once ws has scored a batch of n samples
// or more (see [Workspace]). The explanations in out are views into
// ws (see [Result]).
//
// It returns an [*InputError] when len(x) is not a multiple of the number of
// features, when n exceeds ws.Cap() or len(out), when ws belongs to another
// Scorer, or when a value is NaN or ±Inf or cannot be normalised (the error
// names the sample and the feature). After an error the contents of out are
// unspecified.
func (s *Scorer) ScoreBatch(ws *Workspace, x []float64, out []Result) error {
	d := s.d
	if ws == nil || ws.s != s {
		return &InputError{Sample: -1, Problem: "workspace is nil or belongs to another scorer"}
	}
	if len(x)%d != 0 {
		return &InputError{Sample: -1, Problem: fmt.Sprintf("batch has %d values, not a multiple of %d features", len(x), d)}
	}
	n := len(x) / d
	if n > ws.capacity {
		return &InputError{Sample: -1, Problem: fmt.Sprintf("batch has %d samples, the workspace takes at most %d", n, ws.capacity)}
	}
	if len(out) < n {
		return &InputError{Sample: -1, Problem: fmt.Sprintf("out has room for %d results, the batch has %d samples", len(out), n)}
	}
	ws.n = 0
	ws.fit(n)
	for b0 := 0; b0 < n; b0 += blockRows {
		rows := min(blockRows, n-b0)
		if err := s.scoreBlock(ws, x, b0, rows, out); err != nil {
			return err
		}
	}
	ws.n = n
	return nil
}

// scoreBlock scores samples b0 to b0+rows-1 of x.
func (s *Scorer) scoreBlock(ws *Workspace, x []float64, b0, rows int, out []Result) error {
	d, dim, code := s.d, s.dim, s.code
	// Check, keep and normalise the raw values.
	raw := x[b0*d : (b0+rows)*d]
	copy(ws.actual[b0*d:(b0+rows)*d], raw)
	xn := ws.xn[:rows*d]
	codes, offset, scale := s.codes[:d], s.offset[:d], s.scale[:d]
	for r := range rows {
		row := raw[r*d : (r+1)*d]
		nrow := xn[r*d : (r+1)*d]
		for j, v := range row {
			c := codes[j]
			nv := apply(c, offset[j], scale[j], v)
			if nv-nv != 0 { // NaN or ±Inf, in or after normalisation
				return s.badValue(b0+r, j, v, nv)
			}
			nrow[j] = nv
		}
	}
	// Compression network: encoder to the code, decoder to the reconstruction.
	in, a, b := xn, ws.bufA, ws.bufB
	for i := range s.enc {
		s.enc[i].forward(in, rows, a)
		in, a, b = a, b, a
	}
	for r := range rows {
		copy(ws.z[(b0+r)*dim:(b0+r)*dim+code], in[r*code:(r+1)*code])
	}
	for i := range s.dec {
		s.dec[i].forward(in, rows, a)
		in, a, b = a, b, a
	}
	xr := in[:rows*d]
	// Estimation input, explanation and energy, one sample at a time.
	for r := range rows {
		i := b0 + r
		xrow := xn[r*d : (r+1)*d]
		rrow := xr[r*d : (r+1)*d]
		sxx, srr, sdd, sxr := reconStats(xrow, rrow)
		rel, cos := relCos(sxx, srr, sdd, sxr)
		z := ws.z[i*dim : (i+1)*dim]
		z[code] = rel
		z[code+1] = cos
		exp := ws.expected[i*d : (i+1)*d : (i+1)*d]
		share := ws.share[i*d : (i+1)*d : (i+1)*d]
		for j, v := range rrow {
			exp[j] = invert(codes[j], offset[j], scale[j], v)
		}
		shares(share, xrow, rrow, sdd)
		ws.sdd[i] = sdd
		e := s.energy(s.mix.energy(z, ws.scratch), sdd)
		sev := s.cal.Severity(e)
		out[i] = Result{
			Energy:   e,
			Score:    e,
			Anomaly:  e > s.cal.Threshold,
			Severity: sev,
			Band:     BandOf(sev),
			Actual:   ws.actual[i*d : (i+1)*d : (i+1)*d],
			Expected: exp,
			Share:    share,
		}
	}
	return nil
}

// energy returns the sample energy of a sample whose mixture energy is e
// and squared reconstruction error sdd: e + ReconWeight·sdd. A model
// without a reconstruction weight gives e unchanged, bit for bit, whatever
// sdd is.
func (s *Scorer) energy(e, sdd float64) float64 {
	if s.reconW == 0 {
		return e
	}
	return e + s.reconW*sdd
}

// shares writes each feature's share of the squared reconstruction error
// sdd = Σ(x−x')² into dst.
func shares(dst, x, xr []float64, sdd float64) {
	xr = xr[:len(x)]
	dst = dst[:len(x)]
	if sdd > 0 && sdd <= math.MaxFloat64 {
		inv := 1 / sdd
		for j, a := range x {
			e := a - xr[j]
			dst[j] = e * e * inv
		}
		return
	}
	if sdd == 0 {
		for j := range dst {
			dst[j] = 1 / float64(len(dst))
		}
		return
	}
	// The squared errors overflow: scale them by the largest error first.
	big := 0.0
	for j, a := range x {
		big = max(big, math.Abs(a-xr[j]))
	}
	total := 0.0
	for j, a := range x {
		e := (a - xr[j]) / big
		dst[j] = e * e
		total += e * e
	}
	for j := range dst {
		dst[j] /= total
	}
}

func (s *Scorer) badValue(sample, j int, v, nv float64) error {
	problem := fmt.Sprintf("value is %v", v)
	if v-v == 0 {
		problem = fmt.Sprintf("value %v is %v after normalisation (%s)", v, nv, s.meta.Norm[j].Kind)
	}
	return &InputError{Sample: sample, Feature: s.meta.Features[j], Problem: problem}
}

// Score scores one sample x (raw values in the model's feature order). It
// allocates a fresh workspace, so the explanation in the result is the
// caller's to keep; for many samples use [Scorer.ScoreBatch]. It returns an
// [*InputError] naming the feature when x has the wrong length or holds NaN
// or ±Inf.
func (s *Scorer) Score(x []float64) (Result, error) {
	if len(x) != s.d {
		return Result{}, &InputError{Sample: 0, Problem: fmt.Sprintf("sample has %d values, want %d (one per feature)", len(x), s.d)}
	}
	ws := s.NewWorkspace(1)
	var out [1]Result
	if err := s.ScoreBatch(ws, x, out[:]); err != nil {
		return Result{}, err
	}
	return out[0], nil
}

// ScoreParallel scores the samples in x like [Scorer.ScoreBatch], split into
// len(wss) contiguous chunks of equal size (the last may be smaller) scored
// at the same time, each on its own goroutine with its own workspace. Each
// chunk must fit its workspace: n ≤ len(wss)·min Cap. The explanations in
// out are views into the workspaces.
//
// It allocates a few bytes per call for the goroutines, not per sample: with
// batches of a thousand samples or more per workspace the cost is noise. Use
// one workspace per core. To score more samples than the workspaces hold,
// call it once per slice of x and consume out in between. The error, if any,
// is the one with the lowest sample index, counted from the start of x.
func (s *Scorer) ScoreParallel(wss []*Workspace, x []float64, out []Result) error {
	d := s.d
	if len(wss) == 0 {
		return &InputError{Sample: -1, Problem: "no workspaces"}
	}
	if len(x)%d != 0 {
		return &InputError{Sample: -1, Problem: fmt.Sprintf("batch has %d values, not a multiple of %d features", len(x), d)}
	}
	n := len(x) / d
	if len(out) < n {
		return &InputError{Sample: -1, Problem: fmt.Sprintf("out has room for %d results, the batch has %d samples", len(out), n)}
	}
	p := min(len(wss), max(1, (n+blockRows-1)/blockRows)) // at least a block per goroutine
	chunk := (n + p - 1) / p
	for i, ws := range wss[:p] {
		if ws == nil || ws.s != s {
			return &InputError{Sample: -1, Problem: fmt.Sprintf("workspace %d is nil or belongs to another scorer", i)}
		}
		if ws.capacity < chunk {
			return &InputError{Sample: -1, Problem: fmt.Sprintf("batch of %d samples needs %d per workspace, workspace %d takes at most %d", n, chunk, i, ws.capacity)}
		}
	}
	if p == 1 {
		return s.ScoreBatch(wss[0], x, out)
	}
	var wg sync.WaitGroup
	errs := make([]error, p)
	for i := 1; i < p; i++ {
		lo, hi := min(i*chunk, n), min((i+1)*chunk, n)
		wg.Go(func() {
			errs[i] = s.ScoreBatch(wss[i], x[lo*d:hi*d], out[lo:hi])
		})
	}
	errs[0] = s.ScoreBatch(wss[0], x[:min(chunk, n)*d], out[:min(chunk, n)])
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		var ie *InputError
		if errors.As(err, &ie) && ie.Sample >= 0 {
			shifted := *ie
			shifted.Sample += i * chunk
			return &shifted
		}
		return err
	}
	return nil
}
