package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/serve/ingest"
)

// RemoteWritePath is where the service takes Prometheus remote write
// requests, when [RemoteWriteConfig.Enabled].
const RemoteWritePath = "/api/v1/write"

// RemoteWriteConfig is the Prometheus remote write input.
type RemoteWriteConfig struct {
	// Enabled serves POST /api/v1/write: Prometheus remote write 1.0
	// (a protobuf WriteRequest, snappy block-compressed). The samples are
	// joined per host and evaluation interval into the model's vectors by
	// the same assembly stage as Telegraf's (an [ingest.Assembler]), scored,
	// and their events published on NATS as usual. It needs NATS.
	Enabled bool
	// Mapping says how each model feature is made from the remote-written
	// series. Nil: feature f is the series dagmm:f of the recording rules
	// of deploy/prometheus/rules.yaml ([ingest.PrometheusConfig]), the host
	// in the label HostLabel, Interval apart.
	Mapping *ingest.Config
	// HostLabel is the label naming the host, with the default mapping.
	// Default "instance".
	HostLabel string
	// Interval is Prometheus's rule evaluation interval, with the default
	// mapping. Default 15s.
	Interval time.Duration
	// MaxDecodedBytes bounds a body once decompressed (the body itself is
	// bounded by HTTPConfig.MaxBodyBytes): larger is answered 413. Default
	// [ingest.DefaultMaxRemoteWriteSize].
	MaxDecodedBytes int64
	// Flush is how often intervals whose deadline passed are finalised.
	// Default 1s.
	Flush time.Duration
}

// DefaultRemoteWriteInterval is RemoteWriteConfig.Interval's default: the
// evaluation interval of deploy/prometheus/prometheus.yml.
const DefaultRemoteWriteInterval = 15 * time.Second

func (c RemoteWriteConfig) withDefaults() RemoteWriteConfig {
	setDefault(&c.HostLabel, ingest.PrometheusHostLabel)
	setDefault(&c.Interval, DefaultRemoteWriteInterval)
	setDefault(&c.MaxDecodedBytes, ingest.DefaultMaxRemoteWriteSize)
	setDefault(&c.Flush, time.Second)
	return c
}

func (c *RemoteWriteConfig) validate(natsDisabled bool) error {
	if !c.Enabled {
		return nil
	}
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: remote write %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case natsDisabled:
		return bad("", "its events go to NATS: it cannot be used without NATS")
	case c.HostLabel == "":
		return bad("host label", "empty")
	case c.Interval <= 0:
		return bad("interval", "%v: want a positive duration", c.Interval)
	case c.Flush <= 0:
		return bad("flush", "%v: want a positive duration", c.Flush)
	case c.MaxDecodedBytes <= 0:
		return bad("max decoded bytes", "%d: want a positive size", c.MaxDecodedBytes)
	}
	if c.Mapping != nil {
		if err := c.Mapping.Validate(); err != nil {
			return bad("mapping", "%v", err)
		}
	}
	return nil
}

// mapping returns the mapping of features to remote-written series.
func (c *RemoteWriteConfig) mapping(features []string) ingest.Config {
	if c.Mapping != nil {
		return *c.Mapping
	}
	m := ingest.PrometheusConfig(features, c.Interval)
	m.HostTag = c.HostLabel
	return m
}

// newRemoteWrite prepares the remote write input of cfg for the model st:
// an assembly stage like Telegraf's, whose vectors count as scored over
// HTTP.
func newRemoteWrite(cfg *Config, pipe *pipeline, out *natsOut, errs *asyncErrors, log *slog.Logger, met *metrics, reg prometheus.Registerer, st *modelState) (*telegraf, error) {
	p := *pipe
	p.samples, p.anomalies = met.samplesHTTP, met.anomaliesHTTP
	rw := cfg.RemoteWrite
	t := newAssembly(kindRemoteWrite, cfg, &p, out, errs, log, met, rw.Flush, rw.mapping)
	t.subject = RemoteWritePath
	return t, t.init(reg, st)
}

// decodedBytesFactor estimates the memory a remote write request holds per
// byte of its decompressed body: the body, the measurements made from it
// (about 90 bytes a sample) and their label strings. It is reserved from
// the budget of bytes in flight on top of the body.
const decodedBytesFactor = 3

// handleRemoteWrite serves POST /api/v1/write, Prometheus remote write 1.0.
// Answers: 204 once the samples are assembled (and the vectors they
// completed scored and published); 400 for a body that is not snappy or
// not a valid WriteRequest, or samples whose host label cannot be one (the
// others are taken); 413 for a body too large, compressed or not; 415 for
// another Content-Type or Content-Encoding (remote write 2.0 among them);
// 429 when the bytes in flight are at their limit; 503 while the service
// is not ready (starting, stopping, NATS down) or the model's features are
// not in the mapping: what a retry can fix. Prometheus retries 5xx and 429
// and drops what got another 4xx.
func (s *Service) handleRemoteWrite(c echo.Context) error {
	now := time.Now()
	r := c.Request()
	if err := checkRemoteWriteHeaders(r.Header); err != nil {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(c.Response(), r.Body, s.cfg.HTTP.MaxBodyBytes))
		return err
	}
	if !s.ready.Load() {
		c.Response().Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		return echo.NewHTTPError(http.StatusServiceUnavailable, "not ready (starting, stopping, or NATS unreachable): retry")
	}
	st := s.models.def()
	asm, err := s.rw.assembler(st)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	}
	body, release, err := s.readBody(c)
	if err != nil {
		return err
	}
	defer release()
	if extra, ok := s.reserveDecoded(body); !ok {
		s.mem.refused.Inc()
		c.Response().Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		return echo.NewHTTPError(http.StatusTooManyRequests, fmt.Sprintf(
			"server busy: this request's decoded samples would take the request bytes in flight over the limit of %d (--max-inflight-bytes); retry after %ds",
			s.budget.limit, RetryAfter))
	} else {
		defer s.budget.release(extra)
	}

	d := s.rwDecoders.Get().(*ingest.RemoteWriteDecoder)
	defer s.rwDecoders.Put(d)
	wr, err := d.Decode(body)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ingest.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		return echo.NewHTTPError(code, err.Error())
	}
	vs, herr := asm.AddRemoteWrite(wr, now)
	if len(vs) > 0 {
		w := s.workers.Get().(*worker)
		// The samples are taken: a failure to publish is the service's,
		// which a retry cannot mend (their intervals are finalised).
		if err := s.rw.publishVectors(w, st, vs); err != nil {
			s.errs.report("", fmt.Errorf("remote write: publish events: %w", err))
		}
		s.workers.Put(w)
	}
	s.met.scoreHTTP.Observe(since(now))
	if herr != nil {
		return echo.NewHTTPError(http.StatusBadRequest,
			"remote write: samples dropped, the others taken: "+herr.Error())
	}
	return c.NoContent(http.StatusNoContent)
}

// reserveDecoded takes from the budget of bytes in flight the memory of
// body's decoded samples, and reports how much; false when there is no
// room. A body whose decoded length is unknown or over the limit takes
// nothing: the decoder refuses it.
func (s *Service) reserveDecoded(body []byte) (int64, bool) {
	n, err := snappy.DecodedLen(body)
	if err != nil || int64(n) > s.cfg.RemoteWrite.MaxDecodedBytes {
		return 0, true
	}
	// Never more than the whole budget less the body: a request of the
	// largest size must be able to pass.
	extra := min(decodedBytesFactor*int64(n), s.budget.limit-int64(len(body)))
	if extra <= 0 {
		return 0, true
	}
	return extra, s.budget.tryAcquire(extra)
}

// checkRemoteWriteHeaders checks that a request is remote write 1.0:
// Content-Type application/x-protobuf (proto=prometheus.WriteRequest, if
// given) and Content-Encoding snappy. Missing headers are taken as those.
func checkRemoteWriteHeaders(h http.Header) error {
	unsupported := func(format string, args ...any) error {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf(format, args...))
	}
	if ce := strings.TrimSpace(h.Get(echo.HeaderContentEncoding)); ce != "" && !strings.EqualFold(ce, "snappy") {
		return unsupported("Content-Encoding %q: remote write bodies are snappy-compressed (block format)", ce)
	}
	ct := h.Get(echo.HeaderContentType)
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-protobuf" {
		return unsupported("Content-Type %q: want application/x-protobuf (Prometheus remote write 1.0)", ct)
	}
	if p, ok := params["proto"]; ok && p != "prometheus.WriteRequest" {
		return unsupported("Content-Type %q: only remote write 1.0 (proto=prometheus.WriteRequest) is supported", ct)
	}
	return nil
}
