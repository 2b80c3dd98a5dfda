package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/baseline"
	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// Settings of the baselines dagmm eval runs beside the model on pre-split
// data (the issue's: nothing tuned).
const (
	pcaComponents = 3
	knnK          = 5
	pcaWindow     = 5  // rows: the current one and its 4 predecessors
	baselinePct   = 99 // each baseline's threshold: this percentile of its training scores
)

// realPair is one machine of pre-split data: a training file, a labelled
// test file, and optionally its interpretation file (the metrics the
// operators named as each anomaly's cause).
type realPair struct {
	Name           string `json:"name"`
	Train          string `json:"train"`
	Test           string `json:"test"`
	Interpretation string `json:"interpretation,omitempty"`
}

// findPairs returns the NAME-train / NAME-test pairs in dir (.parquet or
// .csv, the same extension for both), with NAME-interpretation.txt when it
// exists, in name order. A training file without its test file is an error.
func findPairs(dir string) ([]realPair, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []realPair
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		name, ok := strings.CutSuffix(strings.TrimSuffix(e.Name(), ext), "-train")
		if e.IsDir() || !ok || (ext != ".parquet" && ext != ".csv") {
			continue
		}
		p := realPair{Name: name, Train: filepath.Join(dir, e.Name()), Test: filepath.Join(dir, name+"-test"+ext)}
		if _, err := os.Stat(p.Test); err != nil {
			return nil, fmt.Errorf("%s has no test file: %w", p.Train, err)
		}
		interp := filepath.Join(dir, name+"-interpretation.txt")
		if _, err := os.Stat(interp); err == nil {
			p.Interpretation = interp
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no NAME-train.parquet / NAME-test.parquet pairs (or .csv)", dir)
	}
	slices.SortFunc(out, func(a, b realPair) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// realFigures are one detector's figures on one machine's test file for one
// seed. Own-threshold figures use the detector's own threshold, set without
// labels from its training scores; the PA figures are point-adjusted.
type realFigures struct {
	AUROC     float64 `json:"auroc"`
	AUPRC     float64 `json:"auprc"`
	F1        float64 `json:"f1"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	BestF1    float64 `json:"best_f1"`
	PAF1      float64 `json:"pa_f1"`
	PABestF1  float64 `json:"pa_best_f1"`
	// Flagged is the share of test rows above the own threshold.
	Flagged   float64 `json:"flagged"`
	Threshold float64 `json:"threshold"`
	// Seconds is fitting plus scoring the training and test rows (dagmm:
	// training, scoring the test rows and explaining the chosen ones with
	// every method); TrainSeconds is dagmm's training alone.
	Seconds      float64 `json:"seconds"`
	TrainSeconds float64 `json:"train_seconds,omitempty"`
}

// realSummary is the mean and standard deviation of each figure.
type realSummary struct {
	AUROC    meanSD `json:"auroc"`
	AUPRC    meanSD `json:"auprc"`
	F1       meanSD `json:"f1"`
	BestF1   meanSD `json:"best_f1"`
	PAF1     meanSD `json:"pa_f1"`
	PABestF1 meanSD `json:"pa_best_f1"`
	Flagged  meanSD `json:"flagged"`
	Seconds  meanSD `json:"seconds"`
	Train    meanSD `json:"train_seconds"`
}

// realDetector is one detector's figures: one per seed for the model, one
// for a baseline (they draw no random numbers), and their summary (for the
// mean over machines: the mean over machines of each seed's figures, mean
// and sd over seeds).
type realDetector struct {
	Name    string        `json:"name"`
	Runs    []realFigures `json:"runs"`
	Summary realSummary   `json:"summary"`
}

// realExplainer is one explanation ranking's HitRate@100% and @150%, one
// per seed for the model's methods, and their summary.
type realExplainer struct {
	Name    string    `json:"name"`
	At100   []float64 `json:"hitrate_100"`
	At150   []float64 `json:"hitrate_150"`
	Mean100 meanSD    `json:"hitrate_100_summary"`
	Mean150 meanSD    `json:"hitrate_150_summary"`
}

// realMachine is one pair's results.
type realMachine struct {
	realPair
	TrainRows int `json:"train_rows"`
	TestRows  int `json:"test_rows"`
	Anomalies int `json:"test_anomalies"`
	Features  int `json:"features"`
	// LeftOut names the columns constant on the training rows, left out.
	LeftOut []string `json:"left_out,omitempty"`
	// Explained is the number of anomalous test rows in an interpreted
	// segment that were explained, of ExplainedOf.
	Explained   int             `json:"explained_rows"`
	ExplainedOf int             `json:"explained_of"`
	Detectors   []realDetector  `json:"detectors"`
	Explainers  []realExplainer `json:"explainers,omitempty"`
	Seconds     float64         `json:"seconds"`
}

// realReport is an evaluation on pre-split data, as --json writes it.
type realReport struct {
	Command  string        `json:"command"`
	Input    string        `json:"input"`
	Seeds    []uint64      `json:"seeds"`
	Config   train.Config  `json:"config"`
	Machines []realMachine `json:"machines"`
	// Detectors and Explainers are the means over the machines.
	Detectors  []realDetector  `json:"mean_detectors"`
	Explainers []realExplainer `json:"mean_explainers,omitempty"`
	Machine    evalMachine     `json:"machine"`
	Started    time.Time       `json:"started"`
	Seconds    float64         `json:"seconds"`
	Version    string          `json:"version"`
}

// realSetup is what every machine of one evaluation shares.
type realSetup struct {
	tf          *trainFlags
	cfg         train.Config
	seeds       int
	label       string
	explainRows int // at most this many rows explained per machine; 0 = all
}

// runEvalReal is dagmm eval on pre-split data: a --train file and a test
// file, or a directory of pairs.
func runEvalReal(ctx context.Context, env *cliEnv, fset *flag.FlagSet, tf *trainFlags, s *realSetup, trainFile, interp, jsonOut, mdOut string, args []string) error {
	var bad []string
	fset.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "runs", "ratio", "train-fraction", "untrained", "energies-out", "energies-run", "energies-sample", "csv", "preset":
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usagef("%s: only for the paper's protocol on one labelled file, not with --train or a directory", strings.Join(bad, ", "))
	}
	if s.seeds < 1 {
		return usagef("--seeds %d: want at least 1", s.seeds)
	}
	in := fset.Arg(0)
	var pairs []realPair
	if trainFile != "" {
		pairs = []realPair{{Name: strings.TrimSuffix(filepath.Base(in), filepath.Ext(in)), Train: trainFile, Test: in, Interpretation: interp}}
	} else {
		if interp != "" {
			return usagef("--interpretation: only with --train; in a directory NAME-interpretation.txt is found by name")
		}
		var err error
		if pairs, err = findPairs(in); err != nil {
			return err
		}
	}
	s.cfg = tf.config()
	if err := s.cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	start := time.Now()
	rep := &realReport{
		Command: strings.Join(append([]string{"dagmm", "eval"}, args...), " "),
		Input:   in,
		Config:  s.cfg,
		Machine: evalMachine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: cpuModel(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()},
		Started: start.UTC().Round(time.Second),
		Version: buildinfo.String(),
	}
	for i := range s.seeds {
		rep.Seeds = append(rep.Seeds, s.cfg.Seed+uint64(i))
	}
	for _, p := range pairs {
		m, err := s.machine(ctx, env, p, rep.Seeds)
		if err != nil {
			return err
		}
		rep.Machines = append(rep.Machines, *m)
	}
	rep.summarise()
	rep.Seconds = time.Since(start).Seconds()
	return rep.write(env, jsonOut, mdOut)
}

// machineData is one pair read: training rows, test rows and labels, in the
// model's feature order, and the rows to explain with their named causes.
type machineData struct {
	train    *trainingData
	all      []string // every feature of the training file, in file order (the interpretation's numbering)
	test     *datasets.Table
	xt       []float64 // test rows × len(train.features), for the baselines
	labels   []bool
	explain  []int   // test rows to explain, increasing
	causes   [][]int // each explained row's named metrics, as indexes into all
	leftOut  []string
	explOf   int
	testRows int
}

func (s *realSetup) read(env *cliEnv, p realPair) (*machineData, error) {
	data, err := loadTrainingData(env, p.Train, s.tf)
	if err != nil {
		return nil, err
	}
	md := &machineData{train: data, all: data.all}
	for _, c := range data.constant {
		md.leftOut = append(md.leftOut, c.Name)
	}
	t, err := datasets.ReadFile(p.Test)
	if err != nil {
		return nil, err
	}
	if md.labels, err = datasets.Labels(t, s.label); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Test, err)
	}
	if md.xt, err = datasets.Matrix(t, data.features); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Test, err)
	}
	md.test, md.testRows = t, t.Len()
	if p.Interpretation != "" {
		if err := md.readCauses(p, s.explainRows); err != nil {
			return nil, err
		}
	}
	return md, nil
}

// readCauses finds the anomalous test rows inside an interpreted segment and
// their named metrics; with limit > 0 it keeps that many, evenly spaced.
func (md *machineData) readCauses(p realPair, limit int) error {
	causes, err := datasets.ReadCauses(p.Interpretation)
	if err != nil {
		return err
	}
	named := make(map[int][]int)
	for i, c := range causes {
		if c.End > len(md.labels) {
			return fmt.Errorf("%s: segment %d (%d-%d) ends beyond the %d rows of %s", p.Interpretation, i+1, c.Start, c.End, len(md.labels), p.Test)
		}
		for _, d := range c.Dims {
			if d >= len(md.all) {
				return fmt.Errorf("%s: segment %d names metric %d; %s has %d", p.Interpretation, i+1, d+1, p.Train, len(md.all))
			}
		}
		for r := c.Start; r < c.End; r++ {
			if md.labels[r] {
				named[r] = c.Dims
			}
		}
	}
	rows := make([]int, 0, len(named))
	for r := range named {
		rows = append(rows, r)
	}
	slices.Sort(rows)
	md.explOf = len(rows)
	if limit > 0 && len(rows) > limit {
		kept := make([]int, limit)
		for i := range kept {
			kept[i] = rows[i*len(rows)/limit]
		}
		rows = kept
	}
	md.explain = rows
	for _, r := range rows {
		md.causes = append(md.causes, named[r])
	}
	return nil
}

// machine evaluates one pair: the baselines once, the model once per seed.
func (s *realSetup) machine(ctx context.Context, env *cliEnv, p realPair, seeds []uint64) (*realMachine, error) {
	start := time.Now()
	md, err := s.read(env, p)
	if err != nil {
		return nil, err
	}
	m := &realMachine{realPair: p, TrainRows: len(md.train.x) / len(md.train.features), TestRows: md.testRows,
		Features: len(md.train.features), LeftOut: md.leftOut, Explained: len(md.explain), ExplainedOf: md.explOf}
	for _, l := range md.labels {
		if l {
			m.Anomalies++
		}
	}
	env.log.Info("evaluating", "machine", p.Name, "train_rows", m.TrainRows, "test_rows", m.TestRows, "anomalies", m.Anomalies,
		"features", m.Features, "left_out", len(m.LeftOut), "explained_rows", m.Explained)
	dagmm := realDetector{Name: "dagmm"}
	var explainers []realExplainer
	for _, seed := range seeds {
		fig, hits, err := s.modelRun(ctx, md, p, seed)
		if err != nil {
			return nil, err
		}
		dagmm.Runs = append(dagmm.Runs, fig)
		if explainers == nil {
			explainers = make([]realExplainer, len(hits))
		}
		for i, h := range hits {
			explainers[i].Name = h.name
			explainers[i].At100 = append(explainers[i].At100, h.at100)
			explainers[i].At150 = append(explainers[i].At150, h.at150)
		}
		env.log.Info("run", "machine", p.Name, "seed", seed, "auroc", round4(fig.AUROC), "auprc", round4(fig.AUPRC),
			"f1", round4(fig.F1), "best_f1", round4(fig.BestF1), "flagged", round4(fig.Flagged), "train_seconds", round4(fig.TrainSeconds),
			"seconds", round4(fig.Seconds))
	}
	base, baseHits, err := baselines(md)
	if err != nil {
		return nil, fmt.Errorf("%s: baselines: %w", p.Name, err)
	}
	m.Detectors = append([]realDetector{dagmm}, base...)
	for i := range m.Detectors {
		m.Detectors[i].Summary = summariseFigures(m.Detectors[i].Runs)
	}
	if len(md.explain) > 0 {
		for _, h := range baseHits {
			explainers = append(explainers, realExplainer{Name: h.name, At100: []float64{h.at100}, At150: []float64{h.at150}})
		}
		for i := range explainers {
			explainers[i].summarise()
		}
		m.Explainers = explainers
	}
	m.Seconds = time.Since(start).Seconds()
	return m, nil
}

// hitRates is one ranking's mean HitRate over the explained rows.
type hitRates struct {
	name         string
	at100, at150 float64
}

// modelRun trains with seed the way dagmm train does, scores the test rows
// the way dagmm score does, and explains the chosen rows with every method.
func (s *realSetup) modelRun(ctx context.Context, md *machineData, p realPair, seed uint64) (realFigures, []hitRates, error) {
	start := time.Now()
	cfg := s.cfg
	cfg.Seed = seed
	m, rep, err := fitModel(ctx, p.Train, md.train, cfg, nil)
	if err != nil {
		return realFigures{}, nil, fmt.Errorf("%s: seed %d: %w", p.Name, seed, err)
	}
	sc, err := model.NewScorer(m)
	if err != nil {
		return realFigures{}, nil, fmt.Errorf("%s: seed %d: the trained model: %w", p.Name, seed, err)
	}
	methods := model.Methods()
	names := make([]string, len(methods)+1)
	for i, me := range methods {
		names[i] = "dagmm " + me.String()
		if me == sc.DefaultMethod() {
			names[i] += " (default for one sample)"
		}
		if me == model.MethodRecent {
			names[i] += " without history"
		}
	}
	names[len(methods)] = fmt.Sprintf("dagmm recent, last %d samples (default for a series)", model.RecentWindow)
	energies := make([]float64, len(md.labels))
	sums := make([][2]float64, len(names))
	next := 0 // index into md.explain
	var ex model.Explanation
	ranking := make([]int, 0, len(md.all))
	hit := func(k int) {
		ranking = ranking[:0]
		for _, c := range ex.Features {
			ranking = append(ranking, slices.Index(md.all, c.Feature))
		}
		sums[k][0] += datasets.HitRate(ranking, md.causes[next], 1)
		sums[k][1] += datasets.HitRate(ranking, md.causes[next], 1.5)
	}
	hosts := seriesOf(md.test)
	recentOf := perHost(hosts, func() *model.Recent { return sc.NewRecent(model.RecentWindow) })
	xt, err := modelMatrix(md.test, m, p.Test, "the trained model")
	if err != nil {
		return realFigures{}, nil, err
	}
	err = scoreEach(ctx, sc, xt, hosts, func(lo int, wss []*model.Workspace, out []model.Result) error {
		for i, r := range out {
			energies[lo+i] = r.Score
			ws, wi := sampleWorkspace(wss, i)
			recent := recentOf(lo + i)
			for ; next < len(md.explain) && md.explain[next] == lo+i; next++ {
				for k, me := range methods {
					if err := sc.Explain(ws, wi, me, &ex); err != nil {
						return fmt.Errorf("explain test row %d with %s: %w", lo+i, me, err)
					}
					hit(k)
				}
				if err := sc.ExplainRecent(ws, wi, recent, &ex); err != nil {
					return fmt.Errorf("explain test row %d with its recent rows: %w", lo+i, err)
				}
				hit(len(methods))
			}
			if err := recent.Add(ws, wi); err != nil {
				return fmt.Errorf("test row %d: %w", lo+i, err)
			}
		}
		return nil
	})
	if err != nil {
		return realFigures{}, nil, fmt.Errorf("%s: seed %d: score %s: %w", p.Name, seed, p.Test, err)
	}
	// As dagmm score does, a row departing from a feature constant in
	// training is an anomaly: it ranks at least just above the threshold.
	deps, err := departures(md.test, m)
	if err != nil {
		return realFigures{}, nil, fmt.Errorf("%s: %w", p.Test, err)
	}
	flagged := math.Nextafter(m.Calibration.Threshold, math.Inf(1))
	for i := range deps {
		if len(deps[i]) > 0 {
			energies[i] = max(energies[i], flagged)
		}
	}
	fig, err := figures(energies, md.labels, m.Calibration.Threshold)
	if err != nil {
		return realFigures{}, nil, fmt.Errorf("%s: seed %d: %w", p.Name, seed, err)
	}
	fig.Seconds, fig.TrainSeconds = time.Since(start).Seconds(), rep.Duration.Seconds()
	var hits []hitRates
	if n := float64(len(md.explain)); n > 0 {
		for k := range names {
			hits = append(hits, hitRates{names[k], sums[k][0] / n, sums[k][1] / n})
		}
	}
	return fig, hits, nil
}

// figures measures scores against labels at the own threshold and over
// every threshold, point-wise and point-adjusted.
func figures(scores []float64, labels []bool, threshold float64) (realFigures, error) {
	var f realFigures
	own, err := datasets.Detect(scores, labels, threshold)
	if err != nil {
		return f, err
	}
	best, err := datasets.BestF1(scores, labels)
	if err != nil {
		return f, err
	}
	adj, err := datasets.PointAdjust(scores, labels)
	if err != nil {
		return f, err
	}
	paOwn, err := datasets.Detect(adj, labels, threshold)
	if err != nil {
		return f, err
	}
	paBest, err := datasets.BestF1(adj, labels)
	if err != nil {
		return f, err
	}
	if f.AUROC, err = datasets.AUROC(scores, labels); err != nil {
		return f, err
	}
	if f.AUPRC, err = datasets.AUPRC(scores, labels); err != nil {
		return f, err
	}
	f.F1, f.Precision, f.Recall, f.BestF1 = own.F1, own.Precision, own.Recall, best.F1
	f.PAF1, f.PABestF1 = paOwn.F1, paBest.F1
	f.Flagged = float64(own.TP+own.FP) / float64(len(scores))
	f.Threshold = threshold
	return f, nil
}

// baselines runs PCA, kNN and windowed PCA on the machine's rows, and ranks
// the explained rows' metrics by PCA residual and by absolute z-score.
func baselines(md *machineData) ([]realDetector, []hitRates, error) {
	d := len(md.train.features)
	xtr, xte := md.train.x, md.xt
	var dets []realDetector
	run := func(name string, fit func() (trainScores, testScores []float64, err error)) error {
		start := time.Now()
		tr, te, err := fit()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		thr, err := datasets.Percentile(tr, baselinePct)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		f, err := figures(te, md.labels, thr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		f.Seconds = time.Since(start).Seconds()
		dets = append(dets, realDetector{Name: name, Runs: []realFigures{f}})
		return nil
	}
	pca, err := baseline.FitPCA(xtr, d, pcaComponents)
	if err != nil {
		return nil, nil, err
	}
	steps := []struct {
		name string
		fit  func() ([]float64, []float64, error)
	}{
		{fmt.Sprintf("PCA (%d components)", pcaComponents), func() ([]float64, []float64, error) {
			return scoreBoth(pca.Scores, xtr, xte)
		}},
		{fmt.Sprintf("kNN (k=%d)", knnK), func() ([]float64, []float64, error) {
			knn, err := baseline.NewKNN(xtr, d, knnK)
			if err != nil {
				return nil, nil, err
			}
			te, err := knn.Scores(xte)
			return knn.TrainScores(), te, err
		}},
		{fmt.Sprintf("PCA over %d rows (%d components)", pcaWindow, pcaComponents), func() ([]float64, []float64, error) {
			wtr, wte := baseline.Window(xtr, d, pcaWindow), baseline.Window(xte, d, pcaWindow)
			wp, err := baseline.FitPCA(wtr, d*pcaWindow, pcaComponents)
			if err != nil {
				return nil, nil, err
			}
			return scoreBoth(wp.Scores, wtr, wte)
		}},
	}
	for _, st := range steps {
		if err := run(st.name, st.fit); err != nil {
			return nil, nil, err
		}
	}
	if len(md.explain) == 0 {
		return dets, nil, nil
	}
	hits, err := baselineRankings(md, pca)
	return dets, hits, err
}

func scoreBoth(score func([]float64) ([]float64, error), xtr, xte []float64) ([]float64, []float64, error) {
	tr, err := score(xtr)
	if err != nil {
		return nil, nil, err
	}
	te, err := score(xte)
	return tr, te, err
}

// baselineRankings ranks each explained row's metrics by PCA residual and by
// absolute z-score against the training rows, and scores the rankings.
func baselineRankings(md *machineData, pca *baseline.PCA) ([]hitRates, error) {
	d := len(md.train.features)
	rows := datasets.Rows(md.xt, d, md.explain)
	res, err := pca.Residuals(rows)
	if err != nil {
		return nil, err
	}
	z, err := baseline.FitZScore(md.train.x, d)
	if err != nil {
		return nil, err
	}
	cols := make([]int, d) // each model feature's index in md.all
	for j, f := range md.train.features {
		cols[j] = slices.Index(md.all, f)
	}
	out := []hitRates{{name: "PCA residual (baseline)"}, {name: "absolute z-score (baseline)"}}
	var zs []float64
	for i := range md.explain {
		zs = z.Row(zs, rows[i*d:(i+1)*d])
		for k, v := range [][]float64{res[i*d : (i+1)*d], zs} {
			r := rankDesc(v, cols)
			out[k].at100 += datasets.HitRate(r, md.causes[i], 1)
			out[k].at150 += datasets.HitRate(r, md.causes[i], 1.5)
		}
	}
	for k := range out {
		out[k].at100 /= float64(len(md.explain))
		out[k].at150 /= float64(len(md.explain))
	}
	return out, nil
}

// rankDesc returns cols ordered by decreasing v (ties in column order).
func rankDesc(v []float64, cols []int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[b], v[a]) })
	out := make([]int, len(v))
	for i, j := range idx {
		out[i] = cols[j]
	}
	return out
}

func summariseFigures(runs []realFigures) realSummary {
	pick := func(get func(realFigures) float64) meanSD {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		m, sd := datasets.MeanSD(v)
		return meanSD{m, sd}
	}
	return realSummary{
		AUROC:    pick(func(f realFigures) float64 { return f.AUROC }),
		AUPRC:    pick(func(f realFigures) float64 { return f.AUPRC }),
		F1:       pick(func(f realFigures) float64 { return f.F1 }),
		BestF1:   pick(func(f realFigures) float64 { return f.BestF1 }),
		PAF1:     pick(func(f realFigures) float64 { return f.PAF1 }),
		PABestF1: pick(func(f realFigures) float64 { return f.PABestF1 }),
		Flagged:  pick(func(f realFigures) float64 { return f.Flagged }),
		Seconds:  pick(func(f realFigures) float64 { return f.Seconds }),
		Train:    pick(func(f realFigures) float64 { return f.TrainSeconds }),
	}
}

func (e *realExplainer) summarise() {
	m, sd := datasets.MeanSD(e.At100)
	e.Mean100 = meanSD{m, sd}
	m, sd = datasets.MeanSD(e.At150)
	e.Mean150 = meanSD{m, sd}
}

// summarise fills in the means over machines: for each detector and each
// seed the mean over machines, then their mean and sd over seeds.
func (rep *realReport) summarise() {
	if len(rep.Machines) == 0 {
		return
	}
	for i, d := range rep.Machines[0].Detectors {
		mean := realDetector{Name: d.Name}
		for r := range d.Runs {
			var f realFigures
			for _, m := range rep.Machines {
				g := m.Detectors[i].Runs[r]
				f.AUROC += g.AUROC
				f.AUPRC += g.AUPRC
				f.F1 += g.F1
				f.Precision += g.Precision
				f.Recall += g.Recall
				f.BestF1 += g.BestF1
				f.PAF1 += g.PAF1
				f.PABestF1 += g.PABestF1
				f.Flagged += g.Flagged
				f.Seconds += g.Seconds
				f.TrainSeconds += g.TrainSeconds
			}
			n := float64(len(rep.Machines))
			f.AUROC, f.AUPRC, f.F1, f.Precision, f.Recall = f.AUROC/n, f.AUPRC/n, f.F1/n, f.Precision/n, f.Recall/n
			f.BestF1, f.PAF1, f.PABestF1, f.Flagged, f.Seconds = f.BestF1/n, f.PAF1/n, f.PABestF1/n, f.Flagged/n, f.Seconds/n
			f.TrainSeconds /= n
			mean.Runs = append(mean.Runs, f)
		}
		mean.Summary = summariseFigures(mean.Runs)
		rep.Detectors = append(rep.Detectors, mean)
	}
	var with []realMachine
	for _, m := range rep.Machines {
		if len(m.Explainers) > 0 {
			with = append(with, m)
		}
	}
	if len(with) == 0 {
		return
	}
	for i, e := range with[0].Explainers {
		mean := realExplainer{Name: e.Name}
		for r := range e.At100 {
			var a, b float64
			for _, m := range with {
				a += m.Explainers[i].At100[r]
				b += m.Explainers[i].At150[r]
			}
			mean.At100 = append(mean.At100, a/float64(len(with)))
			mean.At150 = append(mean.At150, b/float64(len(with)))
		}
		mean.summarise()
		rep.Explainers = append(rep.Explainers, mean)
	}
}
