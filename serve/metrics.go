package serve

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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

func newMetrics(reg prometheus.Registerer) *metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"handler", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dagmm_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: latencyBuckets,
		}, []string{"handler"}),
		httpPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dagmm_http_panics_total",
			Help: "HTTP handlers that panicked and were recovered (a bug: please report it).",
		}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_samples_scored_total",
			Help: "Samples scored, by source (http or nats).",
		}, []string{"source"}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_anomalies_total",
			Help: "Samples flagged as anomalies, by source (http or nats).",
		}, []string{"source"}),
		scoreSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dagmm_score_duration_seconds",
			Help:    "Time to decode and score one NATS message or HTTP request body, by source.",
			Buckets: latencyBuckets,
		}, []string{"source"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_dead_letters_total",
			Help: "Messages sent to the dead-letter subject, by reason (decode, score or publish).",
		}, []string{"reason"}),
		natsMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_nats_messages_total",
			Help: "NATS messages handled, by result (scored, dead_letter, failed).",
		}, []string{"result"}),
		natsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dagmm_nats_errors_total",
			Help: "Asynchronous NATS errors, such as a slow consumer dropping messages.",
		}),
		natsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_nats_connected",
			Help: "1 while the NATS connection is up, 0 while it is lost and being repaired (the service is then not ready).",
		}),
		natsDisconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_nats_disconnects_total",
			Help: "Losses of the NATS connection, by reason: link_lost (the link dropped; the client reconnects by itself) or client_closed (the client gave the connection up, e.g. on a server error; the service dialled a new one).",
		}, []string{"reason"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dagmm_model_info",
			Help: "The model serving now: 1 for its name and version.",
		}, []string{"name", "version"}),
		modelThreshold: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_model_threshold",
			Help: "The serving model's anomaly threshold (an energy).",
		}),
		modelFeatures: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_model_features",
			Help: "The number of features the serving model takes.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dagmm_model_reloads_total",
			Help: "Model reloads, by result (changed, unchanged, failed).",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_model_last_reload_successful",
			Help: "1 when the last model reload succeeded (or none was tried), 0 when it failed.",
		}),
		lastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_model_last_reload_success_timestamp_seconds",
			Help: "When the serving model was loaded, in Unix seconds.",
		}),
		samplesLearning: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dagmm_samples_learning_total",
			Help: "Samples not scored because their host has no model yet and no fleet model scores it (fleet mode): neither scored nor dead letters.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dagmm_ready",
			Help: "1 when the service is ready to score, 0 while starting, shutting down or while its NATS connection is lost.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dagmm_build_info",
		Help: "The dagmm build: 1 for its version and Go version.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(buildinfo.String(), runtime.Version()).Set(1)
	f(m.httpRequests)
	f(m.httpDuration)
	f(m.httpPanics)
	f(m.samples)
	f(m.anomalies)
	f(m.scoreSeconds)
	f(m.deadLetters)
	f(m.natsMessages)
	f(m.natsErrors)
	f(m.natsConnected)
	f(m.natsDisconnects)
	f(m.modelInfo)
	f(m.modelThreshold)
	f(m.modelFeatures)
	f(m.reloads)
	f(m.lastReloadOK)
	f(m.lastReloadTime)
	f(m.ready)
	f(m.samplesLearning)
	f(build)
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
