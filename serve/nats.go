package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// Headers of a dead letter. Its body is the original message, unchanged.
const (
	// HeaderReason holds why the message could not be scored, e.g.
	// `ingest: sample 3 (offset 412): feature "disk_busy": value is not a number: got a string`.
	HeaderReason = "Dagmm-Reason"
	// HeaderReasonKind is "decode" (the message is not valid samples for
	// the model) or "score" (the model refused a value).
	HeaderReasonKind = "Dagmm-Reason-Kind"
	// HeaderSubject is the subject the message arrived on.
	HeaderSubject = "Dagmm-Subject"
	// HeaderStream and HeaderStreamSeq identify the message in its
	// JetStream stream (durable mode only).
	HeaderStream    = "Dagmm-Stream"
	HeaderStreamSeq = "Dagmm-Stream-Seq"
	// HeaderModelVersion is the version of the model that was serving.
	HeaderModelVersion = "Dagmm-Model-Version"
	// HeaderTruncated is set, to the original size in bytes, when the
	// payload had to be cut to leave room for the headers.
	HeaderTruncated = "Dagmm-Truncated"
)

// Dead-letter reason kinds (the HeaderReasonKind values and the reason
// label of dagmm_dead_letters_total).
const (
	reasonDecode = "decode"
	reasonScore  = "score"
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
	nc       *nats.Conn
	closed   chan struct{} // closed when nc is closed
	js       jetstream.JetStream
	subs     []*nats.Subscription
	consume  []jetstream.ConsumeContext
	lastWarn atomic.Int64 // unix nanos of the last async error logged
	tg       *telegraf    // the Telegraf input, or nil
}

// startNATS starts the embedded server if needed, connects and starts
// consuming.
func (s *Service) startNATS(ctx context.Context) (n *natsSide, err error) {
	cfg := s.cfg
	n = &natsSide{s: s, url: cfg.NATSURL, closed: make(chan struct{}), tg: s.tg}
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
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ErrorHandler(n.asyncError),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { s.log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
		nats.ClosedHandler(func(*nats.Conn) { close(n.closed) }),
	}
	if cfg.NATSURL == "" {
		if err := n.startEmbedded(); err != nil {
			return n, err
		}
		n.url = n.srv.ClientURL()
		opts = append(opts, nats.InProcessServer(n.srv))
	}
	n.nc, err = nats.Connect(n.url, opts...)
	if err != nil {
		close(n.closed)
		return n, fmt.Errorf("serve: nats connect %s: %w", n.url, err)
	}
	if cfg.JetStream || cfg.EventStream != "" {
		if n.js, err = jetstream.New(n.nc); err != nil {
			return n, fmt.Errorf("serve: jetstream: %w", err)
		}
	}
	if cfg.EventStream != "" {
		if err := n.bindEventStream(ctx); err != nil {
			return n, err
		}
	}
	switch {
	case cfg.JetStream:
		err = n.startDurable(ctx)
	case n.tg != nil:
		err = n.startTelegrafCore()
	default:
		err = n.startCore()
	}
	if err != nil {
		return n, err
	}
	if err := n.nc.FlushTimeout(cfg.ShutdownTimeout); err != nil {
		return n, fmt.Errorf("serve: nats flush: %w", err)
	}
	if n.tg != nil {
		n.tg.start()
	}
	return n, nil
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
func (n *natsSide) startCore() error {
	cfg := n.s.cfg
	for range cfg.Workers {
		w := newWorker(cfg.Batch)
		sub, err := n.nc.QueueSubscribe(cfg.Subject, cfg.QueueGroup, func(m *nats.Msg) { n.handleCore(w, m) })
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
func (n *natsSide) bindEventStream(ctx context.Context) error {
	cfg := n.s.cfg
	_, err := n.js.Stream(ctx, cfg.EventStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		subjects := []string{cfg.AnomalyPrefix + ".>", cfg.DeadLetterSubject}
		if cfg.PublishScores {
			subjects = append(subjects, cfg.ScorePrefix+".>")
		}
		_, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
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
func (n *natsSide) startDurable(ctx context.Context) error {
	cfg := n.s.cfg
	stream, err := n.js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
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

// handleCore scores one core-NATS message.
func (n *natsSide) handleCore(w *worker, m *nats.Msg) {
	start := time.Now()
	src := Source{Subject: m.Subject}
	if m.Header != nil {
		src.ID = m.Header.Get(nats.MsgIdHdr)
	}
	st := n.s.model()
	reason, err := n.s.scoreMessage(w, st, m.Data, &src, start)
	if err != nil {
		if perr := n.deadLetter(st, m.Data, &src, reason, err); perr != nil {
			n.s.met.msgFailed.Inc()
			return
		}
		n.s.met.msgDeadLettered.Inc()
		return
	}
	if err := n.publish(w); err != nil {
		n.s.met.msgFailed.Inc()
		n.asyncError(nil, nil, fmt.Errorf("publish events: %w", err))
		return
	}
	n.s.met.msgScored.Inc()
	n.s.met.scoreNATS.Observe(since(start))
}

// handleDurable scores one JetStream message and acknowledges it once its
// events (or its dead letter) are published. When publishing fails the
// message is negatively acknowledged, to be delivered again.
func (n *natsSide) handleDurable(w *worker, m jetstream.Msg) {
	start := time.Now()
	src := Source{Subject: m.Subject()}
	if meta, err := m.Metadata(); err == nil {
		src.Stream, src.Seq = meta.Stream, meta.Sequence.Stream
		src.ID = meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	st := n.s.model()
	reason, err := n.s.scoreMessage(w, st, m.Data(), &src, start)
	if err != nil {
		if perr := n.deadLetter(st, m.Data(), &src, reason, err); perr != nil {
			n.s.met.msgFailed.Inc()
			n.asyncError(nil, nil, fmt.Errorf("publish dead letter: %w", perr))
			_ = m.NakWithDelay(time.Second)
			return
		}
		n.s.met.msgDeadLettered.Inc()
		_ = m.Ack()
		return
	}
	if err := n.publish(w); err != nil {
		n.s.met.msgFailed.Inc()
		n.asyncError(nil, nil, fmt.Errorf("publish events: %w", err))
		_ = m.NakWithDelay(time.Second)
		return
	}
	// Events went out on this connection before the ack, so the server
	// has them before it sees the ack.
	_ = m.Ack()
	n.s.met.msgScored.Inc()
	n.s.met.scoreNATS.Observe(since(start))
}

// scoreMessage decodes one message and scores its samples, leaving the
// events to publish in w. On failure it returns the dead-letter reason
// kind and the error.
func (s *Service) scoreMessage(w *worker, st *modelState, data []byte, src *Source, received time.Time) (string, error) {
	samples, err := st.dec.Decode(data, received)
	if err != nil {
		return reasonDecode, err
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
	if n.s.cfg.EventStream == "" {
		for _, om := range w.msgs {
			if err := n.nc.Publish(om.subject, w.buf[om.start:om.end]); err != nil {
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
		f, err := n.js.PublishMsgAsync(m)
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
	h := nats.Header{}
	h.Set(HeaderReason, headerValue(cause.Error()))
	h.Set(HeaderReasonKind, kind)
	h.Set(HeaderSubject, src.Subject)
	h.Set(HeaderModelVersion, st.l.Version)
	if src.Stream != "" {
		h.Set(HeaderStream, src.Stream)
		h.Set(HeaderStreamSeq, strconv.FormatUint(src.Seq, 10))
	}
	// Leave room for the headers in a message as large as the server takes.
	if room := int(n.nc.MaxPayload()) - 8<<10; len(data) > room && room > 0 {
		h.Set(HeaderTruncated, strconv.Itoa(len(data)))
		data = data[:room]
	}
	m := &nats.Msg{Subject: cfg.DeadLetterSubject, Data: data, Header: h}
	n.s.met.deadLetters.WithLabelValues(kind).Inc()
	if cfg.EventStream == "" {
		return n.nc.PublishMsg(m)
	}
	if src.ID != "" {
		h.Set(nats.MsgIdHdr, "d:"+src.ID)
	}
	f, err := n.js.PublishMsgAsync(m)
	if err != nil {
		return err
	}
	return waitAcks([]jetstream.PubAckFuture{f}, cfg.ShutdownTimeout)
}

// headerValue makes s safe for a NATS header value: one line, at most 1 KiB.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1021] + "..."
	}
	return s
}

// drainConsumers stops taking messages and finishes those in flight.
func (n *natsSide) drainConsumers(timeout time.Duration) error {
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
	var errs []error
	if n.nc != nil && !n.nc.IsClosed() {
		if err := n.nc.Drain(); err != nil {
			errs = append(errs, fmt.Errorf("serve: nats drain: %w", err))
			n.nc.Close()
		}
		select {
		case <-n.closed:
		case <-time.After(timeout):
			errs = append(errs, fmt.Errorf("serve: nats connection not drained within %v", timeout))
			n.nc.Close()
		}
	}
	n.stopServer()
	return errors.Join(errs...)
}

// abort closes everything at once, without draining.
func (n *natsSide) abort() {
	if n.tg != nil {
		n.tg.halt()
	}
	for _, cc := range n.consume {
		cc.Stop()
	}
	if n.nc != nil {
		n.nc.Close()
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
