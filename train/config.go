package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/dagmm/dagmm/model"
)

// Normalisation choices for [Config.Normalization]; [FitNormalization]
// documents them.
const (
	NormAuto = "auto" // per feature: log for heavy-tailed non-negative features, minmax otherwise
	// NormAutoSD: the log for heavy-tailed non-negative features (as auto),
	// then min-max for a feature with no far-out value (Tukey's outer
	// fences), and for the others the feature shifted to start at 0 on the
	// training rows and divided by the larger of √12 standard deviations
	// and its 1-99 percentile spread (model.NormMinSD, NormLogMinSD).
	NormAutoSD = "auto-sd"
	NormZScore = "zscore" // (x − mean) / sd
	NormLog    = "log"    // sign(x)·log1p(|x|), then scaled to [0, 1] over the rows
	NormMinMax = "minmax" // (x − min) / (max − min)
	NormNone   = "none"   // raw values
)

// Graph element types for [Config.DType]. The model artifact is float64 in
// both cases; DType only chooses the training graph's arithmetic.
const (
	Float64 = "float64"
	Float32 = "float32"
)

// Config holds the training settings. Start from [DefaultConfig], change what
// you need and call [Config.Validate] (Train calls it too).
type Config struct {
	// Encoder holds the compression network's layer sizes after the input,
	// the last one being the code size: [16, 8, 1] is d-16-8-1. The decoder
	// mirrors it (1-8-16-d). Hidden layers use tanh; the code and the
	// reconstruction are linear.
	Encoder []int
	// Estimator holds the estimation network's hidden layer sizes (tanh and
	// dropout); its input is z (code size + 2) and its output the K
	// memberships (softmax).
	Estimator []int
	// K is the number of mixture components.
	K int
	// Dropout is the probability of dropping an estimation-network hidden
	// unit during training, in [0, 1). Scoring never drops.
	Dropout float64
	// Epochs is the number of passes over the training rows (at most; see
	// MaxSamples).
	Epochs int
	// MaxSamples, when above 0, caps the training at ceil(MaxSamples/rows)
	// epochs when that is fewer than Epochs: small data sets get Epochs
	// passes, large ones about MaxSamples samples, so the training time stops
	// growing with the rows.
	MaxSamples int
	// BatchSize is the mini-batch size. The last partial batch of an epoch is
	// dropped; with fewer rows than BatchSize, one batch holds all rows.
	BatchSize int
	// LearningRate is Adam's step size.
	LearningRate float64
	// Lambda1 weighs the mean sample energy in the loss.
	Lambda1 float64
	// Lambda2 weighs the covariance penalty sum_k sum_j 1/Sigma_k[j,j].
	Lambda2 float64
	// ReconWeight weighs the squared reconstruction error in the model's
	// sample energy, E(z) + ReconWeight·‖x − x'‖² (see
	// [model.Model.ReconWeight]); 0 scores with the mixture energy E(z)
	// alone, as the DAGMM paper does. 1/Lambda1 makes a sample's energy its
	// own training objective divided by Lambda1.
	ReconWeight float64
	// Window is the number of consecutive samples whose mean energy can
	// raise a sample's score (see [model.Model.Window]); the threshold stays
	// a percentile of the training energies. 0 or 1: the score is the
	// energy.
	Window int
	// Jitter is added to every covariance diagonal, in training and in the
	// model's GMM, against singular matrices.
	Jitter float64
	// Seed makes a run reproducible: the same rows, Config and Seed give the
	// same model, bit for bit.
	Seed uint64
	// MinComponentWeight drops, once training ends, every mixture component
	// whose weight φ_k is below it (the largest is always kept), and
	// renormalises the others; 0 keeps them all. The estimation network
	// often gives a component a weight near zero yet a mean far out among
	// the rarest training rows and a broad covariance; such a component
	// gives far-away samples a low energy and hides anomalies.
	MinComponentWeight float64
	// Percentile of the training energies at which the threshold is set, in (0, 100].
	Percentile float64
	// Normalization is one of [NormAuto], [NormAutoSD], [NormZScore],
	// [NormLog], [NormMinMax], [NormNone].
	Normalization string
	// DType is the training graph's element type, [Float64] or [Float32].
	DType string
}

// DefaultConfig returns the settings that train both the seed's four-metric
// data (1000 rows, about a second) and real server metrics (the Server
// Machine Dataset, 23,700 rows of 30-odd metrics, 5-15 s here) well:
// encoder d-16-8-1 and its mirror, estimator (code+2)-10-K with dropout 0.5,
// K = 4, 200 epochs of batches of 128 but no more than about a million
// samples (MaxSamples), Adam at 1e-3, lambda1 = 0.1, lambda2 = 1e-5, jitter
// 1e-4, components below a weight of 1e-3 dropped, seed 1, threshold at the
// 99th percentile, auto-sd normalisation, float64 graph, a sample
// energy of E(z) + 10·‖x − x'‖² (ReconWeight), and a sample's score the
// larger of its energy and the mean energy of its host's last 10 samples
// (Window).
//
// Two settings differ from the DAGMM paper's, on measurement (the package
// documentation has the figures): lambda2 = 0.005 lets the diagonal penalty
// dominate, since the cosine feature of well-reconstructed rows varies by
// about 1e-3, and the mixture collapses into one broad component that hides
// the anomalies; and a learning rate of 1e-4 needs ten times the epochs on
// 1000 rows. Three more come from the Server Machine Dataset (six machines,
// three seeds; docs/real-metrics.md): the reconstruction term in the energy
// (mean AUROC 0.74 with E(z) alone, 0.83 with it), the window (0.84) and
// auto-sd rather than auto normalisation (0.867; 0.879 with min-max kept
// for the features with no far-out value), and the sample cap (43
// epochs there).
func DefaultConfig() Config {
	return Config{
		Encoder:            []int{16, 8, 1},
		Estimator:          []int{10},
		K:                  4,
		Dropout:            0.5,
		Epochs:             200,
		MaxSamples:         1_000_000,
		BatchSize:          128,
		LearningRate:       1e-3,
		Lambda1:            0.1,
		Lambda2:            1e-5,
		ReconWeight:        10,
		Window:             10,
		Jitter:             1e-4,
		MinComponentWeight: 1e-3,
		Seed:               1,
		Percentile:         99,
		Normalization:      NormAutoSD,
		DType:              Float64,
	}
}

// EpochsFor returns the number of epochs Train runs on the given number of
// rows: Epochs, or ceil(MaxSamples/rows) when MaxSamples is set and that is
// fewer.
func (c *Config) EpochsFor(rows int) int {
	if c.MaxSamples <= 0 || rows <= 0 {
		return c.Epochs
	}
	return max(1, min(c.Epochs, (c.MaxSamples+rows-1)/rows))
}

// ErrConfig is matched by every error [Config.Validate] returns.
var ErrConfig = errors.New("train: invalid config")

// Validate reports the first setting that cannot be trained with, naming the field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if len(c.Encoder) == 0 {
		return bad("encoder", "no layers; want at least the code size, e.g. [16 8 1]")
	}
	for i, s := range c.Encoder {
		if s < 1 {
			return bad("encoder", "layer %d has size %d, want >= 1", i, s)
		}
	}
	for i, s := range c.Estimator {
		if s < 1 {
			return bad("estimator", "layer %d has size %d, want >= 1", i, s)
		}
	}
	switch {
	case c.K < 1:
		return bad("k", "%d components, want >= 1", c.K)
	case !finite(c.Dropout) || c.Dropout < 0 || c.Dropout >= 1:
		return bad("dropout", "%v, want a probability in [0, 1)", c.Dropout)
	case c.Epochs < 1:
		return bad("epochs", "%d, want >= 1", c.Epochs)
	case c.BatchSize < 2:
		return bad("batch size", "%d, want >= 2", c.BatchSize)
	case !finite(c.LearningRate) || c.LearningRate <= 0:
		return bad("learning rate", "%v, want a finite number > 0", c.LearningRate)
	case !finite(c.Lambda1) || c.Lambda1 < 0:
		return bad("lambda1", "%v, want a finite number >= 0", c.Lambda1)
	case !finite(c.Lambda2) || c.Lambda2 < 0:
		return bad("lambda2", "%v, want a finite number >= 0", c.Lambda2)
	case c.MaxSamples < 0:
		return bad("max samples", "%d, want >= 0 (0: no cap)", c.MaxSamples)
	case c.Window < 0 || c.Window > model.MaxWindow:
		return bad("window", "%d, want 0 to %d", c.Window, model.MaxWindow)
	case !finite(c.ReconWeight) || c.ReconWeight < 0:
		return bad("recon weight", "%v, want a finite number >= 0", c.ReconWeight)
	case !finite(c.Jitter) || c.Jitter <= 0:
		return bad("jitter", "%v, want a finite number > 0", c.Jitter)
	case !finite(c.MinComponentWeight) || c.MinComponentWeight < 0 || c.MinComponentWeight >= 1:
		return bad("min component weight", "%v, want a weight in [0, 1)", c.MinComponentWeight)
	case !finite(c.Percentile) || c.Percentile <= 0 || c.Percentile > 100:
		return bad("percentile", "%v, want a number in (0, 100]", c.Percentile)
	}
	switch c.Normalization {
	case NormAuto, NormAutoSD, NormZScore, NormLog, NormMinMax, NormNone:
	default:
		return bad("normalization", "%q, want auto, auto-sd, zscore, log, minmax or none", c.Normalization)
	}
	switch c.DType {
	case Float64, Float32:
	default:
		return bad("dtype", "%q, want float64 or float32", c.DType)
	}
	return nil
}
