package model

import (
	"fmt"
	"math"
)

// Severity bands: a sample's [Calibration.Severity] falls in one of these
// ranges, and the band is what a person reads first. Above the threshold,
// every 10 points mean an energy ten times rarer among the training
// energies (see [Calibration.Severity]); with the default threshold at the
// 99th percentile:
//
//	normal    0 to 50    energy at or below the threshold
//	low      50 to 60    up to 10 times rarer than the threshold (1 in 1,000)
//	medium   60 to 75    up to 10^2.5 times rarer (1 in 30,000)
//	high     75 to 90    up to 10^4 times rarer (1 in 1,000,000)
//	critical 90 to 100   rarer still
//
// The upper end of each range belongs to the band, so a severity of exactly
// 50 is normal.
const (
	SeverityNormal = 50 // the largest severity of a normal sample
	SeverityLow    = 60 // the largest severity of a low one
	SeverityMedium = 75 // the largest severity of a medium one
	SeverityHigh   = 90 // the largest severity of a high one
)

// SeverityPerDecade is the number of severity points per tenfold drop of
// the training tail probability above the threshold.
const SeverityPerDecade = 10

// Band is a severity range with a name; the zero Band is BandNormal.
type Band uint8

// Severity bands, from the least severe.
const (
	BandNormal Band = iota
	BandLow
	BandMedium
	BandHigh
	BandCritical
)

var bandNames = [...]string{"normal", "low", "medium", "high", "critical"}

// String returns the band's name: normal, low, medium, high or critical.
func (b Band) String() string {
	if int(b) < len(bandNames) {
		return bandNames[b]
	}
	return fmt.Sprintf("Band(%d)", uint8(b))
}

// MarshalText returns the band's name, so that it encodes as a JSON string.
func (b Band) MarshalText() ([]byte, error) {
	if int(b) >= len(bandNames) {
		return nil, fmt.Errorf("model: band %d out of range", uint8(b))
	}
	return []byte(bandNames[b]), nil
}

// UnmarshalText parses a band's name.
func (b *Band) UnmarshalText(text []byte) error {
	for i, n := range bandNames {
		if string(text) == n {
			*b = Band(i)
			return nil
		}
	}
	return fmt.Errorf("model: unknown severity band %q (want normal, low, medium, high or critical)", text)
}

// BandOf returns the band a severity (0 to 100) falls in.
func BandOf(severity float64) Band {
	switch {
	case severity <= SeverityNormal:
		return BandNormal
	case severity <= SeverityLow:
		return BandLow
	case severity <= SeverityMedium:
		return BandMedium
	case severity <= SeverityHigh:
		return BandHigh
	}
	return BandCritical
}

// Severity maps an energy e to a score from 0 to 100 that a person can
// read, from its position among the training energies (c.Quantiles, at
// percentiles 0 to 100) and the threshold (c.Threshold, at percentile
// c.Percentile = P). It is non-decreasing in e, and above 50 exactly when
// e > c.Threshold:
//
//   - e ≤ Threshold: 50·F(e)/P, where F(e) is e's percentile among the
//     training energies, interpolated linearly between the quantiles (so
//     the median training energy scores about 25);
//   - e > Threshold: 50 + 10·(e − Threshold)/s, at most 100, where s is the
//     energy over which the training energies' upper tail thins tenfold
//     just below the threshold: s = Threshold − q(100 − 10·(100 − P)), the
//     span from the 90th to the 99th percentile for P = 99 (scaled to one
//     decade when that percentile would fall below 0). It reads the tail as
//     exponential, so every 10 points above 50 mean an energy ten times
//     rarer: 60 is 1 in 1,000 training samples for P = 99, 70 is 1 in
//     10,000.
//
// The tail scale comes from quantiles well inside the training
// distribution, not from its largest energy q100, which is a single
// sample: on generated data q100 − q99 ranged from 6.2 to 23.8 over ten
// seeds while q99 − q90 stayed between 3.5 and 7.5 (docs/explanations.md).
//
// +Inf gives 100 and −Inf 0; a NaN energy (which a [Scorer] never gives)
// gives 100. Without quantiles (fewer than two; [Model.Validate] refuses
// such a model) it gives 0 up to the threshold and 100 above.
func (c *Calibration) Severity(e float64) float64 {
	q, thr, p := c.Quantiles, c.Threshold, c.Percentile
	switch {
	case e != e:
		return 100
	case len(q) < 2:
		if e <= thr {
			return 0
		}
		return 100
	case e <= thr:
		if !(p > 0) {
			return 0
		}
		return SeverityNormal * min(percentileOf(q, e), p) / p
	}
	u := (e - thr) / c.tailScale()
	// Just above the threshold 50 + 10u rounds to 50: keep it above.
	return min(100, max(SeverityNormal+SeverityPerDecade*u, math.Nextafter(SeverityNormal, 100)))
}

// tailScale returns the energy over which the training tail probability
// falls tenfold just below the threshold (see [Calibration.Severity]), or 1
// when the quantiles give no positive span.
func (c *Calibration) tailScale() float64 {
	tail := max(100-c.Percentile, 0.01) // percent of training energies above the threshold
	lo := max(0, 100-10*tail)
	decades := math.Log10((100 - lo) / tail)
	s := (c.Threshold - quantileAt(c.Quantiles, lo)) / decades
	if !(s > 0) || math.IsInf(s, 0) {
		return 1
	}
	return s
}

// quantileAt interpolates the quantiles q, given at evenly spaced
// percentiles from 0 to 100, at percentile p.
func quantileAt(q []float64, p float64) float64 {
	h := p / 100 * float64(len(q)-1)
	i := int(h)
	if i >= len(q)-1 {
		return q[len(q)-1]
	}
	return q[i] + (h-float64(i))*(q[i+1]-q[i])
}

// percentileOf returns e's percentile (0 to 100) among the quantiles q at
// evenly spaced percentiles, interpolated linearly; e ≤ q[0] gives 0 and
// e ≥ q[n−1] gives 100.
func percentileOf(q []float64, e float64) float64 {
	n := len(q)
	if e <= q[0] {
		return 0
	}
	if e >= q[n-1] {
		return 100
	}
	// Binary search for the first quantile ≥ e: q[lo−1] < e ≤ q[lo].
	lo, hi := 1, n-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if q[mid] < e {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	a, b := q[lo-1], q[lo]
	frac := 1.0
	if b > a {
		frac = (e - a) / (b - a)
	}
	return (float64(lo-1) + frac) * 100 / float64(n-1)
}
