package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// clock is a settable time for the host gauges.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// hostNames returns the hosts with a dagmm_host_energy series in reg.
func hostNames(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, mf := range mfs {
		if mf.GetName() != "dagmm_host_energy" {
			continue
		}
		for _, m := range mf.GetMetric() {
			hosts = append(hosts, m.GetLabel()[0].GetValue())
		}
	}
	slices.Sort(hosts)
	return hosts
}

func TestHostGaugesCapAndExpiry(t *testing.T) {
	// Each step advances the clock, scores hosts, and says which hosts
	// have series then, and the dropped samples and expired hosts so far.
	type step struct {
		advance          time.Duration
		score            []string
		hosts            []string
		dropped, expired float64
	}
	const ttl = 10 * time.Minute
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
	}{
		{"under the cap", 3, []step{
			{0, []string{"a", "b"}, []string{"a", "b"}, 0, 0},
			{time.Minute, []string{"a", "c"}, []string{"a", "b", "c"}, 0, 0},
		}},
		{"refused at the cap, counted per sample", 2, []step{
			{0, []string{"a", "b"}, []string{"a", "b"}, 0, 0},
			{time.Second, []string{"c", "c", "a"}, []string{"a", "b"}, 2, 0},
		}},
		{"expiry is exact", 3, []step{
			{0, []string{"a", "b"}, []string{"a", "b"}, 0, 0},
			{time.Minute, []string{"b"}, []string{"a", "b"}, 0, 0},
			{ttl - time.Minute - time.Nanosecond, nil, []string{"a", "b"}, 0, 0},
			{time.Nanosecond, nil, []string{"b"}, 0, 1},
			{time.Minute, nil, nil, 0, 2},
		}},
		{"a new host takes an expired host's place", 2, []step{
			{0, []string{"a"}, []string{"a"}, 0, 0},
			{time.Minute, []string{"b"}, []string{"a", "b"}, 0, 0},
			{ttl - time.Minute, []string{"c"}, []string{"b", "c"}, 0, 1},
			{time.Second, []string{"d"}, []string{"b", "c"}, 1, 1},
		}},
		{"scoring keeps a host", 1, []step{
			{0, []string{"a"}, []string{"a"}, 0, 0},
			{ttl - time.Second, []string{"a"}, []string{"a"}, 0, 0},
			{ttl - time.Second, []string{"b"}, []string{"a"}, 1, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
			g := newHostGauges(tc.max, ttl, c.now)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(g)
			for k, s := range tc.steps {
				c.t = c.t.Add(s.advance)
				var scores []hostScore
				for _, h := range s.score {
					scores = append(scores, hostScore{host: h, score: 1, threshold: 2, severity: 10})
				}
				g.record(scores)
				if got := hostNames(t, reg); !slices.Equal(got, s.hosts) {
					t.Errorf("step %d: hosts %v, want %v", k, got, s.hosts)
				}
				want := fmt.Sprintf(`# HELP dagmm_host_series %s
# TYPE dagmm_host_series gauge
dagmm_host_series %d
# HELP dagmm_host_series_dropped_total %s
# TYPE dagmm_host_series_dropped_total counter
dagmm_host_series_dropped_total %v
# HELP dagmm_host_series_expired_total %s
# TYPE dagmm_host_series_expired_total counter
dagmm_host_series_expired_total %v
`, help(descHostSeries), len(s.hosts), help(descHostDropped), s.dropped, help(descHostExpired), s.expired)
				if err := testutil.CollectAndCompare(g, strings.NewReader(want),
					"dagmm_host_series", "dagmm_host_series_dropped_total", "dagmm_host_series_expired_total"); err != nil {
					t.Errorf("step %d: %v", k, err)
				}
			}
		})
	}
}

// help returns the help text of d.
func help(d *prometheus.Desc) string {
	s := d.String()
	i := strings.Index(s, `help: "`) + len(`help: "`)
	return s[i : i+strings.Index(s[i:], `"`)]
}

func TestHostGaugesValues(t *testing.T) {
	// The latest sample's values; the anomaly counter and the explanation
	// of the latest anomaly, whose series moves when its top feature does.
	c := &clock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	g := newHostGauges(10, time.Minute, c.now)
	for _, tc := range []struct {
		scores []hostScore
		want   string
	}{
		{[]hostScore{{host: "web-1", score: 1.5, threshold: 4, severity: 20}}, `
dagmm_host_energy{host="web-1"} 1.5
dagmm_host_threshold{host="web-1"} 4
dagmm_host_severity{host="web-1"} 20
dagmm_host_anomaly{host="web-1"} 0
dagmm_host_anomalies_total{host="web-1"} 0
`},
		{[]hostScore{
			{host: "web-1", score: 9, threshold: 4, severity: 80, anomaly: true, feature: "cpu_usage", share: 0.75},
			{host: "db-1", score: 2, threshold: 3, severity: 30},
		}, `
dagmm_host_energy{host="db-1"} 2
dagmm_host_energy{host="web-1"} 9
dagmm_host_threshold{host="db-1"} 3
dagmm_host_threshold{host="web-1"} 4
dagmm_host_severity{host="db-1"} 30
dagmm_host_severity{host="web-1"} 80
dagmm_host_anomaly{host="db-1"} 0
dagmm_host_anomaly{host="web-1"} 1
dagmm_host_anomalies_total{host="db-1"} 0
dagmm_host_anomalies_total{host="web-1"} 1
dagmm_host_explanation{feature="cpu_usage",host="web-1"} 0.75
`},
		{[]hostScore{
			{host: "web-1", score: 8, threshold: 4, severity: 70, anomaly: true, feature: "disk_busy", share: 0.5},
			{host: "web-1", score: 1, threshold: 4, severity: 10},
		}, `
dagmm_host_energy{host="db-1"} 2
dagmm_host_energy{host="web-1"} 1
dagmm_host_threshold{host="db-1"} 3
dagmm_host_threshold{host="web-1"} 4
dagmm_host_severity{host="db-1"} 30
dagmm_host_severity{host="web-1"} 10
dagmm_host_anomaly{host="db-1"} 0
dagmm_host_anomaly{host="web-1"} 0
dagmm_host_anomalies_total{host="db-1"} 0
dagmm_host_anomalies_total{host="web-1"} 2
dagmm_host_explanation{feature="disk_busy",host="web-1"} 0.5
`},
	} {
		g.record(tc.scores)
		if err := testutil.CollectAndCompare(g, strings.NewReader(withHelp(tc.want)),
			"dagmm_host_energy", "dagmm_host_threshold", "dagmm_host_severity", "dagmm_host_anomaly",
			"dagmm_host_anomalies_total", "dagmm_host_explanation"); err != nil {
			t.Error(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// withHelp adds the HELP and TYPE lines of the host series to samples in
// the text format.
func withHelp(samples string) string {
	var b strings.Builder
	for _, d := range []struct {
		desc *prometheus.Desc
		name string
		typ  string
	}{
		{descHostEnergy, "dagmm_host_energy", "gauge"},
		{descHostThreshold, "dagmm_host_threshold", "gauge"},
		{descHostSeverity, "dagmm_host_severity", "gauge"},
		{descHostAnomaly, "dagmm_host_anomaly", "gauge"},
		{descHostAnomalies, "dagmm_host_anomalies_total", "counter"},
		{descHostExplain, "dagmm_host_explanation", "gauge"},
	} {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", d.name, help(d.desc), d.name, d.typ)
		for _, line := range strings.Split(samples, "\n") {
			if strings.HasPrefix(line, d.name+"{") {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// expectHosts returns the host series, in the text format, that results
// (the latest result of each host last) must leave.
func expectHosts(results []Event, threshold float64) string {
	type latest struct {
		e         Event
		anomalies int
		top       *FeatureExplanation
	}
	by := map[string]*latest{}
	var hosts []string
	for _, e := range results {
		l := by[e.Host]
		if l == nil {
			l = &latest{}
			by[e.Host] = l
			hosts = append(hosts, e.Host)
		}
		l.e = e
		if e.Anomaly {
			l.anomalies++
			if len(e.Explanation) > 0 {
				l.top = &e.Explanation[0]
			}
		}
	}
	slices.Sort(hosts)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	var b strings.Builder
	for _, h := range hosts {
		l := by[h]
		fmt.Fprintf(&b, "dagmm_host_energy{host=%q} %s\n", h, f(float64(l.e.Energy)))
		fmt.Fprintf(&b, "dagmm_host_threshold{host=%q} %s\n", h, f(threshold))
		fmt.Fprintf(&b, "dagmm_host_severity{host=%q} %s\n", h, f(l.e.Severity))
		fmt.Fprintf(&b, "dagmm_host_anomaly{host=%q} %s\n", h, f(b2f(l.e.Anomaly)))
		fmt.Fprintf(&b, "dagmm_host_anomalies_total{host=%q} %d\n", h, l.anomalies)
		if l.top != nil {
			fmt.Fprintf(&b, "dagmm_host_explanation{feature=%q,host=%q} %s\n", l.top.Feature, h, f(float64(l.top.Share)))
		}
	}
	return b.String()
}

var hostSeriesNames = []string{"dagmm_host_energy", "dagmm_host_threshold", "dagmm_host_severity",
	"dagmm_host_anomaly", "dagmm_host_anomalies_total", "dagmm_host_explanation"}

func TestHostSeriesHTTP(t *testing.T) {
	// Two hosts scored over HTTP: the series hold what the responses say,
	// the explanation the one the response gave (or, with explain=none,
	// the reconstruction error's top share); a KServe v2 request, which
	// names no host, adds no series.
	path, m := writeModel(t, t.TempDir(), 1)
	normal, anomalies := testData(t, m, 4, 2, 7)
	d := len(m.Features)
	ts := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, query string
		explainNone bool
	}{
		{"default explanation", "", false},
		{"gradient explanation", "?method=gradient", false},
		{"explain none", "?explain=none", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, httpOnly(path))
			var results []Event
			for _, body := range []string{
				"[" + sampleJSON("web-1", ts, m.Features, normal[:d]) + "," + sampleJSON("db-1", ts, m.Features, anomalies[:d]) + "]",
				"[" + sampleJSON("web-1", ts.Add(time.Second), m.Features, anomalies[d:2*d]) + "," + sampleJSON("db-1", ts.Add(time.Second), m.Features, normal[d:2*d]) + "]",
				sampleJSON("web-1", ts.Add(2*time.Second), m.Features, anomalies[:d]),
			} {
				code, out := r.post(t, "/v1/score"+tc.query, body)
				if code != http.StatusOK {
					t.Fatalf("%d %s", code, out)
				}
				var resp ScoreResponse
				if err := json.Unmarshal(out, &resp); err != nil {
					t.Fatal(err)
				}
				results = append(results, resp.Results...)
			}
			if tc.explainNone {
				// The reconstruction error's top share: each host's last
				// anomaly is anomalies[:d].
				sc, _ := model.NewScorer(m)
				res, err := sc.Score(anomalies[:d])
				if err != nil {
					t.Fatal(err)
				}
				k := argmax(res.Share)
				for i := range results {
					if results[i].Anomaly {
						results[i].Explanation = []FeatureExplanation{{Feature: m.Features[k], Share: Float(res.Share[k])}}
					}
				}
			}
			if code, out := r.post(t, "/v2/models/dagmm/infer", fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,%d],"datatype":"FP64","data":%s}]}`, d, floatsJSON(anomalies[:d]))); code != http.StatusOK {
				t.Fatalf("infer: %d %s", code, out)
			}
			reg := r.Registry()
			if err := testutil.GatherAndCompare(reg, strings.NewReader(withHelp(expectHosts(results, m.Calibration.Threshold))), hostSeriesNames...); err != nil {
				t.Error(err)
			}
			if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %v", problems, err)
			}
		})
	}
}

func TestHostSeriesNATS(t *testing.T) {
	// Samples over core NATS: the series hold what the events say.
	path, m := writeModel(t, t.TempDir(), 1)
	normal, anomalies := testData(t, m, 3, 1, 11)
	d := len(m.Features)
	cfg := testConfig(path)
	cfg.NATS.PublishScores = true
	r := start(t, cfg)
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	events := collect(t, nc, "anomalies.>")
	ts := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	x := append(append([]float64{}, normal...), anomalies...)
	if err := nc.Publish("metrics.a", []byte(batchJSON("a", ts, m.Features, x))); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("metrics.b", []byte(batchJSON("b", ts, m.Features, normal[:2*d]))); err != nil {
		t.Fatal(err)
	}
	var results []Event
	for _, msg := range scores.wait(t, 6, 5*time.Second) {
		results = append(results, decodeEvent(t, msg.Data))
	}
	ev := decodeEvent(t, events.wait(t, 1, 5*time.Second)[0].Data)
	slices.SortStableFunc(results, func(a, b Event) int { return a.TS.Compare(b.TS) })
	for i := range results {
		if results[i].Anomaly {
			results[i].Explanation = ev.Explanation // scores carry none; the anomaly event does
		}
	}
	if err := testutil.GatherAndCompare(r.Registry(), strings.NewReader(withHelp(expectHosts(results, m.Calibration.Threshold))), hostSeriesNames...); err != nil {
		t.Error(err)
	}
}

func TestHostSeriesOff(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := httpOnly(path)
	cfg.Scoring.HostSeriesMax = -1
	r := start(t, cfg)
	normal, _ := testData(t, m, 1, 1, 3)
	if code, out := r.post(t, "/v1/score", sampleJSON("h", time.Now(), m.Features, normal)); code != http.StatusOK {
		t.Fatalf("%d %s", code, out)
	}
	if n, err := testutil.GatherAndCount(r.Registry(), append(hostSeriesNames, "dagmm_host_series")...); err != nil || n != 0 {
		t.Errorf("%d host series with --host-series-max -1 (%v)", n, err)
	}
}

func floatsJSON(x []float64) string {
	b, _ := json.Marshal(x)
	return string(b)
}

// BenchmarkHostGaugesRecord measures what the host gauges add to scoring:
// one record call a message, of n samples of 100 hosts already exported.
func BenchmarkHostGaugesRecord(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			g := newHostGauges(DefaultHostSeriesMax, DefaultHostSeriesTTL, nil)
			scores := make([]hostScore, n)
			for i := range scores {
				scores[i] = hostScore{host: fmt.Sprintf("h%d", i%100), score: 1, threshold: 2, severity: 3}
			}
			g.record(scores)
			b.ReportAllocs()
			for b.Loop() {
				g.record(scores)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// TestHostGaugesConcurrent: workers record while Prometheus scrapes (run
// with -race); every sample is counted once, exported or dropped.
func TestHostGaugesConcurrent(t *testing.T) {
	g := newHostGauges(50, time.Minute, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	const workers, rounds = 4, 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			scores := make([]hostScore, 30)
			for k := range rounds {
				for i := range scores {
					scores[i] = hostScore{host: fmt.Sprintf("w%d-h%d", w, i), anomaly: k%2 == 0, feature: "f", share: 1}
				}
				g.record(scores)
			}
		})
	}
	wg.Wait()
	<-done
	var total float64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "dagmm_host_anomalies_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	// 50 of the 120 hosts have series, each with every other round an anomaly.
	g.mu.Lock()
	dropped := g.dropped
	g.mu.Unlock()
	if total != 50*rounds/2 || dropped != (workers*30-50)*rounds {
		t.Errorf("%v anomalies counted, %v samples dropped; want %d and %d", total, dropped, 50*rounds/2, (workers*30-50)*rounds)
	}
}
