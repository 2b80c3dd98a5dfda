package modeltest_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

func TestNewRandom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   func(seed uint64) *model.Model
		d, code int
		k       int
	}{
		{"metrics4", modeltest.Metrics4, 4, 1, 4},
		{"kddcup", modeltest.KDDCup, 118, 1, 4},
		{"custom", func(seed uint64) *model.Model {
			return modeltest.NewRandom(modeltest.Names("m", 5), []int{3, 2}, nil, 2, seed)
		}, 5, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.build(1)
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(m.Features) != tc.d || m.CodeSize() != tc.code || m.GMM.K != tc.k || m.GMM.Dim != tc.code+2 {
				t.Errorf("got %d features, code %d, K %d, Dim %d", len(m.Features), m.CodeSize(), m.GMM.K, m.GMM.Dim)
			}
			if !reflect.DeepEqual(m, tc.build(1)) {
				t.Error("the same seed gave another model")
			}
			if reflect.DeepEqual(m.Encoder, tc.build(2).Encoder) {
				t.Error("another seed gave the same weights")
			}
			// The threshold is the 99th percentile of the calibration
			// energies, so about 1% of like inputs are anomalies.
			s, err := model.NewScorer(m)
			if err != nil {
				t.Fatal(err)
			}
			const n = 4000
			x := modeltest.Inputs(m, n, 99)
			out := make([]model.Result, n)
			if err := s.ScoreBatch(s.NewWorkspace(n), x, out); err != nil {
				t.Fatal(err)
			}
			flagged := 0
			for _, r := range out {
				if r.Anomaly {
					flagged++
				}
			}
			if flagged < n/200 || flagged > n/40 {
				t.Errorf("%d of %d inputs flagged, want about 1%%", flagged, n)
			}
		})
	}
}

func TestInputsDeterministic(t *testing.T) {
	m := modeltest.Metrics4(1)
	a, b := modeltest.Inputs(m, 10, 5), modeltest.Inputs(m, 10, 5)
	if len(a) != 40 || !reflect.DeepEqual(a, b) {
		t.Errorf("Inputs is not deterministic or has the wrong size (%d)", len(a))
	}
	if reflect.DeepEqual(a, modeltest.Inputs(m, 10, 6)) {
		t.Error("another seed gave the same inputs")
	}
}

func TestNewRandomPanicsOnBadArchitecture(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features []string
		encoder  []int
		k        int
	}{
		{"no features", nil, []int{1}, 1},
		{"no encoder", []string{"a"}, nil, 1},
		{"zero k", []string{"a"}, []int{1}, 0},
		{"zero layer", []string{"a"}, []int{0}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			modeltest.NewRandom(tc.features, tc.encoder, nil, tc.k, 1)
		})
	}
}

func TestMaxSizeBody(t *testing.T) {
	m := modeltest.Metrics4(1)
	for _, c := range []struct{ n, size int }{{1, 1000}, {100, 64 << 10}, {10, 100 << 10}} {
		body, err := modeltest.MaxSizeBody(m, c.n, c.size)
		if err != nil {
			t.Fatal(err)
		}
		var samples []struct {
			Host   string             `json:"host"`
			Values map[string]float64 `json:"values"`
		}
		if err := json.Unmarshal(body, &samples); err != nil {
			t.Fatalf("n %d size %d: %v", c.n, c.size, err)
		}
		if len(body) > c.size || len(body) < c.size-c.n || len(samples) != c.n {
			t.Errorf("n %d size %d: %d bytes, %d samples", c.n, c.size, len(body), len(samples))
		}
		if h := len(samples[0].Host); h < 1 || h > 255 || len(samples[0].Values) != len(m.Features) {
			t.Errorf("n %d size %d: host of %d bytes, %d values", c.n, c.size, h, len(samples[0].Values))
		}
	}
	if _, err := modeltest.MaxSizeBody(m, 100, 500); err == nil {
		t.Error("100 samples in 500 bytes: no error")
	}
}
