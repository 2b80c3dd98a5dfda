package datasets

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// sharedDir holds the benchmark data sets, beside the repository (see
// ../../shared/datasets/README.md); it is absent on a fresh clone elsewhere.
const sharedDir = "../../shared/datasets"

// sharedFile returns the path of a shared data set, or skips the test when it
// is absent.
func sharedFile(tb testing.TB, name string) string {
	tb.Helper()
	path := filepath.Join(sharedDir, name)
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("benchmark data set %s not found (it lives outside the repository, in %s): %v", name, sharedDir, err)
	}
	return path
}

// TestSharedDatasets reads the benchmark files and checks the row, feature and
// anomaly counts given in their README.
func TestSharedDatasets(t *testing.T) {
	tests := []struct {
		file           string
		rows, features int
		anomalies      int
	}{
		{"kddcup99.parquet", 494021, 118, 97278},
		{"thyroid.parquet", 3772, 6, 93},
		{"arrhythmia.parquet", 452, 274, 66},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := sharedFile(t, tt.file)
			tab, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tab.Len() != tt.rows {
				t.Errorf("rows = %d, want %d", tab.Len(), tt.rows)
			}
			features, err := SelectFeatures(tab, nil, DefaultExclude())
			if err != nil {
				t.Fatal(err)
			}
			if len(features) != tt.features {
				t.Errorf("features = %d, want %d", len(features), tt.features)
			}
			if got := len(tab.Names()); got != tt.features+1 {
				t.Errorf("columns = %d, want %d features + label", got, tt.features)
			}
			labels, err := Matrix(tab, []string{"label"})
			if err != nil {
				t.Fatal(err)
			}
			anomalies := 0
			for _, l := range labels {
				switch l {
				case 1:
					anomalies++
				case 0:
				default:
					t.Fatalf("label %v, want 0 or 1", l)
				}
			}
			if anomalies != tt.anomalies {
				t.Errorf("anomalies = %d, want %d", anomalies, tt.anomalies)
			}
			// The whole matrix of kddcup99 is 466 MB; check the values in
			// place there, and build the matrix for the smaller files.
			if tt.rows*tt.features > 1e7 {
				for _, name := range features {
					c, _ := tab.Column(name)
					for i := range tab.Len() {
						if v, ok := c.Float64(i); !ok || math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("row %d, column %q: %v is not a finite number", i+1, name, v)
						}
					}
				}
				return
			}
			x, err := Matrix(tab, features)
			if err != nil {
				t.Fatal(err)
			}
			if len(x) != tt.rows*tt.features {
				t.Errorf("matrix has %d values, want %d", len(x), tt.rows*tt.features)
			}
		})
	}
}

// BenchmarkReadKDD reads kddcup99.parquet (494,021 rows × 119 columns).
func BenchmarkReadKDD(b *testing.B) {
	path := sharedFile(b, "kddcup99.parquet")
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
