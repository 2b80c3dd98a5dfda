package ingest

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestSampleDecoderOptional(t *testing.T) {
	d, err := NewSampleDecoderOptional([]string{"cpu", "mem"}, []string{"fan_fail", "cores"})
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		msg      string
		values   [][]float64
		optional [][]float64
		err      error
	}{
		{"none carried", `{"values":{"cpu":1,"mem":2}}`, [][]float64{{1, 2}}, [][]float64{{nan, nan}}, nil},
		{"both", `{"values":{"cores":8,"cpu":1,"mem":2,"fan_fail":0}}`, [][]float64{{1, 2}}, [][]float64{{0, 8}}, nil},
		{"batch, each its own", `[{"values":{"cpu":1,"mem":2,"cores":4}},{"values":{"cpu":3,"mem":4,"fan_fail":1}}]`,
			[][]float64{{1, 2}, {3, 4}}, [][]float64{{nan, 4}, {1, nan}}, nil},
		{"optional as text", `{"values":{"cpu":1,"mem":2,"cores":"8"}}`, nil, nil, ErrNotNumber},
		{"optional twice", `{"values":{"cpu":1,"mem":2,"cores":8,"cores":8}}`, nil, nil, ErrDuplicateFeature},
		{"feature still required", `{"values":{"cpu":1,"cores":8}}`, nil, nil, ErrMissingFeature},
		{"unknown still refused", `{"values":{"cpu":1,"mem":2,"disk":3}}`, nil, nil, ErrUnknownFeature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tc.msg), time.Unix(0, 0))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			for i := range got {
				if !slices.Equal(got[i].Values, tc.values[i]) {
					t.Errorf("sample %d values %v, want %v", i, got[i].Values, tc.values[i])
				}
				opt := got[i].Optional
				same := len(opt) == len(tc.optional[i])
				for j := range opt {
					a, b := opt[j], tc.optional[i][j]
					same = same && (a == b || math.IsNaN(a) && math.IsNaN(b))
				}
				if !same {
					t.Errorf("sample %d optional %v, want %v", i, opt, tc.optional[i])
				}
			}
		})
	}
	plain, _ := NewSampleDecoder([]string{"cpu", "mem"})
	s, err := plain.Decode([]byte(`{"values":{"cpu":1,"mem":2}}`), time.Unix(0, 0))
	if err != nil || s[0].Optional != nil {
		t.Errorf("a decoder without optional names: %v, %v", err, s[0].Optional)
	}
}
