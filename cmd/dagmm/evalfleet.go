package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// hostFigures are one approach's figures on one fleet's test rows for one
// seed. Every row is flagged by the model that scores it, at that model's
// own threshold; the pooled AUROC and AUPRC rank every row by its score
// minus that threshold, the host ones each host's rows alone.
type hostFigures struct {
	F1        float64 `json:"f1"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	AUROC     float64 `json:"auroc"`
	AUPRC     float64 `json:"auprc"`
	// HostAUROC and HostAUPRC are means over the hosts whose test rows hold
	// both anomalies and normal rows.
	HostAUROC float64 `json:"host_auroc"`
	HostAUPRC float64 `json:"host_auprc"`
	// Flagged is the share of test rows flagged.
	Flagged float64 `json:"flagged"`
	// KindRecall is the recall of each kind of anomaly (the kind column).
	KindRecall map[string]float64 `json:"recall_by_kind,omitempty"`
	// TrainSeconds is the models' training time, summed over them.
	TrainSeconds float64 `json:"train_seconds"`
}

// hostSummary is the mean and standard deviation over runs of each figure.
type hostSummary struct {
	F1           meanSD            `json:"f1"`
	Precision    meanSD            `json:"precision"`
	Recall       meanSD            `json:"recall"`
	AUROC        meanSD            `json:"auroc"`
	AUPRC        meanSD            `json:"auprc"`
	HostAUROC    meanSD            `json:"host_auroc"`
	HostAUPRC    meanSD            `json:"host_auprc"`
	Flagged      meanSD            `json:"flagged"`
	KindRecall   map[string]meanSD `json:"recall_by_kind,omitempty"`
	TrainSeconds meanSD            `json:"train_seconds"`
}

// perHostRun is one fleet and seed: per-host models against one fleet model.
type perHostRun struct {
	Fleet   string      `json:"fleet"`
	Seed    uint64      `json:"seed"`
	PerHost hostFigures `json:"per_host"`
	Pooled  hostFigures `json:"fleet_model"`
}

// perHostFleet describes one pair of fleet files.
type perHostFleet struct {
	realPair
	Hosts     int            `json:"hosts"`
	TrainRows int            `json:"train_rows"`
	TestRows  int            `json:"test_rows"`
	Anomalies int            `json:"test_anomalies"`
	Kinds     map[string]int `json:"anomalies_by_kind,omitempty"`
}

// perHostReport is dagmm eval --per-host, as --json writes it.
type perHostReport struct {
	Command string         `json:"command"`
	Input   string         `json:"input"`
	Seeds   []uint64       `json:"seeds"`
	Config  train.Config   `json:"config"`
	Fleets  []perHostFleet `json:"fleets"`
	Runs    []perHostRun   `json:"runs"`
	PerHost hostSummary    `json:"per_host"`
	Pooled  hostSummary    `json:"fleet_model"`
	// Wins is the number of runs whose per-host F1 is above the fleet
	// model's.
	Wins    int         `json:"per_host_f1_wins"`
	Kinds   []string    `json:"kinds,omitempty"`
	Machine evalMachine `json:"machine"`
	Started time.Time   `json:"started"`
	Seconds float64     `json:"seconds"`
	Version string      `json:"version"`
}

// fleetData is one pair of fleet files read, with each host's rows.
type fleetData struct {
	pair        realPair
	train, test *datasets.Table
	digest      string
	labels      []bool
	kinds       []string // the kind column's values, nil without one
	hosts       []string // in order of first appearance in the training file
	trainRows   [][]int
	testRows    [][]int // each host's test rows, in file order
}

// runEvalPerHost is dagmm eval --per-host: on each pair of fleet files, one
// model per host against one model trained on every host's rows.
func runEvalPerHost(ctx context.Context, env *cliEnv, fset *flag.FlagSet, tf *trainFlags, seeds int, label, kindCol, trainFile, jsonOut, mdOut string, args []string) error {
	var bad []string
	fset.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "runs", "ratio", "train-fraction", "untrained", "energies-out", "energies-run", "energies-sample", "csv", "preset", "interpretation", "explain-rows":
			bad = append(bad, "--"+f.Name)
		}
	})
	switch {
	case len(bad) > 0:
		return usagef("%s: not with --per-host", strings.Join(bad, ", "))
	case seeds < 1:
		return usagef("--seeds %d: want at least 1", seeds)
	}
	cfg := tf.config()
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	in := fset.Arg(0)
	pairs := []realPair{{Name: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(in), filepath.Ext(in)), "-test"), Train: trainFile, Test: in}}
	if trainFile == "" {
		var err error
		if pairs, err = findPairs(in); err != nil {
			return err
		}
	}
	start := time.Now()
	rep := &perHostReport{
		Command: strings.Join(append([]string{"dagmm", "eval"}, args...), " "),
		Input:   in,
		Config:  cfg,
		Machine: evalMachine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: cpuModel(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()},
		Started: start.UTC().Round(time.Second),
		Version: buildinfo.String(),
	}
	for i := range seeds {
		rep.Seeds = append(rep.Seeds, cfg.Seed+uint64(i))
	}
	for _, p := range pairs {
		fd, err := readFleet(p, label, kindCol)
		if err != nil {
			return err
		}
		rep.Fleets = append(rep.Fleets, fd.describe())
		env.log.Info("evaluating fleet", "fleet", p.Name, "hosts", len(fd.hosts), "train_rows", fd.train.Len(), "test_rows", fd.test.Len(),
			"anomalies", rep.Fleets[len(rep.Fleets)-1].Anomalies)
		for _, seed := range rep.Seeds {
			run, err := fd.run(ctx, tf, cfg, seed)
			if err != nil {
				return err
			}
			env.log.Info("run", "fleet", p.Name, "seed", seed, "per_host_f1", round4(run.PerHost.F1), "fleet_f1", round4(run.Pooled.F1),
				"per_host_auprc", round4(run.PerHost.AUPRC), "fleet_auprc", round4(run.Pooled.AUPRC))
			rep.Runs = append(rep.Runs, run)
		}
	}
	rep.summarise()
	rep.Seconds = time.Since(start).Seconds()
	return rep.write(env, jsonOut, mdOut)
}

// readFleet reads a pair of fleet files and groups their rows by host.
func readFleet(p realPair, label, kindCol string) (*fleetData, error) {
	digest, err := fileDigest(p.Train)
	if err != nil {
		return nil, err
	}
	fd := &fleetData{pair: p, digest: digest}
	if fd.train, err = datasets.ReadFile(p.Train); err != nil {
		return nil, err
	}
	if fd.test, err = datasets.ReadFile(p.Test); err != nil {
		return nil, err
	}
	if fd.labels, err = datasets.Labels(fd.test, label); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Test, err)
	}
	if c, ok := fd.test.Column(kindCol); ok {
		fd.kinds = make([]string, fd.test.Len())
		for i := range fd.kinds {
			fd.kinds[i] = c.Text(i)
		}
	}
	if fd.hosts, fd.trainRows, err = hostGroups(fd.train); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Train, err)
	}
	names, rows, err := hostGroups(fd.test)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Test, err)
	}
	fd.testRows = make([][]int, len(fd.hosts))
	for i, h := range names {
		k := slices.Index(fd.hosts, h)
		if k < 0 {
			return nil, fmt.Errorf("%s: host %q (row %d) has no rows in %s", p.Test, h, rows[i][0]+1, p.Train)
		}
		fd.testRows[k] = rows[i]
	}
	return fd, nil
}

func (fd *fleetData) describe() perHostFleet {
	d := perHostFleet{realPair: fd.pair, Hosts: len(fd.hosts), TrainRows: fd.train.Len(), TestRows: fd.test.Len()}
	for i, l := range fd.labels {
		if !l {
			continue
		}
		d.Anomalies++
		if fd.kinds != nil && fd.kinds[i] != "" {
			if d.Kinds == nil {
				d.Kinds = map[string]int{}
			}
			d.Kinds[fd.kinds[i]]++
		}
	}
	return d
}

// run trains the fleet model and every host's model with seed, as dagmm
// train does, and scores the test rows with each, as dagmm score does.
func (fd *fleetData) run(ctx context.Context, tf *trainFlags, cfg train.Config, seed uint64) (perHostRun, error) {
	cfg.Seed = seed
	run := perHostRun{Fleet: fd.pair.Name, Seed: seed}
	all, err := prepareTraining(fd.train, fd.pair.Train, fd.digest, tf)
	if err != nil {
		return run, err
	}
	m, rep, err := fitModel(ctx, fd.pair.Train, all, cfg, nil)
	if err != nil {
		return run, fmt.Errorf("fleet model, seed %d: %w", seed, err)
	}
	margins, err := scoreMargins(ctx, m, fd.test, fd.pair.Test)
	if err != nil {
		return run, fmt.Errorf("fleet model, seed %d: %w", seed, err)
	}
	if run.Pooled, err = fd.measure(margins); err != nil {
		return run, err
	}
	run.Pooled.TrainSeconds = rep.Duration.Seconds()

	margins = make([]float64, fd.test.Len())
	seconds := make([]float64, len(fd.hosts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for h, host := range fd.hosts {
		g.Go(func() error {
			data, err := prepareTraining(fd.train.Take(fd.trainRows[h]), fd.pair.Train, fd.digest, tf)
			if err != nil {
				return fmt.Errorf("host %s: %w", host, err)
			}
			m, rep, err := fitModel(gctx, fd.pair.Train, data, cfg, nil)
			if err != nil {
				return fmt.Errorf("host %s, seed %d: %w", host, seed, err)
			}
			seconds[h] = rep.Duration.Seconds()
			if len(fd.testRows[h]) == 0 {
				return nil
			}
			ms, err := scoreMargins(gctx, m, fd.test.Take(fd.testRows[h]), fd.pair.Test)
			if err != nil {
				return fmt.Errorf("host %s, seed %d: %w", host, seed, err)
			}
			for i, r := range fd.testRows[h] {
				margins[r] = ms[i]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return run, err
	}
	if run.PerHost, err = fd.measure(margins); err != nil {
		return run, err
	}
	for _, s := range seconds {
		run.PerHost.TrainSeconds += s
	}
	return run, nil
}

// scoreMargins scores t's rows with m as dagmm score does (each host's
// window; a row departing from a training constant flagged) and returns
// each row's score minus m's threshold: positive for a flagged row.
func scoreMargins(ctx context.Context, m *model.Model, t *datasets.Table, path string) ([]float64, error) {
	sc, err := model.NewScorer(m)
	if err != nil {
		return nil, fmt.Errorf("the trained model: %w", err)
	}
	x, err := modelMatrix(t, m, path, "the trained model")
	if err != nil {
		return nil, err
	}
	thr := m.Calibration.Threshold
	out := make([]float64, t.Len())
	err = scoreEach(ctx, sc, x, seriesOf(t), func(lo int, _ []*model.Workspace, res []model.Result) error {
		for i, r := range res {
			out[lo+i] = r.Score
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("score %s: %w", path, err)
	}
	deps, err := departures(t, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	flagged := math.Nextafter(thr, math.Inf(1))
	for i := range out {
		if deps != nil && len(deps[i]) > 0 {
			out[i] = max(out[i], flagged)
		}
		out[i] -= thr
	}
	return out, nil
}

// measure computes one approach's figures from every test row's margin.
func (fd *fleetData) measure(margins []float64) (hostFigures, error) {
	var f hostFigures
	own, err := datasets.Detect(margins, fd.labels, 0)
	if err != nil {
		return f, err
	}
	f.F1, f.Precision, f.Recall = own.F1, own.Precision, own.Recall
	f.Flagged = float64(own.TP+own.FP) / float64(len(margins))
	if f.AUROC, err = datasets.AUROC(margins, fd.labels); err != nil {
		return f, fmt.Errorf("%s: %w", fd.pair.Test, err)
	}
	if f.AUPRC, err = datasets.AUPRC(margins, fd.labels); err != nil {
		return f, fmt.Errorf("%s: %w", fd.pair.Test, err)
	}
	var roc, prc []float64
	for _, rows := range fd.testRows {
		s, l := datasets.Pick(margins, rows), datasets.Pick(fd.labels, rows)
		if !slices.Contains(l, true) || !slices.Contains(l, false) {
			continue
		}
		a, err := datasets.AUROC(s, l)
		if err != nil {
			return f, err
		}
		p, err := datasets.AUPRC(s, l)
		if err != nil {
			return f, err
		}
		roc, prc = append(roc, a), append(prc, p)
	}
	f.HostAUROC, _ = datasets.MeanSD(roc)
	f.HostAUPRC, _ = datasets.MeanSD(prc)
	if fd.kinds == nil {
		return f, nil
	}
	found, total := map[string]int{}, map[string]int{}
	for i, k := range fd.kinds {
		if !fd.labels[i] || k == "" {
			continue
		}
		total[k]++
		if margins[i] > 0 {
			found[k]++
		}
	}
	f.KindRecall = map[string]float64{}
	for k, n := range total {
		f.KindRecall[k] = float64(found[k]) / float64(n)
	}
	return f, nil
}

func (rep *perHostReport) summarise() {
	kinds := map[string]bool{}
	for _, r := range rep.Runs {
		for k := range r.PerHost.KindRecall {
			kinds[k] = true
		}
		if r.PerHost.F1 > r.Pooled.F1 {
			rep.Wins++
		}
	}
	rep.Kinds = nil
	for _, k := range datasets.AnomalyKinds() {
		if kinds[k] {
			rep.Kinds = append(rep.Kinds, k)
			delete(kinds, k)
		}
	}
	var other []string
	for k := range kinds {
		other = append(other, k)
	}
	slices.Sort(other)
	rep.Kinds = append(rep.Kinds, other...)
	rep.PerHost = summariseHosts(rep.Runs, rep.Kinds, func(r perHostRun) hostFigures { return r.PerHost })
	rep.Pooled = summariseHosts(rep.Runs, rep.Kinds, func(r perHostRun) hostFigures { return r.Pooled })
}

func summariseHosts(runs []perHostRun, kinds []string, get func(perHostRun) hostFigures) hostSummary {
	pick := func(v func(hostFigures) float64) meanSD {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = v(get(r))
		}
		m, sd := datasets.MeanSD(xs)
		return meanSD{m, sd}
	}
	s := hostSummary{
		F1:           pick(func(f hostFigures) float64 { return f.F1 }),
		Precision:    pick(func(f hostFigures) float64 { return f.Precision }),
		Recall:       pick(func(f hostFigures) float64 { return f.Recall }),
		AUROC:        pick(func(f hostFigures) float64 { return f.AUROC }),
		AUPRC:        pick(func(f hostFigures) float64 { return f.AUPRC }),
		HostAUROC:    pick(func(f hostFigures) float64 { return f.HostAUROC }),
		HostAUPRC:    pick(func(f hostFigures) float64 { return f.HostAUPRC }),
		Flagged:      pick(func(f hostFigures) float64 { return f.Flagged }),
		TrainSeconds: pick(func(f hostFigures) float64 { return f.TrainSeconds }),
	}
	for _, k := range kinds {
		if s.KindRecall == nil {
			s.KindRecall = map[string]meanSD{}
		}
		s.KindRecall[k] = pick(func(f hostFigures) float64 { return f.KindRecall[k] })
	}
	return s
}

func (rep *perHostReport) write(env *cliEnv, jsonOut, mdOut string) error {
	return writeOutputs(env, rep.writeTable, output{jsonOut, rep.writeJSON}, output{mdOut, rep.writeMarkdown})
}

func (rep *perHostReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// perHostColumns heads the tables of dagmm eval --per-host.
const perHostColumns = "F1\tprecision\trecall\tAUROC\tAUPRC\thost AUROC\thost AUPRC\tflagged\ttraining s"

// approaches returns the two rows of a table: their names and summaries.
func (rep *perHostReport) approaches() []struct {
	name string
	s    hostSummary
} {
	name := "per-host models"
	if len(rep.Fleets) > 0 && !slices.ContainsFunc(rep.Fleets, func(f perHostFleet) bool { return f.Hosts != rep.Fleets[0].Hosts }) {
		name = fmt.Sprintf("per-host models (%d)", rep.Fleets[0].Hosts)
	}
	return []struct {
		name string
		s    hostSummary
	}{{name, rep.PerHost}, {"one fleet model", rep.Pooled}}
}

func hostCells(s hostSummary, kinds []string, sep string) (figures, byKind string) {
	f := func(m meanSD) string { return fmt.Sprintf("%.3f ± %.3f", m.Mean, m.SD) }
	figures = strings.Join([]string{f(s.F1), f(s.Precision), f(s.Recall), f(s.AUROC), f(s.AUPRC), f(s.HostAUROC), f(s.HostAUPRC),
		f(s.Flagged), fmt.Sprintf("%.1f", s.TrainSeconds.Mean)}, sep)
	cells := make([]string, len(kinds))
	for i, k := range kinds {
		cells[i] = f(s.KindRecall[k])
	}
	return figures, strings.Join(cells, sep)
}

func (rep *perHostReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d fleets, seeds %v, %d runs, %s\n", rep.Input, len(rep.Fleets), rep.Seeds, len(rep.Runs),
		time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintln(w, "each test row flagged by the model that scores it at that model's own threshold; AUROC and AUPRC over every row by")
	fmt.Fprintln(w, "its score minus that threshold, host ones per host then averaged; mean ± sd over runs (fleets × seeds).")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\n\t%s\t\n", perHostColumns)
	for _, a := range rep.approaches() {
		figs, _ := hostCells(a.s, rep.Kinds, "\t")
		fmt.Fprintf(tw, "  %s\t%s\t\n", a.name, figs)
	}
	if len(rep.Kinds) > 0 {
		fmt.Fprintf(tw, "\nrecall by kind\t%s\t\n", strings.Join(rep.Kinds, "\t"))
		for _, a := range rep.approaches() {
			_, kinds := hostCells(a.s, rep.Kinds, "\t")
			fmt.Fprintf(tw, "  %s\t%s\t\n", a.name, kinds)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nper-host F1 above the fleet model's in %d of %d runs\n", rep.Wins, len(rep.Runs))
	return err
}

func (rep *perHostReport) writeMarkdown(w io.Writer) error {
	fmt.Fprintf(w, "## Per-host models against one fleet model\n\n")
	fmt.Fprintf(w, "%d fleets × %d seeds (%v) = %d runs; mean ± sd over runs. Per-host F1 is above the fleet model's in **%d of %d runs**.\n\n",
		len(rep.Fleets), len(rep.Seeds), rep.Seeds, len(rep.Runs), rep.Wins, len(rep.Runs))
	head := "| | " + strings.ReplaceAll(perHostColumns, "\t", " | ") + " |\n|---" + strings.Repeat("|---", strings.Count(perHostColumns, "\t")+1) + "|\n"
	fmt.Fprint(w, head)
	for _, a := range rep.approaches() {
		figs, _ := hostCells(a.s, rep.Kinds, " | ")
		fmt.Fprintf(w, "| %s | %s |\n", a.name, figs)
	}
	if len(rep.Kinds) > 0 {
		fmt.Fprintf(w, "\n| recall by kind | %s |\n|---%s|\n", strings.Join(rep.Kinds, " | "), strings.Repeat("|---", len(rep.Kinds)))
		for _, a := range rep.approaches() {
			_, kinds := hostCells(a.s, rep.Kinds, " | ")
			fmt.Fprintf(w, "| %s | %s |\n", a.name, kinds)
		}
	}
	fmt.Fprintf(w, "\n## Per run\n\n| fleet | hosts | test rows | anomalies | seed | per-host F1 | fleet F1 | per-host AUPRC | fleet AUPRC |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Runs {
		var fl perHostFleet
		for _, f := range rep.Fleets {
			if f.Name == r.Fleet {
				fl = f
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %.3f | %.3f | %.3f | %.3f |\n", r.Fleet, fl.Hosts, fl.TestRows, fl.Anomalies, r.Seed,
			r.PerHost.F1, r.Pooled.F1, r.PerHost.AUPRC, r.Pooled.AUPRC)
	}
	return nil
}
