package model_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

func TestConstantValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		constant []model.ConstantFeature
		want     string // in the error; "" for valid
	}{
		{"none", nil, ""},
		{"two", []model.ConstantFeature{{"fan_fail", 0}, {"cores", 8}}, ""},
		{"empty name", []model.ConstantFeature{{"", 0}}, "constant 0: name is empty"},
		{"clashes with a feature", []model.ConstantFeature{{"cpu_usage", 0}}, `name "cpu_usage" is also feature 0`},
		{"repeated", []model.ConstantFeature{{"a", 0}, {"b", 1}, {"a", 2}}, `constant 2: name "a" repeats constant 0`},
		{"NaN", []model.ConstantFeature{{"a", math.NaN()}}, "want a finite number"},
		{"Inf", []model.ConstantFeature{{"a", math.Inf(-1)}}, "want a finite number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := modeltest.Metrics4(1)
			m.Constant = tc.constant
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := model.Encode(&buf, m); err != nil {
					t.Fatal(err)
				}
				got, err := model.Decode(&buf)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Constant, m.Constant) || !slices.Equal(got.Clone().Constant, m.Constant) {
					t.Errorf("round trip: %v, want %v", got.Constant, m.Constant)
				}
				return
			}
			if !errors.Is(err, model.ErrInvalid) || err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("Validate: %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

func TestDepartures(t *testing.T) {
	m := modeltest.Metrics4(1)
	m.Constant = []model.ConstantFeature{{"fan_fail", 0}, {"cores", 8}}
	for _, tc := range []struct {
		name   string
		values []float64
		want   []string
	}{
		{"at training values", []float64{0, 8}, nil},
		{"absent", []float64{math.NaN(), math.NaN()}, nil},
		{"negative zero is zero", []float64{math.Copysign(0, -1), 8}, nil},
		{"one moved", []float64{0, 16}, []string{"cores"}},
		{"both moved", []float64{1e-9, 7}, []string{"fan_fail", "cores"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps := m.Departures(nil, tc.values)
			var names []string
			for _, d := range deps {
				names = append(names, d.Name)
				if d.Actual != tc.values[d.Constant] || d.Value != m.Constant[d.Constant].Value {
					t.Errorf("departure %+v does not match its values", d)
				}
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("departures %v, want %v", names, tc.want)
			}
			ex := model.Explanation{Energy: m.Calibration.Threshold - 1, Features: []model.Contribution{{Feature: "cpu_usage", Share: 0.7}, {Feature: "mem_usage", Share: 0.3}}}
			m.AddDepartures(&ex, deps)
			if len(deps) == 0 {
				if ex.Features[0].Share != 0.7 {
					t.Error("AddDepartures changed an explanation without departures")
				}
				return
			}
			sum := 0.0
			for i, c := range ex.Features {
				sum += c.Share
				if i < len(deps) && (c.Feature != tc.want[i] || c.Index != len(m.Features)+deps[i].Constant) {
					t.Errorf("contribution %d: %+v", i, c)
				}
			}
			if math.Abs(sum-1) > 1e-12 || ex.Set != len(deps) || !ex.Resolved {
				t.Errorf("shares sum to %v, set %d, resolved %v", sum, ex.Set, ex.Resolved)
			}
		})
	}
}

func TestDepartureSeverity(t *testing.T) {
	m := modeltest.Metrics4(1)
	for _, tc := range []struct {
		rows       int
		percentile float64
		want       float64
	}{
		{1000, 99, 60},   // 10 training rows above the threshold: one decade rarer
		{100000, 99, 80}, // three decades
		{10, 99, 50},     // never at or below normal
		{1000, 99.9, 50}, // the threshold is already 1 in 1,000
		{1e12, 50, 100},  // capped
	} {
		m.Provenance.RowsUsed, m.Calibration.Percentile = tc.rows, tc.percentile
		got := m.DepartureSeverity()
		if got <= model.SeverityNormal || math.Abs(got-tc.want) > 1e-9 && !(tc.want == 50 && got == math.Nextafter(50, 100)) {
			t.Errorf("%d rows, percentile %v: severity %v, want %v (above %v)", tc.rows, tc.percentile, got, tc.want, model.SeverityNormal)
		}
	}
}
