package serve

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/model"
)

func httpOnly(path string) Config {
	cfg := testConfig(path)
	cfg.NATS.Disabled = true
	return cfg
}

func TestHTTPScore(t *testing.T) {
	checkNoLeak(t)
	path, m := writeModel(t, t.TempDir(), 1)
	r := start(t, httpOnly(path))
	s, _ := model.NewScorer(m)
	normal, anomalies := testData(t, m, 3, 2, 7)
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	d := len(m.Features)
	x := append(append([]float64{}, normal...), anomalies...)

	for _, tc := range []struct {
		name, query, body string
		n                 int
		method            model.Method
		explain           func(anomaly bool) bool
	}{
		{"single", "", sampleJSON("web-1", ts, m.Features, anomalies[:d]), 1, "", func(bool) bool { return true }},
		{"array", "", batchJSON("web-1", ts, m.Features, x), 5, "", func(a bool) bool { return a }},
		{"samples object", "?explain=all&method=gradient", `{"samples":` + batchJSON("web-1", ts, m.Features, x) + `}`, 5, model.MethodGradient, func(bool) bool { return true }},
		{"explain none", "?explain=none", batchJSON("web-1", ts, m.Features, x), 5, "", func(bool) bool { return false }},
		{"explain share", "?explain=anomalies&method=share", batchJSON("web-1", ts, m.Features, x), 5, model.MethodShare, func(a bool) bool { return a }},
		{"empty batch", "", `[]`, 0, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := r.post(t, "/v1/score"+tc.query, tc.body)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var resp ScoreResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if resp.Model != "dagmm" || resp.ModelVersion != r.Model().Version || float64(resp.Threshold) != m.Calibration.Threshold {
				t.Errorf("model fields %q %q %v, want dagmm %q %v", resp.Model, resp.ModelVersion, resp.Threshold, r.Model().Version, m.Calibration.Threshold)
			}
			if len(resp.Results) != tc.n {
				t.Fatalf("%d results, want %d", len(resp.Results), tc.n)
			}
			for i, got := range resp.Results {
				row := x[i*d : (i+1)*d]
				if tc.n == 1 {
					row = anomalies[:d]
				}
				want, err := s.Score(row)
				if err != nil {
					t.Fatal(err)
				}
				if !scalar.EqualWithinAbsOrRel(float64(got.Energy), want.Energy, 1e-12, 1e-12) || got.Anomaly != want.Anomaly {
					t.Errorf("result %d: energy %v anomaly %v, want %v %v", i, got.Energy, got.Anomaly, want.Energy, want.Anomaly)
				}
				if got.Host != "web-1" || !got.TS.Equal(ts.Add(time.Duration(i)*time.Second)) {
					t.Errorf("result %d: host %q ts %v", i, got.Host, got.TS)
				}
				if got.Severity != want.Severity || got.Band != want.Band.String() {
					t.Errorf("result %d: severity %v %q, want %v %v", i, got.Severity, got.Band, want.Severity, want.Band)
				}
				if !tc.explain(want.Anomaly) {
					if got.Explanation != nil {
						t.Errorf("result %d: explanation given", i)
					}
					continue
				}
				wantMethod := tc.method
				if wantMethod == "" {
					wantMethod = s.DefaultMethod()
				}
				if got.ExplanationMethod != string(wantMethod) {
					t.Errorf("result %d: explanation method %q, want %q", i, got.ExplanationMethod, wantMethod)
				}
				checkExplanation(t, got.Explanation, s, row, tc.method)
			}
			// The injected anomalies (the last two rows) are flagged.
			if tc.n == 5 && (!resp.Results[3].Anomaly || !resp.Results[4].Anomaly || resp.Results[0].Anomaly) {
				t.Errorf("anomaly flags %v %v %v, want false true true", resp.Results[0].Anomaly, resp.Results[3].Anomaly, resp.Results[4].Anomaly)
			}
		})
	}
}

// checkExplanation checks a ranked explanation against the scorer's, by
// the given method.
func checkExplanation(t *testing.T, got []FeatureExplanation, s *model.Scorer, row []float64, method model.Method) {
	t.Helper()
	_, want := scoreExplain(t, s, row, method)
	if len(got) != len(want.Features) {
		t.Fatalf("explanation has %d features, want %d", len(got), len(want.Features))
	}
	sum := 0.0
	for k, fe := range got {
		w := want.Features[k]
		if fe.Feature != w.Feature || float64(fe.Actual) != w.Actual ||
			!scalar.EqualWithinAbsOrRel(float64(fe.Expected), w.Expected, 1e-12, 1e-12) ||
			!scalar.EqualWithinAbsOrRel(float64(fe.Share), w.Share, 1e-12, 1e-12) {
			t.Errorf("explanation %d: %+v, want %+v", k, fe, w)
		}
		if k > 0 && fe.Share > got[k-1].Share {
			t.Errorf("explanation not ranked: %v after %v", fe.Share, got[k-1].Share)
		}
		sum += float64(fe.Share)
	}
	if !scalar.EqualWithinAbs(sum, 1, 1e-9) {
		t.Errorf("shares sum to %v", sum)
	}
}

func TestHTTPBadInput(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := httpOnly(path)
	cfg.Scoring.MaxSamples = 3
	cfg.HTTP.MaxBodyBytes = 2048
	r := start(t, cfg)
	ok := sampleJSON("h", time.Unix(0, 0), m.Features, []float64{1, 2, 3, 4})
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string // in the error
		sample                   int    // -1: no sample
		feature                  string
	}{
		{"malformed JSON", "POST", "/v1/score", `{"values":{"cpu_usage":1`, 400, "malformed JSON", -1, ""},
		{"empty body", "POST", "/v1/score", ``, 400, "empty message", -1, ""},
		{"not JSON", "POST", "/v1/score", `cpu_usage=1`, 400, "", -1, ""},
		{"missing feature", "POST", "/v1/score", `{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3}}`, 400, "missing feature", -1, "net_in_bps"},
		{"unknown feature", "POST", "/v1/score", `{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4,"gpu":5}}`, 400, "unknown feature", -1, "gpu"},
		{"NaN", "POST", "/v1/score", `[` + ok + `,{"values":{"cpu_usage":"NaN","mem_usage":2,"disk_busy":3,"net_in_bps":4}}]`, 400, "not finite", 1, "cpu_usage"},
		{"Inf", "POST", "/v1/score", `{"values":{"cpu_usage":1e999,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, 400, "not finite", -1, "cpu_usage"},
		{"string value", "POST", "/v1/score", `{"values":{"cpu_usage":1,"mem_usage":"high","disk_busy":3,"net_in_bps":4}}`, 400, "not a number", -1, "mem_usage"},
		{"null value", "POST", "/v1/score", `{"values":{"cpu_usage":1,"mem_usage":null,"disk_busy":3,"net_in_bps":4}}`, 400, "not a number", -1, "mem_usage"},
		{"duplicate feature", "POST", "/v1/score", `{"values":{"cpu_usage":1,"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, 400, "duplicate", -1, "cpu_usage"},
		{"bad ts", "POST", "/v1/score", `{"ts":"yesterday","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, 400, "timestamp", -1, ""},
		{"not samples", "POST", "/v1/score", `[1,2]`, 400, "invalid sample", 0, ""},
		{"too many samples", "POST", "/v1/score", `[` + strings.Repeat(ok+",", 3) + ok + `]`, 400, "too many samples", 3, ""},
		{"body too large", "POST", "/v1/score", `[` + strings.Repeat(ok+",", 30) + ok + `]`, 413, "larger than the limit", -1, ""},
		{"bad explain", "POST", "/v1/score?explain=some", ok, 400, "explain", -1, ""},
		{"bad method", "POST", "/v1/score?method=magic", ok, 400, "unknown explanation method", -1, ""},
		{"unknown path", "GET", "/v1/nothing", "", 404, "not found", -1, ""},
		{"wrong method", "GET", "/v1/score", "", 405, "not allowed", -1, ""},
		{"unknown model", "GET", "/v2/models/other", "", 404, `model "other" not found`, -1, ""},
		{"unknown version", "GET", "/v2/models/dagmm/versions/0000/ready", "", 404, "no version", -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, r.base+tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			var e APIError
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("body is not a JSON error: %s", body)
			}
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("error %q does not mention %q", e.Error, tc.want)
			}
			if tc.sample >= 0 && (e.Sample == nil || *e.Sample != tc.sample) {
				t.Errorf("error %s: sample %v, want %d", body, e.Sample, tc.sample)
			}
			if e.Feature != tc.feature {
				t.Errorf("error %s: feature %q, want %q", body, e.Feature, tc.feature)
			}
		})
	}
	// The bad requests did not disturb the service.
	if code, body := r.post(t, "/v1/score", ok); code != 200 {
		t.Fatalf("after bad input: %d %s", code, body)
	}
	if got := counterValue(t, r.Registry(), "dagmm_http_requests_total", map[string]string{"handler": "/v1/score", "code": "400"}); got < 10 {
		t.Errorf("dagmm_http_requests_total{code=400} = %v, want ≥ 10", got)
	}
}

func TestHTTPModelAndHealth(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 3)
	r := start(t, httpOnly(path))
	code, body := r.get(t, "/v1/model")
	if code != 200 {
		t.Fatalf("GET /v1/model: %d %s", code, body)
	}
	var info ModelInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "dagmm" || info.Version != r.Model().Version || len(info.Version) != 12 ||
		strings.Join(info.Features, ",") != strings.Join(m.Features, ",") || float64(info.Threshold) != m.Calibration.Threshold ||
		info.Origin != filepath.Base(path) || info.Components != 4 || len(info.Encoder) != 4 {
		t.Errorf("model info %+v", info)
	}
	if bytes.Contains(body, []byte(`"losses"`)) {
		t.Errorf("model info shows the losses a scorer does not keep: %s", body)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v2/health/live", `"live":true`},
		{"/v2/health/ready", `"ready":true`},
		{"/v2/models/dagmm/ready", `"ready":true`},
		{"/v2", `"name":"dagmm"`},
		{"/v2/models/dagmm", `"versions":["` + info.Version + `"]`},
		{"/v2/models/dagmm/versions/" + info.Version, `"shape":[-1,4]`},
	} {
		code, body := r.get(t, tc.path)
		if code != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d %s, want 200 with %s", tc.path, code, body, tc.want)
		}
	}
}

// TestHTTPNoAbsolutePath checks that no response shows where the model
// file lives on the serving machine: the model information, the Open
// Inference Protocol metadata, and the error of a reload that fails on a
// missing or broken file.
func TestHTTPNoAbsolutePath(t *testing.T) {
	dir := t.TempDir()
	path, m := writeModel(t, dir, 1)
	m.Provenance.Input = filepath.Join(dir, "training", "metrics.parquet")
	saveModelAt(t, path, m)
	cfg := httpOnly(path)
	cfg.HTTP.AdminToken = "s3cret"
	r := start(t, cfg)
	auth := []string{"Authorization", "Bearer s3cret"}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		before func()
		want   string // in the body: the base name stays
	}{
		{"model info", http.MethodGet, "/v1/model", nil, `"origin":"` + filepath.Base(path) + `"`},
		{"training input", http.MethodGet, "/v1/model", nil, `"input":"metrics.parquet"`},
		{"oip metadata", http.MethodGet, "/v2/models/dagmm", nil, `"platform":"dagmm"`},
		{"oip version metadata", http.MethodGet, "/v2/models/dagmm/versions/" + r.Model().Version, nil, `"platform":"dagmm"`},
		{"reload of a broken file", http.MethodPost, "/v1/model/reload", func() {
			if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, filepath.Base(path)},
		{"reload of a missing file", http.MethodPost, "/v1/model/reload", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, filepath.Base(path) + ": no such file"},
		{"unknown model", http.MethodGet, "/v2/models/other", nil, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			_, body := do(t, tc.method, r.base+tc.path, "", auth...)
			if strings.Contains(string(body), dir) || strings.Contains(string(body), os.TempDir()) {
				t.Errorf("%s %s shows a path of the machine: %s", tc.method, tc.path, body)
			}
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("%s %s: %s, want %s in it", tc.method, tc.path, body, tc.want)
			}
		})
	}
}

func TestHTTPAdminToken(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	open := start(t, httpOnly(path))
	cfg := httpOnly(path)
	cfg.HTTP.AdminToken = "s3cret"
	guarded := start(t, cfg)
	for _, tc := range []struct {
		name   string
		r      *running
		header []string
		code   int
		want   string
	}{
		{"no token configured", open, nil, http.StatusForbidden, "--admin-token"},
		{"no token configured, one sent", open, []string{"Authorization", "Bearer s3cret"}, http.StatusForbidden, "DAGMM_ADMIN_TOKEN"},
		{"no header", guarded, nil, http.StatusUnauthorized, "Authorization: Bearer TOKEN"},
		{"wrong token", guarded, []string{"Authorization", "Bearer wrong"}, http.StatusUnauthorized, "admin token"},
		{"token prefix", guarded, []string{"Authorization", "Bearer s3cre"}, http.StatusUnauthorized, "admin token"},
		{"token and more", guarded, []string{"Authorization", "Bearer s3cret2"}, http.StatusUnauthorized, "admin token"},
		{"no scheme", guarded, []string{"Authorization", "s3cret"}, http.StatusUnauthorized, "admin token"},
		{"basic scheme", guarded, []string{"Authorization", "Basic s3cret"}, http.StatusUnauthorized, "admin token"},
		{"empty token", guarded, []string{"Authorization", "Bearer "}, http.StatusUnauthorized, "admin token"},
		{"bearer", guarded, []string{"Authorization", "Bearer s3cret"}, http.StatusOK, `"changed":false`},
		{"lower-case bearer", guarded, []string{"Authorization", "bearer s3cret"}, http.StatusOK, `"changed":false`},
		{"upper-case bearer", guarded, []string{"Authorization", "BEARER s3cret"}, http.StatusOK, `"changed":false`},
		{"two spaces", guarded, []string{"Authorization", "Bearer  s3cret"}, http.StatusOK, `"changed":false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := tc.r.post(t, "/v1/model/reload", "", tc.header...)
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d %s, want %d with %q", code, body, tc.code, tc.want)
			}
			if code != http.StatusOK {
				var e APIError
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("error body %s is not a JSON error: %v", body, err)
				}
			}
		})
	}
}

func TestHTTPReload(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeModel(t, dir, 1)
	cfg := httpOnly(path)
	cfg.HTTP.AdminToken = "s3cret"
	r := start(t, cfg)
	v1 := r.Model().Version

	auth := []string{"Authorization", "Bearer s3cret"}
	reload := func() ReloadResponse {
		t.Helper()
		code, body := r.post(t, "/v1/model/reload", "", auth...)
		var resp ReloadResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("%d %s: %v", code, body, err)
		}
		if (code == 200) != (resp.Error == "") {
			t.Errorf("status %d with error %q", code, resp.Error)
		}
		return resp
	}
	if resp := reload(); resp.Changed || resp.Version != v1 {
		t.Errorf("reload of the same file: %+v", resp)
	}
	// A new model is swapped in.
	m2 := writeModelTo(t, path, 2)
	resp := reload()
	if !resp.Changed || resp.Previous != v1 || resp.Version == v1 || r.Model().Version != resp.Version {
		t.Errorf("reload of a new model: %+v, serving %s", resp, r.Model().Version)
	}
	v2 := resp.Version
	// A bad file is refused and the model keeps serving.
	for _, bad := range []string{"", "{\"format\":\"dagmm-model\"", "not a model"} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		resp := reload()
		if resp.Changed || resp.Version != v2 || resp.Error == "" {
			t.Errorf("reload of %q: %+v", bad, resp)
		}
		code, body := r.post(t, "/v1/score", sampleJSON("h", time.Now(), m2.Features, []float64{1, 2, 3, 4}))
		if code != 200 || !strings.Contains(string(body), v2) {
			t.Errorf("scoring after a refused reload: %d %s", code, body)
		}
	}
	if got := counterValue(t, r.Registry(), "dagmm_model_reloads_total", map[string]string{"result": "failed"}); got != 3 {
		t.Errorf("failed reloads %v, want 3", got)
	}
	if got := gaugeValue(t, r.Registry(), "dagmm_model_last_reload_successful", nil); got != 0 {
		t.Errorf("last reload successful %v, want 0", got)
	}
}

// writeModelTo saves the test model of the given seed at path.
func writeModelTo(t testing.TB, path string, seed uint64) *model.Model {
	t.Helper()
	_, m := writeModel(t, t.TempDir(), seed)
	saveModelAt(t, path, m)
	return m
}

func TestHTTPInfiniteEnergy(t *testing.T) {
	// A sample far beyond float64 in normalised space scores +Inf or is
	// refused; either way the answer is valid JSON and not a 500.
	path, m := writeModel(t, t.TempDir(), 1)
	r := start(t, httpOnly(path))
	x := []float64{1e300, -1e300, 1e300, 1e300}
	code, body := r.post(t, "/v1/score", sampleJSON("h", time.Now(), m.Features, x))
	if code >= 500 || !json.Valid(body) {
		t.Fatalf("status %d: %s", code, body)
	}
	if code == 200 {
		var resp ScoreResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if e := float64(resp.Results[0].Energy); !math.IsInf(e, 1) && e < m.Calibration.Threshold {
			t.Errorf("energy %v for an extreme sample", e)
		}
	}
}
