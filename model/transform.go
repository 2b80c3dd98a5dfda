package model

import (
	"fmt"
	"math"
)

// normCode is a NormKind as a small integer, for the scorer's inner loop.
type normCode uint8

const (
	codeAffine normCode = iota // none, zscore, minmax: (x - Offset) / Scale
	codeLog                    // (sign(x)·log1p(|x|) - Offset) / Scale
	codeUnknown
)

func (k NormKind) code() normCode {
	switch k {
	case NormNone, NormZScore, NormMinMax, NormMinSD:
		return codeAffine
	case NormLog, NormLogMinSD:
		return codeLog
	}
	return codeUnknown
}

// Valid reports whether k is one of the declared normalisation kinds.
func (k NormKind) Valid() bool { return k.code() != codeUnknown }

// signedLog1p is sign(x)·log1p(|x|), the log transform's f.
func signedLog1p(x float64) float64 {
	if x < 0 {
		return -math.Log1p(-x)
	}
	return math.Log1p(x)
}

// signedExpm1 is sign(y)·expm1(|y|), the inverse of signedLog1p.
func signedExpm1(y float64) float64 {
	if y < 0 {
		return -math.Expm1(-y)
	}
	return math.Expm1(y)
}

// apply and invert are the one implementation of the transforms; Transform's
// methods and the scorer both call them so that they agree bit for bit.
func apply(c normCode, offset, scale, x float64) float64 {
	if c == codeLog {
		x = signedLog1p(x)
	}
	return (x - offset) / scale
}

func invert(c normCode, offset, scale, y float64) float64 {
	v := y*scale + offset
	if c == codeLog {
		v = signedExpm1(v)
	}
	return v
}

// Apply maps a raw value x to the normalised value (f(x) - Offset) / Scale,
// where f is the identity for [NormNone], [NormZScore], [NormMinMax] and
// [NormMinSD], and
// sign(x)·log1p(|x|) for [NormLog] and [NormLogMinSD]. An unknown kind is treated as the
// identity; [Model.Validate] refuses unknown kinds.
func (t Transform) Apply(x float64) float64 { return apply(t.Kind.code(), t.Offset, t.Scale, x) }

// Invert maps a normalised value y back to the raw scale: f⁻¹(y·Scale + Offset),
// with f⁻¹(v) = sign(v)·expm1(|v|) for [NormLog] and [NormLogMinSD]. Invert(Apply(x)) equals x up
// to rounding.
func (t Transform) Invert(y float64) float64 { return invert(t.Kind.code(), t.Offset, t.Scale, y) }

// Validate reports whether t has a known kind, a finite Offset, a finite,
// positive Scale and a finite Spread that is not negative.
func (t Transform) Validate() error {
	switch {
	case !isFinite(t.Spread) || t.Spread < 0:
		return fmt.Errorf("spread is %v, want a finite number >= 0", t.Spread)
	case !t.Kind.Valid():
		return fmt.Errorf("unknown kind %q (want none, zscore, minmax, min-sd, log or log-min-sd)", t.Kind)
	case !isFinite(t.Offset):
		return fmt.Errorf("offset is %v, want a finite number", t.Offset)
	case !isFinite(t.Scale) || t.Scale <= 0:
		return fmt.Errorf("scale is %v, want a finite number > 0", t.Scale)
	}
	return nil
}

// isFinite reports whether x is neither NaN nor ±Inf.
func isFinite(x float64) bool { return x-x == 0 }
