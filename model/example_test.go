package model_test

import (
	"fmt"
	"log"

	"github.com/dagmm/dagmm/model"
)

// Load a model, then score a batch with a workspace that the goroutine keeps
// for all its batches.
func Example() {
	m, err := model.Load("testdata/tiny.dagmm.json")
	if err != nil {
		log.Fatal(err)
	}
	s, err := model.NewScorer(m)
	if err != nil {
		log.Fatal(err)
	}
	ws := s.NewWorkspace(model.DefaultBatch) // one per goroutine, reused
	out := make([]model.Result, model.DefaultBatch)

	x := []float64{ // row-major, in s.Features() order: cpu_usage, net_in_bps
		55.5, 1.2e6,
		99, 5e3,
	}
	if err := s.ScoreBatch(ws, x, out); err != nil {
		log.Fatal(err)
	}
	for i, r := range out[:len(x)/s.NumFeatures()] {
		fmt.Printf("sample %d: energy %.4f, anomaly %v (threshold %.2f)\n", i, r.Energy, r.Anomaly, s.Threshold())
		for j, f := range s.Features() {
			fmt.Printf("  %-10s actual %9.4g  expected %9.4g  share %.3f\n", f, r.Actual[j], r.Expected[j], r.Share[j])
		}
	}
	// Output:
	// sample 0: energy 1.6888, anomaly false (threshold 3.95)
	//   cpu_usage  actual      55.5  expected     51.22  share 0.224
	//   net_in_bps actual   1.2e+06  expected 3.939e+05  share 0.776
	// sample 1: energy 4.0751, anomaly true (threshold 3.95)
	//   cpu_usage  actual        99  expected     64.17  share 0.588
	//   net_in_bps actual      5000  expected 2.951e+05  share 0.412
}

// Place the threshold at the 99th percentile of the training energies.
func ExampleCalibrate() {
	energies := []float64{3.1, 2.7, 5.9, 3.3, 2.2, 4.0, 3.8, 2.9, 3.0, 12.5}
	c, err := model.Calibrate(energies, 90)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("threshold %.2f at the %vth percentile; median %.2f\n", c.Threshold, c.Percentile, c.Quantiles[50])
	// Output:
	// threshold 6.56 at the 90th percentile; median 3.20
}
