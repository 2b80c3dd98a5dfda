package fleet

import (
	"testing"
	"time"
)

// BenchmarkWindow reads one host's full window of 1,000 four-metric
// samples back from the history stream: the trainer's cost per job
// besides training.
func BenchmarkWindow(b *testing.B) {
	srv := runNATS(b)
	_, js := connectJS(b, srv)
	ctx := testContext(b, 5*time.Minute)
	h, err := EnsureHistory(ctx, js, HistoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	publishHistory(b, js, h, []int{0}, 0, h.Limit(), time.Now().Add(-time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		w, err := h.Window(ctx, hostName(0), WindowOptions{})
		if err != nil || w.Rows() != h.Limit() {
			b.Fatalf("%d rows, %v", w.Rows(), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*h.Limit()), "ns/sample")
}

// BenchmarkSchedulerPass is one scheduler pass over 1,000 hosts that all
// have a fresh model: the per-host cost of looking at the fleet (the
// history's subject counts, a model look-up and a trained record each).
func BenchmarkSchedulerPass(b *testing.B) {
	srv := runNATS(b)
	p := bindParts(b, srv, HistoryConfig{})
	const hosts = 1000
	publishHistory(b, p.js, p.hist, hostRange(hosts), 0, 1, time.Now().Add(-time.Hour))
	store := newMapStore()
	ctx := testContext(b, 5*time.Minute)
	for i := range hosts {
		if _, err := store.Publish(ctx, hostName(i), testArtifact(b)); err != nil {
			b.Fatal(err)
		}
	}
	s, err := NewScheduler(ctx, p.js, p.hist, p.jobs, store, SchedulerConfig{MinSamples: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Pass(ctx)
		if err != nil || !r.Leader || len(r.Enqueued) != 0 {
			b.Fatalf("%+v, %v", r, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*hosts), "ns/host")
}
