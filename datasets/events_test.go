package datasets

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestFlagged(t *testing.T) {
	tests := []struct {
		name string
		col  *Column
		want []bool
	}{
		{"float", FloatColumn("e", []float64{0, 1, -0.5, math.NaN(), math.Copysign(0, -1)}), []bool{false, true, true, true, false}},
		{"int", IntColumn("e", []int64{0, 1, -3}), []bool{false, true, true}},
		{"bool", BoolColumn("e", []bool{false, true}), []bool{false, true}},
		{
			"string",
			StringColumn("e", []string{"", "0", "false", "FALSE", " no ", "1", "true", "yes", "disk full", "0.0"}),
			[]bool{false, false, false, false, false, true, true, true, true, true},
		},
		{"time", TimeColumn("e", []time.Time{{}, time.Unix(0, 0)}), []bool{false, true}},
		{"nulls", &Column{Name: "e", Type: Int, Ints: []int64{1, 1}, Nulls: []bool{true, false}}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]bool, tt.col.Len())
			for i := range got {
				got[i] = Flagged(tt.col, i)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Flagged = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRemoveEvents(t *testing.T) {
	tab, err := NewTable(
		FloatColumn("cpu", []float64{10, 20, 30, 40, 50}),
		StringColumn("event", []string{"", "cpu high", "", "yes", "no"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	kept, removed, err := RemoveEvents(tab, DefaultEventColumn)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 2 || kept.Len() != 3 {
		t.Fatalf("removed %d, kept %d; want 2 and 3", removed, kept.Len())
	}
	cpu, _ := kept.Column("cpu")
	if !slices.Equal(cpu.Floats, []float64{10, 30, 50}) {
		t.Errorf("kept cpu = %v", cpu.Floats)
	}
	if got := []int{kept.SourceRow(0), kept.SourceRow(1), kept.SourceRow(2)}; !slices.Equal(got, []int{1, 3, 5}) {
		t.Errorf("source rows = %v, want [1 3 5]", got)
	}
	if tab.Len() != 5 {
		t.Error("RemoveEvents changed its input")
	}

	if _, _, err := RemoveEvents(tab, "alarm"); !errors.Is(err, ErrNoColumn) {
		t.Errorf("missing column: error %v, want ErrNoColumn", err)
	}
	all, err := NewTable(BoolColumn("event", []bool{true, true}))
	if err != nil {
		t.Fatal(err)
	}
	_, removed, err = RemoveEvents(all, "event")
	if !errors.Is(err, ErrNoRows) || removed != 2 {
		t.Errorf("all flagged: removed %d, error %v; want 2 and ErrNoRows", removed, err)
	}
	if want := `datasets: all 2 rows are flagged in event column "event"`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}
