package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// seedData returns the seed experiment's table as features, rows and labels.
func seedData(t testing.TB, seed uint64) ([]string, []float64, []int64) {
	t.Helper()
	gc := datasets.DefaultGenConfig()
	gc.Seed = seed
	tab, err := datasets.Generate(gc)
	if err != nil {
		t.Fatal(err)
	}
	feats := datasets.GenFeatures()
	x, err := datasets.Matrix(tab, feats)
	if err != nil {
		t.Fatal(err)
	}
	labels, ok := tab.Column("label")
	if !ok {
		t.Fatal("generated table has no label column")
	}
	return feats, x, labels.Ints
}

// quickConfig is a short training for tests that do not judge the model.
func quickConfig() Config {
	cfg := DefaultConfig()
	cfg.Epochs = 5
	return cfg
}

// TestSeedExperiment is the seed's acceptance case: trained with the
// defaults on the generated 1000 samples, the model puts both injected
// anomalies above the 99th-percentile threshold.
func TestSeedExperiment(t *testing.T) {
	feats, x, labels := seedData(t, 1)
	var epochs int
	m, rep, err := Train(context.Background(), feats, x, DefaultConfig(), func(p Progress) { epochs++ })
	if err != nil {
		t.Fatal(err)
	}
	if epochs != DefaultConfig().Epochs {
		t.Errorf("progress called %d times, want %d", epochs, DefaultConfig().Epochs)
	}
	th := m.Calibration.Threshold
	anomalies, flagged := 0, 0
	for i, e := range model.WindowScores(rep.Energies, m.Window, m.WindowLimit()) {
		switch {
		case labels[i] == 1:
			anomalies++
			if e <= th {
				t.Errorf("anomaly in row %d: energy %.4g is not above the threshold %.4g", i, e, th)
			}
		case e > th:
			flagged++
		}
	}
	if anomalies != 2 {
		t.Fatalf("generated data has %d anomalies, want 2", anomalies)
	}
	first, last := rep.Epochs[0].Loss, rep.Epochs[len(rep.Epochs)-1].Loss
	t.Logf("normalisation %v", m.Norm)
	t.Logf("loss %.4f -> %.4f in %d epochs, %v (%.0f samples/s); threshold %.4g; normal samples flagged: %d of %d",
		first, last, len(rep.Epochs), rep.Duration, rep.SamplesPerSec, th, flagged, len(labels)-anomalies)
	if !(last < first) {
		t.Errorf("loss did not decrease: %v -> %v", first, last)
	}
}

// TestScorerMatchesGraph checks the pure-Go scorer against the Gorgonia
// forward pass on the same weights: a trained model and random models of the
// four-metric and KDDCUP architectures.
func TestScorerMatchesGraph(t *testing.T) {
	const tol = 1e-9
	feats, x, _ := seedData(t, 1)
	trained, rep, err := Train(context.Background(), feats, x, quickConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		m    *model.Model
		x    []float64
	}{
		{"trained", trained, x},
		{"metrics4", modeltest.Metrics4(3), modeltest.Inputs(modeltest.Metrics4(3), 500, 1)},
		{"kddcup", modeltest.KDDCup(4), modeltest.Inputs(modeltest.KDDCup(4), 300, 2)},
		// more rows than one evaluation graph takes: two chunks, the last padded
		{"metrics4-chunks", modeltest.Metrics4(5), modeltest.Inputs(modeltest.Metrics4(5), evalChunk+5, 3)},
		{"kddcup-recon-weight", withReconWeight(modeltest.KDDCup(6), 7), modeltest.Inputs(modeltest.KDDCup(6), 300, 4)},
		{"trained-no-recon-weight", withReconWeight(trained.Clone(), 0), x},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := model.NewScorer(c.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Energies(c.m, c.x)
			if err != nil {
				t.Fatal(err)
			}
			d := len(c.m.Features)
			worst := 0.0
			for i := range got {
				r, err := s.Score(c.x[i*d : (i+1)*d])
				if err != nil {
					t.Fatal(err)
				}
				rel := math.Abs(r.Energy-got[i]) / max(math.Abs(r.Energy), 1)
				worst = max(worst, rel)
				if rel > tol {
					t.Fatalf("row %d: scorer energy %v, graph %v (relative error %.2e)", i, r.Energy, got[i], rel)
				}
			}
			t.Logf("%d rows, largest relative error %.2e", len(got), worst)
		})
	}
	// The training energies (fitted mixture, plain Go) agree with the graph too.
	got, err := Energies(trained, x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := math.Abs(got[i] - rep.Energies[i]); d > tol*max(1, math.Abs(got[i])) {
			t.Fatalf("row %d: report energy %v, graph %v", i, rep.Energies[i], got[i])
		}
	}
}

// withReconWeight returns m with its sample energy E(z) + w·‖x − x'‖².
func withReconWeight(m *model.Model, w float64) *model.Model {
	m.ReconWeight = w
	return m
}

func TestEpochsFor(t *testing.T) {
	for _, c := range []struct {
		epochs, maxSamples, rows, want int
	}{
		{200, 0, 23700, 200},        // no cap
		{200, 1_000_000, 1000, 200}, // small data: all the epochs
		{200, 1_000_000, 23700, 43}, // ceil(1e6 / 23700)
		{200, 1_000_000, 5000, 200}, // exactly the cap
		{200, 1_000_000, 5001, 200}, // ceil rounds up to 200
		{200, 1_000_000, 5002, 200}, // 199.92 -> 200
		{200, 1_000_000, 6000, 167}, // 166.7 -> 167
		{200, 1_000, 1_000_000, 1},  // at least one epoch
		{10, 1_000_000, 1000, 10},   // never more than Epochs
	} {
		cfg := Config{Epochs: c.epochs, MaxSamples: c.maxSamples}
		if got := cfg.EpochsFor(c.rows); got != c.want {
			t.Errorf("Epochs %d, MaxSamples %d, %d rows: %d epochs, want %d", c.epochs, c.maxSamples, c.rows, got, c.want)
		}
	}
}

// TestTrainCapsEpochs trains on more rows than MaxSamples covers in Epochs
// passes and checks the epochs run and recorded.
func TestTrainCapsEpochs(t *testing.T) {
	feats, x, _ := seedData(t, 1)
	cfg := DefaultConfig()
	cfg.MaxSamples = 3000 // 1000 rows: 3 epochs
	m, rep, err := Train(context.Background(), feats, x, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Epochs) != 3 || m.Provenance.Epochs != 3 || len(m.Provenance.Losses) != 3 {
		t.Errorf("ran %d epochs, provenance says %d with %d losses; want 3", len(rep.Epochs), m.Provenance.Epochs, len(m.Provenance.Losses))
	}
	if m.ReconWeight != cfg.ReconWeight || m.Window != cfg.Window {
		t.Errorf("model recon weight %v, window %d; config %v, %d", m.ReconWeight, m.Window, cfg.ReconWeight, cfg.Window)
	}
	// The threshold is the percentile of the energies, not of the window scores.
	cal, err := model.Calibrate(rep.Energies, cfg.Percentile)
	if err != nil {
		t.Fatal(err)
	}
	if cal.Threshold != m.Calibration.Threshold {
		t.Errorf("threshold %v, want %v (percentile %v of the scores)", m.Calibration.Threshold, cal.Threshold, cfg.Percentile)
	}
}

// TestTrainDeterministic trains twice with the same seed and compares the
// encoded artifacts byte for byte; another seed gives another model.
func TestTrainDeterministic(t *testing.T) {
	feats, x, _ := seedData(t, 2)
	encode := func(cfg Config) []byte {
		t.Helper()
		m, _, err := Train(context.Background(), feats, x, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := model.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, dt := range []string{Float64, Float32} {
		t.Run(dt, func(t *testing.T) {
			cfg := quickConfig()
			cfg.DType = dt
			a, b := encode(cfg), encode(cfg)
			if !bytes.Equal(a, b) {
				t.Errorf("two trainings with seed %d wrote different artifacts (%d and %d bytes)", cfg.Seed, len(a), len(b))
			}
			cfg.Seed++
			if c := encode(cfg); bytes.Equal(a, c) {
				t.Errorf("seeds %d and %d wrote the same artifact", cfg.Seed-1, cfg.Seed)
			}
		})
	}
}

func TestTrainDiverges(t *testing.T) {
	feats, x, _ := seedData(t, 1)
	cfg := quickConfig()
	cfg.LearningRate = 1e3
	m, rep, err := Train(context.Background(), feats, x, cfg, nil)
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("error %v, want one matching ErrDiverged", err)
	}
	if m != nil || rep != nil {
		t.Errorf("a diverged training returned a model (%v) or a report", m != nil)
	}
	msg := err.Error()
	for _, want := range []string{"train: loss diverged at epoch", "try a lower learning rate or a larger jitter"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	t.Log(msg)
}

func TestTrainBadInput(t *testing.T) {
	feats, x, _ := seedData(t, 1)
	constant := append([]float64(nil), x[:40]...)
	for i := 0; i < len(constant); i += 4 {
		constant[i+2] = 7
	}
	withValue := func(v float64) []float64 {
		y := append([]float64(nil), x[:40]...)
		y[5*4+1] = v // row 5, mem_usage
		return y
	}
	for _, c := range []struct {
		name  string
		feats []string
		x     []float64
		want  []string
	}{
		{"no rows", feats, nil, []string{"0 row(s)", "at least 2"}},
		{"single row", feats, x[:4], []string{"1 row(s)", "at least 2"}},
		{"ragged", feats, x[:10], []string{"10 values", "4 features"}},
		{"constant column", feats, constant, []string{`feature "disk_busy" is constant`}},
		{"NaN", feats, withValue(math.NaN()), []string{"row 5", `column "mem_usage"`, "NaN"}},
		{"Inf", feats, withValue(math.Inf(1)), []string{"row 5", `column "mem_usage"`, "+Inf"}},
		{"no features", nil, x[:8], []string{"no features"}},
		{"duplicate feature", []string{"a", "b", "a", "c"}, x[:40], []string{`feature "a" appears twice`}},
		{"empty name", []string{"a", "", "b", "c"}, x[:40], []string{"feature 1 has an empty name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _, err := Train(context.Background(), c.feats, c.x, quickConfig(), nil)
			if !errors.Is(err, ErrInput) {
				t.Fatalf("error %v, want one matching ErrInput", err)
			}
			if m != nil {
				t.Error("returned a model")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, c := range []struct {
		field string
		mod   func(*Config)
	}{
		{"encoder", func(c *Config) { c.Encoder = nil }},
		{"encoder", func(c *Config) { c.Encoder = []int{8, 0} }},
		{"estimator", func(c *Config) { c.Estimator = []int{-1} }},
		{"k", func(c *Config) { c.K = 0 }},
		{"dropout", func(c *Config) { c.Dropout = 1 }},
		{"dropout", func(c *Config) { c.Dropout = math.NaN() }},
		{"epochs", func(c *Config) { c.Epochs = 0 }},
		{"batch size", func(c *Config) { c.BatchSize = 1 }},
		{"learning rate", func(c *Config) { c.LearningRate = 0 }},
		{"learning rate", func(c *Config) { c.LearningRate = math.Inf(1) }},
		{"lambda1", func(c *Config) { c.Lambda1 = -1 }},
		{"lambda2", func(c *Config) { c.Lambda2 = math.NaN() }},
		{"jitter", func(c *Config) { c.Jitter = 0 }},
		{"max samples", func(c *Config) { c.MaxSamples = -1 }},
		{"window", func(c *Config) { c.Window = -2 }},
		{"recon weight", func(c *Config) { c.ReconWeight = -0.5 }},
		{"recon weight", func(c *Config) { c.ReconWeight = math.Inf(1) }},
		{"min component weight", func(c *Config) { c.MinComponentWeight = -0.1 }},
		{"min component weight", func(c *Config) { c.MinComponentWeight = 1 }},
		{"percentile", func(c *Config) { c.Percentile = 0 }},
		{"percentile", func(c *Config) { c.Percentile = 101 }},
		{"normalization", func(c *Config) { c.Normalization = "robust" }},
		{"dtype", func(c *Config) { c.DType = "float16" }},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: error %v, want ErrConfig naming the field", c.field, err)
		}
		// Train refuses it too, before touching the rows.
		if _, _, err := Train(context.Background(), []string{"a"}, []float64{1, 2}, cfg, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Train returned %v, want ErrConfig", c.field, err)
		}
	}
}

func TestFitNormalization(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 500
	feats := []string{"uniform", "lognormal", "negative", "constant"}
	x := make([]float64, n*4)
	for i := range n {
		x[i*4] = 100 * rng.Float64()
		x[i*4+1] = math.Exp(13 + 1.5*rng.NormFloat64())
		x[i*4+2] = -5 + rng.NormFloat64()
		x[i*4+3] = 3
	}
	if _, err := FitNormalization(feats, x, NormAuto); err == nil || !strings.Contains(err.Error(), `feature "constant" is constant`) {
		t.Fatalf("constant column: error %v", err)
	}
	ts, err := FitNormalization(feats, x, NormNone)
	if err != nil {
		t.Fatalf("none: %v", err)
	}
	for j, tr := range ts {
		if tr.Kind != model.NormNone || tr.Offset != 0 || tr.Scale != 1 || tr.Spread != robustSD(column(x, 4, j)) {
			t.Errorf("none: feature %d: %+v, want none, offset 0, scale 1 and the column's robust spread", j, tr)
		}
	}
	x3, f3 := make([]float64, n*3), feats[:3]
	for i := range n {
		copy(x3[i*3:], x[i*4:i*4+3])
	}
	for _, c := range []struct {
		kind  string
		kinds []model.NormKind
	}{
		{NormAuto, []model.NormKind{model.NormMinMax, model.NormLog, model.NormMinMax}},
		{NormAutoSD, []model.NormKind{model.NormMinMax, model.NormLog, model.NormMinMax}}, // nothing far out
		{NormZScore, []model.NormKind{model.NormZScore, model.NormZScore, model.NormZScore}},
		{NormMinMax, []model.NormKind{model.NormMinMax, model.NormMinMax, model.NormMinMax}},
		{NormLog, []model.NormKind{model.NormLog, model.NormLog, model.NormLog}},
	} {
		ts, err := FitNormalization(f3, x3, c.kind)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		for j, tr := range ts {
			if tr.Kind != c.kinds[j] {
				t.Errorf("%s: feature %q got %s, want %s", c.kind, f3[j], tr.Kind, c.kinds[j])
			}
			lo, hi, sum, sq := math.Inf(1), math.Inf(-1), 0.0, 0.0
			for i := range n {
				v := tr.Apply(x3[i*3+j])
				lo, hi, sum, sq = min(lo, v), max(hi, v), sum+v, sq+v*v
			}
			mean := sum / float64(n)
			sd := math.Sqrt(sq/float64(n) - mean*mean)
			switch tr.Kind {
			case model.NormMinMax, model.NormLog:
				if math.Abs(lo) > 1e-12 || math.Abs(hi-1) > 1e-12 {
					t.Errorf("%s: feature %q maps to [%v, %v], want [0, 1]", c.kind, f3[j], lo, hi)
				}
			case model.NormMinSD, model.NormLogMinSD:
				// Scale is the larger of √12 sd and the 1-99 percentile
				// spread of f(x), so sd ≤ 1/√12 after normalisation.
				raw := make([]float64, n)
				for i := range n {
					raw[i] = x3[i*3+j]
					if tr.Kind == model.NormLogMinSD {
						raw[i] = math.Copysign(math.Log1p(math.Abs(raw[i])), raw[i])
					}
				}
				_, rsd := meanSD(raw)
				sorted := slices.Sorted(slices.Values(raw))
				want := max(math.Sqrt(12)*rsd, sorted[n*99/100]-sorted[n/100])
				if math.Abs(lo) > 1e-12 || sd > 1/math.Sqrt(12)+1e-9 || math.Abs(tr.Scale-want) > 1e-12*want {
					t.Errorf("%s: feature %q: min %v, sd %v, scale %v; want 0, <= 1/√12, %v", c.kind, f3[j], lo, sd, tr.Scale, want)
				}
			case model.NormZScore:
				if math.Abs(mean) > 1e-9 || math.Abs(sd-1) > 1e-9 {
					t.Errorf("%s: feature %q has mean %v, sd %v after normalisation", c.kind, f3[j], mean, sd)
				}
			}
		}
	}
}

func TestTrainCancel(t *testing.T) {
	feats, x, _ := seedData(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	m, _, err := Train(ctx, feats, x, DefaultConfig(), func(p Progress) {
		calls++
		if p.Epoch == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || m != nil {
		t.Fatalf("got model %v, error %v; want no model and context.Canceled", m != nil, err)
	}
	if calls != 2 {
		t.Errorf("progress called %d times after cancelling in epoch 2", calls)
	}
}

func TestTrainReport(t *testing.T) {
	feats, x, _ := seedData(t, 3)
	x = x[:50*4] // fewer rows than a batch: one batch of all rows
	cfg := quickConfig()
	var got []Progress
	m, rep, err := Train(context.Background(), feats, x, cfg, func(p Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.BatchSize != 50 || rep.Steps != cfg.Epochs {
		t.Errorf("batch %d, steps %d; want 50 and %d", rep.BatchSize, rep.Steps, cfg.Epochs)
	}
	if len(got) != cfg.Epochs || len(rep.Epochs) != cfg.Epochs {
		t.Fatalf("%d progress calls, %d epochs in the report, want %d", len(got), len(rep.Epochs), cfg.Epochs)
	}
	for i, p := range got {
		if p.Epoch != i+1 || p.Epochs != cfg.Epochs || !(p.SamplesPerSec > 0) || p != (Progress{EpochStats: rep.Epochs[i], Epochs: cfg.Epochs, Elapsed: p.Elapsed}) {
			t.Errorf("progress %d: %+v", i, p)
		}
		if s := p.Recon + cfg.Lambda1*p.Energy + cfg.Lambda2*p.Penalty; math.Abs(s-p.Loss) > 1e-9*max(1, math.Abs(p.Loss)) {
			t.Errorf("epoch %d: loss %v is not recon + λ1·energy + λ2·penalty = %v", p.Epoch, p.Loss, s)
		}
	}
	if len(rep.Energies) != 50 {
		t.Errorf("%d training energies, want 50", len(rep.Energies))
	}
	above := 0
	for _, e := range rep.Energies {
		if e > m.Calibration.Threshold {
			above++
		}
	}
	if above != 1 { // 99th percentile of 50 values: only the largest is above
		t.Errorf("%d training energies above the threshold, want 1", above)
	}
	p := m.Provenance
	if p.RowsUsed != 50 || p.Epochs != cfg.Epochs || p.BatchSize != 50 || p.Seed != cfg.Seed || len(p.Losses) != cfg.Epochs || p.DType != Float64 {
		t.Errorf("provenance %+v", p)
	}
}

func TestForwardErrors(t *testing.T) {
	m := modeltest.Metrics4(1)
	for _, c := range []struct {
		name string
		x    []float64
		want string
	}{
		{"empty", nil, "0 values"},
		{"ragged", []float64{1, 2, 3}, "3 values"},
		{"NaN", []float64{1, 2, 3, 4, 1, math.NaN(), 3, 4}, `row 1, column "mem_usage"`},
	} {
		if _, err := Energies(m, c.x); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrInput naming %q", c.name, err, c.want)
		}
	}
	bad := m.Clone()
	bad.GMM.Phi[0] = math.NaN()
	if _, err := Energies(bad, []float64{1, 2, 3, 4}); !errors.Is(err, model.ErrInvalid) {
		t.Errorf("invalid model: error %v, want model.ErrInvalid", err)
	}
}

func TestDiverged(t *testing.T) {
	for _, c := range []struct {
		loss, first float64
		want        string
	}{
		{1.5, 2, ""},
		{-3, 0.5, ""},
		{math.NaN(), 1, "NaN"},
		{math.Inf(1), 1, "Inf"},
		{math.Inf(-1), 1, "Inf"},
		{2e6, 1.5, "more than"},
		{-2e6, 0.1, "more than"},
		{2e6, 10, ""},
	} {
		got := diverged(c.loss, c.first)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("diverged(%v, %v) = %q, want %q", c.loss, c.first, got, c.want)
		}
	}
}

// TestTrainConcurrent runs two trainings at once: each builds its own
// graphs, so they neither race (go test -race) nor disturb each other's
// result.
func TestTrainConcurrent(t *testing.T) {
	feats, x, _ := seedData(t, 1)
	var out [2][]byte
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			m, _, err := Train(context.Background(), feats, x, quickConfig(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			var b bytes.Buffer
			if err := model.Encode(&b, m); err != nil {
				t.Error(err)
			}
			out[i] = b.Bytes()
		})
	}
	wg.Wait()
	if len(out[0]) == 0 || !bytes.Equal(out[0], out[1]) {
		t.Errorf("two concurrent trainings with the same seed wrote different artifacts (%d and %d bytes)", len(out[0]), len(out[1]))
	}
}

func TestDropLightComponents(t *testing.T) {
	// Three components over z of dimension 1: Mu c, Sigma c+1.
	g := model.GMM{K: 3, Dim: 1, Phi: []float64{0.6, 0.3995, 0.0005}, Mu: []float64{0, 1, 2}, Sigma: []float64{1, 2, 3}}
	cases := []struct {
		name      string
		min       float64
		wantPhi   []float64
		wantMu    []float64
		wantDrops int
	}{
		{"keep all", 0, []float64{0.6, 0.3995, 0.0005}, []float64{0, 1, 2}, 0},
		{"drop the lightest", 1e-3, []float64{0.6 / 0.9995, 0.3995 / 0.9995}, []float64{0, 1}, 1},
		{"keep the heaviest", 0.9, []float64{1}, []float64{0}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, drops := dropLightComponents(g, c.min)
			if drops != c.wantDrops || got.K != len(c.wantPhi) || !floats.EqualApprox(got.Phi, c.wantPhi, 1e-12) || !slices.Equal(got.Mu, c.wantMu) {
				t.Fatalf("got %+v, %d dropped; want phi %v, mu %v, %d dropped", got, drops, c.wantPhi, c.wantMu, c.wantDrops)
			}
			for i, m := range got.Mu {
				if got.Sigma[i] != m+1 {
					t.Errorf("component %d: sigma %v, want %v (its own)", i, got.Sigma[i], m+1)
				}
			}
			if _, err := model.NewMixture(got); err != nil {
				t.Errorf("not a valid mixture: %v", err)
			}
		})
	}
	if g.K != 3 || len(g.Phi) != 3 || g.Phi[2] != 0.0005 {
		t.Errorf("the input was changed: %+v", g)
	}
}

// TestTrainDropsLightComponents trains with a minimum weight that leaves
// some components out: the model stays valid, says what it dropped, and the
// report's energies are the scorer's under the smaller mixture.
func TestTrainDropsLightComponents(t *testing.T) {
	feats, x, _ := seedData(t, 2)
	cfg := quickConfig()
	cfg.MinComponentWeight = 0
	full, _, err := Train(context.Background(), feats, x, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.GMM.K != cfg.K || full.Provenance.ComponentsDropped != 0 {
		t.Fatalf("minimum weight 0: K %d, %d dropped; want %d, 0", full.GMM.K, full.Provenance.ComponentsDropped, cfg.K)
	}
	// A minimum just above the second-lightest weight drops two components.
	phi := slices.Sorted(slices.Values(full.GMM.Phi))
	cfg.MinComponentWeight = phi[1] * 1.0001
	m, rep, err := Train(context.Background(), feats, x, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Provenance
	if m.GMM.K != cfg.K-2 || p.ComponentsDropped != 2 || p.MinComponentWeight != cfg.MinComponentWeight {
		t.Fatalf("K %d, provenance %d dropped below %v; want K %d, 2 dropped below %v", m.GMM.K, p.ComponentsDropped, p.MinComponentWeight, cfg.K-2, cfg.MinComponentWeight)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	d := len(feats)
	for i, e := range rep.Energies {
		r, err := s.Score(x[i*d : (i+1)*d])
		if err != nil {
			t.Fatal(err)
		}
		if !scalar.EqualWithinAbsOrRel(r.Energy, e, 1e-9, 1e-9) {
			t.Fatalf("row %d: report energy %v, scorer %v", i, e, r.Energy)
		}
	}
	graph, err := Energies(m, x)
	if err != nil {
		t.Fatal(err)
	}
	if !floats.EqualApprox(graph, rep.Energies, 1e-9) {
		t.Error("the Gorgonia forward pass disagrees with the report's energies")
	}
}

func TestStepsPerRun(t *testing.T) {
	for _, tc := range []struct{ steps, want int }{
		{1, 1}, {7, 7}, {8, 8}, {9, 3}, {16, 8}, {185, 5}, {13, 1}, {12, 6},
	} {
		if got := stepsPerRun(tc.steps); got != tc.want {
			t.Errorf("stepsPerRun(%d) = %d, want %d", tc.steps, got, tc.want)
		}
	}
}
