package model_test

import (
	"fmt"
	"log"

	"github.com/dagmm/dagmm/model"
)

// Score a batch, then explain the anomalies only: disk busy is 65% while
// the other metrics say the host is lightly loaded.
func ExampleScorer_Explain() {
	m, err := model.Load("testdata/metrics4.dagmm.json")
	if err != nil {
		log.Fatal(err)
	}
	s, err := model.NewScorer(m)
	if err != nil {
		log.Fatal(err)
	}
	ws := s.NewWorkspace(model.DefaultBatch)
	out := make([]model.Result, model.DefaultBatch)
	var ex model.Explanation // reused: explaining into it does not allocate

	x := []float64{ // cpu_usage %, mem_usage %, disk_busy %, net_in_bps
		30.5, 40.1, 22.0, 700e3,
		30.5, 40.1, 65.0, 700e3,
	}
	if err := s.ScoreBatch(ws, x, out); err != nil {
		log.Fatal(err)
	}
	for i, r := range out[:len(x)/s.NumFeatures()] {
		fmt.Printf("sample %d: severity %.0f (%s)\n", i, r.Severity, r.Band)
		if !r.Anomaly {
			continue
		}
		if err := s.Explain(ws, i, "", &ex); err != nil { // "": the default method
			log.Fatal(err)
		}
		for _, c := range ex.Features {
			fmt.Printf("  %-10s actual %8.4g  expected %8.4g  share %3.0f%%\n", c.Feature, c.Actual, c.Expected, 100*c.Share)
		}
	}
	// Output:
	// sample 0: severity 30 (normal)
	// sample 1: severity 94 (critical)
	//   disk_busy  actual       65  expected     28.6  share 100%
	//   cpu_usage  actual     30.5  expected    35.34  share   0%
	//   mem_usage  actual     40.1  expected    44.51  share   0%
	//   net_in_bps actual    7e+05  expected 1.122e+06  share   0%
}
