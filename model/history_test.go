package model_test

import (
	"math"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

func TestWindowScores(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		name  string
		e     []float64
		w     int
		limit float64
		want  []float64
	}{
		{"no window", []float64{1, 5, 2}, 0, inf, []float64{1, 5, 2}},
		{"window 1", []float64{1, 5, 2}, 1, inf, []float64{1, 5, 2}},
		// means 1, 3, 3, 3.5 (of 5, 2), 6 (of 2, 10): the score is the larger
		{"window 2", []float64{1, 5, 1, 2, 10}, 2, inf, []float64{1, 5, 3, 2, 10}},
		// a lasting rise: each sample below its window's mean is lifted
		{"window 3", []float64{0, 0, 6, 6, 6, 0}, 3, inf, []float64{0, 0, 6, 6, 6, 4}},
		{"infinite energy", []float64{0, inf, 0, 0, 0}, 2, inf, []float64{0, inf, inf, 0, 0}},
		// one far-out sample counts as the limit: it keeps its own energy,
		// and lifts the next samples only by limit / w
		{"limited", []float64{0, 0, 90, 0, 0}, 3, 6, []float64{0, 0, 90, 2, 2}},
		{"limited lasting rise", []float64{0, 9, 9, 9, 0}, 3, 6, []float64{0, 9, 9, 9, 4}},
	} {
		got := model.WindowScores(c.e, c.w, c.limit)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d scores, want %d", c.name, len(got), len(c.want))
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: scores %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// TestScoreSeries checks that scoring a series in batches of any size, with
// Smooth or ScoreSeries, gives the scores WindowScores computes from the
// energies, and that Anomaly, Severity and Band follow the score.
func TestScoreSeries(t *testing.T) {
	m := modeltest.Metrics4(3)
	m.Window = 5
	s := mustScorer(t, m)
	x := modeltest.Inputs(m, 60, 9)
	d := len(m.Features)
	for j := range d {
		x[30*d+j] *= 30 // a far-out sample mid-series
	}
	plain, _ := scoreAll(t, s, x)
	energies := make([]float64, len(plain))
	for i, r := range plain {
		energies[i] = r.Energy
		if r.Score != r.Energy {
			t.Fatalf("ScoreBatch sample %d: score %v, energy %v; want them equal", i, r.Score, r.Energy)
		}
	}
	want := model.WindowScores(energies, 5, m.WindowLimit())
	for _, batch := range []int{1, 7, 60} {
		h := s.NewHistory()
		ws := s.NewWorkspace(batch)
		out := make([]model.Result, batch)
		for lo := 0; lo < len(plain); lo += batch {
			hi := min(lo+batch, len(plain))
			if err := s.ScoreSeries(ws, h, x[lo*d:hi*d], out); err != nil {
				t.Fatal(err)
			}
			for i, r := range out[:hi-lo] {
				k := lo + i
				if r.Energy != energies[k] || r.Score != want[k] {
					t.Fatalf("batch %d sample %d: energy %v score %v, want %v %v", batch, k, r.Energy, r.Score, energies[k], want[k])
				}
				if r.Anomaly != (r.Score > s.Threshold()) || r.Severity != m.Calibration.Severity(r.Score) || r.Band != model.BandOf(r.Severity) {
					t.Fatalf("batch %d sample %d: anomaly %v severity %v band %v do not follow score %v", batch, k, r.Anomaly, r.Severity, r.Band, r.Score)
				}
			}
		}
		if h.Len() != 5 {
			t.Errorf("history holds %d energies, want the window, 5", h.Len())
		}
	}
	// A model without a window leaves the results alone.
	m0 := modeltest.Metrics4(3)
	s0 := mustScorer(t, m0)
	r := plain[0]
	before := r
	s0.Smooth(s0.NewHistory(), &r)
	if r.Score != before.Score || r.Anomaly != before.Anomaly || r.Severity != before.Severity {
		t.Errorf("Smooth changed a result of a model without a window: %+v -> %+v", before, r)
	}
	if err := s.ScoreSeries(s.NewWorkspace(1), s0.NewHistory(), x[:d], make([]model.Result, 1)); err == nil {
		t.Error("ScoreSeries accepted a history made for another window")
	}
}

func TestScoreSeriesDoesNotAllocate(t *testing.T) {
	m := modeltest.Metrics4(3)
	m.Window = 10
	s := mustScorer(t, m)
	x := modeltest.Inputs(m, 256, 1)
	ws := s.NewWorkspace(256)
	h := s.NewHistory()
	out := make([]model.Result, 256)
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.ScoreSeries(ws, h, x, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ScoreSeries allocates %v times per call, want 0", allocs)
	}
}

// TestInitHistory checks that a history made in place, with its ring
// inside it (windows up to 16) or not, smooths as WindowScores does, and
// that making it again empties it.
func TestInitHistory(t *testing.T) {
	for _, w := range []int{2, 16, 17, 40} {
		m := modeltest.Metrics4(3)
		m.Window = w
		s := mustScorer(t, m)
		x := modeltest.Inputs(m, 3*w, 4)
		plain, _ := scoreAll(t, s, x)
		energies := make([]float64, len(plain))
		for i, r := range plain {
			energies[i] = r.Energy
		}
		want := model.WindowScores(energies, w, m.WindowLimit())
		var holder struct {
			pad int
			h   model.History
		}
		for round := range 2 {
			s.InitHistory(&holder.h)
			for i, r := range plain {
				s.Smooth(&holder.h, &r)
				if r.Score != want[i] {
					t.Fatalf("window %d round %d sample %d: score %v, want %v", w, round, i, r.Score, want[i])
				}
			}
			if holder.h.Len() != w {
				t.Errorf("window %d: history holds %d energies, want %d", w, holder.h.Len(), w)
			}
		}
	}
}

// TestMemoryCoversForwardPass checks that the numbers a scorer's Memory
// asks for hold every array its forward pass reads, and none of the
// explainers': a cold model is then read in one block, not array by array.
func TestMemoryCoversForwardPass(t *testing.T) {
	for _, w := range []int{1, 10} {
		m := modeltest.Metrics4(5)
		m.Window = w
		if bad := mustScorer(t, m).Unprefetched(); len(bad) > 0 {
			t.Errorf("window %d: %v", w, bad)
		}
	}
}
