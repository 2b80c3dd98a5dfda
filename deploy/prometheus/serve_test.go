package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/dashpic"
	"github.com/dagmm/dagmm/internal/promtest"
	"github.com/dagmm/dagmm/serve"
)

// TestAlertsOnServe: a real Prometheus scraping a real dagmm serve, with
// alerts.yaml loaded, fires DagmmAnomalyHigh for the host whose latest
// sample is a high anomaly, with the explanation serve gave in its
// annotations, and drops it once the host's next sample is normal.
func TestAlertsOnServe(t *testing.T) {
	promtest.Require(t, promtest.PrometheusBinary)
	ctx := context.Background()
	s := dashpic.StartTest(t, filepath.Join("..", "..", "model", "testdata", "metrics4.dagmm.json"), nil)
	rules, err := filepath.Abs("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := promtest.Start(t, promtest.Options{Targets: []string{strings.TrimPrefix(s.URL, "http://")}, RuleFiles: []string{rules}})

	// The picture's scenario up to web-2's pegged CPU (steps 58 to 60).
	sc := dashpic.DefaultScenario()
	steps, err := sc.Samples()
	if err != nil {
		t.Fatal(err)
	}
	score := func(k int) serve.Event {
		t.Helper()
		body, _ := json.Marshal(steps[k])
		out, err := s.Score(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		var resp serve.ScoreResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			if r.Host == "web-2" {
				return r
			}
		}
		t.Fatalf("step %d: no result for web-2", k)
		return serve.Event{}
	}
	var last serve.Event
	for k := range 60 {
		last = score(k)
	}
	if !last.Anomaly || last.Severity <= 75 || len(last.Explanation) == 0 {
		t.Fatalf("web-2's sample at step 59 is not a high anomaly: %+v", last)
	}
	top := last.Explanation[0]
	firing := func() (*promtest.Alert, error) {
		alerts, err := p.Alerts()
		if err != nil {
			return nil, err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "DagmmAnomalyHigh" && a.State == "firing" {
				return &a, nil
			}
		}
		return nil, nil
	}
	a := waitFor(t, 20*time.Second, func() (*promtest.Alert, error) { return firing() })
	if a.Labels["host"] != "web-2" || a.Labels["severity"] != "critical" {
		t.Errorf("alert labels %v, want host web-2, severity critical", a.Labels)
	}
	if got := a.Annotations["top_feature"]; got != top.Feature {
		t.Errorf("top_feature %q, want %q (serve's explanation)", got, top.Feature)
	}
	if got, want := a.Annotations["top_share"], fmt.Sprintf("%.4g%%", 100*float64(top.Share)); got != want {
		t.Errorf("top_share %q, want %q", got, want)
	}
	if want := fmt.Sprintf("severity %.0f", last.Severity); !strings.Contains(a.Annotations["description"], want) {
		t.Errorf("description %q lacks %q", a.Annotations["description"], want)
	}

	// web-2 back to normal: the alert goes.
	if next := score(61); next.Anomaly {
		t.Fatalf("web-2's sample at step 61 is an anomaly: %+v", next)
	}
	waitFor(t, 20*time.Second, func() (bool, error) {
		a, err := firing()
		return a == nil && err == nil, err
	})
}

// waitFor calls f until it returns a non-zero value, and returns that
// value; it fails t after timeout.
func waitFor[T comparable](t *testing.T, timeout time.Duration, f func() (T, error)) T {
	t.Helper()
	var zero T
	deadline := time.Now().Add(timeout)
	for {
		v, err := f()
		if v != zero {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("not after %v (%v)", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
