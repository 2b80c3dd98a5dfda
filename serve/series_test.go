package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// windowModel writes a model that scores over a window of w of each host's
// samples.
func windowModel(t *testing.T, w int) (string, *model.Model) {
	t.Helper()
	m := modeltest.Metrics4(1)
	m.Window = w
	path := filepath.Join(t.TempDir(), "window.json")
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path, m
}

// wantWindowScores returns the score of each of the rows of x that the
// hosts give, as model.WindowScores computes them host by host.
func wantWindowScores(t *testing.T, m *model.Model, x []float64, hosts []string) []float64 {
	t.Helper()
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	d := len(m.Features)
	byHost := map[string][]int{}
	var order []string
	for i, h := range hosts {
		if _, ok := byHost[h]; !ok {
			order = append(order, h)
		}
		byHost[h] = append(byHost[h], i)
	}
	want := make([]float64, len(hosts))
	for _, h := range order {
		rows := byHost[h]
		energies := make([]float64, len(rows))
		for k, i := range rows {
			r, err := s.Score(x[i*d : (i+1)*d])
			if err != nil {
				t.Fatal(err)
			}
			energies[k] = r.Energy
		}
		for k, sc := range model.WindowScores(energies, m.Window, m.WindowLimit()) {
			want[rows[k]] = sc
		}
	}
	return want
}

// TestWindowHTTP: a model with a window scores each host's samples over
// that host's last samples, across requests, and a sample without a host
// alone.
func TestWindowHTTP(t *testing.T) {
	path, m := windowModel(t, 4)
	r := start(t, httpOnly(path))
	normal, anomalies := testData(t, m, 12, 2, 5)
	d := len(m.Features)
	x := append(append([]float64{}, normal...), anomalies...)
	hosts := make([]string, len(x)/d)
	for i := range hosts {
		hosts[i] = []string{"a", "b", "a", "c"}[i%4]
	}
	want := wantWindowScores(t, m, x, hosts)
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var got []Event
	for lo := 0; lo < len(hosts); lo += 5 { // several requests: the window spans them
		var parts []string
		for i := lo; i < min(lo+5, len(hosts)); i++ {
			parts = append(parts, sampleJSON(hosts[i], ts.Add(time.Duration(i)*time.Minute), m.Features, x[i*d:(i+1)*d]))
		}
		code, body := r.post(t, "/v1/score?explain=none", "["+strings.Join(parts, ",")+"]")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var resp ScoreResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Results...)
	}
	for i, e := range got {
		if !scalar.EqualWithinAbsOrRel(float64(e.Score), want[i], 1e-9, 1e-9) {
			t.Errorf("sample %d (host %s): score %v, want %v", i, hosts[i], e.Score, want[i])
		}
		if e.Anomaly != (want[i] > m.Calibration.Threshold) {
			t.Errorf("sample %d: anomaly %v with score %v, threshold %v", i, e.Anomaly, want[i], m.Calibration.Threshold)
		}
		if float64(e.Score) < float64(e.Energy) {
			t.Errorf("sample %d: score %v below its energy %v", i, e.Score, e.Energy)
		}
	}
	// Without a host, a sample is scored alone: its score is its energy.
	code, body := r.post(t, "/v1/score", sampleJSON("", ts, m.Features, normal[:d]))
	var resp ScoreResponse
	if err := json.Unmarshal(body, &resp); code != http.StatusOK || err != nil {
		t.Fatalf("status %d, %v: %s", code, err, body)
	}
	if e := resp.Results[0]; e.Score != e.Energy {
		t.Errorf("sample without a host: score %v, energy %v", e.Score, e.Energy)
	}
}

// TestWindowNATS: over NATS the host comes from the sample or else from the
// subject, and each host's scores follow its own window.
func TestWindowNATS(t *testing.T) {
	srv := runNATS(t)
	path, m := windowModel(t, 3)
	cfg := testConfig(path)
	cfg.NATS.URL = srv.ClientURL()
	cfg.NATS.PublishScores = true
	cfg.Scoring.Workers = 1 // one worker: samples are scored in the order sent
	start(t, cfg)
	nc := natstest.Connect(t, srv.ClientURL())
	scores := collect(t, nc, "scores.>")
	normal, anomalies := testData(t, m, 10, 2, 9)
	d := len(m.Features)
	x := append(append([]float64{}, normal...), anomalies...)
	n := len(x) / d
	hosts := make([]string, n)
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range n {
		hosts[i] = []string{"x", "y"}[i%2]
		host := hosts[i]
		if host == "y" {
			host = "" // from the subject
		}
		if err := nc.Publish("metrics."+hosts[i], []byte(sampleJSON(host, ts.Add(time.Duration(i)*time.Minute), m.Features, x[i*d:(i+1)*d]))); err != nil {
			t.Fatal(err)
		}
	}
	want := wantWindowScores(t, m, x, hosts)
	got := map[string]Event{}
	for _, msg := range scores.wait(t, n, 10*time.Second) {
		e := decodeEvent(t, msg.Data)
		got[fmt.Sprintf("%s %d", e.Host, int(e.TS.Sub(ts)/time.Minute))] = e
	}
	for i := range n {
		e, ok := got[fmt.Sprintf("%s %d", hosts[i], i)]
		if !ok {
			t.Fatalf("no score for sample %d of host %s", i, hosts[i])
		}
		if !scalar.EqualWithinAbsOrRel(float64(e.Score), want[i], 1e-9, 1e-9) {
			t.Errorf("sample %d (host %s): score %v, want %v", i, hosts[i], e.Score, want[i])
		}
	}
}

// TestRecentHTTP: a model of more than five features explains a host's
// samples with the host's recent samples (model.MethodRecent) once it has
// one, as the model does locally, across requests; a sample without a host
// gets the one-sample default.
func TestRecentHTTP(t *testing.T) {
	m := modeltest.NewRandom(modeltest.Names("m", 8), []int{6, 2}, []int{4}, 2, 3)
	path := filepath.Join(t.TempDir(), "wide.json")
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
	r := start(t, httpOnly(path))
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	d := len(m.Features)
	x := modeltest.Inputs(m, 12, 4)
	ws := s.NewWorkspace(1)
	rec := s.NewRecent(0)
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for lo := 0; lo < 12; lo += 4 {
		var parts []string
		for i := lo; i < lo+4; i++ {
			parts = append(parts, sampleJSON("db-1", ts.Add(time.Duration(i)*time.Minute), m.Features, x[i*d:(i+1)*d]))
		}
		code, body := r.post(t, "/v1/score?explain=all", "["+strings.Join(parts, ",")+"]")
		var resp ScoreResponse
		if err := json.Unmarshal(body, &resp); code != http.StatusOK || err != nil {
			t.Fatalf("status %d, %v: %s", code, err, body)
		}
		for k, got := range resp.Results {
			i := lo + k
			out := make([]model.Result, 1)
			if err := s.ScoreBatch(ws, x[i*d:(i+1)*d], out); err != nil {
				t.Fatal(err)
			}
			var want model.Explanation
			if err := s.ExplainSeries(ws, 0, rec, "", &want); err != nil {
				t.Fatal(err)
			}
			if err := rec.Add(ws, 0); err != nil {
				t.Fatal(err)
			}
			if i > 0 && want.Method != model.MethodRecent {
				t.Fatalf("sample %d: the model explains with %s locally, want recent", i, want.Method)
			}
			if got.ExplanationMethod != want.Method.String() {
				t.Errorf("sample %d: explained with %q, want %q", i, got.ExplanationMethod, want.Method)
				continue
			}
			for j, c := range got.Explanation {
				if c.Feature != m.Features[want.Features[j].Index] {
					t.Errorf("sample %d: rank %d is %s, want %s", i, j, c.Feature, m.Features[want.Features[j].Index])
				}
			}
		}
	}
	code, body := r.post(t, "/v1/score?explain=all", sampleJSON("", ts, m.Features, x[:d]))
	var resp ScoreResponse
	if err := json.Unmarshal(body, &resp); code != http.StatusOK || err != nil {
		t.Fatalf("status %d, %v: %s", code, err, body)
	}
	if got, want := resp.Results[0].ExplanationMethod, s.DefaultMethod().String(); got != want {
		t.Errorf("sample without a host: explained with %q, want %q", got, want)
	}
}
