package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/natsconn"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
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

// Dead-letter reason kinds (the HeaderReasonKind values and the reason
// label of dagmm_dead_letters_total).
const (
	reasonDecode  = "decode"
	reasonScore   = "score"
	reasonPublish = "publish"
)

// embeddedMaxPayload is the embedded server's largest message: room for a
// batch of Config.MaxSamples samples.
const embeddedMaxPayload = 8 << 20

// natsSide is the NATS half of a running service.
type natsSide struct {
	s        *Service
	srv      *server.Server // embedded server, or nil
	storeTmp string         // temporary store to remove, or ""
	url      string
	conn     *natsconn.Conn           // redials when the client closes a connection
	cur      atomic.Pointer[natsLink] // the connection in use
	lastWarn atomic.Int64             // unix nanos of the last async error logged
	tg       *telegraf                // the Telegraf input, or nil

	// The subscriptions or pull loops of the connection in use: replaced
	// by setup on a new connection, read at shutdown once conn.Stop has
	// returned.
	subs    []*nats.Subscription
	consume []jetstream.ConsumeContext
}

// natsLink is one connection and its JetStream context (nil when neither
// durable mode nor an event stream needs one).
type natsLink struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// startNATS starts the embedded server if needed, connects and starts
// consuming. The connection is kept up: see [natsconn.Conn] and
// [natsSide.setup].
func (s *Service) startNATS() (n *natsSide, err error) {
	cfg := s.cfg
	n = &natsSide{s: s, url: cfg.NATSURL, tg: s.tg}
	if n.tg != nil {
		n.tg.n = n // before any message comes in
	}
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	opts := []nats.Option{
		nats.Name(cfg.NATSName),
		nats.ErrorHandler(n.asyncError),
	}
	if cfg.NATSURL == "" {
		if err := n.startEmbedded(); err != nil {
			return n, err
		}
		n.url = n.srv.ClientURL()
		opts = append(opts, nats.InProcessServer(n.srv))
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
	cfg := n.s.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, cc := range n.consume {
		cc.Stop()
	}
	n.subs, n.consume = nil, nil
	link := &natsLink{nc: nc}
	if cfg.JetStream || cfg.EventStream != "" {
		var err error
		if link.js, err = jetstream.New(nc); err != nil {
			return fmt.Errorf("serve: jetstream: %w", err)
		}
	}
	n.cur.Store(link)
	if cfg.EventStream != "" {
		if err := n.bindEventStream(ctx, link.js); err != nil {
			return err
		}
	}
	var err error
	switch {
	case cfg.JetStream:
		err = n.startDurable(ctx, link.js)
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

// startEmbedded runs a nats-server with JetStream inside the process.
func (n *natsSide) startEmbedded() error {
	cfg := n.s.cfg
	dir := cfg.StoreDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "dagmm-nats-")
		if err != nil {
			return fmt.Errorf("serve: embedded nats store: %w", err)
		}
		dir, n.storeTmp = tmp, tmp
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "dagmm-embedded",
		Host:       cfg.EmbeddedHost,
		Port:       cfg.EmbeddedPort,
		JetStream:  true,
		StoreDir:   dir,
		MaxPayload: embeddedMaxPayload,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return fmt.Errorf("serve: embedded nats server: %w", err)
	}
	n.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("serve: embedded nats server on %s:%d did not start (is the port in use? choose another with the embedded port setting, or -1 for any)", cfg.EmbeddedHost, cfg.EmbeddedPort)
	}
	return nil
}

// asyncError counts asynchronous errors and logs at most one a second.
func (n *natsSide) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	n.s.met.natsErrors.Inc()
	now := time.Now().UnixNano()
	last := n.lastWarn.Load()
	if now-last < int64(time.Second) || !n.lastWarn.CompareAndSwap(last, now) {
		return
	}
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	n.s.log.Warn("nats error", "subject", subject, "err", err)
}

// startCore subscribes each worker in the queue group.
func (n *natsSide) startCore(nc *nats.Conn) error {
	cfg := n.s.cfg
	for range cfg.Workers {
		w := newWorker(cfg.Batch)
		sub, err := nc.QueueSubscribe(cfg.Subject, cfg.QueueGroup, func(m *nats.Msg) { n.handleCore(w, m) })
		if err != nil {
			return fmt.Errorf("serve: subscribe %s: %w", cfg.Subject, err)
		}
		// Room for bursts: 64 Ki messages or 32 MiB per worker before the
		// client drops (and counts, in dagmm_nats_errors_total) messages
		// as a slow consumer. Core NATS is at most once; durable mode
		// never drops.
		if err := sub.SetPendingLimits(64<<10, 32<<20); err != nil {
			return fmt.Errorf("serve: subscribe %s: %w", cfg.Subject, err)
		}
		n.subs = append(n.subs, sub)
	}
	return nil
}

// bindEventStream creates or binds the stream that stores events.
func (n *natsSide) bindEventStream(ctx context.Context, js jetstream.JetStream) error {
	cfg := n.s.cfg
	_, err := js.Stream(ctx, cfg.EventStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		subjects := []string{cfg.AnomalyPrefix + ".>", cfg.DeadLetterSubject}
		if cfg.PublishScores {
			subjects = append(subjects, cfg.ScorePrefix+".>")
		}
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     cfg.EventStream,
			Subjects: subjects,
			Storage:  jetstream.FileStorage,
			MaxAge:   cfg.StreamMaxAge,
			MaxBytes: cfg.StreamMaxBytes,
		})
	}
	if err != nil {
		return fmt.Errorf("serve: event stream %s: %w", cfg.EventStream, err)
	}
	return nil
}

// startDurable creates or binds the sample stream and the durable pull
// consumer, and starts one pull loop per worker.
func (n *natsSide) startDurable(ctx context.Context, js jetstream.JetStream) error {
	cfg := n.s.cfg
	stream, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     cfg.Stream,
			Subjects: []string{cfg.Subject},
			Storage:  jetstream.FileStorage,
			MaxAge:   cfg.StreamMaxAge,
			MaxBytes: cfg.StreamMaxBytes,
		})
	}
	if err != nil {
		return fmt.Errorf("serve: stream %s: %w", cfg.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "dagmm scorer",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
		FilterSubject: cfg.Subject,
	})
	if err != nil {
		return fmt.Errorf("serve: consumer %s on stream %s: %w", cfg.Consumer, cfg.Stream, err)
	}
	// Each worker buffers up to 500 messages or 4 MiB, whichever is less,
	// within the consumer's MaxAckPending. Telegraf's measurements are
	// assembled in order by one pull loop.
	workers := cfg.Workers
	perWorker := max(1, min(500, cfg.MaxAckPending/cfg.Workers))
	if n.tg != nil {
		workers, perWorker = 1, max(1, min(1000, cfg.MaxAckPending))
	}
	for range workers {
		w := newWorker(cfg.Batch)
		handle := func(m jetstream.Msg) { n.handleDurable(w, m) }
		if n.tg != nil {
			handle = func(m jetstream.Msg) { n.tg.handleDurable(w, m) }
		}
		cc, err := cons.Consume(handle,
			jetstream.PullMaxMessagesWithBytesLimit(perWorker, 4<<20),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				n.asyncError(nil, nil, err)
			}))
		if err != nil {
			return fmt.Errorf("serve: consume %s: %w", cfg.Consumer, err)
		}
		n.consume = append(n.consume, cc)
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
	st := n.s.model()
	kind, err := n.s.scoreMessage(w, st, m.Data, &src, start)
	if err == nil {
		if err = n.publish(w); err == nil {
			n.s.met.msgScored.Inc()
			n.s.met.scoreNATS.Observe(since(start))
			return
		}
		kind, err = reasonPublish, fmt.Errorf("serve: publish events: %w", err)
	}
	if perr := n.deadLetter(st, m.Data, &src, kind, err); perr != nil {
		n.s.met.msgFailed.Inc()
		n.asyncError(nil, nil, fmt.Errorf("publish dead letter: %w", perr))
		return
	}
	n.s.met.msgDeadLettered.Inc()
}

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
	src := Source{Subject: m.Subject()}
	delivered := uint64(1)
	if meta, err := m.Metadata(); err == nil {
		src.Stream, src.Seq = meta.Stream, meta.Sequence.Stream
		src.ID = meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
		delivered = meta.NumDelivered
	}
	st := n.s.model()
	kind, err := n.s.scoreMessage(w, st, m.Data(), &src, start)
	if err == nil {
		perr := n.publish(w)
		if perr == nil {
			// Events went out on this connection before the ack, so the
			// server has them before it sees the ack.
			_ = m.Ack()
			n.s.met.msgScored.Inc()
			n.s.met.scoreNATS.Observe(since(start))
			return
		}
		if !n.lastDelivery(delivered) && !permanentPublishError(perr) {
			n.s.met.msgFailed.Inc()
			n.asyncError(nil, nil, fmt.Errorf("publish events (delivery %d): %w", delivered, perr))
			_ = m.NakWithDelay(redeliveryDelay(delivered))
			return
		}
		kind, err = reasonPublish, fmt.Errorf("serve: publish events (delivery %d): %w", delivered, perr)
	}
	n.deadLetterDurable(st, m, &src, kind, err, delivered)
}

// deadLetterDurable sends a JetStream message that will not be scored to
// the dead-letter subject and terminates it. When the dead letter cannot
// be published the message is delivered again after a backoff, unless
// this was its last delivery.
func (n *natsSide) deadLetterDurable(st *modelState, m jetstream.Msg, src *Source, kind string, cause error, delivered uint64) {
	if perr := n.deadLetter(st, m.Data(), src, kind, cause); perr != nil {
		n.s.met.msgFailed.Inc()
		if n.lastDelivery(delivered) {
			n.s.log.Error("message given up: its dead letter could not be published on its last delivery",
				"stream", src.Stream, "seq", src.Seq, "reason", cause, "err", perr)
			_ = m.TermWithReason("dagmm: dead letter not published")
			return
		}
		n.asyncError(nil, nil, fmt.Errorf("publish dead letter (delivery %d): %w", delivered, perr))
		_ = m.NakWithDelay(redeliveryDelay(delivered))
		return
	}
	n.s.met.msgDeadLettered.Inc()
	_ = m.TermWithReason("dagmm: dead-lettered: " + kind)
}

// lastDelivery reports whether the consumer's MaxDeliver allows no more
// deliveries after the given one.
func (n *natsSide) lastDelivery(delivered uint64) bool {
	max := n.s.cfg.MaxDeliver
	return max > 0 && delivered >= uint64(max)
}

// redeliveryDelay is the wait before delivering a message again after its
// given delivery failed: 1s, doubling, at most 30s.
func redeliveryDelay(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	return min(time.Second<<min(delivered-1, 5), 30*time.Second)
}

// permanentPublishError reports whether a publish failed for a reason a
// later attempt would meet again: the message, not the connection or the
// stream, is at fault.
func permanentPublishError(err error) bool {
	return errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrHeadersNotSupported)
}

// scoreMessage decodes one message and scores its samples, leaving the
// events to publish in w. On failure it returns the dead-letter reason
// kind and the error.
func (s *Service) scoreMessage(w *worker, st *modelState, data []byte, src *Source, received time.Time) (string, error) {
	samples, err := st.dec.Decode(data, received)
	if err != nil {
		return reasonDecode, err
	}
	// The decoder checked the hosts the samples give; one taken from the
	// subject goes into event subjects too.
	for i := range samples {
		if samples[i].Host == "" {
			if err := ingest.CheckHost(hostOf("", src.Subject)); err != nil {
				return reasonDecode, fmt.Errorf("serve: sample %d has no host, and the subject's last token cannot stand for one: %w", i, err)
			}
			break
		}
	}
	if err := s.scoreSamples(w, st, samples, src); err != nil {
		return reasonScore, err
	}
	return "", nil
}

// scoreSamples scores samples and leaves the events to publish in w. src
// is the message the samples came from; it is nil for vectors assembled
// from several messages (Telegraf), whose events then carry no source and
// whose host is the sample's. On failure w holds no events.
func (s *Service) scoreSamples(w *worker, st *modelState, samples []ingest.Sample, src *Source) error {
	w.buf, w.msgs = w.buf[:0], w.msgs[:0]
	cfg := &s.cfg
	baseID := ""
	if src != nil {
		baseID = src.ID
	}
	withID := cfg.EventStream != "" && (baseID != "" || src == nil)
	if src != nil && st.series != nil {
		// The host's window needs the host before scoring.
		for i := range samples {
			samples[i].Host = hostOf(samples[i].Host, src.Subject)
		}
	}
	anomalies := 0
	err := w.score(st, samples, func(i int, r *model.Result) error {
		if !r.Anomaly && !cfg.PublishScores {
			return nil
		}
		host := samples[i].Host
		id := ""
		if src != nil {
			host = hostOf(host, src.Subject)
			src.Index = i
			if baseID != "" {
				src.ID = baseID + ":" + strconv.Itoa(i)
				id = src.ID
			}
		} else if withID {
			// An assembled vector is one host's interval: that is its key.
			id = hostToken(host) + ":" + strconv.FormatInt(samples[i].TS.UnixNano(), 10)
		}
		if r.Anomaly {
			anomalies++
			ex, err := w.explain(st, i, s.method)
			if err != nil {
				return err
			}
			start := len(w.buf)
			w.buf = st.appendScore(w.buf, host, samples[i].TS, r, true, ex, src)
			om := outMsg{subject: w.subj.get(cfg.AnomalyPrefix, host), start: start, end: len(w.buf)}
			if withID {
				om.id = "a:" + id
			}
			w.msgs = append(w.msgs, om)
		}
		if cfg.PublishScores {
			start := len(w.buf)
			w.buf = st.appendScore(w.buf, host, samples[i].TS, r, true, nil, src)
			om := outMsg{subject: w.subj.get(cfg.ScorePrefix, host), start: start, end: len(w.buf)}
			if withID {
				om.id = "s:" + id
			}
			w.msgs = append(w.msgs, om)
		}
		return nil
	})
	if src != nil {
		src.ID = baseID
	}
	if err != nil {
		w.msgs = w.msgs[:0]
		return err
	}
	s.met.samplesNATS.Add(float64(len(samples)))
	if anomalies > 0 {
		s.met.anomaliesNATS.Add(float64(anomalies))
	}
	return nil
}

// publish sends the events waiting in w: plain publishes, or, with an
// event stream, JetStream publishes whose acknowledgements it waits for.
func (n *natsSide) publish(w *worker) error {
	if len(w.msgs) == 0 {
		return nil
	}
	link := n.cur.Load()
	if n.s.cfg.EventStream == "" {
		for _, om := range w.msgs {
			if err := link.nc.Publish(om.subject, w.buf[om.start:om.end]); err != nil {
				return err
			}
		}
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(w.msgs))
	for _, om := range w.msgs {
		m := &nats.Msg{Subject: om.subject, Data: w.buf[om.start:om.end]}
		if om.id != "" {
			m.Header = nats.Header{nats.MsgIdHdr: []string{om.id}}
		}
		f, err := link.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	return waitAcks(futures, n.s.cfg.ShutdownTimeout)
}

// waitAcks waits for every future's acknowledgement and returns the first
// error.
func waitAcks(futures []jetstream.PubAckFuture, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var first error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		case <-t.C:
			return fmt.Errorf("serve: no acknowledgement from the event stream within %v", timeout)
		}
	}
	return first
}

// deadLetter publishes the original payload to the dead-letter subject
// with the reason in its headers.
func (n *natsSide) deadLetter(st *modelState, data []byte, src *Source, kind string, cause error) error {
	cfg := &n.s.cfg
	link := n.cur.Load()
	m := natsconn.DeadLetter(cfg.DeadLetterSubject, data, link.nc.MaxPayload(), src.Subject, kind, cause)
	m.Header.Set(HeaderModelVersion, st.l.Version)
	if src.Stream != "" {
		m.Header.Set(HeaderStream, src.Stream)
		m.Header.Set(HeaderStreamSeq, strconv.FormatUint(src.Seq, 10))
	}
	n.s.met.deadLetters.WithLabelValues(kind).Inc()
	if cfg.EventStream == "" {
		return link.nc.PublishMsg(m)
	}
	if src.ID != "" {
		m.Header.Set(nats.MsgIdHdr, "d:"+src.ID)
	}
	f, err := link.js.PublishMsgAsync(m)
	if err != nil {
		return err
	}
	return waitAcks([]jetstream.PubAckFuture{f}, cfg.ShutdownTimeout)
}

// drainConsumers stops taking messages and finishes those in flight. No
// new connection is dialled after it.
func (n *natsSide) drainConsumers(timeout time.Duration) error {
	n.conn.Stop()
	deadline := time.After(timeout)
	var errs []error
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, sub := range n.subs {
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			errs = append(errs, fmt.Errorf("serve: drain subscription: %w", err))
			continue
		}
		wg.Go(func() {
			select {
			case <-closed:
			case <-done:
			}
		})
	}
	for _, cc := range n.consume {
		cc.Drain()
		wg.Go(func() {
			select {
			case <-cc.Closed():
			case <-done:
			}
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-deadline:
		errs = append(errs, fmt.Errorf("serve: subscriptions not drained within %v", timeout))
		close(done)
		<-all
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
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
	if n.storeTmp != "" {
		os.RemoveAll(n.storeTmp)
		n.storeTmp = ""
	}
}
