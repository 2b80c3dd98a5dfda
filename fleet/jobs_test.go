package fleet

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJobsOnePending: a host has at most one job waiting or in progress;
// once its job is acknowledged it can be queued again. Other hosts are not
// affected, and a host with a dot and its '_' twin share one subject.
func TestJobsOnePending(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 20*time.Second)
	q, err := EnsureJobs(ctx, js, JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(host string, wantPending bool) {
		t.Helper()
		err := q.Enqueue(ctx, host, "test")
		if got := errors.Is(err, ErrJobPending); got != wantPending || (err != nil && !got) {
			t.Fatalf("Enqueue(%s) = %v, want pending %v", host, err, wantPending)
		}
	}
	enqueue("db1.example.com", false)
	enqueue("db1.example.com", true)
	enqueue("db1_example_com", true) // the same subject token
	enqueue("web-1", false)

	cons, err := js.CreateOrUpdateConsumer(ctx, q.Stream(), jetstream.ConsumerConfig{Durable: "t", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.Host != "db1.example.com" || job.Reason != "test" {
		t.Fatalf("job %+v (%v), want db1.example.com's", job, err)
	}
	enqueue("db1.example.com", true) // in progress, not acknowledged
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	enqueue("db1.example.com", false) // done: a new one is accepted
	info, err := js.Stream(ctx, q.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("%d jobs in the stream, want 2 (db1.example.com's new one and web-1's)", n)
	}
	if err := q.Enqueue(ctx, "bad host", "test"); err == nil || errors.Is(err, ErrJobPending) {
		t.Errorf("Enqueue of a host with a space: %v, want an invalid-host error", err)
	}
}

// TestJobsDedupeChoice measures the two ways a stream can keep one pending
// job per host, and shows why Jobs uses the per-subject limit: message-id
// de-duplication also drops the job queued after the previous one was
// acknowledged, so that host would wait for the next pass in vain.
func TestJobsDedupeChoice(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  jetstream.StreamConfig
		id   bool
		// what the stream holds after: queue, queue again (pending),
		// deliver and acknowledge, queue again
		wantPendingRefused, wantAfterAck bool
	}{
		{name: "per-subject limit", cfg: jetstream.StreamConfig{MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true},
			wantPendingRefused: true, wantAfterAck: true},
		{name: "message id", cfg: jetstream.StreamConfig{Duplicates: time.Minute}, id: true,
			wantPendingRefused: true, wantAfterAck: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := runNATS(t)
			_, js := connectJS(t, srv)
			ctx := testContext(t, 10*time.Second)
			cfg := tc.cfg
			cfg.Name, cfg.Subjects, cfg.Retention = "J", []string{"j.*"}, jetstream.WorkQueuePolicy
			s, err := js.CreateStream(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// queued reports whether the publish added a message.
			queued := func() bool {
				m := nats.NewMsg("j.h1")
				if tc.id {
					m.Header.Set(jetstream.MsgIDHeader, "j.h1")
				}
				ack, err := js.PublishMsg(ctx, m)
				if err != nil && !isPerSubjectFull(err) {
					t.Fatal(err)
				}
				return err == nil && !ack.Duplicate
			}
			if !queued() {
				t.Fatal("first job refused")
			}
			if refused := !queued(); refused != tc.wantPendingRefused {
				t.Errorf("second job while the first waits: refused %v, want %v", refused, tc.wantPendingRefused)
			}
			cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := msg.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			if got := queued(); got != tc.wantAfterAck {
				t.Errorf("job after the first was acknowledged: queued %v, want %v", got, tc.wantAfterAck)
			}
		})
	}
}

// TestTrainedRecordOddHosts: a trained record is kept under the host's
// escaped key, so hosts a KV key cannot spell (non-ASCII letters) have one,
// and hosts whose subject tokens collide keep their own.
func TestTrainedRecordOddHosts(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 10*time.Second)
	q, err := EnsureJobs(ctx, js, JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"hôte.example", "db1.example.com", "db1_example_com"}
	for i, h := range hosts {
		if err := q.recordTrained(ctx, Trained{Host: h, Version: uint64(i + 1)}); err != nil {
			t.Fatalf("record %s: %v", h, err)
		}
	}
	for i, h := range hosts {
		got, err := q.Trained(ctx, h)
		if err != nil || got.Host != h || got.Version != uint64(i+1) {
			t.Errorf("Trained(%s) = %+v, %v; want version %d", h, got, err, i+1)
		}
	}
}
