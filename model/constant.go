package model

import (
	"fmt"
	"math"
	"slices"
)

// ConstantFeature is an input column that held one value in every training
// row. It carries no information the network could learn from, and min-max
// or z-score normalisation cannot scale it, so training leaves it out of the
// network and records it here: inputs may still carry it, and a value other
// than Value is a departure from everything the model saw (see
// [Model.Departures]).
type ConstantFeature struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Departure is a constant feature whose value in a sample differs from its
// training value.
type Departure struct {
	Name     string  // the constant feature
	Value    float64 // its training value
	Actual   float64 // the sample's value
	Constant int     // its index in Model.Constant
}

// ConstantIndex returns the index in m.Constant of the constant feature
// named name, and whether there is one.
func (m *Model) ConstantIndex(name string) (int, bool) {
	i := slices.IndexFunc(m.Constant, func(c ConstantFeature) bool { return c.Name == name })
	return i, i >= 0
}

// Departures appends to dst the constant features whose value in values
// differs from their training value, and returns dst. values holds one value
// per entry of m.Constant, in that order; a NaN stands for a value the sample
// does not carry and is not a departure. It panics when the lengths differ.
func (m *Model) Departures(dst []Departure, values []float64) []Departure {
	if len(values) != len(m.Constant) {
		panic(fmt.Sprintf("model: %d values for %d constant features", len(values), len(m.Constant)))
	}
	for i, v := range values {
		if c := m.Constant[i]; !math.IsNaN(v) && v != c.Value {
			dst = append(dst, Departure{Name: c.Name, Value: c.Value, Actual: v, Constant: i})
		}
	}
	return dst
}

// validateConstant checks that the constant features have non-empty names,
// used once among them and among the features, and finite values.
func (m *Model) validateConstant() error {
	names := make(map[string]int, len(m.Features)+len(m.Constant))
	for i, f := range m.Features {
		names[f] = i
	}
	for i, c := range m.Constant {
		field := fmt.Sprintf("constant %d", i)
		switch j, dup := names[c.Name]; {
		case c.Name == "":
			return invalid(field, "name is empty")
		case dup && j < len(m.Features):
			return invalid(field, "name %q is also feature %d", c.Name, j)
		case dup:
			return invalid(field, "name %q repeats constant %d", c.Name, j-len(m.Features))
		}
		if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
			return invalid(field, "%s: value is %v, want a finite number", c.Name, c.Value)
		}
		names[c.Name] = len(m.Features) + i
	}
	return nil
}

// DepartureSeverity returns the severity of a sample that departs from a
// constant feature: its value is rarer than every one of the
// Provenance.RowsUsed training rows, which [Calibration.Severity] would
// place at 50 + [SeverityPerDecade]·log10(tail·rows), tail being the share
// of training energies above the threshold. It is always above
// [SeverityNormal], so such a sample is an anomaly whatever its energy.
func (m *Model) DepartureSeverity() float64 {
	tail := (100 - m.Calibration.Percentile) / 100
	s := SeverityNormal + SeverityPerDecade*math.Log10(tail*float64(m.Provenance.RowsUsed))
	if !(s > SeverityNormal) {
		return math.Nextafter(SeverityNormal, 100)
	}
	return min(s, 100)
}

// AddDepartures puts deps, the sample's departures from m's constant
// features, at the front of ex, an explanation of the same sample by m: a
// departure is alone a reason to flag the sample, so the departed features
// share the whole anomaly equally and the network's features keep their
// actual and expected values with a share of 0. A departed feature's
// Contribution has Index len(m.Features) + its index in m.Constant,
// Expected its training value and Attribution 1. Set becomes len(deps);
// the network's energy does not depend on the constant features, so
// RepairedEnergy is ex.Energy, Resolved when that is at most the threshold.
// Nothing changes when deps is empty.
func (m *Model) AddDepartures(ex *Explanation, deps []Departure) {
	if len(deps) == 0 {
		return
	}
	for i := range ex.Features {
		ex.Features[i].Share = 0
	}
	share := 1 / float64(len(deps))
	front := make([]Contribution, len(deps), len(deps)+len(ex.Features))
	for i, d := range deps {
		front[i] = Contribution{Feature: d.Name, Index: len(m.Features) + d.Constant, Actual: d.Actual, Expected: d.Value, Share: share, Attribution: 1}
	}
	ex.Features = append(front, ex.Features...)
	ex.Set = len(deps)
	ex.RepairedEnergy = ex.Energy
	ex.Resolved = ex.Energy <= m.Calibration.Threshold
}
