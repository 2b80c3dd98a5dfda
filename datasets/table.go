package datasets

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors callers may match with [errors.Is]. The errors returned carry more
// detail: the file, the row, the column.
var (
	// ErrNoRows: a file or table without data rows (an empty file, a header
	// alone, or every row removed).
	ErrNoRows = errors.New("datasets: no data rows")
	// ErrNoColumn: a column named by the caller is not in the table.
	ErrNoColumn = errors.New("datasets: no such column")
	// ErrNoFeatures: no feature column was found or given.
	ErrNoFeatures = errors.New("datasets: no feature columns")
	// ErrNotNumeric: a column used as a feature holds text, booleans or
	// timestamps.
	ErrNotNumeric = errors.New("datasets: column is not numeric")
	// ErrFormat: a file name whose extension names no supported format.
	ErrFormat = errors.New("datasets: unsupported file format")
)

// CellError reports a bad value in one cell: a non-numeric or empty value in
// a numeric column, or a NaN, infinite or missing value where a feature value
// is needed. Match it with [errors.As].
type CellError struct {
	// Row is the 1-based data row of the source file (the header is not a row).
	Row int
	// Column is the column name.
	Column string
	// Problem says what is wrong with the value, for example
	// `"abc" is not a number`.
	Problem string
}

// Error returns `row R, column "C": problem`.
func (e *CellError) Error() string {
	return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Problem)
}

// Type is the type of a column's values.
type Type uint8

// Column types. Each names the [Column] field that holds the values.
const (
	Float  Type = iota + 1 // float64 values in Column.Floats
	Int                    // int64 values in Column.Ints
	Bool                   // bool values in Column.Bools
	String                 // string values in Column.Strings
	Time                   // time.Time values in Column.Times
)

// String returns the type's name: float, int, bool, string or time.
func (t Type) String() string {
	switch t {
	case Float:
		return "float"
	case Int:
		return "int"
	case Bool:
		return "bool"
	case String:
		return "string"
	case Time:
		return "time"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Numeric reports whether values of type t can be features: Float or Int.
func (t Type) Numeric() bool { return t == Float || t == Int }

// Column is one named, typed column. Exactly the slice that matches Type is
// set; the others are nil. A Column belongs to at most one [Table]; callers
// may change its values in place but not its length.
type Column struct {
	Name string // unique within its table, non-empty
	Type Type   // which of the slices below holds the values

	Floats  []float64   // Type Float
	Ints    []int64     // Type Int
	Bools   []bool      // Type Bool
	Strings []string    // Type String
	Times   []time.Time // Type Time

	// Nulls is nil when no value is missing; otherwise Nulls[i] reports that
	// row i has no value (its slot in the typed slice holds the zero value).
	// Only Parquet files have nulls.
	Nulls []bool
}

// FloatColumn returns a Float column holding v (not copied).
func FloatColumn(name string, v []float64) *Column {
	return &Column{Name: name, Type: Float, Floats: v}
}

// IntColumn returns an Int column holding v (not copied).
func IntColumn(name string, v []int64) *Column {
	return &Column{Name: name, Type: Int, Ints: v}
}

// BoolColumn returns a Bool column holding v (not copied).
func BoolColumn(name string, v []bool) *Column {
	return &Column{Name: name, Type: Bool, Bools: v}
}

// StringColumn returns a String column holding v (not copied).
func StringColumn(name string, v []string) *Column {
	return &Column{Name: name, Type: String, Strings: v}
}

// TimeColumn returns a Time column holding v (not copied).
func TimeColumn(name string, v []time.Time) *Column {
	return &Column{Name: name, Type: Time, Times: v}
}

// Len returns the number of values in the column.
func (c *Column) Len() int {
	switch c.Type {
	case Float:
		return len(c.Floats)
	case Int:
		return len(c.Ints)
	case Bool:
		return len(c.Bools)
	case String:
		return len(c.Strings)
	case Time:
		return len(c.Times)
	}
	return 0
}

// IsNull reports whether row i has no value.
func (c *Column) IsNull(i int) bool { return c.Nulls != nil && c.Nulls[i] }

// Float64 returns row i as a float64: a Float as is, an Int converted, a Bool
// as 0 or 1. ok is false for a null and for String and Time columns. This is
// how labels are read as numbers.
func (c *Column) Float64(i int) (v float64, ok bool) {
	if c.IsNull(i) {
		return 0, false
	}
	switch c.Type {
	case Float:
		return c.Floats[i], true
	case Int:
		return float64(c.Ints[i]), true
	case Bool:
		if c.Bools[i] {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Text returns row i as text, as [WriteCSV] writes it: floats in the shortest
// form that reads back to the same value, timestamps in RFC 3339 with
// nanoseconds, booleans as true or false, and "" for a null.
func (c *Column) Text(i int) string {
	if c.IsNull(i) {
		return ""
	}
	switch c.Type {
	case Float:
		return formatFloat(c.Floats[i])
	case Int:
		return strconv.FormatInt(c.Ints[i], 10)
	case Bool:
		return strconv.FormatBool(c.Bools[i])
	case String:
		return c.Strings[i]
	case Time:
		return c.Times[i].Format(time.RFC3339Nano)
	}
	return ""
}

// formatFloat writes v in plain decimal notation when that is short (so that
// bits per second read as 12345678, not 1.2345678e+07) and in exponent
// notation otherwise; both read back to exactly v.
func formatFloat(v float64) string {
	if a := math.Abs(v); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validate checks that the column has a name, a known type, and exactly the
// matching slice.
func (c *Column) validate() error {
	if c == nil {
		return errors.New("datasets: nil column")
	}
	if c.Name == "" {
		return errors.New("datasets: column without a name")
	}
	set := 0
	for _, ok := range []bool{c.Floats != nil, c.Ints != nil, c.Bools != nil, c.Strings != nil, c.Times != nil} {
		if ok {
			set++
		}
	}
	var want bool
	switch c.Type {
	case Float:
		want = c.Floats != nil
	case Int:
		want = c.Ints != nil
	case Bool:
		want = c.Bools != nil
	case String:
		want = c.Strings != nil
	case Time:
		want = c.Times != nil
	default:
		return fmt.Errorf("datasets: column %q: unknown type %v", c.Name, c.Type)
	}
	if set > 1 || (set == 1 && !want) {
		return fmt.Errorf("datasets: column %q: type %v but other value slices set", c.Name, c.Type)
	}
	if c.Nulls != nil && len(c.Nulls) != c.Len() {
		return fmt.Errorf("datasets: column %q: %d nulls flags for %d values", c.Name, len(c.Nulls), c.Len())
	}
	return nil
}

// take returns a new column holding the given rows of c, in that order.
func (c *Column) take(rows []int) *Column {
	out := &Column{Name: c.Name, Type: c.Type}
	switch c.Type {
	case Float:
		out.Floats = pick(c.Floats, rows)
	case Int:
		out.Ints = pick(c.Ints, rows)
	case Bool:
		out.Bools = pick(c.Bools, rows)
	case String:
		out.Strings = pick(c.Strings, rows)
	case Time:
		out.Times = pick(c.Times, rows)
	}
	if c.Nulls != nil {
		out.Nulls = pick(c.Nulls, rows)
		if !slices.Contains(out.Nulls, true) {
			out.Nulls = nil
		}
	}
	return out
}

func pick[T any](s []T, rows []int) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = s[r]
	}
	return out
}

// Table is a set of equally long, uniquely named columns, in order. Build one
// with [NewTable], a reader such as [ReadFile], or [Generate].
//
// A Table remembers, for each of its rows, the 1-based data row of the file it
// was read from ([Table.SourceRow]), so that errors name the row the user can
// find in the file even after rows were removed.
type Table struct {
	n      int
	sized  bool // n is fixed: set by the first column, by Take or by a reader
	cols   []*Column
	byName map[string]int
	source []int // 1-based source row of each row; nil means row i is i+1
}

// NewTable returns a table of the given columns (not copied). It checks that
// every column is valid, that names are unique and non-empty, and that all
// columns have the same length.
func NewTable(cols ...*Column) (*Table, error) {
	t := &Table{byName: make(map[string]int, len(cols))}
	for _, c := range cols {
		if err := t.Add(c); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Len returns the number of rows.
func (t *Table) Len() int { return t.n }

// Names returns the column names, in order, in a new slice.
func (t *Table) Names() []string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.Name
	}
	return names
}

// Columns returns the columns, in order, in a new slice; the columns are
// shared with the table.
func (t *Table) Columns() []*Column { return slices.Clone(t.cols) }

// Column returns the column with the given name (exact match) and whether it
// exists.
func (t *Table) Column(name string) (*Column, bool) {
	i, ok := t.byName[name]
	if !ok {
		return nil, false
	}
	return t.cols[i], true
}

// SourceRow returns the 1-based data row, in the file the table was read
// from, of row i (0-based). For a table built in memory it is i+1.
func (t *Table) SourceRow(i int) int {
	if t.source == nil {
		return i + 1
	}
	return t.source[i]
}

// Add appends column c (not copied). The first column of an empty table sets
// the table's length; later columns must have the same length and a new name.
func (t *Table) Add(c *Column) error {
	if err := c.validate(); err != nil {
		return err
	}
	if _, dup := t.byName[c.Name]; dup {
		return fmt.Errorf("datasets: column %q already exists", c.Name)
	}
	if !t.sized {
		t.n, t.sized = c.Len(), true
	} else if c.Len() != t.n {
		return fmt.Errorf("datasets: column %q has %d values, table has %d rows", c.Name, c.Len(), t.n)
	}
	if t.byName == nil {
		t.byName = make(map[string]int)
	}
	t.byName[c.Name] = len(t.cols)
	t.cols = append(t.cols, c)
	return nil
}

// AddFloats appends a Float column, for example the energy of each row.
func (t *Table) AddFloats(name string, v []float64) error { return t.Add(FloatColumn(name, v)) }

// AddBools appends a Bool column, for example whether each row is an anomaly.
func (t *Table) AddBools(name string, v []bool) error { return t.Add(BoolColumn(name, v)) }

// AddStrings appends a String column.
func (t *Table) AddStrings(name string, v []string) error { return t.Add(StringColumn(name, v)) }

// Remove removes the named column and reports whether it was there. The
// table keeps its length even when its last column goes.
func (t *Table) Remove(name string) bool {
	i, ok := t.byName[name]
	if !ok {
		return false
	}
	t.cols = slices.Delete(t.cols, i, i+1)
	delete(t.byName, name)
	for j := i; j < len(t.cols); j++ {
		t.byName[t.cols[j].Name] = j
	}
	return true
}

// Take returns a new table holding copies of the given rows (0-based), in
// that order; rows may repeat. Source row numbers follow the rows. Take panics
// if a row is out of range, like a slice index.
func (t *Table) Take(rows []int) *Table {
	out := &Table{n: len(rows), sized: true, cols: make([]*Column, len(t.cols)), byName: make(map[string]int, len(t.cols))}
	out.source = make([]int, len(rows))
	for i, r := range rows {
		if r < 0 || r >= t.n {
			panic(fmt.Sprintf("datasets: Take: row %d out of range [0,%d)", r, t.n))
		}
		out.source[i] = t.SourceRow(r)
	}
	for i, c := range t.cols {
		out.cols[i] = c.take(rows)
		out.byName[c.Name] = i
	}
	return out
}

// columnList formats names for an error message: "a", "b", "c".
func columnList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
