package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dagmm/dagmm/model"
)

// column returns column j of the n×d row-major x.
func column(x []float64, d, j int) []float64 {
	c := make([]float64, 0, len(x)/d)
	for i := j; i < len(x); i += d {
		c = append(c, x[i])
	}
	return c
}

// sample returns n values drawn by f.
func sample(n int, seed uint64, f func(r *rand.Rand, i int) float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float64, n)
	for i := range v {
		v[i] = f(r, i)
	}
	return v
}

func TestRobustSD(t *testing.T) {
	const n = 20000
	for _, c := range []struct {
		name     string
		v        []float64
		want     float64 // 0: the standard deviation
		tol      float64
		spreadOf float64 // the central share it must come from (0.5, 0.8, 0.98), 0 for the sd
	}{
		{"normal", sample(n, 1, func(r *rand.Rand, _ int) float64 { return 5 + 2*r.NormFloat64() }), 2, 0.05, 0.5},
		{"normal with 2% spikes", sample(n, 2, func(r *rand.Rand, i int) float64 {
			if i%50 == 0 {
				return 1e4
			}
			return 5 + 2*r.NormFloat64()
		}), 2.05, 0.08, 0.5},
		{"one value in 80% of rows", sample(n, 3, func(r *rand.Rand, i int) float64 {
			if i%5 < 4 {
				return 0
			}
			return 1 + r.Float64()
		}), 0, 0, 0.8},
		{"one value in 95% of rows", sample(n, 4, func(r *rand.Rand, i int) float64 {
			if i%20 != 0 {
				return 0
			}
			return 1 + r.Float64()
		}), 0, 0, 0.98},
		{"one value in 99.5% of rows", sample(n, 5, func(r *rand.Rand, i int) float64 {
			if i%200 != 0 {
				return 0
			}
			return 1 + r.Float64()
		}), 0, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := robustSD(c.v)
			if c.want > 0 && math.Abs(got-c.want) > c.tol {
				t.Errorf("robustSD = %v, want %v ± %v", got, c.want, c.tol)
			}
			s := slices.Sorted(slices.Values(c.v))
			want := 0.0
			switch c.spreadOf {
			case 0.5:
				want = (s[3*n/4] - s[n/4]) / (2 * 0.6744897501960817)
			case 0.8:
				want = (s[9*n/10] - s[n/10]) / (2 * 1.2815515655446004)
			case 0.98:
				want = (s[99*n/100] - s[n/100]) / (2 * 2.3263478740408408)
			default:
				_, want = meanSD(c.v)
			}
			if want <= 0 || math.Abs(got-want) > 1e-12*want {
				t.Errorf("robustSD = %v, want %v (from the central %v of the values; 0 = the sd)", got, want, c.spreadOf)
			}
		})
	}
}

func TestAutoSD(t *testing.T) {
	const n = 5000
	for _, c := range []struct {
		name string
		v    []float64
		want model.NormKind
	}{
		{"uniform", sample(n, 1, func(r *rand.Rand, _ int) float64 { return 100 * r.Float64() }), model.NormMinMax},
		{"normal", sample(n, 2, func(r *rand.Rand, _ int) float64 { return -5 + r.NormFloat64() }), model.NormMinMax},
		{"lognormal", sample(n, 3, func(r *rand.Rand, _ int) float64 { return math.Exp(13 + 1.5*r.NormFloat64()) }), model.NormLog},
		{"normal with rare spikes", sample(n, 4, func(r *rand.Rand, i int) float64 {
			if i%500 == 0 {
				return 20
			}
			return r.NormFloat64()
		}), model.NormMinSD},
		{"negative with a dip", sample(n, 5, func(r *rand.Rand, i int) float64 {
			if i == 17 {
				return -30
			}
			return -5 + r.NormFloat64()
		}), model.NormMinSD},
		{"lognormal with rare spikes", sample(n, 6, func(r *rand.Rand, i int) float64 {
			if i%500 == 0 {
				return 1e12
			}
			return math.Exp(13 + 0.5*r.NormFloat64())
		}), model.NormLogMinSD},
		{"zero but for blips", sample(n, 7, func(r *rand.Rand, i int) float64 {
			if i%10 != 0 {
				return 0
			}
			return 40 + r.Float64()
		}), model.NormLogMinSD},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts, err := FitNormalization([]string{"f"}, c.v, NormAutoSD)
			if err != nil {
				t.Fatal(err)
			}
			tr := ts[0]
			if tr.Kind != c.want {
				t.Fatalf("kind %s, want %s", tr.Kind, c.want)
			}
			f := slices.Clone(c.v)
			if tr.Kind == model.NormLog || tr.Kind == model.NormLogMinSD {
				for i, v := range f {
					f[i] = signedLog1p(v)
				}
			}
			s := slices.Sorted(slices.Values(f))
			_, sd := meanSD(f)
			want := s[n-1] - s[0]
			if tr.Kind == model.NormMinSD || tr.Kind == model.NormLogMinSD {
				want = max(sdWidth*sd, s[n*99/100]-s[n/100])
			}
			if tr.Offset != s[0] || math.Abs(tr.Scale-want) > 1e-12*want {
				t.Errorf("offset %v, scale %v; want %v, %v", tr.Offset, tr.Scale, s[0], want)
			}
			if tr.Spread != robustSD(f) {
				t.Errorf("spread %v, want %v (robustSD of f(x))", tr.Spread, robustSD(f))
			}
		})
	}
}
