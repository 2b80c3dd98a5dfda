package serve

import (
	"math"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// TestHostModelParams checks the parameter count HostModelBytes was
// measured at: the four-metric model of dagmm train's architecture.
func TestHostModelParams(t *testing.T) {
	m := modeltest.Metrics4(1)
	m.Calibration.Quantiles = make([]float64, 101) // a trained model's
	if got := modelParams(m); got != hostModelParams {
		t.Errorf("four-metric host model: %d parameters, hostModelParams says %d", got, hostModelParams)
	}
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := ModelBytes(&Loaded{Scorer: s}); got != HostModelBytes {
		t.Errorf("ModelBytes of the four-metric model %d, want HostModelBytes %d", got, HostModelBytes)
	}
	wide := modeltest.KDDCup(1)
	wide.Calibration.Quantiles = make([]float64, 101)
	ws, err := model.NewScorer(wide)
	if err != nil {
		t.Fatal(err)
	}
	if got := ModelBytes(&Loaded{Scorer: ws}); got <= 10*HostModelBytes {
		t.Errorf("ModelBytes of a 118-feature model %d, want far more than a four-metric one's %d", got, HostModelBytes)
	}
}

func TestCacheSize(t *testing.T) {
	const per = HostModelBytes
	gib := int64(1 << 30)
	for _, tc := range []struct {
		name     string
		cfg      RegistrySourceConfig
		memLimit int64
		want     int
	}{
		{"nothing set, no limit", RegistrySourceConfig{}, math.MaxInt64, 1024},
		{"count only", RegistrySourceConfig{CacheSize: 50}, math.MaxInt64, 50},
		{"bytes only", RegistrySourceConfig{CacheBytes: 100 * per}, math.MaxInt64, 100},
		{"bytes tighter than count", RegistrySourceConfig{CacheSize: 500, CacheBytes: 100 * per}, math.MaxInt64, 100},
		{"count tighter than bytes", RegistrySourceConfig{CacheSize: 10, CacheBytes: 100 * per}, math.MaxInt64, 10},
		{"bytes for less than one model", RegistrySourceConfig{CacheBytes: 10}, math.MaxInt64, 1},
		{"from the memory limit", RegistrySourceConfig{}, 4*gib + MemoryReserve, int(gib / per)},
		{"limit and count", RegistrySourceConfig{CacheSize: 2000}, 4*gib + MemoryReserve, 2000},
		{"no byte cap despite a limit", RegistrySourceConfig{CacheBytes: -1}, 4*gib + MemoryReserve, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cacheSize(tc.cfg, per, tc.memLimit); got != tc.want {
				t.Errorf("cacheSize(%+v, %d, %d) = %d, want %d", tc.cfg, per, tc.memLimit, got, tc.want)
			}
		})
	}
}

// TestFleetByteCap bounds the host models by memory: a cap of two models'
// bytes holds two, on a real registry.
func TestFleetByteCap(t *testing.T) {
	e := newFleetEnv(t)
	hosts := []string{"h-a", "h-b", "h-c"}
	for i, h := range hosts {
		e.publish(t, h, hostModel(t, uint64(100+i), 10*float64(i)))
	}
	base, err := LoadArtifact(artifact(t, modeltest.Metrics4(33)), "dagmm", "base")
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewRegistrySource(fleetCtx(t), e.reg, base, RegistrySourceConfig{CacheBytes: 2*ModelBytes(base) + 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	if n := src.CacheSize(); n != 2 {
		t.Fatalf("cache of %d models under a cap of two models' bytes, want 2", n)
	}
	for _, h := range hosts {
		l, err := src.ForHost(h)
		if err != nil || l.Name != h {
			t.Fatalf("host %s: model %v, %v", h, l, err)
		}
	}
	if n := src.cache.Len(); n != 2 {
		t.Errorf("%d models cached, want 2", n)
	}
}

// TestHTTPMemoryLimitInFleetMode: in fleet mode the request budget is
// sized from the memory limit less the host models' cap, so that both fit.
func TestHTTPMemoryLimitInFleetMode(t *testing.T) {
	gib := int64(1 << 30)
	limit := 4*gib + MemoryReserve
	fleetOn := func(cacheBytes int64) Config {
		var c Config
		c.Fleet.Enabled, c.Fleet.Models.CacheBytes = true, cacheBytes
		return c
	}
	for _, tc := range []struct {
		name     string
		cfg      Config
		memLimit int64
		want     int64
	}{
		{"not fleet mode", Config{}, limit, limit},
		{"fleet, default cap: a quarter", fleetOn(0), limit, limit - gib},
		{"fleet, cap given", fleetOn(512 << 20), limit, limit - 512<<20},
		{"fleet, no cap", fleetOn(-1), limit, limit},
		{"fleet, no limit", fleetOn(0), math.MaxInt64, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := httpMemoryLimit(tc.cfg, tc.memLimit); got != tc.want {
				t.Errorf("httpMemoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
	// Models, requests and the reserve together stay within the limit.
	c := fleetOn(0)
	inflight := InFlightBytesFor(httpMemoryLimit(c, limit), 8<<20)
	if total := MemoryReserve + BytesPerBodyByte*inflight + ModelCacheBytesFor(limit); total > limit {
		t.Errorf("reserve + requests + models = %d, over the limit %d", total, limit)
	}
}
