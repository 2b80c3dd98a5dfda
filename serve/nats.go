package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/internal/natsconn"
	"github.com/dagmm/dagmm/internal/natsio"
)

// Headers of a dead letter. Its body is the original message, unchanged.
const (
	// HeaderReason holds why the message could not be scored, e.g.
	// `ingest: sample 3 (offset 412): feature "disk_busy": value is not a number: got a string`.
	HeaderReason = natsconn.HeaderReason
	// HeaderReasonKind is "decode" (the message is not valid samples for
	// the model, a host that cannot go in a subject among them), "score"
	// (the model refused a value) or "publish" (its events could not be
	// published: in durable mode, on every delivery up to MaxDeliver).
	HeaderReasonKind = natsconn.HeaderReasonKind
	// HeaderSubject is the subject the message arrived on.
	HeaderSubject = natsconn.HeaderSubject
	// HeaderStream and HeaderStreamSeq identify the message in its
	// JetStream stream (durable mode only).
	HeaderStream    = "Dagmm-Stream"
	HeaderStreamSeq = "Dagmm-Stream-Seq"
	// HeaderModelVersion is the version of the model that was serving.
	HeaderModelVersion = "Dagmm-Model-Version"
	// HeaderTruncated is set, to the original size in bytes, when the
	// payload had to be cut to leave room for the headers.
	HeaderTruncated = natsconn.HeaderTruncated
)

// embeddedMaxPayload is the embedded server's largest message: room for a
// batch of Config.Scoring.MaxSamples samples.
const embeddedMaxPayload = 8 << 20

// natsSide is the NATS half of a running service: the connection, the
// consumers that feed the pipeline, and the output they publish to.
type natsSide struct {
	cfg   Config
	log   *slog.Logger
	met   *metrics
	pipe  *pipeline
	out   *natsOut
	tg    *telegraf // the Telegraf input, or nil
	errs  *asyncErrors
	embed *natsio.Embedded // or nil
	url   string
	conn  *natsconn.Conn // redials when the client closes a connection

	// The subscriptions or pull loops of the connection in use: replaced
	// by setup on a new connection, read at shutdown once conn.Stop has
	// returned.
	subs    []*nats.Subscription
	consume []jetstream.ConsumeContext

	partitioned bool // the sample stream's transform was set: see partitionStream
}

// natsOut publishes what the pipeline produced: a worker's events, and
// dead letters. It is shared by the consumers and the Telegraf input.
type natsOut struct {
	pub               natsio.Publisher
	deadLetterSubject string
	met               *metrics
}

// newNATSOut returns the output of cfg's events; its link is set by the
// connection's setup.
func newNATSOut(cfg *Config, met *metrics) *natsOut {
	o := &natsOut{deadLetterSubject: cfg.NATS.DeadLetterSubject, met: met}
	o.pub.Acked, o.pub.Timeout = cfg.JetStream.EventStream != "", cfg.ShutdownTimeout
	return o
}

// publish sends the events waiting in w.
func (o *natsOut) publish(w *worker) error {
	return o.pub.PublishAll(len(w.msgs), func(i int) (string, []byte, string) {
		om := &w.msgs[i]
		return om.subject, w.buf[om.start:om.end], om.id
	})
}

// deadLetter publishes the original payload to the dead-letter subject
// with the reason in its headers; version is the serving model's.
func (o *natsOut) deadLetter(version string, data []byte, src *Source, kind string, cause error) error {
	m := natsconn.DeadLetter(o.deadLetterSubject, data, o.pub.MaxPayload(), src.Subject, kind, cause)
	m.Header.Set(HeaderModelVersion, version)
	if src.Stream != "" {
		m.Header.Set(HeaderStream, src.Stream)
		m.Header.Set(HeaderStreamSeq, strconv.FormatUint(src.Seq, 10))
	}
	o.met.deadLetters.WithLabelValues(kind).Inc()
	id := ""
	if src.ID != "" {
		id = "d:" + src.ID
	}
	return o.pub.PublishMsg(m, id)
}

// asyncErrors counts asynchronous errors and logs at most one a second.
type asyncErrors struct {
	log      *slog.Logger
	count    prometheus.Counter
	lastWarn atomic.Int64 // unix nanos of the last error logged
}

// report counts err and logs it unless one was logged within a second.
func (a *asyncErrors) report(subject string, err error) {
	a.count.Inc()
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last < int64(time.Second) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn("nats error", "subject", subject, "err", err)
}

// natsHandler is the client's asynchronous error handler.
func (a *asyncErrors) natsHandler(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	a.report(subject, err)
}

// startNATS starts the embedded server if needed, connects and starts
// consuming. The connection is kept up: see [natsconn.Conn] and
// [natsSide.setup].
func (s *Service) startNATS() (n *natsSide, err error) {
	cfg := s.cfg
	n = &natsSide{cfg: cfg, log: s.log, met: s.met, pipe: s.pipe, out: s.out, tg: s.tg, url: cfg.NATS.URL,
		errs: s.errs}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	opts := []nats.Option{
		nats.Name(cfg.NATS.Name),
		nats.ErrorHandler(n.errs.natsHandler),
	}
	if cfg.NATS.URL == "" {
		n.embed, err = natsio.StartEmbedded(natsio.EmbeddedOptions{
			Name: "dagmm-embedded", Host: cfg.NATS.EmbeddedHost, Port: cfg.NATS.EmbeddedPort,
			JetStream: true, StoreDir: cfg.NATS.StoreDir, MaxPayload: embeddedMaxPayload,
			PortHint: "choose another with the embedded port setting, or -1 for any",
		})
		if err != nil {
			return n, fmt.Errorf("serve: %w", err)
		}
		n.url = n.embed.URL()
		opts = append(opts, n.embed.InProcess())
	} else {
		auth, err := cfg.NATS.Auth.Options()
		if err != nil {
			return n, fmt.Errorf("serve: %w", err)
		}
		opts = append(opts, auth...)
	}
	n.conn, err = natsconn.Dial(natsconn.Options{
		URL:      n.url,
		NATS:     opts,
		Setup:    n.setup,
		OnChange: s.natsChanged,
		Log:      s.log,
	})
	if err != nil {
		return n, fmt.Errorf("serve: %w", err)
	}
	if n.tg != nil {
		n.tg.start()
	}
	return n, nil
}

// setup prepares a new connection, the first or one dialled after the
// client closed the previous: the event stream, and the subscriptions or
// pull loops, which replace those of the previous connection.
func (n *natsSide) setup(nc *nats.Conn) error {
	cfg := &n.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, cc := range n.consume {
		cc.Stop()
	}
	n.subs, n.consume = nil, nil
	link, err := natsio.NewLink(nc, cfg.JetStream.Enabled || cfg.JetStream.EventStream != "")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	n.out.pub.SetLink(link)
	if cfg.JetStream.EventStream != "" {
		if err := n.bindEventStream(ctx, link.JS); err != nil {
			return err
		}
	}
	switch {
	case cfg.JetStream.Enabled:
		err = n.startDurable(ctx, link.JS)
	case n.tg != nil:
		err = n.startTelegrafCore(nc)
	default:
		err = n.startCore(nc)
	}
	if err != nil {
		return err
	}
	if err := nc.FlushTimeout(cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("serve: nats flush: %w", err)
	}
	return nil
}

// startCore subscribes each worker in the queue group.
func (n *natsSide) startCore(nc *nats.Conn) error {
	cfg := &n.cfg
	for range cfg.Scoring.Workers {
		w := newWorker(cfg.Scoring.Batch)
		sub, err := natsio.Subscribe(nc, cfg.NATS.Subject, cfg.NATS.QueueGroup, natsio.WorkerLimits(), func(m *nats.Msg) { n.handleCore(w, m) })
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		n.subs = append(n.subs, sub)
	}
	return nil
}

// startTelegrafCore subscribes to Telegraf's subject with one plain
// subscription: its messages are handled one at a time, in order. No queue
// group: replicas sharing the subject at random would each see only part
// of a host's measurements.
func (n *natsSide) startTelegrafCore(nc *nats.Conn) error {
	w := newWorker(n.cfg.Scoring.Batch)
	sub, err := natsio.Subscribe(nc, n.cfg.NATS.Subject, "", natsio.OrderedLimits(), func(m *nats.Msg) { n.tg.handleCore(w, m) })
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	n.subs = append(n.subs, sub)
	return nil
}

// bindEventStream creates or binds the stream that stores events.
func (n *natsSide) bindEventStream(ctx context.Context, js jetstream.JetStream) error {
	cfg := &n.cfg
	subjects := []string{cfg.NATS.AnomalyPrefix + ".>", cfg.NATS.DeadLetterSubject}
	if cfg.NATS.PublishScores {
		subjects = append(subjects, cfg.NATS.ScorePrefix+".>")
	}
	_, err := natsio.BindStream(ctx, js, natsio.Stream{Name: cfg.JetStream.EventStream, Subjects: subjects,
		MaxAge: cfg.JetStream.StreamMaxAge, MaxBytes: cfg.JetStream.StreamMaxBytes})
	if err != nil {
		return fmt.Errorf("serve: event %w", err)
	}
	return nil
}

// startDurable creates or binds the sample stream and the durable pull
// consumer, and starts one pull loop per worker.
func (n *natsSide) startDurable(ctx context.Context, js jetstream.JetStream) error {
	cfg := &n.cfg
	var transform *jetstream.SubjectTransformConfig
	if p, ok := cfg.Partitioning(); ok {
		transform = p.Transform() // from the first message on
	}
	stream, err := natsio.BindStream(ctx, js, natsio.Stream{Name: cfg.JetStream.Stream, Subjects: []string{cfg.NATS.Subject},
		MaxAge: cfg.JetStream.StreamMaxAge, MaxBytes: cfg.JetStream.StreamMaxBytes, Transform: transform})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	stream, filter, durable, err := n.partitionStream(ctx, js, stream)
	if err != nil {
		return err
	}
	cons, err := natsio.BindDurable(ctx, stream, natsio.Durable{
		Name: durable, Description: "dagmm scorer", Filter: filter,
		AckWait: cfg.JetStream.AckWait, MaxDeliver: cfg.JetStream.MaxDeliver, MaxAckPending: cfg.JetStream.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Each worker buffers up to 500 messages or 4 MiB, whichever is less,
	// within the consumer's MaxAckPending. Telegraf's measurements are
	// assembled in order by one pull loop.
	loops := cfg.Scoring.Workers
	perLoop := max(1, min(500, cfg.JetStream.MaxAckPending/cfg.Scoring.Workers))
	if n.tg != nil {
		loops, perLoop = 1, max(1, min(1000, cfg.JetStream.MaxAckPending))
	}
	handler := func(int) jetstream.MessageHandler {
		w := newWorker(cfg.Scoring.Batch)
		if n.tg != nil {
			return func(m jetstream.Msg) { n.tg.handleDurable(w, m) }
		}
		return func(m jetstream.Msg) { n.handleDurable(w, m) }
	}
	n.consume, err = natsio.Consume(cons, loops, perLoop, handler, func(err error) { n.errs.report("", err) })
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// handleCore scores one core-NATS message. A message that cannot be
// decoded or scored, or whose events cannot be published, goes to the
// dead-letter subject.
func (n *natsSide) handleCore(w *worker, m *nats.Msg) {
	start := time.Now()
	src := Source{Subject: m.Subject}
	if m.Header != nil {
		src.ID = m.Header.Get(nats.MsgIdHdr)
	}
	kind, err := n.pipe.scoreMessage(w, m.Data, &src, start)
	if err == nil {
		if err = n.out.publish(w); err == nil {
			n.met.msgScored.Inc()
			n.met.scoreNATS.Observe(since(start))
			return
		}
		kind, err = reasonPublish, fmt.Errorf("serve: publish events: %w", err)
	}
	if perr := n.out.deadLetter(n.version(), m.Data, &src, kind, err); perr != nil {
		n.met.msgFailed.Inc()
		n.errs.report("", fmt.Errorf("publish dead letter: %w", perr))
		return
	}
	n.met.msgDeadLettered.Inc()
}

// version returns the serving model's version, for dead letters.
func (n *natsSide) version() string { return n.pipe.models.def().l.Version }

// handleDurable scores one JetStream message and acknowledges it once its
// events are published. A message that fails for a reason that will not
// change (it cannot be decoded, a host cannot go in a subject, the model
// refuses a value) is dead-lettered and terminated at once. When
// publishing its events fails, the message is negatively acknowledged, to
// be delivered again after a backoff, up to MaxDeliver deliveries; on the
// last it is dead-lettered and terminated. Either way it never holds back
// the messages behind it.
func (n *natsSide) handleDurable(w *worker, m jetstream.Msg) {
	start := time.Now()
	d := natsio.DeliveryOf(m)
	src := Source{Subject: m.Subject(), Stream: d.Stream, Seq: d.Seq, ID: d.ID()}
	kind, err := n.pipe.scoreMessage(w, m.Data(), &src, start)
	if err == nil {
		perr := n.out.publish(w)
		if perr == nil {
			// Events went out on this connection before the ack, so the
			// server has them before it sees the ack.
			_ = m.Ack()
			n.met.msgScored.Inc()
			n.met.scoreNATS.Observe(since(start))
			return
		}
		if !d.Last(n.cfg.JetStream.MaxDeliver) && !natsio.PermanentPublishError(perr) {
			n.met.msgFailed.Inc()
			n.errs.report("", fmt.Errorf("publish events (delivery %d): %w", d.Delivered, perr))
			_ = m.NakWithDelay(d.RedeliveryDelay())
			return
		}
		kind, err = reasonPublish, fmt.Errorf("serve: publish events (delivery %d): %w", d.Delivered, perr)
	}
	n.deadLetterDurable(m, &src, kind, err, d)
}

// deadLetterDurable sends a JetStream message that will not be scored to
// the dead-letter subject and terminates it. When the dead letter cannot
// be published the message is delivered again after a backoff, unless
// this was its last delivery.
func (n *natsSide) deadLetterDurable(m jetstream.Msg, src *Source, kind string, cause error, d natsio.Delivery) {
	if perr := n.out.deadLetter(n.version(), m.Data(), src, kind, cause); perr != nil {
		n.met.msgFailed.Inc()
		if d.Last(n.cfg.JetStream.MaxDeliver) {
			n.log.Error("message given up: its dead letter could not be published on its last delivery",
				"stream", src.Stream, "seq", src.Seq, "reason", cause, "err", perr)
			_ = m.TermWithReason("dagmm: dead letter not published")
			return
		}
		n.errs.report("", fmt.Errorf("publish dead letter (delivery %d): %w", d.Delivered, perr))
		_ = m.NakWithDelay(d.RedeliveryDelay())
		return
	}
	n.met.msgDeadLettered.Inc()
	_ = m.TermWithReason("dagmm: dead-lettered: " + kind)
}

// drainConsumers stops taking messages and finishes those in flight. No
// new connection is dialled after it.
func (n *natsSide) drainConsumers(timeout time.Duration) error {
	n.conn.Stop()
	var errs []error
	if err := natsio.Drain(timeout, n.subs, n.consume); err != nil {
		errs = append(errs, fmt.Errorf("serve: %w", err))
	}
	if n.tg != nil {
		// No message comes in any more: finalise the open intervals.
		if err := n.tg.shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close drains the connection (flushing what is buffered), then stops the
// embedded server.
func (n *natsSide) close(timeout time.Duration) error {
	var err error
	if n.conn != nil {
		if err = n.conn.Drain(timeout); err != nil {
			err = fmt.Errorf("serve: %w", err)
		}
	}
	n.stopServer()
	return err
}

// abort closes everything at once, without draining.
func (n *natsSide) abort() {
	if n.tg != nil {
		n.tg.halt()
	}
	if n.conn != nil {
		n.conn.Stop()
	}
	for _, cc := range n.consume {
		cc.Stop()
	}
	if n.conn != nil {
		n.conn.Close()
	}
	n.stopServer()
}

func (n *natsSide) stopServer() {
	if n.embed != nil {
		n.embed.Shutdown()
	}
}
