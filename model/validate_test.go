package model_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// invalidCases are changes that make tinyModel invalid, with the field and
// the text the error must contain.
var invalidCases = []struct {
	name  string
	edit  func(m *model.Model)
	field string
	want  string
}{
	{"no features", func(m *model.Model) { m.Features = nil }, "features", "none given"},
	{"empty feature name", func(m *model.Model) { m.Features[1] = "" }, "features 1", "name is empty"},
	{"duplicate feature", func(m *model.Model) { m.Features[1] = m.Features[0] }, "features 1", `name "cpu_usage" repeats feature 0`},
	{"norm count", func(m *model.Model) { m.Norm = m.Norm[:1] }, "norm", "has 1 transforms, want 2"},
	{"norm kind", func(m *model.Model) { m.Norm[1].Kind = "sqrt" }, "norm 1 (net_in_bps)", `unknown kind "sqrt"`},
	{"norm scale zero", func(m *model.Model) { m.Norm[0].Scale = 0 }, "norm 0 (cpu_usage)", "scale is 0"},
	{"norm offset inf", func(m *model.Model) { m.Norm[0].Offset = math.Inf(-1) }, "norm 0 (cpu_usage)", "offset is -Inf"},
	{"no encoder", func(m *model.Model) { m.Encoder = nil }, "encoder", "has no layers"},
	{"encoder in", func(m *model.Model) { m.Encoder[0].In = 3; m.Encoder[0].W = make([]float64, 9) }, "encoder layer 0", "in is 3, want 2"},
	{"encoder w short", func(m *model.Model) { m.Encoder[0].W = m.Encoder[0].W[:5] }, "encoder layer 0", "w has 5 values, want 6 (in 2 × out 3)"},
	{"encoder b long", func(m *model.Model) { m.Encoder[1].B = []float64{1, 2} }, "encoder layer 1", "b has 2 values, want 1 (out)"},
	{"encoder chain", func(m *model.Model) { m.Encoder[1].In = 4; m.Encoder[1].W = make([]float64, 4) }, "encoder layer 1", "in is 4, want 3"},
	{"encoder out zero", func(m *model.Model) { m.Encoder[0].Out = 0 }, "encoder layer 0", "out is 0"},
	{"encoder out huge", func(m *model.Model) { m.Encoder[0].Out = 1 << 62 }, "encoder layer 0", "out is 4611686018427387904"},
	{"encoder last tanh", func(m *model.Model) { m.Encoder[1].Activation = model.Tanh }, "encoder layer 1", `activation is "tanh", want "linear" on the last layer`},
	{"unknown activation", func(m *model.Model) { m.Encoder[0].Activation = "relu" }, "encoder layer 0", `unknown activation "relu"`},
	{"softmax in encoder", func(m *model.Model) { m.Encoder[1].Activation = model.Softmax }, "encoder layer 1", "only on the estimator's last layer"},
	{"nan weight", func(m *model.Model) { m.Encoder[0].W[5] = math.NaN() }, "encoder layer 0", "w[5] (in 1, out 2) is NaN"},
	{"inf bias", func(m *model.Model) { m.Decoder[0].B[2] = math.Inf(1) }, "decoder layer 0", "b[2] is +Inf"},
	{"no decoder", func(m *model.Model) { m.Decoder = nil }, "decoder", "has no layers"},
	{"decoder in", func(m *model.Model) { m.Decoder[0].In = 2; m.Decoder[0].W = make([]float64, 6) }, "decoder layer 0", "in is 2, want 1"},
	{"decoder out", func(m *model.Model) {
		m.Decoder[1].Out = 3
		m.Decoder[1].W = make([]float64, 9)
		m.Decoder[1].B = make([]float64, 3)
	}, "decoder layer 1", "out is 3, want 2 (the number of features)"},
	{"decoder last tanh", func(m *model.Model) { m.Decoder[1].Activation = model.Tanh }, "decoder layer 1", `want "linear" on the last layer`},
	{"gmm dim", func(m *model.Model) { m.GMM.Dim = 4 }, "gmm", "dim is 4, want 3 (code size 1 + 2)"},
	{"gmm k zero", func(m *model.Model) { m.GMM.K = 0 }, "gmm", "k is 0"},
	{"no estimator", func(m *model.Model) { m.Estimator = nil }, "estimator", "has no layers"},
	{"estimator in", func(m *model.Model) { m.Estimator[0].In = 2; m.Estimator[0].W = make([]float64, 4) }, "estimator layer 0", "in is 2, want 3"},
	{"estimator out", func(m *model.Model) { m.GMM.K = 3 }, "estimator layer 0", "out is 2, want at least 3 (gmm k)"},
	{"estimator last tanh", func(m *model.Model) { m.Estimator[0].Activation = model.Tanh }, "estimator layer 0", `want "softmax" on the last layer`},
	{"phi count", func(m *model.Model) { m.GMM.Phi = []float64{1} }, "gmm phi", "has 1 values, want 2 (k)"},
	{"phi negative", func(m *model.Model) { m.GMM.Phi = []float64{1.5, -0.5} }, "gmm phi 1", "is -0.5, want a finite weight > 0"},
	{"phi sum", func(m *model.Model) { m.GMM.Phi = []float64{0.5, 0.4} }, "gmm phi", "sums to 0.9, want 1"},
	{"mu count", func(m *model.Model) { m.GMM.Mu = m.GMM.Mu[:5] }, "gmm mu", "has 5 values, want 6 (k 2 × dim 3)"},
	{"mu nan", func(m *model.Model) { m.GMM.Mu[4] = math.NaN() }, "gmm mu 1", "value 1 is NaN"},
	{"sigma count", func(m *model.Model) { m.GMM.Sigma = m.GMM.Sigma[:9] }, "gmm sigma", "has 9 values, want 18"},
	{"sigma nan", func(m *model.Model) { m.GMM.Sigma[10] = math.NaN() }, "gmm sigma 1", "value (0, 1) is NaN"},
	{"sigma asymmetric", func(m *model.Model) { m.GMM.Sigma[1] = 0.2 }, "gmm sigma 0", "not symmetric: (1, 0) is 0.1 but (0, 1) is 0.2"},
	{"sigma zero diagonal", func(m *model.Model) { m.GMM.Sigma[9+4] = 0 }, "gmm sigma 1", "diagonal (1, 1) is 0, want > 0: not positive definite"},
	{"sigma not positive definite", func(m *model.Model) {
		s := m.GMM.Sigma[9:]
		s[1], s[3] = 0.75, 0.75 // |0.75| > sqrt(0.8·0.6)
	}, "gmm sigma 1", "not positive definite (Cholesky factorisation failed)"},
	{"percentile", func(m *model.Model) { m.Calibration.Percentile = 120 }, "calibration", "percentile is 120"},
	{"recon weight negative", func(m *model.Model) { m.ReconWeight = -1 }, "recon_weight", "is -1, want a finite number >= 0"},
	{"recon weight nan", func(m *model.Model) { m.ReconWeight = math.NaN() }, "recon_weight", "is NaN"},
	{"recon weight inf", func(m *model.Model) { m.ReconWeight = math.Inf(1) }, "recon_weight", "is +Inf"},
	{"window negative", func(m *model.Model) { m.Window = -1 }, "window", "is -1, want 0 to"},
	{"window huge", func(m *model.Model) { m.Window = model.MaxWindow + 1 }, "window", "want 0 to 65536"},
	{"threshold nan", func(m *model.Model) { m.Calibration.Threshold = math.NaN() }, "calibration", "threshold is NaN"},
	{"quantile count", func(m *model.Model) { m.Calibration.Quantiles = m.Calibration.Quantiles[:100] }, "calibration quantiles", "has 100 values, want 101"},
	{"quantile decreasing", func(m *model.Model) { m.Calibration.Quantiles[50] = 10 }, "calibration quantiles 51", "below quantile 50 (10): want non-decreasing"},
	{"quantile inf", func(m *model.Model) { m.Calibration.Quantiles[100] = math.Inf(1) }, "calibration quantiles 100", "is +Inf"},
	{"loss nan", func(m *model.Model) { m.Provenance.Losses[1] = math.NaN() }, "provenance losses 1", "is NaN"},
	{"learning rate inf", func(m *model.Model) { m.Provenance.LearningRate = math.Inf(1) }, "provenance learning_rate", "is +Inf"},
	{"negative rows", func(m *model.Model) { m.Provenance.RowsUsed = -1 }, "provenance", "negative count"},
	{"negative components dropped", func(m *model.Model) { m.Provenance.ComponentsDropped = -1 }, "provenance", "components_dropped -1"},
	{"min component weight nan", func(m *model.Model) { m.Provenance.MinComponentWeight = math.NaN() }, "provenance min_component_weight", "is NaN"},
}

func TestValidate(t *testing.T) {
	for _, m := range []*model.Model{tinyModel(), modeltest.Metrics4(1), modeltest.KDDCup(1)} {
		if err := m.Validate(); err != nil {
			t.Errorf("valid model: %v", err)
		}
	}
	t.Run("fewer components than estimator outputs", func(t *testing.T) {
		m := tinyModel()
		g := &m.GMM
		g.K, g.Phi, g.Mu, g.Sigma = 1, []float64{1}, g.Mu[:g.Dim], g.Sigma[:g.Dim*g.Dim]
		m.Provenance.MinComponentWeight, m.Provenance.ComponentsDropped = 0.001, 1
		if err := m.Validate(); err != nil {
			t.Errorf("a mixture with a dropped component: %v", err)
		}
	})
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel()
			tc.edit(m)
			err := m.Validate()
			checkValidationError(t, err, tc.field, tc.want)
		})
	}
	t.Run("nil", func(t *testing.T) {
		var m *model.Model
		checkValidationError(t, m.Validate(), "model", "is nil")
	})
}

func checkValidationError(t *testing.T, err error, field, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s: ...%s", field, want)
	}
	if !errors.Is(err, model.ErrInvalid) {
		t.Errorf("error %q does not match ErrInvalid", err)
	}
	ve, ok := errors.AsType[*model.ValidationError](err)
	if !ok {
		t.Fatalf("error %q is a %T, want *model.ValidationError", err, err)
	}
	if ve.Field != field || !strings.Contains(ve.Problem, want) {
		t.Errorf("error %q: want field %q and a problem containing %q", err, field, want)
	}
	if !strings.HasPrefix(err.Error(), "model: "+field+": ") {
		t.Errorf("error %q does not start with %q", err, "model: "+field+": ")
	}
}

func TestClone(t *testing.T) {
	m := tinyModel()
	c := m.Clone()
	c.Features[0] = "x"
	c.Norm[0].Scale = 9
	c.Encoder[0].W[0] = 9
	c.Decoder[1].B[0] = 9
	c.Estimator[0].W[0] = 9
	c.GMM.Phi[0], c.GMM.Mu[0], c.GMM.Sigma[0] = 9, 9, 9
	c.Calibration.Quantiles[0] = 9
	c.Provenance.Losses[0] = 9
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	orig := tinyModel()
	if m.Features[0] != orig.Features[0] || m.Norm[0] != orig.Norm[0] || m.Encoder[0].W[0] != orig.Encoder[0].W[0] ||
		m.Decoder[1].B[0] != orig.Decoder[1].B[0] || m.Estimator[0].W[0] != orig.Estimator[0].W[0] ||
		m.GMM.Phi[0] != orig.GMM.Phi[0] || m.GMM.Mu[0] != orig.GMM.Mu[0] || m.GMM.Sigma[0] != orig.GMM.Sigma[0] ||
		m.Calibration.Quantiles[0] != orig.Calibration.Quantiles[0] || m.Provenance.Losses[0] != orig.Provenance.Losses[0] {
		t.Error("changing the clone changed the original")
	}
	if m.CodeSize() != 1 {
		t.Errorf("CodeSize() = %d, want 1", m.CodeSize())
	}
}
