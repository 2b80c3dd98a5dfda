package datasets

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleTable returns a small table with one column of each type, nulls in
// two of them, and awkward values (NaN, ±Inf, -0, quotes, newlines, unicode).
func sampleTable(t testing.TB) *Table {
	t.Helper()
	ts := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	tab, err := NewTable(
		TimeColumn("timestamp", []time.Time{ts, ts.Add(time.Minute), ts.Add(2 * time.Minute), ts.Add(3 * time.Minute)}),
		StringColumn("host", []string{"web-1", "db \"primary\"", "line\nbreak, comma", "ünïcode"}),
		FloatColumn("cpu_usage", []float64{37.5, 0, -0.125, 1e-9}),
		&Column{Name: "net_in_bps", Type: Float, Floats: []float64{1.2e6, 0, 3.5e7, 1e300}, Nulls: []bool{false, true, false, false}},
		IntColumn("label", []int64{0, 1, 0, math.MinInt64}),
		BoolColumn("event", []bool{false, true, false, true}),
		&Column{Name: "note", Type: String, Strings: []string{"", "", "x", ""}, Nulls: []bool{true, false, false, false}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// assertEqualTables fails unless a and b have the same columns, types,
// values (NaN equal to NaN, times equal as instants) and nulls.
func assertEqualTables(t testing.TB, got, want *Table) {
	t.Helper()
	if !slices.Equal(got.Names(), want.Names()) {
		t.Fatalf("columns = %q, want %q", got.Names(), want.Names())
	}
	if got.Len() != want.Len() {
		t.Fatalf("rows = %d, want %d", got.Len(), want.Len())
	}
	for _, wc := range want.Columns() {
		gc, _ := got.Column(wc.Name)
		if gc.Type != wc.Type {
			t.Errorf("column %q: type %v, want %v", wc.Name, gc.Type, wc.Type)
			continue
		}
		for i := range want.Len() {
			if gc.IsNull(i) != wc.IsNull(i) {
				t.Errorf("column %q row %d: null %v, want %v", wc.Name, i, gc.IsNull(i), wc.IsNull(i))
				continue
			}
			if wc.IsNull(i) {
				continue
			}
			var same bool
			switch wc.Type {
			case Float:
				g, w := gc.Floats[i], wc.Floats[i]
				same = g == w && math.Signbit(g) == math.Signbit(w) || math.IsNaN(g) && math.IsNaN(w)
			case Int:
				same = gc.Ints[i] == wc.Ints[i]
			case Bool:
				same = gc.Bools[i] == wc.Bools[i]
			case String:
				same = gc.Strings[i] == wc.Strings[i]
			case Time:
				same = gc.Times[i].Equal(wc.Times[i])
			}
			if !same {
				t.Errorf("column %q row %d: %q, want %q", wc.Name, i, gc.Text(i), wc.Text(i))
			}
		}
	}
}

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		name string
		cols []*Column
		want string
	}{
		{"duplicate", []*Column{FloatColumn("a", []float64{1}), IntColumn("a", []int64{1})}, `column "a" already exists`},
		{"length", []*Column{FloatColumn("a", []float64{1}), IntColumn("b", []int64{1, 2})}, `column "b" has 2 values, table has 1 rows`},
		{"no name", []*Column{FloatColumn("", []float64{1})}, "column without a name"},
		{"nil", []*Column{nil}, "nil column"},
		{"unknown type", []*Column{{Name: "a", Floats: []float64{1}}}, `column "a": unknown type`},
		{"wrong slice", []*Column{{Name: "a", Type: Int, Floats: []float64{1}}}, `column "a": type int but other value slices set`},
		{"two slices", []*Column{{Name: "a", Type: Float, Floats: []float64{1}, Ints: []int64{1}}}, "other value slices set"},
		{"nulls length", []*Column{{Name: "a", Type: Float, Floats: []float64{1}, Nulls: []bool{false, true}}}, `column "a": 2 nulls flags for 1 values`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(tt.cols...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTable: error %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "datasets: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestTableAccessors(t *testing.T) {
	tab := sampleTable(t)
	if got, want := tab.Len(), 4; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
	want := []string{"timestamp", "host", "cpu_usage", "net_in_bps", "label", "event", "note"}
	if got := tab.Names(); !slices.Equal(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if _, ok := tab.Column("CPU_usage"); ok {
		t.Error("Column matched a name in another letter case")
	}
	c, ok := tab.Column("label")
	if !ok || c.Type != Int || c.Len() != 4 {
		t.Fatalf("Column(label) = %+v, %v", c, ok)
	}
	if err := tab.AddFloats("energy", []float64{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := tab.AddBools("anomaly", []bool{true}); err == nil {
		t.Error("AddBools accepted a column of the wrong length")
	}
	if err := tab.AddStrings("energy", make([]string, 4)); err == nil {
		t.Error("AddStrings accepted a duplicate name")
	}
	if !tab.Remove("host") || tab.Remove("host") {
		t.Error("Remove(host) twice did not report true then false")
	}
	if c, _ := tab.Column("energy"); c == nil || c.Floats[3] != 4 {
		t.Errorf("after Remove, Column(energy) = %+v", c)
	}
	if got := tab.Names()[len(tab.Names())-1]; got != "energy" {
		t.Errorf("last column = %q, want energy", got)
	}
	for _, name := range tab.Names() {
		tab.Remove(name)
	}
	if tab.Len() != 4 {
		t.Errorf("Len = %d after removing every column, want 4", tab.Len())
	}
	if err := tab.AddFloats("x", []float64{1}); err == nil {
		t.Error("a table that lost its columns accepted a column of another length")
	}
}

func TestTake(t *testing.T) {
	tab := sampleTable(t)
	sub := tab.Take([]int{3, 1, 1})
	if sub.Len() != 3 {
		t.Fatalf("Len = %d, want 3", sub.Len())
	}
	label, _ := sub.Column("label")
	if !slices.Equal(label.Ints, []int64{math.MinInt64, 1, 1}) {
		t.Errorf("labels = %v", label.Ints)
	}
	net, _ := sub.Column("net_in_bps")
	if !slices.Equal(net.Nulls, []bool{false, true, true}) {
		t.Errorf("nulls = %v", net.Nulls)
	}
	note, _ := sub.Column("note")
	if note.Nulls != nil {
		t.Errorf("nulls = %v, want nil when no row is null", note.Nulls)
	}
	// Source rows compose through two Takes.
	sub2 := sub.Take([]int{2, 0})
	if got := []int{sub2.SourceRow(0), sub2.SourceRow(1)}; !slices.Equal(got, []int{2, 4}) {
		t.Errorf("source rows = %v, want [2 4]", got)
	}
	// The copy does not share values with the original.
	label.Ints[0] = 7
	if c, _ := tab.Column("label"); c.Ints[3] == 7 {
		t.Error("Take shares memory with the original table")
	}
	defer func() {
		if recover() == nil {
			t.Error("Take(out of range) did not panic")
		}
	}()
	tab.Take([]int{4})
}

func TestColumnValues(t *testing.T) {
	tab := sampleTable(t)
	tests := []struct {
		col    string
		row    int
		text   string
		float  float64
		number bool
	}{
		{"timestamp", 0, "2026-11-24T10:00:00.123456Z", 0, false},
		{"host", 1, `db "primary"`, 0, false},
		{"cpu_usage", 0, "37.5", 37.5, true},
		{"cpu_usage", 2, "-0.125", -0.125, true},
		{"cpu_usage", 3, "1e-09", 1e-9, true},
		{"net_in_bps", 0, "1200000", 1.2e6, true},
		{"net_in_bps", 1, "", 0, false}, // null
		{"net_in_bps", 3, "1e+300", 1e300, true},
		{"label", 3, "-9223372036854775808", math.MinInt64, true},
		{"event", 1, "true", 1, true},
		{"event", 0, "false", 0, true},
		{"note", 0, "", 0, false},
	}
	for _, tt := range tests {
		c, _ := tab.Column(tt.col)
		if got := c.Text(tt.row); got != tt.text {
			t.Errorf("%s[%d].Text() = %q, want %q", tt.col, tt.row, got, tt.text)
		}
		f, ok := c.Float64(tt.row)
		if ok != tt.number || f != tt.float {
			t.Errorf("%s[%d].Float64() = %v, %v, want %v, %v", tt.col, tt.row, f, ok, tt.float, tt.number)
		}
	}
	for _, ty := range []Type{Float, Int, Bool, String, Time} {
		if ty.Numeric() != (ty == Float || ty == Int) {
			t.Errorf("%v.Numeric() = %v", ty, ty.Numeric())
		}
	}
	if got := Type(9).String(); got != "Type(9)" {
		t.Errorf("Type(9).String() = %q", got)
	}
}

func TestCellError(t *testing.T) {
	err := error(&CellError{Row: 17, Column: "cpu_usage", Problem: `"abc" is not a number`})
	wrapped := errors.Join(errors.New("context"), err)
	var ce *CellError
	if !errors.As(wrapped, &ce) || ce.Row != 17 {
		t.Fatalf("errors.As failed on %v", wrapped)
	}
	if got, want := err.Error(), `row 17, column "cpu_usage": "abc" is not a number`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
