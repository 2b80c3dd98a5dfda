package model_test

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tol is the agreement required between the scorer and the reference.
const tol = 1e-12

func mustScorer(t testing.TB, m *model.Model) *model.Scorer {
	t.Helper()
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatalf("NewScorer: %v", err)
	}
	return s
}

func flatten(rows [][]float64) []float64 {
	var x []float64
	for _, r := range rows {
		x = append(x, r...)
	}
	return x
}

func scoreAll(t testing.TB, s *model.Scorer, x []float64) ([]model.Result, *model.Workspace) {
	t.Helper()
	n := len(x) / s.NumFeatures()
	ws := s.NewWorkspace(n)
	out := make([]model.Result, n)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		t.Fatalf("ScoreBatch: %v", err)
	}
	return out, ws
}

// checkAgainstReference compares every result with the reference forward pass.
func checkAgainstReference(t *testing.T, m *model.Model, x []float64, out []model.Result, ws *model.Workspace) {
	t.Helper()
	d := len(m.Features)
	for i, r := range out {
		sample := x[i*d : (i+1)*d]
		ref := refScore(t, m, sample)
		if !scalar.EqualWithinAbsOrRel(r.Energy, ref.energy, tol, tol) {
			t.Errorf("sample %d: energy %v, reference %v (rel err %.2g)", i, r.Energy, ref.energy, math.Abs(r.Energy-ref.energy)/math.Abs(ref.energy))
		}
		if want := ref.energy > m.Calibration.Threshold; r.Anomaly != want {
			t.Errorf("sample %d: anomaly %v, want %v (energy %v, threshold %v)", i, r.Anomaly, want, r.Energy, m.Calibration.Threshold)
		}
		if !floats.EqualApprox(ws.Z(i), ref.z, tol) {
			t.Errorf("sample %d: z %v, reference %v", i, ws.Z(i), ref.z)
		}
		if !floats.Equal(r.Actual, sample) {
			t.Errorf("sample %d: actual %v, want %v", i, r.Actual, sample)
		}
		for j := range d {
			if !scalar.EqualWithinAbsOrRel(r.Expected[j], ref.expected[j], tol, tol) {
				t.Errorf("sample %d feature %s: expected %v, reference %v", i, m.Features[j], r.Expected[j], ref.expected[j])
			}
			if !scalar.EqualWithinAbsOrRel(r.Share[j], ref.share[j], tol, 1e-9) {
				t.Errorf("sample %d feature %s: share %v, reference %v", i, m.Features[j], r.Share[j], ref.share[j])
			}
		}
		if sum := floats.Sum(r.Share); !scalar.EqualWithinAbs(sum, 1, 1e-12) {
			t.Errorf("sample %d: shares sum to %v, want 1", i, sum)
		}
	}
}

func TestScoreMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *model.Model
		x    []float64
	}{
		{"tiny", tinyModel(), flatten(tinySamples)},
		{"metrics4", modeltest.Metrics4(7), nil},
		{"kddcup", modeltest.KDDCup(7), nil},
		{"deep-k1", modeltest.NewRandom(modeltest.Names("x", 7), []int{5, 4, 3, 2}, nil, 1, 3), nil},
		{"wide-code-k7", modeltest.NewRandom(modeltest.Names("x", 300), []int{200, 9}, []int{6, 5}, 7, 4), nil},
		{"tiny-recon-weight", withReconWeight(tinyModel(), 10), flatten(tinySamples)},
		{"metrics4-recon-weight", withReconWeight(modeltest.Metrics4(7), 10), nil},
		{"kddcup-recon-weight", withReconWeight(modeltest.KDDCup(7), 3), nil},
		{"metrics4-min-sd", withMinSD(withReconWeight(modeltest.Metrics4(8), 10)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := tc.x
			if x == nil {
				// More than one block of samples, and a partial last block.
				x = modeltest.Inputs(tc.m, 150, 11)
				// A few far-out samples too.
				for j := range len(tc.m.Features) {
					x[j] *= 50
				}
			}
			s := mustScorer(t, tc.m)
			out, ws := scoreAll(t, s, x)
			checkAgainstReference(t, tc.m, x, out, ws)
		})
	}
}

// withReconWeight returns m with its sample energy E(z) + w·‖x − x'‖².
func withReconWeight(m *model.Model, w float64) *model.Model {
	m.ReconWeight = w
	return m
}

// withMinSD returns m with every log-normalised feature and its first
// feature turned into log-min-sd ones, and the others into min-sd ones
// (offsets and scales kept).
func withMinSD(m *model.Model) *model.Model {
	for j := range m.Norm {
		if j == 0 || m.Norm[j].Kind == model.NormLog {
			m.Norm[j].Kind = model.NormLogMinSD
		} else {
			m.Norm[j].Kind = model.NormMinSD
		}
	}
	return m
}

// TestReconWeight checks that a model's reconstruction weight adds exactly
// w·‖x − x'‖² to each sample's mixture energy, and that the explanation
// reports the same energy.
func TestReconWeight(t *testing.T) {
	base := modeltest.Metrics4(3)
	x := modeltest.Inputs(base, 40, 5)
	for j := range len(base.Features) {
		x[j] *= 20 // one far-out sample
	}
	want, _ := scoreAll(t, mustScorer(t, base), x)
	for _, w := range []float64{0, 0.5, 10} {
		m := withReconWeight(base.Clone(), w)
		s := mustScorer(t, m)
		out, ws := scoreAll(t, s, x)
		d := len(m.Features)
		var ex model.Explanation
		for i, r := range out {
			sdd := 0.0
			for j := range d {
				e := m.Norm[j].Apply(r.Actual[j]) - m.Norm[j].Apply(r.Expected[j])
				sdd += e * e
			}
			if got := want[i].Energy + w*sdd; !scalar.EqualWithinAbsOrRel(r.Energy, got, 1e-9, 1e-9) {
				t.Errorf("w %v sample %d: energy %v, want mixture energy %v + w·%v = %v", w, i, r.Energy, want[i].Energy, sdd, got)
			}
			if w == 0 && r.Energy != want[i].Energy {
				t.Errorf("w 0 sample %d: energy %v, want %v bit for bit", i, r.Energy, want[i].Energy)
			}
			if err := s.Explain(ws, i, model.MethodRepair, &ex); err != nil {
				t.Fatal(err)
			}
			if ex.Energy != r.Energy {
				t.Errorf("w %v sample %d: explanation energy %v, result %v", w, i, ex.Energy, r.Energy)
			}
		}
	}
}

// TestGoldenScores compares the tiny model's scores with testdata/tiny_scores.csv,
// which -update writes from the reference implementation.
func TestGoldenScores(t *testing.T) {
	m := tinyModel()
	path := filepath.Join("testdata", "tiny_scores.csv")
	header := []string{"cpu_usage", "net_in_bps", "energy", "anomaly", "expected_cpu_usage", "expected_net_in_bps", "share_cpu_usage", "share_net_in_bps"}
	if *update {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := csv.NewWriter(f)
		w.Write(header)
		for _, x := range tinySamples {
			ref := refScore(t, m, x)
			g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
			w.Write([]string{g(x[0]), g(x[1]), g(ref.energy), strconv.FormatBool(ref.energy > m.Calibration.Threshold),
				g(ref.expected[0]), g(ref.expected[1]), g(ref.share[0]), g(ref.share[1])})
		}
		w.Flush()
		if err := errors.Join(w.Error(), f.Close()); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test ./model -run TestGoldenScores -update)", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(tinySamples)+1 {
		t.Fatalf("%s has %d rows, want %d", path, len(rows), len(tinySamples)+1)
	}
	s := mustScorer(t, m)
	anomalies := 0
	for i, row := range rows[1:] {
		v := make([]float64, len(row))
		for j, cell := range row {
			if j == 3 {
				continue
			}
			if v[j], err = strconv.ParseFloat(cell, 64); err != nil {
				t.Fatalf("%s row %d column %s: %v", path, i+1, header[j], err)
			}
		}
		r, err := s.Score(v[:2])
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if !scalar.EqualWithinAbsOrRel(r.Energy, v[2], tol, tol) {
			t.Errorf("sample %d: energy %v, golden %v", i, r.Energy, v[2])
		}
		if got := strconv.FormatBool(r.Anomaly); got != row[3] {
			t.Errorf("sample %d: anomaly %s, golden %s", i, got, row[3])
		}
		if r.Anomaly {
			anomalies++
		}
		for j := range 2 {
			if !scalar.EqualWithinAbsOrRel(r.Expected[j], v[4+j], tol, tol) {
				t.Errorf("sample %d: expected %s %v, golden %v", i, header[j], r.Expected[j], v[4+j])
			}
			if !scalar.EqualWithinAbsOrRel(r.Share[j], v[6+j], tol, 1e-9) {
				t.Errorf("sample %d: share %s %v, golden %v", i, header[j], r.Share[j], v[6+j])
			}
		}
	}
	// The golden samples are chosen to have both outcomes.
	if anomalies == 0 || anomalies == len(tinySamples) {
		t.Errorf("%d of %d golden samples are anomalies, want some but not all", anomalies, len(tinySamples))
	}
}

// TestBatchInvariance: a sample scores to the same bits alone, in any batch
// size and in parallel.
func TestBatchInvariance(t *testing.T) {
	m := modeltest.KDDCup(5)
	s := mustScorer(t, m)
	d := s.NumFeatures()
	const n = 200
	x := modeltest.Inputs(m, n, 6)
	want, _ := scoreAll(t, s, x)
	for _, batch := range []int{1, 3, 64, 65, 127} {
		ws := s.NewWorkspace(batch)
		out := make([]model.Result, batch)
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			if err := s.ScoreBatch(ws, x[lo*d:hi*d], out); err != nil {
				t.Fatal(err)
			}
			for i := lo; i < hi; i++ {
				if got := out[i-lo]; got.Energy != want[i].Energy || !floats.Equal(got.Expected, want[i].Expected) || !floats.Equal(got.Share, want[i].Share) {
					t.Fatalf("batch %d, sample %d: energy %v, want %v", batch, i, got.Energy, want[i].Energy)
				}
			}
		}
	}
	for i := range 5 {
		r, err := s.Score(x[i*d : (i+1)*d])
		if err != nil {
			t.Fatal(err)
		}
		if r.Energy != want[i].Energy || !floats.Equal(r.Expected, want[i].Expected) {
			t.Errorf("Score sample %d: energy %v, ScoreBatch %v", i, r.Energy, want[i].Energy)
		}
	}
	for _, p := range []int{1, 2, 3} {
		wss := make([]*model.Workspace, p)
		for i := range wss {
			wss[i] = s.NewWorkspace(n)
		}
		out := make([]model.Result, n)
		if err := s.ScoreParallel(wss, x, out); err != nil {
			t.Fatalf("ScoreParallel on %d: %v", p, err)
		}
		for i := range out {
			if out[i].Energy != want[i].Energy || !floats.Equal(out[i].Expected, want[i].Expected) || !floats.Equal(out[i].Actual, x[i*d:(i+1)*d]) {
				t.Fatalf("ScoreParallel on %d, sample %d: energy %v, want %v", p, i, out[i].Energy, want[i].Energy)
			}
		}
	}
}

func TestScoreInputErrors(t *testing.T) {
	m := tinyModel()
	s := mustScorer(t, m)
	other := mustScorer(t, tinyModel())
	narrow := tinyModel()
	narrow.Norm[0].Scale = 0.5 // MaxFloat64 / 0.5 overflows
	sNarrow := mustScorer(t, narrow)
	good := []float64{40, 5e5, 41, 6e5, 42, 7e5}
	with := func(i int, v float64) []float64 {
		x := append([]float64(nil), good...)
		x[i] = v
		return x
	}
	for _, tc := range []struct {
		name    string
		s       *model.Scorer
		ws      *model.Workspace
		x       []float64
		out     int
		sample  int
		feature string
		want    string
	}{
		{"nan", s, nil, with(2, math.NaN()), 3, 1, "cpu_usage", `model: sample 1: feature "cpu_usage": value is NaN`},
		{"+inf", s, nil, with(5, math.Inf(1)), 3, 2, "net_in_bps", `model: sample 2: feature "net_in_bps": value is +Inf`},
		{"-inf", s, nil, with(1, math.Inf(-1)), 3, 0, "net_in_bps", "value is -Inf"},
		{"overflow after normalisation", sNarrow, nil, with(0, math.MaxFloat64), 3, 0, "cpu_usage", "after normalisation (zscore)"},
		{"ragged", s, nil, good[:5], 3, -1, "", "batch has 5 values, not a multiple of 2 features"},
		{"too many for workspace", s, s.NewWorkspace(2), good, 3, -1, "", "batch has 3 samples, the workspace takes at most 2"},
		{"out too short", s, nil, good, 2, -1, "", "out has room for 2 results, the batch has 3 samples"},
		{"foreign workspace", s, other.NewWorkspace(3), good, 3, -1, "", "belongs to another scorer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.ws
			if ws == nil {
				ws = tc.s.NewWorkspace(3)
			}
			err := tc.s.ScoreBatch(ws, tc.x, make([]model.Result, tc.out))
			checkInputError(t, err, tc.sample, tc.feature, tc.want)
		})
	}
	t.Run("nil workspace", func(t *testing.T) {
		checkInputError(t, s.ScoreBatch(nil, good, make([]model.Result, 3)), -1, "", "workspace is nil")
	})
	t.Run("score wrong length", func(t *testing.T) {
		_, err := s.Score([]float64{1, 2, 3})
		checkInputError(t, err, 0, "", "sample has 3 values, want 2")
	})
	t.Run("score nan", func(t *testing.T) {
		_, err := s.Score([]float64{1, math.NaN()})
		checkInputError(t, err, 0, "net_in_bps", "value is NaN")
	})
	t.Run("parallel index", func(t *testing.T) {
		x := modeltest.Inputs(m, 300, 1)
		x[2*(250)+1] = math.NaN()
		wss := []*model.Workspace{s.NewWorkspace(150), s.NewWorkspace(150)}
		err := s.ScoreParallel(wss, x, make([]model.Result, 300))
		checkInputError(t, err, 250, "net_in_bps", "value is NaN")
	})
	t.Run("parallel too small", func(t *testing.T) {
		x := modeltest.Inputs(m, 300, 1)
		wss := []*model.Workspace{s.NewWorkspace(150), s.NewWorkspace(100)}
		err := s.ScoreParallel(wss, x, make([]model.Result, 300))
		checkInputError(t, err, -1, "", "workspace 1 takes at most 100")
	})
	t.Run("parallel none", func(t *testing.T) {
		checkInputError(t, s.ScoreParallel(nil, good, make([]model.Result, 3)), -1, "", "no workspaces")
	})
}

func checkInputError(t *testing.T, err error, sample int, feature, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !errors.Is(err, model.ErrInput) {
		t.Errorf("error %q does not match ErrInput", err)
	}
	ie, ok := errors.AsType[*model.InputError](err)
	if !ok {
		t.Fatalf("error %q is a %T, want *model.InputError", err, err)
	}
	if ie.Sample != sample || ie.Feature != feature {
		t.Errorf("error %q names sample %d feature %q, want sample %d feature %q", err, ie.Sample, ie.Feature, sample, feature)
	}
	if !contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestScoreBatchDoesNotAllocate(t *testing.T) {
	for _, m := range []*model.Model{
		modeltest.Metrics4(1),
		modeltest.KDDCup(1),
		// The widest layers Gemm takes (190) and plain loops beyond (250).
		modeltest.NewRandom(modeltest.Names("x", 250), []int{190, 9}, []int{5}, 3, 1),
	} {
		s := mustScorer(t, m)
		x := modeltest.Inputs(m, 300, 2)
		ws := s.NewWorkspace(300)
		out := make([]model.Result, 300)
		allocs := testing.AllocsPerRun(10, func() {
			if err := s.ScoreBatch(ws, x, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d features: ScoreBatch allocates %v times per batch, want 0", len(m.Features), allocs)
		}
		mix := s.Mixture()
		z := ws.Z(0)
		if a := testing.AllocsPerRun(10, func() { mix.Energy(z) }); a != 0 {
			t.Errorf("Mixture.Energy allocates %v times, want 0", a)
		}
	}
}

// TestConcurrentScoring shares one Scorer among goroutines, each with its
// own workspace; run it with -race.
func TestConcurrentScoring(t *testing.T) {
	m := modeltest.Metrics4(9)
	s := mustScorer(t, m)
	const n = 500
	x := modeltest.Inputs(m, n, 10)
	want, _ := scoreAll(t, s, x)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			ws := s.NewWorkspace(n)
			out := make([]model.Result, n)
			for range 5 {
				if err := s.ScoreBatch(ws, x, out); err != nil {
					errs <- err
					return
				}
				for i := range out {
					if out[i].Energy != want[i].Energy {
						errs <- fmt.Errorf("goroutine %d sample %d: energy %v, want %v", g, i, out[i].Energy, want[i].Energy)
						return
					}
				}
			}
			if _, err := s.Score(x[:s.NumFeatures()]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestScorerIsolatedFromModel: changing the model after NewScorer changes nothing.
func TestScorerIsolatedFromModel(t *testing.T) {
	m := tinyModel()
	s := mustScorer(t, m)
	x := tinySamples[1]
	before, err := s.Score(x)
	if err != nil {
		t.Fatal(err)
	}
	m.Encoder[0].W[0] = 100
	m.GMM.Mu[0] = 100
	m.Calibration.Threshold = -100
	m.Features[0] = "changed"
	after, err := s.Score(x)
	if err != nil {
		t.Fatal(err)
	}
	if before.Energy != after.Energy || before.Anomaly != after.Anomaly || s.Features()[0] != "cpu_usage" {
		t.Errorf("scorer changed with its model: energy %v -> %v", before.Energy, after.Energy)
	}
	if j, ok := s.FeatureIndex("net_in_bps"); j != 1 || !ok {
		t.Errorf("FeatureIndex(net_in_bps) = %d, %v, want 1, true", j, ok)
	}
	if _, ok := s.FeatureIndex("changed"); ok {
		t.Error("FeatureIndex(changed) found a feature the scorer does not have")
	}
	if got := s.Model(); got.Features[0] != "cpu_usage" || s.Threshold() != tinyModel().Calibration.Threshold {
		t.Errorf("Model() = %v, threshold %v: want the model as it was", got.Features, s.Threshold())
	}
}

func TestNewScorerRefusesInvalid(t *testing.T) {
	m := tinyModel()
	m.GMM.Sigma[0] = -1
	if _, err := model.NewScorer(m); !errors.Is(err, model.ErrInvalid) {
		t.Errorf("NewScorer(non-PD sigma) = %v, want ErrInvalid", err)
	}
	if _, err := model.NewScorer(nil); !errors.Is(err, model.ErrInvalid) {
		t.Errorf("NewScorer(nil) = %v, want ErrInvalid", err)
	}
}

// TestExactReconstruction: shares are 1/d when the reconstruction is exact.
func TestExactReconstruction(t *testing.T) {
	m := tinyModel()
	// Zero decoder output weights and biases make x' = 0; a sample that
	// normalises to 0 then has zero reconstruction error.
	for i := range m.Decoder[1].W {
		m.Decoder[1].W[i] = 0
	}
	m.Decoder[1].B = []float64{0, 0}
	s := mustScorer(t, m)
	x := []float64{m.Norm[0].Invert(0), m.Norm[1].Invert(0)}
	r, err := s.Score(x)
	if err != nil {
		t.Fatal(err)
	}
	if r.Share[0] != 0.5 || r.Share[1] != 0.5 {
		t.Errorf("shares %v, want [0.5 0.5]", r.Share)
	}
	if !isFinite(r.Energy) {
		t.Errorf("energy %v, want finite", r.Energy)
	}
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// TestHugeValues: values whose squares overflow still score, as anomalies
// with energy +Inf, and their shares still sum to 1.
func TestHugeValues(t *testing.T) {
	s := mustScorer(t, tinyModel())
	for _, x := range [][]float64{{1e200, 5e5}, {-1e300, 5e5}, {1e170, 1e300}} {
		r, err := s.Score(x)
		if err != nil {
			t.Fatalf("Score(%v): %v", x, err)
		}
		if !math.IsInf(r.Energy, 1) || !r.Anomaly {
			t.Errorf("Score(%v) = energy %v, anomaly %v; want +Inf, true", x, r.Energy, r.Anomaly)
		}
		if sum := floats.Sum(r.Share); !scalar.EqualWithinAbs(sum, 1, 1e-12) {
			t.Errorf("Score(%v): shares %v sum to %v", x, r.Share, sum)
		}
	}
}

// TestScorerModel checks that Scorer.Model gives back the model the Scorer
// was made from, all but the loss history it does not keep, as a copy the
// caller may change.
func TestScorerModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *model.Model
	}{
		{"tiny", tinyModel()},
		{"metrics4", modeltest.Metrics4(2)},
		{"kddcup", modeltest.KDDCup(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScorer(t, tc.m)
			want := tc.m.Clone()
			want.Provenance.Losses = nil
			got := s.Model()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Model() differs from the model the scorer was made from:\ngot  %+v\nwant %+v", got, want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Model() does not validate: %v", err)
			}
			got.Encoder[0].W[0]++
			got.Decoder[0].B[0]++
			got.GMM.Mu[0]++
			got.Calibration.Quantiles[0]++
			got.Estimator[0].W[0]++
			if again := s.Model(); !reflect.DeepEqual(again, want) {
				t.Error("changing what Model() returned changed the scorer's model")
			}
		})
	}
}

// TestReuseWorkspace moves a workspace between scorers: between models of
// one architecture it keeps the memory and scores (and explains) as a new
// workspace would, without allocating; to another architecture it is a new
// workspace.
func TestReuseWorkspace(t *testing.T) {
	a, b := modeltest.Metrics4(1), modeltest.Metrics4(2)
	other := modeltest.NewRandom(modeltest.Metrics4Features, []int{12, 4, 1}, []int{10}, 4, 3)
	sa, sb := mustScorer(t, a), mustScorer(t, b)
	x := modeltest.Inputs(a, 50, 4)
	want := make([]model.Result, 50)
	fresh := sb.NewWorkspace(64)
	if err := sb.ScoreBatch(fresh, x, want); err != nil {
		t.Fatal(err)
	}
	var wantEx, gotEx model.Explanation
	if err := sb.Explain(fresh, 0, model.MethodRepair, &wantEx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		to    *model.Scorer
		kept  bool
		check bool
	}{
		{"same architecture", sb, true, true},
		{"same scorer", sa, true, false},
		{"other architecture", mustScorer(t, other), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := sa.NewWorkspace(64)
			out := make([]model.Result, 50)
			if err := sa.ScoreBatch(ws, x, out); err != nil {
				t.Fatal(err)
			}
			got := tc.to.Reuse(ws)
			if (got == ws) != tc.kept {
				t.Fatalf("workspace kept %v, want %v", got == ws, tc.kept)
			}
			if got.Len() != 0 || got.Cap() != 64 {
				t.Errorf("reused workspace: Len %d Cap %d, want 0 and 64", got.Len(), got.Cap())
			}
			if !tc.check {
				return
			}
			if allocs := testing.AllocsPerRun(10, func() {
				got = tc.to.Reuse(sa.Reuse(got))
				if err := tc.to.ScoreBatch(got, x, out); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("moving a workspace between two models and scoring allocates %v times, want 0", allocs)
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("scores with a reused workspace differ from a new one's")
			}
			if err := tc.to.Explain(got, 0, model.MethodRepair, &gotEx); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotEx, wantEx) {
				t.Errorf("explanation with a reused workspace %+v, with a new one %+v", gotEx, wantEx)
			}
		})
	}
}
