package train

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

// hostModelEpochs is the study's number of epochs for one host's model.
const hostModelEpochs = 1000

// hostModelData returns the seed's 1,000 generated four-metric samples and
// the dagmm train defaults with the study's 1,000 epochs.
func hostModelData(tb testing.TB) ([]string, []float64, Config) {
	tb.Helper()
	tab, err := datasets.Generate(datasets.DefaultGenConfig())
	if err != nil {
		tb.Fatal(err)
	}
	features := datasets.GenFeatures()
	x, err := datasets.Matrix(tab, features)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Epochs = hostModelEpochs
	return features, x, cfg
}

// cpuTime returns the process's user and system CPU time so far. On a
// machine shared with other work the wall time includes waiting for a core;
// the CPU time does not.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHostModel is issue 15's training figure: one four-metric host
// model with the dagmm train defaults on the seed's 1,000 generated samples
// for 1,000 epochs (the study's settings), in seconds per model, on one core:
//
//	GOMAXPROCS=1 taskset -c 0 go test -run '^$' -bench HostModel -count 5 ./train/
//
// model is the whole of Train. The other sub-benchmarks split it: build (the
// training graph and its tape machine), epoch (one epoch's optimiser steps),
// calibrate (the forward pass over all rows with dropout off, the mixture's
// φ, μ, Σ, the energies and the threshold). cpu-s/model is the process's CPU
// time per model, which waiting for a busy machine's core does not inflate.
func BenchmarkHostModel(b *testing.B) {
	features, x, cfg := hostModelData(b)
	d := len(features)
	n := len(x) / d
	b.Run("model", func(b *testing.B) {
		b.ReportAllocs()
		var rep *Report
		cpu0 := cpuTime(b)
		for b.Loop() {
			var err error
			if _, rep, err = Train(context.Background(), features, x, cfg, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/model")
		b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/model")
		b.ReportMetric(float64(rep.Steps), "steps/model")
		b.ReportMetric(0, "ns/op")
	})

	norm, err := fitNormalization(features, x, cfg.Normalization)
	if err != nil {
		b.Fatal(err)
	}
	xn := make([]float64, len(x))
	normalise(xn, x, norm)
	batch := min(cfg.BatchSize, n)
	newNW := func() network {
		nw := newNetwork(d, &cfg)
		nw.initWeights(rand.New(rand.NewPCG(cfg.Seed, streamInit)))
		return nw
	}
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		nw := newNW()
		for b.Loop() {
			tr, err := newTrainer(&nw, xn, d, batch, stepsPerRun(n/batch), &cfg, true)
			if err != nil {
				b.Fatal(err)
			}
			tr.lg.close()
		}
	})
	b.Run("epoch", func(b *testing.B) {
		b.ReportAllocs()
		nw := newNW()
		tr, err := newTrainer(&nw, xn, d, batch, stepsPerRun(n/batch), &cfg, true)
		if err != nil {
			b.Fatal(err)
		}
		defer tr.lg.close()
		perm := rand.New(rand.NewPCG(cfg.Seed, streamShuffle)).Perm(n)
		cpu0 := cpuTime(b)
		steps := n / batch
		per := stepsPerRun(steps)
		batches := make([][]int, per)
		for b.Loop() {
			for s := 0; s < steps; s += per {
				for j := range batches {
					batches[j] = perm[(s+j)*batch : (s+j+1)*batch]
				}
				if err := tr.run(batches); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n/batch*batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("calibrate", func(b *testing.B) {
		b.ReportAllocs()
		nw := newNW()
		m := &model.Model{Features: features, Norm: norm, Encoder: nw.enc, Decoder: nw.dec, Estimator: nw.est,
			ReconWeight: cfg.ReconWeight, Window: cfg.Window}
		for b.Loop() {
			if err := calibrate(m, xn, &cfg, &Report{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
