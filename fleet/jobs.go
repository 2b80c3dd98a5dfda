package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

// ErrJobPending is returned, wrapped, by [Jobs.Enqueue] when the host
// already has a job waiting or in progress.
var ErrJobPending = errors.New("fleet: a job is already pending for the host")

// JobsConfig configures the job queue. Zero fields take their values from
// [DefaultJobsConfig].
type JobsConfig struct {
	// Stream is the work-queue stream's name. Default "dagmm-jobs".
	Stream string
	// Prefix is the subject prefix: a host's job is on
	// "<Prefix>.<host token>". Default "dagmm.jobs".
	Prefix string
	// MaxAge bounds how long a job waits, say when no trainer runs.
	// (A job whose trainer died on its last delivery is dropped by the
	// other trainers at once: see [Trainer.Run].) Default 24h.
	MaxAge time.Duration
	// TrainedBucket is the KV bucket where trainers record what each
	// host's model was trained on, for the scheduler. Default
	// "dagmm-trained".
	TrainedBucket string
	// Replicas is the stream's and bucket's replica count. Default 1.
	Replicas int
}

// DefaultJobsConfig returns the job queue's defaults.
func DefaultJobsConfig() JobsConfig {
	return JobsConfig{Stream: "dagmm-jobs", Prefix: "dagmm.jobs", MaxAge: 24 * time.Hour, TrainedBucket: "dagmm-trained", Replicas: 1}
}

func (c JobsConfig) withDefaults() JobsConfig {
	d := DefaultJobsConfig()
	if c.Stream == "" {
		c.Stream = d.Stream
	}
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.TrainedBucket == "" {
		c.TrainedBucket = d.TrainedBucket
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	return c
}

// Job is one host's retraining job, as queued.
type Job struct {
	Host     string    `json:"host"`
	Reason   string    `json:"reason"` // why it was queued: "missing", "stale", "grown", "false alarm", ...
	Enqueued time.Time `json:"enqueued"`
}

// Jobs is the queue of training jobs: a JetStream work-queue stream with
// at most one message per host subject. Its methods are safe for
// concurrent use.
//
// At most one pending job per host is kept by the stream itself
// (MaxMsgsPerSubject 1, DiscardNew per subject): a job stays in a
// work-queue stream until a trainer acknowledges it, so a second one is
// refused while the first waits or runs, and accepted once it is done.
// Message-id de-duplication would not do: it also drops a new job within
// its window after the previous one was acknowledged, and lets a duplicate
// in after the window while the first still waits.
type Jobs struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	trained jetstream.KeyValue
	cfg     JobsConfig
}

// EnsureJobs creates or binds the job stream and the trained-models bucket.
func EnsureJobs(ctx context.Context, js jetstream.JetStream, cfg JobsConfig) (*Jobs, error) {
	cfg = cfg.withDefaults()
	if strings.ContainsAny(cfg.Prefix, "*> ") || strings.HasSuffix(cfg.Prefix, ".") {
		return nil, fmt.Errorf("fleet: job subject prefix %q: want literal tokens such as \"dagmm.jobs\"", cfg.Prefix)
	}
	sc := jetstream.StreamConfig{
		Name:                 cfg.Stream,
		Description:          "dagmm: retraining jobs, at most one per host",
		Subjects:             []string{cfg.Prefix + ".*"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.FileStorage,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               cfg.MaxAge,
		Replicas:             cfg.Replicas,
	}
	stream, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("fleet: job stream %s: %w", cfg.Stream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.TrainedBucket,
		Description: "dagmm: what each host's model was trained on",
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: bucket %s: %w", cfg.TrainedBucket, err)
	}
	return &Jobs{js: js, stream: stream, trained: kv, cfg: cfg}, nil
}

// Stream returns the job stream's name.
func (q *Jobs) Stream() string { return q.cfg.Stream }

// Subject returns the subject of host's jobs.
func (q *Jobs) Subject(host string) string { return q.cfg.Prefix + "." + ingest.HostToken(host) }

// Enqueue queues a retraining job for host, saying why. It returns an
// error wrapping [ErrJobPending] when the host already has a job waiting
// or in progress: that job will read the host's latest window.
func (q *Jobs) Enqueue(ctx context.Context, host, reason string) error {
	if err := checkHostName(host); err != nil {
		return err
	}
	data, err := json.Marshal(Job{Host: host, Reason: reason, Enqueued: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("fleet: enqueue %s: %w", host, err)
	}
	_, err = q.js.PublishMsg(ctx, &nats.Msg{Subject: q.Subject(host), Data: data})
	if isPerSubjectFull(err) {
		return fmt.Errorf("%w: %s", ErrJobPending, host)
	}
	if err != nil {
		return fmt.Errorf("fleet: enqueue %s: %w", host, err)
	}
	return nil
}

// errCodeStoreFailed is the server's JSStreamStoreFailedF, which nats.go
// does not name.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// isPerSubjectFull reports whether err is the server's refusal of a
// message over the per-subject limit with DiscardNew (code 10077 is shared
// with other store failures, so the description decides).
func isPerSubjectFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == errCodeStoreFailed &&
		strings.Contains(ae.Description, "maximum messages per subject")
}

// Trained is what a host's model was trained on, recorded by the trainer
// that published it.
type Trained struct {
	Host     string    `json:"host"`
	Version  uint64    `json:"version"`  // the registry's version published
	Digest   string    `json:"digest"`   // the artifact's
	Messages int       `json:"messages"` // history messages read
	Samples  int       `json:"samples"`  // samples trained on
	LastSeq  uint64    `json:"last_seq"` // history stream sequence of the last message read
	At       time.Time `json:"at"`
}

// recordTrained stores t under its host's key (hostKey: a KV key holds only ASCII letters, digits and "-/_=.").
func (q *Jobs) recordTrained(ctx context.Context, t Trained) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = q.trained.Put(ctx, hostKey(t.Host), data)
	return err
}

// Trained returns what host's latest model was trained on, or an error
// wrapping [jetstream.ErrKeyNotFound] when no trainer recorded one.
func (q *Jobs) Trained(ctx context.Context, host string) (Trained, error) {
	var t Trained
	e, err := q.trained.Get(ctx, hostKey(host))
	if err != nil {
		return t, fmt.Errorf("fleet: trained record of %s: %w", host, err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, fmt.Errorf("fleet: trained record of %s: %w", host, err)
	}
	return t, nil
}
