package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// untrainedLR is the learning rate of the --untrained baseline: one epoch at
// this rate changes no weight by more than 1e-300 (below one ulp of any
// weight Glorot draws), so the network keeps its random initialisation and
// only the mixture is fitted. train.Config needs at least one epoch and a
// positive rate.
const untrainedLR = 1e-300

// maxLossPoints is about the most epoch losses the JSON report keeps per run.
const maxLossPoints = 250

// energySampleStream is the PCG stream that draws the rows --energies-sample
// keeps.
const energySampleStream = 0xe4e7

// evalSetup is what every run of one evaluation shares.
type evalSetup struct {
	input    string
	preset   string
	cfg      train.Config // cfg.Seed is the first run's seed
	paper    *train.Paper // nil without a paper preset
	why      string       // the preset's departures from the paper
	features []string
	x        []float64 // all rows, n×d raw values
	labels   []bool
	ratio    float64 // r of the paper's threshold
	fraction float64
	runs     int
	baseline bool // also evaluate the untrained network
}

// evalScore is one network's figures in one run.
type evalScore struct {
	// Status is "ok" or "diverged" (then Error says why, and the figures are 0).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Ratio is flagged at the paper's threshold (top r of train+test
	// energies), Percentile at the serving threshold (a percentile of the
	// training energies).
	Ratio      datasets.Detection `json:"ratio_threshold"`
	Percentile datasets.Detection `json:"percentile_threshold"`
	AUROC      float64            `json:"auroc"`
	AUPRC      float64            `json:"auprc"`
	// FinalLoss is the last epoch's mean loss. Losses holds the mean loss of
	// the epochs LossEpochs (1-based): every epoch up to maxLossPoints
	// epochs, evenly spaced ones and the last beyond. The untrained network
	// has none.
	FinalLoss  float64   `json:"final_loss"`
	LossEpochs []int     `json:"loss_epochs,omitempty"`
	Losses     []float64 `json:"losses,omitempty"`
	// TrainSeconds is train.Train's wall time, Seconds the whole run's
	// (training, then scoring the test rows).
	TrainSeconds float64 `json:"train_seconds"`
	Seconds      float64 `json:"seconds"`
	// Components is the number of mixture components the model kept
	// (train.Config.MinComponentWeight).
	Components int `json:"components,omitempty"`

	trainEnergies, testEnergies []float64
}

// evalRun is one seed's split and results.
type evalRun struct {
	Run           int        `json:"run"`
	Seed          uint64     `json:"seed"`
	TrainRows     int        `json:"train_rows"`
	TestRows      int        `json:"test_rows"`
	TestAnomalies int        `json:"test_anomalies"`
	Features      int        `json:"features"` // columns trained on (constant ones dropped)
	Trained       evalScore  `json:"trained"`
	Untrained     *evalScore `json:"untrained,omitempty"`

	testLabels []bool
}

// meanSD is a figure's mean and sample standard deviation over runs.
type meanSD struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

func (m meanSD) String() string { return fmt.Sprintf("%.4f ± %.4f", m.Mean, m.SD) }

// detectionSummary summarises precision, recall and F1 at one threshold.
type detectionSummary struct {
	Precision meanSD `json:"precision"`
	Recall    meanSD `json:"recall"`
	F1        meanSD `json:"f1"`
}

// evalSummary summarises one network's runs; diverged runs are counted, not
// averaged.
type evalSummary struct {
	Runs         int              `json:"runs"`
	Diverged     int              `json:"diverged"`
	Ratio        detectionSummary `json:"ratio_threshold"`
	Percentile   detectionSummary `json:"percentile_threshold"`
	AUROC        meanSD           `json:"auroc"`
	AUPRC        meanSD           `json:"auprc"`
	TrainSeconds meanSD           `json:"train_seconds"`
	Seconds      meanSD           `json:"seconds"`
}

// evalReport is the whole evaluation, as --json writes it.
type evalReport struct {
	Command   string       `json:"command"`
	Input     string       `json:"input"`
	Preset    string       `json:"preset"`
	Rows      int          `json:"rows"`
	Anomalies int          `json:"anomalies"`
	Features  int          `json:"features"`
	Ratio     float64      `json:"anomaly_ratio"`
	Fraction  float64      `json:"train_fraction"`
	Config    train.Config `json:"config"`
	Paper     *train.Paper `json:"paper,omitempty"`
	// Why says where the preset departs from the paper's settings.
	Why        string       `json:"why,omitempty"`
	Runs       []evalRun    `json:"runs"`
	Trained    evalSummary  `json:"trained"`
	Untrained  *evalSummary `json:"untrained,omitempty"`
	Machine    evalMachine  `json:"machine"`
	Started    time.Time    `json:"started"`
	Seconds    float64      `json:"seconds"`
	Version    string       `json:"version"`
	EnergyFile string       `json:"energies_file,omitempty"`
	EnergyRun  int          `json:"energies_run,omitempty"`
}

// evalMachine describes where the figures were measured.
type evalMachine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu,omitempty"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Go         string `json:"go"`
}

func runEval(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "eval", "[flags] LABELLED_FILE | --train TRAIN_FILE TEST_FILE | DIRECTORY",
		`Eval measures how well dagmm finds anomalies, in one of two ways.

On pre-split real data (--train TRAIN_FILE TEST_FILE, or a DIRECTORY of
NAME-train.parquet / NAME-test.parquet pairs, or .csv) it trains on each
training file exactly as dagmm train does (its defaults and training flags;
columns constant on the training rows left out), scores the labelled test
file as dagmm score does (rows in file order), for --seeds seeds, and
reports per pair and as the mean over pairs: AUROC, AUPRC, point-wise F1 at
the model's own threshold and the best F1 over thresholds, and beside them
point-adjusted F1 (a whole labelled segment counts as found when any of its
rows is flagged; it flatters every method). The same run measures three
baselines with the same figures: PCA (3 components, squared reconstruction
error), k nearest neighbours (k = 5, mean distance to the training rows),
and PCA over a window of the last 5 rows, each thresholded at the 99th
percentile of its training scores. With an interpretation file
(NAME-interpretation.txt in the directory, or --interpretation; lines
START-END:DIMS, END excluded, DIMS 1-based metric numbers) it also explains
every anomalous test row inside an interpreted segment with each
explanation method and reports HitRate@100% and @150% beside two rankings:
PCA per-metric reconstruction error and absolute z-score.

With --per-host, on pre-split fleet data (files with a host column, such as
dagmm gen --hosts writes) it trains, for each of --seeds seeds, one model
per host on that host's training rows and one fleet model on every host's
training rows, each as dagmm train does, scores every host's test rows with
both as dagmm score does, and reports for each approach F1, precision and
recall with each row flagged at the threshold of the model that scores it,
AUROC and AUPRC over every row (by its score minus that threshold) and per
host, and the recall of each kind of anomaly (the --kind column), as mean
± sd over the runs (pairs × seeds).

On one labelled file it runs the DAGMM paper's benchmark protocol (Zong et al., ICLR 2018,
Table 2) on a Parquet or CSV file with a 0/1 label column (1 = anomaly).
For each of --runs seeds (--seed, --seed+1, ...) it trains on a random half
of the normal rows and tests on the other half plus every anomaly, then
reports precision, recall and F1 of the anomaly class at two thresholds:

  ratio:      the paper's rule, the top r of the training and test energies
              together are anomalies, r being the file's anomaly ratio
              (--ratio to override);
  percentile: the serving rule, energies above the --percentile of the
              training energies are anomalies;

and the threshold-free AUROC and AUPRC, with each run's wall time, then the
mean and standard deviation over runs. A run whose training diverges is
reported as diverged and left out of the means, never hidden.

--preset chooses the paper data set's settings (kddcup, thyroid, arrhythmia;
auto picks one from the file name, default is the train command's defaults);
every training flag overrides the preset. With normalisation other than
none, feature columns constant on a run's training rows are dropped for that
run. --untrained also scores each seed's untrained network (random weights,
mixture fitted on the training rows) beside the trained one.

The training flags' defaults listed below are the train command's; a preset's
own settings apply unless the flag is given. The presets:

`+presetHelp(),
		`  dagmm eval ../shared/datasets/smd
  dagmm eval --seeds 5 --markdown real.md --train smd-1-6-train.parquet --interpretation smd-1-6-interpretation.txt smd-1-6-test.parquet
  dagmm eval --per-host --seeds 5 --train fleet-train.parquet fleet-test.parquet
  dagmm eval ../shared/datasets/thyroid.parquet
  dagmm eval --preset kddcup --runs 10 --untrained --json kdd.json ../shared/datasets/kddcup99.parquet
  dagmm eval --preset arrhythmia --epochs 500 --lr 1e-4 --csv runs.csv arrhythmia.parquet
  dagmm eval --preset thyroid --runs 1 --energies-out energies.csv thyroid.parquet`)
	var tf trainFlags
	addTrainFlags(fs, &tf)
	preset := fs.String("preset", "auto", "settings `name`: kddcup, thyroid, arrhythmia, default (the train command's defaults) or auto (from the file name)")
	runs := fs.Int("runs", 10, "number of runs, each with its own seed and split")
	label := fs.String("label", "label", "label `column`: 1 = anomaly, 0 = normal")
	fraction := fs.Float64("train-fraction", 0.5, "share of the normal rows trained on in each run")
	ratio := fs.Float64("ratio", 0, "anomaly ratio r of the paper's threshold, in (0, 1); 0 = the file's share of anomalies")
	untrained := fs.Bool("untrained", false, "also evaluate each seed's untrained network (random weights, fitted mixture)")
	jsonOut := fs.String("json", "", "write every figure as JSON to `file` (\"-\" = stdout, instead of the table)")
	csvOut := fs.String("csv", "", "write one CSV line per run and network, then the means, to `file` (\"-\" = stdout)")
	mdOut := fs.String("markdown", "", "write a Markdown section with the means beside the paper's figures to `file` (\"-\" = stdout)")
	energiesOut := fs.String("energies-out", "", "write one run's per-sample energies and labels to `file` (.csv or .parquet)")
	energiesRun := fs.Int("energies-run", 1, "the run whose energies --energies-out writes (1-based)")
	energiesSample := fs.Int("energies-sample", 0, "write at most `n` rows to --energies-out, drawn at random (seeded); 0 = every row")
	trainFile := fs.String("train", "", "pre-split data: the training `file`; the argument is then the labelled test file")
	seeds := fs.Int("seeds", 3, "pre-split data: number of seeds (--seed, --seed+1, ...)")
	interp := fs.String("interpretation", "", "pre-split data with --train: the interpretation `file` (START-END:DIMS a line) for explanation accuracy")
	explainRows := fs.Int("explain-rows", 0, "pre-split data: explain at most `n` rows per pair, evenly spaced (0 = every anomalous row in an interpreted segment)")
	perHost := fs.Bool("per-host", false, "pre-split fleet data: one model per host (the host column) against one model for every host's rows")
	kind := fs.String("kind", "kind", "with --per-host: `column` naming each anomaly's kind, for the recall of each kind (ignored when absent)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one labelled input file (or a test file with --train, or a directory of pairs), got %d arguments", fs.NArg())
	}
	if st, err := os.Stat(fs.Arg(0)); *trainFile != "" || (err == nil && st.IsDir()) {
		if *explainRows < 0 {
			return usagef("--explain-rows %d: want 0 (every row) or more", *explainRows)
		}
		if *perHost {
			return runEvalPerHost(ctx, env, fs, &tf, *seeds, *label, *kind, *trainFile, *jsonOut, *mdOut, args)
		}
		if kindSet(fs) {
			return usagef("--kind: only with --per-host")
		}
		s := &realSetup{tf: &tf, seeds: *seeds, label: *label, explainRows: *explainRows}
		return runEvalReal(ctx, env, fs, &tf, s, *trainFile, *interp, *jsonOut, *mdOut, args)
	}
	var realOnly []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seeds" || f.Name == "interpretation" || f.Name == "explain-rows" || f.Name == "per-host" || f.Name == "kind" {
			realOnly = append(realOnly, "--"+f.Name)
		}
	})
	switch {
	case len(realOnly) > 0:
		return usagef("%s: only for pre-split data (--train, or a directory)", strings.Join(realOnly, ", "))
	case *runs < 1:
		return usagef("--runs %d: want at least 1", *runs)
	case *energiesRun < 1 || *energiesRun > *runs:
		return usagef("--energies-run %d: want a run between 1 and %d", *energiesRun, *runs)
	case *energiesSample < 0:
		return usagef("--energies-sample %d: want 0 (every row) or more", *energiesSample)
	case *ratio != 0 && !(*ratio > 0 && *ratio < 1):
		return usagef("--ratio %v: want a share in (0, 1), or 0 for the file's own", *ratio)
	case !(*fraction > 0 && *fraction < 1):
		return usagef("--train-fraction %v: want a share in (0, 1)", *fraction)
	}
	in := fs.Arg(0)
	setup := &evalSetup{input: in, fraction: *fraction, runs: *runs, baseline: *untrained}
	if err := setup.configure(fs, &tf, *preset); err != nil {
		return err
	}
	if err := setup.load(env, &tf, *label); err != nil {
		return err
	}
	if *ratio != 0 {
		setup.ratio = *ratio
	}

	start := time.Now()
	rep := setup.report(args, start)
	for r := range *runs {
		run, err := setup.run(ctx, env, r)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, *run)
		if r+1 == *energiesRun && *energiesOut != "" {
			if err := writeEnergies(*energiesOut, run, *energiesSample); err != nil {
				return err
			}
			rep.EnergyFile, rep.EnergyRun = *energiesOut, run.Run
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.summarise()
	return rep.write(env, *jsonOut, *csvOut, *mdOut)
}

// kindSet reports whether --kind was given.
func kindSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "kind" })
	return set
}

// presetHelp describes each preset's settings, for --help.
func presetHelp() string {
	var b strings.Builder
	for _, p := range train.Presets() {
		c := p.Config
		enc, est := intListFlag(c.Encoder), intListFlag(c.Estimator)
		fmt.Fprintf(&b, "  %-11s encoder %s, estimator %s, K %d, %d epochs, batch %d, lr %g,\n              lambda1 %g, lambda2 %g, dropout %g, normalisation %s\n",
			p.Name, enc.String(), est.String(), c.K, c.Epochs, c.BatchSize,
			c.LearningRate, c.Lambda1, c.Lambda2, c.Dropout, c.Normalization)
	}
	return strings.TrimRight(b.String(), "\n")
}

// configure picks the preset and applies the training flags given on the
// command line over it.
func (s *evalSetup) configure(fs *flag.FlagSet, tf *trainFlags, name string) error {
	s.cfg = train.DefaultConfig()
	s.preset = "default"
	if name == "auto" {
		name = "default"
		base := strings.ToLower(filepath.Base(s.input))
		for _, p := range train.PresetNames() {
			if strings.Contains(base, p) {
				name = p
			}
		}
	}
	if name != "default" {
		p, err := train.LookupPreset(name)
		if err != nil {
			return usagef("--preset: %v", err)
		}
		s.cfg, s.preset, s.paper, s.why = p.Config, p.Name, &p.Paper, p.Why
	}
	flagCfg := tf.config()
	c := &s.cfg
	var bad error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "encoder":
			c.Encoder = flagCfg.Encoder
		case "estimator":
			c.Estimator = flagCfg.Estimator
		case "k":
			c.K = flagCfg.K
		case "dropout":
			c.Dropout = flagCfg.Dropout
		case "epochs":
			c.Epochs = flagCfg.Epochs
		case "batch":
			c.BatchSize = flagCfg.BatchSize
		case "lr":
			c.LearningRate = flagCfg.LearningRate
		case "lambda1":
			c.Lambda1 = flagCfg.Lambda1
		case "lambda2":
			c.Lambda2 = flagCfg.Lambda2
		case "jitter":
			c.Jitter = flagCfg.Jitter
		case "min-component-weight":
			c.MinComponentWeight = flagCfg.MinComponentWeight
		case "seed":
			c.Seed = flagCfg.Seed
		case "percentile":
			c.Percentile = flagCfg.Percentile
		case "norm":
			c.Normalization = flagCfg.Normalization
		case "max-samples":
			c.MaxSamples = flagCfg.MaxSamples
		case "recon-weight":
			c.ReconWeight = flagCfg.ReconWeight
		case "window":
			c.Window = flagCfg.Window
		case "dtype":
			c.DType = flagCfg.DType
		case "event":
			bad = usagef("--event: eval trains on the normal rows by label; there is no event column to use")
		}
	})
	if bad != nil {
		return bad
	}
	if err := c.Validate(); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// load reads the labelled file: the features, the matrix and the labels.
func (s *evalSetup) load(env *cliEnv, tf *trainFlags, label string) error {
	t, err := datasets.ReadFile(s.input)
	if err != nil {
		return err
	}
	s.labels, err = datasets.Labels(t, label)
	if err != nil {
		return fmt.Errorf("%s: %w", s.input, err)
	}
	exclude := append([]string(tf.exclude), label)
	s.features, err = datasets.SelectFeatures(t, tf.features, exclude)
	if err != nil {
		return fmt.Errorf("%s: %w", s.input, err)
	}
	for _, f := range s.features {
		if f == label {
			return usagef("--features: the label column %q cannot be a feature", label)
		}
	}
	s.x, err = datasets.Matrix(t, s.features)
	if err != nil {
		return fmt.Errorf("%s: %w", s.input, err)
	}
	s.ratio = datasets.AnomalyRatio(s.labels)
	if s.ratio == 0 || s.ratio == 1 {
		return fmt.Errorf("%s: column %q: %d of %d rows are anomalies; the protocol needs both classes", s.input, label,
			int(math.Round(s.ratio*float64(len(s.labels)))), len(s.labels))
	}
	c := s.cfg
	env.log.Info("evaluating", "input", s.input, "preset", s.preset, "rows", len(s.labels), "features", len(s.features),
		"anomaly_ratio", s.ratio, "runs", s.runs, "encoder", c.Encoder, "estimator", c.Estimator, "k", c.K,
		"epochs", c.Epochs, "batch", c.BatchSize, "lr", c.LearningRate, "lambda1", c.Lambda1, "lambda2", c.Lambda2,
		"norm", c.Normalization, "jitter", c.Jitter)
	return nil
}

// report starts the JSON report with what is known before the runs.
func (s *evalSetup) report(args []string, start time.Time) *evalReport {
	anomalies := 0
	for _, l := range s.labels {
		if l {
			anomalies++
		}
	}
	return &evalReport{
		Command:   strings.Join(append([]string{"dagmm", "eval"}, args...), " "),
		Input:     s.input,
		Preset:    s.preset,
		Rows:      len(s.labels),
		Anomalies: anomalies,
		Features:  len(s.features),
		Ratio:     s.ratio,
		Fraction:  s.fraction,
		Config:    s.cfg,
		Paper:     s.paper,
		Why:       s.why,
		Machine: evalMachine{
			CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: cpuModel(),
			OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(),
		},
		Started: start.UTC().Round(time.Second),
		Version: buildinfo.String(),
	}
}

// run evaluates run r (0-based): split, train, score.
func (s *evalSetup) run(ctx context.Context, env *cliEnv, r int) (*evalRun, error) {
	seed := s.cfg.Seed + uint64(r)
	split, err := datasets.SplitNormal(s.labels, s.fraction, seed)
	if err != nil {
		return nil, fmt.Errorf("%s: run %d: %w", s.input, r+1, err)
	}
	d := len(s.features)
	cols := make([]int, d)
	for j := range cols {
		cols[j] = j
	}
	if s.cfg.Normalization != train.NormNone {
		cols = datasets.VaryingColumns(s.x, d, split.Train)
	}
	features := datasets.Pick(s.features, cols)
	xtr := datasets.Rows(s.x, d, split.Train)
	if len(cols) < d {
		xtr = datasets.SelectColumns(xtr, d, cols)
	}
	run := &evalRun{
		Run: r + 1, Seed: seed, TrainRows: len(split.Train), TestRows: len(split.Test), Features: len(cols),
		testLabels: datasets.Pick(s.labels, split.Test),
	}
	for _, l := range run.testLabels {
		if l {
			run.TestAnomalies++
		}
	}
	cfg := s.cfg
	cfg.Seed = seed
	run.Trained, err = s.evaluate(ctx, cfg, features, xtr, split.Test, cols, run.testLabels)
	if err != nil {
		return nil, fmt.Errorf("%s: run %d (seed %d): %w", s.input, r+1, seed, err)
	}
	if s.baseline {
		ucfg := cfg
		ucfg.Epochs, ucfg.LearningRate = 1, untrainedLR
		u, err := s.evaluate(ctx, ucfg, features, xtr, split.Test, cols, run.testLabels)
		if err != nil {
			return nil, fmt.Errorf("%s: run %d (seed %d), untrained: %w", s.input, r+1, seed, err)
		}
		u.Losses, u.LossEpochs = nil, nil
		run.Untrained = &u
	}
	logRun(env, run, "trained", &run.Trained)
	if run.Untrained != nil {
		logRun(env, run, "untrained", run.Untrained)
	}
	return run, nil
}

// logRun logs one network's figures in one run, or its divergence.
func logRun(env *cliEnv, run *evalRun, network string, s *evalScore) {
	if s.Status != "ok" {
		env.log.Warn("run diverged", "run", run.Run, "seed", run.Seed, "network", network, "err", s.Error)
		return
	}
	env.log.Info("run", "run", run.Run, "seed", run.Seed, "network", network,
		"f1", round4(s.Ratio.F1), "f1_percentile", round4(s.Percentile.F1), "auroc", round4(s.AUROC), "auprc", round4(s.AUPRC),
		"final_loss", s.FinalLoss, "components", s.Components, "seconds", round4(s.Seconds))
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// evaluate trains one network on xtr and scores the test rows of s.x (only
// the columns cols). A diverged training run is a result, not an error.
func (s *evalSetup) evaluate(ctx context.Context, cfg train.Config, features []string, xtr []float64, test, cols []int, labels []bool) (evalScore, error) {
	start := time.Now()
	m, rep, err := train.Train(ctx, features, xtr, cfg, nil)
	if errors.Is(err, train.ErrDiverged) {
		return evalScore{Status: "diverged", Error: err.Error(), Seconds: time.Since(start).Seconds()}, nil
	}
	if err != nil {
		return evalScore{}, err
	}
	sc := evalScore{Status: "ok", TrainSeconds: rep.Duration.Seconds(), Components: m.GMM.K, trainEnergies: rep.Energies}
	n := len(rep.Epochs)
	every := (n + maxLossPoints - 1) / maxLossPoints
	for i, e := range rep.Epochs {
		if (i+1)%every == 0 || i == n-1 {
			sc.LossEpochs = append(sc.LossEpochs, e.Epoch)
			sc.Losses = append(sc.Losses, e.Loss)
		}
	}
	if n > 0 {
		sc.FinalLoss = rep.Epochs[n-1].Loss
	}
	scorer, err := model.NewScorer(m)
	if err != nil {
		return evalScore{}, fmt.Errorf("the trained model: %w", err)
	}
	sc.testEnergies, err = scoreRows(ctx, scorer, s.x, len(s.features), test, cols)
	if err != nil {
		return evalScore{}, err
	}
	sc.Seconds = time.Since(start).Seconds()
	if err := sc.measure(labels, s.ratio, m.Calibration.Threshold); err != nil {
		return evalScore{}, err
	}
	return sc, nil
}

// measure computes the figures of a run from its energies.
func (sc *evalScore) measure(labels []bool, ratio, servingThreshold float64) error {
	thr, err := datasets.RatioThreshold(ratio, sc.trainEnergies, sc.testEnergies)
	if err != nil {
		return err
	}
	if sc.Ratio, err = datasets.Detect(sc.testEnergies, labels, thr); err != nil {
		return err
	}
	if sc.Percentile, err = datasets.Detect(sc.testEnergies, labels, servingThreshold); err != nil {
		return err
	}
	if sc.AUROC, err = datasets.AUROC(sc.testEnergies, labels); err != nil {
		return err
	}
	sc.AUPRC, err = datasets.AUPRC(sc.testEnergies, labels)
	return err
}

// scoreRows scores the given rows of x (n×d, raw values), keeping only the
// columns cols, on every core; it returns their energies in order.
func scoreRows(ctx context.Context, s *model.Scorer, x []float64, d int, rows, cols []int) ([]float64, error) {
	k := len(cols)
	wss := make([]*model.Workspace, runtime.GOMAXPROCS(0))
	for i := range wss {
		wss[i] = s.NewWorkspace(model.DefaultBatch)
	}
	chunk := len(wss) * model.DefaultBatch
	buf := make([]float64, chunk*k)
	out := make([]model.Result, chunk)
	energies := make([]float64, len(rows))
	for lo := 0; lo < len(rows); lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+chunk, len(rows))
		for i, r := range rows[lo:hi] {
			src, dst := x[r*d:(r+1)*d], buf[i*k:(i+1)*k]
			for c, j := range cols {
				dst[c] = src[j]
			}
		}
		if err := s.ScoreParallel(wss, buf[:(hi-lo)*k], out); err != nil {
			return nil, fmt.Errorf("score the test rows: %w", shiftSample(err, lo))
		}
		for i, res := range out[:hi-lo] {
			if math.IsNaN(res.Energy) {
				return nil, fmt.Errorf("score the test rows: test row %d has a NaN energy", lo+i)
			}
			energies[lo+i] = res.Energy
		}
	}
	return energies, nil
}

// writeEnergies writes one run's per-sample energies: the training rows
// (label 0), then the test rows, with the untrained network's energies when
// they were computed. With sample > 0 it keeps that many rows at most, drawn
// at random from the run's seed, in their order.
func writeEnergies(path string, run *evalRun, sample int) error {
	tr, te := run.Trained.trainEnergies, run.Trained.testEnergies
	if run.Trained.Status != "ok" {
		return fmt.Errorf("--energies-out: run %d diverged; it has no energies to write", run.Run)
	}
	n := len(tr) + len(te)
	set := make([]string, 0, n)
	lab := make([]int64, 0, n)
	for range tr {
		set, lab = append(set, "train"), append(lab, 0)
	}
	for _, l := range run.testLabels {
		v := int64(0)
		if l {
			v = 1
		}
		set, lab = append(set, "test"), append(lab, v)
	}
	cols := []*datasets.Column{
		datasets.StringColumn("set", set),
		datasets.IntColumn("label", lab),
		datasets.FloatColumn("energy", append(append([]float64(nil), tr...), te...)),
	}
	if u := run.Untrained; u != nil && u.Status == "ok" {
		cols = append(cols, datasets.FloatColumn("energy_untrained", append(append([]float64(nil), u.trainEnergies...), u.testEnergies...)))
	}
	t, err := datasets.NewTable(cols...)
	if err != nil {
		return err
	}
	if sample > 0 && sample < n {
		keep := rand.New(rand.NewPCG(run.Seed, energySampleStream)).Perm(n)[:sample]
		slices.Sort(keep)
		t = t.Take(keep)
	}
	return datasets.WriteFile(path, t)
}

// summarise fills in the means over the runs.
func (rep *evalReport) summarise() {
	var trained, untrained []*evalScore
	for i := range rep.Runs {
		trained = append(trained, &rep.Runs[i].Trained)
		if u := rep.Runs[i].Untrained; u != nil {
			untrained = append(untrained, u)
		}
	}
	rep.Trained = summarise(trained)
	if len(untrained) > 0 {
		u := summarise(untrained)
		rep.Untrained = &u
	}
}

func summarise(scores []*evalScore) evalSummary {
	sum := evalSummary{Runs: len(scores)}
	var f [10][]float64
	for _, s := range scores {
		if s.Status != "ok" {
			sum.Diverged++
			continue
		}
		for i, v := range []float64{
			s.Ratio.Precision, s.Ratio.Recall, s.Ratio.F1,
			s.Percentile.Precision, s.Percentile.Recall, s.Percentile.F1,
			s.AUROC, s.AUPRC, s.TrainSeconds, s.Seconds,
		} {
			f[i] = append(f[i], v)
		}
	}
	ms := func(i int) meanSD {
		m, sd := datasets.MeanSD(f[i])
		return meanSD{m, sd}
	}
	sum.Ratio = detectionSummary{ms(0), ms(1), ms(2)}
	sum.Percentile = detectionSummary{ms(3), ms(4), ms(5)}
	sum.AUROC, sum.AUPRC, sum.TrainSeconds, sum.Seconds = ms(6), ms(7), ms(8), ms(9)
	return sum
}

// write prints the table (unless --json or --csv went to stdout) and writes
// the machine-readable outputs.
func (rep *evalReport) write(env *cliEnv, jsonOut, csvOut, mdOut string) error {
	return writeOutputs(env, rep.writeTable, output{jsonOut, rep.writeJSON}, output{csvOut, rep.writeCSV}, output{mdOut, rep.writeMarkdown})
}

// output is one of an evaluation's outputs: a path ("" for none, "-" for
// stdout) and what writes it.
type output struct {
	path  string
	write func(io.Writer) error
}

// writeOutputs writes each output given a path, and the table to stdout
// unless an output went there.
func writeOutputs(env *cliEnv, table func(io.Writer) error, outs ...output) error {
	toStdout := false
	for _, o := range outs {
		switch o.path {
		case "":
		case "-":
			toStdout = true
			if err := o.write(env.stdout); err != nil {
				return err
			}
		default:
			if err := writeFileWith(o.path, o.write); err != nil {
				return err
			}
		}
	}
	if toStdout {
		return nil
	}
	return table(env.stdout)
}

// writeFileWith creates path and writes it with write.
func writeFileWith(path string, write func(io.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (rep *evalReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// csvHeader names the columns of --csv.
var csvHeader = []string{"dataset", "run", "seed", "network", "status",
	"ratio_precision", "ratio_recall", "ratio_f1", "percentile_precision", "percentile_recall", "percentile_f1",
	"auroc", "auprc", "train_seconds", "seconds"}

func (rep *evalReport) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	name := strings.TrimSuffix(filepath.Base(rep.Input), filepath.Ext(rep.Input))
	f := func(v float64) string { return fmt.Sprintf("%.6g", v) }
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	row := func(run, seed, network string, s *evalScore) []string {
		return []string{name, run, seed, network, s.Status,
			f(s.Ratio.Precision), f(s.Ratio.Recall), f(s.Ratio.F1),
			f(s.Percentile.Precision), f(s.Percentile.Recall), f(s.Percentile.F1),
			f(s.AUROC), f(s.AUPRC), f(s.TrainSeconds), f(s.Seconds)}
	}
	for _, r := range rep.Runs {
		nets := []struct {
			name string
			s    *evalScore
		}{{"trained", &r.Trained}, {"untrained", r.Untrained}}
		for _, n := range nets {
			if n.s != nil {
				if err := cw.Write(row(fmt.Sprint(r.Run), fmt.Sprint(r.Seed), n.name, n.s)); err != nil {
					return err
				}
			}
		}
	}
	sums := []struct {
		name string
		s    *evalSummary
	}{{"trained", &rep.Trained}, {"untrained", rep.Untrained}}
	for _, n := range sums {
		if n.s == nil {
			continue
		}
		for _, stat := range []string{"mean", "sd"} {
			pick := func(m meanSD) string {
				if stat == "mean" {
					return f(m.Mean)
				}
				return f(m.SD)
			}
			s := n.s
			status := fmt.Sprintf("%d/%d ok", s.Runs-s.Diverged, s.Runs)
			if err := cw.Write([]string{name, stat, "", n.name, status,
				pick(s.Ratio.Precision), pick(s.Ratio.Recall), pick(s.Ratio.F1),
				pick(s.Percentile.Precision), pick(s.Percentile.Recall), pick(s.Percentile.F1),
				pick(s.AUROC), pick(s.AUPRC), pick(s.TrainSeconds), pick(s.Seconds)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeTable prints the runs and the means as an aligned table.
func (rep *evalReport) writeTable(w io.Writer) error {
	c := rep.Config
	fmt.Fprintf(w, "%s: %d rows, %d features, %d anomalies (r = %.2f%%); preset %s; %d runs in %s\n",
		rep.Input, rep.Rows, rep.Features, rep.Anomalies, 100*rep.Ratio, rep.Preset, len(rep.Runs),
		(time.Duration(rep.Seconds * float64(time.Second))).Round(time.Second))
	fmt.Fprintf(w, "settings: %s\n\n", describeConfig(rep.Features, c))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	pct := fmt.Sprintf("p%g", c.Percentile)
	fmt.Fprintf(tw, "run\tseed\tnetwork\tprecision\trecall\tF1\t%s prec\t%s rec\t%s F1\tAUROC\tAUPRC\tseconds\t\n", pct, pct, pct)
	line := func(run, seed, network string, s *evalScore) {
		if s.Status != "ok" {
			fmt.Fprintf(tw, "%s\t%s\t%s\tdiverged\t\t\t\t\t\t\t\t%.1f\t\n", run, seed, network, s.Seconds)
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t\n", run, seed, network,
			s.Ratio.Precision, s.Ratio.Recall, s.Ratio.F1, s.Percentile.Precision, s.Percentile.Recall, s.Percentile.F1,
			s.AUROC, s.AUPRC, s.Seconds)
	}
	for _, r := range rep.Runs {
		line(fmt.Sprint(r.Run), fmt.Sprint(r.Seed), "trained", &r.Trained)
		if r.Untrained != nil {
			line("", "", "untrained", r.Untrained)
		}
	}
	sumLine := func(stat, network string, s *evalSummary) {
		v := func(m meanSD) float64 {
			if stat == "sd" {
				return m.SD
			}
			return m.Mean
		}
		fmt.Fprintf(tw, "%s\t\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t\n", stat, network,
			v(s.Ratio.Precision), v(s.Ratio.Recall), v(s.Ratio.F1), v(s.Percentile.Precision), v(s.Percentile.Recall),
			v(s.Percentile.F1), v(s.AUROC), v(s.AUPRC), v(s.Seconds))
	}
	for _, stat := range []string{"mean", "sd"} {
		sumLine(stat, "trained", &rep.Trained)
		if rep.Untrained != nil {
			sumLine(stat, "untrained", rep.Untrained)
		}
	}
	if p := rep.Paper; p != nil {
		fmt.Fprintf(tw, "paper\t\t\t%.4f\t%.4f\t%.4f\t\t\t\t\t\t\t\n", p.Precision, p.Recall, p.F1)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := rep.Trained.Diverged; n > 0 {
		fmt.Fprintf(w, "\n%d of %d runs diverged and are left out of the means.\n", n, rep.Trained.Runs)
	}
	return nil
}

// writeMarkdown writes a section for docs/benchmarks.md: the means beside
// the paper's figures.
func (rep *evalReport) writeMarkdown(w io.Writer) error {
	c := rep.Config
	name := filepath.Base(rep.Input)
	fmt.Fprintf(w, "### %s\n\n", name)
	fmt.Fprintf(w, "%d rows, %d features, %d anomalies (r = %.2f%%). Preset `%s`: %s.\n\n",
		rep.Rows, rep.Features, rep.Anomalies, 100*rep.Ratio, rep.Preset, describeConfig(rep.Features, c))
	if rep.Why != "" {
		fmt.Fprintf(w, "Where the preset departs from the paper, and why: %s.\n\n", rep.Why)
	}
	fmt.Fprintf(w, "`%s`: %d runs in %s.\n\n", rep.Command, len(rep.Runs),
		(time.Duration(rep.Seconds * float64(time.Second))).Round(time.Second))
	fmt.Fprintln(w, "| | precision | recall | F1 | AUROC | AUPRC | seconds per run |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	if p := rep.Paper; p != nil {
		fmt.Fprintf(w, "| paper (Table 2, mean of 20 runs) | %.4f | %.4f | %.4f | | | |\n", p.Precision, p.Recall, p.F1)
	}
	row := func(label string, d detectionSummary, s *evalSummary) {
		fmt.Fprintf(w, "| %s | %s | %s | **%s** | %s | %s | %.1f |\n", label, d.Precision, d.Recall, d.F1, s.AUROC, s.AUPRC, s.Seconds.Mean)
	}
	row(fmt.Sprintf("ours, paper's threshold (top %.2f%%)", 100*rep.Ratio), rep.Trained.Ratio, &rep.Trained)
	row(fmt.Sprintf("ours, %gth percentile of training energies", c.Percentile), rep.Trained.Percentile, &rep.Trained)
	if u := rep.Untrained; u != nil {
		row("untrained network, paper's threshold", u.Ratio, u)
		row(fmt.Sprintf("untrained network, %gth percentile", c.Percentile), u.Percentile, u)
	}
	fmt.Fprintln(w)
	var f1 []string
	for _, r := range rep.Runs {
		if r.Trained.Status == "ok" {
			f1 = append(f1, fmt.Sprintf("%.3f", r.Trained.Ratio.F1))
		} else {
			f1 = append(f1, "diverged")
		}
	}
	fmt.Fprintf(w, "F1 per run (paper's threshold, seeds %d to %d): %s. Diverged runs: %d of %d.\n\n",
		c.Seed, c.Seed+uint64(len(rep.Runs))-1, strings.Join(f1, ", "), rep.Trained.Diverged, rep.Trained.Runs)
	return nil
}

// describeConfig formats a configuration's networks and settings in one line.
func describeConfig(d int, c train.Config) string {
	enc := []string{fmt.Sprint(d)}
	for _, s := range c.Encoder {
		enc = append(enc, fmt.Sprint(s))
	}
	code := c.Encoder[len(c.Encoder)-1]
	est := []string{fmt.Sprint(code + 2)}
	for _, s := range c.Estimator {
		est = append(est, fmt.Sprint(s))
	}
	est = append(est, fmt.Sprint(c.K))
	return fmt.Sprintf("compression %s (and mirror), estimation %s (dropout %g), K %d, %d epochs, batch %d, Adam lr %g, λ1 %g, λ2 %g, jitter %g, components below weight %g dropped, normalisation %s",
		strings.Join(enc, "-"), strings.Join(est, "-"), c.Dropout, c.K, c.Epochs, c.BatchSize, c.LearningRate,
		c.Lambda1, c.Lambda2, c.Jitter, c.MinComponentWeight, c.Normalization)
}

// cpuModel returns the CPU's model name from /proc/cpuinfo, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
