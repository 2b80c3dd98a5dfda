package model_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// Run the figures quoted in the README with
//
//	go test -run '^$' -bench Score -benchmem ./model/
//
// Every op is one batch of model.DefaultBatch samples; samples/s is the
// throughput over all cores used, allocs/op is per batch.

func benchModels() []struct {
	name string
	m    *model.Model
} {
	return []struct {
		name string
		m    *model.Model
	}{
		{"metrics4", modeltest.Metrics4(1)},
		{"kddcup", modeltest.KDDCup(1)},
	}
}

func BenchmarkScore(b *testing.B) {
	for _, bm := range benchModels() {
		s, err := model.NewScorer(bm.m)
		if err != nil {
			b.Fatal(err)
		}
		const batch = model.DefaultBatch
		x := modeltest.Inputs(bm.m, batch, 2)
		for _, cores := range []int{1, 2} {
			b.Run(fmt.Sprintf("model=%s/cores=%d", bm.name, cores), func(b *testing.B) {
				if runtime.GOMAXPROCS(0) < cores {
					b.Skipf("GOMAXPROCS is %d, need %d", runtime.GOMAXPROCS(0), cores)
				}
				benchCores(b, s, x, batch, cores)
			})
		}
	}
}

// benchCores scores batches on the given number of goroutines, each with its
// own workspace, taking ops from a shared counter: the way a service's
// workers use a Scorer.
func benchCores(b *testing.B, s *model.Scorer, x []float64, batch, cores int) {
	b.Helper()
	wss := make([]*model.Workspace, cores)
	outs := make([][]model.Result, cores)
	for i := range wss {
		wss[i] = s.NewWorkspace(batch)
		outs[i] = make([]model.Result, batch)
		if err := s.ScoreBatch(wss[i], x, outs[i]); err != nil { // the workspace grows to the batch
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range cores {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := s.ScoreBatch(wss[c], x, outs[c]); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)*float64(batch)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkScoreParallel measures [model.Scorer.ScoreParallel]: one call
// scores cores×DefaultBatch samples.
func BenchmarkScoreParallel(b *testing.B) {
	for _, bm := range benchModels() {
		s, err := model.NewScorer(bm.m)
		if err != nil {
			b.Fatal(err)
		}
		const cores = 2
		n := cores * model.DefaultBatch
		x := modeltest.Inputs(bm.m, n, 3)
		b.Run(fmt.Sprintf("model=%s/cores=%d", bm.name, cores), func(b *testing.B) {
			wss := []*model.Workspace{s.NewWorkspace(model.DefaultBatch), s.NewWorkspace(model.DefaultBatch)}
			out := make([]model.Result, n)
			if err := s.ScoreParallel(wss, x, out); err != nil { // the workspaces grow to the batch
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.ScoreParallel(wss, x, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkScoreOne measures the allocating single-sample path used by HTTP.
func BenchmarkScoreOne(b *testing.B) {
	for _, bm := range benchModels() {
		s, err := model.NewScorer(bm.m)
		if err != nil {
			b.Fatal(err)
		}
		x := modeltest.Inputs(bm.m, 1, 4)
		b.Run("model="+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Score(x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkScoreCold scores one sample with one of many scorers of the
// four-metric model, drawn at random each op, as a fleet scorer does with
// a model per host: the scorers' memory (about 6.5 KB each) is cold. It
// compares one scorer (hot), many scorers, and many scorers each asked for
// with Scorer.Prefetch first. The difference between hot and cold is what
// the memory of one cold model costs on the machine:
//
//	go test -run '^$' -bench ScoreCold -benchtime 2s ./model/
func BenchmarkScoreCold(b *testing.B) {
	m := modeltest.Metrics4(1)
	const n = 100_000
	scorers := make([]*model.Scorer, n)
	for i := range scorers {
		c := *m
		c.Calibration.Threshold += float64(i) * 1e-9
		s, err := model.NewScorer(&c)
		if err != nil {
			b.Fatal(err)
		}
		scorers[i] = s
	}
	x := modeltest.Inputs(m, 1, 2)
	for _, c := range []struct {
		name     string
		models   int
		prefetch bool
	}{{"models=1", 1, false}, {"models=100000", n, false}, {"models=100000/prefetch", n, true}} {
		b.Run(c.name, func(b *testing.B) {
			ws := scorers[0].NewWorkspace(1)
			out := make([]model.Result, 1)
			rng := uint64(1)
			for b.Loop() {
				rng = rng*6364136223846793005 + 1442695040888963407
				s := scorers[int(rng>>33)%c.models]
				if c.prefetch {
					s.Prefetch()
				}
				ws = s.Reuse(ws)
				if err := s.ScoreBatch(ws, x, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
