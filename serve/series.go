package serve

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dagmm/dagmm/internal/prefetch"
	"github.com/dagmm/dagmm/model"
)

// seriesBudgetBytes bounds the memory that hosts' series state may take,
// over every model; with the default window and 38 features a host takes
// about 18 KiB, so about 14,000 hosts fit. Over the cap, a host picked at
// random in the new host's shard is forgotten: its next sample starts a
// new series. (A shard still empty then takes its host, so the cap may be
// passed by one host a shard.)
const seriesBudgetBytes = 256 << 20

// minSeriesHosts is the fewest hosts a model keeps whatever their size.
const minSeriesHosts = 1000

// seriesShards is the number of independently locked parts of a model's
// hosts, so that workers scoring different hosts rarely wait for each
// other.
const seriesShards = 16

// seriesBudget is the memory the hosts' series of all the models take,
// against its limit. It is safe for concurrent use.
type seriesBudget struct {
	limit int64
	used  atomic.Int64
}

func newSeriesBudget(limit int64) *seriesBudget { return &seriesBudget{limit: limit} }

// hostSeries holds each host's recent samples for a model that scores over
// a window of a host's samples ([model.Scorer.Smooth]) or explains with
// them ([model.MethodRecent]). It is safe for concurrent use; a host's
// samples are taken in the order workers score them, which is their
// arrival order but for messages scored at the same moment.
type hostSeries struct {
	// first is the first host's series, inside the struct and found
	// without a map look-up: a fleet's host model scores one host, and its
	// state is read cold. It counts in the budget but is never the host
	// forgotten to make room. firstState says whether it is taken (see the
	// first* constants).
	firstState atomic.Uint32
	first      firstSeries
	s          *model.Scorer
	recent     bool  // keep each host's squared errors for MethodRecent
	per        int64 // bytes of one host's state
	minHost    int   // hosts per shard kept whatever the budget
	budget     *seriesBudget
	hosts      atomic.Int64 // held now, over the shards
	shards     [seriesShards]seriesShard
}

// The states of hostSeries.first.
const (
	firstFree     = iota // no host yet
	firstMaking          // a worker is making it
	firstReady           // it holds its host's series
	firstReleased        // ready, and no longer counted in the budget
)

// firstSeries is the series of a model's first host.
type firstSeries struct {
	host string
	sr   series
}

// seriesShard is one part of a model's hosts.
type seriesShard struct {
	mu sync.Mutex
	m  map[string]*series
}

// series is one host's state.
type series struct {
	mu sync.Mutex
	r  *model.Recent // nil when the model does not explain with it
	h  model.History
}

// newHostSeries returns the series state of s's hosts for explanations by
// method, or nil when s neither scores over a window nor explains with
// the host's recent samples. Its hosts draw on a budget of their own
// until a [modelSet] gives it the shared one.
func newHostSeries(s *model.Scorer, method model.Method) *hostSeries {
	recent := method == model.MethodRecent || (method == "" && s.DefaultSeriesMethod() == model.MethodRecent)
	if s.Window() <= 1 && !recent {
		return nil
	}
	per := 8 * s.Window()
	if recent {
		per += 8 * (model.RecentWindow - 1) * s.NumFeatures()
	}
	hs := &hostSeries{s: s, recent: recent, per: int64(per), minHost: minSeriesHosts / seriesShards,
		budget: newSeriesBudget(seriesBudgetBytes)}
	return hs // shards' maps are made on their first host: a host model has a host or few
}

// of returns host's series, or nil for a sample without a host, which is
// scored alone.
func (hs *hostSeries) of(host string) *series {
	if host == "" {
		return nil
	}
	if sr := hs.firstOf(host); sr != nil {
		return sr
	}
	sh := &hs.shards[shardOf(host)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sr, ok := sh.m[host]; ok {
		return sr
	}
	if len(sh.m) >= hs.minHost && hs.budget.used.Load()+hs.per > hs.budget.limit {
		for k := range sh.m {
			delete(sh.m, k)
			hs.hosts.Add(-1)
			hs.budget.used.Add(-hs.per)
			break
		}
	}
	if sh.m == nil {
		sh.m = make(map[string]*series, 1)
	}
	sr := &series{}
	hs.init(sr)
	sh.m[strings.Clone(host)] = sr
	hs.hosts.Add(1)
	hs.budget.used.Add(hs.per)
	return sr
}

// firstOf returns host's series when host is the model's first host,
// making it when the model has none yet, and nil otherwise.
func (hs *hostSeries) firstOf(host string) *series {
	for {
		switch hs.firstState.Load() {
		case firstReady, firstReleased:
			if hs.first.host == host {
				return &hs.first.sr
			}
			return nil
		case firstFree:
			if !hs.firstState.CompareAndSwap(firstFree, firstMaking) {
				continue
			}
			hs.first.host = strings.Clone(host)
			hs.init(&hs.first.sr)
			hs.hosts.Add(1)
			hs.budget.used.Add(hs.per)
			hs.firstState.Store(firstReady)
			return &hs.first.sr
		default: // another worker is making it, for a moment
			runtime.Gosched()
		}
	}
}

// prefetch asks the CPU for hs's memory, first host's series included,
// for a model not used lately (see [model.Scorer.Prefetch]). hs may be nil.
func (hs *hostSeries) prefetch() {
	if hs != nil {
		prefetch.Range(unsafe.Pointer(hs), unsafe.Offsetof(hs.shards))
	}
}

// init makes sr a new series.
func (hs *hostSeries) init(sr *series) {
	hs.s.InitHistory(&sr.h)
	if hs.recent {
		sr.r = hs.s.NewRecent(0)
	}
}

// release returns the memory of every host to the budget: the model is no
// longer served.
func (hs *hostSeries) release() {
	if hs.firstState.CompareAndSwap(firstReady, firstReleased) {
		hs.hosts.Add(-1)
		hs.budget.used.Add(-hs.per)
	}
	for i := range hs.shards {
		sh := &hs.shards[i]
		sh.mu.Lock()
		n := int64(len(sh.m))
		clear(sh.m)
		sh.mu.Unlock()
		hs.hosts.Add(-n)
		hs.budget.used.Add(-n * hs.per)
	}
}

// shardOf spreads hosts over the shards (FNV-1a).
func shardOf(host string) int {
	h := uint32(2166136261)
	for i := 0; i < len(host); i++ {
		h ^= uint32(host[i])
		h *= 16777619
	}
	return int(h % seriesShards)
}

// smooth turns r, the stateless result of one of the series' samples, into
// its result over the series' window.
func (sr *series) smooth(s *model.Scorer, r *model.Result) {
	sr.mu.Lock()
	s.Smooth(&sr.h, r)
	sr.mu.Unlock()
}

// explain explains sample i of the batch last scored with ws, a sample of
// the series (nil: none), with method.
func (sr *series) explain(s *model.Scorer, ws *model.Workspace, i int, method model.Method, dst *model.Explanation) error {
	if sr == nil {
		return s.ExplainSeries(ws, i, nil, method, dst)
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return s.ExplainSeries(ws, i, sr.r, method, dst)
}

// add records sample i of the batch last scored with ws as the series'
// newest sample for explanations.
func (sr *series) add(ws *model.Workspace, i int) error {
	if sr == nil || sr.r == nil {
		return nil
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return sr.r.Add(ws, i)
}
