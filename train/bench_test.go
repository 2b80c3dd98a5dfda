package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchArchs are the architectures BenchmarkTrainStep measures.
var benchArchs = []struct {
	name      string
	d         int
	encoder   []int
	estimator []int
	k         int
}{
	{"kddcup", 118, []int{60, 30, 10, 1}, []int{10}, 4}, // the DAGMM paper's KDDCUP99 network
	{"metrics4", 4, []int{16, 8, 1}, []int{10}, 4},      // the seed's four-metric model
}

// BenchmarkTrainStep measures one optimiser step (batch copy, dropout masks,
// forward and backward pass, Adam update) at batch 1024, in samples/s, for
// the training graph (custom ops) in float64 and float32, and for the
// reference graph built from Gorgonia's primitives (graph=primitives):
//
//	go test -run '^$' -bench TrainStep -benchtime 2s ./train/
func BenchmarkTrainStep(b *testing.B) {
	const batch = 1024
	type variant struct {
		dtype string
		fused bool
	}
	for _, a := range benchArchs {
		for _, v := range []variant{{Float64, true}, {Float32, true}, {Float64, false}} {
			name := fmt.Sprintf("arch=%s/dtype=%s", a.name, v.dtype)
			if !v.fused {
				name = fmt.Sprintf("arch=%s/graph=primitives", a.name)
			}
			b.Run(name, func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Encoder, cfg.Estimator, cfg.K, cfg.DType = a.encoder, a.estimator, a.k, v.dtype
				rng := rand.New(rand.NewPCG(1, 1))
				n := 4 * batch
				xn := make([]float64, n*a.d)
				for i := range xn {
					xn[i] = rng.Float64()
				}
				nw := newNetwork(a.d, &cfg)
				nw.initWeights(rand.New(rand.NewPCG(cfg.Seed, streamInit)))
				tr, err := newTrainer(&nw, xn, a.d, batch, 1, &cfg, v.fused)
				if err != nil {
					b.Fatal(err)
				}
				defer tr.lg.close()
				perm := rng.Perm(n)
				b.ReportAllocs()
				s := 0
				for b.Loop() {
					if err := tr.step(perm[s*batch : (s+1)*batch]); err != nil {
						b.Fatal(err)
					}
					s = (s + 1) % (n / batch)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
