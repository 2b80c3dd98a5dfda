package baseline

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func randomRows(n, d int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n*d)
	for i := range x {
		x[i] = rng.Float64()
	}
	return x
}

// BenchmarkKNN scores n rows against n training rows of 38 metrics, as dagmm
// eval does twice per machine of the Server Machine Dataset (n = 23,700).
func BenchmarkKNN(b *testing.B) {
	const d = 38
	for _, n := range []int{2000, 23700} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			train, q := randomRows(n, d, 1), randomRows(n, d, 2)
			m, err := NewKNN(train, d, 5)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.Scores(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFitPCA fits 3 components to 23,700 rows of 38 metrics, and of a
// window of 5 rows (190 columns).
func BenchmarkFitPCA(b *testing.B) {
	for _, d := range []int{38, 190} {
		b.Run(fmt.Sprint(d), func(b *testing.B) {
			x := randomRows(23700, d, 3)
			for b.Loop() {
				if _, err := FitPCA(x, d, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
