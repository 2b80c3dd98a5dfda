package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names written by [Write]; the pictures take the extension of
// Input.Format.
const (
	LossFile    = "loss"
	EnergyFile  = "energy"
	ScatterFile = "scatter"
	SummaryFile = "report.json"
)

// maxListedRows caps Summary.FlaggedRows.
const maxListedRows = 1000

// Input is what a training report is made from. cmd/dagmm fills it from the
// training run and the model; every field is plain data.
type Input struct {
	// Format of the pictures: "png" (when empty) or "svg".
	Format string
	// Losses holds the mean loss of each epoch: the total first, then its
	// parts (reconstruction, lambda1·energy, lambda2·covariance penalty), all
	// of the same length. See [LossCurve].
	Losses []Series
	// Energies holds the energy of each training sample from the final fit
	// (dropout off), in the order of the rows of X.
	Energies []float64
	// Threshold is the anomaly threshold: a sample whose energy is above it
	// is an anomaly.
	Threshold float64
	// Percentile is the percentile of Energies that Threshold was set at, in
	// (0, 100] (default 99 in package train).
	Percentile float64
	// Scored optionally holds the energies of scored samples, drawn as a
	// second series on the energy histogram.
	Scored []float64
	// Features names the columns of X, in order.
	Features []string
	// Skipped lists the input columns that are not features, with the reason.
	Skipped []SkippedColumn
	// X holds the training samples as raw (not normalised) values, row-major:
	// row i is X[i*len(Features):(i+1)*len(Features)].
	X []float64
	// Flagged marks the rows of X drawn in red on the scatter matrix. When
	// nil, a row is flagged when its energy is above Threshold, and X must
	// then have len(Energies) rows.
	Flagged []bool
	// Show optionally names the features of the scatter matrix (at most
	// MaxScatterFeatures), e.g. those with the largest share of the flagged
	// samples' reconstruction error; see [ScatterMatrix] for the default.
	Show []string
	// Duration is the wall time the training took.
	Duration time.Duration
	// Throughput is the training speed in samples per second. When zero it
	// is derived as len(Energies) × epochs / Duration.
	Throughput float64
}

// SkippedColumn is an input column that training did not use as a feature.
type SkippedColumn struct {
	Name string `json:"name"`
	// Reason says why, e.g. "excluded by default", "not numeric (string)",
	// "constant (every row is 0)".
	Reason string `json:"reason"`
	// Value is the column's value in every row, for a constant column.
	Value *float64 `json:"value,omitempty"`
}

// Summary is the content of report.json: the numbers behind the pictures.
type Summary struct {
	Epochs int `json:"epochs"`
	// Losses repeats Input.Losses; FinalLoss is the last value of the first
	// series (the total).
	Losses    []Series `json:"losses"`
	FinalLoss float64  `json:"final_loss"`

	Threshold  float64 `json:"threshold"`
	Percentile float64 `json:"percentile"`
	// Samples is the number of training samples (len(Input.Energies)) and
	// AboveThreshold how many of them have an energy above Threshold.
	Samples        int `json:"samples"`
	AboveThreshold int `json:"above_threshold"`
	// Flagged is the number of rows drawn in red on the scatter matrix, and
	// FlaggedRows their indices (the first 1,000).
	Flagged     int   `json:"flagged"`
	FlaggedRows []int `json:"flagged_rows"`
	// Scored and ScoredAboveThreshold count Input.Scored, when given.
	Scored               int `json:"scored,omitempty"`
	ScoredAboveThreshold int `json:"scored_above_threshold,omitempty"`

	DurationSeconds float64 `json:"duration_seconds"`
	Throughput      float64 `json:"throughput_samples_per_second"`

	Features      []string        `json:"features"`
	Skipped       []SkippedColumn `json:"skipped_columns"`
	FeaturesShown []string        `json:"features_shown"` // on the scatter matrix
	// Pictures holds the file names of the pictures, relative to the report
	// directory.
	Pictures []string `json:"pictures"`
}

// Write writes a training report into dir (created if missing): loss.EXT
// ([LossCurve]), energy.EXT ([EnergyHistogramScored]), scatter.EXT
// ([ScatterMatrix]) and report.json ([Summary]), where EXT is in.Format. It
// returns the paths written, in that order. Every input is checked before
// the first file is written; an error names the field and the value at fault.
func Write(dir string, in Input) ([]string, error) {
	ext, err := formatName(in.Format)
	if err != nil {
		return nil, err
	}
	sum, flagged, err := summarize(in)
	if err != nil {
		return nil, err
	}
	m, err := newMatrix(in.Features, in.X, flagged)
	if err != nil {
		return nil, err
	}
	if len(in.Show) > 0 {
		if _, err := m.lookup(in.Show); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: create report directory: %w", err)
	}
	loss := filepath.Join(dir, LossFile+"."+ext)
	energy := filepath.Join(dir, EnergyFile+"."+ext)
	scatter := filepath.Join(dir, ScatterFile+"."+ext)
	if err := LossCurve(loss, in.Losses); err != nil {
		return nil, err
	}
	if err := EnergyHistogramScored(energy, in.Energies, in.Scored, in.Threshold, in.Percentile); err != nil {
		return nil, err
	}
	shown, err := scatterMatrix(scatter, in.Features, in.X, flagged, in.Show)
	if err != nil {
		return nil, err
	}
	sum.FeaturesShown = shown
	sum.Pictures = []string{filepath.Base(loss), filepath.Base(energy), filepath.Base(scatter)}
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: encode %s: %w", SummaryFile, err)
	}
	summary := filepath.Join(dir, SummaryFile)
	if err := os.WriteFile(summary, append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("report: write summary: %w", err)
	}
	return []string{loss, energy, scatter, summary}, nil
}

// formatName normalises Input.Format to "png" or "svg".
func formatName(f string) (string, error) {
	switch s := strings.TrimPrefix(strings.ToLower(f), "."); s {
	case "":
		return "png", nil
	case "png", "svg":
		return s, nil
	default:
		return "", fmt.Errorf("%w %q (supported: png, svg)", ErrFormat, f)
	}
}

// summarize validates the numeric inputs and fills the Summary, all but the
// fields known only once the pictures are drawn. It returns the flags for
// the scatter matrix.
func summarize(in Input) (Summary, []bool, error) {
	if err := checkSeries(in.Losses); err != nil {
		return Summary{}, nil, err
	}
	if err := checkEnergies(in.Energies, in.Scored, in.Threshold, in.Percentile); err != nil {
		return Summary{}, nil, err
	}
	if in.Duration < 0 {
		return Summary{}, nil, fmt.Errorf("report: negative training duration %v", in.Duration)
	}
	if !finite(in.Throughput) || in.Throughput < 0 {
		return Summary{}, nil, fmt.Errorf("report: throughput %v is not a finite non-negative rate", in.Throughput)
	}
	flagged := in.Flagged
	if flagged == nil {
		d := max(len(in.Features), 1)
		if rows := len(in.X) / d; rows != len(in.Energies) || len(in.X)%d != 0 {
			return Summary{}, nil, fmt.Errorf("%w: feature matrix has %d values, not %d energies × %d features",
				ErrShape, len(in.X), len(in.Energies), len(in.Features))
		}
		flagged = make([]bool, len(in.Energies))
		for i, e := range in.Energies {
			flagged[i] = e > in.Threshold
		}
	}
	epochs := len(in.Losses[0].Values)
	s := Summary{
		Epochs:          epochs,
		Losses:          in.Losses,
		FinalLoss:       in.Losses[0].Values[epochs-1],
		Threshold:       in.Threshold,
		Percentile:      in.Percentile,
		Samples:         len(in.Energies),
		AboveThreshold:  countAbove(in.Energies, in.Threshold),
		FlaggedRows:     []int{},
		DurationSeconds: in.Duration.Seconds(),
		Throughput:      in.Throughput,
		Features:        in.Features,
		Skipped:         in.Skipped,
	}
	if s.Skipped == nil {
		s.Skipped = []SkippedColumn{}
	}
	for i, f := range flagged {
		if !f {
			continue
		}
		s.Flagged++
		if len(s.FlaggedRows) < maxListedRows {
			s.FlaggedRows = append(s.FlaggedRows, i)
		}
	}
	if len(in.Scored) > 0 {
		s.Scored = len(in.Scored)
		s.ScoredAboveThreshold = countAbove(in.Scored, in.Threshold)
	}
	if s.Throughput == 0 && in.Duration > 0 {
		s.Throughput = float64(len(in.Energies)) * float64(epochs) / in.Duration.Seconds()
	}
	return s, flagged, nil
}
