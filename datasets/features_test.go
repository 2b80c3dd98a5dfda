package datasets

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// metricsTable returns a table shaped like a metrics export.
func metricsTable(t testing.TB) *Table {
	t.Helper()
	tab, err := NewTable(
		TimeColumn("Timestamp", make([]time.Time, 3)),
		IntColumn("ts", []int64{1, 2, 3}),
		StringColumn("host", []string{"a", "b", "c"}),
		FloatColumn("cpu_usage", []float64{1, 2, 3}),
		IntColumn("mem_bytes", []int64{10, 20, 30}),
		BoolColumn("up", []bool{true, true, false}),
		FloatColumn("disk_busy", []float64{0.5, 0.25, 0.125}),
		IntColumn("LABEL", []int64{0, 0, 1}),
		IntColumn("event", []int64{0, 1, 0}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestSelectFeatures(t *testing.T) {
	tab := metricsTable(t)
	tests := []struct {
		name    string
		names   []string
		exclude []string
		want    []string
		err     string
		is      error
	}{
		{"default", nil, DefaultExclude(), []string{"cpu_usage", "mem_bytes", "disk_busy"}, "", nil},
		{"custom exclude", nil, []string{"CPU_USAGE"}, []string{"ts", "mem_bytes", "disk_busy", "LABEL", "event"}, "", nil},
		{"no exclude", nil, nil, []string{"ts", "cpu_usage", "mem_bytes", "disk_busy", "LABEL", "event"}, "", nil},
		{"explicit, in the order given", []string{"disk_busy", "LABEL"}, DefaultExclude(), []string{"disk_busy", "LABEL"}, "", nil},
		{
			"missing", []string{"cpu_usage", "cpu"}, nil, nil,
			`datasets: no column "cpu" (columns: "Timestamp", "ts", "host", "cpu_usage", "mem_bytes", "up", "disk_busy", "LABEL", "event")`, ErrNoColumn,
		},
		{"text", []string{"host"}, nil, nil, `datasets: column "host" holds string values, not numbers`, ErrNotNumeric},
		{"bool", []string{"up"}, nil, nil, `datasets: column "up" holds bool values, not numbers`, ErrNotNumeric},
		{"twice", []string{"cpu_usage", "cpu_usage"}, nil, nil, `datasets: feature "cpu_usage" named twice`, nil},
		{
			"none left", nil, []string{"ts", "cpu_usage", "mem_bytes", "disk_busy", "label", "event"}, nil,
			"datasets: no numeric column to use as a feature", ErrNoFeatures,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectFeatures(tab, tt.names, tt.exclude)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v does not match %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("features = %q, want %q", got, tt.want)
			}
		})
	}
	empty := tab.Take(nil)
	if _, err := SelectFeatures(empty, nil, DefaultExclude()); !errors.Is(err, ErrNoRows) {
		t.Errorf("no rows: error %v, want ErrNoRows", err)
	}
	// The default list is a fresh copy each time.
	d := DefaultExclude()
	d[0] = "cpu_usage"
	if DefaultExclude()[0] != "timestamp" {
		t.Error("DefaultExclude returned shared state")
	}
}

func TestMatrix(t *testing.T) {
	tab := metricsTable(t)
	x, err := Matrix(tab, []string{"disk_busy", "mem_bytes", "cpu_usage"})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.5, 10, 1, 0.25, 20, 2, 0.125, 30, 3}
	if !slices.Equal(x, want) {
		t.Errorf("Matrix = %v, want %v", x, want)
	}
	// The matrix is a copy.
	x[0] = 99
	if c, _ := tab.Column("disk_busy"); c.Floats[0] != 0.5 {
		t.Error("Matrix shares memory with the table")
	}
}

func TestMatrixErrors(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		col  *Column
		rows []int // rows taken before Matrix, nil for all
		want string
		is   error
	}{
		{"nan", FloatColumn("cpu", []float64{1, nan, 3}), nil, `datasets: row 2, column "cpu": NaN is not a finite number`, nil},
		{"inf", FloatColumn("cpu", []float64{1, 2, math.Inf(-1)}), nil, `datasets: row 3, column "cpu": -Inf is not a finite number`, nil},
		{"null", &Column{Name: "cpu", Type: Int, Ints: []int64{1, 2, 3}, Nulls: []bool{false, false, true}}, nil, `datasets: row 3, column "cpu": missing value`, nil},
		{"source rows after Take", FloatColumn("cpu", []float64{nan, 1, 2}), []int{1, 2, 0}, `datasets: row 1, column "cpu": NaN is not a finite number`, nil},
		{"no rows", FloatColumn("cpu", []float64{1}), []int{}, "datasets: no data rows", ErrNoRows},
		{"text", StringColumn("cpu", []string{"a"}), nil, `datasets: column "cpu" holds string values, not numbers`, ErrNotNumeric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(FloatColumn("ok", make([]float64, tt.col.Len())), tt.col)
			if err != nil {
				t.Fatal(err)
			}
			if tt.rows != nil {
				tab = tab.Take(tt.rows)
			}
			_, err = Matrix(tab, []string{"ok", "cpu"})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
		})
	}
	tab := metricsTable(t)
	if _, err := Matrix(tab, nil); !errors.Is(err, ErrNoFeatures) {
		t.Errorf("no names: error %v, want ErrNoFeatures", err)
	}
	if _, err := Matrix(tab, []string{"gpu"}); !errors.Is(err, ErrNoColumn) {
		t.Errorf("missing column: error %v, want ErrNoColumn", err)
	}
}
