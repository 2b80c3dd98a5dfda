package serve

// BenchmarkFleetRouting is issue 15's acceptance point "scoring throughput
// with per-host routing over 100,000 hosts: at least 80% of the
// single-model throughput": the same messages, from hosts drawn uniformly
// from 100,000, go down the NATS messages' path (decode, the host's model,
// score, explain, encode the events) once with one model for every host
// and once with a model per host, 100,000 of them held in a golang-lru
// cache as RegistrySource holds them. Compare the samples/s of the pairs:
// models=1 against models=100000. A third run, models=100000/index, finds
// each host's model with one map read ([hashModels]): the bound of what a
// faster look-up could give.
//
//	go test -run '^$' -bench FleetRouting -benchmem -count 5 ./serve/
//
// -hosts sets the number of hosts. Every host's model is loaded and
// prepared, and every host has its series, before the timing starts: the
// figures are the steady state of a scorer whose cache holds the fleet.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/prefetch"
	"github.com/dagmm/dagmm/model"
)

var fleetHosts = flag.Int("hosts", 100_000, "hosts (and host models) of BenchmarkFleetRouting and BenchmarkFleetModelMemory")

// lruModels is a ModelSource that serves a model per host from a
// least-recently-used cache, as RegistrySource does once its models are
// loaded, and base to the hosts it does not hold.
type lruModels struct {
	base  *Loaded
	cache *lru.Cache[string, *Loaded]
}

func (s *lruModels) ForHost(host string) (*Loaded, error) {
	if l, ok := CachedModel(s.cache, host); ok {
		return l, nil
	}
	return s.base, nil
}

// hashModels finds a host's model with one read of a Go map keyed by a
// 64-bit hash of its name: no least-recently-used order, no comparison of
// the name itself. It is no source to serve with (two hosts whose names
// hash alike would share a model): BenchmarkFleetRouting's index run uses
// it to measure the most that any look-up structure could save over
// lruModels.
type hashModels struct {
	lruModels
	seed maphash.Seed
	idx  map[uint64]*Loaded
}

func (s *hashModels) ForHost(host string) (*Loaded, error) {
	if l, ok := s.idx[maphash.String(s.seed, host)]; ok {
		prefetch.Struct(l)
		return l, nil
	}
	return s.base, nil
}

func (s *lruModels) Default() *Loaded                             { return s.base }
func (s *lruModels) Reload(context.Context) (*Loaded, error)      { return s.base, nil }
func (s *lruModels) Watch(context.Context, chan<- struct{}) error { return nil }

// fleetModel is the four-metric test model scoring over a window of 10
// samples of a host, as dagmm train's defaults make it.
func fleetModel() *model.Model {
	m := modeltest.Metrics4(1)
	m.Window = 10
	return m
}

// hostModels returns a model per host: real scorers of m's weights, each
// with its own threshold, name and version.
func hostModels(tb testing.TB, m *model.Model, hosts []string) []*Loaded {
	tb.Helper()
	out := make([]*Loaded, len(hosts))
	for i, h := range hosts {
		c := *m // the scorer copies what it keeps
		c.Calibration.Threshold += float64(i+1) * 1e-9
		s, err := model.NewScorer(&c)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = &Loaded{Scorer: s, Name: h, Version: strconv.Itoa(i + 1), Origin: "bench", LoadedAt: time.Now()}
	}
	return out
}

// fleetHostNames returns n host names.
func fleetHostNames(n int) []string {
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%06d.example.com", i)
	}
	return hosts
}

// fleetMessages returns n messages of per samples each, every sample of
// a host drawn uniformly (one host a message when oneHost), normal samples
// with 1% anomalies.
func fleetMessages(tb testing.TB, m *model.Model, hosts []string, n, per int, oneHost bool) [][]byte {
	tb.Helper()
	normal, anomalies := testData(tb, m, 99, 1, 1)
	d := len(m.Features)
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([][]byte, n)
	k := 0
	for i := range msgs {
		var parts []string
		host := hosts[rng.IntN(len(hosts))]
		for range per {
			if !oneHost {
				host = hosts[rng.IntN(len(hosts))]
			}
			x := normal[(k%99)*d : (k%99+1)*d]
			if k%100 == 99 {
				x = anomalies
			}
			parts = append(parts, sampleJSON(host, time.Unix(int64(k), 0), m.Features, x))
			k++
		}
		if per == 1 {
			msgs[i] = []byte(parts[0])
		} else {
			msgs[i] = []byte("[" + strings.Join(parts, ",") + "]")
		}
	}
	return msgs
}

// routingShapes are BenchmarkFleetRouting's message shapes: a sample a
// message, a host's batch of 100, and 100 samples of 100 hosts.
var routingShapes = []struct {
	name    string
	per     int
	oneHost bool
}{
	{"msg=1", 1, true},
	{"msg=100/hosts=1", 100, true},
	{"msg=100/hosts=100", 100, false},
}

// routingSetup is BenchmarkFleetRouting's services and messages, made once
// per test binary (-count runs reuse them).
type routingSetup struct {
	single, perHost, index *Service
	msgs                   [][][]byte // by shape
}

var routingOnce struct {
	sync.Once
	r *routingSetup
}

// routingFor returns the setup, made on the first call.
func routingFor(b *testing.B) *routingSetup {
	routingOnce.Do(func() { routingOnce.r = newRoutingSetup(b) })
	if routingOnce.r == nil {
		b.Fatal("the setup failed in an earlier run")
	}
	return routingOnce.r
}

func newRoutingSetup(b *testing.B) *routingSetup {
	m := fleetModel()
	hosts := fleetHostNames(*fleetHosts)
	dir, err := os.MkdirTemp("", "dagmm-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.json")
	if err := model.Save(path, m); err != nil {
		b.Fatal(err)
	}
	single := &lruModels{base: hostModels(b, m, []string{"fleet"})[0]}
	single.cache, _ = lru.New[string, *Loaded](1)
	perHost := &lruModels{base: single.base}
	perHost.cache, _ = lru.New[string, *Loaded](len(hosts))
	for _, l := range hostModels(b, m, hosts) {
		perHost.cache.Add(l.Name, l)
	}
	index := &hashModels{lruModels: lruModels{base: single.base}, seed: maphash.MakeSeed(), idx: map[uint64]*Loaded{}}
	for _, l := range hostModels(b, m, hosts) { // their own: a Loaded keeps the state of one service
		index.idx[maphash.String(index.seed, l.Name)] = l
	}
	r := &routingSetup{}
	if r.single, err = New(httpOnly(path), nil, WithModelSource(single)); err != nil {
		b.Fatal(err)
	}
	if r.perHost, err = New(httpOnly(path), nil, WithModelSource(perHost)); err != nil {
		b.Fatal(err)
	}
	if r.index, err = New(httpOnly(path), nil, WithModelSource(index)); err != nil {
		b.Fatal(err)
	}
	for _, shape := range routingShapes {
		r.msgs = append(r.msgs, fleetMessages(b, m, hosts, max(2*len(hosts)/shape.per, 1000), shape.per, shape.oneHost))
	}
	// Every model prepared, every host's series made, one service after
	// the other, so that each one's memory lies together as in a process
	// of its own.
	for _, s := range []*Service{r.single, r.perHost, r.index} {
		w := newWorker(s.cfg.Scoring.Batch)
		for _, msgs := range r.msgs {
			for _, body := range msgs {
				if _, err := s.pipe.scoreMessage(w, body, &Source{Subject: "metrics.h"}, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	runtime.GC() // the setup's garbage is collected before the timing, not during it
	return r
}

func BenchmarkFleetRouting(b *testing.B) {
	r := routingFor(b)
	for k, shape := range routingShapes {
		msgs := r.msgs[k]
		for _, run := range []struct {
			name string
			s    *Service
		}{{"models=1", r.single}, {fmt.Sprintf("models=%d", *fleetHosts), r.perHost}, {fmt.Sprintf("models=%d/index", *fleetHosts), r.index}} {
			b.Run(shape.name+"/"+run.name, func(b *testing.B) {
				w := newWorker(run.s.cfg.Scoring.Batch)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					src := Source{Subject: "metrics.h"}
					if _, err := run.s.pipe.scoreMessage(w, msgs[i%len(msgs)], &src, time.Now()); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(b.N*shape.per)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkFleetModelMemory measures what a scorer holds per loaded host
// model: the model as the registry source loads it (LoadArtifact of its
// artifact: the scorer and its Loaded), then its serving state (the
// modelState the pipeline prepares on the host's first sample: decoder,
// encoded pieces, the host's series), the heap retained over -hosts
// models, per model, after a GC. A worker's workspaces are not per model
// (each keeps at most 8): they are left out.
//
//	go test -run '^$' -bench FleetModelMemory -benchtime 1x ./serve/
func BenchmarkFleetModelMemory(b *testing.B) {
	m := fleetModel()
	path := filepath.Join(b.TempDir(), "model.json")
	if err := model.Save(path, m); err != nil {
		b.Fatal(err)
	}
	n := *fleetHosts
	hosts := fleetHostNames(n)
	normal, _ := testData(b, m, 1, 0, 1)
	var loaded, state float64
	for b.Loop() {
		src := &lruModels{}
		src.cache, _ = lru.New[string, *Loaded](n + 1)
		before := liveHeapBytes()
		var buf bytes.Buffer
		for i, h := range hosts {
			c := *m
			c.Calibration.Threshold += float64(i+1) * 1e-9
			buf.Reset()
			if err := model.Encode(&buf, &c); err != nil {
				b.Fatal(err)
			}
			l, err := LoadArtifact(buf.Bytes(), h, "registry:"+h)
			if err != nil {
				b.Fatal(err)
			}
			l.Version = strconv.Itoa(i + 1)
			if src.base == nil {
				src.base = l
			}
			src.cache.Add(h, l)
		}
		mid := liveHeapBytes()
		s, err := New(httpOnly(path), nil, WithModelSource(src))
		if err != nil {
			b.Fatal(err)
		}
		w := newWorker(s.cfg.Scoring.Batch)
		for _, h := range hosts {
			body := []byte(sampleJSON(h, time.Unix(1, 0), m.Features, normal))
			if _, err := s.pipe.scoreMessage(w, body, &Source{Subject: "metrics.h"}, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		after := liveHeapBytes()
		loaded, state = float64(mid-before)/float64(n), float64(after-mid)/float64(n)
		runtime.KeepAlive(s)
		runtime.KeepAlive(src)
	}
	b.ReportMetric(loaded, "B/loaded-model")
	b.ReportMetric(state, "B/serving-state")
	b.ReportMetric(loaded+state, "B/model")
	b.ReportMetric((loaded+state)*100_000/1e9, "GB/100k-models")
	b.ReportMetric(float64(n), "models")
}

// liveHeapBytes returns the live heap after a full collection.
func liveHeapBytes() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
