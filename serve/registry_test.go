package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// fleetEnv is a real embedded JetStream server with a model registry.
type fleetEnv struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *fleet.Registry
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	srv := runNATS(t)
	nc, js := natstest.ConnectJS(t, srv.ClientURL())
	reg, err := fleet.NewRegistry(fleetCtx(t), js, fleet.RegistryConfig{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	return &fleetEnv{srv: srv, nc: nc, js: js, reg: reg}
}

func fleetCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func artifact(t *testing.T, m *model.Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := model.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (e *fleetEnv) publish(t *testing.T, host string, m *model.Model) fleet.ModelInfo {
	t.Helper()
	info, err := e.reg.Publish(fleetCtx(t), host, artifact(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// corrupt replaces the object of the host's version v with another valid
// model, as a bad write to the store would.
func (e *fleetEnv) corrupt(t *testing.T, host string, v uint64, other *model.Model) {
	t.Helper()
	obj, err := e.js.ObjectStore(fleetCtx(t), fleet.DefaultRegistryConfig().Objects)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.PutBytes(fleetCtx(t), fmt.Sprintf("%s/%d", host, v), artifact(t, other)); err != nil {
		t.Fatal(err)
	}
}

// startFleet serves in fleet mode from e's registry; base gives the
// features when the registry has no fleet model.
func (e *fleetEnv) startFleet(t *testing.T, base *model.Model, cache int) (*running, *RegistrySource, *syncBuffer) {
	t.Helper()
	var bl *Loaded
	if base != nil {
		var err error
		if bl, err = LoadArtifact(artifact(t, base), "dagmm", "base"); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	src, err := NewRegistrySource(fleetCtx(t), e.reg, bl, RegistrySourceConfig{CacheSize: cache, NegativeTTL: time.Minute, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	cfg := testConfig("")
	cfg.NATS.URL = e.srv.ClientURL()
	r := start(t, cfg, WithModelSource(src))
	return r, src, logs
}

// hostResult is one result of POST /v1/score.
type hostResult struct {
	Host         string `json:"host"`
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	Anomaly      bool   `json:"anomaly"`
	Learning     bool   `json:"learning"`
}

// scoreOne scores x for host over HTTP.
func scoreOne(t *testing.T, r *running, host string, x []float64) hostResult {
	t.Helper()
	code, body := r.post(t, "/v1/score", sampleJSON(host, time.Now(), modeltest.Metrics4Features, x))
	if code != http.StatusOK {
		t.Fatalf("score %s: %d %s", host, code, body)
	}
	var resp struct{ Results []hostResult }
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Results) != 1 {
		t.Fatalf("score %s: %v: %s", host, err, body)
	}
	return resp.Results[0]
}

// hostModel trains a small four-metric model of a host whose metrics are
// normal around mean, correlated (the second follows the first): hosts
// with different means have different normals. A few epochs suffice.
func hostModel(t *testing.T, seed uint64, mean float64) *model.Model {
	t.Helper()
	const n = 600
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float64, 0, n*4)
	for range n {
		a := rng.NormFloat64()
		x = append(x, mean+a, mean+2*a+0.3*rng.NormFloat64(), 0.5*mean+rng.NormFloat64(), 100+mean+5*rng.NormFloat64())
	}
	cfg := train.DefaultConfig()
	cfg.Epochs, cfg.Window, cfg.Seed, cfg.Normalization, cfg.Dropout = 30, 1, seed, train.NormZScore, 0
	m, _, err := train.Train(context.Background(), modeltest.Metrics4Features, x, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// crossSample finds a sample that a flags and b finds normal: an anomaly
// on a's host that would be normal on b's.
func crossSample(t *testing.T, a, b *model.Model, seed uint64) []float64 {
	t.Helper()
	sa, err := model.NewScorer(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := model.NewScorer(b)
	if err != nil {
		t.Fatal(err)
	}
	normal, _ := testData(t, b, 500, 0, seed)
	d := len(b.Features)
	for i := 0; i*d < len(normal); i++ {
		x := normal[i*d : (i+1)*d]
		ra, err1 := sa.Score(x)
		rb, err2 := sb.Score(x)
		if err1 == nil && err2 == nil && ra.Anomaly && !rb.Anomaly {
			return x
		}
	}
	t.Fatal("no sample normal for b and anomalous for a")
	return nil
}

func TestFleetScoresEachHostWithItsModel(t *testing.T) {
	e := newFleetEnv(t)
	ma, mb := hostModel(t, 11, 0), hostModel(t, 22, 10)
	e.publish(t, "web-1", ma)
	e.publish(t, "db-1", mb)
	r, _, _ := e.startFleet(t, modeltest.Metrics4(33), 8)

	forA := crossSample(t, ma, mb, 1) // anomalous on web-1, normal on db-1
	forB := crossSample(t, mb, ma, 2) // anomalous on db-1, normal on web-1
	for _, tc := range []struct {
		host    string
		x       []float64
		anomaly bool
	}{
		{"web-1", forA, true},
		{"db-1", forA, false},
		{"db-1", forB, true},
		{"web-1", forB, false},
	} {
		got := scoreOne(t, r, tc.host, tc.x)
		if got.Anomaly != tc.anomaly || got.Model != tc.host || got.ModelVersion != "1" {
			t.Errorf("%s: got %+v, want anomaly %v by model %s version 1", tc.host, got, tc.anomaly, tc.host)
		}
	}

	// Over NATS too: the event names the host's model and version.
	anoms := collect(t, e.nc, "anomalies.>")
	if err := e.nc.Publish("metrics.web-1", []byte(sampleJSON("web-1", time.Now(), modeltest.Metrics4Features, forA))); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Publish("metrics.db-1", []byte(sampleJSON("db-1", time.Now(), modeltest.Metrics4Features, forA))); err != nil {
		t.Fatal(err)
	}
	msgs := anoms.wait(t, 1, 10*time.Second)
	if ev := decodeEvent(t, msgs[0].Data); ev.Host != "web-1" || ev.Model != "web-1" || ev.ModelVersion != "1" {
		t.Errorf("event %+v, want host web-1 scored by model web-1 version 1", ev)
	}
	if more := anoms.quiet(300 * time.Millisecond); len(more) != 0 {
		t.Errorf("db-1 raised %d anomalies for a sample normal on its host", len(more))
	}
}

func TestFleetHostWithoutModel(t *testing.T) {
	e := newFleetEnv(t)
	ma, mf := hostModel(t, 11, 0), hostModel(t, 44, 5)
	e.publish(t, "web-1", ma)

	t.Run("learning", func(t *testing.T) {
		r, _, _ := e.startFleet(t, modeltest.Metrics4(33), 8)
		x := modeltest.Inputs(ma, 1, 5)
		for range 3 {
			if got := scoreOne(t, r, "new-host", x); !got.Learning || got.Anomaly {
				t.Fatalf("host without a model: %+v, want learning", got)
			}
		}
		// Over NATS: no event, no dead letter, counted.
		dead := collect(t, e.nc, "dagmm.deadletter")
		anoms := collect(t, e.nc, "anomalies.>")
		if err := e.nc.Publish("metrics.new-host", []byte(sampleJSON("new-host", time.Now(), modeltest.Metrics4Features, x))); err != nil {
			t.Fatal(err)
		}
		waitMetric(t, func() float64 { return testutil.ToFloat64(r.met.samplesLearning) }, 4)
		if n := len(dead.quiet(200*time.Millisecond)) + len(anoms.quiet(0)); n != 0 {
			t.Errorf("%d dead letters or events for a learning host", n)
		}
		if got := gatherValue(t, r, "dagmm_hosts_learning"); got != 1 {
			t.Errorf("dagmm_hosts_learning %v, want 1", got)
		}
	})
	t.Run("fleet model", func(t *testing.T) {
		e.publish(t, "fleet", mf)
		r, _, _ := e.startFleet(t, nil, 8)
		got := scoreOne(t, r, "new-host", modeltest.Inputs(mf, 1, 5))
		if got.Learning || got.Model != "" && got.Model != "fleet" {
			t.Errorf("host without a model: %+v, want scored by the fleet model", got)
		}
		if code, body := r.get(t, "/v1/model"); code != 200 || !strings.Contains(string(body), `"name":"fleet"`) {
			t.Errorf("GET /v1/model: %d %s, want the fleet model", code, body)
		}
		if got := scoreOne(t, r, "web-1", modeltest.Inputs(ma, 1, 5)); got.Model != "web-1" {
			t.Errorf("host with a model: %+v, want its own", got)
		}
	})
}

func TestFleetNewVersionsWhileServing(t *testing.T) {
	e := newFleetEnv(t)
	m1, m2, other := hostModel(t, 11, 0), hostModel(t, 22, 10), hostModel(t, 99, 20)
	e.publish(t, "web-1", m1)
	r, _, logs := e.startFleet(t, modeltest.Metrics4(33), 8)
	x1 := crossSample(t, m1, m2, 3) // anomalous for version 1 only
	x2 := crossSample(t, m2, m1, 4) // anomalous for version 2 only
	if got := scoreOne(t, r, "web-1", x1); !got.Anomaly || got.ModelVersion != "1" {
		t.Fatalf("version 1: %+v", got)
	}

	// A new version is picked up without restart.
	v2 := e.publish(t, "web-1", m2)
	waitVersion(t, r, "web-1", "2")
	if got := scoreOne(t, r, "web-1", x2); !got.Anomaly {
		t.Errorf("version 2 does not flag its anomaly: %+v", got)
	}
	if got := scoreOne(t, r, "web-1", x1); got.Anomaly {
		t.Errorf("version 2 flags version 1's anomaly: %+v", got)
	}

	// A rollback arrives as a change too.
	if _, err := e.reg.Rollback(fleetCtx(t), "web-1", 1); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, r, "web-1", "1")
	if got := scoreOne(t, r, "web-1", x1); !got.Anomaly {
		t.Errorf("after the rollback to version 1: %+v, want its anomaly flagged", got)
	}

	// Version 2's object is corrupted in the store, then made current
	// again (as a publish whose bytes went bad would): the scorer refuses
	// it and version 1 keeps scoring.
	e.corrupt(t, "web-1", 2, other)
	e.setCurrent(t, fleet.Change{ModelInfo: v2, From: 1, Cause: fleet.CausePublish})
	waitMetric(t, func() float64 { return gatherLabeled(t, r, "dagmm_model_refused_total", "corrupt") }, 1)
	if got := scoreOne(t, r, "web-1", x1); got.ModelVersion != "1" || !got.Anomaly {
		t.Errorf("after a corrupted version: %+v, want version 1 scoring", got)
	}
	if l := logs.String(); !strings.Contains(l, "model refused") || !strings.Contains(l, "host=web-1 version=2") {
		t.Errorf("the refusal is not logged with host and version: %s", l)
	}
}

// setCurrent writes a host's current record straight into the index
// bucket, as the registry does.
func (e *fleetEnv) setCurrent(t *testing.T, c fleet.Change) {
	t.Helper()
	kv, err := e.js.KeyValue(fleetCtx(t), fleet.DefaultRegistryConfig().Index)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(fleetCtx(t), "cur."+c.Host, data); err != nil {
		t.Fatal(err)
	}
}

func TestFleetLRUEviction(t *testing.T) {
	e := newFleetEnv(t)
	hosts := []string{"h-a", "h-b", "h-c"}
	ms := map[string]*model.Model{}
	for i, h := range hosts {
		ms[h] = hostModel(t, uint64(100+i), 10*float64(i))
		e.publish(t, h, ms[h])
	}
	r, src, _ := e.startFleet(t, modeltest.Metrics4(33), 2)
	cross := map[string][]float64{
		"h-a": crossSample(t, ms["h-a"], ms["h-b"], 5),
		"h-b": crossSample(t, ms["h-b"], ms["h-c"], 6),
		"h-c": crossSample(t, ms["h-c"], ms["h-a"], 7),
	}
	for round := range 3 {
		for _, h := range hosts {
			if got := scoreOne(t, r, h, cross[h]); !got.Anomaly || got.Model != h {
				t.Errorf("round %d host %s: %+v, want its anomaly flagged by its model", round, h, got)
			}
		}
	}
	if n := src.cache.Len(); n != 2 {
		t.Errorf("%d models cached, want 2", n)
	}
	if ev := gatherValue(t, r, "dagmm_fleet_model_evictions_total"); ev < 7 {
		t.Errorf("%v evictions, want at least 7 (3 rounds of 3 hosts cycling through a cache of 2)", ev)
	}
	// The evicted models' states are dropped: the base model's and at most
	// the cached hosts' (plus the one being replaced) remain.
	n := 0
	r.models.states.Range(func(k, _ any) bool { n++; return true })
	if n > 3 {
		t.Errorf("%d model states kept with 2 models cached, want at most 3", n)
	}
}

// waitVersion waits until the host is scored by the model version want.
func waitVersion(t *testing.T, r *running, host, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scoreOne(t, r, host, modeltest.Inputs(modeltest.Metrics4(1), 1, 1))
		if got.ModelVersion == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s still scored by version %s, want %s", host, got.ModelVersion, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitMetric(t *testing.T, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("metric at %v, want %v", get(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatherValue sums the values of the named metric on r's registry.
func gatherValue(t *testing.T, r *running, name string) float64 {
	return gatherLabeled(t, r, name, "")
}

// gatherLabeled sums the named metric's values whose label values include
// label ("" for all).
func gatherLabeled(t *testing.T, r *running, name, label string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := label == ""
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetValue() == label
			}
			if !ok {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestOpenFleetMarksAndHistory(t *testing.T) {
	e := newFleetEnv(t)
	ma := hostModel(t, 11, 0)
	e.publish(t, "fleet", ma)
	cfg := testConfig("")
	cfg.NATS.URL = e.srv.ClientURL()
	cfg.HTTP.AdminToken = "s3cret"
	cfg.Fleet = FleetConfig{Enabled: true, Marks: fleet.MarksConfig{Memory: true}}
	f, err := OpenFleet(fleetCtx(t), e.nc, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	r := start(t, cfg, f.Options()...)

	// The history stream keeps each host's latest 1,000 samples.
	info, err := e.js.Stream(fleetCtx(t), f.History.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo().Config; c.MaxMsgsPerSubject != 1000 || len(c.Subjects) != 1 || c.Subjects[0] != "metrics.>" {
		t.Errorf("history stream %s: subjects %v, max per subject %d; want metrics.> and 1000", c.Name, c.Subjects, c.MaxMsgsPerSubject)
	}

	ts := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	body := `{"host":"web-1","ts":"2026-12-05T20:00:00Z","by":"ana","note":"deploy"}`
	for _, tc := range []struct {
		name   string
		header []string
		code   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"token", []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
	} {
		code, resp := r.post(t, "/v1/false-alarms", body, tc.header...)
		if code != tc.code {
			t.Fatalf("%s: POST /v1/false-alarms: %d %s, want %d", tc.name, code, resp, tc.code)
		}
		if code == http.StatusOK && !strings.Contains(string(resp), `"queued":true`) {
			t.Errorf("%s: reply %s, want the host queued", tc.name, resp)
		}
	}
	marked, err := f.Marks.Marked(fleetCtx(t), "web-1")
	if err != nil || len(marked) != 1 || !marked[0].Equal(ts) {
		t.Errorf("marks of web-1: %v %v, want [%v]", marked, err, ts)
	}
	jobs, err := e.js.Stream(fleetCtx(t), f.Jobs.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if n := jobs.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("%d jobs queued, want 1", n)
	}
	// And over NATS, answered by the service's responder.
	msg, err := e.nc.Request(fleet.DefaultMarksSubject, []byte(`{"host":"db-1","ts":"2026-12-05T20:00:00Z"}`), 5*time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `"ok":true`) {
		t.Errorf("mark over NATS: %v %v", msg, err)
	}
	if code, resp := r.post(t, "/v1/false-alarms", `{"host":"","ts":"2026-12-05T20:00:00Z"}`, "Authorization", "Bearer s3cret"); code != http.StatusBadRequest {
		t.Errorf("a mark without a host: %d %s, want 400", code, resp)
	}
}

func TestFleetRefusesOtherFeatures(t *testing.T) {
	e := newFleetEnv(t)
	e.publish(t, "web-1", modeltest.NewRandom([]string{"cpu_usage", "mem_usage", "other"}, []int{4, 1}, []int{4}, 2, 1))
	r, _, logs := e.startFleet(t, hostModel(t, 33, 0), 8)
	if got := scoreOne(t, r, "web-1", []float64{1, 2, 3, 4}); !got.Learning {
		t.Errorf("a host whose model takes other features: %+v, want learning (its model refused)", got)
	}
	if n := gatherLabeled(t, r, "dagmm_model_refused_total", "features"); n != 1 {
		t.Errorf("dagmm_model_refused_total{reason=features} %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "takes the features [cpu_usage mem_usage other]") {
		t.Errorf("the refusal does not name the features: %s", logs.String())
	}
}
