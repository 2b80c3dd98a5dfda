package serve

import (
	"strings"
	"sync"

	"github.com/dagmm/dagmm/model"
)

// seriesBudget bounds the memory that hosts' series state may take; with
// the default window and 38 features a host takes about 18 KiB, so about
// 14,000 hosts fit. Over the cap, a host picked at random is forgotten: its
// next sample starts a new series.
const seriesBudget = 256 << 20

// minSeriesHosts is the fewest hosts kept whatever their size.
const minSeriesHosts = 1000

// hostSeries holds each host's recent samples for a model that scores over
// a window of a host's samples ([model.Scorer.Smooth]) or explains with
// them ([model.MethodRecent]). It is safe for concurrent use; a host's
// samples are taken in the order workers score them, which is their
// arrival order but for messages scored at the same moment.
type hostSeries struct {
	s       *model.Scorer
	recent  bool // keep each host's squared errors for MethodRecent
	maxHost int

	mu sync.Mutex
	m  map[string]*series
}

// series is one host's state.
type series struct {
	mu sync.Mutex
	h  *model.History
	r  *model.Recent // nil when the model does not explain with it
}

// newHostSeries returns the series state of s's hosts for explanations by
// method, or nil when s neither scores over a window nor explains with
// the host's recent samples.
func newHostSeries(s *model.Scorer, method model.Method) *hostSeries {
	recent := method == model.MethodRecent || (method == "" && s.DefaultSeriesMethod() == model.MethodRecent)
	if s.Window() <= 1 && !recent {
		return nil
	}
	per := 8 * s.Window()
	if recent {
		per += 8 * (model.RecentWindow - 1) * s.NumFeatures()
	}
	return &hostSeries{s: s, recent: recent, maxHost: max(minSeriesHosts, seriesBudget/per), m: make(map[string]*series)}
}

// of returns host's series, or nil for a sample without a host, which is
// scored alone.
func (hs *hostSeries) of(host string) *series {
	if host == "" {
		return nil
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	sr, ok := hs.m[host]
	if !ok {
		if len(hs.m) >= hs.maxHost {
			for k := range hs.m {
				delete(hs.m, k)
				break
			}
		}
		sr = &series{h: hs.s.NewHistory()}
		if hs.recent {
			sr.r = hs.s.NewRecent(0)
		}
		hs.m[strings.Clone(host)] = sr
	}
	return sr
}

// smooth turns r, the stateless result of one of the series' samples, into
// its result over the series' window.
func (sr *series) smooth(s *model.Scorer, r *model.Result) {
	sr.mu.Lock()
	s.Smooth(sr.h, r)
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
