package report

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// scaleKind names how an axis maps data values to the page.
type scaleKind int

const (
	linearScale scaleKind = iota
	logScale              // log10; every value > 0
	symlogScale           // sign(v)·log10(1 + |v|/c): linear near 0, logarithmic beyond c
)

// Thresholds of the automatic scale choice.
const (
	logMinDecades = 3  // log axis when max/min > 10^logMinDecades and every value > 0
	heavyTailMult = 20 // symlog axis when the full range is this many times the central 98%
	quantileLimit = 20000
)

// scale is one axis scale. The zero value is linear.
type scale struct {
	kind scaleKind
	c    float64 // symlog: half-width of the linear part around 0 (> 0)
}

// fwd maps a value to the space in which the scale is linear.
func (s scale) fwd(v float64) float64 {
	switch s.kind {
	case logScale:
		return math.Log10(v)
	case symlogScale:
		return math.Copysign(math.Log10(1+math.Abs(v)/s.c), v)
	default:
		return v
	}
}

// inv is the inverse of fwd.
func (s scale) inv(t float64) float64 {
	switch s.kind {
	case logScale:
		return math.Pow(10, t)
	case symlogScale:
		return math.Copysign(s.c*(math.Pow(10, math.Abs(t))-1), t)
	default:
		return t
	}
}

// suffix is appended to an axis label to say which scale it uses.
func (s scale) suffix() string {
	switch s.kind {
	case logScale:
		return " (log scale)"
	case symlogScale:
		return " (symmetric log scale)"
	default:
		return ""
	}
}

// apply makes a an axis for values mapped through fwd: the axis itself is
// linear (in fwd space) and its ticks sit at round data values, labelled
// with those values. Plotting fwd(v) on a linear axis, rather than using a
// non-linear plot.Normalizer, also keeps gonum/plot's layout right: it places
// the axis label's glyph box at the normalised data midpoint, which on a log
// axis is near one end and shrinks the data area.
func (s scale) apply(a *plot.Axis) {
	a.Scale = plot.LinearScale{}
	a.Tick.Marker = scaledTicks{s: s}
}

// scaledTicks returns the ticks of a scale in fwd space.
type scaledTicks struct{ s scale }

// Ticks implements plot.Ticker; lo and hi are in fwd space.
func (t scaledTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	switch t.s.kind {
	case logScale:
		ticks = logTicks{}.Ticks(t.s.inv(lo), t.s.inv(hi))
	case symlogScale:
		ticks = symlogTicks{c: t.s.c}.Ticks(t.s.inv(lo), t.s.inv(hi))
	default:
		return linearTicks{}.Ticks(lo, hi)
	}
	for i := range ticks {
		ticks[i].Value = t.s.fwd(ticks[i].Value)
	}
	return ticks
}

// chooseScale picks the scale for an axis that must show every value in v
// (all finite, len(v) > 0): log when every value is positive and they span
// more than logMinDecades decades; symmetric log when a few values lie far
// outside the central 98% (heavy tails, outliers); linear otherwise.
func chooseScale(v []float64) scale {
	lo, hi := minMax(v)
	if lo > 0 && hi/lo > math.Pow10(logMinDecades) {
		return scale{kind: logScale}
	}
	if !finite(hi - lo) { // near ±MaxFloat64: only a log-like scale has a finite span
		return scale{kind: symlogScale, c: 1}
	}
	q01, q99 := quantiles(v, 0.01, 0.99)
	central := q99 - q01
	if central <= 0 || hi-lo <= heavyTailMult*central {
		return scale{}
	}
	// The bulk [q01, q99] should take a fair part of the axis and look nearly
	// linear, so the linear part is about a quarter of its width, rounded to a
	// power of ten.
	c := math.Pow10(int(math.Round(math.Log10(central / 4))))
	if !(c > 0) || math.IsInf(c, 0) {
		return scale{}
	}
	return scale{kind: symlogScale, c: c}
}

// minMax returns the smallest and largest of v (len(v) > 0).
func minMax(v []float64) (lo, hi float64) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo = min(lo, x)
		hi = max(hi, x)
	}
	return lo, hi
}

// quantiles returns the p and q quantiles of v (len(v) > 0), estimated from at
// most quantileLimit evenly strided values so large inputs stay cheap.
func quantiles(v []float64, p, q float64) (float64, float64) {
	step := max(1, len(v)/quantileLimit)
	s := make([]float64, 0, len(v)/step+1)
	for i := 0; i < len(v); i += step {
		s = append(s, v[i])
	}
	slices.Sort(s)
	at := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] }
	return at(p), at(q)
}

// linearTickCount is about how many labelled ticks a linear axis gets.
const linearTickCount = 5

// linearTicks labels round values (1, 2, 2.5 or 5 × 10^k apart), about
// linearTickCount of them, with unlabelled minor ticks in between; labels
// from 10,000 up use SI suffixes (k, M, G, T) so rates in bps stay short.
type linearTicks struct{}

// Ticks implements plot.Ticker.
func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || !finite(hi-lo) {
		return []plot.Tick{{Value: lo, Label: numLabel(lo)}}
	}
	mag := math.Pow10(int(math.Floor(math.Log10((hi - lo) / linearTickCount))))
	step, minor := 10*mag, 2*mag
	for _, m := range []struct{ step, minor float64 }{{1, 0.2}, {2, 0.5}, {2.5, 0.5}, {5, 1}} {
		if (hi-lo)/(m.step*mag) <= linearTickCount+1.5 {
			step, minor = m.step*mag, m.minor*mag
			break
		}
	}
	var ticks []plot.Tick
	// At most ~40 ticks; the cap also ends the loop when k is so large that
	// k++ no longer changes it.
	for k, i := math.Ceil(lo/minor-1e-9), 0; k*minor <= hi+minor*1e-9 && i < 100; k, i = k+1, i+1 {
		t := plot.Tick{Value: k * minor}
		if q := t.Value / step; math.Abs(q-math.Round(q)) < 1e-6 {
			t.Value = math.Round(q) * step
			if t.Value == 0 {
				t.Value = 0 // no "-0"
			}
			t.Label = tickLabel(t.Value, step, max(math.Abs(lo), math.Abs(hi)))
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// tickLabel formats v, a multiple of step on an axis reaching top, with as
// many digits as step needs, and an SI suffix (k, M, G, T) from 10,000 up.
func tickLabel(v, step, top float64) string {
	div, suffix := 1.0, ""
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}} {
		if top >= 10*u.div || (u.div > 1e3 && top >= u.div) {
			div, suffix = u.div, u.suffix
		}
	}
	s := step / div
	decimals := max(0, -int(math.Floor(math.Log10(s)+1e-9)))
	if r := s * math.Pow10(decimals); math.Abs(r-math.Round(r)) > 1e-6 { // 2.5 × 10^k
		decimals++
	}
	if decimals > 6 {
		digits := int(math.Floor(math.Log10(top/div))) + decimals + 1
		return strconv.FormatFloat(v/div, 'g', max(digits, 1), 64) + suffix
	}
	return strconv.FormatFloat(v/div, 'f', decimals, 64) + suffix
}

// logTicks marks every power of ten, with minor ticks in between; when the
// axis spans less than 2.5 decades, 2× and 5× are labelled too.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	k0 := int(math.Floor(math.Log10(lo)))
	k1 := int(math.Ceil(math.Log10(hi)))
	few := math.Log10(hi/lo) < 2.5
	var ticks []plot.Tick
	for k := k0; k <= k1; k++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(k)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (few && (m == 2 || m == 5)) {
				t.Label = numLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// symlogTicks marks 0 and ±c·10^k, with minor ticks at ±m·c·10^k.
type symlogTicks struct{ c float64 }

// Ticks implements plot.Ticker.
func (t symlogTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || !(t.c > 0) {
		return nil
	}
	ticks := []plot.Tick{{Value: 0, Label: "0"}}
	top := max(math.Abs(lo), math.Abs(hi))
	for d, i := t.c, 0; d <= top*10 && i < 700 && finite(d); d, i = d*10, i+1 {
		for m := 1; m <= 9; m++ {
			v := float64(m) * d
			for _, s := range []float64{v, -v} {
				if s < lo || s > hi {
					continue
				}
				tk := plot.Tick{Value: s}
				if m == 1 {
					tk.Label = numLabel(s)
				}
				ticks = append(ticks, tk)
			}
		}
	}
	return ticks
}

// numLabel formats a tick or threshold value: up to four significant digits,
// with an SI suffix from 10,000 up (12.5k, 1.5M, 2G).
func numLabel(v float64) string {
	a := math.Abs(v)
	if a < 1e4 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	units := []struct {
		div    float64
		suffix string
	}{{1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}}
	i := 0
	for i+1 < len(units) && a >= units[i+1].div {
		i++
	}
	s := strconv.FormatFloat(v/units[i].div, 'g', 3, 64)
	if strings.ContainsRune(s, 'e') && i+1 < len(units) { // 999.9k rounds to 1e+03k
		i++
		s = strconv.FormatFloat(v/units[i].div, 'g', 3, 64)
	}
	return s + units[i].suffix
}
