package model

// FormatVersion is the version of the artifact format written by [Save].
// [Load] refuses files of any other version.
const FormatVersion = 1

// Activation names a layer's elementwise activation.
type Activation string

// Activations used by DAGMM networks.
const (
	Linear  Activation = "linear"
	Tanh    Activation = "tanh"
	Softmax Activation = "softmax" // only on the estimation network's last layer
)

// Layer is one fully connected layer: y = act(x·W + B).
type Layer struct {
	In         int        `json:"in"`
	Out        int        `json:"out"`
	Activation Activation `json:"activation"`
	// W holds In×Out weights, row-major: W[i*Out+j] connects input i to output j.
	W []float64 `json:"w"`
	// B holds Out biases.
	B []float64 `json:"b"`
}

// NormKind names how a feature is normalised before it enters the network.
type NormKind string

// Normalisation kinds. Each maps a raw value x to (f(x) - Offset) / Scale.
const (
	NormNone   NormKind = "none"   // f(x) = x, Offset 0, Scale 1
	NormZScore NormKind = "zscore" // f(x) = x; Offset, Scale = mean, standard deviation
	NormLog    NormKind = "log"    // f(x) = sign(x)·log1p(|x|); train fits Offset, Scale = min, range of f(x)
	// NormMinSD: f(x) = x; train fits Offset = the minimum and Scale = the
	// larger of √12 standard deviations and the 1-99 percentile spread:
	// like min-max, except that a range a few spikes stretch does not
	// squeeze the typical values together; the training rows stay at or
	// above 0, away from the origin where ‖x − x'‖/‖x‖ blows up.
	NormMinSD NormKind = "min-sd"
	// NormLogMinSD: f(x) = sign(x)·log1p(|x|); train fits Offset and Scale
	// to f(x) as for NormMinSD.
	NormLogMinSD NormKind = "log-min-sd"
	NormMinMax   NormKind = "minmax" // f(x) = x; Offset, Scale = min, max - min
)

// Transform is one feature's normalisation, fitted on the training rows.
type Transform struct {
	Kind   NormKind `json:"kind"`
	Offset float64  `json:"offset"`
	Scale  float64  `json:"scale"`
	// Spread is the typical spread of f(x) over the training rows, in f's
	// units (those of Offset and Scale), as a standard deviation robust to
	// rare spikes (package train: FitNormalization): [MethodRecent]
	// measures each feature's reconstruction error in it, whatever the
	// normalisation's Scale, when every feature has one. 0 in artifacts
	// written before it existed, whose explanations measure the error in
	// normalised units.
	Spread float64 `json:"spread,omitempty"`
}

// GMM is the Gaussian mixture over the estimation input z = [z_c, relative
// Euclidean distance, cosine similarity], fitted on the whole training set with
// dropout off once training ends, without the components whose weight fell
// below the training's minimum (see Provenance.MinComponentWeight).
type GMM struct {
	K   int `json:"k"`   // number of components
	Dim int `json:"dim"` // dimension of z: code size + 2
	// Phi holds the K mixture weights; they sum to 1.
	Phi []float64 `json:"phi"`
	// Mu holds K×Dim means, row-major.
	Mu []float64 `json:"mu"`
	// Sigma holds K covariance matrices of Dim×Dim, row-major, jitter included.
	Sigma []float64 `json:"sigma"`
}

// Calibration places the anomaly threshold among the training energies.
type Calibration struct {
	// Percentile of the training energies at which Threshold is set (default 99).
	Percentile float64 `json:"percentile"`
	// Threshold: a sample whose energy is above it is an anomaly.
	Threshold float64 `json:"threshold"`
	// Quantiles holds the training energies at percentiles 0, 1, ..., 100
	// (101 values, non-decreasing): a sample's position in the training
	// distribution, for a severity a person can read.
	Quantiles []float64 `json:"quantiles"`
}

// Provenance says where a model comes from. It holds nothing that changes from
// one run to the next with the same input and seed (wall time goes in the
// training report instead), so that two such runs write the same artifact.
type Provenance struct {
	Input          string    `json:"input,omitempty"`        // input file name as given
	InputSHA256    string    `json:"input_sha256,omitempty"` // hex digest of the input file
	RowsUsed       int       `json:"rows_used"`
	RowsExcluded   int       `json:"rows_excluded"` // rows flagged in the event column
	Seed           uint64    `json:"seed"`
	Epochs         int       `json:"epochs"`
	BatchSize      int       `json:"batch_size"`
	LearningRate   float64   `json:"learning_rate"`
	Lambda1        float64   `json:"lambda1"`
	Lambda2        float64   `json:"lambda2"`
	Dropout        float64   `json:"dropout"`
	Jitter         float64   `json:"jitter"`
	DType          string    `json:"dtype"`            // float64 or float32, the training graph's type
	Losses         []float64 `json:"losses,omitempty"` // mean loss of each epoch; absent from a scorer's copy (GET /v1/model)
	ProjectVersion string    `json:"project_version"`

	// MinComponentWeight is the mixture weight below which a component was
	// dropped after training, and ComponentsDropped how many were.
	MinComponentWeight float64 `json:"min_component_weight,omitempty"`
	ComponentsDropped  int     `json:"components_dropped,omitempty"`
}

// Model is a trained DAGMM model. The zero value is not usable; build one with
// package train or read one with [Load], and call [Model.Validate] after
// changing it by hand.
type Model struct {
	// Features holds the input feature names, in the order the network reads them.
	Features []string `json:"features"`
	// Norm holds one Transform per feature.
	Norm []Transform `json:"norm"`
	// Constant holds the input columns that were constant in training, left
	// out of the network (absent from models trained before it existed).
	Constant []ConstantFeature `json:"constant,omitempty"`
	// Encoder maps the normalised input to the code z_c (last layer linear).
	Encoder []Layer `json:"encoder"`
	// Decoder maps z_c back to the normalised input (last layer linear).
	Decoder []Layer `json:"decoder"`
	// Estimator maps z to the mixture memberships (last layer softmax). Its
	// outputs may outnumber GMM.K: training drops the components that end up
	// with almost no weight (Provenance.ComponentsDropped). The scorer does
	// not need it; it is kept so that the model is complete.
	Estimator []Layer `json:"estimator"`
	// GMM is the mixture the energy is computed from.
	GMM GMM `json:"gmm"`
	// ReconWeight weighs the reconstruction error in a sample's energy:
	// the energy is E(z) + ReconWeight·‖x − x'‖², with E(z) the mixture's
	// sample energy and ‖x − x'‖² the squared reconstruction error in
	// normalised units. With ReconWeight = 1/λ1 it is the sample's own
	// training objective divided by λ1. 0 (every artifact written before
	// the field existed) scores with E(z) alone.
	ReconWeight float64 `json:"recon_weight,omitempty"`
	// Window is the number of consecutive samples of a series (one host's
	// samples in time order) whose energies make a sample's score: the
	// score is max(the sample's energy, the mean energy of the last Window
	// samples), so that an anomaly lasting several samples stands out of the
	// noise while a single far-out sample still does. The threshold and
	// quantiles stay percentiles of the training energies.
	// 0 or 1 (every artifact written before the field existed): the score is
	// the energy. [Scorer.Smooth] and [Scorer.ScoreSeries] apply it.
	Window int `json:"window,omitempty"`
	// Calibration holds the threshold.
	Calibration Calibration `json:"calibration"`
	// Provenance says how the model was trained.
	Provenance Provenance `json:"provenance"`
}
