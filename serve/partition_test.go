package serve

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

func TestConfigPartitions(t *testing.T) {
	durable := func(n, i int) func(*Config) {
		return func(c *Config) { c.JetStream.Enabled, c.NATS.Partitions, c.NATS.Partition = true, n, i }
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // in the error; "" = valid
	}{
		{"not partitioned", func(*Config) {}, ""},
		{"one partition", durable(1, 0), ""},
		{"two", durable(2, 1), ""},
		{"many", durable(64, 63), ""},
		{"negative count", durable(-2, 0), "-2: want 0 or 1"},
		{"index without count", durable(0, 1), "partition 1 without partitions"},
		{"index too large", durable(2, 2), "partition 2 out of range: want 0 to 1 with 2 partitions"},
		{"negative index", durable(3, -1), "partition -1 out of range"},
		{"core nats", func(c *Config) { c.NATS.Partitions, c.NATS.Partition = 2, 0 }, "durable mode"},
		{"no nats", func(c *Config) { durable(2, 0)(c); c.NATS.Disabled = true }, "need NATS"},
		{"telegraf", func(c *Config) { durable(2, 0)(c); c.Telegraf.Enabled = true }, "Telegraf"},
		{"subject without host token", func(c *Config) { durable(2, 0)(c); c.NATS.Subject = "metrics.*.cpu" }, `"metrics.*.cpu"`},
		{"wildcard prefix", func(c *Config) { durable(2, 0)(c); c.NATS.Subject = "*.metrics.>" }, `"<prefix>.>"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want == "":
			case err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "partitions: ") || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %v, want ErrConfig about partitions with %q", err, tc.want)
			}
		})
	}
	c := DefaultConfig()
	durable(4, 3)(&c)
	if p, ok := c.Partitioning(); !ok || p.Prefix != "metrics" || p.N != 4 || p.Filter(3) != "metrics.3.>" || c.partitionConsumer() != "dagmm-scorer-p3" {
		t.Errorf("partitioning %+v %v, filter %s, consumer %s; want metrics over 4, metrics.3.>, dagmm-scorer-p3", p, ok, p.Filter(3), c.partitionConsumer())
	}
}

// replica is one partitioned scorer of TestPartitionedReplicas.
type replica struct {
	*running
	fleet     *Fleet
	scores    *collector
	anomalies *collector
}

// startReplica serves partition i of n in fleet mode, durable, publishing
// every score. Its events go to subjects of its own (scores-p<i>.<host>,
// anomalies-p<i>.<host>), so that the test sees which replica scored what.
func (e *fleetEnv) startReplica(t *testing.T, base *model.Model, n, i int) *replica {
	t.Helper()
	bl, err := LoadArtifact(artifact(t, base), "dagmm", "base")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("")
	cfg.NATS.URL = e.srv.ClientURL()
	cfg.NATS.Partitions, cfg.NATS.Partition = n, i
	cfg.NATS.PublishScores = true
	cfg.NATS.ScorePrefix, cfg.NATS.AnomalyPrefix = fmt.Sprintf("scores-p%d", i), fmt.Sprintf("anomalies-p%d", i)
	cfg.JetStream.Enabled = true
	cfg.Fleet = FleetConfig{Enabled: true, Registry: fleet.RegistryConfig{Memory: true}, Marks: fleet.MarksConfig{Memory: true},
		MarksSubject: fmt.Sprintf("dagmm.marks.p%d", i)}
	f, err := OpenFleet(fleetCtx(t), natstest.Connect(t, e.srv.ClientURL()), cfg, bl, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	r := &replica{fleet: f, scores: collect(t, e.nc, cfg.NATS.ScorePrefix+".>"), anomalies: collect(t, e.nc, cfg.NATS.AnomalyPrefix+".>")}
	r.running = start(t, cfg, f.Options()...)
	return r
}

// TestPartitionedReplicas: two replicas split 20 hosts by subject. Every
// sample is scored exactly once, by the replica of its host's partition
// (as fleet.Partitions computes it) and with its host's model; each
// replica holds only its hosts' models, and a registry change of the
// other partition's host is not loaded.
func TestPartitionedReplicas(t *testing.T) {
	e := newFleetEnv(t)
	ma, mb := hostModel(t, 11, 0), hostModel(t, 22, 10)
	const nHosts, perHost = 20, 5
	part := fleet.Partitions{Prefix: "metrics", N: 2}
	hosts := make([]string, nHosts)
	models := map[string]*model.Model{}
	byPart := [2][]string{}
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i)
		if i%5 == 4 {
			hosts[i] = fmt.Sprintf("db%02d.example.com", i)
		}
		models[hosts[i]] = ma
		if i%2 == 1 {
			models[hosts[i]] = mb
		}
		e.publish(t, hosts[i], models[hosts[i]])
		p := part.Of(hosts[i])
		byPart[p] = append(byPart[p], hosts[i])
	}
	if len(byPart[0]) == 0 || len(byPart[1]) == 0 {
		t.Fatalf("hosts split %d/%d: pick other names", len(byPart[0]), len(byPart[1]))
	}
	reps := []*replica{e.startReplica(t, ma, 2, 0), e.startReplica(t, ma, 2, 1)}

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, h := range hosts {
		normal, _ := testData(t, models[h], perHost, 0, 3)
		for k := range perHost {
			body := sampleJSON(h, ts.Add(time.Duration(k)*time.Second), modeltest.Metrics4Features, normal[k*4:(k+1)*4])
			if _, err := js.Publish(fleetCtx(t), "metrics."+ingest.HostToken(h), []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Every sample once, by its partition's replica, with its host's model.
	got := [2][]*nats.Msg{}
	total := 0
	deadline := time.Now().Add(20 * time.Second)
	for total < nHosts*perHost && time.Now().Before(deadline) {
		for i, r := range reps {
			more := r.scores.quiet(100 * time.Millisecond)
			got[i] = append(got[i], more...)
			total += len(more)
		}
	}
	for i, r := range reps {
		got[i] = append(got[i], r.scores.quiet(300*time.Millisecond)...)
	}
	seen := map[uint64]int{}
	perHostSeen := map[string]int{}
	for i := range reps {
		for _, m := range got[i] {
			ev := decodeEvent(t, m.Data)
			seen[ev.Source.Seq]++
			perHostSeen[ev.Host]++
			if want := fmt.Sprintf("metrics.%d.%s", i, ingest.HostToken(ev.Host)); part.Of(ev.Host) != i || ev.Source.Subject != want {
				t.Errorf("replica %d scored %s (partition %d) from %s, want only its partition's hosts, from %s", i, ev.Host, part.Of(ev.Host), ev.Source.Subject, want)
			}
			if ev.Model != ev.Host || ev.ModelVersion != "1" {
				t.Errorf("replica %d scored %s with model %s version %s, want its own version 1", i, ev.Host, ev.Model, ev.ModelVersion)
			}
		}
	}
	if len(seen) != nHosts*perHost {
		t.Errorf("%d samples scored, want %d", len(seen), nHosts*perHost)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Errorf("sample of stream sequence %d scored %d times, want once", seq, n)
		}
	}
	for _, h := range hosts {
		if perHostSeen[h] != perHost {
			t.Errorf("%s: %d samples scored, want %d", h, perHostSeen[h], perHost)
		}
	}
	for i, r := range reps {
		cached := r.fleet.Source.Hosts()
		slices.Sort(cached)
		want := slices.Sorted(slices.Values(byPart[i]))
		if !slices.Equal(cached, want) {
			t.Errorf("replica %d holds the models of %v, want those of its partition %v", i, cached, want)
		}
	}

	// An anomaly on its host only, named after the host's model, from the
	// replica of its partition.
	x := crossSample(t, ma, mb, 1) // anomalous for ma, normal for mb
	for i := range reps {
		var onA, onB string
		for _, h := range byPart[i] {
			if models[h] == ma && onA == "" {
				onA = h
			}
			if models[h] == mb && onB == "" {
				onB = h
			}
		}
		if onA == "" || onB == "" {
			t.Fatalf("partition %d has no host of each model: %v", i, byPart[i])
		}
		for _, h := range []string{onA, onB} {
			if _, err := js.Publish(fleetCtx(t), "metrics."+ingest.HostToken(h), []byte(sampleJSON(h, ts.Add(time.Minute), modeltest.Metrics4Features, x))); err != nil {
				t.Fatal(err)
			}
		}
		msgs := reps[i].anomalies.wait(t, 1, 10*time.Second)
		if ev := decodeEvent(t, msgs[0].Data); ev.Host != onA || ev.Model != onA || ev.ModelVersion != "1" {
			t.Errorf("replica %d: anomaly %s scored by %s version %s, want %s scored by its own model version 1", i, ev.Host, ev.Model, ev.ModelVersion, onA)
		}
	}
	for i, r := range reps {
		if more := r.anomalies.quiet(300 * time.Millisecond); len(more) != 0 {
			t.Errorf("replica %d raised %d more anomalies, want none (the sample is normal on the other hosts)", i, len(more))
		}
	}

	// A host of partition 0 asked of replica 1 over HTTP is loaded on
	// demand and counted; a new version of it is loaded by replica 0 and
	// dropped by replica 1, not loaded.
	h := byPart[0][0]
	if res := scoreOne(t, reps[1].running, h, x); res.Model != h {
		t.Fatalf("replica 1 scored %s over HTTP with %s, want its model", h, res.Model)
	}
	if n := testutil.ToFloat64(reps[1].fleet.Source.met.foreign); n != 1 {
		t.Errorf("replica 1: %v foreign loads, want 1", n)
	}
	if n := testutil.ToFloat64(reps[0].fleet.Source.met.foreign); n != 0 {
		t.Errorf("replica 0: %v foreign loads, want 0", n)
	}
	loads1 := testutil.ToFloat64(reps[1].fleet.Source.met.loads.WithLabelValues("loaded"))
	e.publish(t, h, models[h])
	waitMetric(t, func() float64 { return testutil.ToFloat64(reps[0].fleet.Source.met.updates) }, 1)
	waitMetric(t, func() float64 { return float64(len(reps[1].fleet.Source.Hosts())) }, float64(len(byPart[1])))
	if n := testutil.ToFloat64(reps[1].fleet.Source.met.loads.WithLabelValues("loaded")); n != loads1 {
		t.Errorf("replica 1 loaded %v models on another partition's publish, want none", n-loads1)
	}
	if slices.Contains(reps[1].fleet.Source.Hosts(), h) {
		t.Errorf("replica 1 still holds %s's model after its new version", h)
	}
}

// TestPartitionedDurable: without fleet mode too, two replicas of one
// model split the hosts: the stream they create carries the transform,
// and all of a host's samples go to one replica, so its window of recent
// energies is whole.
func TestPartitionedDurable(t *testing.T) {
	srv := runNATS(t)
	nc := natstest.Connect(t, srv.ClientURL())
	path, m := writeModel(t, t.TempDir(), 5)
	part := fleet.Partitions{Prefix: "metrics", N: 2}
	var scores [2]*collector
	for i := range 2 {
		cfg := testConfig(path)
		cfg.NATS.URL = srv.ClientURL()
		cfg.NATS.Partitions, cfg.NATS.Partition = 2, i
		cfg.NATS.PublishScores, cfg.NATS.ScorePrefix = true, fmt.Sprintf("scores-p%d", i)
		cfg.JetStream.Enabled = true
		scores[i] = collect(t, nc, cfg.NATS.ScorePrefix+".>")
		start(t, cfg)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(fleetCtx(t), "DAGMM_METRICS")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := fleet.PartitionsOf(stream.CachedInfo().Config); !ok || p != part {
		t.Fatalf("stream partitioned %+v %v, want %+v", p, ok, part)
	}
	for _, c := range []string{"dagmm-scorer-p0", "dagmm-scorer-p1"} {
		cons, err := stream.Consumer(fleetCtx(t), c)
		if err != nil {
			t.Fatalf("consumer %s: %v", c, err)
		}
		if want := "metrics." + c[len(c)-1:] + ".>"; cons.CachedInfo().Config.FilterSubject != want {
			t.Errorf("consumer %s filters %s, want %s", c, cons.CachedInfo().Config.FilterSubject, want)
		}
	}
	normal, _ := testData(t, m, 4, 0, 9)
	const hosts = 10
	for h := range hosts {
		for k := range 4 {
			body := sampleJSON(fmt.Sprintf("node-%d", h), time.Now(), m.Features, normal[k*4:(k+1)*4])
			if _, err := js.Publish(fleetCtx(t), fmt.Sprintf("metrics.node-%d", h), []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	byReplica := map[string]map[int]int{}
	got := 0
	deadline := time.Now().Add(15 * time.Second)
	for got < hosts*4 && time.Now().Before(deadline) {
		for i, c := range scores {
			for _, msg := range c.quiet(100 * time.Millisecond) {
				ev := decodeEvent(t, msg.Data)
				if byReplica[ev.Host] == nil {
					byReplica[ev.Host] = map[int]int{}
				}
				byReplica[ev.Host][i]++
				got++
			}
		}
	}
	if got != hosts*4 {
		t.Fatalf("%d samples scored, want %d", got, hosts*4)
	}
	for h, reps := range byReplica {
		if want := part.Of(h); len(reps) != 1 || reps[want] != 4 {
			t.Errorf("%s scored by replicas %v, want all 4 by replica %d", h, reps, want)
		}
	}
}
