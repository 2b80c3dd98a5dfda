package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// hostSource is a [ModelSource] with a model per host, and a default one
// for the other hosts: what a per-host registry looks like to the service.
type hostSource struct {
	def  *Loaded
	host map[string]*Loaded
}

func (h *hostSource) ForHost(host string) (*Loaded, error) {
	if l, ok := h.host[host]; ok {
		return l, nil
	}
	return h.def, nil
}
func (h *hostSource) Default() *Loaded                             { return h.def }
func (h *hostSource) Reload(context.Context) (*Loaded, error)      { return h.def, nil }
func (h *hostSource) Watch(context.Context, chan<- struct{}) error { return nil }

// loaded returns the four-metric test model of seed, ready to serve as name.
func loaded(t testing.TB, seed uint64, name string) (*Loaded, *model.Model) {
	t.Helper()
	m := modeltest.Metrics4(seed)
	var b bytes.Buffer
	if err := model.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	l, err := LoadArtifact(b.Bytes(), name, "memory")
	if err != nil {
		t.Fatal(err)
	}
	return l, m
}

// twoModels returns a source scoring host "b" with the model of seed 2 and
// every other host with the model of seed 1.
func twoModels(t testing.TB) (src *hostSource, m1, m2 *model.Model) {
	t.Helper()
	l1, m1 := loaded(t, 1, "fleet")
	l2, m2 := loaded(t, 2, "host-b")
	if l1.Version == l2.Version {
		t.Fatal("the two test models have the same version")
	}
	return &hostSource{def: l1, host: map[string]*Loaded{"b": l2}}, m1, m2
}

// TestAlternatingModelsAllocateNothing checks that a worker scoring hosts
// of two models in turn keeps a workspace for each: once warm, a sample
// costs no allocation, scored alone or in a batch mixing the hosts, and
// its anomaly's event is encoded without one either, nor its host's series.
func TestAlternatingModelsAllocateNothing(t *testing.T) {
	src, m1, m2 := twoModels(t)
	ms, err := newModelSet(src, 1000, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ms.hosts = newHostGauges(DefaultHostSeriesMax, DefaultHostSeriesTTL, nil) // a known host's series cost nothing either
	p := &pipeline{models: ms, ev: eventConfig{anomalyPrefix: "anomalies"},
		samples: prometheus.NewCounter(prometheus.CounterOpts{Name: "s"}), anomalies: prometheus.NewCounter(prometheus.CounterOpts{Name: "a"})}
	n1, a1 := testData(t, m1, 4, 1, 1)
	n2, a2 := testData(t, m2, 4, 1, 2)
	ts := time.Unix(1, 0)
	samples := []ingest.Sample{
		{Host: "a", TS: ts, Values: n1[:4]}, {Host: "b", TS: ts, Values: n2[:4]},
		{Host: "a", TS: ts, Values: a1}, {Host: "b", TS: ts, Values: a2},
	}
	dec := ms.def()
	w := newWorker(1024)
	l2, _ := src.ForHost("b")
	var scoring []ingest.Sample // the samples being scored
	wrong := 0                  // samples scored with another model than their host's
	check := func(st *modelState, i int, r *model.Result) error {
		if (scoring[i].Host == "b") != (st.l == l2) {
			wrong++
		}
		return nil
	}
	cases := []struct {
		name string
		run  func(k int) error
	}{
		{"one sample at a time", func(k int) error {
			scoring = samples[k%4 : k%4+1]
			return w.score(ms, dec, scoring, check)
		}},
		{"a batch alternating the hosts", func(int) error {
			scoring = samples
			return w.score(ms, dec, scoring, check)
		}},
		{"pipeline with events", func(k int) error {
			src := Source{Subject: "metrics.x"}
			return p.scoreSamples(w, dec, samples[k%4:k%4+1], &src)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k := range 8 { // warm up: workspaces, subjects, buffers
				if err := tc.run(k); err != nil {
					t.Fatal(err)
				}
			}
			k := 0
			allocs := testing.AllocsPerRun(200, func() {
				if err := tc.run(k); err != nil {
					t.Fatal(err)
				}
				k++
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run, want 0", allocs)
			}
		})
	}
	if wrong > 0 {
		t.Errorf("%d samples scored with another model than their host's", wrong)
	}
	if len(w.spaces) != 2 {
		t.Errorf("worker keeps %d workspaces, want one per model (2)", len(w.spaces))
	}
}

// TestWorkspacesBounded checks that a worker keeps at most maxWorkspaces
// workspaces, the most recently used.
func TestWorkspacesBounded(t *testing.T) {
	w := newWorker(4)
	var states []*modelState
	for seed := range uint64(maxWorkspaces + 2) {
		l, _ := loaded(t, seed+1, "m")
		st, err := newModelState(l, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
		w.use(st)
	}
	if len(w.spaces) != maxWorkspaces {
		t.Fatalf("%d workspaces, want %d", len(w.spaces), maxWorkspaces)
	}
	if w.spaces[0].s != states[len(states)-1].l.Scorer {
		t.Error("the most recent model's workspace is not first")
	}
	for _, e := range w.spaces {
		if e.s == states[0].l.Scorer || e.s == states[1].l.Scorer {
			t.Error("a least recently used workspace was kept")
		}
	}
}

// TestPerHostModels serves two models, one for host "b" and one for the
// others, over NATS and HTTP: each host's anomaly is scored by its model,
// and its event names that model and version.
func TestPerHostModels(t *testing.T) {
	src, m1, m2 := twoModels(t)
	r := start(t, testConfig(""), WithModelSource(src))
	_, a1 := testData(t, m1, 1, 1, 3)
	_, a2 := testData(t, m2, 1, 1, 4)
	s1, _ := model.NewScorer(m1)
	s2, _ := model.NewScorer(m2)
	ts := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	l2, _ := src.ForHost("b")
	want := map[string]struct {
		name, version string
		s             *model.Scorer
		x             []float64
	}{
		"a": {"fleet", src.def.Version, s1, a1},
		"b": {"host-b", l2.Version, s2, a2},
	}

	nc := natstest.Connect(t, r.NATSURL())
	events := collect(t, nc, "anomalies.>")
	for _, h := range []string{"a", "b"} {
		if err := nc.Publish("metrics."+h, []byte(sampleJSON(h, ts, m1.Features, want[h].x))); err != nil {
			t.Fatal(err)
		}
	}
	for _, msg := range events.wait(t, 2, 10*time.Second) {
		e := decodeEvent(t, msg.Data)
		w, ok := want[e.Host]
		if !ok {
			t.Fatalf("event for host %q", e.Host)
		}
		res, _ := w.s.Score(w.x)
		if e.Model != w.name || e.ModelVersion != w.version || float64(e.Threshold) != w.s.Threshold() ||
			!scalar.EqualWithinAbsOrRel(float64(e.Energy), res.Energy, 1e-12, 1e-12) {
			t.Errorf("host %s: event %s, want model %s %s, energy %v", e.Host, msg.Data, w.name, w.version, res.Energy)
		}
	}

	// HTTP: one batch of both hosts; the response is the default model's,
	// and a result scored by another model names it.
	body := fmt.Sprintf("[%s,%s]", sampleJSON("a", ts, m1.Features, a1), sampleJSON("b", ts, m1.Features, a2))
	code, out := r.post(t, "/v1/score", body)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/score: %d %s", code, out)
	}
	var resp ScoreResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ModelVersion != src.def.Version || len(resp.Results) != 2 {
		t.Fatalf("response %s", out)
	}
	if a, b := resp.Results[0], resp.Results[1]; a.ModelVersion != "" || b.Model != "host-b" || b.ModelVersion != l2.Version {
		t.Errorf("results name models %q %q and %q %q, want the response's and host-b %s", a.Model, a.ModelVersion, b.Model, b.ModelVersion, l2.Version)
	}
}

// TestSeriesFollowTheModel checks that each model keeps its own hosts'
// series, that all of them draw on one budget, and that a model a reload
// replaced gives its hosts' memory back.
func TestSeriesFollowTheModel(t *testing.T) {
	src, _, _ := twoModels(t)
	ms, err := newModelSet(src, 10, model.MethodRecent, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ms.forHost("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ms.forHost("b")
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a.series == nil || b.series == nil || a.series.budget != b.series.budget {
		t.Fatal("the two models do not have series of their own on one budget")
	}
	per := a.series.per
	for i := range 100 {
		a.series.of(fmt.Sprintf("h%d", i))
	}
	b.series.of("b")
	if got, want := ms.series.used.Load(), 101*per; got != want {
		t.Errorf("budget used %d bytes, want %d (101 hosts of %d)", got, want, per)
	}
	shards := 0
	for i := range a.series.shards {
		if len(a.series.shards[i].m) > 0 {
			shards++
		}
	}
	if shards < seriesShards/2 {
		t.Errorf("100 hosts in %d of %d shards", shards, seriesShards)
	}
	ms.retain(func(l *Loaded) bool { return l == b.l })
	if got := ms.series.used.Load(); got != per {
		t.Errorf("after forgetting a's model the budget holds %d bytes, want %d (b's one host)", got, per)
	}
}

// TestSeriesBudget checks that over the budget a host of the same shard
// is forgotten, so that the hosts kept stay within it but for one host a
// shard (a shard empty when the budget is full still takes a host).
func TestSeriesBudget(t *testing.T) {
	l, _ := loaded(t, 1, "m")
	st, err := newModelState(l, 10, model.MethodRecent)
	if err != nil {
		t.Fatal(err)
	}
	hs := st.series
	hs.minHost = 0
	hs.budget = newSeriesBudget(seriesShards * hs.per) // room for one host a shard
	for i := range 1000 {
		if hs.of(fmt.Sprintf("host-%d", i)) == nil {
			t.Fatal("no series for a host")
		}
	}
	if n := hs.hosts.Load(); n > 2*seriesShards || n < seriesShards/2 {
		t.Errorf("%d hosts kept, want the budget's %d and at most one more a shard", n, seriesShards)
	}
	if used := hs.budget.used.Load(); used != hs.hosts.Load()*hs.per {
		t.Errorf("budget says %d bytes, the hosts take %d", used, hs.hosts.Load()*hs.per)
	}
}

// TestFirstHostSeries checks the first host's series, kept inside the
// model's series state: the first host always finds the same series,
// other hosts their own, concurrent first samples of a new model agree
// on one series, and releasing the state returns every host's bytes to
// the budget.
func TestFirstHostSeries(t *testing.T) {
	l, _ := loaded(t, 1, "m")
	st, err := newModelState(l, 10, model.MethodRecent)
	if err != nil {
		t.Fatal(err)
	}
	hs := st.series
	got := make([]*series, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = hs.of("first") })
	}
	wg.Wait()
	for i, sr := range got {
		if sr != got[0] || sr == nil {
			t.Fatalf("concurrent first samples: worker %d has series %p, worker 0 %p", i, sr, got[0])
		}
	}
	if got[0] != &hs.first.sr {
		t.Error("the first host's series is not the one inside the state")
	}
	other := hs.of("other")
	if other == nil || other == got[0] || hs.of("other") != other {
		t.Errorf("another host's series: %p, then %p; the first host's %p", other, hs.of("other"), got[0])
	}
	if n := hs.hosts.Load(); n != 2 {
		t.Errorf("%d hosts counted, want 2", n)
	}
	if used := hs.budget.used.Load(); used != 2*hs.per {
		t.Errorf("budget holds %d bytes, want %d", used, 2*hs.per)
	}
	hs.release()
	if used, n := hs.budget.used.Load(), hs.hosts.Load(); used != 0 || n != 0 {
		t.Errorf("after release the budget holds %d bytes for %d hosts, want none", used, n)
	}
	if hs.of("first") != got[0] {
		t.Error("a worker finishing with a released model lost the first host's series")
	}
}

// TestLoadedStateShared checks that two services preparing the same
// loaded model each get a state of their own, the first inside the
// Loaded.
func TestLoadedStateShared(t *testing.T) {
	l, _ := loaded(t, 1, "m")
	a, err := newModelSet(NewStaticSource(l), 10, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newModelSet(NewStaticSource(l), 10, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := a.def(), b.def()
	if sa == sb || sa.set != a || sb.set != b {
		t.Fatalf("states %p (set %p) and %p (set %p) for sets %p and %p", sa, sa.set, sb, sb.set, a, b)
	}
	if sa != &l.own {
		t.Error("the first service's state is not the one inside the Loaded")
	}
	if a.stateOf(l) != sa || b.stateOf(l) != sb {
		t.Error("a second look-up gives another state")
	}
}
