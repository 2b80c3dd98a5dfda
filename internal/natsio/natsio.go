// Package natsio holds dagmm's NATS inputs and outputs, shared by the
// scorer (package serve), dagmm collect and the fleet's trainers: the
// embedded server, core subscriptions (queue groups, and the ordered
// subscription Telegraf's measurements need), JetStream streams and
// durable pull consumers with their redelivery policy, a publisher that
// waits for JetStream acknowledgements and sets message ids, and the
// draining of all of them at shutdown.
//
// It knows nothing of models or samples: callers pass handlers and bytes.
// The connection itself, kept up across server errors, and the dead-letter
// message builder are in package natsconn.
package natsio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EmbeddedOptions configure [StartEmbedded].
type EmbeddedOptions struct {
	// Name is the server's name.
	Name string
	// Host and Port are where it listens for clients; port -1 picks a free
	// one.
	Host string
	Port int
	// JetStream enables JetStream, storing in StoreDir, or in a temporary
	// directory removed at shutdown when StoreDir is empty.
	JetStream bool
	StoreDir  string
	// MaxPayload is the largest message.
	MaxPayload int32
	// PortHint is added to the error when the server does not start, e.g.
	// the setting that chooses another port.
	PortHint string
}

// Embedded is a nats-server running in the process.
type Embedded struct {
	srv *server.Server
	tmp string // temporary store to remove, or ""
}

// StartEmbedded starts a nats-server in the process and waits until it
// takes connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	e := &Embedded{}
	dir := o.StoreDir
	if o.JetStream && dir == "" {
		tmp, err := os.MkdirTemp("", "dagmm-nats-")
		if err != nil {
			return nil, fmt.Errorf("embedded nats store: %w", err)
		}
		dir, e.tmp = tmp, tmp
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  o.JetStream,
		StoreDir:   dir,
		MaxPayload: o.MaxPayload,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		e.Shutdown()
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	e.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.Shutdown()
		return nil, fmt.Errorf("embedded nats server on %s:%d did not start (is the port in use? %s)", o.Host, o.Port, o.PortHint)
	}
	return e, nil
}

// URL returns the URL clients connect to.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// InProcess is the client option that connects to the server without a
// socket.
func (e *Embedded) InProcess() nats.Option { return nats.InProcessServer(e.srv) }

// Shutdown stops the server and removes its temporary store. It may be
// called more than once.
func (e *Embedded) Shutdown() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
		e.tmp = ""
	}
}

// Limits bound what a subscription buffers before the client drops
// messages as a slow consumer.
type Limits struct {
	Msgs, Bytes int
}

// WorkerLimits leave room for bursts to each of several workers: 64 Ki
// messages or 32 MiB. Core NATS is at most once.
func WorkerLimits() Limits { return Limits{Msgs: 64 << 10, Bytes: 32 << 20} }

// OrderedLimits leave room for the burst of a large fleet's Telegraf
// flush (every host sends at about the same time) to the one subscription
// that takes measurements in order: 512 Ki messages or 256 MiB.
func OrderedLimits() Limits { return Limits{Msgs: 512 << 10, Bytes: 256 << 20} }

// Subscribe subscribes handler to subject, in the queue group queue
// (replicas share the messages) or, with queue "", alone (every message,
// in order), with the given pending limits.
func Subscribe(nc *nats.Conn, subject, queue string, lim Limits, handler nats.MsgHandler) (*nats.Subscription, error) {
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = nc.Subscribe(subject, handler)
	} else {
		sub, err = nc.QueueSubscribe(subject, queue, handler)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(lim.Msgs, lim.Bytes); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return sub, nil
}

// Stream describes a stream [BindStream] creates when it does not exist.
type Stream struct {
	Name     string
	Subjects []string
	MaxAge   time.Duration
	MaxBytes int64 // -1: no limit
	// Transform, when not nil, is the subject transform of a stream
	// created (one that partitions the samples).
	Transform *jetstream.SubjectTransformConfig
}

// BindStream returns the stream named s.Name, creating it (file storage)
// when it does not exist; an existing stream is bound as it is.
func BindStream(ctx context.Context, js jetstream.JetStream, s Stream) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, s.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:             s.Name,
			Subjects:         s.Subjects,
			Storage:          jetstream.FileStorage,
			MaxAge:           s.MaxAge,
			MaxBytes:         s.MaxBytes,
			SubjectTransform: s.Transform,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.Name, err)
	}
	return st, nil
}

// Durable describes a durable pull consumer: explicit acknowledgements,
// from the start of the stream, on one filter subject.
type Durable struct {
	Name, Description string
	Filter            string
	AckWait           time.Duration
	MaxDeliver        int // -1: no limit
	MaxAckPending     int
}

// BindDurable creates or updates the durable consumer d on stream.
func BindDurable(ctx context.Context, stream jetstream.Stream, d Durable) (jetstream.Consumer, error) {
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       d.Name,
		Description:   d.Description,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait,
		MaxDeliver:    d.MaxDeliver,
		MaxAckPending: d.MaxAckPending,
		FilterSubject: d.Filter,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on stream %s: %w", d.Name, stream.CachedInfo().Config.Name, err)
	}
	return cons, nil
}

// Consume starts n pull loops on cons, loop i calling handler(i) for each
// message, each buffering up to perLoop messages or 4 MiB. onErr receives
// the loops' errors.
func Consume(cons jetstream.Consumer, n, perLoop int, handler func(i int) jetstream.MessageHandler, onErr func(error)) ([]jetstream.ConsumeContext, error) {
	var ccs []jetstream.ConsumeContext
	for i := range n {
		cc, err := cons.Consume(handler(i),
			jetstream.PullMaxMessagesWithBytesLimit(perLoop, 4<<20),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { onErr(err) }))
		if err != nil {
			for _, c := range ccs {
				c.Stop()
			}
			return nil, fmt.Errorf("consume %s: %w", cons.CachedInfo().Name, err)
		}
		ccs = append(ccs, cc)
	}
	return ccs, nil
}

// Delivery is where a JetStream message comes from and how often it was
// delivered.
type Delivery struct {
	Stream    string
	Seq       uint64 // in the stream
	Delivered uint64 // 1 on the first delivery
}

// DeliveryOf reads m's metadata; a message without it counts as a first
// delivery from no stream.
func DeliveryOf(m jetstream.Msg) Delivery {
	meta, err := m.Metadata()
	if err != nil {
		return Delivery{Delivered: 1}
	}
	return Delivery{Stream: meta.Stream, Seq: meta.Sequence.Stream, Delivered: meta.NumDelivered}
}

// ID returns "<stream>:<seq>", an id for what the message produces, the
// same on every delivery ("" without a stream).
func (d Delivery) ID() string {
	if d.Stream == "" {
		return ""
	}
	return d.Stream + ":" + strconv.FormatUint(d.Seq, 10)
}

// Last reports whether a consumer with the given MaxDeliver (-1: no
// limit) allows no delivery after this one.
func (d Delivery) Last(maxDeliver int) bool {
	return maxDeliver > 0 && d.Delivered >= uint64(maxDeliver)
}

// RedeliveryDelay is the wait before delivering a message again after
// this delivery failed: 1s, doubling, at most 30s.
func (d Delivery) RedeliveryDelay() time.Duration {
	n := max(d.Delivered, 1)
	return min(time.Second<<min(n-1, 5), 30*time.Second)
}

// PermanentPublishError reports whether a publish failed for a reason a
// later attempt would meet again: the message, not the connection or the
// stream, is at fault.
func PermanentPublishError(err error) bool {
	return errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrHeadersNotSupported)
}

// Drain stops subs and ccs taking messages and waits, up to timeout, for
// the messages they were delivered to be handled.
func Drain(timeout time.Duration, subs []*nats.Subscription, ccs []jetstream.ConsumeContext) error {
	var errs []error
	var wg sync.WaitGroup
	done := make(chan struct{})
	wait := func(closed <-chan struct{}) {
		wg.Go(func() {
			select {
			case <-closed:
			case <-done:
			}
		})
	}
	for _, sub := range subs {
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			errs = append(errs, fmt.Errorf("drain subscription %s: %w", sub.Subject, err))
			continue
		}
		wg.Go(func() {
			select {
			case <-closed:
			case <-done:
			}
		})
	}
	for _, cc := range ccs {
		cc.Drain()
		wait(cc.Closed())
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(timeout):
		errs = append(errs, fmt.Errorf("subscriptions not drained within %v", timeout))
		close(done)
		<-all
	}
	return errors.Join(errs...)
}
