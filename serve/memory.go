package serve

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/dagmm/dagmm/model"
)

// Memory per request. Serving a request holds its body and what is made
// from it (the decoded samples, the response) until the response is
// written. BenchmarkRequestMemory measures the bytes allocated per body
// byte for the largest requests of each shape: at most about 9 (POST
// /v1/score?explain=all on the four-metric model, and the KServe infer
// endpoint with every output, whose responses are several times their
// bodies). The default bound on body bytes in flight keeps
// [BytesPerBodyByte] bytes per body byte under the Go memory limit.
const (
	// BytesPerBodyByte is the memory a request may need per byte of body:
	// the worst case measured (9.1), with room for the garbage the
	// collector has not yet reclaimed. The default
	// [HTTPConfig.MaxInFlightBytes] is sized with it.
	BytesPerBodyByte = 12
	// MemoryReserve is the memory kept out of the request budget for the
	// rest of the process: the model, the NATS side, the runtime.
	MemoryReserve = 96 << 20
	// DefaultMaxInFlightBytes is [HTTPConfig.MaxInFlightBytes] when no Go
	// memory limit is set: eight requests of the default largest size.
	DefaultMaxInFlightBytes = 64 << 20
	// RetryAfter is the Retry-After header, in seconds, of a request
	// refused because too many body bytes are in flight.
	RetryAfter = 1
)

// InFlightBytesFor returns the default bound on request body bytes in
// flight under the Go memory limit memLimit (math.MaxInt64 or below 1 for
// none): the limit less [MemoryReserve], divided by [BytesPerBodyByte], and
// never less than maxBody so that a request of the largest size can pass.
func InFlightBytesFor(memLimit, maxBody int64) int64 {
	n := int64(DefaultMaxInFlightBytes)
	if memLimit > 0 && memLimit < math.MaxInt64 {
		n = (memLimit - MemoryReserve) / BytesPerBodyByte
	}
	return max(n, maxBody)
}

// GoMemoryLimit returns the Go runtime's memory limit, math.MaxInt64 when
// none is set.
func GoMemoryLimit() int64 { return debug.SetMemoryLimit(-1) }

// bodyBudget bounds the request body bytes held by the requests in
// flight. A request takes its Content-Length (the largest body allowed
// when the length is not known) before reading its body, or is refused.
type bodyBudget struct {
	sem    *semaphore.Weighted
	limit  int64
	inUse  atomic.Int64
	served atomic.Int64 // bytes taken since the memory was last returned
}

func newBodyBudget(limit int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(limit), limit: limit}
}

// tryAcquire takes n bytes without waiting, and reports whether it could.
func (b *bodyBudget) tryAcquire(n int64) bool {
	if !b.sem.TryAcquire(n) {
		return false
	}
	b.inUse.Add(n)
	b.served.Add(n)
	return true
}

func (b *bodyBudget) release(n int64) {
	if n > 0 {
		b.inUse.Add(-n)
		b.sem.Release(n)
	}
}

// returnMemory gives the memory of large requests back to the OS once
// they are done: every interval, when no request body is held and at least
// one body of the largest size went through since the last time, it
// forces a garbage collection and returns the free memory
// ([debug.FreeOSMemory]). Without it, a burst of large requests leaves the
// process at its peak until the runtime's next forced collection, minutes
// later, since an idle service allocates nothing that would start one.
func (s *Service) returnMemory(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.budget.inUse.Load() == 0 && s.budget.served.Load() >= s.cfg.HTTP.MaxBodyBytes {
			s.budget.served.Store(0)
			debug.FreeOSMemory()
		}
	}
}

// memoryMetrics are the metrics of the memory bound.
type memoryMetrics struct {
	refused prometheus.Counter
}

func newMemoryMetrics(reg prometheus.Registerer, b *bodyBudget) *memoryMetrics {
	m := &memoryMetrics{
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dagmm_http_requests_refused_busy_total",
			Help: "HTTP requests answered 429 because their body would have taken the request bytes in flight over the limit.",
		}),
	}
	reg.MustRegister(m.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dagmm_http_inflight_body_bytes",
			Help: "Request body bytes held by the HTTP requests in flight.",
		}, func() float64 { return float64(b.inUse.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dagmm_http_inflight_body_limit_bytes",
			Help: "The bound on request body bytes in flight (--max-inflight-bytes); a request beyond it is answered 429.",
		}, func() float64 { return float64(b.limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dagmm_memory_limit_bytes",
			Help: "The Go runtime's memory limit (--memory-limit, GOMEMLIMIT or the cgroup's); 0 when there is none.",
		}, func() float64 {
			if l := GoMemoryLimit(); l < math.MaxInt64 {
				return float64(l)
			}
			return 0
		}),
	)
	return m
}

// reserveBody takes the body's bytes from the budget before it is read:
// its Content-Length, or the largest body allowed when the length is not
// known. When the budget has no room, the request is answered 429 with a
// Retry-After header; its body is read and discarded (unless the client
// waits for 100 Continue), so that the client sees the answer rather than
// a connection reset.
func (s *Service) reserveBody(c echo.Context) (int64, error) {
	r := c.Request()
	n := r.ContentLength
	if n < 0 {
		n = s.cfg.HTTP.MaxBodyBytes
	}
	if s.budget.tryAcquire(n) {
		return n, nil
	}
	s.mem.refused.Inc()
	if !strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(c.Response(), r.Body, s.cfg.HTTP.MaxBodyBytes))
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	return 0, echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
		"server busy: this request's %d body bytes would take the request bytes in flight over the limit of %d (--max-inflight-bytes); retry after %ds",
		n, s.budget.limit, RetryAfter))
}

// Memory per host model in fleet mode. BenchmarkFleetModelMemory measures
// what a scorer holds per loaded four-metric host model (dagmm train's
// architecture: the scorer and its Loaded, and the serving state made on
// the host's first sample): 9,647 bytes. [HostModelBytes] rounds it up;
// [ModelBytes] scales it to larger models by their parameters.
const (
	// HostModelBytes is the memory of one loaded four-metric host model,
	// rounded up from the measured 9,647 bytes.
	HostModelBytes = 10 << 10
	// hostModelParams is the number of parameters of that model (weights,
	// biases, normalisation, mixture, quantiles): TestHostModelParams
	// checks it.
	hostModelParams = 698
	// ModelCacheShare is the share of the Go memory limit (less
	// [MemoryReserve]) that fleet mode's host models may take by default.
	ModelCacheShare = 4 // a quarter
)

// ModelBytes estimates the memory a loaded model of l's architecture takes
// in a scorer: [HostModelBytes] for a four-metric host model or a smaller
// one, scaled by the parameters for a larger one.
func ModelBytes(l *Loaded) int64 {
	return max(HostModelBytes, int64(HostModelBytes)*int64(modelParams(l.Scorer.Model()))/hostModelParams)
}

// modelParams counts m's parameters.
func modelParams(m *model.Model) int {
	n := 2*len(m.Norm) + len(m.GMM.Phi) + len(m.GMM.Mu) + len(m.GMM.Sigma) + len(m.Calibration.Quantiles)
	for _, ls := range [][]model.Layer{m.Encoder, m.Decoder, m.Estimator} {
		for _, l := range ls {
			n += len(l.W) + len(l.B)
		}
	}
	return n
}

// ModelCacheBytesFor returns the default bound on the memory of fleet
// mode's host models under the Go memory limit memLimit (math.MaxInt64 or
// below 1 for none): a [ModelCacheShare] of the limit less
// [MemoryReserve], or 0 (no bound) without a limit.
func ModelCacheBytesFor(memLimit int64) int64 {
	if memLimit <= MemoryReserve || memLimit == math.MaxInt64 {
		return 0
	}
	return (memLimit - MemoryReserve) / ModelCacheShare
}

// httpMemoryLimit returns the part of the Go memory limit memLimit
// (math.MaxInt64 for none) that the default bound on request bytes in
// flight is sized from: in fleet mode, the limit less the host models'
// cap ([ModelCacheBytesFor] the limit, or the cap given), so that the
// models and the requests together stay under the limit.
func httpMemoryLimit(c Config, memLimit int64) int64 {
	if !c.Fleet.Enabled || memLimit <= 0 || memLimit == math.MaxInt64 {
		return memLimit
	}
	models := c.Fleet.Models.CacheBytes
	if models == 0 {
		models = ModelCacheBytesFor(memLimit)
	}
	if models <= 0 {
		return memLimit
	}
	return memLimit - models
}
