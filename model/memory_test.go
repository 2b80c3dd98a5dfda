package model_test

import (
	"bytes"
	"context"
	"flag"
	"runtime"
	"sync"
	"testing"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// Run the memory figures quoted in the README with
//
//	go test -run '^$' -bench Memory -benchtime 1x ./model/
//
// and with -models 100000 to load 100,000 instead of 10,000.
//
// BenchmarkScorerMemory loads 10,000 four-metric host models the way a
// scorer does (model.DecodeDigest, model.NewScorer), keeps the scorers and
// reports the heap they retain, per model; BenchmarkWorkspaceMemory does the
// same for one workspace of capacity model.DefaultBatch per model, new,
// after scoring one sample (and explaining it) and after scoring a full
// batch.

var memoryModels = flag.Int("models", 10_000, "number of models BenchmarkScorerMemory loads")

// hostModel is a four-metric host model trained with the defaults of
// dagmm train on the generator's seed data, once per test binary.
var hostModel = sync.OnceValues(func() (*model.Model, error) {
	tab, err := datasets.Generate(datasets.DefaultGenConfig())
	if err != nil {
		return nil, err
	}
	features := datasets.GenFeatures()
	x, err := datasets.Matrix(tab, features)
	if err != nil {
		return nil, err
	}
	m, _, err := train.Train(context.Background(), features, x, train.DefaultConfig(), nil)
	return m, err
})

// hostArtifact returns copy i of the trained host model as an artifact:
// every weight and bias nudged by an amount that depends on i, so that
// no two copies have the same digest or could share memory.
func hostArtifact(tb testing.TB, i int) []byte {
	tb.Helper()
	m0, err := hostModel()
	if err != nil {
		tb.Fatalf("train the host model: %v", err)
	}
	m := m0.Clone()
	nudge := float64(i+1) * 1e-12
	for _, ls := range [][]model.Layer{m.Encoder, m.Decoder, m.Estimator} {
		for _, l := range ls {
			for j := range l.W {
				l.W[j] += nudge
			}
			for j := range l.B {
				l.B[j] += nudge
			}
		}
	}
	var buf bytes.Buffer
	if err := model.Encode(&buf, m); err != nil {
		tb.Fatalf("encode copy %d: %v", i, err)
	}
	return buf.Bytes()
}

// loadHostScorers loads n copies of the host model through DecodeDigest and
// NewScorer and returns them with the heap they retain, per model: the
// growth of the live heap across the loading, measured after a GC, over n.
func loadHostScorers(tb testing.TB, n int) ([]*model.Scorer, float64) {
	tb.Helper()
	hostArtifact(tb, 0) // train before the first reading
	scorers := make([]*model.Scorer, n)
	before := liveHeap()
	for i := range scorers {
		m, _, err := model.DecodeDigest(bytes.NewReader(hostArtifact(tb, i)))
		if err != nil {
			tb.Fatalf("decode copy %d: %v", i, err)
		}
		if scorers[i], err = model.NewScorer(m); err != nil {
			tb.Fatalf("scorer for copy %d: %v", i, err)
		}
	}
	after := liveHeap()
	return scorers, (float64(after) - float64(before)) / float64(n)
}

// liveHeap returns the bytes of live heap objects after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkScorerMemory(b *testing.B) {
	var perModel float64
	for b.Loop() {
		scorers, bytes := loadHostScorers(b, *memoryModels)
		perModel = bytes
		runtime.KeepAlive(scorers)
	}
	b.ReportMetric(perModel, "B/model")
	b.ReportMetric(perModel*100_000/1e9, "GB/100k-models")
	b.ReportMetric(float64(*memoryModels), "models")
}

func BenchmarkWorkspaceMemory(b *testing.B) {
	const n = 1_000
	scorers, _ := loadHostScorers(b, n)
	row := []float64{50, 50, 40, 1e6} // cpu, mem, disk, net: an ordinary sample
	for _, tc := range []struct {
		name    string
		batch   int // samples scored, 0 for none
		explain bool
	}{
		{"new", 0, false},
		{"scored=1", 1, false},
		{"scored=1/explained", 1, true},
		{"scored=1024", model.DefaultBatch, false},
	} {
		x := make([]float64, 0, tc.batch*len(row))
		for range tc.batch {
			x = append(x, row...)
		}
		out := make([]model.Result, tc.batch)
		var ex model.Explanation
		b.Run(tc.name, func(b *testing.B) {
			var perModel float64
			for b.Loop() {
				wss := make([]*model.Workspace, n)
				before := liveHeap()
				for i, s := range scorers {
					ws := s.NewWorkspace(model.DefaultBatch)
					if tc.batch > 0 {
						if err := s.ScoreBatch(ws, x, out); err != nil {
							b.Fatal(err)
						}
					}
					if tc.explain {
						if err := s.Explain(ws, 0, "", &ex); err != nil {
							b.Fatal(err)
						}
					}
					wss[i] = ws
				}
				perModel = (float64(liveHeap()) - float64(before)) / n
				runtime.KeepAlive(wss)
			}
			b.ReportMetric(perModel, "B/workspace")
		})
	}
}

// TestScorerMemory keeps the scorer of a four-metric host model within the
// budget of issue 15: 100,000 loaded models in 1 GB or less, 10 KB each.
func TestScorerMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	const budget = 10_000
	scorers, perModel := loadHostScorers(t, 500)
	runtime.KeepAlive(scorers)
	t.Logf("retained heap per four-metric scorer: %.0f B", perModel)
	if perModel > budget {
		t.Errorf("a four-metric scorer retains %.0f B, want at most %d", perModel, budget)
	}
}
