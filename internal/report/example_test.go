package report_test

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dagmm/dagmm/internal/report"
)

// ExampleWrite writes the training report of a tiny run: three features,
// six samples, one of them far above the threshold.
func ExampleWrite() {
	dir, err := os.MkdirTemp("", "report")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	in := report.Input{
		Format: "svg",
		Losses: []report.Series{
			{Name: "total", Values: []float64{2.1, 1.4, 1.1, 1.0}},
			{Name: "reconstruction", Values: []float64{0.9, 0.5, 0.3, 0.25}},
		},
		Energies:   []float64{-1.2, -0.8, 0.1, -0.5, 0.3, 9.7},
		Threshold:  0.3,
		Percentile: 99,
		Features:   []string{"cpu_usage", "mem_usage", "net_in_bps"},
		X: []float64{
			21, 40, 2.1e5,
			35, 48, 8.0e5,
			52, 55, 3.2e6,
			44, 51, 1.6e6,
			61, 60, 9.5e6,
			97, 41, 2.0e5, // CPU pegged while the rest is idle
		},
		Duration: 2 * time.Second,
	}
	paths, err := report.Write(dir, in)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range paths {
		fmt.Println(filepath.Base(p))
	}

	b, err := os.ReadFile(paths[3])
	if err != nil {
		log.Fatal(err)
	}
	var s report.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("flagged rows %v of %d, %.0f samples/s\n", s.FlaggedRows, s.Samples, s.Throughput)
	// Output:
	// loss.svg
	// energy.svg
	// scatter.svg
	// report.json
	// flagged rows [5] of 6, 12 samples/s
}
