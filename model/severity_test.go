package model_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// calibrations returns calibrations to test Severity on: from the trained
// fixture, from random models, from a hand-made distribution, with the
// threshold at several percentiles, and degenerate ones.
func calibrations(t *testing.T) map[string]model.Calibration {
	t.Helper()
	trained, err := model.Load("testdata/metrics4.dagmm.json")
	if err != nil {
		t.Fatal(err)
	}
	energies := make([]float64, 1000)
	for i := range energies {
		energies[i] = math.Exp(float64(i)/200) - 3 // a long right tail
	}
	cs := map[string]model.Calibration{
		"trained":  trained.Calibration,
		"metrics4": modeltest.Metrics4(1).Calibration,
		"kddcup":   modeltest.KDDCup(1).Calibration,
		"tiny":     tinyModel().Calibration,
	}
	for _, p := range []float64{50, 95, 99, 99.9, 100} {
		c, err := model.Calibrate(energies, p)
		if err != nil {
			t.Fatal(err)
		}
		cs["tail/p="+scalarString(p)] = c
	}
	flat, err := model.Calibrate([]float64{2, 2, 2, 2}, 99)
	if err != nil {
		t.Fatal(err)
	}
	cs["flat"] = flat
	return cs
}

func scalarString(p float64) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// TestSeverityMonotone: Severity is within [0, 100], non-decreasing in the
// energy, above 50 exactly above the threshold, and its band agrees.
func TestSeverityMonotone(t *testing.T) {
	for name, c := range calibrations(t) {
		t.Run(name, func(t *testing.T) {
			q := c.Quantiles
			lo, hi := q[0]-10, q[len(q)-1]+10*(q[len(q)-1]-q[0]+1)
			es := []float64{math.Inf(-1), c.Threshold, math.Nextafter(c.Threshold, math.Inf(1)), math.Inf(1)}
			es = append(es, q...)
			for i := range 2000 {
				es = append(es, lo+(hi-lo)*float64(i)/1999)
			}
			slices.Sort(es)
			prev := -1.0
			for _, e := range es {
				sev := c.Severity(e)
				if !(sev >= 0 && sev <= 100) {
					t.Fatalf("Severity(%v) = %v, want 0 to 100", e, sev)
				}
				if sev < prev {
					t.Errorf("Severity(%v) = %v, below %v for a smaller energy", e, sev, prev)
				}
				prev = sev
				if anomaly := e > c.Threshold; anomaly != (sev > model.SeverityNormal) {
					t.Errorf("Severity(%v) = %v with threshold %v", e, sev, c.Threshold)
				}
				if b := model.BandOf(sev); (b == model.BandNormal) != (e <= c.Threshold) {
					t.Errorf("energy %v: band %v, threshold %v", e, b, c.Threshold)
				}
			}
			if got := c.Severity(math.Inf(1)); got != 100 {
				t.Errorf("Severity(+Inf) = %v, want 100", got)
			}
			if got := c.Severity(math.Inf(-1)); got != 0 {
				t.Errorf("Severity(-Inf) = %v, want 0", got)
			}
			if got := c.Severity(math.NaN()); got != 100 {
				t.Errorf("Severity(NaN) = %v, want 100", got)
			}
		})
	}
}

// TestSeverityScale checks the documented points: the median training
// energy scores about 25, the threshold 50, and above it each tail scale
// s = q99 − q90 adds 10 points.
func TestSeverityScale(t *testing.T) {
	energies := make([]float64, 10001)
	for i := range energies {
		energies[i] = float64(i) / 100 // uniform on [0, 100]
	}
	c, err := model.Calibrate(energies, 99)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Quantiles[99] - c.Quantiles[90]
	for _, tc := range []struct {
		e, want float64
	}{
		{c.Quantiles[0], 0},
		{c.Quantiles[50], 50 * 50.0 / 99},
		{c.Threshold, 50},
		{c.Threshold + s, 60},
		{c.Threshold + 2.5*s, 75},
		{c.Threshold + 4*s, 90},
		{c.Threshold + 5*s, 100},
		{c.Threshold + 50*s, 100},
	} {
		if got := c.Severity(tc.e); !scalar.EqualWithinAbs(got, tc.want, 1e-9) {
			t.Errorf("Severity(%v) = %v, want %v", tc.e, got, tc.want)
		}
	}
}

func TestBand(t *testing.T) {
	for _, tc := range []struct {
		sev  float64
		want model.Band
	}{
		{0, model.BandNormal}, {50, model.BandNormal}, {50.01, model.BandLow}, {60, model.BandLow},
		{60.5, model.BandMedium}, {75, model.BandMedium}, {80, model.BandHigh}, {90, model.BandHigh},
		{90.5, model.BandCritical}, {100, model.BandCritical},
	} {
		if got := model.BandOf(tc.sev); got != tc.want {
			t.Errorf("BandOf(%v) = %v, want %v", tc.sev, got, tc.want)
		}
	}
	for b := model.BandNormal; b <= model.BandCritical; b++ {
		text, err := b.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back model.Band
		if err := back.UnmarshalText(text); err != nil || back != b || string(text) != b.String() {
			t.Errorf("band %v: text %q, back %v, %v", b, text, back, err)
		}
	}
	if _, err := model.Band(9).MarshalText(); err == nil {
		t.Error("MarshalText of band 9: no error")
	}
	var b model.Band
	if err := b.UnmarshalText([]byte("severe")); err == nil {
		t.Error(`UnmarshalText("severe"): no error`)
	}
	if got, err := json.Marshal(struct{ B model.Band }{model.BandHigh}); err != nil || string(got) != `{"B":"high"}` {
		t.Errorf("json: %s, %v", got, err)
	}
}

// TestResultSeverity: ScoreBatch fills Severity and Band from the model's
// calibration for every sample.
func TestResultSeverity(t *testing.T) {
	m := modeltest.Metrics4(4)
	s := mustScorer(t, m)
	x := modeltest.Inputs(m, 200, 5)
	out, _ := scoreAll(t, s, x)
	anomalies := 0
	for i, r := range out {
		if want := m.Calibration.Severity(r.Energy); r.Severity != want || r.Band != model.BandOf(want) {
			t.Errorf("sample %d: severity %v band %v, want %v %v", i, r.Severity, r.Band, want, model.BandOf(want))
		}
		if r.Anomaly != (r.Band != model.BandNormal) {
			t.Errorf("sample %d: anomaly %v, band %v", i, r.Anomaly, r.Band)
		}
		if r.Anomaly {
			anomalies++
		}
	}
	if anomalies == 0 {
		t.Error("no anomaly among the inputs: the band check above tested nothing")
	}
}
