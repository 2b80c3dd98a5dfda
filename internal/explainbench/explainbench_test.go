package explainbench

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

// TestRunSmall runs the benchmark on one small seed: the figures add up,
// the default method names most single broken features and pairs, and the report
// shows every method.
func TestRunSmall(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seeds = []uint64{3}
	cfg.TrainRows, cfg.TrainAnomalies = 1000, 10
	cfg.TestRows, cfg.TestAnomalies = 500, 40
	cfg.Train.Epochs = 100
	cfg.Methods = []model.Method{model.MethodRepair, model.MethodShare, model.MethodSearch}
	var seen []uint64
	rep, err := Run(context.Background(), cfg, func(rf RunFigures) { seen = append(seen, rf.Seed) })
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 || len(seen) != 1 || seen[0] != 3 {
		t.Fatalf("runs %d, progress %v", len(rep.Runs), seen)
	}
	rf := rep.Runs[0]
	if rf.Injected != cfg.TestAnomalies || rf.Flagged == 0 || rf.Flagged > rf.Injected {
		t.Fatalf("injected %d, flagged %d", rf.Injected, rf.Flagged)
	}
	bands := 0
	for _, n := range rf.Bands {
		bands += n
	}
	if bands != rf.Flagged || rf.Bands[model.BandNormal] != 0 {
		t.Errorf("bands %v for %d flagged anomalies", rf.Bands, rf.Flagged)
	}
	for i, f := range rep.Total {
		if f.Method != cfg.Methods[i] || f.Single+f.Double != rf.Flagged || f.Explained != rf.Flagged {
			t.Errorf("%s: %+v for %d flagged", cfg.Methods[i], f, rf.Flagged)
		}
		if f.Top1 > f.Single || f.Fixed > f.Single || f.Top2 > f.Split || f.Split > f.Double {
			t.Errorf("%s: inconsistent counts %+v", f.Method, f)
		}
	}
	if f := rep.Total[0]; f.Single == 0 || float64(f.Top1) < 0.8*float64(f.Single) {
		t.Errorf("repair names %d of %d single broken features", f.Top1, f.Single)
	}
	if o := rep.Oracle; o.Single == 0 || float64(o.Top1) < 0.9*float64(o.Single) {
		t.Errorf("the oracle names %d of %d single broken features", o.Top1, o.Single)
	}
	// Two broken features go opposite ways, so the pair is identifiable.
	if o := rep.Oracle; o.Double == 0 || float64(o.Top2) < 0.9*float64(o.Double) {
		t.Errorf("the oracle names %d of %d broken pairs", o.Top2, o.Double)
	}
	if f := rep.Total[0]; f.Double == 0 || float64(f.Top2) < 0.7*float64(f.Double) {
		t.Errorf("repair names %d of %d broken pairs", f.Top2, f.Double)
	}
	var b strings.Builder
	if err := rep.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| repair |", "| share |", "| search |", "oracle", "| 3 |", "critical"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRunCancelled: a cancelled context stops the run with its error.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := DefaultConfig()
	cfg.Seeds = []uint64{1}
	if _, err := Run(ctx, cfg, nil); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %v, want context canceled", err)
	}
}

// TestImpliedLoad checks the oracle's copy of the generator's formulas: on
// normal generated rows the four features' implied loads agree within a
// few noise standard deviations.
func TestImpliedLoad(t *testing.T) {
	tab, err := datasets.Generate(datasets.GenConfig{N: 2000, Anomalies: 0, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	x, err := datasets.Matrix(tab, datasets.GenFeatures())
	if err != nil {
		t.Fatal(err)
	}
	var dev [4]float64
	n := 0
	for i := 0; i+4 <= len(x); i += 4 {
		m := 0.0
		for f := range 4 {
			m += impliedLoad(f, x[i+f]) / 4
		}
		if m < 0.1 || m > 0.9 { // clipping at 0 and 100% distorts the extremes
			continue
		}
		for f := range 4 {
			d := impliedLoad(f, x[i+f]) - m
			dev[f] += d * d
		}
		n++
	}
	for f := range 4 {
		sd := math.Sqrt(dev[f] / float64(n))
		// A feature's deviation from the row mean has sd near its own noise
		// (the mean holds a quarter of it); a wrong formula makes it far larger.
		if sd > 2*genNoise[f] || sd < 0.3*genNoise[f] {
			t.Errorf("feature %d: implied load deviates by sd %.4f, its noise is %.4f", f, sd, genNoise[f])
		}
	}
}
