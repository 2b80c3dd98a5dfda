// Package prometheus holds the Prometheus files shipped with dagmm; its
// tests check them with promtool and against the Go mapping they come from.
package prometheus

import (
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets/prom"
	"github.com/dagmm/dagmm/internal/promtest"
	"github.com/dagmm/dagmm/serve/ingest"
)

var update = flag.Bool("update", false, "rewrite rules.yaml from datasets/prom.NodeExporter")

// TestRecordingRulesGenerated: rules.yaml is what dagmm prom rules prints,
// so the recording rules and dagmm prom pull share their expressions.
func TestRecordingRulesGenerated(t *testing.T) {
	want := prom.RecordingRules(prom.NodeExporter("", 0))
	if *update {
		if err := os.WriteFile("rules.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("rules.yaml differs from prom.RecordingRules(prom.NodeExporter(...)); run go test ./deploy/prometheus -update\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestRemoteWriteKeepsTheFeatures: the example's write_relabel_configs keep
// exactly the recorded features.
func TestRemoteWriteKeepsTheFeatures(t *testing.T) {
	cfg, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range prom.NodeExporter("", 0) {
		names = append(names, f.Name)
	}
	keep := "regex: '" + strings.TrimSuffix(prom.RecordPrefix, ":") + ":(" + strings.Join(names, "|") + ")'"
	if !strings.Contains(string(cfg), keep) {
		t.Errorf("prometheus.yml lacks the relabelling %s", keep)
	}
}

// TestOneNaming: the pull side (datasets/prom), the remote write side
// (serve/ingest) and the test harness name the series and the host label
// alike.
func TestOneNaming(t *testing.T) {
	if prom.RecordPrefix != ingest.PrometheusRecordPrefix || prom.DefaultHostLabel != ingest.PrometheusHostLabel {
		t.Errorf("prom %q/%q, ingest %q/%q", prom.RecordPrefix, prom.DefaultHostLabel, ingest.PrometheusRecordPrefix, ingest.PrometheusHostLabel)
	}
	cfg, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range prom.NodeExporter("", 0) {
		names = append(names, f.Name)
	}
	for _, f := range ingest.PrometheusConfig(names, 0).Features {
		if !strings.Contains(string(cfg), strings.TrimPrefix(f.Measurement, ingest.PrometheusRecordPrefix)) {
			t.Errorf("prometheus.yml does not send %s", f.Measurement)
		}
	}
	for _, line := range strings.Split(promtest.RemoteWriteFeatures("http://x"), "\n") {
		if strings.Contains(line, "regex:") && !strings.Contains(string(cfg), strings.TrimSpace(line)) {
			t.Errorf("promtest's relabelling %q differs from prometheus.yml's", strings.TrimSpace(line))
		}
	}
}

func TestPromtool(t *testing.T) {
	tests := [][]string{
		{"check", "rules", "rules.yaml", "alerts.yaml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yaml"},
	}
	for _, args := range tests {
		out, err := promtest.Promtool(t, args...)
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Skip("amtool is not installed (apt-get install -y prometheus-alertmanager)")
	}
	if out, err := exec.Command(amtool, "check-config", "alertmanager.yml").CombinedOutput(); err != nil {
		t.Errorf("amtool check-config alertmanager.yml: %v\n%s", err, out)
	}
}
