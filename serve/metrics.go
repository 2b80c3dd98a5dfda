package serve

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/dagmm/dagmm/internal/buildinfo"
)

// metrics are the service's Prometheus metrics, registered on the
// service's own registry (never the global one). All are safe for
// concurrent use.
type metrics struct {
	httpRequests *prometheus.CounterVec   // handler, code
	httpDuration *prometheus.HistogramVec // handler
	httpPanics   prometheus.Counter

	samples      *prometheus.CounterVec // source
	anomalies    *prometheus.CounterVec // source
	scoreSeconds *prometheus.HistogramVec
	deadLetters  *prometheus.CounterVec // reason
	natsMessages *prometheus.CounterVec // result
	natsErrors   prometheus.Counter
	// natsConnected is 1 while the NATS connection is up; natsDisconnects
	// counts its losses by reason.
	natsConnected   prometheus.Gauge
	natsDisconnects *prometheus.CounterVec // reason

	modelInfo       *prometheus.GaugeVec // name, version
	modelThreshold  prometheus.Gauge
	modelFeatures   prometheus.Gauge
	reloads         *prometheus.CounterVec // result
	lastReloadOK    prometheus.Gauge
	lastReloadTime  prometheus.Gauge
	ready           prometheus.Gauge
	samplesHTTP     prometheus.Counter
	samplesLearning prometheus.Counter // of hosts without a model
	samplesNATS     prometheus.Counter
	anomaliesHTTP   prometheus.Counter
	anomaliesNATS   prometheus.Counter
	msgScored       prometheus.Counter
	msgDeadLettered prometheus.Counter
	msgFailed       prometheus.Counter
	scoreNATS       prometheus.Observer
	scoreHTTP       prometheus.Observer
}

// Label values. They are bounded: never a host or a sample.
const (
	sourceHTTP = "http"
	sourceNATS = "nats"

	resultScored     = "scored"
	resultDeadLetter = "dead_letter"
	resultFailed     = "failed" // neither the events nor the dead letter could be published; redelivered in durable mode

	disconnectLost   = "link_lost"     // the link dropped; the client reconnects by itself
	disconnectClosed = "client_closed" // the client closed the connection for good; the service dialled a new one
)

// latencyBuckets run from 50 µs to about 1.6 s, in seconds.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 16)

// newMetrics makes the service's metrics and registers them on reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := metricFactory{promauto.With(reg)}
	m := &metrics{
		httpRequests:    f.counterVec("dagmm_http_requests_total", "HTTP requests answered, by route and status code.", "handler", "code"),
		httpDuration:    f.histogramVec("dagmm_http_request_duration_seconds", "Time to answer an HTTP request, by route.", latencyBuckets, "handler"),
		httpPanics:      f.counter("dagmm_http_panics_total", "HTTP handlers that panicked and were recovered (a bug: please report it)."),
		samples:         f.counterVec("dagmm_samples_scored_total", "Samples scored, by source (http or nats).", "source"),
		anomalies:       f.counterVec("dagmm_anomalies_total", "Samples flagged as anomalies, by source (http or nats).", "source"),
		scoreSeconds:    f.histogramVec("dagmm_score_duration_seconds", "Time to decode and score one NATS message or HTTP request body, by source.", latencyBuckets, "source"),
		deadLetters:     f.counterVec("dagmm_dead_letters_total", "Messages sent to the dead-letter subject, by reason (decode, score or publish).", "reason"),
		natsMessages:    f.counterVec("dagmm_nats_messages_total", "NATS messages handled, by result (scored, dead_letter, failed).", "result"),
		natsErrors:      f.counter("dagmm_nats_errors_total", "Asynchronous NATS errors, such as a slow consumer dropping messages."),
		natsConnected:   f.gauge("dagmm_nats_connected", "1 while the NATS connection is up, 0 while it is lost and being repaired (the service is then not ready)."),
		natsDisconnects: f.counterVec("dagmm_nats_disconnects_total", "Losses of the NATS connection, by reason: link_lost (the link dropped; the client reconnects by itself) or client_closed (the client gave the connection up, e.g. on a server error; the service dialled a new one).", "reason"),
		modelInfo:       f.gaugeVec("dagmm_model_info", "The model serving now: 1 for its name and version.", "name", "version"),
		modelThreshold:  f.gauge("dagmm_model_threshold", "The serving model's anomaly threshold (an energy)."),
		modelFeatures:   f.gauge("dagmm_model_features", "The number of features the serving model takes."),
		reloads:         f.counterVec("dagmm_model_reloads_total", "Model reloads, by result (changed, unchanged, failed).", "result"),
		lastReloadOK:    f.gauge("dagmm_model_last_reload_successful", "1 when the last model reload succeeded (or none was tried), 0 when it failed."),
		lastReloadTime:  f.gauge("dagmm_model_last_reload_success_timestamp_seconds", "When the serving model was loaded, in Unix seconds."),
		samplesLearning: f.counter("dagmm_samples_learning_total", "Samples not scored because their host has no model yet and no fleet model scores it (fleet mode): neither scored nor dead letters."),
		ready:           f.gauge("dagmm_ready", "1 when the service is ready to score, 0 while starting, shutting down or while its NATS connection is lost."),
	}
	f.gaugeVec("dagmm_build_info", "The dagmm build: 1 for its version and Go version.", "version", "goversion").
		WithLabelValues(buildinfo.String(), runtime.Version()).Set(1)
	// Children resolved once, for the hot paths.
	m.samplesHTTP = m.samples.WithLabelValues(sourceHTTP)
	m.samplesNATS = m.samples.WithLabelValues(sourceNATS)
	m.anomaliesHTTP = m.anomalies.WithLabelValues(sourceHTTP)
	m.anomaliesNATS = m.anomalies.WithLabelValues(sourceNATS)
	m.msgScored = m.natsMessages.WithLabelValues(resultScored)
	m.msgDeadLettered = m.natsMessages.WithLabelValues(resultDeadLetter)
	m.msgFailed = m.natsMessages.WithLabelValues(resultFailed)
	m.scoreNATS = m.scoreSeconds.WithLabelValues(sourceNATS)
	m.scoreHTTP = m.scoreSeconds.WithLabelValues(sourceHTTP)
	for _, r := range []string{"changed", "unchanged", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	for _, r := range []string{reasonDecode, reasonScore, reasonPublish} {
		m.deadLetters.WithLabelValues(r)
	}
	for _, r := range []string{disconnectLost, disconnectClosed} {
		m.natsDisconnects.WithLabelValues(r)
	}
	m.lastReloadOK.Set(1)
	return m
}

// metricFactory makes metrics with a name, a help text and, for vectors,
// label names, and registers each on the factory's Registerer as it makes
// it (panicking, as MustRegister does, on a clash); with a nil Registerer
// it registers nothing.
type metricFactory struct{ promauto.Factory }

func (f metricFactory) counter(name, help string) prometheus.Counter {
	return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (f metricFactory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func (f metricFactory) gauge(name, help string) prometheus.Gauge {
	return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func (f metricFactory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func (f metricFactory) gaugeFunc(name, help string, value func() float64) prometheus.GaugeFunc {
	return f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value)
}

func (f metricFactory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return f.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// registerRuntime adds the Go runtime and process collectors (resident
// memory, CPU, open files) to reg.
func registerRuntime(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// modelLoaded records l as the serving model.
func (m *metrics) modelLoaded(l *Loaded, d int) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(l.Name, l.Version).Set(1)
	m.modelThreshold.Set(l.Scorer.Threshold())
	m.modelFeatures.Set(float64(d))
	m.lastReloadTime.Set(float64(l.LoadedAt.UnixNano()) / 1e9)
}

// since returns the seconds elapsed since t.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
