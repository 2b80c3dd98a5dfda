package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrLearning is returned, wrapped, when a host has too little history to
// train on: its job ends, and the host is "learning" until the scheduler
// queues it again with more.
var ErrLearning = errors.New("fleet: learning: too little history")

// TrainFunc trains a model on a host's window and returns its artifact, the
// bytes model.Encode writes. It must return when ctx is cancelled. An error
// wrapped with [Permanent] (the window cannot make a model, and will not
// until it changes) ends the job; any other is retried.
type TrainFunc func(ctx context.Context, w *Window) ([]byte, error)

// Permanent marks err as a failure that retrying the same job will not
// mend, such as a window whose every feature is constant.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// isPermanent reports whether err ends a job at once.
func isPermanent(err error) bool {
	return errors.As(err, new(permanentError)) || errors.Is(err, ErrLearning)
}

// TrainerConfig configures a [Trainer]. Zero fields take their values from
// [DefaultTrainerConfig].
type TrainerConfig struct {
	// Consumer is the durable consumer all trainers share. Default
	// "dagmm-trainer".
	Consumer string
	// AckWait is how long a job may go without word from its trainer (an
	// acknowledgement or a progress signal) before it is delivered to
	// another. Default 1m.
	AckWait time.Duration
	// Progress is how often a trainer signals that a job is in progress.
	// Default AckWait/3.
	Progress time.Duration
	// MaxDeliver bounds the deliveries of one job: on its last, a job that
	// fails for a reason that may pass is terminated. Default 5.
	MaxDeliver int
	// RetryDelay is how long a job that failed for a reason that may pass
	// waits before it is delivered again. Default 10s.
	RetryDelay time.Duration
	// MinSamples is the fewest samples a window must keep to be trained
	// on; a host with fewer is learning ([ErrLearning]). Default 100.
	MinSamples int
	// Window says which flagged samples to leave out of the windows.
	Window WindowOptions
	// Log receives a line per job; nil logs nothing.
	Log *slog.Logger
	// OnResult, when set, is called with every job's outcome, one call
	// at a time.
	OnResult func(Result)
}

// DefaultTrainerConfig returns the trainer's defaults.
func DefaultTrainerConfig() TrainerConfig {
	return TrainerConfig{Consumer: "dagmm-trainer", AckWait: time.Minute, MaxDeliver: 5, RetryDelay: 10 * time.Second, MinSamples: 100}
}

func (c TrainerConfig) withDefaults() TrainerConfig {
	d := DefaultTrainerConfig()
	if c.Consumer == "" {
		c.Consumer = d.Consumer
	}
	if c.AckWait == 0 {
		c.AckWait = d.AckWait
	}
	if c.Progress == 0 {
		c.Progress = c.AckWait / 3
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = d.MaxDeliver
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = d.RetryDelay
	}
	if c.MinSamples == 0 {
		c.MinSamples = d.MinSamples
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field with an invalid value.
func (c TrainerConfig) Validate() error {
	switch {
	case c.AckWait < 0 || c.Progress < 0 || c.RetryDelay < 0:
		return fmt.Errorf("fleet: trainer: negative duration (ack wait %v, progress %v, retry delay %v)", c.AckWait, c.Progress, c.RetryDelay)
	case c.Progress >= c.AckWait:
		return fmt.Errorf("fleet: trainer: progress interval %v must be shorter than the ack wait %v", c.Progress, c.AckWait)
	case c.MaxDeliver < 1:
		return fmt.Errorf("fleet: trainer: max deliver %d: want at least 1", c.MaxDeliver)
	case c.MinSamples < 1:
		return fmt.Errorf("fleet: trainer: min samples %d: want at least 1", c.MinSamples)
	}
	return nil
}

// Outcome is what became of a job.
type Outcome string

// Outcomes of a job.
const (
	OutcomeTrained  Outcome = "trained"  // model published, job acknowledged
	OutcomeLearning Outcome = "learning" // too little history: job terminated
	OutcomeFailed   Outcome = "failed"   // failed for good or too often: job terminated
	OutcomeRetry    Outcome = "retry"    // failed, will be delivered again
)

// Result is one job's outcome, given to [TrainerConfig.OnResult].
type Result struct {
	Job      Job
	Outcome  Outcome
	Model    ModelInfo // the version published, when trained
	Rows     int       // samples in the window trained on
	Delivery int       // 1 for the first delivery of the job
	Duration time.Duration
	Err      error // why it was not trained
}

// Trainer takes jobs from the job queue, trains each host on its window
// and publishes the model, and only then acknowledges the job. Any number
// of trainers, in any process, share one durable consumer; each takes one
// job at a time. A job whose trainer dies (no acknowledgement, no progress
// for AckWait) is delivered to another.
type Trainer struct {
	jobs  *Jobs
	hist  *History
	store Store
	train TrainFunc
	cfg   TrainerConfig
	cons  jetstream.Consumer

	resultMu sync.Mutex // serialises cfg.OnResult
}

// NewTrainer creates or binds the trainers' durable consumer on jobs'
// stream and returns a trainer that reads windows from hist, trains them
// with train and publishes to store.
func NewTrainer(ctx context.Context, jobs *Jobs, hist *History, store Store, train TrainFunc, cfg TrainerConfig) (*Trainer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cons, err := jobs.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "dagmm trainers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: trainer consumer %s on %s: %w", cfg.Consumer, jobs.Stream(), err)
	}
	return &Trainer{jobs: jobs, hist: hist, store: store, train: train, cfg: cfg, cons: cons}, nil
}

// Run takes and processes jobs until ctx is cancelled, then returns nil. A
// job in progress when ctx is cancelled is left unacknowledged, as if the
// process had died: it is delivered again after AckWait. While it runs,
// the trainer also drops the jobs that exhausted their deliveries with
// every trainer dying on them, so that their hosts can be queued again.
func (t *Trainer) Run(ctx context.Context) error {
	stop, err := t.dropExhausted(ctx)
	if err != nil {
		return err
	}
	defer stop()
	for ctx.Err() == nil {
		msg, err := t.cons.Next(jetstream.FetchContext(ctx))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout):
			continue
		case err != nil:
			t.cfg.Log.Warn("trainer: fetch job", "consumer", t.cfg.Consumer, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		t.handle(ctx, msg)
	}
	return nil
}

// handle processes one job message.
func (t *Trainer) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	var res Result
	if meta, err := msg.Metadata(); err == nil {
		res.Delivery = int(meta.NumDelivered)
	}
	if err := json.Unmarshal(msg.Data(), &res.Job); err != nil || checkHostName(res.Job.Host) != nil {
		res.Outcome, res.Err = OutcomeFailed, fmt.Errorf("fleet: job on %s is not a job: %q", msg.Subject(), msg.Data())
		t.end(ctx, msg, res, start)
		return
	}
	stop := keepAlive(msg, t.cfg.Progress)
	res.Model, res.Rows, res.Err = t.process(ctx, res.Job)
	stop()
	if ctx.Err() != nil {
		t.cfg.Log.Info("trainer: stopped mid-job; it will be delivered again", "host", res.Job.Host)
		return
	}
	switch {
	case res.Err == nil:
		res.Outcome = OutcomeTrained
	case errors.Is(res.Err, ErrLearning):
		res.Outcome = OutcomeLearning
	case isPermanent(res.Err) || res.Delivery >= t.cfg.MaxDeliver:
		res.Outcome = OutcomeFailed
	default:
		res.Outcome = OutcomeRetry
	}
	t.end(ctx, msg, res, start)
}

// end acknowledges, terminates or naks msg as res says, then reports res.
func (t *Trainer) end(ctx context.Context, msg jetstream.Msg, res Result, start time.Time) {
	res.Duration = time.Since(start)
	var err error
	switch res.Outcome {
	case OutcomeTrained:
		err = msg.DoubleAck(ctx)
	case OutcomeRetry:
		err = msg.NakWithDelay(t.cfg.RetryDelay)
	default:
		err = msg.TermWithReason(string(res.Outcome) + ": " + res.Err.Error())
	}
	log := t.cfg.Log.With("host", res.Job.Host, "reason", res.Job.Reason, "outcome", res.Outcome,
		"delivery", res.Delivery, "duration", res.Duration.Round(time.Millisecond))
	switch {
	case err != nil:
		log.Warn("trainer: job not settled; it will be delivered again", "err", err, "job_err", res.Err)
	case res.Outcome == OutcomeTrained:
		log.Info("trainer: model published", "version", res.Model.Version, "digest", res.Model.Digest, "rows", res.Rows)
	default:
		log.Warn("trainer: job not trained", "err", res.Err)
	}
	t.report(res)
}

// report gives res to cfg.OnResult.
func (t *Trainer) report(res Result) {
	if t.cfg.OnResult == nil {
		return
	}
	t.resultMu.Lock()
	defer t.resultMu.Unlock()
	t.cfg.OnResult(res)
}

// process reads job's window, trains and publishes.
func (t *Trainer) process(ctx context.Context, job Job) (ModelInfo, int, error) {
	w, err := t.hist.Window(ctx, job.Host, t.cfg.Window)
	if err != nil {
		return ModelInfo{}, 0, err
	}
	if w.Rows() < t.cfg.MinSamples {
		return ModelInfo{}, w.Rows(), fmt.Errorf("%w: %s has %d samples to train on (%d read, %d with events, %d flagged, %d incomplete), want %d",
			ErrLearning, job.Host, w.Rows(), w.Samples, w.Events, w.Flagged, w.Incomplete, t.cfg.MinSamples)
	}
	artifact, err := t.train(ctx, w)
	if err != nil {
		return ModelInfo{}, w.Rows(), fmt.Errorf("fleet: train %s: %w", job.Host, err)
	}
	info, err := t.store.Publish(ctx, job.Host, artifact)
	if err != nil {
		return ModelInfo{}, w.Rows(), fmt.Errorf("fleet: publish %s: %w", job.Host, err)
	}
	rec := Trained{Host: job.Host, Version: info.Version, Digest: info.Digest, Messages: w.Messages, Samples: w.Rows(),
		LastSeq: w.LastSeq, At: time.Now().UTC()}
	if err := t.jobs.recordTrained(ctx, rec); err != nil {
		// The model is out; only the scheduler's growth rule misses it.
		t.cfg.Log.Warn("trainer: record trained model", "host", job.Host, "err", err)
	}
	return info, w.Rows(), nil
}

// keepAlive signals msg in progress every interval until the returned
// function is called; it returns once the signalling has stopped.
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = msg.InProgress() // a lost signal costs a redelivery at worst
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
