package model_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// metrics4 loads testdata/metrics4.dagmm.json, a model of the generator's
// four host metrics trained on normal rows only:
//
//	dagmm gen -n 2000 -anomalies 0 -seed 1 -o train.csv
//	dagmm train -o metrics4.dagmm.json train.csv
func metrics4(t testing.TB) *model.Scorer {
	t.Helper()
	m, err := model.Load("testdata/metrics4.dagmm.json")
	if err != nil {
		t.Fatal(err)
	}
	return mustScorer(t, m)
}

// genSample returns the generator's four metrics for a load in [0, 1]
// without noise (the formulas of datasets/gen.go): a normal sample.
func genSample(load float64) []float64 {
	return []float64{
		5 + 85*load,
		25 + 55*load,
		2 + 70*load,
		1e5 * math.Exp(math.Log(1e3)*load),
	}
}

// explainOne scores x alone and explains it.
func explainOne(t *testing.T, s *model.Scorer, x []float64, method model.Method) (model.Result, model.Explanation) {
	t.Helper()
	ws := s.NewWorkspace(1)
	out := make([]model.Result, 1)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		t.Fatalf("ScoreBatch: %v", err)
	}
	var ex model.Explanation
	if err := s.Explain(ws, 0, method, &ex); err != nil {
		t.Fatalf("Explain(%s): %v", method, err)
	}
	return out[0], ex
}

// TestExplainNamesBrokenFeature: a normal sample with one feature moved to
// the value it would have under a load half the range away is flagged, and
// every method ranks that feature first.
func TestExplainNamesBrokenFeature(t *testing.T) {
	s := metrics4(t)
	for _, load := range []float64{0.25, 0.5, 0.75} {
		normal := genSample(load)
		if r, _ := explainOne(t, s, normal, ""); r.Anomaly {
			t.Fatalf("load %v: the normal sample %v is flagged (energy %v, threshold %v)", load, normal, r.Energy, s.Threshold())
		}
		other := load + 0.5
		if load >= 0.5 {
			other = load - 0.5
		}
		for j, f := range s.Features() {
			x := slices.Clone(normal)
			x[j] = genSample(other)[j]
			for _, method := range model.Methods() {
				t.Run(fmt.Sprintf("load=%v/feature=%s/method=%s", load, f, method), func(t *testing.T) {
					r, ex := explainOne(t, s, x, method)
					if !r.Anomaly {
						t.Fatalf("sample %v not flagged (energy %v, threshold %v)", x, r.Energy, s.Threshold())
					}
					if top := ex.Top(); top.Feature != f || top.Index != j {
						t.Errorf("top feature %s (share %.3f), want %s; explanation %+v", top.Feature, top.Share, f, ex.Features)
					}
				})
			}
		}
	}
}

// TestExplainExpectedRepairs: for the methods that search or estimate the
// value the model expects, setting the top-ranked feature to its expected
// value brings a one-feature anomaly back to normal, and the expected value
// is near the normal sample's value; repair's is the value the network
// reconstructs as itself (two secant steps).
func TestExplainExpectedRepairs(t *testing.T) {
	s := metrics4(t)
	normal := genSample(0.3)
	for j, f := range s.Features() {
		x := slices.Clone(normal)
		x[j] = genSample(0.85)[j]
		for _, method := range []model.Method{model.MethodRepair, model.MethodSearch} {
			t.Run(f+"/"+string(method), func(t *testing.T) {
				_, ex := explainOne(t, s, x, method)
				top := ex.Top()
				if ex.Set != 1 || !ex.Resolved {
					t.Errorf("set %d, resolved %v (repaired energy %v)", ex.Set, ex.Resolved, ex.RepairedEnergy)
				}
				fixed := slices.Clone(x)
				fixed[top.Index] = top.Expected
				r, _ := explainOne(t, s, fixed, model.MethodShare)
				// repair's expected value is nearly a fixed point of the
				// network: the sample with it reconstructs it as itself.
				if off, moved := math.Abs(r.Expected[j]-top.Expected), math.Abs(x[j]-top.Expected); method == model.MethodRepair && off > 0.02*moved {
					t.Errorf("with %s = %v (expected) the reconstruction gives %v: %.1f%% of the %v the anomaly moved it", f, top.Expected, r.Expected[j], 100*off/moved, moved)
				}
				if r.Anomaly {
					t.Errorf("with %s = %v (expected) the energy is %v, above the threshold %v", top.Feature, top.Expected, r.Energy, s.Threshold())
				}
				// Within a quarter of the distance the anomaly moved it, in load units.
				if got, want := loadOf(j, top.Expected), 0.3; math.Abs(got-want) > 0.25*0.55 {
					t.Errorf("expected %s = %v (load %.3f), want a load near %v", f, top.Expected, got, want)
				}
			})
		}
	}
}

// loadOf inverts genSample for feature j.
func loadOf(j int, v float64) float64 {
	switch j {
	case 0:
		return (v - 5) / 85
	case 1:
		return (v - 25) / 55
	case 2:
		return (v - 2) / 70
	}
	return math.Log(v/1e5) / math.Log(1e3)
}

// TestExplainTwoFeatures: search names both features of a two-feature
// anomaly whose unbroken pair sits at a common load.
func TestExplainTwoFeatures(t *testing.T) {
	s := metrics4(t)
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}} {
		x := genSample(0.5)
		for _, j := range pair {
			x[j] = genSample(0.02)[j]
		}
		name := s.Features()[pair[0]] + "+" + s.Features()[pair[1]]
		t.Run(name, func(t *testing.T) {
			_, ex := explainOne(t, s, x, model.MethodSearch)
			if ex.Set != 2 || !ex.Resolved {
				t.Errorf("set %d, resolved %v (repaired energy %v)", ex.Set, ex.Resolved, ex.RepairedEnergy)
			}
			got := []int{ex.Features[0].Index, ex.Features[1].Index}
			if !slices.Contains(got, pair[0]) || !slices.Contains(got, pair[1]) {
				t.Errorf("top two %s, %s; want %s", ex.Features[0].Feature, ex.Features[1].Feature, name)
			}
		})
	}
}

// TestExplainInvariants checks, for every method and many samples of random
// models: the energy is the result's, one contribution per feature with
// the actual value, shares non-negative and summing to 1, ranked, no NaN;
// the share method's expected values and shares are the result's.
func TestExplainInvariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *model.Model
		n    int
	}{
		{"tiny", tinyModel(), len(tinySamples)},
		{"metrics4", modeltest.Metrics4(3), 64},
		{"kddcup", modeltest.KDDCup(3), 4},
		{"one feature", modeltest.NewRandom([]string{"x"}, []int{3, 1}, []int{4}, 2, 3), 16},
		{"two features", modeltest.NewRandom([]string{"x", "y"}, []int{3, 1}, []int{4}, 2, 3), 16},
	} {
		s := mustScorer(t, tc.m)
		x := modeltest.Inputs(tc.m, tc.n, 9)
		if tc.name == "tiny" {
			x = flatten(tinySamples)
		}
		out, ws := scoreAll(t, s, x)
		d := s.NumFeatures()
		for _, method := range append(model.Methods(), "") {
			if (method == model.MethodSearch || method == model.MethodRepairSearch) && tc.name == "kddcup" {
				continue // hundreds of passes per feature: covered by the smaller models
			}
			t.Run(tc.name+"/"+string(method), func(t *testing.T) {
				var ex model.Explanation
				for i, r := range out {
					if err := s.Explain(ws, i, method, &ex); err != nil {
						t.Fatalf("sample %d: %v", i, err)
					}
					want := method
					switch want {
					case "":
						want = s.DefaultMethod()
					case model.MethodRepairSearch:
						want = model.MethodRepair
						if ex.Method == model.MethodSearch {
							want = model.MethodSearch
						}
					}
					if ex.Method != want {
						t.Errorf("sample %d: method %q, want %q", i, ex.Method, want)
					}
					if ex.Energy != r.Energy {
						t.Errorf("sample %d: energy %v, result has %v", i, ex.Energy, r.Energy)
					}
					if len(ex.Features) != d {
						t.Fatalf("sample %d: %d contributions, want %d", i, len(ex.Features), d)
					}
					sum := 0.0
					seen := make([]bool, d)
					for k, c := range ex.Features {
						if c.Share < 0 || math.IsNaN(c.Share) || math.IsNaN(c.Attribution) || math.IsNaN(c.Expected) {
							t.Errorf("sample %d: contribution %+v", i, c)
						}
						if k > 0 && c.Share > ex.Features[k-1].Share {
							t.Errorf("sample %d: not ranked: %v after %v", i, c.Share, ex.Features[k-1].Share)
						}
						if seen[c.Index] || c.Feature != s.Features()[c.Index] || c.Actual != r.Actual[c.Index] {
							t.Errorf("sample %d: contribution %+v, feature %d is %s with value %v", i, c, c.Index, s.Features()[c.Index], r.Actual[c.Index])
						}
						seen[c.Index] = true
						if method == model.MethodShare && (c.Share != r.Share[c.Index] || c.Expected != r.Expected[c.Index]) {
							t.Errorf("sample %d: share method gives %+v, result has share %v expected %v", i, c, r.Share[c.Index], r.Expected[c.Index])
						}
						sum += c.Share
					}
					if !scalar.EqualWithinAbs(sum, 1, 1e-12) {
						t.Errorf("sample %d: shares sum to %v", i, sum)
					}
					if ex.Resolved != (ex.RepairedEnergy <= s.Threshold()) || ex.Set < 0 || ex.Set > 2 ||
						(ex.Set == 0 && ex.RepairedEnergy != ex.Energy) || (method == model.MethodShare && ex.Set != 0) {
						t.Errorf("sample %d: set %d, repaired energy %v, resolved %v (energy %v, threshold %v)",
							i, ex.Set, ex.RepairedEnergy, ex.Resolved, ex.Energy, s.Threshold())
					}
				}
			})
		}
	}
}

// TestExplainLeavesResults: explaining does not change the batch's results.
func TestExplainLeavesResults(t *testing.T) {
	m := modeltest.Metrics4(5)
	s := mustScorer(t, m)
	x := modeltest.Inputs(m, 16, 6)
	out, ws := scoreAll(t, s, x)
	before := make([][]float64, len(out))
	for i, r := range out {
		before[i] = slices.Concat(r.Actual, r.Expected, r.Share, ws.Z(i))
	}
	var ex model.Explanation
	for i := range out {
		for _, method := range model.Methods() {
			if err := s.Explain(ws, i, method, &ex); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range out {
		if after := slices.Concat(r.Actual, r.Expected, r.Share, ws.Z(i)); !slices.Equal(before[i], after) {
			t.Errorf("sample %d: results changed by Explain:\n%v\n%v", i, before[i], after)
		}
	}
}

// TestExplainParallel: explaining the samples of ScoreParallel gives the
// explanations of ScoreBatch on one workspace.
func TestExplainParallel(t *testing.T) {
	m := modeltest.Metrics4(8)
	s := mustScorer(t, m)
	const n = 300 // several blocks: ScoreParallel splits it in two
	x := modeltest.Inputs(m, n, 12)
	want, ws := scoreAll(t, s, x)
	wss := []*model.Workspace{s.NewWorkspace(n), s.NewWorkspace(n)}
	got := make([]model.Result, n)
	if err := s.ScoreParallel(wss, x, got); err != nil {
		t.Fatal(err)
	}
	if wss[1].Len() == 0 {
		t.Fatal("ScoreParallel used one workspace: the test checks nothing")
	}
	var a, b model.Explanation
	for i := range n {
		if err := s.Explain(ws, i, model.MethodRepair, &a); err != nil {
			t.Fatal(err)
		}
		if err := s.ExplainParallel(wss, i, model.MethodRepair, &b); err != nil {
			t.Fatal(err)
		}
		if a.Energy != want[i].Energy || b.Energy != a.Energy || !slices.Equal(a.Features, b.Features) {
			t.Errorf("sample %d: explanations differ:\n%+v\n%+v", i, a, b)
		}
	}
	if err := s.ExplainParallel(wss, n, "", &b); !errors.Is(err, model.ErrInput) {
		t.Errorf("sample %d of %d: err = %v, want ErrInput", n, n, err)
	}
	if err := s.ExplainParallel(wss, -1, "", &b); !errors.Is(err, model.ErrInput) {
		t.Errorf("sample -1: err = %v, want ErrInput", err)
	}
}

// TestExplainConcurrent: goroutines explaining with their own workspaces
// share one Scorer (run with -race) and get the same explanations.
func TestExplainConcurrent(t *testing.T) {
	s := metrics4(t)
	x := hostBatch(200, 3)
	want := make([]model.Explanation, 200)
	_, ws := scoreAll(t, s, x)
	for i := range want {
		if err := s.Explain(ws, i, model.MethodRepairSearch, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			ws := s.NewWorkspace(len(want))
			out := make([]model.Result, len(want))
			if err := s.ScoreBatch(ws, x, out); err != nil {
				errs <- err
				return
			}
			var ex model.Explanation
			for i := g; i < len(want); i += 2 {
				if err := s.Explain(ws, i, model.MethodRepairSearch, &ex); err != nil {
					errs <- err
					return
				}
				if !slices.Equal(ex.Features, want[i].Features) || ex.Method != want[i].Method {
					errs <- fmt.Errorf("sample %d: %+v, want %+v", i, ex, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExplainErrors(t *testing.T) {
	s := mustScorer(t, tinyModel())
	other := mustScorer(t, tinyModel())
	ws := s.NewWorkspace(4)
	out := make([]model.Result, 4)
	if err := s.ScoreBatch(ws, flatten(tinySamples[:2]), out); err != nil {
		t.Fatal(err)
	}
	var ex model.Explanation
	for _, tc := range []struct {
		name   string
		ws     *model.Workspace
		i      int
		method model.Method
		input  bool // the error is an *InputError
	}{
		{"nil workspace", nil, 0, "", true},
		{"other scorer's workspace", other.NewWorkspace(4), 0, "", true},
		{"negative sample", ws, -1, "", true},
		{"beyond the batch", ws, 2, "", true},
		{"unknown method", ws, 0, "magic", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Explain(tc.ws, tc.i, tc.method, &ex)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, model.ErrInput); got != tc.input {
				t.Errorf("errors.Is(%v, ErrInput) = %v, want %v", err, got, tc.input)
			}
		})
	}
}

func TestParseMethod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want model.Method
		ok   bool
	}{
		{"", "", true},
		{"default", "", true},
		{"repair", model.MethodRepair, true},
		{" Search ", model.MethodSearch, true},
		{"REPAIR-GRADIENT", model.MethodRepairGradient, true},
		{"repair-search", model.MethodRepairSearch, true},
		{"counterfactual", model.MethodCounterfactual, true},
		{"gradient", model.MethodGradient, true},
		{"share", model.MethodShare, true},
		{"shap", "", false},
	} {
		got, err := model.ParseMethod(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMethod(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, m := range model.Methods() {
		if got, err := model.ParseMethod(m.String()); err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %q, %v", m, got, err)
		}
	}
}

func TestDefaultMethod(t *testing.T) {
	for _, tc := range []struct {
		m    *model.Model
		want model.Method
	}{
		{tinyModel(), model.MethodRepair},
		{modeltest.Metrics4(1), model.MethodRepair},
		{modeltest.KDDCup(1), model.MethodRepairGradient},
	} {
		if got := mustScorer(t, tc.m).DefaultMethod(); got != tc.want {
			t.Errorf("%d features: default %q, want %q", len(tc.m.Features), got, tc.want)
		}
	}
}

// TestGradientFiniteDifferences checks the analytic gradient of the energy
// and of the squared reconstruction error against central differences, on
// the hand-made, a trained and random models, at many points.
func TestGradientFiniteDifferences(t *testing.T) {
	trained, err := model.Load("testdata/metrics4.dagmm.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *model.Model
		n    int
	}{
		{"tiny", tinyModel(), 8},
		{"trained", trained, 16},
		{"metrics4", modeltest.Metrics4(7), 16},
		{"kddcup", modeltest.KDDCup(7), 2},
		{"metrics4-recon-weight", withReconWeight(modeltest.Metrics4(7), 10), 16},
		{"trained-recon-weight", withReconWeight(trained.Clone(), 2), 8},
	} {
		s := mustScorer(t, tc.m)
		d := s.NumFeatures()
		x := modeltest.Inputs(tc.m, tc.n, 11)
		for i := range tc.n {
			xn := make([]float64, d)
			for j := range d {
				xn[j] = tc.m.Norm[j].Apply(x[i*d+j])
			}
			for _, energy := range []bool{true, false} {
				e, g := s.EnergyGradient(xn, energy)
				if math.IsInf(e, 0) {
					continue
				}
				for j := range d {
					h := 1e-6 * max(1, math.Abs(xn[j]))
					up, down := slices.Clone(xn), slices.Clone(xn)
					up[j] += h
					down[j] -= h
					eu, su := s.EnergyAt(up)
					ed, sd := s.EnergyAt(down)
					fd := (su - sd) / (2 * h)
					if energy {
						fd = (eu - ed) / (2 * h)
					}
					if !scalar.EqualWithinAbsOrRel(g[j], fd, 1e-5, 1e-4) {
						t.Errorf("%s sample %d feature %d (energy %v): gradient %v, finite difference %v", tc.name, i, j, energy, g[j], fd)
					}
				}
			}
		}
	}
}

// TestMixtureGradient checks ∂E/∂z against central differences.
func TestMixtureGradient(t *testing.T) {
	for _, m := range []*model.Model{tinyModel(), modeltest.Metrics4(2)} {
		mx := mustScorer(t, m).Mixture()
		for _, z := range [][]float64{{0.2, 0.1, 0.9}, {-0.4, 0.6, 0.7}, {1.5, -0.3, 0.2}, {0, 0, 0}} {
			g := mx.MixtureGradient(z)
			for i := range z {
				const h = 1e-6
				up, down := slices.Clone(z), slices.Clone(z)
				up[i] += h
				down[i] -= h
				eu, _ := mx.Energy(up)
				ed, _ := mx.Energy(down)
				if fd := (eu - ed) / (2 * h); !scalar.EqualWithinAbsOrRel(g[i], fd, 1e-6, 1e-5) {
					t.Errorf("z %v: ∂E/∂z[%d] = %v, finite difference %v", z, i, g[i], fd)
				}
			}
		}
	}
}

// TestExplainNoAllocs: explaining into a reused Explanation allocates
// nothing, for every method; scoring still allocates nothing.
func TestExplainNoAllocs(t *testing.T) {
	s := metrics4(t)
	x := slices.Concat(genSample(0.3), genSample(0.6))
	x[2] = genSample(0.9)[2]
	ws := s.NewWorkspace(2)
	out := make([]model.Result, 2)
	if allocs := testing.AllocsPerRun(10, func() {
		if err := s.ScoreBatch(ws, x, out); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ScoreBatch: %v allocs per run", allocs)
	}
	var ex model.Explanation
	for _, method := range append(model.Methods(), "") {
		if err := s.Explain(ws, 0, method, &ex); err != nil {
			t.Fatal(err)
		}
		if allocs := testing.AllocsPerRun(10, func() {
			if err := s.Explain(ws, 0, method, &ex); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("Explain(%q): %v allocs per run", method, allocs)
		}
	}
}

// TestExplainExpectedWithinTrainingRange: the repaired value of the
// top-ranked feature stays within the values seen in training, where the
// transform records them (min-max and log), even for samples far outside.
func TestExplainExpectedWithinTrainingRange(t *testing.T) {
	t.Run("minmax and log", func(t *testing.T) { testExpectedWithinRange(t, metrics4(t)) })
	// The same weights with min-sd kinds: Offset is still the training
	// minimum, so the expected value must not go below it.
	m := metrics4(t).Model()
	for j := range m.Norm {
		m.Norm[j].Kind = map[model.NormKind]model.NormKind{model.NormMinMax: model.NormMinSD, model.NormLog: model.NormLogMinSD}[m.Norm[j].Kind]
	}
	t.Run("min-sd", func(t *testing.T) { testExpectedWithinRange(t, mustScorer(t, m)) })
}

func testExpectedWithinRange(t *testing.T, s *model.Scorer) {
	norm := s.Model().Norm
	rng := rand.New(rand.NewPCG(4, 5))
	flagged := 0
	for range 400 {
		x := genSample(rng.Float64())
		j := rng.IntN(4)
		x[j] = []float64{0, 100, 3e8, 1}[rng.IntN(4)]
		for _, method := range []model.Method{model.MethodRepair, model.MethodRepairGradient, model.MethodCounterfactual, model.MethodGradient} {
			r, ex := explainOne(t, s, x, method)
			if !r.Anomaly {
				continue
			}
			flagged++
			top := ex.Features[0]
			tr := norm[top.Index]
			if tr.Kind == model.NormMinSD || tr.Kind == model.NormLogMinSD {
				if lo := tr.Invert(0); top.Expected < lo-1e-9*math.Abs(lo) {
					t.Errorf("%s on %v: %s expected %v, below the training minimum %v", method, x, top.Feature, top.Expected, lo)
				}
				continue
			}
			if tr.Kind != model.NormMinMax && tr.Kind != model.NormLog {
				continue
			}
			lo, hi := tr.Invert(0), tr.Invert(1)
			if top.Expected < lo-1e-9*math.Abs(lo) || top.Expected > hi+1e-9*math.Abs(hi) {
				t.Errorf("%s on %v: %s expected %v, outside the training range [%v, %v]", method, x, top.Feature, top.Expected, lo, hi)
			}
		}
	}
	if flagged < 400 {
		t.Fatalf("only %d of 1600 explanations were of flagged samples", flagged)
	}
}
