package main

import (
	"context"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// TestScoreAllSeries checks that dagmm score, for a model with a window,
// scores each host's rows as its own series in file order, whatever the
// interleaving of hosts and the chunking.
func TestScoreAllSeries(t *testing.T) {
	m := modeltest.Metrics4(4)
	m.Window = 4
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	n, d := 3000, len(m.Features) // more rows than one chunk of DefaultBatch per core
	x := modeltest.Inputs(m, n, 3)
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = []string{"a", "b", "c"}[(i*7/5)%3]
	}
	for j := range d {
		x[1500*d+j] *= 40
	}
	res, err := scoreAll(context.Background(), s, x, hosts, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"a", "b", "c"} {
		var rows []int
		var energies []float64
		for i, h := range hosts {
			if h == host {
				rows = append(rows, i)
				energies = append(energies, res[i].energy)
			}
		}
		want := model.WindowScores(energies, 4, m.WindowLimit())
		for k, i := range rows {
			if res[i].score != want[k] || res[i].anomaly != (want[k] > m.Calibration.Threshold) {
				t.Fatalf("host %s row %d: score %v anomaly %v, want %v %v", host, i, res[i].score, res[i].anomaly, want[k], want[k] > m.Calibration.Threshold)
			}
		}
	}
	// Without hosts the file is one series.
	one, err := scoreAll(context.Background(), s, x, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	energies := make([]float64, n)
	for i, r := range one {
		energies[i] = r.energy
	}
	for i, w := range model.WindowScores(energies, 4, m.WindowLimit()) {
		if one[i].score != w {
			t.Fatalf("one series, row %d: score %v, want %v", i, one[i].score, w)
		}
	}
}
