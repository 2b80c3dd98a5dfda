package ingest

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/promtest"
)

// TestRemoteWriteFromPrometheus decodes what a real Prometheus sends with
// the shipped recording rules and relabelling, and assembles it into
// four-feature vectors of the node_exporter's host; once node_exporter
// stops, Prometheus's stale markers come out as ends of series.
func TestRemoteWriteFromPrometheus(t *testing.T) {
	node, stopNode := promtest.StartNodeExporterStop(t)
	capture := promtest.CaptureRemoteWrite(t)
	rules, err := filepath.Abs("../../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	promtest.Start(t, promtest.Options{
		Targets:     []string{node},
		RuleFiles:   []string{rules},
		RemoteWrite: promtest.RemoteWriteFeatures(capture.URL),
	})
	names := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	a, err := NewAssembler(PrometheusConfig(names, promtest.Interval), names)
	if err != nil {
		t.Fatal(err)
	}
	var d RemoteWriteDecoder
	var vectors []Vector
	var header http.Header
	deadline := time.Now().Add(30 * time.Second)
	for len(vectors) < 3 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		var bodies [][]byte
		bodies, header = capture.Take()
		for _, b := range bodies {
			w, err := d.Decode(b)
			if err != nil {
				t.Fatalf("decode a body from Prometheus: %v", err)
			}
			for _, m := range w.Samples {
				if _, ok := a.byName[m.Name]; !ok {
					t.Fatalf("relabelling let %s through", m.Name)
				}
			}
			vs, err := a.AddRemoteWrite(w, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			vectors = append(vectors, vs...)
		}
		vectors = append(vectors, a.Flush(time.Now())...)
	}
	if len(vectors) < 3 {
		t.Fatalf("%d vectors in 30s, want 3 or more; stats %+v", len(vectors), a.Stats())
	}
	for _, v := range vectors {
		if v.Host != node || len(v.Values) != 4 {
			t.Errorf("vector %+v: want host %s and 4 values", v, node)
		}
	}
	if got := header.Get("Content-Encoding"); got != "snappy" {
		t.Errorf("Content-Encoding %q", got)
	}
	if got := header.Get("X-Prometheus-Remote-Write-Version"); got != "0.1.0" {
		t.Errorf("X-Prometheus-Remote-Write-Version %q", got)
	}

	// mem_usage is an instant expression: its recorded series goes stale
	// at the first evaluation after the scrape fails (the rate() features
	// follow when their 1m window empties).
	stopNode()
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		bodies, _ := capture.Take()
		for _, b := range bodies {
			w, err := d.Decode(b)
			if err != nil {
				t.Fatalf("decode a body from Prometheus: %v", err)
			}
			for _, e := range w.Ends {
				if h, _ := e.Tag("instance"); e.Name == "dagmm:mem_usage" && h == node {
					return
				}
			}
		}
	}
	t.Fatal("no stale marker for dagmm:mem_usage in 20s after node_exporter stopped")
}
