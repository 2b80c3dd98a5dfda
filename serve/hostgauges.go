package serve

import (
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/model"
)

// Defaults of [ScoringConfig.HostSeriesMax] and [ScoringConfig.HostSeriesTTL].
const (
	DefaultHostSeriesMax = 10000
	DefaultHostSeriesTTL = 10 * time.Minute
)

// hostGauges exports each host's latest scored sample as the dagmm_host_*
// series (deploy/prometheus/README.md has the contract). It keeps at most
// max hosts, in the order they were last scored, so that both the cap and
// the expiry of hosts not scored for ttl are exact and cost O(1) a sample:
// a new host takes the place of the least recently scored one only when
// that one has expired, and is otherwise refused and counted. It is safe
// for concurrent use.
type hostGauges struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	hosts   *simplelru.LRU[string, *hostEntry] // least recently scored first
	dropped uint64                             // samples of hosts refused at the cap
	expired uint64                             // hosts removed after ttl
}

// hostEntry is one host's exported state.
type hostEntry struct {
	seen      time.Time // last scored
	created   time.Time // when the host's series appeared: the counter's start
	score     float64
	threshold float64
	severity  float64
	anomaly   bool
	anomalies uint64
	feature   string // the latest anomaly's top feature, "" before the first
	share     float64
}

// hostSnapshot is an entry copied out for Collect.
type hostSnapshot struct {
	host string
	hostEntry
}

// hostScore is one scored sample of a host, as the hook in the worker
// notes it.
type hostScore struct {
	host                       string
	score, threshold, severity float64
	anomaly                    bool
	feature                    string // the anomaly's top feature ("" for none)
	share                      float64
}

var (
	hostLabels        = []string{"host"}
	descHostEnergy    = prometheus.NewDesc("dagmm_host_energy", "The latest scored sample's score, per host: its energy, or its window's mean energy for a model with a window.", hostLabels, nil)
	descHostThreshold = prometheus.NewDesc("dagmm_host_threshold", "The anomaly threshold of the model that scored the host's latest sample.", hostLabels, nil)
	descHostSeverity  = prometheus.NewDesc("dagmm_host_severity", "The host's latest sample's severity, 0 to 100: above 50 exactly when it is an anomaly (bands at 60, 75 and 90).", hostLabels, nil)
	descHostAnomaly   = prometheus.NewDesc("dagmm_host_anomaly", "1 when the host's latest sample is an anomaly, else 0.", hostLabels, nil)
	descHostAnomalies = prometheus.NewDesc("dagmm_host_anomalies_total", "Anomalies scored for the host since its series appeared.", hostLabels, nil)
	descHostExplain   = prometheus.NewDesc("dagmm_host_explanation", "The share (0 to 1) of the host's latest anomaly that its top feature takes in the explanation dagmm gave: one series per host, for the top feature.", []string{"host", "feature"}, nil)
	descHostSeries    = prometheus.NewDesc("dagmm_host_series", "Hosts with dagmm_host_* series now (at most --host-series-max).", nil, nil)
	descHostDropped   = prometheus.NewDesc("dagmm_host_series_dropped_total", "Scored samples not in the dagmm_host_* series because their host was new and --host-series-max hosts, none expired, already had series.", nil, nil)
	descHostExpired   = prometheus.NewDesc("dagmm_host_series_expired_total", "Hosts whose dagmm_host_* series were removed because they were not scored for --host-series-ttl.", nil, nil)
)

// newHostGauges returns the gauges of at most max hosts, each dropped
// once not scored for ttl, with the time from now (time.Now when nil).
func newHostGauges(max int, ttl time.Duration, now func() time.Time) *hostGauges {
	if now == nil {
		now = time.Now
	}
	// simplelru evicts by itself only past its size; record never lets
	// it reach that (it refuses or removes first), so the size is max+1.
	hosts, err := simplelru.NewLRU[string, *hostEntry](max+1, nil)
	if err != nil {
		panic(err) // max+1 > 0: Config.Validate refuses a negative max
	}
	return &hostGauges{max: max, ttl: ttl, now: now, hosts: hosts}
}

// record updates the hosts of scores, all scored now.
func (g *hostGauges) record(scores []hostScore) {
	if len(scores) == 0 {
		return
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range scores {
		s := &scores[i]
		e, ok := g.hosts.Get(s.host)
		if !ok {
			if e = g.add(s.host, now); e == nil {
				g.dropped++
				continue
			}
		}
		e.seen = now
		e.score, e.threshold, e.severity, e.anomaly = s.score, s.threshold, s.severity, s.anomaly
		if s.anomaly {
			e.anomalies++
			if s.feature != "" {
				e.feature, e.share = s.feature, s.share
			}
		}
	}
}

// add makes an entry for a new host, or returns nil when max hosts not
// yet expired have one. The caller holds mu.
func (g *hostGauges) add(host string, now time.Time) *hostEntry {
	if g.hosts.Len() >= g.max {
		g.expire(now)
		if g.hosts.Len() >= g.max {
			return nil
		}
	}
	e := &hostEntry{created: now}
	// The host may point into a reused message buffer.
	g.hosts.Add(strings.Clone(host), e)
	return e
}

// expire removes the hosts not scored for ttl, least recently scored
// first. The caller holds mu.
func (g *hostGauges) expire(now time.Time) {
	for {
		_, e, ok := g.hosts.GetOldest()
		if !ok || now.Sub(e.seen) < g.ttl {
			return
		}
		g.hosts.RemoveOldest()
		g.expired++
	}
}

// Describe implements [prometheus.Collector].
func (g *hostGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHostEnergy, descHostThreshold, descHostSeverity, descHostAnomaly,
		descHostAnomalies, descHostExplain, descHostSeries, descHostDropped, descHostExpired} {
		ch <- d
	}
}

// Collect implements [prometheus.Collector]: the hosts are copied under
// the lock, and their metrics made outside it, so that a scrape of many
// hosts holds up scoring for a copy only.
func (g *hostGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	g.expire(g.now())
	snap := make([]hostSnapshot, 0, g.hosts.Len())
	for _, host := range g.hosts.Keys() {
		e, _ := g.hosts.Peek(host)
		snap = append(snap, hostSnapshot{host: host, hostEntry: *e})
	}
	dropped, expired := g.dropped, g.expired
	g.mu.Unlock()
	for i := range snap {
		s := &snap[i]
		ch <- prometheus.MustNewConstMetric(descHostEnergy, prometheus.GaugeValue, s.score, s.host)
		ch <- prometheus.MustNewConstMetric(descHostThreshold, prometheus.GaugeValue, s.threshold, s.host)
		ch <- prometheus.MustNewConstMetric(descHostSeverity, prometheus.GaugeValue, s.severity, s.host)
		ch <- prometheus.MustNewConstMetric(descHostAnomaly, prometheus.GaugeValue, b2f(s.anomaly), s.host)
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(descHostAnomalies, prometheus.CounterValue, float64(s.anomalies), s.created, s.host)
		if s.feature != "" {
			ch <- prometheus.MustNewConstMetric(descHostExplain, prometheus.GaugeValue, s.share, s.host, s.feature)
		}
	}
	ch <- prometheus.MustNewConstMetric(descHostSeries, prometheus.GaugeValue, float64(len(snap)))
	ch <- prometheus.MustNewConstMetric(descHostDropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(descHostExpired, prometheus.CounterValue, float64(expired))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// noteHost notes sample i's result r, scored by st, for the host gauges:
// with the anomaly's top feature, from the explanation the caller gave
// when it asked for one (w.explained), else from the reconstruction
// error's shares. Samples without a host (KServe v2) have no series.
func (w *worker) noteHost(st *modelState, host string, i int, r *model.Result) {
	if host == "" {
		return
	}
	s := hostScore{host: host, score: r.Score, threshold: st.threshold, severity: r.Severity, anomaly: r.Anomaly}
	if r.Anomaly {
		if w.explained == i && len(w.ex.Features) > 0 {
			top := w.ex.Top()
			s.feature, s.share = top.Feature, top.Share
		} else if k := argmax(r.Share); k >= 0 {
			s.feature, s.share = st.features[k], r.Share[k]
		}
	}
	w.hostScores = append(w.hostScores, s)
}

// argmax returns the index of the largest of xs (the first of equals), or
// -1 for none.
func argmax(xs []float64) int {
	k := -1
	for i, x := range xs {
		if k < 0 || x > xs[k] {
			k = i
		}
	}
	return k
}
