package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// TestScoreConstantFeatures: a model with features that were constant in
// training accepts samples that carry them, or not, over HTTP and NATS; a
// sample whose constant feature moved is an anomaly whose explanation names
// it first.
func TestScoreConstantFeatures(t *testing.T) {
	m := modeltest.Metrics4(1)
	m.Constant = []model.ConstantFeature{{Name: "fan_fail", Value: 0}, {Name: "raid_errors", Value: 0}, {Name: "cores", Value: 8}}
	path := filepath.Join(t.TempDir(), "model.json")
	saveModelAt(t, path, m)
	srv := runNATS(t)
	cfg := testConfig(path)
	cfg.NATS.URL = srv.ClientURL()
	r := start(t, cfg)
	normal, _ := testData(t, m, 1, 0, 3)

	sample := func(extra string) string {
		s := sampleJSON("web-1", time.Unix(1795514400, 0), m.Features, normal)
		if extra == "" {
			return s
		}
		return strings.TrimSuffix(s, "}}") + "," + extra + "}}"
	}
	for _, tc := range []struct {
		name    string
		extra   string
		anomaly bool
		first   string  // first feature of the explanation, when anomaly
		actual  float64 // its actual value
	}{
		{"without the constant features", "", false, "", 0},
		{"at their training values", `"fan_fail":0,"raid_errors":0,"cores":8`, false, "", 0},
		{"one of them only", `"cores":8`, false, "", 0},
		{"raid_errors moved", `"fan_fail":0,"raid_errors":3,"cores":8`, true, "raid_errors", 3},
		{"cores moved, others absent", `"cores":16`, true, "cores", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := r.post(t, "/v1/score", sample(tc.extra))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var resp ScoreResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Results) != 1 {
				t.Fatalf("%d results", len(resp.Results))
			}
			ev := resp.Results[0]
			if ev.Anomaly != tc.anomaly {
				t.Fatalf("anomaly %v, want %v: %s", ev.Anomaly, tc.anomaly, body)
			}
			if !tc.anomaly {
				return
			}
			if ev.Severity <= model.SeverityNormal || len(ev.Explanation) == 0 {
				t.Fatalf("severity %v, explanation %v", ev.Severity, ev.Explanation)
			}
			top := ev.Explanation[0]
			if top.Feature != tc.first || float64(top.Actual) != tc.actual || top.Share != 1 {
				t.Errorf("top of explanation %+v, want %s actual %v share 1", top, tc.first, tc.actual)
			}
		})
	}

	code, body := r.post(t, "/v1/score", sample(`"fan_fail":"x"`))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "fan_fail") {
		t.Errorf("a text value of a constant feature: status %d, %s; want 400 naming it", code, body)
	}
	code, body = r.post(t, "/v1/score", sample(`"no_such":1`))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "no_such") {
		t.Errorf("an unknown name: status %d, %s; want 400 naming it", code, body)
	}

	var info ModelInfo
	if code, body := r.get(t, "/v1/model"); code != http.StatusOK || json.Unmarshal(body, &info) != nil || len(info.Constant) != 3 {
		t.Errorf("GET /v1/model: status %d, constant %v; want the three constant features", code, info.Constant)
	}

	nc := natstest.Connect(t, srv.ClientURL())
	events := collect(t, nc, "anomalies.>")
	for i, extra := range []string{`"raid_errors":0`, `"raid_errors":5`} {
		msg := strings.Replace(sample(extra), `"host":"web-1"`, fmt.Sprintf(`"host":"db-%d"`, i), 1)
		if err := nc.Publish("metrics.db", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	got := events.wait(t, 1, 10*time.Second)
	ev := decodeEvent(t, got[0].Data)
	if ev.Host != "db-1" || len(ev.Explanation) == 0 || ev.Explanation[0].Feature != "raid_errors" {
		t.Errorf("NATS event %+v, want host db-1 with raid_errors first", ev)
	}
	if extra := events.quiet(300 * time.Millisecond); len(extra) != 0 {
		t.Errorf("%d more events; the sample at the training constant is not an anomaly", len(extra))
	}
}
