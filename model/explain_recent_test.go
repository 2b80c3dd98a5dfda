package model_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// series scores the samples of x (one host's, in time order) one at a time
// as a service would, explaining the last one with its recent history, and
// returns the last result and explanation.
func explainSeries(t *testing.T, s *model.Scorer, x [][]float64, window int) (model.Result, model.Explanation) {
	t.Helper()
	ws := s.NewWorkspace(1)
	out := make([]model.Result, 1)
	r := s.NewRecent(window)
	var ex model.Explanation
	for k, row := range x {
		if err := s.ScoreBatch(ws, row, out); err != nil {
			t.Fatalf("sample %d: ScoreBatch: %v", k, err)
		}
		if k == len(x)-1 {
			if err := s.ExplainRecent(ws, 0, r, &ex); err != nil {
				t.Fatalf("ExplainRecent: %v", err)
			}
			break
		}
		if err := r.Add(ws, 0); err != nil {
			t.Fatalf("sample %d: Add: %v", k, err)
		}
	}
	return out[0], ex
}

// normalSeries returns n normal samples of a host whose load wanders.
func normalSeries(rng *rand.Rand, n int) [][]float64 {
	x := make([][]float64, n)
	load := 0.5
	for i := range x {
		load = min(0.9, max(0.1, load+0.05*rng.NormFloat64()))
		x[i] = genSample(load)
	}
	return x
}

// TestExplainRecentNamesBrokenFeature: after an hour of normal samples, a
// sample with one feature broken (moved to its value under a load half the
// range away) is explained by that feature first: its one large squared
// error outweighs the window's normal ones.
func TestExplainRecentNamesBrokenFeature(t *testing.T) {
	s := metrics4(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, load := range []float64{0.25, 0.5, 0.75} {
		other := load + 0.5
		if load >= 0.5 {
			other = load - 0.5
		}
		for j, f := range s.Features() {
			x := normalSeries(rng, model.RecentWindow)
			last := genSample(load)
			last[j] = genSample(other)[j]
			x[len(x)-1] = last
			r, ex := explainSeries(t, s, x, 0)
			if !r.Anomaly {
				t.Fatalf("load %v, %s broken: not flagged (energy %v, threshold %v)", load, f, r.Energy, s.Threshold())
			}
			if ex.Method != model.MethodRecent || ex.Top().Feature != f {
				t.Errorf("load %v, %s broken: %s ranks %s first (%+v)", load, f, ex.Method, ex.Top().Feature, ex.Features)
			}
		}
	}
}

// TestExplainRecentIncident: a feature that broke in a third of the last
// hour's samples comes first even when the explained sample itself is
// off in another feature only, which the sample alone would blame.
func TestExplainRecentIncident(t *testing.T) {
	s := metrics4(t)
	rng := rand.New(rand.NewPCG(3, 4))
	x := normalSeries(rng, model.RecentWindow)
	const spiking, now = 2, 0 // disk busy broke now and then; the CPU is off now
	for i := 0; i < len(x)-1; i += 3 {
		x[i][spiking] = genSample(0.95)[spiking]
	}
	last := genSample(0.3)
	last[now] = genSample(0.55)[now]
	x[len(x)-1] = last
	_, alone := explainOne(t, s, last, model.MethodRecent)
	if alone.Top().Index != now {
		t.Fatalf("without history recent ranks %s first, want %s", alone.Top().Feature, s.Features()[now])
	}
	_, ex := explainSeries(t, s, x, 0)
	if ex.Top().Index != spiking {
		t.Errorf("with the last hour recent ranks %s first, want %s (%+v)", ex.Top().Feature, s.Features()[spiking], ex.Features)
	}
	// A window of one sample forgets the incident.
	if _, one := explainSeries(t, s, x, 1); one.Top().Index != now {
		t.Errorf("window 1 ranks %s first, want %s", one.Top().Feature, s.Features()[now])
	}
}

// TestExplainRecentMeans: each attribution is the larger of the feature's
// squared reconstruction error in the explained sample and its mean over
// that sample and the window − 1 samples before it, computed here from the
// results' actual and expected values and the model's transforms, across
// the ring's wrap; in normalised units for a model without spreads (an
// older artifact), in units of each feature's spread for one with them.
func TestExplainRecentMeans(t *testing.T) {
	old := metrics4(t).Model()
	spread := old.Clone()
	for j := range spread.Norm {
		spread.Norm[j].Spread = spread.Norm[j].Scale / float64(1+3*j) // weights 1, 16, 49, 100
	}
	for _, m := range []*model.Model{old, spread} {
		t.Run(fmt.Sprintf("spread %v", m.Norm[1].Spread), func(t *testing.T) {
			recentMeans(t, mustScorer(t, m))
		})
	}
}

func recentMeans(t *testing.T, s *model.Scorer) {
	norm := s.Model().Norm
	rng := rand.New(rand.NewPCG(5, 6))
	const window = 7
	x := normalSeries(rng, 3*window+2)
	for i := range x {
		if rng.IntN(4) == 0 {
			x[i][rng.IntN(4)] = genSample(rng.Float64())[0]
		}
	}
	ws := s.NewWorkspace(1)
	out := make([]model.Result, 1)
	r := s.NewRecent(window)
	if r.Window() != window {
		t.Fatalf("Window() = %d, want %d", r.Window(), window)
	}
	var sq [][]float64 // every sample's squared errors
	var ex model.Explanation
	for k, row := range x {
		if err := s.ScoreBatch(ws, row, out); err != nil {
			t.Fatal(err)
		}
		e := make([]float64, len(row))
		for j, tr := range norm {
			d := tr.Apply(out[0].Actual[j]) - tr.Apply(out[0].Expected[j])
			if tr.Spread > 0 {
				d *= tr.Scale / tr.Spread
			}
			e[j] = d * d
		}
		sq = append(sq, e)
		if err := s.ExplainRecent(ws, 0, r, &ex); err != nil {
			t.Fatal(err)
		}
		lo := max(0, k-window+1)
		if want := min(k, window-1); r.Len() != want {
			t.Fatalf("sample %d: Len() = %d, want %d", k, r.Len(), want)
		}
		sum := 0.0
		for _, c := range ex.Features {
			want := 0.0
			for _, e := range sq[lo : k+1] {
				want += e[c.Index]
			}
			want = max(want/float64(k+1-lo), sq[k][c.Index])
			if math.Abs(c.Attribution-want) > 1e-9*(1+want) {
				t.Fatalf("sample %d, %s: attribution %v, want %v", k, c.Feature, c.Attribution, want)
			}
			sum += c.Share
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Fatalf("sample %d: shares sum to %v", k, sum)
		}
		if !slices.IsSortedFunc(ex.Features, func(a, b model.Contribution) int { return -cmpFloat(a.Share, b.Share) }) {
			t.Fatalf("sample %d: not ranked by share: %+v", k, ex.Features)
		}
		if err := r.Add(ws, 0); err != nil {
			t.Fatal(err)
		}
	}
	r.Reset()
	if r.Len() != 0 {
		t.Errorf("after Reset Len() = %d", r.Len())
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestExplainRecentSameAsShareAlone: with no history, recent ranks as
// share does, and Explain with MethodRecent is ExplainRecent without one.
func TestExplainRecentSameAsShareAlone(t *testing.T) {
	s := metrics4(t)
	x := genSample(0.4)
	x[1] = genSample(0.9)[1]
	_, share := explainOne(t, s, x, model.MethodShare)
	_, viaExplain := explainOne(t, s, x, model.MethodRecent)
	ws := s.NewWorkspace(1)
	if err := s.ScoreBatch(ws, x, make([]model.Result, 1)); err != nil {
		t.Fatal(err)
	}
	var direct model.Explanation
	if err := s.ExplainRecent(ws, 0, nil, &direct); err != nil {
		t.Fatal(err)
	}
	for k := range share.Features {
		a, b, c := share.Features[k], viaExplain.Features[k], direct.Features[k]
		if a.Index != b.Index || b.Index != c.Index || math.Abs(a.Share-b.Share) > 1e-12 || b != c {
			t.Errorf("rank %d: share %+v, Explain(recent) %+v, ExplainRecent(nil) %+v", k, a, b, c)
		}
	}
	if direct.Set != 0 || direct.RepairedEnergy != direct.Energy || direct.Resolved != (direct.Energy <= s.Threshold()) {
		t.Errorf("Set %d, RepairedEnergy %v, Resolved %v for energy %v", direct.Set, direct.RepairedEnergy, direct.Resolved, direct.Energy)
	}
}

func TestExplainRecentErrors(t *testing.T) {
	s := metrics4(t)
	other := metrics4(t)
	ws := s.NewWorkspace(2)
	if err := s.ScoreBatch(ws, genSample(0.5), make([]model.Result, 1)); err != nil {
		t.Fatal(err)
	}
	var ex model.Explanation
	var in *model.InputError
	for name, err := range map[string]error{
		"history of another scorer": s.ExplainRecent(ws, 0, other.NewRecent(0), &ex),
		"workspace of another":      other.ExplainRecent(ws, 0, nil, &ex),
		"nil workspace":             s.ExplainRecent(nil, 0, nil, &ex),
		"sample beyond the batch":   s.ExplainRecent(ws, 1, s.NewRecent(0), &ex),
		"negative sample":           s.ExplainRecent(ws, -1, nil, &ex),
		"add beyond the batch":      s.NewRecent(0).Add(ws, 1),
		"add with another's":        other.NewRecent(0).Add(ws, 0),
	} {
		if !errors.As(err, &in) || !errors.Is(err, model.ErrInput) {
			t.Errorf("%s: got %v, want an InputError", name, err)
		}
	}
}

func TestExplainRecentNoAlloc(t *testing.T) {
	s := metrics4(t)
	ws := s.NewWorkspace(1)
	out := make([]model.Result, 1)
	r := s.NewRecent(0)
	var ex model.Explanation
	x := genSample(0.5)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		t.Fatal(err)
	}
	if err := s.ExplainRecent(ws, 0, r, &ex); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := r.Add(ws, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.ExplainRecent(ws, 0, r, &ex); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Add and ExplainRecent: %v allocs per run", allocs)
	}
}

// TestExplainSeriesDefault: a four-feature model explains a series with
// its one-sample default; a wider one with recent, using the history.
func TestExplainSeriesDefault(t *testing.T) {
	s := metrics4(t)
	if got := s.DefaultSeriesMethod(); got != s.DefaultMethod() {
		t.Errorf("4 features: DefaultSeriesMethod %s, want %s", got, s.DefaultMethod())
	}
	ws := s.NewWorkspace(1)
	if err := s.ScoreBatch(ws, genSample(0.5), make([]model.Result, 1)); err != nil {
		t.Fatal(err)
	}
	var ex model.Explanation
	if err := s.ExplainSeries(ws, 0, s.NewRecent(0), "", &ex); err != nil || ex.Method != s.DefaultMethod() {
		t.Errorf("ExplainSeries: method %s, error %v; want %s", ex.Method, err, s.DefaultMethod())
	}
	if err := s.ExplainSeries(ws, 0, metrics4(t).NewRecent(0), "", &ex); !errors.Is(err, model.ErrInput) {
		t.Errorf("another scorer's history: %v, want an InputError", err)
	}

	wide := mustScorer(t, modeltest.NewRandom(modeltest.Names("m", 8), []int{8, 4, 1}, []int{3, 4, 2}, 2, 1))
	if got := wide.DefaultSeriesMethod(); got != model.MethodRecent {
		t.Fatalf("%d features: DefaultSeriesMethod %s, want recent", wide.NumFeatures(), got)
	}
	d := wide.NumFeatures()
	wws := wide.NewWorkspace(2)
	x := make([]float64, 2*d)
	x[d+1] = 5 // the second sample is off in feature 1 only
	if err := wide.ScoreBatch(wws, x, make([]model.Result, 2)); err != nil {
		t.Fatal(err)
	}
	r := wide.NewRecent(0)
	if err := wide.ExplainSeries(wws, 0, r, "", &ex); err != nil || ex.Method != wide.DefaultMethod() {
		t.Errorf("no history yet: method %s, error %v; want %s", ex.Method, err, wide.DefaultMethod())
	}
	if err := r.Add(wws, 1); err != nil {
		t.Fatal(err)
	}
	var series, recent model.Explanation
	if err := wide.ExplainSeries(wws, 0, r, "", &series); err != nil {
		t.Fatal(err)
	}
	if err := wide.ExplainRecent(wws, 0, r, &recent); err != nil {
		t.Fatal(err)
	}
	if series.Method != model.MethodRecent || !slices.Equal(series.Features, recent.Features) {
		t.Errorf("ExplainSeries %+v, want ExplainRecent's %+v", series, recent)
	}
}
