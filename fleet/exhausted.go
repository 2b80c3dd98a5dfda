package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxDeliveriesAdvisory is the subject prefix of the server's advisory
// for a message delivered MaxDeliver times without an acknowledgement.
const maxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// exhausted is the part of the server's max-deliveries advisory a trainer
// reads.
type exhausted struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// dropExhausted removes the jobs whose every delivery went to a trainer
// that died before settling it. The trainer settles each job it finishes,
// terminating it on its last delivery, so a job that exhausts its
// deliveries unsettled saw a trainer die each time; left in the
// work-queue stream it would block its host's next job (one pending per
// host) until MaxAge. The server announces it in an advisory; every
// trainer listens, one deletes the job and reports it failed, and the
// scheduler queues the host again by its usual rules. stop ends the
// listening.
func (t *Trainer) dropExhausted(ctx context.Context) (stop func(), err error) {
	subject := maxDeliveriesAdvisory + "." + t.jobs.Stream() + "." + t.cfg.Consumer
	ads := make(chan *nats.Msg, 64)
	sub, err := t.jobs.js.Conn().ChanSubscribe(subject, ads)
	if err != nil {
		return nil, fmt.Errorf("fleet: trainer: subscribe %s: %w", subject, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ads:
				t.dropJob(ctx, m.Data)
			}
		}
	}()
	return func() {
		_ = sub.Unsubscribe()
		cancel()
		<-done
	}, nil
}

// dropJob deletes the job an advisory names and reports it failed, unless
// another trainer deleted it first.
func (t *Trainer) dropJob(ctx context.Context, advisory []byte) {
	var ad exhausted
	if err := json.Unmarshal(advisory, &ad); err != nil || ad.StreamSeq == 0 {
		t.cfg.Log.Warn("trainer: unreadable max-deliveries advisory", "advisory", string(advisory), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := t.jobs.stream.GetMsg(ctx, ad.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return // settled or dropped already
	}
	if err != nil {
		t.cfg.Log.Warn("trainer: read exhausted job", "seq", ad.StreamSeq, "err", err)
		return
	}
	if err := t.jobs.stream.DeleteMsg(ctx, ad.StreamSeq); err != nil {
		// The server answers a message already gone with a failure that
		// says so only in its text: look again.
		if _, gerr := t.jobs.stream.GetMsg(ctx, ad.StreamSeq); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			t.cfg.Log.Warn("trainer: drop exhausted job", "seq", ad.StreamSeq, "err", err)
		}
		return
	}
	res := Result{Outcome: OutcomeFailed, Delivery: int(ad.Deliveries),
		Err: fmt.Errorf("fleet: job on %s delivered %d times, never settled: its trainers died", raw.Subject, ad.Deliveries)}
	_ = json.Unmarshal(raw.Data, &res.Job)
	t.cfg.Log.Warn("trainer: job dropped after its last delivery; the scheduler queues the host again",
		"host", res.Job.Host, "reason", res.Job.Reason, "deliveries", ad.Deliveries)
	t.report(res)
}
