package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/singleflight"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/model"
)

// ErrLearning is wrapped by the error [Models.ForHost] returns for a host
// that has no model yet (and no fleet model scores it): its samples are
// not scored, not dead letters either. The service counts them
// (dagmm_samples_learning_total) and says so in HTTP responses.
var ErrLearning = errors.New("serve: host has no model yet (learning)")

// Reasons a registry model is refused (the reason label of
// dagmm_model_refused_total).
const (
	refusedCorrupt  = "corrupt"  // the stored object is not the model published
	refusedFeatures = "features" // the model takes other features than the samples carry
	refusedLoad     = "load"     // the registry could not be read, or the model not prepared
)

// RegistrySourceConfig configures a [RegistrySource].
type RegistrySourceConfig struct {
	// FleetKey is the registry host name of the fleet (group) model, which
	// scores the hosts without a model of their own. Default "fleet". A
	// registry without a model under it has no fleet model: such hosts are
	// learning.
	FleetKey string
	// CacheSize bounds the number of host models held in memory; the least
	// recently used is evicted beyond it. Zero: no bound by number, but
	// 1,024 when CacheBytes gives none either.
	CacheSize int
	// CacheBytes bounds the memory of the host models held: the cache holds
	// at most CacheBytes / [ModelBytes] of the base model (at least one).
	// Zero takes [ModelCacheBytesFor] the Go memory limit (none without a
	// limit); negative, none.
	CacheBytes int64
	// NegativeTTL is how long a host found without a model is not looked up
	// again, so that a flood of samples from a new host does not hammer
	// the registry. Published models are noticed at once all the same
	// (the registry is watched). Default 10s.
	NegativeTTL time.Duration
	// LoadTimeout bounds one look-up in the registry. Default 5s.
	LoadTimeout time.Duration
	// Partitions and Partition, when Partitions.N is 2 or more, say which
	// hosts this replica scores: those of partition Partition (see
	// [Config.Partitioning]). The registry's changes of the others are not
	// loaded, and a model of another host cached is dropped. Such a host's
	// model still loads on demand (an HTTP request, a sample published on
	// another subject than its host's), counted by
	// dagmm_fleet_foreign_loads_total.
	Partitions fleet.Partitions
	Partition  int
	// Log receives the loads, refusals and evictions; nil discards them.
	Log *slog.Logger
}

func (c *RegistrySourceConfig) defaults() {
	setDefault(&c.FleetKey, "fleet")
	setDefault(&c.NegativeTTL, 10*time.Second)
	setDefault(&c.LoadTimeout, 5*time.Second)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// RegistrySource is a [ModelSource] that scores each host with its own
// model from a [fleet.Registry]. Host models load on first use into a
// least-recently-used cache of at most CacheSize models; a host without a
// model is scored by the fleet model (the registry's FleetKey host) when
// there is one, or is learning ([ErrLearning]).
//
// Samples are decoded with the features of the base model: the fleet model
// when the registry has one at start, otherwise the model given to
// [NewRegistrySource]. A host model must take the same features; one that
// does not is refused, like a corrupted one, and reported.
//
// Watch follows the registry: a new version (a publish or a rollback) of a
// cached host or of the fleet model is loaded and validated at once, and
// replaces the old one only when valid. Call [RegistrySource.Close] when
// done.
type RegistrySource struct {
	reg  *fleet.Registry
	cfg  RegistrySourceConfig
	log  *slog.Logger
	base *Loaded // fixes the features; the default when there is no fleet model

	fleet   atomic.Pointer[Loaded] // nil: no fleet model
	cache   *lru.Cache[string, *Loaded]
	missing *expirable.LRU[string, struct{}] // hosts found without a model
	loads   singleflight.Group
	evicted atomic.Pointer[func(*Loaded)]
	gen     atomic.Uint64 // registry changes seen by Watch

	changes <-chan fleet.Change
	stop    context.CancelFunc
	mu      sync.Mutex // serialises replacing a cached model

	met registryMetrics
}

// registryMetrics are a RegistrySource's metrics.
type registryMetrics struct {
	refused   *prometheus.CounterVec // reason
	loads     *prometheus.CounterVec // result
	evictions prometheus.Counter
	updates   prometheus.Counter
	foreign   prometheus.Counter
	cached    prometheus.GaugeFunc
	learning  prometheus.GaugeFunc
}

// NewRegistrySource watches reg and loads the fleet model if there is one.
// base, which may be nil when the registry has a fleet model, gives the
// features samples are decoded with when it has none. It fails when
// neither gives them.
func NewRegistrySource(ctx context.Context, reg *fleet.Registry, base *Loaded, cfg RegistrySourceConfig) (*RegistrySource, error) {
	cfg.defaults()
	r := &RegistrySource{reg: reg, cfg: cfg, log: cfg.Log, base: base}
	var err error
	r.missing = expirable.NewLRU[string, struct{}](max(cfg.CacheSize, 1024), nil, cfg.NegativeTTL)
	r.met = r.newMetrics()
	for _, reason := range []string{refusedCorrupt, refusedFeatures, refusedLoad} {
		r.met.refused.WithLabelValues(reason)
	}
	for _, result := range []string{"loaded", "failed"} {
		r.met.loads.WithLabelValues(result)
	}
	// Watch before loading, so that no change falls between.
	wctx, stop := context.WithCancel(context.Background())
	if r.changes, err = reg.Watch(wctx); err != nil {
		stop()
		return nil, err
	}
	r.stop = stop
	l, err := r.load(ctx, cfg.FleetKey, 0)
	switch {
	case err == nil:
		if r.base == nil {
			r.base = l
		} else if err := sameFeatures(l, r.base); err != nil {
			r.refuse(cfg.FleetKey, 0, refusedFeatures, err)
			l = nil
		}
		if l != nil {
			r.fleet.Store(l)
		}
	case errors.Is(err, fleet.ErrNoModel):
	default:
		r.refuse(cfg.FleetKey, 0, reasonOf(err), err)
	}
	if r.base == nil {
		stop()
		return nil, fmt.Errorf("serve: fleet mode: no features to decode samples with: publish a fleet model under the host %q or give a model file", cfg.FleetKey)
	}
	r.cfg.CacheSize = cacheSize(cfg, ModelBytes(r.base), GoMemoryLimit())
	// Watch and ForHost, the cache's only users, run after the return.
	if r.cache, err = lru.NewWithEvict(r.cfg.CacheSize, r.onEvict); err != nil {
		stop()
		return nil, fmt.Errorf("serve: model cache: %w", err)
	}
	r.log.Info("host model cache", "models", r.cfg.CacheSize, "bytes_per_model", ModelBytes(r.base))
	return r, nil
}

// cacheSize returns the number of host models the cache holds under c's
// bounds, perModel being the bytes of one and memLimit the Go memory limit.
func cacheSize(c RegistrySourceConfig, perModel, memLimit int64) int {
	bytes := c.CacheBytes
	if bytes == 0 {
		bytes = ModelCacheBytesFor(memLimit)
	}
	n := c.CacheSize
	if bytes > 0 {
		byBytes := int(max(1, bytes/perModel))
		if n <= 0 || byBytes < n {
			n = byBytes
		}
	}
	if n <= 0 {
		n = 1024
	}
	return n
}

// CacheSize returns the number of host models the cache holds.
func (r *RegistrySource) CacheSize() int { return r.cfg.CacheSize }

// Close stops watching the registry.
func (r *RegistrySource) Close() { r.stop() }

// Collectors returns the source's metrics, for the service to register.
func (r *RegistrySource) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.met.refused, r.met.loads, r.met.evictions, r.met.updates, r.met.foreign, r.met.cached, r.met.learning}
}

// SetEvicted makes the source call f with each model it stops serving (an
// evicted host model, a replaced version), so that the service drops the
// state it prepared for it.
func (r *RegistrySource) SetEvicted(f func(*Loaded)) { r.evicted.Store(&f) }

// Serving reports whether l is one of the models the source serves now.
func (r *RegistrySource) Serving(l *Loaded) bool {
	if l == r.base || l == r.fleet.Load() {
		return true
	}
	c, ok := r.cache.Peek(l.Name)
	return ok && c == l
}

// Default returns the fleet model, or the base model when there is none.
func (r *RegistrySource) Default() *Loaded {
	if l := r.fleet.Load(); l != nil {
		return l
	}
	return r.base
}

// ForHost returns host's model, loading it from the registry on a miss;
// for a host without one, the fleet model or an error wrapping
// [ErrLearning].
func (r *RegistrySource) ForHost(host string) (*Loaded, error) {
	if l, ok := CachedModel(r.cache, host); ok {
		return l, nil
	}
	if host == "" || r.missing.Contains(host) {
		return r.noModel(host)
	}
	v, err, _ := r.loads.Do(host, func() (any, error) {
		if l, ok := r.cache.Get(host); ok {
			return l, nil
		}
		gen := r.gen.Load()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.LoadTimeout)
		defer cancel()
		l, err := r.loadChecked(ctx, host, 0)
		if err != nil {
			r.missing.Add(host, struct{}{})
			if !errors.Is(err, fleet.ErrNoModel) {
				r.refuse(host, 0, reasonOf(err), err)
			}
			return nil, err
		}
		r.cache.Add(host, l)
		if r.gen.Load() != gen {
			// A change arrived while loading: the version read may be the
			// one it replaced, and Watch may have passed the host over as
			// not cached. Read again; Watch sees the host cached now.
			if l2, err := r.loadChecked(ctx, host, 0); err == nil && l2.Version != l.Version {
				r.mu.Lock()
				if old, ok := r.cache.Peek(host); ok && old == l {
					r.cache.Add(host, l2)
					r.dropped(l)
					l = l2
				}
				r.mu.Unlock()
			}
		}
		if !r.owns(host) {
			r.met.foreign.Inc()
		}
		r.log.Info("host model loaded", "host", host, "version", l.Version)
		return l, nil
	})
	if err != nil {
		return r.noModel(host)
	}
	return v.(*Loaded), nil
}

// noModel is what scores a host without a model of its own.
func (r *RegistrySource) noModel(host string) (*Loaded, error) {
	if l := r.fleet.Load(); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("%w: host %q", ErrLearning, host)
}

// errFeatures marks a model refused for its features.
var errFeatures = errors.New("wrong features")

func reasonOf(err error) string {
	switch {
	case errors.Is(err, fleet.ErrCorrupt):
		return refusedCorrupt
	case errors.Is(err, errFeatures):
		return refusedFeatures
	}
	return refusedLoad
}

// Reload returns the default model: the registry is followed by Watch.
func (r *RegistrySource) Reload(context.Context) (*Loaded, error) { return r.Default(), nil }

// Watch applies the registry's changes until ctx is done: a new current
// version of a cached host (or of the fleet model) is loaded, validated
// and swapped in; a host known to have no model is looked up again on its
// next sample. It notifies changed when the fleet model changes.
func (r *RegistrySource) Watch(ctx context.Context, changed chan<- struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-r.changes:
			if !ok {
				return nil
			}
			if r.apply(ctx, c) {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// apply applies one change; it reports whether the default model changed.
func (r *RegistrySource) apply(ctx context.Context, c fleet.Change) bool {
	host := c.Host
	r.gen.Add(1) // before looking at the cache: see ForHost
	r.missing.Remove(host)
	isFleet := host == r.cfg.FleetKey
	if !isFleet && !r.owns(host) {
		// Another replica's host: not kept up to date here, so not
		// kept; its next sample here (if any) reads the registry.
		r.cache.Remove(host)
		return false
	}
	if _, cached := r.cache.Peek(host); !cached && !isFleet {
		return false // loaded on its next sample
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.LoadTimeout)
	defer cancel()
	l, err := r.loadChecked(lctx, host, c.Version)
	if err != nil {
		r.refuse(host, c.Version, reasonOf(err), err)
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.met.updates.Inc()
	r.log.Info("host model updated", "host", host, "version", l.Version, "from", c.From, "cause", c.Cause)
	if isFleet {
		old := r.fleet.Swap(l)
		if old != nil && old != r.base {
			r.dropped(old)
		}
		return true
	}
	old, ok := r.cache.Peek(host)
	if !ok {
		return false // evicted meanwhile
	}
	r.cache.Add(host, l) // an update: no eviction callback
	r.dropped(old)
	return false
}

// owns reports whether host is one of this replica's.
func (r *RegistrySource) owns(host string) bool {
	return r.cfg.Partitions.N < 2 || r.cfg.Partitions.Of(host) == r.cfg.Partition
}

// Hosts returns the hosts whose models are cached, in no order.
func (r *RegistrySource) Hosts() []string { return r.cache.Keys() }

// loadChecked is load, refusing a model that takes other features than
// the base model.
func (r *RegistrySource) loadChecked(ctx context.Context, host string, v uint64) (*Loaded, error) {
	l, err := r.load(ctx, host, v)
	if err != nil {
		return nil, err
	}
	if err := sameFeatures(l, r.base); err != nil {
		return nil, fmt.Errorf("%w: %w", errFeatures, err)
	}
	return l, nil
}

// load reads version v of host's model (0: the current one), validated by
// the registry, and prepares it.
func (r *RegistrySource) load(ctx context.Context, host string, v uint64) (*Loaded, error) {
	var (
		data []byte
		info fleet.ModelInfo
		err  error
	)
	if v == 0 {
		data, info, err = r.reg.Get(ctx, host)
	} else {
		data, info, err = r.reg.GetVersion(ctx, host, v)
	}
	if err != nil {
		if !errors.Is(err, fleet.ErrNoModel) {
			r.met.loads.WithLabelValues("failed").Inc()
		}
		return nil, err
	}
	version := strconv.FormatUint(info.Version, 10)
	l, err := LoadArtifact(data, host, "registry:"+host+"@"+version)
	if err != nil {
		r.met.loads.WithLabelValues("failed").Inc()
		return nil, fmt.Errorf("%w: host %q version %s: %w", fleet.ErrCorrupt, host, version, err)
	}
	l.Version = version
	r.met.loads.WithLabelValues("loaded").Inc()
	return l, nil
}

// refuse reports a model that cannot serve: the current one (if any)
// keeps scoring.
func (r *RegistrySource) refuse(host string, version uint64, reason string, err error) {
	r.met.refused.WithLabelValues(reason).Inc()
	r.log.Error("model refused; the previous model (if any) keeps scoring", "host", host, "version", version, "reason", reason, "err", err)
}

// onEvict is the cache's eviction callback.
func (r *RegistrySource) onEvict(host string, l *Loaded) {
	r.met.evictions.Inc()
	r.log.Debug("host model evicted", "host", host, "version", l.Version)
	r.dropped(l)
}

func (r *RegistrySource) dropped(l *Loaded) {
	if f := r.evicted.Load(); f != nil {
		(*f)(l)
	}
}

// sameFeatures checks that l takes base's features, constant ones
// included, since samples are decoded with base's.
func sameFeatures(l, base *Loaded) error {
	lm, bm := l.Scorer.Model(), base.Scorer.Model()
	if !slices.Equal(lm.Features, bm.Features) {
		return fmt.Errorf("model %s version %s takes the features %v, the samples carry %v", l.Name, l.Version, lm.Features, bm.Features)
	}
	names := func(cs []model.ConstantFeature) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Name
		}
		return out
	}
	if !slices.Equal(names(lm.Constant), names(bm.Constant)) {
		return fmt.Errorf("model %s version %s has the constant features %v, the samples carry %v", l.Name, l.Version, names(lm.Constant), names(bm.Constant))
	}
	return nil
}

// newMetrics makes r's metrics unregistered: the service registers them
// through Collectors.
func (r *RegistrySource) newMetrics() registryMetrics {
	f := metricFactory{promauto.With(nil)}
	return registryMetrics{
		refused:   f.counterVec("dagmm_model_refused_total", "Registry models refused (the previous one keeps scoring), by reason: corrupt, features, load.", "reason"),
		loads:     f.counterVec("dagmm_fleet_model_loads_total", "Models read from the registry, by result.", "result"),
		evictions: f.counter("dagmm_fleet_model_evictions_total", "Host models evicted from the cache (least recently used)."),
		updates:   f.counter("dagmm_fleet_model_updates_total", "New versions (publishes, rollbacks) swapped in while serving."),
		foreign:   f.counter("dagmm_fleet_foreign_loads_total", "Host models loaded on demand for hosts of another partition (HTTP requests, samples published on another subject than their host's)."),
		cached:    f.gaugeFunc("dagmm_fleet_models_cached", "Host models held in the cache.", func() float64 { return float64(r.cache.Len()) }),
		learning:  f.gaugeFunc("dagmm_hosts_learning", "Hosts seen lately (within the negative cache's time to live) that have no model of their own.", func() float64 { return float64(r.missing.Len()) }),
	}
}
