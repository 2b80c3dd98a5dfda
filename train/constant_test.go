package train_test

import (
	"slices"
	"testing"

	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

func TestSplitConstant(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features []string
		x        []float64
		varying  []string
		xv       []float64
		constant []model.ConstantFeature
	}{
		{"none constant", []string{"a", "b"}, []float64{1, 2, 3, 4}, []string{"a", "b"}, []float64{1, 2, 3, 4}, nil},
		{"middle constant", []string{"a", "b", "c"}, []float64{1, 5, 2, 3, 5, 4, 6, 5, 7}, []string{"a", "c"}, []float64{1, 2, 3, 4, 6, 7},
			[]model.ConstantFeature{{Name: "b", Value: 5}}},
		{"three constant", []string{"z", "a", "o", "b"}, []float64{0, 1, 1, -2, 0, 2, 1, -2}, []string{"a"}, []float64{1, 2},
			[]model.ConstantFeature{{Name: "z", Value: 0}, {Name: "o", Value: 1}, {Name: "b", Value: -2}}},
		{"all constant", []string{"a"}, []float64{3, 3, 3}, []string{}, []float64{}, []model.ConstantFeature{{Name: "a", Value: 3}}},
		{"one row", []string{"a", "b"}, []float64{1, 2}, []string{"a", "b"}, []float64{1, 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, xv, c := train.SplitConstant(tc.features, tc.x)
			if !slices.Equal(v, tc.varying) || !slices.Equal(xv, tc.xv) || !slices.Equal(c, tc.constant) {
				t.Errorf("got %v %v %v, want %v %v %v", v, xv, c, tc.varying, tc.xv, tc.constant)
			}
		})
	}
}
