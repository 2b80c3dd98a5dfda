package datasets

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	l := []bool{true, true, false, false, true, false, true, true, true}
	want := []Segment{{0, 2}, {4, 5}, {6, 9}}
	if got := Segments(l); !slices.Equal(got, want) {
		t.Errorf("Segments = %v, want %v", got, want)
	}
	if got := Segments([]bool{false, false}); got != nil {
		t.Errorf("no anomalies: Segments = %v, want none", got)
	}
}

func TestPointAdjust(t *testing.T) {
	// Two segments: rows 1-3 (one point above 0.5) and rows 6-7 (none).
	labels := []bool{false, true, true, true, false, false, true, true}
	scores := []float64{0.6, 0.1, 0.9, 0.2, 0.3, 0.1, 0.4, 0.2}
	adj, err := PointAdjust(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.6, 0.9, 0.9, 0.9, 0.3, 0.1, 0.4, 0.4}; !slices.Equal(adj, want) {
		t.Errorf("PointAdjust = %v, want %v", adj, want)
	}
	// At 0.5: point-wise TP 1 FP 1 FN 4; adjusted TP 3 FP 1 FN 2.
	d, err := Detect(adj, labels, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if d.TP != 3 || d.FP != 1 || d.FN != 2 {
		t.Errorf("adjusted at 0.5: TP %d FP %d FN %d, want 3 1 2", d.TP, d.FP, d.FN)
	}
	if _, err := PointAdjust(scores[:3], labels); !errors.Is(err, ErrProtocol) {
		t.Errorf("lengths differ: err = %v, want ErrProtocol", err)
	}
}

// bestF1Naive tries every score as the lowest flagged one, with Detect.
func bestF1Naive(scores []float64, labels []bool) float64 {
	best := 0.0
	for _, s := range scores {
		d, _ := Detect(scores, labels, math.Nextafter(s, math.Inf(-1)))
		best = max(best, d.F1)
	}
	return best
}

func TestBestF1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float64
		labels []bool
	}{
		{"perfect", []float64{1, 2, 3, 4}, []bool{false, false, true, true}},
		{"mixed", []float64{0.9, 0.8, 0.7, 0.6, 0.5, 0.4}, []bool{true, false, true, true, false, false}},
		{"ties", []float64{1, 1, 1, 0, 0}, []bool{true, false, true, true, false}},
		{"all low", []float64{0.1, 0.9, 0.8}, []bool{true, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BestF1(tc.scores, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			if want := bestF1Naive(tc.scores, tc.labels); math.Abs(got.F1-want) > 1e-12 {
				t.Errorf("BestF1 = %g, naive %g", got.F1, want)
			}
			again, err := Detect(tc.scores, tc.labels, got.Threshold)
			if err != nil {
				t.Fatal(err)
			}
			if again.F1 != got.F1 || again.TP != got.TP || again.FP != got.FP {
				t.Errorf("Detect at the returned threshold %g: %+v, BestF1 %+v", got.Threshold, again, got)
			}
		})
	}
	if _, err := BestF1([]float64{1, 2}, []bool{false, false}); !errors.Is(err, ErrProtocol) {
		t.Errorf("no anomalies: err = %v, want ErrProtocol", err)
	}
}

func TestParseCauses(t *testing.T) {
	got, err := ParseCauses(strings.NewReader("246-252:1,2,38\n\n2884-2888:6\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Start != 246 || got[0].End != 252 || !slices.Equal(got[0].Dims, []int{0, 1, 37}) ||
		got[1].Start != 2884 || !slices.Equal(got[1].Dims, []int{5}) {
		t.Errorf("ParseCauses = %+v", got)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"no colon", "1-2:3\n5-6 7\n", "line 2"},
		{"bad dim", "1-2:3,x\n", "line 1"},
		{"zero dim", "1-2:0\n", "line 1"},
		{"empty span", "\n\n7-7:1\n", "line 3"},
		{"no dash", "12:1\n", "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCauses(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestHitRate(t *testing.T) {
	ranking := []int{4, 0, 7, 2, 9, 1}
	for _, tc := range []struct {
		name  string
		truth []int
		p     float64
		want  float64
	}{
		{"top hit", []int{4}, 1, 1},
		{"second, @100%", []int{0}, 1, 0},
		{"second, @150% of one is still one", []int{0}, 1.5, 0},
		{"two of two", []int{0, 4}, 1, 1},
		{"one of two @100%", []int{4, 2}, 1, 0.5},
		{"two of two @150% (top 3)", []int{4, 7}, 1.5, 1},
		{"four named, top 6", []int{1, 2, 3, 9}, 1.5, 0.75},
		{"not ranked", []int{3}, 1.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HitRate(ranking, tc.truth, tc.p); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("HitRate = %g, want %g", got, tc.want)
			}
		})
	}
}

// TestSharedSMDCauses parses the interpretation files of the Server Machine
// Dataset and checks each segment lies inside its test file's anomalies.
func TestSharedSMDCauses(t *testing.T) {
	for m, lines := range map[string]int{"1-6": 30, "1-7": 13, "2-2": 11, "2-7": 20, "2-8": 1, "3-4": 8} {
		t.Run(m, func(t *testing.T) {
			causes, err := ReadCauses(sharedFile(t, "smd/smd-"+m+"-interpretation.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if len(causes) != lines {
				t.Errorf("%d segments, want %d", len(causes), lines)
			}
			tab, err := ReadFile(sharedFile(t, "smd/smd-"+m+"-test.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			labels, err := Labels(tab, "label")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range causes {
				if c.End > len(labels) || !labels[c.Start] || !labels[c.End-1] {
					t.Errorf("segment %d-%d: not inside the %d labelled rows' anomalies", c.Start, c.End, len(labels))
				}
				for _, d := range c.Dims {
					if d >= 38 {
						t.Errorf("segment %d-%d names metric %d of 38", c.Start, c.End, d+1)
					}
				}
			}
		})
	}
}
