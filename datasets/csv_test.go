package datasets

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReadCSVTypes(t *testing.T) {
	in := "\ufeff timestamp ,host,cpu_usage,label,event,note,big,when\n" +
		"2026-11-24T00:00:00Z,web-1, 37.5 ,0,false,,1e999,2026-11-24T00:00:00+01:00\n" +
		"2026-11-24T00:01:00.5Z,web-2,NaN,1,TRUE,\"a, \"\"b\"\"\",7,x\n" +
		"2026-11-24T00:02:00Z,42,-Inf,+2,False,z,9223372036854775808,\n"
	tab, err := ReadCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]Type{
		"timestamp": Time, "host": String, "cpu_usage": Float, "label": Int,
		"event": Bool, "note": String, "big": Float, "when": String,
	}
	if got := tab.Names(); !slices.Equal(got, []string{"timestamp", "host", "cpu_usage", "label", "event", "note", "big", "when"}) {
		t.Fatalf("names = %q", got)
	}
	for name, want := range wantTypes {
		if c, _ := tab.Column(name); c.Type != want {
			t.Errorf("column %q: type %v, want %v", name, c.Type, want)
		}
	}
	ts, _ := tab.Column("timestamp")
	if want := time.Date(2026, 11, 24, 0, 1, 0, 5e8, time.UTC); !ts.Times[1].Equal(want) {
		t.Errorf("timestamp[1] = %v, want %v", ts.Times[1], want)
	}
	cpu, _ := tab.Column("cpu_usage")
	if cpu.Floats[0] != 37.5 || !math.IsNaN(cpu.Floats[1]) || !math.IsInf(cpu.Floats[2], -1) {
		t.Errorf("cpu_usage = %v", cpu.Floats)
	}
	label, _ := tab.Column("label")
	if !slices.Equal(label.Ints, []int64{0, 1, 2}) {
		t.Errorf("label = %v", label.Ints)
	}
	event, _ := tab.Column("event")
	if !slices.Equal(event.Bools, []bool{false, true, false}) {
		t.Errorf("event = %v", event.Bools)
	}
	note, _ := tab.Column("note")
	if !slices.Equal(note.Strings, []string{"", `a, "b"`, "z"}) {
		t.Errorf("note = %q", note.Strings)
	}
	host, _ := tab.Column("host")
	if host.Strings[2] != "42" {
		t.Errorf("host[2] = %q, want the number kept as text", host.Strings[2])
	}
	big, _ := tab.Column("big")
	if !math.IsInf(big.Floats[0], 1) || big.Floats[2] != 9223372036854775808 {
		t.Errorf("big = %v", big.Floats)
	}
}

func TestReadCSVErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the whole message ReadFile returns for metrics.csv
		is   error
	}{
		{"empty file", "", "datasets: metrics.csv: empty file: want a header row and data rows", ErrNoRows},
		{"header only", "cpu_usage,mem_usage\n", "datasets: metrics.csv: header but no data rows", ErrNoRows},
		{
			"not a number",
			"host,cpu_usage\n" + strings.Repeat("web-1,12.5\n", 16) + "web-1,abc\nweb-1,3\n",
			`datasets: metrics.csv: row 17, column "cpu_usage": "abc" is not a number`, nil,
		},
		{
			"empty numeric cell",
			"cpu_usage,mem_usage\n1,2\n3,\n",
			`datasets: metrics.csv: row 2, column "mem_usage": empty cell in a numeric column`, nil,
		},
		{
			"leading empty cell",
			"cpu_usage,mem_usage\n1, \n3,4\n",
			`datasets: metrics.csv: row 1, column "mem_usage": empty cell in a numeric column`, nil,
		},
		{
			"mostly numbers after text",
			"cpu_usage\nn/a\n1\n2\n",
			`datasets: metrics.csv: row 1, column "cpu_usage": "n/a" is not a number`, nil,
		},
		{"duplicate header", "a,b,a\n1,2,3\n", `datasets: metrics.csv: header: column name "a" appears twice (columns 1 and 3)`, nil},
		{"unnamed column", "a,,c\n1,2,3\n", "datasets: metrics.csv: header: column 2 has no name", nil},
		{"short row", "a,b\n1,2\n3\n", "datasets: metrics.csv: row 2 has 1 fields, the header has 2", nil},
		{"bad quote", "a,b\n1,x\"y\n", `datasets: metrics.csv: parse error on line 2, column 4: bare " in non-quoted-field`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "metrics.csv")
			if err := os.WriteFile(path, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(path)
			if err == nil {
				t.Fatal("ReadFile: no error")
			}
			if got := strings.Replace(err.Error(), path, "metrics.csv", 1); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
			if strings.Contains(tt.want, "row ") && strings.Contains(tt.want, "column \"") {
				var ce *CellError
				if !errors.As(err, &ce) {
					t.Errorf("error %v is not a *CellError", err)
				}
			}
		})
	}
}

func TestCSVRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		tab  func(testing.TB) *Table
	}{
		{"sample", func(tb testing.TB) *Table {
			tab := sampleTable(tb)
			// CSV has no nulls: drop the columns that have some.
			tab.Remove("net_in_bps")
			tab.Remove("note")
			return tab
		}},
		{"whole floats stay floats", func(tb testing.TB) *Table {
			tab, err := NewTable(FloatColumn("x", []float64{1, -0, 2e20, math.Inf(1), math.NaN()}), IntColumn("y", []int64{1, 2, 3, 4, 5}))
			if err != nil {
				tb.Fatal(err)
			}
			return tab
		}},
		{"one empty text column", func(tb testing.TB) *Table {
			tab, err := NewTable(StringColumn("s", []string{"", "a", ""}))
			if err != nil {
				tb.Fatal(err)
			}
			return tab
		}},
		{"generated", func(tb testing.TB) *Table {
			tab, err := Generate(DefaultGenConfig())
			if err != nil {
				tb.Fatal(err)
			}
			return tab
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.tab(t)
			var buf bytes.Buffer
			if err := WriteCSV(&buf, want); err != nil {
				t.Fatal(err)
			}
			got, err := ReadCSV(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("ReadCSV: %v\n%s", err, buf.String())
			}
			assertEqualTables(t, got, want)
			// And through files.
			path := filepath.Join(t.TempDir(), "t.CSV")
			if err := WriteFile(path, want); err != nil {
				t.Fatal(err)
			}
			got, err = ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			assertEqualTables(t, got, want)
		})
	}
}

func TestWriteCSVText(t *testing.T) {
	tab, err := NewTable(
		TimeColumn("ts", []time.Time{time.Date(2026, 11, 24, 0, 0, 0, 0, time.FixedZone("", 3600))}),
		FloatColumn("bps", []float64{12345678}),
		FloatColumn("tiny", []float64{1e-7}),
		BoolColumn("anomaly", []bool{true}),
		&Column{Name: "energy", Type: Float, Floats: []float64{0}, Nulls: []bool{true}},
	)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, tab); err != nil {
		t.Fatal(err)
	}
	want := "ts,bps,tiny,anomaly,energy\n2026-11-24T00:00:00+01:00,12345678.0,1e-07,true,\n"
	if buf.String() != want {
		t.Errorf("WriteCSV wrote\n%s\nwant\n%s", buf.String(), want)
	}
}
