package train_test

import (
	"context"
	"fmt"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// The seed's experiment: 1000 samples of four correlated host metrics with
// two anomalies that break the correlation; the trained model puts both
// above the 99th-percentile threshold.
func ExampleTrain() {
	tab, err := datasets.Generate(datasets.DefaultGenConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	features := datasets.GenFeatures()
	x, err := datasets.Matrix(tab, features)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, rep, err := train.Train(context.Background(), features, x, train.DefaultConfig(), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	labels, _ := tab.Column("label")
	found := 0
	for i, e := range model.WindowScores(rep.Energies, m.Window, m.WindowLimit()) {
		if labels.Ints[i] == 1 && e > m.Calibration.Threshold {
			found++
		}
	}
	for j, f := range m.Features {
		fmt.Printf("%s: %s\n", f, m.Norm[j].Kind)
	}
	fmt.Printf("anomalies above the %gth percentile: %d of 2\n", m.Calibration.Percentile, found)
	// Output:
	// cpu_usage: minmax
	// mem_usage: minmax
	// disk_busy: minmax
	// net_in_bps: log
	// anomalies above the 99th percentile: 2 of 2
}
