package model_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// Run the explanation cost figures of docs/explanations.md with
//
//	go test -run '^$' -bench 'Explain' -benchtime 1s ./model/
//
// BenchmarkExplain measures one explanation of one flagged sample per op
// and reports x-score, its cost over the cost of scoring one sample in a
// batch of model.DefaultBatch, measured right after on the same goroutine
// (so that both see the same load on a shared machine).
// BenchmarkScoreExplain scores batches with 1% anomalies and explains the
// flagged samples only: its ns/sample against explain=none is what
// explanations add to a stream.

// hostBatch returns n samples of the generator's four metrics (noise-free
// loads drawn at random) in which every hundredth sample has one feature
// set to a value from a load half the range away.
func hostBatch(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, 0, n*4)
	for i := range n {
		load := 0.1 + 0.8*rng.Float64()
		row := genSample(load)
		if i%100 == 50 {
			other := load + 0.5
			if load >= 0.5 {
				other = load - 0.5
			}
			j := rng.IntN(4)
			row[j] = genSample(other)[j]
		}
		x = append(x, row...)
	}
	return x
}

type benchExplainModel struct {
	name string
	s    *model.Scorer
	x    []float64 // a batch of model.DefaultBatch samples
}

func benchExplainModels(b *testing.B) []benchExplainModel {
	b.Helper()
	kdd := modeltest.KDDCup(1)
	return []benchExplainModel{
		{"metrics4", metrics4(b), hostBatch(model.DefaultBatch, 1)},
		{"kddcup", mustScorer(b, kdd), modeltest.Inputs(kdd, model.DefaultBatch, 2)},
	}
}

// scoreNanos returns the time to score one sample in batches of
// model.DefaultBatch, on one goroutine.
func scoreNanos(b *testing.B, s *model.Scorer, x []float64) float64 {
	b.Helper()
	ws := s.NewWorkspace(model.DefaultBatch)
	out := make([]model.Result, model.DefaultBatch)
	n := 0
	start := time.Now()
	for time.Since(start) < 100*time.Millisecond {
		if err := s.ScoreBatch(ws, x, out); err != nil {
			b.Fatal(err)
		}
		n += len(x) / s.NumFeatures()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func BenchmarkExplain(b *testing.B) {
	for _, bm := range benchExplainModels(b) {
		s := bm.s
		ws := s.NewWorkspace(model.DefaultBatch)
		out := make([]model.Result, model.DefaultBatch)
		if err := s.ScoreBatch(ws, bm.x, out); err != nil {
			b.Fatal(err)
		}
		sample := 0
		for i, r := range out {
			if r.Anomaly {
				sample = i
				break
			}
		}
		for _, method := range model.Methods() {
			b.Run("model="+bm.name+"/method="+string(method), func(b *testing.B) {
				var ex model.Explanation
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Explain(ws, sample, method, &ex); err != nil {
						b.Fatal(err)
					}
				}
				perExplain := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				// Scoring uses its own workspace: ws keeps the explained batch.
				b.ReportMetric(perExplain/scoreNanos(b, s, bm.x), "x-score")
			})
		}
	}
}

func BenchmarkScoreExplain(b *testing.B) {
	bm := benchExplainModels(b)[0]
	s := bm.s
	ws := s.NewWorkspace(model.DefaultBatch)
	out := make([]model.Result, model.DefaultBatch)
	n := len(bm.x) / s.NumFeatures()
	for _, method := range []model.Method{"none", "", model.MethodSearch} {
		name := string(method)
		if method == "" {
			name = "default"
		}
		b.Run("model="+bm.name+"/explain="+name, func(b *testing.B) {
			var ex model.Explanation
			flagged := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := s.ScoreBatch(ws, bm.x, out); err != nil {
					b.Fatal(err)
				}
				if method == "none" {
					continue
				}
				for i, r := range out[:n] {
					if r.Anomaly {
						if err := s.Explain(ws, i, method, &ex); err != nil {
							b.Fatal(err)
						}
						flagged++
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
			b.ReportMetric(float64(flagged)/float64(b.N*n), "flagged/sample")
		})
	}
}

// BenchmarkExplainRecent measures recording one sample in a full history
// and explaining it with the history (Recent.Add + Scorer.ExplainRecent).
func BenchmarkExplainRecent(b *testing.B) {
	for _, bm := range benchExplainModels(b) {
		b.Run(bm.name, func(b *testing.B) {
			s := bm.s
			ws := s.NewWorkspace(model.DefaultBatch)
			out := make([]model.Result, model.DefaultBatch)
			if err := s.ScoreBatch(ws, bm.x, out); err != nil {
				b.Fatal(err)
			}
			r := s.NewRecent(0)
			for i := range r.Window() {
				if err := r.Add(ws, i); err != nil {
					b.Fatal(err)
				}
			}
			var ex model.Explanation
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := s.ExplainRecent(ws, i, r, &ex); err != nil {
					b.Fatal(err)
				}
				if err := r.Add(ws, i); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % model.DefaultBatch
			}
		})
	}
}
