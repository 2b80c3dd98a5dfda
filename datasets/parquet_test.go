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

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
)

func TestParquetRoundTrip(t *testing.T) {
	gen, err := Generate(GenConfig{N: 5000, Anomalies: 20, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tab  *Table
	}{
		{"sample with nulls", sampleTable(t)},
		{"generated", gen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteParquet(&buf, tt.tab); err != nil {
				t.Fatal(err)
			}
			got, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.tab
			// Timestamps are stored in microseconds.
			if c, ok := want.Column("timestamp"); ok {
				c = &Column{Name: c.Name, Type: Time, Times: slices.Clone(c.Times)}
				for i, ts := range c.Times {
					c.Times[i] = ts.Truncate(time.Microsecond)
				}
				want = replaceColumn(t, want, c)
			}
			assertEqualTables(t, got, want)

			path := filepath.Join(t.TempDir(), "out.Parquet")
			if err := WriteFile(path, tt.tab); err != nil {
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

// replaceColumn returns a copy of tab with c in place of its namesake.
func replaceColumn(t testing.TB, tab *Table, c *Column) *Table {
	t.Helper()
	cols := tab.Columns()
	for i, old := range cols {
		if old.Name == c.Name {
			cols[i] = c
		}
	}
	out, err := NewTable(cols...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// foreignRow has the column types other writers (pandas, Spark, DuckDB) use.
type foreignRow struct {
	I32    int32      `parquet:"i32"`
	I8     int8       `parquet:"i8"`
	U32    uint32     `parquet:"u32"`
	U64    uint64     `parquet:"u64"`
	F32    float32    `parquet:"f32"`
	DictF  float64    `parquet:"dict_f,dict"`
	Opt    *float64   `parquet:"opt,optional"`
	Host   string     `parquet:"host,dict"`
	Enum   string     `parquet:"enum,enum"`
	Bytes  []byte     `parquet:"bytes"`
	Flag   bool       `parquet:"flag"`
	OptB   *bool      `parquet:"opt_b,optional"`
	Millis time.Time  `parquet:"millis,timestamp(millisecond)"`
	Nanos  time.Time  `parquet:"nanos,timestamp(nanosecond)"`
	Date   int32      `parquet:"date,date"` // days since 1970-01-01
	OptTS  *time.Time `parquet:"opt_ts,optional,timestamp(microsecond)"`
}

func TestReadParquetForeignSchema(t *testing.T) {
	base := time.Date(2026, 11, 24, 10, 30, 15, 123456789, time.UTC)
	const n = 3000
	rows := make([]foreignRow, n)
	for i := range rows {
		v := float64(i) / 4
		b := i%3 == 0
		ts := base.Add(time.Duration(i) * time.Second)
		r := foreignRow{
			I32: int32(-i), I8: int8(i % 100), U32: math.MaxUint32 - uint32(i), U64: uint64(i) << 40,
			F32: float32(i) / 2, DictF: float64(i % 5), Host: []string{"web-1", "web-2", "db-1"}[i%3],
			Enum: "e", Bytes: []byte{'b', byte('0' + i%10)}, Flag: i%2 == 1,
			Millis: ts, Nanos: ts, Date: int32(ts.Unix() / 86400),
		}
		if i%7 != 0 {
			r.Opt, r.OptB, r.OptTS = &v, &b, &ts
		}
		rows[i] = r
	}
	// Small row groups and pages, and both data page versions, so that
	// values cross page and row-group boundaries.
	for _, version := range []int{1, 2} {
		var buf bytes.Buffer
		err := parquet.Write(&buf, rows, parquet.MaxRowsPerRowGroup(1000), parquet.PageBufferSize(512), parquet.DataPageVersion(version))
		if err != nil {
			t.Fatal(err)
		}
		tab, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("page version %d: %v", version, err)
		}
		if tab.Len() != n {
			t.Fatalf("rows = %d, want %d", tab.Len(), n)
		}
		wantNames := []string{"i32", "i8", "u32", "u64", "f32", "dict_f", "opt", "host", "enum", "bytes", "flag", "opt_b", "millis", "nanos", "date", "opt_ts"}
		if !slices.Equal(tab.Names(), wantNames) {
			t.Fatalf("names = %q, want %q", tab.Names(), wantNames)
		}
		col := func(name string, typ Type) *Column {
			t.Helper()
			c, _ := tab.Column(name)
			if c.Type != typ {
				t.Fatalf("column %q: type %v, want %v", name, c.Type, typ)
			}
			return c
		}
		i32, i8, u32, u64 := col("i32", Int), col("i8", Int), col("u32", Int), col("u64", Int)
		f32, dictF, opt := col("f32", Float), col("dict_f", Float), col("opt", Float)
		host, enum, bs := col("host", String), col("enum", String), col("bytes", String)
		flag, optB := col("flag", Bool), col("opt_b", Bool)
		millis, nanos, date, optTS := col("millis", Time), col("nanos", Time), col("date", Time), col("opt_ts", Time)
		for i, r := range rows {
			ok := i32.Ints[i] == int64(r.I32) && i8.Ints[i] == int64(r.I8) && u32.Ints[i] == int64(r.U32) &&
				u64.Ints[i] == int64(r.U64) && f32.Floats[i] == float64(r.F32) && dictF.Floats[i] == r.DictF &&
				host.Strings[i] == r.Host && enum.Strings[i] == r.Enum && bs.Strings[i] == string(r.Bytes) &&
				flag.Bools[i] == r.Flag &&
				millis.Times[i].Equal(r.Millis.Truncate(time.Millisecond)) && nanos.Times[i].Equal(r.Nanos) &&
				date.Times[i].Equal(r.Millis.Truncate(24*time.Hour))
			if r.Opt == nil {
				ok = ok && opt.IsNull(i) && optB.IsNull(i) && optTS.IsNull(i)
			} else {
				ok = ok && !opt.IsNull(i) && opt.Floats[i] == *r.Opt && optB.Bools[i] == *r.OptB &&
					optTS.Times[i].Equal(r.OptTS.Truncate(time.Microsecond))
			}
			if !ok {
				t.Fatalf("page version %d: row %d differs: %+v", version, i, r)
			}
		}
		if flag.Nulls != nil || host.Nulls != nil {
			t.Error("required columns have null flags")
		}
	}
}

func TestReadParquetInt96(t *testing.T) {
	// 2026-11-24T10:00:00.5Z: Julian day 2440588 is 1970-01-01.
	want := time.Date(2026, 11, 24, 10, 0, 0, 5e8, time.UTC)
	days := want.Unix() / 86400
	nanos := uint64(want.Sub(time.Unix(days*86400, 0)))
	v := deprecated.Int96{uint32(nanos), uint32(nanos >> 32), uint32(days + julianUnixEpoch)}
	schema := parquet.NewSchema("t", group{field{Node: parquet.Leaf(parquet.Int96Type), name: "ts"}})
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[any](&buf, schema)
	if _, err := w.WriteRows([]parquet.Row{{parquet.Int96Value(v).Level(0, 0, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tab, err := ReadParquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := tab.Column("ts")
	if c.Type != Time || !c.Times[0].Equal(want) {
		t.Errorf("ts = %v (%v), want %v", c.Times, c.Type, want)
	}
}

func TestReadParquetErrors(t *testing.T) {
	write := func(t *testing.T, rows any) []byte {
		t.Helper()
		var buf bytes.Buffer
		var err error
		switch r := rows.(type) {
		case []struct {
			ID [16]byte `parquet:"id,uuid"`
		}:
			err = parquet.Write(&buf, r)
		case []struct {
			D int64 `parquet:"d,decimal(2:10)"`
		}:
			err = parquet.Write(&buf, r)
		case []struct {
			Tags []int64 `parquet:"tags"`
		}:
			err = parquet.Write(&buf, r)
		case []struct {
			Inner struct {
				X float64 `parquet:"x"`
			} `parquet:"inner"`
		}:
			err = parquet.Write(&buf, r)
		case []struct {
			X float64 `parquet:"x"`
		}:
			err = parquet.Write(&buf, r)
		case []struct {
			U uint64 `parquet:"u"`
		}:
			err = parquet.Write(&buf, r)
		}
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	valid := write(t, []struct {
		X float64 `parquet:"x"`
	}{{1}, {2}})
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want string
		is   error
	}{
		{"uuid", func(t *testing.T) []byte {
			return write(t, []struct {
				ID [16]byte `parquet:"id,uuid"`
			}{{}})
		}, `column "id": unsupported parquet type UUID`, nil},
		{"decimal", func(t *testing.T) []byte {
			return write(t, []struct {
				D int64 `parquet:"d,decimal(2:10)"`
			}{{1}})
		}, `column "d": unsupported parquet type DECIMAL`, nil},
		{"repeated", func(t *testing.T) []byte {
			return write(t, []struct {
				Tags []int64 `parquet:"tags"`
			}{{[]int64{1}}})
		}, `column "tags": nested or repeated columns are not supported`, nil},
		{"nested", func(t *testing.T) []byte {
			return write(t, []struct {
				Inner struct {
					X float64 `parquet:"x"`
				} `parquet:"inner"`
			}{{}})
		}, `column "inner": nested or repeated columns are not supported`, nil},
		{"no rows", func(t *testing.T) []byte {
			return write(t, []struct {
				X float64 `parquet:"x"`
			}{})
		}, "no data rows", ErrNoRows},
		{"uint64 overflow", func(t *testing.T) []byte {
			return write(t, []struct {
				U uint64 `parquet:"u"`
			}{{1}, {math.MaxUint64}})
		}, `row 2, column "u": unsigned value 18446744073709551615 does not fit a signed 64-bit integer`, nil},
		{"empty file", func(*testing.T) []byte { return nil }, "datasets: out.parquet: empty file", ErrNoRows},
		{"not parquet", func(*testing.T) []byte { return []byte("host,cpu\nweb-1,3\n") }, "not a parquet file: no PAR1 magic number", nil},
		{"truncated", func(*testing.T) []byte { return valid[:len(valid)-10] }, "datasets: out.parquet: ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.parquet")
			if err := os.WriteFile(path, tt.data(t), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(path)
			if err == nil {
				t.Fatal("ReadFile: no error")
			}
			msg := strings.Replace(err.Error(), path, "out.parquet", 1)
			if !strings.HasPrefix(msg, "datasets: out.parquet: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want one containing %q", msg, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
		})
	}
}

func TestWriteParquetSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteParquet(&buf, sampleTable(t)); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Root().Columns() {
		rep := "required"
		if c.Optional() {
			rep = "optional"
		}
		got = append(got, rep+" "+c.Name()+" "+c.Type().String())
	}
	want := []string{
		"required timestamp TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)",
		"required host STRING",
		"required cpu_usage DOUBLE",
		"optional net_in_bps DOUBLE",
		"required label INT(64,true)",
		"required event BOOLEAN",
		"optional note STRING",
	}
	if !slices.Equal(got, want) {
		t.Errorf("schema\n got %q\nwant %q", got, want)
	}
	g := group{field{Node: parquet.String(), name: "b"}, field{Node: parquet.Leaf(parquet.DoubleType), name: "a"}}
	if s := g.String(); !strings.Contains(s, "b (STRING);\n\trequired double a;") {
		t.Errorf("group.String() = %q, want fields in the order given", s)
	}
	if _, err := NewTable(); err != nil {
		t.Fatal(err)
	}
	empty, _ := NewTable()
	if err := WriteParquet(&buf, empty); err == nil {
		t.Error("WriteParquet wrote a table without columns")
	}
}
