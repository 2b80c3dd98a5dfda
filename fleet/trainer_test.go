package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// fleetParts are the streams a trainer works on, bound on one connection.
type fleetParts struct {
	js   jetstream.JetStream
	hist *History
	jobs *Jobs
}

func bindParts(t testing.TB, srv *server.Server, hcfg HistoryConfig) fleetParts {
	t.Helper()
	_, js := connectJS(t, srv)
	ctx := testContext(t, 10*time.Second)
	hist, err := EnsureHistory(ctx, js, hcfg)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := EnsureJobs(ctx, js, JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return fleetParts{js: js, hist: hist, jobs: jobs}
}

// startTrainer runs a trainer on its own connection until the test ends
// or the returned function is called; it returns when Run has.
func startTrainer(t testing.TB, srv *server.Server, store Store, train TrainFunc, cfg TrainerConfig) (stop func()) {
	t.Helper()
	p := bindParts(t, srv, HistoryConfig{})
	tr, err := NewTrainer(testContext(t, 10*time.Second), p.jobs, p.hist, store, train, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestTrainersTrainFleet: 50 hosts with different normal levels, two
// trainers on separate connections sharing the consumer: every host gets a
// model of its own window, each job is acknowledged once, and both
// trainers take part.
func TestTrainersTrainFleet(t *testing.T) {
	srv := runNATS(t)
	const hosts, limit = 50, 150
	p := bindParts(t, srv, HistoryConfig{MaxMsgsPerSubject: limit})
	publishHistory(t, p.js, p.hist, hostRange(hosts), 0, limit+30, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))

	store := newMapStore()
	var res [2]natstest.Recorder[Result]
	trains := [2]*fastTrain{{delay: 20 * time.Millisecond}, {delay: 20 * time.Millisecond}}
	for i := range 2 {
		startTrainer(t, srv, store, trains[i].train, TrainerConfig{AckWait: 5 * time.Second, OnResult: res[i].Add})
	}
	ctx := testContext(t, time.Minute)
	for i := range hosts {
		if err := p.jobs.Enqueue(ctx, hostName(i), ReasonMissing); err != nil {
			t.Fatal(err)
		}
	}
	// A trainer writes a host's trained record after its model, then
	// reports the job: the reports say when every record is in.
	natstest.WaitFor(t, 45*time.Second, func() error {
		if n := len(res[0].List()) + len(res[1].List()); n < hosts {
			return fmt.Errorf("%d of %d jobs reported, %d hosts with a model", n, hosts, len(store.versions()))
		}
		return nil
	})
	for i := range hosts {
		host := hostName(i)
		if v := store.versions()[host]; v != 1 {
			t.Errorf("%s: %d versions, want 1", host, v)
		}
		m, err := model.Decode(bytes.NewReader(store.artifact(host)))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if !slices.Equal(m.Features, testFeatures) {
			t.Errorf("%s: model features %v, want %v", host, m.Features, testFeatures)
		}
		rec, err := p.jobs.Trained(ctx, host)
		if err != nil || rec.Version != 1 || rec.Messages != limit || rec.Samples != limit {
			t.Errorf("%s: trained record %+v (%v), want version 1 on %d messages", host, rec, err, limit)
		}
	}
	for i, tr := range trains {
		n := 0
		for h := range hosts {
			n += tr.callCount(hostName(h))
		}
		if n == 0 {
			t.Errorf("trainer %d trained no host", i)
		}
		for _, r := range res[i].List() {
			if r.Outcome != OutcomeTrained || r.Rows != limit || r.Delivery != 1 {
				t.Errorf("trainer %d: %s: outcome %s rows %d delivery %d (%v), want trained %d on delivery 1", i, r.Job.Host, r.Outcome, r.Rows, r.Delivery, r.Err, limit)
			}
		}
	}
	natstest.WaitFor(t, 5*time.Second, func() error {
		s, err := p.js.Stream(ctx, p.jobs.Stream())
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d jobs left in the queue", n)
		}
		return nil
	})
}

// TestTrainerKilledMidJob: a trainer whose connection goes away in the
// middle of a job (no acknowledgement) leaves it to be delivered again
// after AckWait; another trainer trains it and the model appears.
func TestTrainerKilledMidJob(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	publishHistory(t, p.js, p.hist, []int{7}, 0, 120, time.Now().Add(-time.Hour))
	store := newMapStore()

	const ackWait = time.Second
	started, kill := dyingTrainer(t, srv, store, TrainerConfig{AckWait: ackWait})
	if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(7), ReasonMissing); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first trainer did not take the job")
	}
	killedAt := time.Now()
	kill()

	var res natstest.Recorder[Result]
	second := &fastTrain{}
	startTrainer(t, srv, store, second.train, TrainerConfig{AckWait: ackWait, OnResult: res.Add})
	natstest.WaitFor(t, 15*time.Second, func() error {
		if len(res.List()) == 0 { // reported after the model is published and the job acknowledged
			return errors.New("no result yet")
		}
		return nil
	})
	if v := store.versions()[hostName(7)]; v != 1 {
		t.Errorf("%d versions of the model, want 1", v)
	}
	if took := time.Since(killedAt); took < ackWait/2 {
		t.Errorf("redelivered after %v, before the ack wait %v", took, ackWait)
	}
	got := res.List()
	if len(got) != 1 || got[0].Outcome != OutcomeTrained || got[0].Delivery != 2 {
		t.Fatalf("second trainer's results %+v, want one trained on delivery 2", got)
	}
}

// dyingTrainer runs a trainer, on a connection of its own, whose training
// blocks until kill closes its connection and stops it, as if its process
// died mid-job; started is closed when it has taken a job.
func dyingTrainer(t *testing.T, srv *server.Server, store Store, cfg TrainerConfig) (started <-chan struct{}, kill func()) {
	t.Helper()
	took := make(chan struct{})
	var once sync.Once
	stuck := func(ctx context.Context, w *Window) ([]byte, error) {
		once.Do(func() { close(took) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	nc, js := connectJS(t, srv)
	hist, err := EnsureHistory(testContext(t, 5*time.Second), js, HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := EnsureJobs(testContext(t, 5*time.Second), js, JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(testContext(t, 5*time.Second), jobs, hist, store, stuck, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	kill = func() {
		nc.Close() // the process is gone: nothing more reaches the server
		cancel()
		<-done
	}
	t.Cleanup(func() { cancel() })
	return took, kill
}

// TestTrainerDiedOnLastDelivery: a job whose trainer dies on its last
// delivery is dropped by the trainers still running, reported failed once,
// and no longer blocks its host: the next job is accepted and trained.
func TestTrainerDiedOnLastDelivery(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	publishHistory(t, p.js, p.hist, []int{4}, 0, 120, time.Now().Add(-time.Hour))
	store := newMapStore()
	cfg := TrainerConfig{AckWait: 500 * time.Millisecond, MaxDeliver: 1}
	started, kill := dyingTrainer(t, srv, store, cfg)
	if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(4), ReasonMissing); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first trainer did not take the job")
	}
	kill()

	// Two trainers hear the advisory: one drops the job and reports it.
	var res natstest.Recorder[Result]
	cfg.OnResult = res.Add
	train := (&fastTrain{}).train
	startTrainer(t, srv, store, train, cfg)
	startTrainer(t, srv, store, train, cfg)
	natstest.WaitFor(t, 15*time.Second, func() error {
		if len(res.List()) == 0 {
			return errors.New("the exhausted job was not reported")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a second report would come by now
	if n := len(res.List()); n != 1 {
		t.Fatalf("the exhausted job was reported %d times, want once", n)
	}
	got := res.List()[0]
	if got.Outcome != OutcomeFailed || got.Job.Host != hostName(4) || got.Delivery != 1 || got.Err == nil {
		t.Fatalf("result %+v, want host %s failed after 1 delivery, with an error", got, hostName(4))
	}
	if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(4), ReasonMissing); err != nil {
		t.Fatalf("the host is still blocked: %v", err)
	}
	natstest.WaitFor(t, 15*time.Second, func() error {
		if store.versions()[hostName(4)] != 1 {
			return errors.New("no model yet")
		}
		return nil
	})
}

// TestTrainerProgress: a job longer than AckWait is kept by its trainer's
// progress signals: no other trainer gets it.
func TestTrainerProgress(t *testing.T) {
	srv := runNATS(t)
	p := bindParts(t, srv, HistoryConfig{})
	publishHistory(t, p.js, p.hist, []int{3}, 0, 120, time.Now().Add(-time.Hour))
	store := newMapStore()
	slow := &fastTrain{delay: 2500 * time.Millisecond}
	var res natstest.Recorder[Result]
	for range 2 {
		startTrainer(t, srv, store, slow.train, TrainerConfig{AckWait: time.Second, OnResult: res.Add})
	}
	if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(3), ReasonMissing); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 15*time.Second, func() error {
		if len(res.List()) == 0 {
			return errors.New("no result yet")
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // more than AckWait: a redelivery would show
	if n := slow.callCount(hostName(3)); n != 1 {
		t.Errorf("trained %d times, want once", n)
	}
	if got := res.List(); len(got) != 1 || got[0].Outcome != OutcomeTrained || got[0].Delivery != 1 {
		t.Errorf("results %+v, want one trained on delivery 1", got)
	}
}

// TestTrainerEndsJobs: a host with too little history is learning and a
// permanent failure ends the job at once; a failure that may pass is
// retried up to MaxDeliver, then the job is terminated. No job stays in
// the queue, and none is retried forever.
func TestTrainerEndsJobs(t *testing.T) {
	transient := errors.New("disk full")
	for _, tc := range []struct {
		name     string
		samples  int
		err      error
		outcomes []Outcome
	}{
		{"learning", 20, nil, []Outcome{OutcomeLearning}},
		{"permanent", 120, Permanent(errors.New("every feature is constant")), []Outcome{OutcomeFailed}},
		{"transient", 120, transient, []Outcome{OutcomeRetry, OutcomeRetry, OutcomeFailed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := runNATS(t)
			p := bindParts(t, srv, HistoryConfig{})
			publishHistory(t, p.js, p.hist, []int{1}, 0, tc.samples, time.Now().Add(-time.Hour))
			store := newMapStore()
			var res natstest.Recorder[Result]
			train := func(ctx context.Context, w *Window) ([]byte, error) { return nil, tc.err }
			const ackWait = 500 * time.Millisecond
			startTrainer(t, srv, store, train, TrainerConfig{AckWait: ackWait, MaxDeliver: 3, RetryDelay: 50 * time.Millisecond, MinSamples: 100, OnResult: res.Add})
			if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(1), "test"); err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, 10*time.Second, func() error {
				if n := len(res.List()); n < len(tc.outcomes) {
					return fmt.Errorf("%d results, want %d", n, len(tc.outcomes))
				}
				return nil
			})
			time.Sleep(3 * ackWait) // a job not settled would come back
			got := res.List()
			var outcomes []Outcome
			for _, r := range got {
				outcomes = append(outcomes, r.Outcome)
				if r.Err == nil {
					t.Errorf("outcome %s without an error", r.Outcome)
				}
			}
			if !slices.Equal(outcomes, tc.outcomes) {
				t.Errorf("outcomes %v, want %v", outcomes, tc.outcomes)
			}
			last := got[len(got)-1]
			switch tc.name {
			case "learning":
				if !errors.Is(last.Err, ErrLearning) {
					t.Errorf("error %v, want ErrLearning", last.Err)
				}
			case "transient":
				if !errors.Is(last.Err, transient) || last.Delivery != 3 {
					t.Errorf("last: delivery %d error %v, want delivery 3 with the training error", last.Delivery, last.Err)
				}
			}
			if len(store.versions()) != 0 {
				t.Error("a model was published")
			}
			s, err := p.js.Stream(testContext(t, 5*time.Second), p.jobs.Stream())
			if err != nil {
				t.Fatal(err)
			}
			if n := s.CachedInfo().State.Msgs; n != 0 {
				t.Errorf("%d jobs left in the queue", n)
			}
			if err := p.jobs.Enqueue(testContext(t, 5*time.Second), hostName(1), "again"); err != nil {
				t.Errorf("the host cannot be queued again: %v", err)
			}
		})
	}
}
