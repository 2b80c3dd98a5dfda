package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsconn"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// Service is the real-time scoring service: the NATS scorer and the HTTP
// server of one process, sharing one model. Build it with [New] and run it
// with [Service.Run]. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	method model.Method // explanation method
	log    *slog.Logger
	src    ModelSource
	reg    *prometheus.Registry
	met    *metrics

	models   *modelSet // the one owner of the models and their serving state
	pipe     *pipeline // decode, resolve, score, explain, encode
	out      *natsOut  // where NATS events and dead letters go
	errs     *asyncErrors
	reloadMu sync.Mutex // serialises Reload

	e       *echo.Echo
	budget  *bodyBudget // request body bytes in flight
	mem     *memoryMetrics
	workers sync.Pool // *worker for HTTP handlers
	bodies  sync.Pool // *bytes.Buffer for request bodies

	started  atomic.Bool
	ready    atomic.Bool // running and, with NATS, connected: see setReady
	readyCh  chan struct{}
	readyMu  sync.Mutex // guards running and natsDown, serialises setReady
	running  bool       // Run is serving: started, not shutting down
	natsDown bool       // the NATS connection is lost, and not back yet
	httpAddr atomic.Pointer[string]
	natsURL  atomic.Pointer[string]

	abortCh   chan struct{} // closed by abort: stop at once, no draining
	abortOnce sync.Once

	nats *natsSide // set by Run when NATS is on
	tg   *telegraf // the Telegraf input (Config.Telegraf.Enabled), or nil
	rw   *telegraf // the remote write input (Config.RemoteWrite.Enabled), or nil

	rwDecoders sync.Pool // *ingest.RemoteWriteDecoder

	marks *fleet.Marks // fleet mode's false-alarm marks, or nil
}

// Option configures a [Service] beyond its [Config].
type Option func(*Service)

// WithModelSource makes the service take its model from src instead of
// Config.Model.Path.
func WithModelSource(src ModelSource) Option { return func(s *Service) { s.src = src } }

// WithRegistry makes the service register its metrics on reg instead of a
// registry of its own. reg should be empty: the service adds the Go and
// process collectors too.
func WithRegistry(reg *prometheus.Registry) Option { return func(s *Service) { s.reg = reg } }

// New checks cfg (after [Config.WithDefaults]), loads the model and
// prepares the service. logger may be nil (no logging). It binds no port:
// [Service.Run] does.
func New(cfg Config, logger *slog.Logger, opts ...Option) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	method, err := model.ParseMethod(cfg.Scoring.ExplainMethod)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:     cfg,
		method:  method,
		log:     logger,
		readyCh: make(chan struct{}),
		abortCh: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if s.src == nil {
		if cfg.Model.Path == "" {
			return nil, fmt.Errorf("%w: model path: no model file given", ErrConfig)
		}
		src, err := NewFileSource(cfg.Model.Path, cfg.Model.Name, cfg.Model.PollInterval)
		if err != nil {
			return nil, err
		}
		s.src = src
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.met = newMetrics(s.reg)
	s.budget = newBodyBudget(cfg.HTTP.MaxInFlightBytes)
	s.mem = newMemoryMetrics(s.reg, s.budget)
	registerRuntime(s.reg)
	if s.models, err = newModelSet(s.src, cfg.Scoring.MaxSamples, s.method, s.log); err != nil {
		return nil, err
	}
	if cfg.Scoring.HostSeriesMax > 0 {
		s.models.hosts = newHostGauges(cfg.Scoring.HostSeriesMax, cfg.Scoring.HostSeriesTTL, nil)
		s.reg.MustRegister(s.models.hosts)
	}
	if e, ok := s.src.(interface{ SetEvicted(func(*Loaded)) }); ok {
		e.SetEvicted(s.models.drop)
	}
	if c, ok := s.src.(interface{ Collectors() []prometheus.Collector }); ok {
		s.reg.MustRegister(c.Collectors()...)
	}
	st := s.models.def()
	s.met.modelLoaded(st.l, st.d)
	s.pipe = &pipeline{
		models: s.models,
		method: s.method,
		ev: eventConfig{anomalyPrefix: cfg.NATS.AnomalyPrefix, scorePrefix: cfg.NATS.ScorePrefix,
			publishScores: cfg.NATS.PublishScores, ids: cfg.JetStream.EventStream != ""},
		samples:   s.met.samplesNATS,
		learning:  s.met.samplesLearning,
		anomalies: s.met.anomaliesNATS,
	}
	s.out = newNATSOut(&cfg, s.met)
	s.errs = &asyncErrors{log: s.log, count: s.met.natsErrors}
	if cfg.Telegraf.Enabled {
		if s.tg, err = newTelegraf(&cfg, s.pipe, s.out, s.errs, s.log, s.met, s.reg, st); err != nil {
			return nil, err
		}
	}
	if cfg.RemoteWrite.Enabled {
		if s.rw, err = newRemoteWrite(&cfg, s.pipe, s.out, s.errs, s.log, s.met, s.reg, st); err != nil {
			return nil, err
		}
		s.rwDecoders.New = func() any {
			return &ingest.RemoteWriteDecoder{MaxSize: int(min(cfg.RemoteWrite.MaxDecodedBytes, math.MaxInt32))}
		}
	}
	s.workers.New = func() any { return newWorker(cfg.Scoring.Batch) }
	s.e = s.routes()
	return s, nil
}

// Config returns the configuration in use, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Registry returns the registry the service's metrics are on.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Handler returns the HTTP handler (the Echo instance), for tests and for
// mounting the API in another server. It is the one [Service.Run] serves.
func (s *Service) Handler() http.Handler { return s.e }

// Model returns the model serving now: the source's default model.
func (s *Service) Model() *Loaded { return s.models.def().l }

// Ready returns a channel closed once Run has bound its ports and
// subscribed, so that [Service.HTTPAddr] and [Service.NATSURL] are set.
func (s *Service) Ready() <-chan struct{} { return s.readyCh }

// HTTPAddr returns the address the HTTP server listens on ("" before
// Ready).
func (s *Service) HTTPAddr() string {
	if p := s.httpAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// NATSURL returns the URL of the NATS server the service uses: the
// embedded server's when no URL was configured ("" before Ready, or with
// NoNATS).
func (s *Service) NATSURL() string {
	if p := s.natsURL.Load(); p != nil {
		return *p
	}
	return ""
}

// Reload asks the model source for its latest model (for a file: reads
// it again). A model that fails to load or validate is refused and the
// current one keeps serving; the error says why. Messages and requests in
// flight finish with the model they started with. It returns the model
// serving afterwards and whether it changed.
func (s *Service) Reload(ctx context.Context, reason string) (*Loaded, bool, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.models.def()
	l, err := s.src.Reload(ctx)
	if err != nil {
		s.met.reloads.WithLabelValues("failed").Inc()
		s.met.lastReloadOK.Set(0)
		s.log.Error("model reload failed; the previous model keeps serving", "reason", reason, "version", prev.l.Version, "err", err)
		return prev.l, false, err
	}
	if l == prev.l {
		s.met.reloads.WithLabelValues("unchanged").Inc()
		s.met.lastReloadOK.Set(1)
		s.log.Info("model unchanged", "reason", reason, "version", l.Version)
		return l, false, nil
	}
	st := s.models.def()
	serving := func(m *Loaded) bool { return m == l }
	if sv, ok := s.src.(interface{ Serving(*Loaded) bool }); ok {
		serving = func(m *Loaded) bool { return m == l || sv.Serving(m) }
	}
	s.models.retain(serving)
	s.met.modelLoaded(st.l, st.d)
	s.met.reloads.WithLabelValues("changed").Inc()
	s.met.lastReloadOK.Set(1)
	s.log.Info("model reloaded", "reason", reason, "version", st.l.Version, "previous", prev.l.Version,
		"features", st.d, "threshold", st.threshold)
	return st.l, true, nil
}

// Run serves until ctx is cancelled, then shuts down gracefully (see the
// package documentation) and returns nil; it returns an error if the
// service cannot start or a part of it fails. It may be called once.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("serve: Run called twice")
	}
	cfg := s.cfg
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("serve: http listen %s: %w", cfg.HTTP.Addr, err)
	}
	addr := ln.Addr().String()
	s.httpAddr.Store(&addr)
	srv := &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	if !cfg.NATS.Disabled {
		n, err := s.startNATS()
		if err != nil {
			ln.Close()
			return err
		}
		s.nats = n
		url := n.url
		s.natsURL.Store(&url)
	}
	if s.rw != nil {
		s.rw.start()
	}

	httpErr := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		httpErr <- err
	}()

	// The model watcher: a change of the source triggers a reload.
	wctx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	changed := make(chan struct{}, 1)
	wg.Go(func() {
		if err := s.src.Watch(wctx, changed); err != nil {
			s.log.Warn("model watch stopped", "err", err)
		}
	})
	wg.Go(func() { s.returnMemory(wctx, 2*time.Second) })
	wg.Go(func() {
		for {
			select {
			case <-wctx.Done():
				return
			case <-changed:
				s.Reload(wctx, "source changed") // logged inside
			}
		}
	})

	s.setReady(func() { s.running = true })
	close(s.readyCh)
	attrs := []any{"http", addr, "nats", s.NATSURL(), "jetstream", cfg.JetStream.Enabled && !cfg.NATS.Disabled,
		"subject", cfg.NATS.Subject, "telegraf", cfg.Telegraf.Enabled, "remote_write", cfg.RemoteWrite.Enabled, "model", s.Model().Name, "version", s.Model().Version, "workers", cfg.Scoring.Workers}
	if p, ok := cfg.Partitioning(); ok {
		attrs = append(attrs, "partition", fmt.Sprintf("%d/%d", cfg.NATS.Partition, p.N))
	}
	s.log.Info("serving", attrs...)

	var runErr error
	aborted := false
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		runErr = fmt.Errorf("serve: http server: %w", err)
		httpErr <- nil
	case <-s.abortCh:
		aborted = true
	}
	s.setReady(func() { s.running = false })
	stopWatch()
	wg.Wait()

	if aborted {
		if s.rw != nil {
			s.rw.halt()
		}
		if s.nats != nil {
			s.nats.abort()
		}
		srv.Close()
		<-httpErr
		return nil
	}
	s.log.Info("shutting down")
	var errs []error
	if s.nats != nil {
		if err := s.nats.drainConsumers(cfg.ShutdownTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("serve: http shutdown: %w", err))
		srv.Close()
	}
	cancel()
	if err := <-httpErr; err != nil && runErr == nil {
		runErr = fmt.Errorf("serve: http server: %w", err)
	}
	if s.rw != nil { // no request comes in any more: score what was taken
		if err := s.rw.shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.nats != nil {
		if err := s.nats.close(cfg.ShutdownTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		s.log.Warn("shutdown incomplete", "err", errors.Join(errs...))
	}
	s.log.Info("stopped")
	return runErr
}

// setReady applies change to the state readiness depends on, then
// publishes readiness (/v2/health/ready and dagmm_ready): ready while Run
// serves and, with NATS, the connection is up.
func (s *Service) setReady(change func()) {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	change()
	ready := s.running && !s.natsDown
	s.ready.Store(ready)
	if ready {
		s.met.ready.Set(1)
	} else {
		s.met.ready.Set(0)
	}
}

// natsChanged records a change of the NATS connection's state in the
// metrics and readiness: not ready from the moment the connection is lost
// until the client reconnects (or a new connection is set up).
func (s *Service) natsChanged(st natsconn.State, _ error) {
	switch st {
	case natsconn.Disconnected:
		s.met.natsDisconnects.WithLabelValues(disconnectLost).Inc()
	case natsconn.Closed:
		s.met.natsDisconnects.WithLabelValues(disconnectClosed).Inc()
	}
	if st.Up() {
		s.met.natsConnected.Set(1)
	} else {
		s.met.natsConnected.Set(0)
	}
	s.setReady(func() { s.natsDown = !st.Up() })
}

// abort stops a running service at once, without draining: what a crash
// looks like to NATS (messages in flight are not acknowledged). For tests.
func (s *Service) abort() { s.abortOnce.Do(func() { close(s.abortCh) }) }
