package model

import (
	"fmt"
	"math"
)

// Severity bands: a sample's [Calibration.Severity] falls in one of these
// ranges, and the band is what a person reads first.
//
//	normal    0 to 50    energy at or below the threshold
//	low      50 to 60    above the threshold, within the training energies
//	medium   60 to 75    above every training energy, by up to SeverityTau·ln(8/5) spans
//	high     75 to 90    up to SeverityTau·ln 4 spans above
//	critical 90 to 100   further out
//
// A span is q100 − q99, the width of the top percentile of training
// energies. The lower end of each range belongs to the band below, so a
// severity of exactly 50 is normal.
const (
	SeverityNormal = 50 // the largest severity of a normal sample
	SeverityLow    = 60 // the largest severity of a low one
	SeverityMedium = 75
	SeverityHigh   = 90
)

// SeverityTau is how many spans above the largest training energy the
// severity covers 63% of the way from 60 to 100 (see [Calibration.Severity]).
const SeverityTau = 4.0

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
// percentiles 0 to 100) and the threshold. It is non-decreasing in e, and
// above 50 exactly when e > c.Threshold:
//
//   - e ≤ Threshold: 50·P(e)/Percentile, where P(e) is e's percentile among
//     the training energies, interpolated linearly between the quantiles
//     (so the median training energy scores about 25);
//   - Threshold < e ≤ q100: 50 + 10·(e − Threshold)/(q100 − Threshold);
//   - e > q100: 60 + 40·(1 − exp(−u/[SeverityTau])), u = (e − q100)/span,
//     span = q100 − q99 (or q100 − Threshold, or 1, when that is zero): u is
//     how many spans the energy lies beyond the largest training energy.
//
// +Inf gives 100 and −Inf 0. A NaN energy (which a [Scorer] never gives)
// scores 100. Without quantiles (fewer than two; [Model.Validate] refuses
// such a model) it gives 0 up to the threshold and 100 above.
func (c *Calibration) Severity(e float64) float64 {
	q, thr := c.Quantiles, c.Threshold
	switch {
	case e != e:
		return 100
	case len(q) < 2:
		if e <= thr {
			return 0
		}
		return 100
	case e <= thr:
		if c.Percentile <= 0 {
			return 0
		}
		return SeverityNormal * min(percentileOf(q, e), c.Percentile) / c.Percentile
	}
	top := max(q[len(q)-1], thr)
	if e <= top {
		return SeverityNormal + (SeverityLow-SeverityNormal)*(e-thr)/(top-thr)
	}
	span := q[len(q)-1] - q[len(q)-2]
	if !(span > 0) {
		span = top - thr
	}
	if !(span > 0) || math.IsInf(span, 0) {
		span = 1
	}
	u := (e - top) / span
	return SeverityLow + (100-SeverityLow)*(-math.Expm1(-u/SeverityTau))
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
