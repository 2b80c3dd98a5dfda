package serve

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/dagmm/dagmm/internal/natstest"
)

// metricValue returns the value of the series of name with the given
// labels (a subset match), failing when there is none.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return nil
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metricValue(t, reg, name, labels).GetCounter().GetValue()
}

func gaugeValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return metricValue(t, reg, name, labels).GetGauge().GetValue()
}

func TestMetrics(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	reg := prometheus.NewRegistry()
	r := start(t, testConfig(path), WithRegistry(reg))
	normal, anomalies := testData(t, m, 5, 2, 3)
	x := append(append([]float64{}, normal...), anomalies...)
	if code, body := r.post(t, "/v1/score", batchJSON("h", time.Now(), m.Features, x)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	r.post(t, "/v1/score", "{")
	nc := natstest.Connect(t, r.NATSURL())
	dl := collect(t, nc, "dagmm.deadletter")
	an := collect(t, nc, "anomalies.>")
	if err := nc.Publish("metrics.h", []byte(batchJSON("h", time.Now(), m.Features, x))); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("metrics.h", []byte("oops")); err != nil {
		t.Fatal(err)
	}
	dl.wait(t, 1, 5*time.Second)
	an.wait(t, 2, 5*time.Second)

	// Lint: names, units, help.
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "dagmm_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dagmm_samples_scored_total", map[string]string{"source": "http"}, 7},
		{"dagmm_anomalies_total", map[string]string{"source": "http"}, 2},
		{"dagmm_samples_scored_total", map[string]string{"source": "nats"}, 7},
		{"dagmm_anomalies_total", map[string]string{"source": "nats"}, 2},
		{"dagmm_dead_letters_total", map[string]string{"reason": "decode"}, 1},
		{"dagmm_nats_messages_total", map[string]string{"result": "dead_letter"}, 1},
		{"dagmm_nats_messages_total", map[string]string{"result": "scored"}, 1},
		{"dagmm_http_requests_total", map[string]string{"handler": "/v1/score", "code": "200"}, 1},
		{"dagmm_http_requests_total", map[string]string{"handler": "/v1/score", "code": "400"}, 1},
	} {
		if got := counterValue(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := gaugeValue(t, reg, "dagmm_model_info", map[string]string{"version": r.Model().Version, "name": "dagmm"}); got != 1 {
		t.Errorf("dagmm_model_info = %v", got)
	}
	if got := gaugeValue(t, reg, "dagmm_model_threshold", nil); got != m.Calibration.Threshold {
		t.Errorf("dagmm_model_threshold = %v, want %v", got, m.Calibration.Threshold)
	}
	if got := gaugeValue(t, reg, "dagmm_ready", nil); got != 1 {
		t.Errorf("dagmm_ready = %v", got)
	}
	if h := metricValue(t, reg, "dagmm_http_request_duration_seconds", map[string]string{"handler": "/v1/score"}).GetHistogram(); h.GetSampleCount() != 2 {
		t.Errorf("request duration count %d, want 2", h.GetSampleCount())
	}
	// The endpoint serves the same registry, with the process collector.
	code, body := r.get(t, "/metrics")
	if code != 200 || !strings.Contains(string(body), "dagmm_samples_scored_total{source=\"http\"} 7") ||
		!strings.Contains(string(body), "process_resident_memory_bytes") {
		t.Errorf("GET /metrics: %d\n%s", code, body)
	}
}

func TestMetricsLint(t *testing.T) {
	// Every metric of a fresh service passes promlint.
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.httpRequests.WithLabelValues("/v1/score", "200").Inc()
	m.httpDuration.WithLabelValues("/v1/score").Observe(0.001)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 15 {
		t.Errorf("%d series (%v), want ≥ 15", n, err)
	}
	if ps, err := testutil.CollectAndLint(m.samples); err != nil || len(ps) > 0 {
		t.Errorf("CollectAndLint: %v %v", ps, err)
	}
}
