package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dagmm/dagmm/internal/natstest"
)

func newScheduler(t testing.TB, srv *server.Server, store Store, cfg SchedulerConfig) *Scheduler {
	t.Helper()
	p := bindParts(t, srv, HistoryConfig{})
	s, err := NewScheduler(testContext(t, 5*time.Second), p.js, p.hist, p.jobs, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSchedulerReasons: the scheduler queues the hosts without a model,
// with a model older than the retraining interval, and with a history
// grown enough since their model, and no other; a host named with dots
// is queued under its name; a second pass finds their jobs pending.
func TestSchedulerReasons(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	t0 := time.Now().Add(-time.Hour)
	store := newMapStore()

	// Hosts 1, 2 and 3 get models; 2's from 60 messages only.
	publishHistory(t, p.js, p.hist, []int{1, 3}, 0, 150, t0)
	publishHistory(t, p.js, p.hist, []int{2}, 0, 60, t0)
	var res natstest.Recorder[Result]
	stop := startTrainer(t, srv, store, (&fastTrain{}).train, TrainerConfig{MinSamples: 50, OnResult: res.Add})
	ctx := testContext(t, 30*time.Second)
	for _, i := range []int{1, 2, 3} {
		if err := p.jobs.Enqueue(ctx, hostName(i), "setup"); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		if n := len(store.versions()); n != 3 {
			return fmt.Errorf("%d models, want 3 (%+v)", n, res.List())
		}
		return nil
	})
	stop()
	store.makeOlder(hostName(1), 4*time.Hour)
	publishHistory(t, p.js, p.hist, []int{2}, 60, 150, t0)   // 150 ≥ 2 × 60
	publishHistory(t, p.js, p.hist, []int{0, 9}, 0, 150, t0) // no model; 9 is db09.example.com
	publishHistory(t, p.js, p.hist, []int{5}, 0, 30, t0)     // too little history to queue

	s := newScheduler(t, srv, store, SchedulerConfig{Interval: time.Second, MinSamples: 100})
	pass, err := s.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Job{
		{Host: hostName(9), Reason: ReasonMissing},
		{Host: hostName(0), Reason: ReasonMissing},
		{Host: hostName(1), Reason: ReasonStale},
		{Host: hostName(2), Reason: ReasonGrown},
	}
	if !pass.Leader || !slices.Equal(pass.Enqueued, want) || pass.Pending != 0 {
		t.Fatalf("pass: %+v, want leader queuing %+v", pass, want)
	}
	pass, err = s.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !pass.Leader || len(pass.Enqueued) != 0 || pass.Pending != len(want) {
		t.Errorf("second pass: %+v, want the %d jobs pending and none queued", pass, len(want))
	}
}

// TestSchedulerLease: of two schedulers one acts; when it stops renewing,
// the other takes over after the lease's TTL, and the first finds it has
// lost the lease; a scheduler that stops hands the lease over at once.
func TestSchedulerLease(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	publishHistory(t, p.js, p.hist, []int{0}, 0, 120, time.Now().Add(-time.Hour))
	store := newMapStore()
	const ttl = time.Second
	cfg := SchedulerConfig{Interval: 200 * time.Millisecond, LeaseTTL: ttl, MinSamples: 100}
	cfg.ID = "a"
	a := newScheduler(t, srv, store, cfg)
	cfg.ID = "b"
	b := newScheduler(t, srv, store, cfg)
	ctx := testContext(t, 30*time.Second)
	pass := func(s *Scheduler) PassResult {
		t.Helper()
		r, err := s.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := pass(a); !r.Leader || len(r.Enqueued) != 1 {
		t.Fatalf("a: %+v, want leader queuing web-00", r)
	}
	for range 3 {
		if r := pass(b); r.Leader || len(r.Enqueued) != 0 || r.Pending != 0 {
			t.Fatalf("b acted while a holds the lease: %+v", r)
		}
		if r := pass(a); !r.Leader {
			t.Fatalf("a lost the lease it renews: %+v", r)
		}
	}
	// a stops renewing: b takes over once the lease expires.
	stoppedAt := time.Now()
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !pass(b).Leader {
			return errors.New("b has not taken the lease")
		}
		return nil
	})
	if took := time.Since(stoppedAt); took < ttl/2 {
		t.Errorf("b took the lease %v after a's last renewal, before its TTL %v", took, ttl)
	}
	if r := pass(a); r.Leader {
		t.Errorf("a still acts after b took the lease: %+v", r)
	}
	// b runs, then stops: it releases the lease, and a takes it at once.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	time.Sleep(300 * time.Millisecond)
	if r := pass(a); r.Leader {
		t.Fatalf("a acts while b runs: %+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := pass(a); !r.Leader {
		t.Errorf("a did not take the lease b released: %+v", r)
	}
}

func TestSchedulerConfigValidate(t *testing.T) {
	for _, c := range []SchedulerConfig{
		{Interval: time.Minute, LeaseTTL: time.Minute},
		{Growth: 1},
		{Retrain: -time.Hour},
	} {
		if err := c.withDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (SchedulerConfig{}).withDefaults().Validate(); err != nil {
		t.Error(err)
	}
}

// TestSchedulerAfterRollback: a rollback restarts the retraining clock. The
// restored version was created long ago, but it has been current only since
// the rollback, so the scheduler does not retrain the host (and undo the
// operator's rollback) until a whole interval has passed.
func TestSchedulerAfterRollback(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	ctx := testContext(t, 30*time.Second)
	reg, err := NewRegistry(ctx, p.js, RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	host := hostName(1)
	publishHistory(t, p.js, p.hist, []int{1}, 0, 150, time.Now().Add(-time.Hour))
	for seed := range uint64(2) {
		a, _ := regArtifact(t, seed+1)
		if _, err := reg.Publish(ctx, host, a); err != nil {
			t.Fatal(err)
		}
	}
	const retrain = 600 * time.Millisecond
	time.Sleep(retrain) // both versions are now older than the interval
	if _, err := reg.Rollback(ctx, host, 0); err != nil {
		t.Fatal(err)
	}
	info, err := reg.Current(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 1 || info.Age(time.Now()) >= retrain || time.Since(info.Created) < retrain {
		t.Fatalf("after the rollback: version %d, age %v, created %v ago; want version 1, current for less than %v, created before it",
			info.Version, info.Age(time.Now()), time.Since(info.Created), retrain)
	}
	s := newScheduler(t, srv, reg, SchedulerConfig{Interval: time.Second, MinSamples: 100, Retrain: retrain})
	pass, err := s.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pass.Enqueued) != 0 {
		t.Fatalf("right after the rollback the scheduler queued %+v, want nothing", pass.Enqueued)
	}
	time.Sleep(retrain)
	if pass, err = s.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []Job{{Host: host, Reason: ReasonStale}}; !slices.Equal(pass.Enqueued, want) {
		t.Errorf("an interval after the rollback: queued %+v, want %+v", pass.Enqueued, want)
	}
}
