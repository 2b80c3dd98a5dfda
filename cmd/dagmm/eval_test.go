package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets"
)

// evalCmd runs dagmm eval in-process and returns its output and error.
func evalCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = runEval(context.Background(), newCLIEnv(&out, &errOut), args)
	return out.String(), errOut.String(), err
}

// labelledFile writes a CSV file of normal rows on a curve in three
// features (x, 2x + noise, 1 − x + noise) and anomalies off it, with a label
// column, and returns its path.
func labelledFile(t *testing.T, name string, normal, anomalies int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	var b strings.Builder
	b.WriteString("a,b,c,label\n")
	for i := range normal + anomalies {
		u := rng.Float64()
		a, bb, c := u, 2*u+0.02*rng.NormFloat64(), 1-u+0.02*rng.NormFloat64()
		label := 0
		if i%((normal+anomalies)/anomalies) == 0 && anomalies > 0 {
			bb, c, label = 2*rng.Float64(), rng.Float64(), 1 // off the curve
		}
		fmt.Fprintf(&b, "%.5f,%.5f,%.5f,%d\n", a, bb, c, label)
	}
	return writeFile(t, t.TempDir(), name, b.String())
}

func TestEval(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 4 small networks")
	}
	in := labelledFile(t, "curve.csv", 400, 40)
	dir := t.TempDir()
	jsonPath, csvPath := filepath.Join(dir, "eval.json"), filepath.Join(dir, "eval.csv")
	mdPath, energyPath := filepath.Join(dir, "eval.md"), filepath.Join(dir, "energies.csv")
	stdout, stderr, err := evalCmd(t, "--preset", "default", "--runs", "2", "--seed", "5", "--epochs", "40", "--untrained",
		"--json", jsonPath, "--csv", csvPath, "--markdown", mdPath, "--energies-out", energyPath, "--energies-run", "2", in)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	for _, want := range []string{"trained", "untrained", "mean", "sd", "AUROC"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}

	var rep evalReport
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("decode the JSON report: %v", err)
	}
	// 440 rows, every 11th an anomaly: 40 anomalies, 400 normal rows,
	// 200 of them trained on, 200 + 40 tested.
	if rep.Rows != 440 || rep.Anomalies != 40 || rep.Features != 3 || len(rep.Runs) != 2 {
		t.Fatalf("rows %d, anomalies %d, features %d, runs %d; want 440, 40, 3, 2", rep.Rows, rep.Anomalies, rep.Features, len(rep.Runs))
	}
	if rep.Config.Epochs != 40 || rep.Preset != "default" {
		t.Errorf("config epochs %d, preset %q; want 40, default", rep.Config.Epochs, rep.Preset)
	}
	for i, r := range rep.Runs {
		if r.Seed != uint64(5+i) || r.TrainRows != 200 || r.TestRows != 240 || r.TestAnomalies != 40 {
			t.Errorf("run %d: seed %d, train %d, test %d (%d anomalies); want seed %d, 200, 240 (40)",
				r.Run, r.Seed, r.TrainRows, r.TestRows, r.TestAnomalies, 5+i)
		}
		if r.Untrained == nil {
			t.Fatalf("run %d has no untrained figures", r.Run)
		}
		for name, s := range map[string]*evalScore{"trained": &r.Trained, "untrained": r.Untrained} {
			if s.Status != "ok" {
				t.Errorf("run %d, %s: status %q (%s)", r.Run, name, s.Status, s.Error)
			}
			for _, v := range []float64{s.Ratio.Precision, s.Ratio.Recall, s.Ratio.F1, s.Percentile.F1, s.AUROC, s.AUPRC} {
				if !(v >= 0 && v <= 1) {
					t.Errorf("run %d, %s: figure %v outside [0, 1]", r.Run, name, v)
				}
			}
			// The ratio threshold flags 40 of the 440 training and test
			// energies, so at most 40 test samples.
			if flagged := s.Ratio.TP + s.Ratio.FP; flagged > 40 || s.Ratio.TP+s.Ratio.FN != 40 {
				t.Errorf("run %d, %s: %d flagged, %d anomalies counted; want at most 40 and 40", r.Run, name, flagged, s.Ratio.TP+s.Ratio.FN)
			}
		}
		if len(r.Trained.Losses) != 40 || r.Untrained.Losses != nil {
			t.Errorf("run %d: %d trained losses, %d untrained; want 40, none", r.Run, len(r.Trained.Losses), len(r.Untrained.Losses))
		}
	}
	// The anomalies are off the normal rows' curve: the trained models rank
	// them above the normal rows (energies read the wrong way round would
	// give an AUROC near 0).
	if auroc := rep.Trained.AUROC.Mean; auroc < 0.8 {
		t.Errorf("mean trained AUROC %.3f, want at least 0.8", auroc)
	}
	if m, _ := datasets.MeanSD([]float64{rep.Runs[0].Trained.Ratio.F1, rep.Runs[1].Trained.Ratio.F1}); math.Abs(rep.Trained.Ratio.F1.Mean-m) > 1e-12 {
		t.Errorf("mean F1 %v, want %v", rep.Trained.Ratio.F1.Mean, m)
	}
	if rep.Untrained == nil || rep.Untrained.Runs != 2 || rep.EnergyFile != energyPath {
		t.Errorf("untrained summary %+v, energies file %q", rep.Untrained, rep.EnergyFile)
	}

	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Header, 2 runs × 2 networks, mean and sd × 2 networks.
	if len(recs) != 9 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") || recs[5][1] != "mean" {
		t.Errorf("CSV has %d records (want 9), header %v, record 5 %v", len(recs), recs[0], recs[5])
	}

	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| ours, paper's threshold") || !strings.Contains(string(md), "untrained network") {
		t.Errorf("markdown lacks our rows:\n%s", md)
	}

	tab, err := datasets.ReadFile(energyPath)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := datasets.Labels(tab, "label")
	if err != nil {
		t.Fatal(err)
	}
	anomalies := 0
	for _, l := range labels {
		if l {
			anomalies++
		}
	}
	if tab.Len() != 440 || anomalies != 40 {
		t.Errorf("energies file: %d rows, %d anomalies; want 440, 40", tab.Len(), anomalies)
	}
	for _, c := range []string{"set", "energy", "energy_untrained"} {
		if _, ok := tab.Column(c); !ok {
			t.Errorf("energies file lacks column %q (has %v)", c, tab.Names())
		}
	}
}

func TestEvalSameSeedSameFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 2 small networks")
	}
	in := labelledFile(t, "curve.csv", 200, 20)
	var figures [2]string
	for i := range figures {
		stdout, stderr, err := evalCmd(t, "--runs", "1", "--epochs", "10", "--csv", "-", in)
		if err != nil {
			t.Fatalf("eval: %v\n%s", err, stderr)
		}
		// Drop the timing columns.
		var kept []string
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			f := strings.Split(line, ",")
			kept = append(kept, strings.Join(f[:len(f)-2], ","))
		}
		figures[i] = strings.Join(kept, "\n")
	}
	if figures[0] != figures[1] {
		t.Errorf("the same seed gave other figures:\n%s\n---\n%s", figures[0], figures[1])
	}
}

func TestEvalPresetAndOverrides(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small network")
	}
	// The file name picks the thyroid preset; the flags override three settings.
	in := labelledFile(t, "my-thyroid-sample.csv", 200, 20)
	stdout, stderr, err := evalCmd(t, "--runs", "1", "--epochs", "7", "--lr", "0.01", "--min-component-weight", "0.9", "--json", "-", in)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	var rep evalReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json -: %v\n%s", err, stdout)
	}
	c := rep.Config
	if rep.Preset != "thyroid" || rep.Paper == nil || !strings.Contains(rep.Why, "normalisation") || c.Epochs != 7 || c.LearningRate != 0.01 || fmt.Sprint(c.Encoder) != "[12 4 1]" {
		t.Errorf("preset %q, paper %v, epochs %d, lr %v, encoder %v; want thyroid's with 7 epochs at 0.01",
			rep.Preset, rep.Paper != nil, c.Epochs, c.LearningRate, c.Encoder)
	}
	// A minimum weight of 0.9 leaves only the heaviest component.
	if c.MinComponentWeight != 0.9 || len(rep.Runs) != 1 || rep.Runs[0].Trained.Components != 1 {
		t.Errorf("min component weight %v, runs %+v; want 0.9 and one component kept", c.MinComponentWeight, rep.Runs)
	}
}

func TestEvalDivergedRunsReported(t *testing.T) {
	// At a learning rate of 1000 the loss is NaN within two epochs.
	in := labelledFile(t, "curve.csv", 200, 20)
	stdout, stderr, err := evalCmd(t, "--runs", "2", "--epochs", "5", "--lr", "1000", "--json", "-", in)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	var rep evalReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json -: %v\n%s", err, stdout)
	}
	for _, r := range rep.Runs {
		if r.Trained.Status != "diverged" || !strings.Contains(r.Trained.Error, "diverged") {
			t.Errorf("run %d: status %q, error %q; want diverged", r.Run, r.Trained.Status, r.Trained.Error)
		}
	}
	if rep.Trained.Diverged != 2 || rep.Trained.Runs != 2 {
		t.Errorf("summary: %d of %d runs diverged, want 2 of 2", rep.Trained.Diverged, rep.Trained.Runs)
	}
	if !strings.Contains(stderr, "run diverged") {
		t.Errorf("no divergence in the log:\n%s", stderr)
	}
	stdout, _, err = evalCmd(t, "--runs", "1", "--epochs", "5", "--lr", "1000", in)
	if err != nil || !strings.Contains(stdout, "diverged") || !strings.Contains(stdout, "1 of 1 runs diverged") {
		t.Errorf("table: err %v, output:\n%s", err, stdout)
	}
}

func TestEvalErrors(t *testing.T) {
	good := labelledFile(t, "curve.csv", 40, 4)
	dir := t.TempDir()
	noLabel := writeFile(t, dir, "nolabel.csv", "a,b\n1,2\n3,4\n5,7\n")
	allNormal := writeFile(t, dir, "normal.csv", "a,b,label\n1,2,0\n3,4,0\n5,7,0\n")
	badLabel := writeFile(t, dir, "bad.csv", "a,b,label\n1,2,0\n3,4,2\n5,7,0\n")
	tests := []struct {
		name  string
		args  []string
		usage bool   // a usage error (exit code 2)
		want  string // in the message
	}{
		{"no file", nil, true, "one labelled input file"},
		{"runs", []string{"--runs", "0", good}, true, "--runs"},
		{"preset", []string{"--preset", "mnist", good}, true, "mnist"},
		{"ratio", []string{"--ratio", "1.5", good}, true, "--ratio"},
		{"fraction", []string{"--train-fraction", "1", good}, true, "--train-fraction"},
		{"energies run", []string{"--runs", "2", "--energies-run", "3", good}, true, "--energies-run"},
		{"event", []string{"--event", "flag", good}, true, "--event"},
		{"bad config", []string{"--k", "0", good}, true, "k"},
		{"missing file", []string{filepath.Join(dir, "absent.csv")}, false, "absent.csv"},
		{"no label", []string{noLabel}, false, `"label"`},
		{"one class", []string{allNormal}, false, "both classes"},
		{"bad label", []string{badLabel}, false, "row 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := evalCmd(t, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.As(err, new(usageError)); got != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", got, tt.usage, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	if stdout, _, err := evalCmd(t, "--help"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stdout, "Examples:") {
		t.Errorf("--help: err %v, output:\n%s", err, stdout)
	}
}
