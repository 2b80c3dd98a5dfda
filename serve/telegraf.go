package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/internal/natsio"
	"github.com/dagmm/dagmm/serve/ingest"
)

// telegraf is the Telegraf input of a service ([TelegrafConfig.Enabled]): the
// assembler that joins Telegraf's measurements into the model's vectors,
// the goroutine that finalises the intervals whose deadline passed, and
// their metrics. The remote write input ([RemoteWriteConfig.Enabled]) is
// the same assembly stage fed by another decoder: a second value of this
// type, of kind "remote_write", whose samples come from HTTP requests
// (serve/remotewrite.go).
//
// Messages are decoded and assembled on one goroutine (the subscription's,
// or the pull loop's), in the order NATS delivers them, so that each host's
// counters are seen in order; that goroutine also scores and publishes the
// vectors a message completes. The flush goroutine finalises, scores and
// publishes the intervals of hosts that went quiet. The assembler serialises
// the two.
type telegraf struct {
	kind    string // "telegraf" or "remote_write": in metric names and logs
	pipe    *pipeline
	out     *natsOut
	errs    *asyncErrors
	log     *slog.Logger
	met     *metrics
	tmet    *telegrafMetrics
	subject string        // Config.NATS.Subject, named in the dead letters of vectors
	flush   time.Duration // Config.Telegraf.Flush
	maxDel  int           // Config.JetStream.MaxDeliver
	format  ingest.Format
	mapping func(features []string) ingest.Config

	cur     atomic.Pointer[tgAssembler]
	mu      sync.Mutex   // serialises assembler swaps; guards retired
	retired ingest.Stats // counters of the assemblers replaced

	flushW   *worker // the flush goroutine's, then the final drain's
	started  atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the flush goroutine returns
}

// tgAssembler is the assembler in use and the model state it was last
// checked against: vectors of asm have the features of st.
type tgAssembler struct {
	asm *ingest.Assembler
	st  *modelState
	err error // st's features cannot be assembled with the mapping; asm is the previous one
}

// newTelegraf prepares the Telegraf input of cfg for the model st,
// feeding pipe and publishing to out, with its metrics on reg.
func newTelegraf(cfg *Config, pipe *pipeline, out *natsOut, errs *asyncErrors, log *slog.Logger, met *metrics, reg prometheus.Registerer, st *modelState) (*telegraf, error) {
	mapping := ingest.DefaultConfig()
	if cfg.Telegraf.Mapping != nil {
		mapping = *cfg.Telegraf.Mapping
	}
	t := newAssembly(kindTelegraf, cfg, pipe, out, errs, log, met, cfg.Telegraf.Flush, func([]string) ingest.Config { return mapping })
	t.format = cfg.Telegraf.Format
	return t, t.init(reg, st)
}

// Kinds of assembly input.
const (
	kindTelegraf    = "telegraf"
	kindRemoteWrite = "remote_write"
)

// newAssembly returns an assembly input of kind, its vectors scored with
// pipe, its intervals flushed every flush, its features mapped with
// mapping; init completes it.
func newAssembly(kind string, cfg *Config, pipe *pipeline, out *natsOut, errs *asyncErrors, log *slog.Logger, met *metrics, flush time.Duration, mapping func([]string) ingest.Config) *telegraf {
	return &telegraf{
		kind:    kind,
		pipe:    pipe,
		out:     out,
		errs:    errs,
		log:     log,
		met:     met,
		subject: cfg.NATS.Subject,
		flush:   flush,
		maxDel:  cfg.JetStream.MaxDeliver,
		mapping: mapping,
		flushW:  newWorker(cfg.Scoring.Batch),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// init registers the metrics on reg and makes the assembler for st.
func (t *telegraf) init(reg prometheus.Registerer, st *modelState) error {
	t.tmet = newTelegrafMetrics(reg, t)
	asm, err := t.newAssembler(st.features)
	if err != nil {
		return fmt.Errorf("serve: %s mapping for model %s: %w", t.kind, st.l.Version, err)
	}
	t.cur.Store(&tgAssembler{asm: asm, st: st})
	return nil
}

func (t *telegraf) newAssembler(features []string) (*ingest.Assembler, error) {
	return ingest.NewAssembler(t.mapping(features), features, ingest.WithIncomplete(t.incomplete))
}

// assembler returns the assembler for the model st. When the model's
// features changed (a reload), it starts a new assembler: the open
// intervals and counter history of the old one are dropped, since its
// vectors have other features.
func (t *telegraf) assembler(st *modelState) (*ingest.Assembler, error) {
	if c := t.cur.Load(); c.st == st {
		return c.asm, c.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.cur.Load()
	switch {
	case c.st == st:
		return c.asm, c.err
	case slices.Equal(c.asm.Features(), st.features):
		t.cur.Store(&tgAssembler{asm: c.asm, st: st})
		return c.asm, nil
	}
	asm, err := t.newAssembler(st.features)
	if err != nil {
		err = fmt.Errorf("serve: model %s: %s mapping: %w", st.l.Version, t.kind, err)
		t.log.Error("the model's features cannot be assembled with the mapping: Telegraf messages go to the dead-letter subject, remote write requests are answered 503",
			"input", t.kind, "version", st.l.Version, "features", st.features, "err", err)
		t.cur.Store(&tgAssembler{asm: c.asm, st: st, err: err})
		return nil, err
	}
	t.retired = addStats(t.retired, c.asm.Stats())
	t.cur.Store(&tgAssembler{asm: asm, st: st})
	t.log.Warn("the model's features changed: assembly starts again (open intervals dropped)",
		"input", t.kind, "version", st.l.Version, "features", st.features)
	return asm, nil
}

// addStats adds b's counters to a's (not the current sizes).
func addStats(a, b ingest.Stats) ingest.Stats {
	a.Measurements += b.Measurements
	a.Ignored += b.Ignored
	a.NoHost += b.NoHost
	a.Late += b.Late
	a.Dropped += b.Dropped
	a.CounterResets += b.CounterResets
	a.HostResets += b.HostResets
	a.DecodeErrors += b.DecodeErrors
	a.Emitted += b.Emitted
	a.Incomplete += b.Incomplete
	a.Ended += b.Ended
	a.HostsEnded += b.HostsEnded
	return a
}

// stats returns the counters of every assembler so far, and the current
// one's sizes.
func (t *telegraf) stats() ingest.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.cur.Load().asm.Stats()
	s := addStats(t.retired, cur)
	s.Hosts, s.Pending = cur.Hosts, cur.Pending
	return s
}

// start starts the flush goroutine.
func (t *telegraf) start() {
	t.started.Store(true)
	go t.run()
}

// run finalises, every TelegrafFlush, the intervals whose deadline passed.
func (t *telegraf) run() {
	defer close(t.done)
	tick := time.NewTicker(t.flush)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			st := t.pipe.models.def()
			asm, err := t.assembler(st)
			if err != nil {
				continue
			}
			if vs := asm.Flush(time.Now()); len(vs) > 0 {
				if err := t.publishVectors(t.flushW, st, vs); err != nil {
					t.met.msgFailed.Inc()
					t.errs.report("", fmt.Errorf("publish events: %w", err))
				}
			}
		}
	}
}

// halt stops the flush goroutine and waits for it.
func (t *telegraf) halt() {
	t.stopOnce.Do(func() { close(t.stop) })
	if t.started.Load() {
		<-t.done
	}
}

// shutdown stops the flush goroutine, then finalises every open interval
// and publishes the events of the vectors among them. Call it once no
// message comes in any more.
func (t *telegraf) shutdown() error {
	t.halt()
	st := t.pipe.models.def()
	asm, err := t.assembler(st)
	if err != nil {
		return nil
	}
	vs := asm.Drain()
	t.log.Info("intervals finalised at shutdown", "input", t.kind, "vectors", len(vs))
	if len(vs) == 0 {
		return nil
	}
	if err := t.publishVectors(t.flushW, st, vs); err != nil {
		return fmt.Errorf("serve: publish the events of the last %s intervals: %w", t.kind, err)
	}
	return nil
}

// handleCore handles one core-NATS message.
func (t *telegraf) handleCore(w *worker, m *nats.Msg) {
	src := Source{Subject: m.Subject}
	if m.Header != nil {
		src.ID = m.Header.Get(nats.MsgIdHdr)
	}
	t.handle(w, m.Data, &src)
}

// handleDurable handles one JetStream message and acknowledges it once it
// is assembled: its measurements are in the assembler, its dead letter (if
// any) is published, and so are the events of the vectors it completed.
// The message is delivered again, after a backoff, only when its dead
// letter could not be published, and at most MaxDeliver times. See the
// package documentation for what at-least-once means with assembly.
func (t *telegraf) handleDurable(w *worker, m jetstream.Msg) {
	d := natsio.DeliveryOf(m)
	src := Source{Subject: m.Subject(), Stream: d.Stream, Seq: d.Seq, ID: d.ID()}
	if !t.handle(w, m.Data(), &src) {
		_ = m.Ack()
		return
	}
	if d.Last(t.maxDel) {
		t.log.Error("message given up: its dead letter could not be published on its last delivery",
			"stream", src.Stream, "seq", src.Seq)
		_ = m.TermWithReason("dagmm: dead letter not published")
		return
	}
	_ = m.NakWithDelay(d.RedeliveryDelay())
}

// handle decodes and assembles one message, sends it to the dead-letter
// subject when some of its metrics are bad (the good ones are still
// assembled), and scores the vectors it completed and publishes their
// events. It reports whether the message should be delivered again: when
// its dead letter could not be published.
func (t *telegraf) handle(w *worker, data []byte, src *Source) (redeliver bool) {
	start := time.Now()
	st := t.pipe.models.def()
	asm, err := t.assembler(st)
	if err != nil {
		if perr := t.out.deadLetter(st.l.Version, data, src, reasonDecode, err); perr != nil {
			t.met.msgFailed.Inc()
			t.errs.report("", fmt.Errorf("publish dead letter: %w", perr))
			return true
		}
		t.met.msgDeadLettered.Inc()
		return false
	}
	debug := t.log.Enabled(context.Background(), slog.LevelDebug)
	var before ingest.Stats
	if debug {
		before = asm.Stats()
	}
	vs, derr := asm.AddMessage(data, t.format, start)
	if debug {
		t.logDropped(asm, before, src)
	}
	failed := false
	if derr != nil {
		if perr := t.out.deadLetter(st.l.Version, data, src, reasonDecode, derr); perr != nil {
			t.errs.report("", fmt.Errorf("publish dead letter: %w", perr))
			failed, redeliver = true, true
		}
	}
	if len(vs) > 0 {
		// On failure the events are lost: their intervals are finalised,
		// and a redelivered message would be late.
		if err := t.publishVectors(w, st, vs); err != nil {
			t.errs.report("", fmt.Errorf("publish events: %w", err))
			failed = true
		}
	}
	switch {
	case failed:
		t.met.msgFailed.Inc()
	case derr != nil:
		t.met.msgDeadLettered.Inc()
	default:
		t.met.msgScored.Inc()
	}
	t.met.scoreNATS.Observe(since(start))
	return redeliver
}

// logDropped logs, at debug level, the measurements of the message just
// added that were late, dropped or had no host. Only the message goroutine
// adds measurements, so the differences are this message's.
func (t *telegraf) logDropped(asm *ingest.Assembler, before ingest.Stats, src *Source) {
	after := asm.Stats()
	if late, dropped, noHost := after.Late-before.Late, after.Dropped-before.Dropped, after.NoHost-before.NoHost; late+dropped+noHost > 0 {
		t.log.Debug("telegraf measurements not used", "subject", src.Subject, "seq", src.Seq,
			"late", late, "dropped", dropped, "no_host", noHost)
	}
}

// publishVectors scores vs with st and publishes their events. A vector
// the model cannot score, or whose events cannot be published, goes to the
// dead-letter subject as a dagmm JSON sample, with the reason.
func (t *telegraf) publishVectors(w *worker, st *modelState, vs []ingest.Vector) error {
	samples := w.samples[:0]
	for _, v := range vs {
		samples = append(samples, ingest.Sample{Host: v.Host, TS: v.TS, Values: v.Values})
	}
	w.samples = samples
	if err := t.pipe.scoreSamples(w, st, samples, nil); err == nil {
		return t.out.publish(w)
	}
	// Some vector cannot be scored, or published: one at a time, then.
	var errs []error
	for i := range samples {
		kind, err := reasonScore, t.pipe.scoreSamples(w, st, samples[i:i+1], nil)
		if err == nil {
			if err = t.out.publish(w); err == nil {
				continue
			}
			kind, err = reasonPublish, fmt.Errorf("serve: publish events: %w", err)
		}
		body := appendSample(nil, st, &samples[i])
		src := &Source{Subject: t.subject}
		if perr := t.out.deadLetter(st.l.Version, body, src, kind, err); perr != nil {
			errs = append(errs, perr)
		}
	}
	return errors.Join(errs...)
}

// appendSample appends x as a dagmm JSON sample.
func appendSample(b []byte, st *modelState, x *ingest.Sample) []byte {
	b = append(b, `{"host":`...)
	b = appendString(b, x.Host)
	b = append(b, `,"ts":`...)
	b = appendTime(b, x.TS)
	b = append(b, `,"values":{`...)
	for j, v := range x.Values {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, st.featJSON[j]...)
		b = append(b, ':')
		b = appendFloat(b, v)
	}
	return append(b, "}}"...)
}

// incomplete counts and logs an interval finalised without a vector. It
// runs with the assembler locked.
func (t *telegraf) incomplete(inc ingest.Incomplete) {
	for _, m := range inc.Missing {
		t.tmet.missing.WithLabelValues(m.Feature, missingReason(m.Reason)).Inc()
	}
	if t.log.Enabled(context.Background(), slog.LevelDebug) {
		parts := make([]string, len(inc.Missing))
		for i, m := range inc.Missing {
			parts[i] = m.Feature + ": " + m.Reason
		}
		t.log.Debug("interval incomplete", "input", t.kind, "host", inc.Host, "ts", inc.TS, "missing", strings.Join(parts, "; "))
	}
}

// missingReason maps an [ingest.MissingFeature] reason to a bounded label
// value.
func missingReason(r string) string {
	switch {
	case r == "no data":
		return "no_data"
	case r == "first observation of a counter":
		return "first_observation"
	case r == "counter reset":
		return "counter_reset"
	case r == "counter gap":
		return "counter_gap"
	case r == "value not finite":
		return "not_finite"
	case strings.HasPrefix(r, "series "):
		return "series_missing"
	}
	return "other"
}

// telegrafMetrics are the Telegraf input's metrics: a counter updated by
// the incomplete-interval callback, and a collector that reads the
// assemblers' counters at scrape time.
type telegrafMetrics struct {
	missing *prometheus.CounterVec // feature, reason

	t                                           *telegraf
	measurements, unused, decodeErrors, resets  *prometheus.Desc
	hostResets, intervals, hosts, openIntervals *prometheus.Desc
	ended                                       *prometheus.Desc // remote write only
}

func newTelegrafMetrics(reg prometheus.Registerer, t *telegraf) *telegrafMetrics {
	prefix, what := "dagmm_telegraf_", "Telegraf"
	decodeHelp := "Telegraf metrics that could not be decoded (their messages went to the dead-letter subject)."
	if t.kind == kindRemoteWrite {
		prefix, what = "dagmm_remote_write_", "Remote write"
		decodeHelp = "Remote write samples dropped for their host label (the request was answered 400, its other samples taken)."
	}
	m := &telegrafMetrics{
		missing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "missing_features_total",
			Help: "Features without a usable value in " + what + " intervals finalised without a vector, by feature and reason (no_data, first_observation, counter_reset, counter_gap, series_missing, not_finite).",
		}, []string{"feature", "reason"}),
		t: t,
		measurements: prometheus.NewDesc(prefix+"measurements_total",
			what+" measurements decoded and given to the assembler.", nil, nil),
		unused: prometheus.NewDesc(prefix+"measurements_unused_total",
			what+" measurements that contributed to no vector, by reason: ignored (not mapped, or filtered out), no_host (no host tag), late (for an interval already finalised or too far behind), dropped (over the host or series limits, or a time out of range).",
			[]string{"reason"}, nil),
		decodeErrors: prometheus.NewDesc(prefix+"decode_errors_total", decodeHelp, nil, nil),
		resets: prometheus.NewDesc(prefix+"field_resets_total",
			what+" counter fields seen going down (a restart of the host, or a wrap): that interval has no rate.", nil, nil),
		hostResets: prometheus.NewDesc(prefix+"host_resets_total",
			"Hosts whose clock jumped back more than 100 intervals: their state was dropped.", nil, nil),
		intervals: prometheus.NewDesc(prefix+"intervals_total",
			"Host intervals finalised, by result: emitted (a vector, scored) or incomplete (a feature had no usable value; no vector).",
			[]string{"result"}, nil),
		hosts: prometheus.NewDesc(prefix+"hosts",
			"Hosts the "+what+" assembler tracks now.", nil, nil),
		openIntervals: prometheus.NewDesc(prefix+"open_intervals",
			"Host intervals open now, waiting for measurements or their deadline.", nil, nil),
	}
	if t.kind == kindRemoteWrite {
		m.ended = prometheus.NewDesc(prefix+"series_ended_total",
			"Series ended by a stale marker (no longer waited for), by what ended: series, or host (every series of a host ended: it was forgotten).",
			[]string{"what"}, nil)
	}
	reg.MustRegister(m.missing, m)
	return m
}

// Describe implements prometheus.Collector.
func (m *telegrafMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.measurements, m.unused, m.decodeErrors, m.resets, m.hostResets, m.intervals, m.hosts, m.openIntervals} {
		ch <- d
	}
	if m.ended != nil {
		ch <- m.ended
	}
}

// Collect implements prometheus.Collector.
func (m *telegrafMetrics) Collect(ch chan<- prometheus.Metric) {
	if m.t.cur.Load() == nil {
		return
	}
	s := m.t.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(m.measurements, s.Measurements)
	counter(m.unused, s.Ignored, "ignored")
	counter(m.unused, s.NoHost, "no_host")
	counter(m.unused, s.Late, "late")
	counter(m.unused, s.Dropped, "dropped")
	counter(m.decodeErrors, s.DecodeErrors)
	counter(m.resets, s.CounterResets)
	counter(m.hostResets, s.HostResets)
	counter(m.intervals, s.Emitted, "emitted")
	counter(m.intervals, s.Incomplete, "incomplete")
	if m.ended != nil {
		counter(m.ended, s.Ended, "series")
		counter(m.ended, s.HostsEnded, "host")
	}
	ch <- prometheus.MustNewConstMetric(m.hosts, prometheus.GaugeValue, float64(s.Hosts))
	ch <- prometheus.MustNewConstMetric(m.openIntervals, prometheus.GaugeValue, float64(s.Pending))
}
