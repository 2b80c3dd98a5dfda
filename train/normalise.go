package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/dagmm/dagmm/model"
)

// Auto-normalisation thresholds: see [FitNormalization].
const (
	// AutoLogSkew is the raw skewness above which a non-negative feature is
	// log-scaled, when the log reduces the skewness's magnitude.
	AutoLogSkew = 1.0
	// AutoLogRatio is the max/median ratio at or above which a non-negative
	// feature is log-scaled whatever its skewness.
	AutoLogRatio = 100.0
)

// sdWidth is √12, the range of a uniform distribution of unit standard
// deviation. min-sd scales a feature by the larger of sdWidth standard
// deviations and its central spread (see [centralSpread]): an evenly spread
// feature maps to about [0, 1] as with min-max, while one whose range a few
// spikes stretch keeps its typical values apart.
const sdWidth = 3.4641016151377544

// FitNormalization fits one model.Transform per feature on the n×d row-major
// raw values x. kind is one of the Norm* constants:
//
//   - zscore: Offset, Scale = the mean and the population standard deviation;
//   - minmax: Offset, Scale = the minimum and the range, so the rows map to [0, 1];
//   - log: f(x) = sign(x)·log1p(|x|), then Offset, Scale = the minimum and
//     the range of f(x), so the rows map to [0, 1];
//   - none: Offset 0, Scale 1;
//   - auto-sd: the log for a heavy-tailed feature, as auto; then min-max
//     (minmax or log) for a feature none of whose values is far out
//     (beyond Tukey's outer fences: more than 3 interquartile ranges below
//     the first quartile or above the third), and for the others the
//     feature minus its minimum, over the larger of √12 standard
//     deviations and the spread between its 1st and 99th percentiles
//     (model.NormMinSD, model.NormLogMinSD): a range that a few spikes
//     stretch no longer squeezes the typical values together; the rows are
//     not centred on the origin, as zscore would;
//   - auto: log for a heavy-tailed feature, minmax for any other. A feature is
//     heavy-tailed when all its values are ≥ 0 and either its max/median
//     ratio is at least [AutoLogRatio] (median > 0), or its skewness is above
//     [AutoLogSkew] and f lowers the skewness's magnitude (byte and packet
//     rates, say).
//
// auto maps to [0, 1] rather than centring the rows, on purpose: the
// estimation network's input rel = ‖x − x'‖ / ‖x‖ blows up for samples near
// the origin, and centred data puts the most typical samples there; on the
// seed's four-metric data zscore hides the anomalies among them (see the
// package documentation).
//
// Every transform also records the spread of f(x) as a standard deviation
// robust to rare spikes (model.Transform.Spread; see [robustSD]), in which
// explanations measure reconstruction errors. A feature with zero spread is an error naming it, except with
// [NormNone]. x must be finite (Train checks it first).
func FitNormalization(features []string, x []float64, kind string) ([]model.Transform, error) {
	ts, err := fitNormalization(features, x, kind)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return ts, nil
}

// fitNormalization is FitNormalization with errors not prefixed by "train: ".
func fitNormalization(features []string, x []float64, kind string) ([]model.Transform, error) {
	d := len(features)
	if d == 0 || len(x)%d != 0 {
		return nil, fmt.Errorf("normalisation: %d values for %d features", len(x), d)
	}
	n := len(x) / d
	if n == 0 {
		return nil, fmt.Errorf("normalisation: no rows")
	}
	col := make([]float64, n)
	lg := make([]float64, n)
	out := make([]model.Transform, d)
	for j, name := range features {
		for i := range n {
			col[i] = x[i*d+j]
			lg[i] = signedLog1p(col[i])
		}
		if kind == NormNone {
			out[j] = model.Transform{Kind: model.NormNone, Offset: 0, Scale: 1, Spread: robustSD(col)}
			continue
		}
		lo, hi := slices.Min(col), slices.Max(col)
		if lo == hi {
			return nil, fmt.Errorf("feature %q is constant (every row is %v): it carries no information; drop the column", name, lo)
		}
		k := kind
		switch k {
		case NormAuto:
			k = NormMinMax
			if autoLog(col, lg, lo, hi) {
				k = NormLog
			}
		case NormAutoSD:
			k = autoSD(col, lg, lo, hi)
		}
		var t model.Transform
		switch k {
		case string(model.NormMinSD):
			_, s := meanSD(col)
			t = model.Transform{Kind: model.NormMinSD, Offset: lo, Scale: max(sdWidth*s, centralSpread(col))}
		case string(model.NormLogMinSD):
			_, s := meanSD(lg)
			t = model.Transform{Kind: model.NormLogMinSD, Offset: slices.Min(lg), Scale: max(sdWidth*s, centralSpread(lg))}
		case NormZScore:
			m, s := meanSD(col)
			t = model.Transform{Kind: model.NormZScore, Offset: m, Scale: s}
		case NormLog:
			lo, hi := slices.Min(lg), slices.Max(lg)
			t = model.Transform{Kind: model.NormLog, Offset: lo, Scale: hi - lo}
		case NormMinMax:
			t = model.Transform{Kind: model.NormMinMax, Offset: lo, Scale: hi - lo}
		default:
			return nil, fmt.Errorf("normalisation %q, want auto, auto-sd, zscore, log, minmax or none", kind)
		}
		if !isFinite(t.Offset) || !isFinite(t.Scale) || t.Scale <= 0 {
			return nil, fmt.Errorf("feature %q: %s normalisation gives offset %v, scale %v: the values' spread is zero or out of range", name, k, t.Offset, t.Scale)
		}
		f := col
		if t.Kind == model.NormLog || t.Kind == model.NormLogMinSD {
			f = lg
		}
		t.Spread = robustSD(f)
		out[j] = t
	}
	return out, nil
}

// autoLog decides the auto normalisation of one column (see FitNormalization).
func autoLog(col, lg []float64, lo, hi float64) bool {
	if lo < 0 {
		return false
	}
	med := median(col)
	if med > 0 && hi/med >= AutoLogRatio {
		return true
	}
	sr := skewness(col)
	return sr > AutoLogSkew && math.Abs(skewness(lg)) < math.Abs(sr)
}

// autoSD decides the auto-sd normalisation of one column (see
// FitNormalization): the log when auto takes it, then min-max when no value
// is far out, min-sd otherwise.
func autoSD(col, lg []float64, lo, hi float64) string {
	f, k := col, NormMinMax
	if autoLog(col, lg, lo, hi) {
		f, k = lg, NormLog
	}
	if !farOut(f) {
		return k
	}
	if k == NormLog {
		return string(model.NormLogMinSD)
	}
	return string(model.NormMinSD)
}

// farOutFence is how many interquartile ranges beyond the quartiles a value
// lies to be far out: Tukey's outer fences.
const farOutFence = 3.0

// farOut reports whether any value of v is far out: below its first
// quartile or above its third by more than farOutFence interquartile ranges
// (nearest rank). A column that is one value most of the time (a zero
// interquartile range) and anything else now and then has far-out values.
func farOut(v []float64) bool {
	c := slices.Clone(v)
	slices.Sort(c)
	n := len(c)
	q1, q3 := c[n/4], c[3*n/4]
	iqr := q3 - q1
	return c[0] < q1-farOutFence*iqr || c[n-1] > q3+farOutFence*iqr
}

// centralSpreads are the central spreads robustSD tries in turn: the
// middle 50%, 80% and 98% of the values, each with the standard normal
// quantile of its upper end (the spread of a normal distribution is twice
// that many standard deviations).
var centralSpreads = [...]struct{ tail, z float64 }{
	{0.25, 0.6744897501960817},
	{0.10, 1.2815515655446004},
	{0.01, 2.3263478740408408},
}

// robustSD returns the spread of v as a standard deviation that rare spikes
// do not inflate: the interquartile range over that of a standard normal
// distribution (1.349), or, for a column that holds one value in half its
// rows or more, the same for the middle 80% or 98% of its values,
// whichever first is not zero; the standard deviation when all three are.
// A metric that is flat but for its spikes thus has a small spread, and
// its spikes count as far out when explanations weigh reconstruction
// errors by it.
func robustSD(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	n := len(c)
	for _, cs := range centralSpreads {
		lo, hi := int(cs.tail*float64(n)), min(n-1, int((1-cs.tail)*float64(n)))
		if w := c[hi] - c[lo]; w > 0 {
			return w / (2 * cs.z)
		}
	}
	_, sd := meanSD(v)
	return sd
}

// signedLog1p is sign(x)·log1p(|x|), the log transform's f.
func signedLog1p(x float64) float64 {
	if x < 0 {
		return -math.Log1p(-x)
	}
	return math.Log1p(x)
}

// meanSD returns the mean and the population standard deviation of v.
func meanSD(v []float64) (mean, sd float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := x - mean
		sd += d * d
	}
	return mean, math.Sqrt(sd / float64(len(v)))
}

// skewness returns the population skewness of v (0 when v has no spread).
func skewness(v []float64) float64 {
	m, sd := meanSD(v)
	if sd == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		d := (x - m) / sd
		s += d * d * d
	}
	return s / float64(len(v))
}

// median returns the median of v without changing it.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// normalise applies ts to the n×d row-major raw values x, into dst.
func normalise(dst, x []float64, ts []model.Transform) {
	d := len(ts)
	for i, v := range x {
		dst[i] = ts[i%d].Apply(v)
	}
}

// centralSpread returns the spread of v without its 1% lowest and 1%
// highest values: its 99th minus its 1st percentile (nearest rank).
func centralSpread(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	n := len(c)
	return c[n*99/100] - c[n/100]
}
