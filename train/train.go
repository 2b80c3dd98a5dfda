package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
)

// Errors Train returns; each comes wrapped with the details.
var (
	// ErrInput: the training rows cannot be used (too few, wrong length,
	// NaN or Inf, a constant column); the message names the row or column.
	ErrInput = errors.New("train: invalid input")
	// ErrDiverged: the loss became NaN or Inf or exploded; no model is returned.
	ErrDiverged = errors.New("train: loss diverged")
)

// Streams of the seeded generator, one per use, so that changing one use
// (say the number of epochs) does not shift another's draws.
const (
	streamInit    = 1
	streamShuffle = 2
	streamDropout = 3
)

// explodeFactor: a batch loss whose magnitude passes this multiple of the
// first batch's (or of 1, whichever is larger) counts as divergence.
const explodeFactor = 1e6

// EpochStats holds one epoch's means over its batches.
type EpochStats struct {
	Epoch   int     // 1-based
	Loss    float64 // mean batch loss
	Recon   float64 // mean reconstruction error, mean_i ‖x_i − x'_i‖²
	Energy  float64 // mean sample energy (batch mixture)
	Penalty float64 // mean covariance penalty Σ_k Σ_j 1/Σ_k[j,j]
	// SamplesPerSec is the epoch's training throughput, and Duration its
	// wall time.
	SamplesPerSec float64
	Duration      time.Duration
}

// Progress is what Train reports after each epoch.
type Progress struct {
	EpochStats
	Epochs  int           // total number of epochs
	Elapsed time.Duration // since training started
}

// Report describes a training run: what changes from one run to the next
// (wall time) lives here, not in the model.
type Report struct {
	// Epochs holds each epoch's losses.
	Epochs []EpochStats
	// Energies holds every training row's sample energy, in input order.
	Energies []float64
	// BatchSize is the batch size used (the configured one, or the number of
	// rows when there are fewer), and Steps the number of optimiser steps.
	BatchSize, Steps int
	// Duration is the whole run; TrainDuration the epochs alone.
	Duration, TrainDuration time.Duration
	// SamplesPerSec is the training throughput over all epochs.
	SamplesPerSec float64
}

// Train fits a DAGMM model to n rows of raw feature values: x is row-major
// n×len(features). It fits the normalisation on the rows, trains the
// compression and estimation networks with Adam on shuffled mini-batches
// for cfg.EpochsFor(rows) epochs, then (dropout off) fits the mixture on all rows and
// sets the threshold at cfg.Percentile of the training energies. progress,
// when not nil, is called after each epoch from Train's goroutine. Train
// uses every core (GOMAXPROCS) for the matrix products; several calls may
// run at once, each with its own graphs.
//
// The same rows, cfg and cfg.Seed give the same model, bit for bit. The
// model's provenance holds the rows used, the settings and the epoch losses;
// the caller fills in the input file, its digest and the rows it excluded.
//
// Train returns ctx.Err() when ctx is cancelled, an error matching
// [ErrConfig] or [ErrInput] for bad settings or rows, and one matching
// [ErrDiverged] when the loss becomes NaN or Inf or explodes; it never
// returns a model with NaN in it.
func Train(ctx context.Context, features []string, x []float64, cfg Config, progress func(Progress)) (*model.Model, *Report, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	n, d, err := checkRows(features, x)
	if err != nil {
		return nil, nil, err
	}
	cfg.Epochs = cfg.EpochsFor(n)
	norm, err := fitNormalization(features, x, cfg.Normalization)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	xn := make([]float64, len(x))
	normalise(xn, x, norm)
	for i, v := range xn {
		if !isFinite(v) {
			return nil, nil, fmt.Errorf("%w: row %d, column %q: normalised value is %v", ErrInput, i/d, features[i%d], v)
		}
	}

	nw := newNetwork(d, &cfg)
	nw.initWeights(rand.New(rand.NewPCG(cfg.Seed, streamInit)))
	rep := &Report{}
	if err := fit(ctx, &nw, xn, n, d, &cfg, rep, progress); err != nil {
		return nil, nil, err
	}

	m := &model.Model{
		Features:    append([]string(nil), features...),
		Norm:        norm,
		Encoder:     nw.enc,
		Decoder:     nw.dec,
		Estimator:   nw.est,
		ReconWeight: cfg.ReconWeight,
		Window:      cfg.Window,
		Provenance: model.Provenance{
			RowsUsed:       n,
			Seed:           cfg.Seed,
			Epochs:         cfg.Epochs,
			BatchSize:      rep.BatchSize,
			LearningRate:   cfg.LearningRate,
			Lambda1:        cfg.Lambda1,
			Lambda2:        cfg.Lambda2,
			Dropout:        cfg.Dropout,
			Jitter:         cfg.Jitter,
			DType:          cfg.DType,
			ProjectVersion: buildinfo.String(),
		},
	}
	for _, e := range rep.Epochs {
		m.Provenance.Losses = append(m.Provenance.Losses, e.Loss)
	}
	if err := calibrate(m, xn, &cfg, rep); err != nil {
		return nil, nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("train: the trained model is not valid: %w", err)
	}
	rep.Duration = time.Since(start)
	return m, rep, nil
}

// checkRows checks the feature names and the shape and finiteness of x, and
// returns the number of rows and columns.
func checkRows(features []string, x []float64) (n, d int, err error) {
	d = len(features)
	if d == 0 {
		return 0, 0, fmt.Errorf("%w: no features", ErrInput)
	}
	seen := make(map[string]int, d)
	for j, f := range features {
		if f == "" {
			return 0, 0, fmt.Errorf("%w: feature %d has an empty name", ErrInput, j)
		}
		if k, dup := seen[f]; dup {
			return 0, 0, fmt.Errorf("%w: feature %q appears twice (columns %d and %d)", ErrInput, f, k, j)
		}
		seen[f] = j
	}
	if len(x)%d != 0 {
		return 0, 0, fmt.Errorf("%w: %d values do not make whole rows of %d features", ErrInput, len(x), d)
	}
	n = len(x) / d
	if n < 2 {
		return 0, 0, fmt.Errorf("%w: %d row(s); training needs at least 2", ErrInput, n)
	}
	for i, v := range x {
		if !isFinite(v) {
			return 0, 0, fmt.Errorf("%w: row %d, column %q: value is %v", ErrInput, i/d, features[i%d], v)
		}
	}
	return n, d, nil
}

// trainer runs optimiser steps of one training graph on normalised rows.
type trainer struct {
	lg     *lossGraph
	layers []*model.Layer
	opt    *adam
	xn     []float64 // all normalised rows, n×d
	d      int
	xb     []float64 // a batch, batch×d
	masks  [][]float64
	drop   *rand.Rand
	// keepBelow: a unit is kept when the top 53 bits of a draw are below it,
	// the same decision as drop.Float64() < 1 − dropout without the division.
	keepBelow uint64
	scale     float64    // 1/(1 − dropout)
	first     float64    // first batch loss, NaN before the first step
	parts     EpochStats // sums of the batch losses since the last reset
	failed    error      // the divergence an optimiser step found in the last run
}

// newTrainer builds the training graph for `steps` batches of `batch` rows
// per run, from the custom ops (fused) or from Gorgonia's primitives (the
// reference graph).
func newTrainer(nw *network, xn []float64, d, batch, steps int, cfg *Config, fused bool) (*trainer, error) {
	dt := tensor.Float64
	if cfg.DType == Float32 {
		dt = tensor.Float32
	}
	tr := &trainer{
		layers:    nw.all(),
		xn:        xn,
		d:         d,
		xb:        make([]float64, batch*d),
		drop:      rand.New(rand.NewPCG(cfg.Seed, streamDropout)),
		keepBelow: uint64(math.Ceil((1 - cfg.Dropout) * (1 << 53))),
		scale:     1 / (1 - cfg.Dropout),
		first:     math.NaN(),
	}
	tr.opt = newAdam(tr.layers, cfg.LearningRate)
	lg, err := buildTrainGraph(tr, nw, d, dt, batch, steps, graphOptions{
		dropout: cfg.Dropout > 0 && len(nw.est) > 1,
		fused:   fused,
		lambda1: cfg.Lambda1, lambda2: cfg.Lambda2, jitter: cfg.Jitter,
	})
	if err != nil {
		return nil, err
	}
	for _, m := range lg.mVals {
		tr.masks = append(tr.masks, make([]float64, m.Shape().TotalSize()))
	}
	return tr, nil
}

// step runs one optimiser step on the given rows (a graph of one step per
// run).
func (tr *trainer) step(rows []int) error { return tr.run([][]int{rows}) }

// run runs one optimiser step per batch of rows, in order, in one run of the
// training graph (built for len(batches) steps): for each a forward and
// backward pass and an Adam update; and adds the batches' losses and parts
// to tr.parts. It returns a *divergence (which matches [ErrDiverged]) when a
// loss or a gradient is not finite or a loss explodes.
func (tr *trainer) run(batches [][]int) error {
	if len(batches) != len(tr.lg.steps) {
		return fmt.Errorf("train: %d batches for a graph of %d steps", len(batches), len(tr.lg.steps))
	}
	d := tr.d
	for s, rows := range batches {
		st := tr.lg.steps[s]
		xb := tr.xb
		if st.xVal.Dtype() == tensor.Float64 {
			xb = st.xVal.Float64s() // no second copy
		}
		for r, row := range rows {
			copy(xb[r*d:(r+1)*d], tr.xn[row*d:(row+1)*d])
		}
		if st.xVal.Dtype() != tensor.Float64 {
			setFloats(st.xVal, xb)
		}
		for i, mb := range tr.masks {
			if st.mVals[i].Dtype() == tensor.Float64 {
				mb = st.mVals[i].Float64s()
			}
			// Half the units drop at random: a branch per unit would be
			// mispredicted half the time. keep is 1 when the draw's top 53
			// bits are below keepBelow (both under 2⁵³, so the difference
			// wraps to a number with its top bit set), 0 otherwise.
			vals := [2]float64{0, tr.scale}
			for j := range mb {
				keep := (tr.drop.Uint64()<<11>>11 - tr.keepBelow) >> 63
				mb[j] = vals[keep]
			}
			if st.mVals[i].Dtype() != tensor.Float64 {
				setFloats(st.mVals[i], mb)
			}
		}
	}
	tr.failed = nil
	if err := tr.lg.run(); err != nil {
		if tr.failed != nil {
			return tr.failed
		}
		return err
	}
	for _, st := range tr.lg.steps {
		loss, recon, energy, penalty, err := st.parts()
		if err != nil {
			return err
		}
		tr.parts.Loss += loss
		tr.parts.Recon += recon
		tr.parts.Energy += energy
		tr.parts.Penalty += penalty
	}
	tr.lg.load(tr.layers)
	return nil
}

// divergence is a step's numerical failure; fit adds the epoch.
type divergence struct{ why string }

func (e *divergence) Error() string        { return "train: loss diverged (" + e.why + ")" }
func (e *divergence) Is(target error) bool { return target == ErrDiverged }

// fit runs the epochs on the normalised rows xn (n×d) and leaves the trained
// weights in nw.
func fit(ctx context.Context, nw *network, xn []float64, n, d int, cfg *Config, rep *Report, progress func(Progress)) error {
	batch := min(cfg.BatchSize, n)
	steps := n / batch
	rep.BatchSize = batch
	per := stepsPerRun(steps)
	tr, err := newTrainer(nw, xn, d, batch, per, cfg, true)
	if err != nil {
		return err
	}
	defer tr.lg.close()
	batches := make([][]int, per)
	shuffle := rand.New(rand.NewPCG(cfg.Seed, streamShuffle))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	trainStart := time.Now()
	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		epochStart := time.Now()
		shuffle.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		tr.parts = EpochStats{}
		for s := 0; s < steps; s += per {
			if err := ctx.Err(); err != nil {
				return err
			}
			for j := range batches {
				batches[j] = perm[(s+j)*batch : (s+j+1)*batch]
			}
			if err := tr.run(batches); err != nil {
				var dv *divergence
				if errors.As(err, &dv) {
					return fmt.Errorf("%w at epoch %d (%s): try a lower learning rate or a larger jitter", ErrDiverged, epoch, dv.why)
				}
				return fmt.Errorf("train: epoch %d, batches %d to %d: %w", epoch, s+1, s+per, err)
			}
		}
		f := float64(steps)
		st := EpochStats{
			Epoch: epoch, Loss: tr.parts.Loss / f, Recon: tr.parts.Recon / f, Energy: tr.parts.Energy / f, Penalty: tr.parts.Penalty / f,
			Duration: time.Since(epochStart),
		}
		st.SamplesPerSec = float64(steps*batch) / st.Duration.Seconds()
		rep.Epochs = append(rep.Epochs, st)
		rep.Steps += steps
		if progress != nil {
			progress(Progress{EpochStats: st, Epochs: cfg.Epochs, Elapsed: time.Since(trainStart)})
		}
	}
	rep.TrainDuration = time.Since(trainStart)
	rep.SamplesPerSec = float64(rep.Steps*batch) / rep.TrainDuration.Seconds()
	return nil
}

// diverged returns why a batch loss counts as divergence, or "".
func diverged(loss, first float64) string {
	switch {
	case math.IsNaN(loss):
		return "NaN"
	case math.IsInf(loss, 0):
		return "Inf"
	case math.Abs(loss) > explodeFactor*max(1, math.Abs(first)):
		return fmt.Sprintf("loss %.3g, more than %g times the first batch's %.3g", loss, explodeFactor, first)
	}
	return ""
}

// load copies the master weights into the graph's parameter tensors.
func (lg *lossGraph) load(layers []*model.Layer) {
	for i, l := range layers {
		w, b := lg.slots[2*i], lg.slots[2*i+1]
		setFloatsAt(lg.pVals[w.t], w.off, l.W)
		setFloatsAt(lg.pVals[b.t], b.off, l.B)
	}
}

// adam is the Adam optimiser (Kingma & Ba) on float64 master weights:
// m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= lr·m̂/(sqrt(v̂) + ε) with
// m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ); β1 = 0.9, β2 = 0.999, ε = 1e-8.
type adam struct {
	lr, b1, b2, eps float64
	t               int
	m, v, g         [][]float64 // per parameter tensor (W, b of each layer): moments, gradient
}

func newAdam(layers []*model.Layer, lr float64) *adam {
	a := &adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8}
	for _, l := range layers {
		for _, n := range []int{len(l.W), len(l.B)} {
			a.m = append(a.m, make([]float64, n))
			a.v = append(a.v, make([]float64, n))
			a.g = append(a.g, make([]float64, n))
		}
	}
	return a
}

// step applies one update from the gradients in a.g (W, b of each layer).
// It refuses NaN or Inf gradients before changing any weight.
func (a *adam) step(layers []*model.Layer) error {
	for k := range a.m {
		for j, g := range a.g[k] {
			if !isFinite(g) {
				return &divergence{why: fmt.Sprintf("gradient %v in parameter %d, element %d", g, k, j)}
			}
		}
	}
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	for i, l := range layers {
		for p, w := range [][]float64{l.W, l.B} {
			k := 2*i + p
			m, v := a.m[k], a.v[k]
			for j, g := range a.g[k] {
				m[j] = a.b1*m[j] + (1-a.b1)*g
				v[j] = a.b2*v[j] + (1-a.b2)*g*g
				w[j] -= a.lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + a.eps)
			}
		}
	}
	return nil
}
