package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reasons the scheduler queues a host, as [Job.Reason] gives them.
const (
	ReasonMissing = "missing" // the host has no model
	ReasonStale   = "stale"   // its model is older than the retraining interval
	ReasonGrown   = "grown"   // its history has grown enough since its model
)

// SchedulerConfig configures a [Scheduler]. Zero fields take their values
// from [DefaultSchedulerConfig].
type SchedulerConfig struct {
	// Interval is how often the scheduler looks at the fleet. Default 1m.
	Interval time.Duration
	// Retrain is the age at which a model is retrained. Default 3h.
	Retrain time.Duration
	// Growth queues a host whose history holds at least Growth times the
	// messages its model was trained on, or a full window, whichever is
	// fewer, so that a young host's first model is soon replaced by one
	// trained on more. Default 2.
	Growth float64
	// MinSamples is the fewest history messages a host needs to be queued;
	// below it the trainer would only find it learning. Default 100, as
	// the trainer's MinSamples.
	MinSamples int
	// LeaseBucket is the KV bucket that holds the lease: the one scheduler
	// acting at a time. Default "dagmm-scheduler".
	LeaseBucket string
	// LeaseTTL is how long the lease outlives its holder's last renewal;
	// another scheduler takes over after it. It must exceed Interval.
	// Default 3 × Interval.
	LeaseTTL time.Duration
	// ID names this scheduler in the lease. Default a random id.
	ID string
	// Log receives a line per pass that queued jobs; nil logs nothing.
	Log *slog.Logger
}

// DefaultSchedulerConfig returns the scheduler's defaults.
func DefaultSchedulerConfig() SchedulerConfig {
	return SchedulerConfig{Interval: time.Minute, Retrain: 3 * time.Hour, Growth: 2, MinSamples: 100, LeaseBucket: "dagmm-scheduler"}
}

func (c SchedulerConfig) withDefaults() SchedulerConfig {
	d := DefaultSchedulerConfig()
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Retrain == 0 {
		c.Retrain = d.Retrain
	}
	if c.Growth == 0 {
		c.Growth = d.Growth
	}
	if c.MinSamples == 0 {
		c.MinSamples = d.MinSamples
	}
	if c.LeaseBucket == "" {
		c.LeaseBucket = d.LeaseBucket
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 3 * c.Interval
	}
	if c.ID == "" {
		c.ID = rand.Text()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field with an invalid value.
func (c SchedulerConfig) Validate() error {
	switch {
	case c.Interval <= 0 || c.Retrain <= 0:
		return fmt.Errorf("fleet: scheduler: interval %v and retrain %v must be positive", c.Interval, c.Retrain)
	case c.LeaseTTL <= c.Interval:
		return fmt.Errorf("fleet: scheduler: lease TTL %v must exceed the interval %v", c.LeaseTTL, c.Interval)
	case c.Growth <= 1:
		return fmt.Errorf("fleet: scheduler: growth %g: want more than 1", c.Growth)
	}
	return nil
}

// leaseKey is the lease's key in its bucket.
const leaseKey = "leader"

// Scheduler queues the hosts that need a model: one without, one whose
// model is older than the retraining interval, one whose history has
// grown enough since its model. Several may run: a lease in a KV bucket
// (a key whose TTL its holder keeps renewing with compare-and-set) lets
// one act at a time, and another takes over within LeaseTTL when it
// stops.
type Scheduler struct {
	hist  *History
	jobs  *Jobs
	store Store
	lease jetstream.KeyValue
	cfg   SchedulerConfig
	rev   uint64            // the lease's revision while held, else 0
	hosts map[string]string // host token → host name
}

// NewScheduler creates or binds the lease bucket and returns a scheduler.
// A Scheduler is not safe for concurrent use: run one per goroutine.
func NewScheduler(ctx context.Context, js jetstream.JetStream, hist *History, jobs *Jobs, store Store, cfg SchedulerConfig) (*Scheduler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.LeaseBucket,
		Description: "dagmm: the scheduler lease",
		TTL:         cfg.LeaseTTL,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: bucket %s: %w", cfg.LeaseBucket, err)
	}
	return &Scheduler{hist: hist, jobs: jobs, store: store, lease: kv, cfg: cfg, hosts: make(map[string]string)}, nil
}

// Run makes a pass every Interval until ctx is cancelled, then releases
// the lease and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("scheduler: pass", "id", s.cfg.ID, "err", err)
		}
		select {
		case <-ctx.Done():
			s.release()
			return nil
		case <-tick.C:
		}
	}
}

// Pass is one look at the fleet: when this scheduler holds the lease (or
// takes it), it queues the hosts that need a model and returns their jobs;
// otherwise it does nothing and returns Leader false.
func (s *Scheduler) Pass(ctx context.Context) (PassResult, error) {
	lead, err := s.lead(ctx)
	if err != nil || !lead {
		return PassResult{}, err
	}
	res := PassResult{Leader: true}
	counts, err := s.hist.Counts(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	for _, tok := range slices.Sorted(maps.Keys(counts)) {
		host, reason, err := s.check(ctx, tok, counts[tok])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if reason == "" {
			continue
		}
		switch err := s.jobs.Enqueue(ctx, host, reason); {
		case errors.Is(err, ErrJobPending):
			res.Pending++
		case err != nil:
			errs = append(errs, err)
		default:
			res.Enqueued = append(res.Enqueued, Job{Host: host, Reason: reason})
		}
	}
	if len(res.Enqueued) > 0 {
		s.cfg.Log.Info("scheduler: jobs queued", "id", s.cfg.ID, "hosts", len(counts), "queued", len(res.Enqueued), "already_pending", res.Pending)
	}
	return res, errors.Join(errs...)
}

// PassResult is what one [Scheduler.Pass] did.
type PassResult struct {
	Leader   bool  // this scheduler held the lease and looked at the fleet
	Enqueued []Job // the jobs it queued, by host token order
	Pending  int   // the hosts that needed a job and already had one
}

// check returns the host of the given token and why it needs a job, or ""
// when it does not.
func (s *Scheduler) check(ctx context.Context, tok string, count uint64) (host, reason string, err error) {
	if count < uint64(s.cfg.MinSamples) {
		return "", "", nil
	}
	host, ok := s.hosts[tok]
	if !ok {
		if host, err = s.hist.HostOf(ctx, tok); err != nil {
			return "", "", err
		}
		if checkHostName(host) != nil {
			host = tok
		}
		s.hosts[tok] = host
	}
	info, err := s.store.Current(ctx, host)
	switch {
	case errors.Is(err, ErrNoModel):
		return host, ReasonMissing, nil
	case err != nil:
		return "", "", fmt.Errorf("fleet: scheduler: model of %s: %w", host, err)
	case info.Age(time.Now()) >= s.cfg.Retrain: // a rollback restarts the clock
		return host, ReasonStale, nil
	}
	rec, err := s.jobs.Trained(ctx, host)
	if err != nil || rec.Version != info.Version {
		// A model no trainer of ours recorded (uploaded, rolled back):
		// only its age counts.
		return host, "", nil
	}
	want := min(s.cfg.Growth*float64(rec.Messages), float64(s.hist.Limit()))
	if count > uint64(rec.Messages) && float64(count) >= want {
		return host, ReasonGrown, nil
	}
	return host, "", nil
}

// lead takes or renews the lease and reports whether this scheduler holds
// it.
func (s *Scheduler) lead(ctx context.Context) (bool, error) {
	id := []byte(s.cfg.ID)
	if s.rev != 0 {
		rev, err := s.lease.Update(ctx, leaseKey, id, s.rev)
		if err == nil {
			s.rev = rev
			return true, nil
		}
		// Lost: it expired and another took it, or the bucket is gone.
		s.rev = 0
		s.cfg.Log.Warn("scheduler: lease lost", "id", s.cfg.ID, "err", err)
	}
	rev, err := s.lease.Create(ctx, leaseKey, id)
	switch {
	case err == nil:
		s.rev = rev
		s.cfg.Log.Info("scheduler: lease taken", "id", s.cfg.ID)
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("fleet: scheduler lease: %w", err)
}

// release gives the lease up so that another scheduler takes over at
// once, not after LeaseTTL.
func (s *Scheduler) release() {
	if s.rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.lease.Delete(ctx, leaseKey, jetstream.LastRevision(s.rev)); err != nil {
		s.cfg.Log.Warn("scheduler: release lease", "id", s.cfg.ID, "err", err)
	}
	s.rev = 0
}
