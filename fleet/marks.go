package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMarksSubject is the NATS subject [ServeMarks] answers mark
// requests on by default.
const DefaultMarksSubject = "dagmm.marks"

// marksQueue is the queue group of the mark responders, so that one of
// several scorers answers each request.
const marksQueue = "dagmm-marks"

// Limits of a mark's free text.
const (
	MaxMarkBy   = 255  // bytes of Mark.By
	MaxMarkNote = 4096 // bytes of Mark.Note
)

// ErrNotQueued is wrapped by the error of [Marks.Mark] when the mark was
// kept but queueing the host for retraining failed.
var ErrNotQueued = errors.New("fleet: mark kept, but the host was not queued for retraining")

// Enqueuer queues a host for retraining; the job queue implements it.
type Enqueuer interface {
	// Enqueue queues a retraining job for host; reason says why (for the
	// job's log).
	Enqueue(ctx context.Context, host, reason string) error
}

// MarksConfig configures the false-alarm marks' KV bucket, created when
// missing (an existing bucket is bound as it is). The zero value is
// usable: [MarksConfig.Validate] fills the defaults.
type MarksConfig struct {
	// Bucket is the KV bucket ("dagmm-false-alarms").
	Bucket string
	// MaxAge is how long a mark is kept (30 days): past a host's training
	// window a mark changes nothing.
	MaxAge time.Duration
	// Replicas of the bucket in a JetStream cluster (1).
	Replicas int
	// Memory keeps the bucket in memory rather than on disk (tests).
	Memory bool
}

// DefaultMarksConfig returns the default marks settings.
func DefaultMarksConfig() MarksConfig {
	return MarksConfig{Bucket: "dagmm-false-alarms", MaxAge: 30 * 24 * time.Hour, Replicas: 1}
}

// Validate fills the zero fields of c with the defaults and reports a
// setting that cannot work.
func (c *MarksConfig) Validate() error {
	d := DefaultMarksConfig()
	if c.Bucket == "" {
		c.Bucket = d.Bucket
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	switch {
	case !validBucket(c.Bucket):
		return fmt.Errorf("fleet: marks bucket %q: want letters, digits, '-' and '_'", c.Bucket)
	case c.MaxAge < 0:
		return fmt.Errorf("fleet: marks max age %v: want a positive duration", c.MaxAge)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("fleet: marks replicas %d: want 1 to 5", c.Replicas)
	}
	return nil
}

// Mark is an operator's mark of one of a host's events as a false alarm.
type Mark struct {
	Host   string    `json:"host"`
	TS     time.Time `json:"ts"`             // the sample's (the event's) time
	By     string    `json:"by,omitempty"`   // who marked it
	Note   string    `json:"note,omitempty"` // why
	Marked time.Time `json:"marked"`         // when it was marked
}

// Marks keeps operators' false-alarm marks in a KV bucket, one key per host
// and sample time ("<host key>.<ts in Unix nanoseconds>"; marking the same
// sample again replaces the mark). It implements [FalseAlarms] for the
// trainers. It is safe for concurrent use.
type Marks struct {
	kv  jetstream.KeyValue
	enq Enqueuer
}

var _ FalseAlarms = (*Marks)(nil)

// NewMarks binds the marks bucket, creating it with cfg's settings when
// missing. enq, when not nil, queues each marked host for retraining.
func NewMarks(ctx context.Context, js jetstream.JetStream, cfg MarksConfig, enq Enqueuer) (*Marks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		storage := jetstream.FileStorage
		if cfg.Memory {
			storage = jetstream.MemoryStorage
		}
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.Bucket,
			Description: "dagmm false-alarm marks, one key per host and sample time",
			TTL:         cfg.MaxAge,
			Storage:     storage,
			Replicas:    cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: marks bucket %s: %w", cfg.Bucket, err)
	}
	return &Marks{kv: kv, enq: enq}, nil
}

// Mark records that the host's event of the sample at ts is a false alarm:
// the sample stays in the host's next training window. by says who marks
// it, note why (both optional). With an [Enqueuer] the host is then
// queued for retraining; when that fails the mark is kept and the error
// wraps [ErrNotQueued].
func (m *Marks) Mark(ctx context.Context, host string, ts time.Time, by, note string) error {
	switch err := checkHostName(host); {
	case err != nil:
		return fmt.Errorf("fleet: mark: %w", err)
	case ts.IsZero():
		return fmt.Errorf("fleet: mark host %q: no sample time (ts)", host)
	case len(by) > MaxMarkBy:
		return fmt.Errorf("fleet: mark host %q: \"by\" is %d bytes, longer than %d", host, len(by), MaxMarkBy)
	case len(note) > MaxMarkNote:
		return fmt.Errorf("fleet: mark host %q: the note is %d bytes, longer than %d", host, len(note), MaxMarkNote)
	}
	mk := Mark{Host: host, TS: ts.UTC(), By: by, Note: note, Marked: time.Now().UTC()}
	data, err := json.Marshal(mk)
	if err != nil {
		return fmt.Errorf("fleet: mark host %q: %w", host, err)
	}
	key := hostKey(host) + "." + strconv.FormatInt(ts.UnixNano(), 10)
	if _, err := m.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("fleet: mark host %q at %s: %w", host, mk.TS.Format(time.RFC3339Nano), err)
	}
	if m.enq == nil {
		return nil
	}
	reason := fmt.Sprintf("false alarm at %s marked by %q", mk.TS.Format(time.RFC3339Nano), by)
	// A job already pending for the host reads its window after this mark
	// (unless it has started): that is the retraining asked for.
	if err := m.enq.Enqueue(ctx, host, reason); err != nil && !errors.Is(err, ErrJobPending) {
		return fmt.Errorf("host %q: %w: %w", host, ErrNotQueued, err)
	}
	return nil
}

// List returns the host's marks, by sample time.
func (m *Marks) List(ctx context.Context, host string) ([]Mark, error) {
	if err := checkHostName(host); err != nil {
		return nil, fmt.Errorf("fleet: marks: %w", err)
	}
	w, err := m.kv.Watch(ctx, hostKey(host)+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: marks of host %q: %w", host, err)
	}
	defer w.Stop()
	var out []Mark
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fleet: marks of host %q: %w", host, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("fleet: marks of host %q: the watch ended early", host)
			}
			if e == nil {
				slices.SortFunc(out, func(a, b Mark) int { return a.TS.Compare(b.TS) })
				return out, nil
			}
			var mk Mark
			if err := json.Unmarshal(e.Value(), &mk); err != nil {
				return nil, fmt.Errorf("fleet: marks of host %q: key %s: %v", host, e.Key(), err)
			}
			out = append(out, mk)
		}
	}
}

// Marked returns the sample times of the host's false-alarm marks, in
// order; none for a host without marks.
func (m *Marks) Marked(ctx context.Context, host string) ([]time.Time, error) {
	marks, err := m.List(ctx, host)
	if err != nil {
		return nil, err
	}
	ts := make([]time.Time, len(marks))
	for i, mk := range marks {
		ts[i] = mk.TS
	}
	return ts, nil
}

// MarkRequest is the body of a mark request, over NATS ([ServeMarks]) or
// HTTP: the host and time of the event, as its "host" and "ts" fields. An
// event as the service publishes it is a valid request: its other fields
// are ignored.
type MarkRequest struct {
	Host string    `json:"host"`
	TS   time.Time `json:"ts"`
	By   string    `json:"by,omitempty"`
	Note string    `json:"note,omitempty"`
}

// MarkReply answers a [MarkRequest]. OK: the mark is kept. Queued: the host
// was queued for retraining. Error says what went wrong, when something
// did (with OK true, the queueing).
type MarkReply struct {
	OK     bool   `json:"ok"`
	Queued bool   `json:"queued"`
	Error  string `json:"error,omitempty"`
}

// Handle records the mark a request asks for and says how it went; it
// serves the NATS responder and the HTTP endpoint alike.
func (m *Marks) Handle(ctx context.Context, req MarkRequest) MarkReply {
	err := m.Mark(ctx, req.Host, req.TS, req.By, req.Note)
	switch {
	case err == nil:
		return MarkReply{OK: true, Queued: m.enq != nil}
	case errors.Is(err, ErrNotQueued):
		return MarkReply{OK: true, Error: err.Error()}
	}
	return MarkReply{Error: err.Error()}
}

// ServeMarks answers mark requests on subject (a [MarkRequest] as JSON,
// replied to with a [MarkReply]) until ctx is done, in the queue group
// "dagmm-marks", so that with several scorers one answers each request.
// Each request is handled within ctx and timeout (0: 10 s). It returns once
// the server has the subscription; the subscription ends with ctx.
//
//	nats req dagmm.marks '{"host":"web-1","ts":"2026-12-05T20:49:05Z","by":"ana","note":"deploy"}'
func ServeMarks(ctx context.Context, nc *nats.Conn, subject string, m *Marks, timeout time.Duration) (*nats.Subscription, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sub, err := nc.QueueSubscribe(subject, marksQueue, func(msg *nats.Msg) {
		var req MarkRequest
		var reply MarkReply
		if err := json.Unmarshal(msg.Data, &req); err != nil {
			reply.Error = fmt.Sprintf("fleet: mark request: not a JSON object with host and ts: %v", err)
		} else {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			reply = m.Handle(rctx, req)
			cancel()
		}
		data, _ := json.Marshal(reply) // a struct of strings and bools always encodes
		_ = msg.Respond(data)          // nowhere to report to: the requester times out
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: serve marks on %s: %w", subject, err)
	}
	// Once ServeMarks returns, the server knows the subscription: a request
	// sent then is answered, not refused for want of responders.
	// ctx bounds the subscription's life, and may have no deadline.
	fctx, cancel := context.WithTimeout(ctx, timeout)
	err = nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("fleet: serve marks on %s: %w", subject, err)
	}
	context.AfterFunc(ctx, func() { _ = sub.Unsubscribe() })
	return sub, nil
}
