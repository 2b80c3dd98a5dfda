package natsio

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/natstest"
)

// embedded starts an embedded server with JetStream on a free port and
// connects to it.
func embedded(t *testing.T) (*Embedded, *nats.Conn) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedOptions{Name: "test", Host: "127.0.0.1", Port: -1, JetStream: true, MaxPayload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e, natstest.Connect(t, e.URL(), e.InProcess())
}

func TestSubscribe(t *testing.T) {
	_, nc := embedded(t)
	for _, tc := range []struct {
		name, queue string
		subs        int
		want        int // deliveries of one message over the subscriptions
	}{
		{"alone: every subscription gets it", "", 2, 2},
		{"queue group: one of them gets it", "g", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got atomic.Int64
			subject := "in." + tc.queue + "x"
			for range tc.subs {
				sub, err := Subscribe(nc, subject, tc.queue, WorkerLimits(), func(*nats.Msg) { got.Add(1) })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sub.Unsubscribe() })
				if m, b, _ := sub.PendingLimits(); m != WorkerLimits().Msgs || b != WorkerLimits().Bytes {
					t.Errorf("pending limits %d, %d", m, b)
				}
			}
			if err := nc.Publish(subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for got.Load() < int64(tc.want) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			if n := got.Load(); n != int64(tc.want) {
				t.Errorf("%d deliveries, want %d", n, tc.want)
			}
		})
	}
	if _, err := Subscribe(nc, "bad subject", "", WorkerLimits(), func(*nats.Msg) {}); err == nil {
		t.Error("subscribing to a bad subject did not fail")
	}
}

// TestDurable binds a stream and a durable consumer, consumes with two
// pull loops, and checks what a delivery says: its stream, sequence and
// count, which grows when a message is negatively acknowledged.
func TestDurable(t *testing.T) {
	_, nc := embedded(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := Stream{Name: "S", Subjects: []string{"s.>"}, MaxAge: time.Hour, MaxBytes: -1}
	stream, err := BindStream(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Subjects = []string{"other.>"} // an existing stream is bound as it is
	if again, err := BindStream(ctx, js, spec); err != nil || again.CachedInfo().Config.Subjects[0] != "s.>" {
		t.Fatalf("binding again: %v", err)
	}
	cons, err := BindDurable(ctx, stream, Durable{Name: "c", Filter: "s.>", AckWait: time.Minute, MaxDeliver: 3, MaxAckPending: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Delivery, 100)
	handler := func(int) jetstream.MessageHandler {
		return func(m jetstream.Msg) {
			d := DeliveryOf(m)
			got <- d
			if d.Seq == 2 && d.Delivered == 1 {
				_ = m.NakWithDelay(time.Millisecond)
				return
			}
			_ = m.Ack()
		}
	}
	ccs, err := Consume(cons, 2, 10, handler, func(err error) { t.Errorf("consume: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, fmt.Sprintf("s.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]Delivery{}
	for len(seen) < 4 {
		select {
		case d := <-got:
			seen[fmt.Sprintf("%d/%d", d.Seq, d.Delivered)] = d
		case <-time.After(10 * time.Second):
			t.Fatalf("deliveries %v", seen)
		}
	}
	for _, k := range []string{"1/1", "2/1", "2/2", "3/1"} {
		d, ok := seen[k]
		if !ok || d.Stream != "S" || d.ID() != fmt.Sprintf("S:%d", d.Seq) {
			t.Errorf("delivery %s: %+v", k, d)
		}
	}
	if err := Drain(5*time.Second, nil, ccs); err != nil {
		t.Error(err)
	}
}

func TestDeliveryPolicy(t *testing.T) {
	for _, tc := range []struct {
		delivered  uint64
		maxDeliver int
		last       bool
		delay      time.Duration
	}{
		{0, 10, false, time.Second},
		{1, 10, false, time.Second},
		{2, 10, false, 2 * time.Second},
		{5, 10, false, 16 * time.Second},
		{6, 10, false, 30 * time.Second},
		{10, 10, true, 30 * time.Second},
		{11, 10, true, 30 * time.Second},
		{1000, -1, false, 30 * time.Second},
	} {
		d := Delivery{Stream: "S", Seq: 1, Delivered: tc.delivered}
		if got := d.Last(tc.maxDeliver); got != tc.last {
			t.Errorf("delivery %d of %d: last %v, want %v", tc.delivered, tc.maxDeliver, got, tc.last)
		}
		if got := d.RedeliveryDelay(); got != tc.delay {
			t.Errorf("delivery %d: delay %v, want %v", tc.delivered, got, tc.delay)
		}
	}
	if id := (Delivery{Delivered: 1}).ID(); id != "" {
		t.Errorf("id without a stream %q", id)
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nats.ErrMaxPayload, true},
		{fmt.Errorf("publish: %w", nats.ErrBadSubject), true},
		{nats.ErrConnectionClosed, false},
		{errors.New("timeout"), false},
	} {
		if got := PermanentPublishError(tc.err); got != tc.want {
			t.Errorf("PermanentPublishError(%v) = %v", tc.err, got)
		}
	}
}

// TestPublisher publishes plainly, then to a stream with message ids:
// publishing the same ids again stores nothing more.
func TestPublisher(t *testing.T) {
	_, nc := embedded(t)
	msgs := []struct{ subject, data, id string }{{"ev.a", "1", "a:1"}, {"ev.b", "2", "a:2"}, {"ev.c", "3", ""}}
	msg := func(i int) (string, []byte, string) { return msgs[i].subject, []byte(msgs[i].data), msgs[i].id }

	t.Run("plain", func(t *testing.T) {
		ch := make(chan *nats.Msg, 10)
		sub, err := nc.ChanSubscribe("ev.>", ch)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		var p Publisher
		link, _ := NewLink(nc, false)
		p.SetLink(link)
		if err := p.PublishAll(len(msgs), msg); err != nil {
			t.Fatal(err)
		}
		for i := range msgs {
			select {
			case m := <-ch:
				if m.Subject != msgs[i].subject || string(m.Data) != msgs[i].data || m.Header.Get(nats.MsgIdHdr) != "" {
					t.Errorf("message %d: %s %q %v", i, m.Subject, m.Data, m.Header)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("message %d not received", i)
			}
		}
	})

	t.Run("acked with ids", func(t *testing.T) {
		link, err := NewLink(nc, true)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		stream, err := BindStream(ctx, link.JS, Stream{Name: "EV", Subjects: []string{"ev.>"}, MaxAge: time.Hour, MaxBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		p := Publisher{Acked: true, Timeout: 5 * time.Second}
		p.SetLink(link)
		for range 2 {
			if err := p.PublishAll(len(msgs), msg); err != nil {
				t.Fatal(err)
			}
		}
		dl := &nats.Msg{Subject: "ev.d", Data: []byte("d"), Header: nats.Header{}}
		if err := p.PublishMsg(dl, "d:1"); err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Twice the two messages with ids count once; the one without an
		// id twice; the dead letter once.
		if info.State.Msgs != 5 {
			t.Errorf("stream holds %d messages, want 5", info.State.Msgs)
		}
		if err := p.PublishAll(1, func(int) (string, []byte, string) { return "nostream.x", nil, "" }); err == nil {
			t.Error("an acked publish to a subject no stream takes did not fail")
		}
	})
}

// TestDrain checks that Drain waits for the messages a subscription was
// delivered to be handled.
func TestDrain(t *testing.T) {
	_, nc := embedded(t)
	var handled atomic.Int64
	sub, err := Subscribe(nc, "d", "", OrderedLimits(), func(*nats.Msg) {
		time.Sleep(20 * time.Millisecond)
		handled.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := nc.Publish("d", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // let them be delivered
	if err := Drain(5*time.Second, []*nats.Subscription{sub}, nil); err != nil {
		t.Fatal(err)
	}
	if n := handled.Load(); n != 5 {
		t.Errorf("%d messages handled when Drain returned, want 5", n)
	}
}
