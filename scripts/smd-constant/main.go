// Command smd-constant measures, on the SMD machines in
// ../shared/datasets/smd, whether a departure from a column that was
// constant in training helps find anomalies: it trains each machine as
// dagmm train does (constant columns left out, train.DefaultConfig), scores
// the test file, and prints per machine the AUROC, AUPRC and F1 at the
// model's threshold of the energy alone (the constant columns excluded)
// and of the energy with departures counted (a departed row ranks above
// every other and is an anomaly), plus how many test rows depart and how
// many of those are labelled anomalies.
//
//	go run ./scripts/smd-constant [-dir ../shared/datasets/smd] [-epochs 200] [machine ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

func main() {
	dir := flag.String("dir", "../shared/datasets/smd", "directory of smd-M-train.parquet and smd-M-test.parquet")
	epochs := flag.Int("epochs", train.DefaultConfig().Epochs, "training epochs")
	flag.Parse()
	machines := flag.Args()
	if len(machines) == 0 {
		machines = []string{"1-6", "1-7", "2-2", "2-7", "2-8", "3-4"}
	}
	fmt.Println("| machine | constant columns | test rows departing | of them anomalies | AUROC energy | AUROC with departures | AUPRC energy | AUPRC with departures | F1 energy | F1 with departures |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, mc := range machines {
		if err := run(*dir, mc, *epochs); err != nil {
			fmt.Fprintf(os.Stderr, "smd-constant: machine %s: %v\n", mc, err)
			os.Exit(1)
		}
	}
}

func run(dir, machine string, epochs int) error {
	tr, err := datasets.ReadFile(filepath.Join(dir, "smd-"+machine+"-train.parquet"))
	if err != nil {
		return err
	}
	te, err := datasets.ReadFile(filepath.Join(dir, "smd-"+machine+"-test.parquet"))
	if err != nil {
		return err
	}
	all, err := datasets.SelectFeatures(tr, nil, datasets.DefaultExclude())
	if err != nil {
		return err
	}
	x, err := datasets.Matrix(tr, all)
	if err != nil {
		return err
	}
	features, xv, constant := train.SplitConstant(all, x)
	cfg := train.DefaultConfig()
	cfg.Epochs = epochs
	m, _, err := train.Train(context.Background(), features, xv, cfg, nil)
	if err != nil {
		return err
	}
	m.Constant = constant
	s, err := model.NewScorer(m)
	if err != nil {
		return err
	}
	xt, err := datasets.Matrix(te, features)
	if err != nil {
		return err
	}
	names := make([]string, len(constant))
	for i, c := range constant {
		names[i] = c.Name
	}
	var ct []float64
	if len(names) > 0 {
		if ct, err = datasets.Matrix(te, names); err != nil {
			return err
		}
	}
	labels, err := datasets.Labels(te, "label")
	if err != nil {
		return err
	}
	n, d, k := te.Len(), len(features), len(constant)
	energy, counted := make([]float64, n), make([]float64, n)
	departed, departedAnomalies := 0, 0
	var deps []model.Departure
	for i := range n {
		r, err := s.Score(xt[i*d : (i+1)*d])
		if err != nil {
			return err
		}
		energy[i], counted[i] = r.Energy, r.Energy
		if deps = m.Departures(deps[:0], ct[i*k:(i+1)*k]); len(deps) > 0 {
			departed++
			if labels[i] {
				departedAnomalies++
			}
			counted[i] = math.Inf(1) // above every energy: an anomaly, ranked first
		}
	}
	rocE, err := datasets.AUROC(energy, labels)
	if err != nil {
		return err
	}
	rocC, _ := datasets.AUROC(counted, labels)
	prE, _ := datasets.AUPRC(energy, labels)
	prC, _ := datasets.AUPRC(counted, labels)
	detE, _ := datasets.Detect(energy, labels, m.Calibration.Threshold)
	detC, _ := datasets.Detect(counted, labels, m.Calibration.Threshold)
	fmt.Printf("| %s | %d | %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", machine, k, departed, departedAnomalies,
		rocE, rocC, prE, prC, detE.F1, detC.F1)
	return nil
}
