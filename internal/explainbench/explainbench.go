// Package explainbench measures how well the explanation methods of package
// model name the features that an anomaly broke, on generated data whose
// causes are known (datasets.Generate labels each injected anomaly with the
// features it broke).
//
// For each seed it generates a training file, trains a model (package train)
// on its normal rows, generates a test file with many anomalies of one and of
// two broken features, scores it, and explains every injected anomaly the
// model flags with every method. It counts, per method: for single-feature
// anomalies, how often the top-ranked feature is the broken one, and how
// often replacing that feature by its expected value brings the energy to
// the threshold or below; for two-feature anomalies, how often both broken
// features are the top two. Run it with
//
//	go run ./internal/explainbench/cmd/explainbench
//
// (make bench-explain); docs/explanations.md holds its figures.
package explainbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// Config configures [Run].
type Config struct {
	// Seeds: one run per seed; the seed drives the training file, the test
	// file (seed + 1000) and the training.
	Seeds []uint64
	// TrainRows is the number of rows generated for training, of which
	// TrainAnomalies are injected anomalies that are removed before
	// training (their label is known), as the event column would be.
	TrainRows, TrainAnomalies int
	// TestRows and TestAnomalies size the test file; its anomalies alternate
	// one and two broken features.
	TestRows, TestAnomalies int
	// Methods are the explanation methods measured.
	Methods []model.Method
	// Train holds the training settings; Seed is set per run.
	Train train.Config
}

// DefaultConfig returns 10 seeds (1 to 10), training files of 2000 rows (20
// anomalies removed), test files of 2000 rows with 200 anomalies, every
// method, and train.DefaultConfig.
func DefaultConfig() Config {
	return Config{
		Seeds:          []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		TrainRows:      2000,
		TrainAnomalies: 20,
		TestRows:       2000,
		TestAnomalies:  200,
		Methods:        model.Methods(),
		Train:          train.DefaultConfig(),
	}
}

// Figures are one method's counts over the flagged injected anomalies.
type Figures struct {
	Method model.Method
	// Single counts flagged anomalies with one broken feature; Top1 those
	// whose top-ranked feature is the broken one; Fixed those whose energy
	// falls to the threshold or below when the top-ranked feature is set
	// to its expected value.
	Single, Top1, Fixed int
	// Double counts flagged anomalies with two broken features; Top2 those
	// whose two top-ranked features are the broken ones; Split those whose
	// top two are either the broken pair or the unbroken pair (the
	// explanation separates the features into the right two groups).
	Double, Top2, Split int
	// Resolved1 and Resolved2 count the single- and two-feature anomalies
	// whose explanation is resolved (model.Explanation.Resolved).
	Resolved1, Resolved2 int
	// Nanos is the time spent explaining, in nanoseconds, and Explained the
	// number of explanations.
	Nanos     int64
	Explained int
}

func (f *Figures) add(g Figures) {
	f.Single += g.Single
	f.Top1 += g.Top1
	f.Fixed += g.Fixed
	f.Double += g.Double
	f.Top2 += g.Top2
	f.Split += g.Split
	f.Resolved1 += g.Resolved1
	f.Resolved2 += g.Resolved2
	f.Nanos += g.Nanos
	f.Explained += g.Explained
}

// RunFigures are the figures of one seed.
type RunFigures struct {
	Seed uint64
	// Injected and Flagged count the test file's injected anomalies and
	// those the model flags; FalseAlarms the normal rows it flags.
	Injected, Flagged, FalseAlarms int
	// Q50, Q90, Q99 and Q100 are the model's training energy quantiles.
	Q50, Q90, Q99, Q100 float64
	// Bands counts the flagged injected anomalies per severity band, and
	// FalseBands the flagged normal rows.
	Bands, FalseBands [model.BandCritical + 1]int
	// Methods holds one Figures per configured method, in order.
	Methods []Figures
	// Oracle and OracleNormal are the figures of Bayes' rule applied with
	// the generator's formulas (see oracle.go): Oracle knows how anomalies
	// are injected, OracleNormal only how normal rows look (the injected
	// values get a flat density). They bound what an explanation can do.
	Oracle, OracleNormal Figures
}

// Report is the outcome of [Run].
type Report struct {
	Config Config
	Runs   []RunFigures
	// Total sums the runs, per method.
	Total []Figures
	// Oracle and OracleNormal sum the runs' oracle figures.
	Oracle, OracleNormal Figures
	Duration             time.Duration
}

// Run measures every configured method on every seed. progress, when not
// nil, is called after each seed.
func Run(ctx context.Context, cfg Config, progress func(RunFigures)) (*Report, error) {
	start := time.Now()
	rep := &Report{Config: cfg, Total: make([]Figures, len(cfg.Methods))}
	for i, m := range cfg.Methods {
		rep.Total[i].Method = m
	}
	for _, seed := range cfg.Seeds {
		rf, err := runSeed(ctx, cfg, seed)
		if err != nil {
			return nil, fmt.Errorf("explainbench: seed %d: %w", seed, err)
		}
		rep.Runs = append(rep.Runs, rf)
		for i := range rf.Methods {
			rep.Total[i].add(rf.Methods[i])
		}
		rep.Oracle.add(rf.Oracle)
		rep.OracleNormal.add(rf.OracleNormal)
		if progress != nil {
			progress(rf)
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

func generate(seed uint64, rows, anomalies int) (x []float64, causes []string, err error) {
	gc := datasets.DefaultGenConfig()
	gc.N, gc.Anomalies, gc.Seed = rows, anomalies, seed
	gc.MinBroken, gc.MaxBroken = 1, 2
	t, err := datasets.Generate(gc)
	if err != nil {
		return nil, nil, err
	}
	x, err = datasets.Matrix(t, datasets.GenFeatures())
	if err != nil {
		return nil, nil, err
	}
	c, ok := t.Column("cause")
	if !ok {
		return nil, nil, fmt.Errorf("generated table has no cause column")
	}
	return x, c.Strings, nil
}

func runSeed(ctx context.Context, cfg Config, seed uint64) (RunFigures, error) {
	rf := RunFigures{Seed: seed, Methods: make([]Figures, len(cfg.Methods))}
	features := datasets.GenFeatures()
	d := len(features)
	xAll, causes, err := generate(seed, cfg.TrainRows, cfg.TrainAnomalies)
	if err != nil {
		return rf, fmt.Errorf("generate training data: %w", err)
	}
	var xTrain []float64
	for i, c := range causes {
		if c == "" {
			xTrain = append(xTrain, xAll[i*d:(i+1)*d]...)
		}
	}
	orc := newOracle(xTrain)
	tc := cfg.Train
	tc.Seed = seed
	m, _, err := train.Train(ctx, features, xTrain, tc, nil)
	if err != nil {
		return rf, fmt.Errorf("train: %w", err)
	}
	s, err := model.NewScorer(m)
	if err != nil {
		return rf, err
	}
	q := m.Calibration.Quantiles
	rf.Q50, rf.Q90, rf.Q99, rf.Q100 = q[50], q[90], q[99], q[100]
	x, causes, err := generate(seed+1000, cfg.TestRows, cfg.TestAnomalies)
	if err != nil {
		return rf, fmt.Errorf("generate test data: %w", err)
	}
	n := len(x) / d
	ws := s.NewWorkspace(n)
	out := make([]model.Result, n)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		return rf, fmt.Errorf("score test data: %w", err)
	}
	fix := s.NewWorkspace(1)
	fixOut := make([]model.Result, 1)
	recent := s.NewRecent(model.RecentWindow)
	fixed := make([]float64, d)
	var ex model.Explanation
	for i, r := range out {
		if causes[i] != "" {
			rf.Injected++
		}
		if !r.Anomaly {
			continue
		}
		if causes[i] == "" {
			rf.FalseAlarms++
			rf.FalseBands[r.Band]++
			continue
		}
		rf.Flagged++
		rf.Bands[r.Band]++
		broken := strings.Split(causes[i], "+")
		for _, o := range []struct {
			f    *Figures
			full bool
		}{{&rf.Oracle, true}, {&rf.OracleNormal, false}} {
			pick := orc.best(x[i*d:(i+1)*d], len(broken), o.full)
			switch len(broken) {
			case 1:
				o.f.Single++
				if features[pick[0]] == broken[0] {
					o.f.Top1++
				}
			case 2:
				o.f.Double++
				if slices.Contains(broken, features[pick[0]]) && slices.Contains(broken, features[pick[1]]) {
					o.f.Top2++
					o.f.Split++
				} else if !slices.Contains(broken, features[pick[0]]) && !slices.Contains(broken, features[pick[1]]) {
					o.f.Split++
				}
			}
		}
		for k, method := range cfg.Methods {
			f := &rf.Methods[k]
			f.Method = method
			t0 := time.Now()
			if method == model.MethodRecent {
				// The test file is one host's series: recent sees the rows
				// before this one, as the service would.
				recent.Reset()
				for k := max(0, i-recent.Window()+1); k < i; k++ {
					if err := recent.Add(ws, k); err != nil {
						return rf, fmt.Errorf("row %d: %w", k, err)
					}
				}
				if err := s.ExplainRecent(ws, i, recent, &ex); err != nil {
					return rf, fmt.Errorf("explain row %d with %s: %w", i, method, err)
				}
			} else if err := s.Explain(ws, i, method, &ex); err != nil {
				return rf, fmt.Errorf("explain row %d with %s: %w", i, method, err)
			}
			f.Nanos += time.Since(t0).Nanoseconds()
			f.Explained++
			if ex.Resolved {
				if len(broken) == 1 {
					f.Resolved1++
				} else {
					f.Resolved2++
				}
			}
			top := ex.Features
			switch len(broken) {
			case 1:
				f.Single++
				if top[0].Feature == broken[0] {
					f.Top1++
				}
				copy(fixed, x[i*d:(i+1)*d])
				fixed[top[0].Index] = top[0].Expected
				if err := s.ScoreBatch(fix, fixed, fixOut); err != nil {
					return rf, fmt.Errorf("row %d with %s set to its expected value %v: %w", i, top[0].Feature, top[0].Expected, err)
				}
				if !fixOut[0].Anomaly {
					f.Fixed++
				}
			case 2:
				f.Double++
				pair := []string{top[0].Feature, top[1].Feature}
				if slices.Contains(pair, broken[0]) && slices.Contains(pair, broken[1]) {
					f.Top2++
					f.Split++
				} else if !slices.Contains(pair, broken[0]) && !slices.Contains(pair, broken[1]) {
					f.Split++
				}
			}
		}
	}
	return rf, nil
}

func pct(a, b int) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// Markdown writes the report as Markdown tables: the totals per method, then
// each seed.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	flagged, injected, falseAlarms := 0, 0, 0
	for _, rf := range r.Runs {
		flagged += rf.Flagged
		injected += rf.Injected
		falseAlarms += rf.FalseAlarms
	}
	fmt.Fprintf(&b, "%d seeds, %d of %d injected anomalies flagged (%s), %d normal rows flagged; %s.\n\n",
		len(r.Runs), flagged, injected, pct(flagged, injected), falseAlarms, r.Duration.Round(time.Second))
	b.WriteString("| method | single: top-1 | single: fixed by expected | double: both in top 2 | double: groups split | resolved: single / double | µs per explanation |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, f := range r.Total {
		us := 0.0
		if f.Explained > 0 {
			us = float64(f.Nanos) / float64(f.Explained) / 1e3
		}
		fmt.Fprintf(&b, "| %s | %s (%d/%d) | %s | %s (%d/%d) | %s | %s / %s | %.1f |\n", f.Method,
			pct(f.Top1, f.Single), f.Top1, f.Single, pct(f.Fixed, f.Single),
			pct(f.Top2, f.Double), f.Top2, f.Double, pct(f.Split, f.Double),
			pct(f.Resolved1, f.Single), pct(f.Resolved2, f.Double), us)
	}
	for _, o := range []struct {
		name string
		f    Figures
	}{{"*oracle, generator known*", r.Oracle}, {"*oracle, normal rows known*", r.OracleNormal}} {
		fmt.Fprintf(&b, "| %s | %s (%d/%d) | – | %s (%d/%d) | %s | – | – |\n", o.name,
			pct(o.f.Top1, o.f.Single), o.f.Top1, o.f.Single,
			pct(o.f.Top2, o.f.Double), o.f.Top2, o.f.Double, pct(o.f.Split, o.f.Double))
	}
	b.WriteString("\nPer seed (single top-1 / double top-2):\n\n| seed | q99 − q90 | q100 − q99 | flagged | false alarms |")
	for _, f := range r.Total {
		fmt.Fprintf(&b, " %s |", f.Method)
	}
	b.WriteString("\n|---|---|---|---|---|")
	for range r.Total {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, rf := range r.Runs {
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %d/%d | %d |", rf.Seed, rf.Q99-rf.Q90, rf.Q100-rf.Q99, rf.Flagged, rf.Injected, rf.FalseAlarms)
		for _, f := range rf.Methods {
			fmt.Fprintf(&b, " %s / %s |", pct(f.Top1, f.Single), pct(f.Top2, f.Double))
		}
		b.WriteString("\n")
	}
	var bands, fbands [model.BandCritical + 1]int
	for _, rf := range r.Runs {
		for k := range bands {
			bands[k] += rf.Bands[k]
			fbands[k] += rf.FalseBands[k]
		}
	}
	b.WriteString("\nSeverity bands of the flagged rows:\n\n| rows |")
	for k := range bands {
		fmt.Fprintf(&b, " %s |", model.Band(k))
	}
	b.WriteString("\n|---|---|---|---|---|---|\n| injected anomalies |")
	for k := range bands {
		fmt.Fprintf(&b, " %d |", bands[k])
	}
	b.WriteString("\n| normal rows (false alarms) |")
	for k := range bands {
		fmt.Fprintf(&b, " %d |", fbands[k])
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
