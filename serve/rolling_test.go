package serve

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/natstest"
)

// TestRollingUpgrade replaces two durable scorers one after the other, as
// a Deployment's rolling update does (maxUnavailable 0: the new one is up
// before the old one gets SIGTERM), while samples keep arriving: every
// sample is scored at least once. The replicas share the durable consumer,
// so what a stopping scorer had not acknowledged goes to the others.
func TestRollingUpgrade(t *testing.T) {
	checkNoLeak(t)
	srv, m, cfg := withNATS(t) // JetStream with a store directory
	cfg.JetStream.Enabled = true
	cfg.JetStream.AckWait = 2 * time.Second
	cfg.NATS.PublishScores = true
	nc, js := natstest.ConnectJS(t, srv.ClientURL())
	scores := collect(t, nc, "scores.>")
	old1, old2 := start(t, cfg), start(t, cfg)

	const n = 6000
	normal, _ := testData(t, m, 40, 0, 3)
	d := len(m.Features)
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { // a steady flow, through the whole upgrade
		ctx := context.Background()
		for i := range n {
			j := i % 40
			if _, err := js.Publish(ctx, "metrics.h", []byte(sampleJSON("h", time.Unix(int64(i), 0), m.Features, normal[j*d:(j+1)*d]))); err != nil {
				pubDone <- err
				return
			}
			published.Add(1)
			if i%100 == 99 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		pubDone <- nil
	}()

	seen := map[uint64]int{} // stream sequence: scores
	take := func(until func() bool, timeout time.Duration) {
		t.Helper()
		deadline := time.After(timeout)
		for !until() {
			select {
			case msg := <-scores.ch:
				e := decodeEvent(t, msg.Data)
				if e.Source == nil || e.Source.Seq == 0 {
					t.Fatalf("score without its stream sequence: %s", msg.Data)
				}
				seen[e.Source.Seq]++
			case <-deadline:
				t.Fatalf("%d distinct samples scored of %d published", len(seen), published.Load())
			}
		}
	}
	// Each step waits for more samples, so every replacement happens
	// while samples flow.
	steps := []struct {
		name string
		old  *running
	}{{"first", old1}, {"second", old2}}
	for k, st := range steps {
		take(func() bool { return published.Load() > int64((k+1)*n/3) }, 30*time.Second)
		start(t, cfg) // the new pod is ready first
		before := counterValue(t, st.old.Registry(), "dagmm_samples_scored_total", map[string]string{"source": "nats"})
		st.old.stop(t) // SIGTERM: the old pod drains and exits
		if before == 0 {
			t.Errorf("the %s old scorer had scored nothing before its stop: the test proves nothing", st.name)
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	take(func() bool { return len(seen) == n }, 60*time.Second)
	for _, msg := range scores.quiet(3 * cfg.JetStream.AckWait) { // redeliveries, if any
		seen[decodeEvent(t, msg.Data).Source.Seq]++
	}
	dups := 0
	for seq, c := range seen {
		if seq < 1 || seq > n {
			t.Errorf("score of stream sequence %d, published 1 to %d", seq, n)
		}
		dups += c - 1
	}
	t.Logf("%d samples published, %d scored, %d scored twice or more across two replacements", n, len(seen), dups)
}
