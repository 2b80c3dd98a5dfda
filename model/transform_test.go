package model_test

import (
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/model"
)

func TestTransform(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    model.Transform
		x    float64
		want float64
	}{
		{"none", model.Transform{Kind: model.NormNone, Offset: 0, Scale: 1}, -3.5, -3.5},
		{"zscore", model.Transform{Kind: model.NormZScore, Offset: 50, Scale: 20}, 90, 2},
		{"zscore below mean", model.Transform{Kind: model.NormZScore, Offset: 50, Scale: 20}, 40, -0.5},
		{"minmax", model.Transform{Kind: model.NormMinMax, Offset: 10, Scale: 40}, 30, 0.5},
		{"log", model.Transform{Kind: model.NormLog, Offset: 1, Scale: 2}, math.E - 1, 0},
		{"log large", model.Transform{Kind: model.NormLog, Offset: 0, Scale: 1}, 1e6, math.Log(1e6 + 1)},
		{"log zero", model.Transform{Kind: model.NormLog, Offset: 0, Scale: 1}, 0, 0},
		{"min-sd", model.Transform{Kind: model.NormMinSD, Offset: 10, Scale: 4}, 30, 5},
		{"log-min-sd", model.Transform{Kind: model.NormLogMinSD, Offset: 1, Scale: 2}, math.Exp(5) - 1, 2},
		{"log-min-sd below min", model.Transform{Kind: model.NormLogMinSD, Offset: 3, Scale: 0.5}, math.E - 1, -4},
		{"log negative", model.Transform{Kind: model.NormLog, Offset: 0, Scale: 0.5}, -(math.E*math.E - 1), -4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.t.Apply(tc.x)
			if !scalar.EqualWithinAbsOrRel(got, tc.want, 1e-14, 1e-14) {
				t.Errorf("Apply(%v) = %v, want %v", tc.x, got, tc.want)
			}
			back := tc.t.Invert(got)
			if !scalar.EqualWithinAbsOrRel(back, tc.x, 1e-12, 1e-12) {
				t.Errorf("Invert(Apply(%v)) = %v", tc.x, back)
			}
			if err := tc.t.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestTransformValidate(t *testing.T) {
	for _, tc := range []struct {
		t    model.Transform
		want string
	}{
		{model.Transform{Kind: "sqrt", Scale: 1}, `unknown kind "sqrt"`},
		{model.Transform{Kind: "", Scale: 1}, `unknown kind ""`},
		{model.Transform{Kind: model.NormZScore, Scale: 0}, "scale is 0"},
		{model.Transform{Kind: model.NormZScore, Scale: -2}, "scale is -2"},
		{model.Transform{Kind: model.NormLog, Scale: math.Inf(1)}, "scale is +Inf"},
		{model.Transform{Kind: model.NormMinMax, Offset: math.NaN(), Scale: 1}, "offset is NaN"},
		{model.Transform{Kind: model.NormMinSD, Scale: 1, Spread: -0.5}, "spread is -0.5"},
		{model.Transform{Kind: model.NormMinSD, Scale: 1, Spread: math.NaN()}, "spread is NaN"},
		{model.Transform{Kind: model.NormLogMinSD, Scale: 1, Spread: math.Inf(1)}, "spread is +Inf"},
	} {
		err := tc.t.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want an error containing %q", tc.t, err, tc.want)
		}
	}
}
