package check

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDashboardIsShipped: Helm reads no file outside the chart, so the
// chart holds a copy of the canonical dashboard, deploy/grafana/dashboard.json
// (whose tests check it against the series dagmm exports); the copy must
// not drift from it.
func TestDashboardIsShipped(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := os.ReadFile(filepath.Join(chartDir, "..", "..", "deploy", "grafana", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(chart) != string(canonical) {
		t.Error("charts/dagmm/files/dashboard.json differs from deploy/grafana/dashboard.json: copy the canonical dashboard into the chart")
	}
}
