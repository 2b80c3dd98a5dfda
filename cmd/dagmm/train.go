package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/report"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// trainFlags are the flags of dagmm train that set a train.Config.
type trainFlags struct {
	cfg      train.Config
	encoder  intListFlag
	est      intListFlag
	features listFlag
	exclude  listFlag
	// noDefaultExclude: --exclude replaces datasets.DefaultExclude instead
	// of adding to it.
	noDefaultExclude bool
	event            string
	// host, when not empty, keeps only the rows whose host column holds it
	// (dagmm train --host).
	host string
}

func addTrainFlags(fs *flag.FlagSet, tf *trainFlags) {
	tf.cfg = train.DefaultConfig()
	tf.encoder = intListFlag(tf.cfg.Encoder)
	tf.est = intListFlag(tf.cfg.Estimator)
	c := &tf.cfg
	fs.Var(&tf.features, "features", "comma-separated feature `columns` (default: every numeric column not excluded)")
	fs.Var(&tf.exclude, "exclude", "comma-separated `columns` never used as features when --features is not given, added to the default exclusions ("+strings.Join(datasets.DefaultExclude(), ", ")+")")
	fs.BoolVar(&tf.noDefaultExclude, "no-default-exclude", false, "use the columns "+strings.Join(datasets.DefaultExclude(), ", ")+" as features too when they are numeric (--exclude still applies)")
	fs.StringVar(&tf.event, "event", datasets.DefaultEventColumn, "`column` in which the existing monitoring flags rows; flagged rows are not trained on (ignored when absent)")
	fs.Var(&tf.encoder, "encoder", "compression network layer `sizes` after the input, the last being the code size; the decoder mirrors it")
	fs.Var(&tf.est, "estimator", "estimation network hidden layer `sizes`")
	fs.IntVar(&c.K, "k", c.K, "number of Gaussian mixture components")
	fs.Float64Var(&c.Dropout, "dropout", c.Dropout, "dropout probability on the estimation network's hidden units while training")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "passes over the training rows (at most; see --max-samples)")
	fs.IntVar(&c.MaxSamples, "max-samples", c.MaxSamples, "cap the epochs at about this many samples in all (0: no cap)")
	fs.Float64Var(&c.ReconWeight, "recon-weight", c.ReconWeight, "weight of the squared reconstruction error in a sample's energy (0: the mixture energy alone, as in the paper)")
	fs.IntVar(&c.Window, "window", c.Window, "a sample's score is the larger of its energy and the mean energy of its host's last `N` samples (0 or 1: the energy)")
	fs.IntVar(&c.BatchSize, "batch", c.BatchSize, "mini-batch size")
	fs.Float64Var(&c.LearningRate, "lr", c.LearningRate, "Adam learning rate")
	fs.Float64Var(&c.Lambda1, "lambda1", c.Lambda1, "weight of the mean sample energy in the loss")
	fs.Float64Var(&c.Lambda2, "lambda2", c.Lambda2, "weight of the covariance penalty sum(1/diag Sigma) in the loss")
	fs.Float64Var(&c.Jitter, "jitter", c.Jitter, "added to every covariance diagonal against singular matrices")
	fs.Float64Var(&c.MinComponentWeight, "min-component-weight", c.MinComponentWeight, "after training, drop the mixture components whose weight is below this (0 keeps all)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed: the same data, flags and seed write the same model")
	fs.Float64Var(&c.Percentile, "percentile", c.Percentile, "percentile of the training energies at which the anomaly threshold is set")
	fs.StringVar(&c.Normalization, "norm", c.Normalization, "input normalisation: auto-sd (log for heavy-tailed rates; then min-max for a feature with no far-out value, and for the others the feature minus its minimum, over the larger of sqrt(12) standard deviations and its 1-99 percentile spread), auto (log then [0, 1] for heavy-tailed rates, min-max otherwise), zscore, log, minmax or none")
	fs.StringVar(&c.DType, "dtype", c.DType, "training arithmetic: float64 or float32 (the model is float64 either way)")
}

// config returns the train.Config the flags describe.
func (tf *trainFlags) config() train.Config {
	c := tf.cfg
	c.Encoder = []int(tf.encoder)
	c.Estimator = []int(tf.est)
	return c
}

func runTrain(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "train", "[flags] -o MODEL INPUT",
		`Train learns what normal looks like from a Parquet or CSV file of metrics and
writes a model file. Rows flagged in the event column are removed first, so
the model learns from normal data. Features are the numeric columns by name
(--features), by default every numeric column except timestamp, ts, time,
host, label, event and those named by --exclude. A column that holds one
value in every training row is left out of the network and recorded in the
model, so that inputs may still carry it. Every run states on stderr the
columns it uses and those it skips, with the reason. The anomaly threshold
is set at --percentile of the training energies.

Beside the model it writes a training report (a directory named after the
model with "-report"): the loss curve, the energy histogram with the
threshold, a scatter matrix with the flagged training samples in red, and
report.json with the numbers. Progress goes to stderr: a progress bar on a
terminal, log lines otherwise.`,
		`  dagmm train -o model.json metrics.parquet
  dagmm train --features cpu_usage,mem_usage,disk_busy,net_in_bps --epochs 300 -o model.json metrics.csv
  dagmm train --host db-1 -o db-1.json fleet-train.parquet
  dagmm train --encoder 60,30,10,1 --k 4 --batch 1024 --lr 1e-4 --norm none -o kdd.json kddcup99.parquet`)
	var tf trainFlags
	addTrainFlags(fs, &tf)
	out := fs.String("o", "", "model `file` to write; required")
	reportDir := fs.String("report", "", "training report `directory` (default: MODEL without extension + \"-report\"; \"-\" for none)")
	format := fs.String("report-format", "png", "picture format of the training report: png or svg")
	fs.StringVar(&tf.host, "host", "", "train on the rows whose host column holds `name` only (one host's model from a fleet's file)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usagef("a model file is required: -o model.json")
	case fs.NArg() != 1:
		return usagef("want exactly one input file, got %d arguments", fs.NArg())
	case *format != "png" && *format != "svg":
		return usagef("--report-format %q: want png or svg", *format)
	}
	dir := *reportDir
	if dir == "" {
		dir = strings.TrimSuffix(*out, filepath.Ext(*out)) + "-report"
	}
	if err := checkOutputs(*out, dir); err != nil {
		return err
	}
	in := fs.Arg(0)
	data, err := loadTrainingData(env, in, &tf)
	if err != nil {
		return err
	}
	logColumns(env, data)
	cfg := tf.config()
	env.log.Info("training", "input", in, "rows", data.rows, "excluded", data.excluded, "features", data.features,
		"encoder", cfg.Encoder, "k", cfg.K, "epochs", cfg.Epochs, "batch", cfg.BatchSize, "seed", cfg.Seed)
	m, rep, err := fitModel(ctx, in, data, cfg, progressPrinter(env, cfg.EpochsFor(len(data.x)/len(data.features))))
	if err != nil {
		return err
	}
	if err := model.Save(*out, m); err != nil {
		return err
	}
	flagged := countAbove(rep.Energies, m.Calibration.Threshold)
	fmt.Fprintf(env.stdout, "wrote %s: %d features, %d rows used, %d excluded by events, threshold %.4g (%gth percentile), %d training rows above it; %s at %.0f samples/s\n",
		*out, len(m.Features), data.rows, data.excluded, m.Calibration.Threshold, m.Calibration.Percentile, flagged,
		rep.Duration.Round(time.Millisecond), rep.SamplesPerSec)
	if dir == "-" {
		return nil
	}
	paths, err := report.Write(dir, reportInput(m, rep, data, *format))
	if err != nil {
		return fmt.Errorf("write training report: %w", err)
	}
	fmt.Fprintf(env.stdout, "training report: %s\n", strings.Join(paths, ", "))
	return nil
}

// fitModel trains a model on data, read from the file in, and records where
// it came from: what dagmm train does between reading and writing, shared
// with dagmm eval so that eval measures what train makes.
func fitModel(ctx context.Context, in string, data *trainingData, cfg train.Config, progress func(train.Progress)) (*model.Model, *train.Report, error) {
	m, rep, err := train.Train(ctx, data.features, data.x, cfg, progress)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: %w", in, err)
	}
	m.Constant = data.constant
	m.Provenance.Input = filepath.Base(in)
	m.Provenance.InputSHA256 = data.digest
	m.Provenance.RowsExcluded = data.excluded
	return m, rep, nil
}

// trainingData is what dagmm train reads from its input file.
type trainingData struct {
	all      []string // the feature columns chosen, in file order, constant ones too
	features []string
	x        []float64 // rows × len(features), raw values
	rows     int
	excluded int
	digest   string // hex SHA-256 of the input file
	// constant holds the feature columns left out for holding one value in
	// every row, and skipped every column not used, with the reason.
	constant []model.ConstantFeature
	skipped  []report.SkippedColumn
}

func loadTrainingData(env *cliEnv, path string, tf *trainFlags) (*trainingData, error) {
	digest, err := fileDigest(path)
	if err != nil {
		return nil, err
	}
	t, err := datasets.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if tf.host != "" {
		if t, err = hostRows(t, tf.host); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return prepareTraining(t, path, digest, tf)
}

// prepareTraining turns the rows t read from the file path (its SHA-256
// digest) into training data as dagmm train does: the rows flagged in the
// event column removed, the features chosen, constant ones set aside.
func prepareTraining(t *datasets.Table, path, digest string, tf *trainFlags) (*trainingData, error) {
	excluded := 0
	var err error
	if _, ok := t.Column(tf.event); ok {
		t, excluded, err = datasets.RemoveEvents(t, tf.event)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	choice := columnChoice{features: tf.features, exclude: tf.exclude, defaults: !tf.noDefaultExclude, event: tf.event}
	features, skipped, err := choice.choose(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	x, err := datasets.Matrix(t, features)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	all := features
	features, x, constant := train.SplitConstant(features, x)
	skipped = append(skipped, constantColumns(constant)...)
	if len(features) == 0 {
		return nil, fmt.Errorf("%s: every feature column is constant (%s): nothing to learn from", path, strings.Join(all, ", "))
	}
	return &trainingData{all: all, features: features, x: x, rows: t.Len(), excluded: excluded, digest: digest,
		constant: constant, skipped: skipped}, nil
}

// logColumns states the columns a training run uses and those it skips,
// with the reason; constant and text columns get a warning.
func logColumns(env *cliEnv, data *trainingData) {
	env.log.Info("columns used", "features", strings.Join(data.features, ","))
	var constant []string
	for _, s := range data.skipped {
		switch {
		case s.Value != nil:
			constant = append(constant, fmt.Sprintf("%s=%v", s.Name, *s.Value))
		case strings.HasPrefix(s.Reason, reasonNotNumeric):
			env.log.Warn("column skipped: not numeric", "column", s.Name, "reason", s.Reason)
		default:
			env.log.Info("column skipped", "column", s.Name, "reason", s.Reason)
		}
	}
	if len(constant) > 0 {
		env.log.Warn("columns left out of the network: constant in every training row; the model records them, inputs may carry them, and a sample departing from one is an anomaly",
			"columns", strings.Join(constant, ","))
	}
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// progressPrinter returns a train progress callback: a bar redrawn in place
// on a terminal, about twenty log lines per run otherwise.
func progressPrinter(env *cliEnv, epochs int) func(train.Progress) {
	every := max(1, epochs/20)
	return func(p train.Progress) {
		if env.tty {
			const width = 30
			done := width * p.Epoch / max(p.Epochs, 1)
			fmt.Fprintf(env.stderr, "\repoch %*d/%d [%s%s] loss %-10.5g %8.0f samples/s %s",
				len(fmt.Sprint(p.Epochs)), p.Epoch, p.Epochs, strings.Repeat("=", done), strings.Repeat(" ", width-done),
				p.Loss, p.SamplesPerSec, p.Elapsed.Round(100*time.Millisecond))
			if p.Epoch == p.Epochs {
				fmt.Fprintln(env.stderr)
			}
			return
		}
		if p.Epoch%every == 0 || p.Epoch == p.Epochs || p.Epoch == 1 {
			env.log.LogAttrs(context.Background(), slog.LevelInfo, "epoch",
				slog.Int("epoch", p.Epoch), slog.Int("epochs", p.Epochs), slog.Float64("loss", p.Loss),
				slog.Float64("recon", p.Recon), slog.Float64("energy", p.Energy), slog.Float64("penalty", p.Penalty),
				slog.Float64("samples_per_sec", p.SamplesPerSec))
		}
	}
}

func reportInput(m *model.Model, rep *train.Report, data *trainingData, format string) report.Input {
	n := len(rep.Epochs)
	total, recon, energy, penalty := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	p := m.Provenance
	for i, e := range rep.Epochs {
		total[i], recon[i], energy[i], penalty[i] = e.Loss, e.Recon, p.Lambda1*e.Energy, p.Lambda2*e.Penalty
	}
	return report.Input{
		Format: format,
		Losses: []report.Series{
			{Name: "loss", Values: total},
			{Name: "reconstruction", Values: recon},
			{Name: "lambda1 x energy", Values: energy},
			{Name: "lambda2 x covariance penalty", Values: penalty},
		},
		Energies:   rep.Energies,
		Threshold:  m.Calibration.Threshold,
		Percentile: m.Calibration.Percentile,
		Features:   data.features,
		Skipped:    data.skipped,
		X:          data.x,
		Duration:   rep.Duration,
		Throughput: rep.SamplesPerSec,
	}
}

func countAbove(v []float64, threshold float64) int {
	n := 0
	for _, e := range v {
		if e > threshold {
			n++
		}
	}
	return n
}

// hostRows returns the rows of t whose host column holds host; a file
// without a host column, or without that host, is an error naming the
// hosts it has.
func hostRows(t *datasets.Table, host string) (*datasets.Table, error) {
	names, groups, err := hostGroups(t)
	if err != nil {
		return nil, err
	}
	i := slices.Index(names, host)
	if i < 0 {
		return nil, fmt.Errorf("no rows of host %q (hosts: %s)", host, hostList(names))
	}
	return t.Take(groups[i]), nil
}

// hostGroups returns the values of t's host column in order of first
// appearance and each one's rows, in file order.
func hostGroups(t *datasets.Table) (names []string, rows [][]int, err error) {
	c, ok := t.Column("host")
	if !ok {
		return nil, nil, fmt.Errorf("no host column (columns: %s)", strings.Join(t.Names(), ", "))
	}
	index := map[string]int{}
	for i := range t.Len() {
		h := c.Text(i)
		k, ok := index[h]
		if !ok {
			k = len(names)
			index[h] = k
			names = append(names, h)
			rows = append(rows, nil)
		}
		rows[k] = append(rows[k], i)
	}
	return names, rows, nil
}

// hostList names the first hosts of names, and how many more there are.
func hostList(names []string) string {
	const shown = 10
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}
