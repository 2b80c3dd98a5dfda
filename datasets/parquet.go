package datasets

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
	"golang.org/x/sync/errgroup"
)

// ReadParquet reads a Parquet file of the given size from r. The schema must be
// flat: see the package documentation for the column types it reads. Columns
// are read in parallel, one goroutine per core; r must allow concurrent
// ReadAt calls (an *os.File and a *bytes.Reader do). A file with no rows is an
// error that matches [ErrNoRows].
func ReadParquet(r io.ReaderAt, size int64) (*Table, error) {
	t, err := readParquet(r, size)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	return t, nil
}

// WriteParquet writes t as a Parquet file, Snappy-compressed, one column per
// table column in the table's order: Float as double, Int as int64, Bool as
// boolean, String as a dictionary-encoded UTF-8 string, Time as a UTC
// timestamp in microseconds (finer digits and time zones are lost). Columns
// with nulls are optional, the others required.
func WriteParquet(w io.Writer, t *Table) error {
	if err := writeParquet(w, t); err != nil {
		return fmt.Errorf("datasets: write parquet: %w", err)
	}
	return nil
}

// pqMode says how a Parquet leaf column maps to a Column.
type pqMode uint8

const (
	pqBool pqMode = iota + 1
	pqInt32
	pqUint32
	pqInt64
	pqUint64
	pqFloat
	pqDouble
	pqString
	pqDate      // int32 days since 1970-01-01
	pqTimestamp // int64 in unit since 1970-01-01T00:00:00Z
	pqInt96     // legacy timestamp: nanoseconds of the day, Julian day
)

// pqColumn reads one leaf column.
type pqColumn struct {
	leaf *parquet.Column
	mode pqMode
	unit time.Duration // pqTimestamp
	col  *Column
	n    int // values read so far
}

func readParquet(r io.ReaderAt, size int64) (t *Table, err error) {
	// parquet-go panics on some malformed inputs; no input may crash us.
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("malformed parquet file: %v", p)
		}
	}()
	if size == 0 {
		return nil, failf(ErrNoRows, "empty file: want a parquet file with data rows")
	}
	if err := checkFrame(r, size); err != nil {
		return nil, err
	}
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, err
	}
	nrows := f.NumRows()
	var sum int64
	for _, rg := range f.RowGroups() {
		if rg.NumRows() < 0 || rg.NumRows() > math.MaxInt32 {
			return nil, fmt.Errorf("malformed parquet file: row group of %d rows", rg.NumRows())
		}
		sum += rg.NumRows()
	}
	if sum != nrows {
		return nil, fmt.Errorf("malformed parquet file: %d rows in the footer, %d in the row groups", nrows, sum)
	}
	if nrows > math.MaxInt32 {
		return nil, fmt.Errorf("%d rows: more than this reader takes (%d)", nrows, math.MaxInt32)
	}
	if nrows == 0 {
		return nil, failf(ErrNoRows, "no data rows")
	}
	n := int(nrows)
	// A corrupt footer may claim far more rows than the file holds: size the
	// columns up front only for a plausible number of values per byte (about
	// 25 for kddcup99.parquet), and otherwise grow them as values arrive.
	leaves := f.Root().Columns()
	hint := n
	if int64(n)*int64(len(leaves)) > 256*size {
		hint = 0
	}
	var cols []*pqColumn
	for _, leaf := range leaves {
		pc, err := newPQColumn(leaf, hint)
		if err != nil {
			return nil, err
		}
		cols = append(cols, pc)
	}
	if len(cols) == 0 {
		return nil, errors.New("parquet file has no columns")
	}
	names := make(map[string]bool, len(cols))
	for _, pc := range cols {
		if pc.col.Name == "" {
			return nil, errors.New("parquet file has a column without a name")
		}
		if names[pc.col.Name] {
			return nil, fmt.Errorf("column name %q appears twice", pc.col.Name)
		}
		names[pc.col.Name] = true
	}

	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, pc := range cols {
		g.Go(func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("column %q: malformed parquet data: %v", pc.col.Name, p)
				}
			}()
			return pc.read(r, size, f, n)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	t = &Table{n: n, sized: true, byName: make(map[string]int, len(cols))}
	for j, pc := range cols {
		if pc.col.Nulls != nil && !containsTrue(pc.col.Nulls) {
			pc.col.Nulls = nil
		}
		t.byName[pc.col.Name] = j
		t.cols = append(t.cols, pc.col)
	}
	return t, nil
}

func containsTrue(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}

const pqSupported = "boolean, int32, int64, int96, float, double, string, enum, json, byte array, date, timestamp"

func newPQColumn(leaf *parquet.Column, hint int) (*pqColumn, error) {
	name := leaf.Name()
	if !leaf.Leaf() || leaf.MaxRepetitionLevel() > 0 || leaf.MaxDefinitionLevel() > 1 {
		return nil, fmt.Errorf("column %q: nested or repeated columns are not supported (want a flat schema)", strings.Join(leafPath(leaf), "."))
	}
	typ := leaf.Type()
	pc := &pqColumn{leaf: leaf, col: &Column{Name: name}}
	unsupported := func() error {
		return fmt.Errorf("column %q: unsupported parquet type %v (supported: %s)", name, typ, pqSupported)
	}
	lt := typ.LogicalType()
	var ltv format.LogicalTypeValue
	if lt != nil {
		ltv = lt.Value
	}
	switch typ.Kind() {
	case parquet.Boolean:
		if ltv != nil {
			return nil, unsupported()
		}
		pc.mode, pc.col.Type = pqBool, Bool
	case parquet.Int32:
		switch v := ltv.(type) {
		case nil, *format.IntType:
			pc.mode, pc.col.Type = intMode(v, pqInt32, pqUint32), Int
		case *format.DateType:
			pc.mode, pc.col.Type = pqDate, Time
		default:
			return nil, unsupported()
		}
	case parquet.Int64:
		switch v := ltv.(type) {
		case nil, *format.IntType:
			pc.mode, pc.col.Type = intMode(v, pqInt64, pqUint64), Int
		case *format.TimestampType:
			if v.Unit.Value == nil {
				return nil, unsupported()
			}
			pc.mode, pc.col.Type, pc.unit = pqTimestamp, Time, v.Unit.Value.Duration()
		default:
			return nil, unsupported()
		}
	case parquet.Int96:
		if ltv != nil {
			return nil, unsupported()
		}
		pc.mode, pc.col.Type = pqInt96, Time
	case parquet.Float:
		if ltv != nil {
			return nil, unsupported()
		}
		pc.mode, pc.col.Type = pqFloat, Float
	case parquet.Double:
		if ltv != nil {
			return nil, unsupported()
		}
		pc.mode, pc.col.Type = pqDouble, Float
	case parquet.ByteArray:
		switch ltv.(type) {
		case nil, *format.StringType, *format.EnumType, *format.JsonType:
			pc.mode, pc.col.Type = pqString, String
		default:
			return nil, unsupported()
		}
	default:
		return nil, unsupported()
	}
	switch pc.col.Type {
	case Float:
		pc.col.Floats = make([]float64, 0, hint)
	case Int:
		pc.col.Ints = make([]int64, 0, hint)
	case Bool:
		pc.col.Bools = make([]bool, 0, hint)
	case String:
		pc.col.Strings = make([]string, 0, hint)
	case Time:
		pc.col.Times = make([]time.Time, 0, hint)
	}
	return pc, nil
}

func leafPath(c *parquet.Column) []string {
	if p := c.Path(); len(p) > 0 {
		return p
	}
	return []string{c.Name()}
}

// read reads the column from every row group of f, read from r of the given
// size; n is the file's row count.
func (pc *pqColumn) read(r io.ReaderAt, size int64, f *parquet.File, n int) error {
	idx := pc.leaf.Index()
	want := 0
	meta := f.Metadata().RowGroups
	for g, rg := range f.RowGroups() {
		chunks := rg.ColumnChunks()
		if idx < 0 || idx >= len(chunks) || g >= len(meta) || idx >= len(meta[g].Columns) {
			return fmt.Errorf("column %q: row group %d has no chunk for it", pc.col.Name, g)
		}
		if err := checkPages(r, size, &meta[g].Columns[idx].MetaData); err != nil {
			return fmt.Errorf("column %q: row group %d: %w", pc.col.Name, g, err)
		}
		want += int(rg.NumRows())
		if err := pc.readChunk(chunks[idx], want); err != nil {
			return fmt.Errorf("column %q: row group %d: %w", pc.col.Name, g, err)
		}
		if pc.n != want {
			return fmt.Errorf("column %q: row group %d: %d values for %d rows", pc.col.Name, g, pc.n, want)
		}
	}
	if pc.n != n {
		return fmt.Errorf("column %q: %d values for %d rows", pc.col.Name, pc.n, n)
	}
	return nil
}

func (pc *pqColumn) readChunk(chunk parquet.ColumnChunk, limit int) (err error) {
	pages := chunk.Pages()
	defer func() {
		if cerr := pages.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = pc.readPage(p, limit)
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// readPage appends the page's values; limit bounds the column's length.
func (pc *pqColumn) readPage(p parquet.Page, limit int) error {
	rows := p.NumRows()
	if rows < 0 || rows > int64(limit-pc.n) {
		return fmt.Errorf("page of %d rows overflows the row group", rows)
	}
	m := int(rows)
	if m == 0 {
		return nil
	}
	vr := p.Values()
	if p.NumNulls() == 0 {
		if done, err := pc.readFast(vr, m); done || err != nil {
			return err
		}
	}
	return pc.readGeneric(vr, m)
}

// intMode returns unsigned for an unsigned INT logical type, else signed.
func intMode(ltv format.LogicalTypeValue, signed, unsigned pqMode) pqMode {
	if it, ok := ltv.(*format.IntType); ok && !it.IsSigned {
		return unsigned
	}
	return signed
}

// readFast reads m values of a page without nulls with a typed reader, when
// the page offers one (plain, non-dictionary pages). done is false when it
// could not, and nothing was read.
func (pc *pqColumn) readFast(vr parquet.ValueReader, m int) (done bool, err error) {
	c := pc.col
	switch pc.mode {
	case pqDouble:
		c.Floats, done, err = readInto(vr, c.Floats, pc.n, m, parquet.DoubleReader.ReadDoubles)
	case pqInt64:
		c.Ints, done, err = readInto(vr, c.Ints, pc.n, m, parquet.Int64Reader.ReadInt64s)
	case pqInt32:
		c.Ints, done, err = readWidened(vr, c.Ints, pc.n, m, parquet.Int32Reader.ReadInt32s)
	case pqFloat:
		c.Floats, done, err = readWidened(vr, c.Floats, pc.n, m, parquet.FloatReader.ReadFloats)
	case pqBool:
		c.Bools, done, err = readInto(vr, c.Bools, pc.n, m, parquet.BooleanReader.ReadBooleans)
	}
	if !done || err != nil {
		return done, err
	}
	if c.Nulls != nil {
		c.Nulls = grow(c.Nulls, m)
	}
	pc.n += m
	return true, nil
}

// grow returns s extended by m zero elements.
func grow[T any](s []T, m int) []T {
	n := len(s)
	if cap(s)-n < m {
		s = append(s[:cap(s)], make([]T, n+m-cap(s))...)
	}
	s = s[:n+m]
	clear(s[n:])
	return s
}

// readInto reads m values at dst[n:n+m], grown to hold them, with read,
// a method of the typed reader R; ok is false, and nothing read, when vr is
// not an R.
func readInto[R any, T any](vr parquet.ValueReader, dst []T, n, m int, read func(R, []T) (int, error)) (_ []T, ok bool, err error) {
	rd, ok := vr.(R)
	if !ok {
		return dst, false, nil
	}
	dst = grow(dst, m)
	return dst, true, readAll(dst[n:n+m], func(b []T) (int, error) { return read(rd, b) })
}

// readWidened is readInto for 32-bit values stored widened to 64 bits;
// dst grows only when all m were read.
func readWidened[R any, S int32 | float32, D int64 | float64](vr parquet.ValueReader, dst []D, n, m int, read func(R, []S) (int, error)) (_ []D, ok bool, err error) {
	buf, ok, err := readInto(vr, []S(nil), 0, m, read)
	if !ok || err != nil {
		return dst, ok, err
	}
	dst = grow(dst, m)
	for i, v := range buf {
		dst[n+i] = D(v)
	}
	return dst, true, nil
}

// readAll fills dst with a typed page reader.
func readAll[T any](dst []T, read func([]T) (int, error)) error {
	for len(dst) > 0 {
		k, err := read(dst)
		if k < 0 || k > len(dst) {
			return fmt.Errorf("page reader returned %d values", k)
		}
		dst = dst[k:]
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if k == 0 {
			return errors.New("page reader made no progress")
		}
	}
	if len(dst) > 0 {
		return fmt.Errorf("page ends %d values short", len(dst))
	}
	return nil
}

// readGeneric reads m values through parquet.Value, which every page offers
// (dictionary-encoded and optional pages included).
func (pc *pqColumn) readGeneric(vr parquet.ValueReader, m int) error {
	var buf [512]parquet.Value
	got := 0
	for got < m {
		k, err := vr.ReadValues(buf[:min(len(buf), m-got)])
		if k < 0 || k > len(buf) {
			return fmt.Errorf("page reader returned %d values", k)
		}
		for _, v := range buf[:k] {
			if err := pc.appendValue(v); err != nil {
				return err
			}
		}
		got += k
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if k == 0 {
			return errors.New("page reader made no progress")
		}
	}
	if got != m {
		return fmt.Errorf("page of %d rows holds %d values", m, got)
	}
	return nil
}

// julianUnixEpoch is the Julian day number of 1970-01-01.
const julianUnixEpoch = 2440588

func (pc *pqColumn) appendValue(v parquet.Value) error {
	c := pc.col
	if v.IsNull() {
		if c.Nulls == nil {
			c.Nulls = make([]bool, pc.n)
		}
		c.Nulls = append(c.Nulls, true)
		switch c.Type {
		case Float:
			c.Floats = append(c.Floats, 0)
		case Int:
			c.Ints = append(c.Ints, 0)
		case Bool:
			c.Bools = append(c.Bools, false)
		case String:
			c.Strings = append(c.Strings, "")
		case Time:
			c.Times = append(c.Times, time.Time{})
		}
		pc.n++
		return nil
	}
	switch pc.mode {
	case pqBool:
		c.Bools = append(c.Bools, v.Boolean())
	case pqInt32:
		c.Ints = append(c.Ints, int64(v.Int32()))
	case pqUint32:
		c.Ints = append(c.Ints, int64(v.Uint32()))
	case pqInt64:
		c.Ints = append(c.Ints, v.Int64())
	case pqUint64:
		u := v.Uint64()
		if u > math.MaxInt64 {
			return &CellError{Row: pc.n + 1, Column: c.Name, Problem: fmt.Sprintf("unsigned value %d does not fit a signed 64-bit integer", u)}
		}
		c.Ints = append(c.Ints, int64(u))
	case pqFloat:
		c.Floats = append(c.Floats, float64(v.Float()))
	case pqDouble:
		c.Floats = append(c.Floats, v.Double())
	case pqString:
		c.Strings = append(c.Strings, string(v.ByteArray()))
	case pqDate:
		c.Times = append(c.Times, time.Unix(int64(v.Int32())*86400, 0).UTC())
	case pqTimestamp:
		c.Times = append(c.Times, unitTime(v.Int64(), pc.unit))
	case pqInt96:
		c.Times = append(c.Times, int96Time(v.Int96()))
	}
	if c.Nulls != nil {
		c.Nulls = append(c.Nulls, false)
	}
	pc.n++
	return nil
}

func unitTime(x int64, unit time.Duration) time.Time {
	switch unit {
	case time.Millisecond:
		return time.UnixMilli(x).UTC()
	case time.Microsecond:
		return time.UnixMicro(x).UTC()
	}
	return time.Unix(0, x).UTC()
}

// int96Time decodes a legacy Impala / Spark timestamp: 8 bytes of nanoseconds
// within the day, then 4 bytes of Julian day.
func int96Time(v deprecated.Int96) time.Time {
	nanos := int64(uint64(v[1])<<32 | uint64(v[0]))
	days := int64(v[2]) - julianUnixEpoch
	return time.Unix(days*86400, 0).Add(time.Duration(nanos)).UTC()
}

// group is a Parquet group node whose fields keep the order given (a
// parquet.Group sorts them by name).
type group []parquet.Field

func (g group) ID() int                           { return 0 }
func (g group) String() string                    { return parquet.NewSchema("", g).String() }
func (g group) Type() parquet.Type                { return parquet.Group{}.Type() }
func (g group) Optional() bool                    { return false }
func (g group) Repeated() bool                    { return false }
func (g group) Required() bool                    { return true }
func (g group) Leaf() bool                        { return false }
func (g group) Fields() []parquet.Field           { return g }
func (g group) Encoding() encoding.Encoding       { return nil }
func (g group) Compression() compress.Codec       { return nil }
func (g group) GoType() reflect.Type              { return reflect.TypeFor[map[string]any]() }
func (f field) Name() string                      { return f.name }
func (f field) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// field is a named node of a group.
type field struct {
	parquet.Node
	name string
}

// writeChunk is the number of values handed to a Parquet column writer at a
// time; rowGroupRows is the number of rows in a row group.
const (
	writeChunk   = 4096
	rowGroupRows = 1 << 20
)

func writeParquet(w io.Writer, t *Table) error {
	if len(t.cols) == 0 {
		return errors.New("table has no columns")
	}
	fields := make(group, len(t.cols))
	for j, c := range t.cols {
		var node parquet.Node
		switch c.Type {
		case Float:
			node = parquet.Leaf(parquet.DoubleType)
		case Int:
			node = parquet.Int(64)
		case Bool:
			node = parquet.Leaf(parquet.BooleanType)
		case String:
			node = parquet.Encoded(parquet.String(), &parquet.RLEDictionary)
		case Time:
			node = parquet.Timestamp(parquet.Microsecond)
		default:
			return fmt.Errorf("column %q: unknown type %v", c.Name, c.Type)
		}
		if c.Nulls != nil {
			node = parquet.Optional(node)
		}
		fields[j] = field{Node: node, name: c.Name}
	}
	schema := parquet.NewSchema("dagmm", fields)
	cfg, err := parquet.NewWriterConfig(schema, parquet.Compression(&parquet.Snappy),
		parquet.CreatedBy("github.com/dagmm/dagmm", "", ""))
	if err != nil {
		return err
	}
	// Write column by column: the values of one column go straight to its
	// column writer, with no row assembly; a row group every rowGroupRows.
	pw := parquet.NewGenericWriter[any](w, cfg)
	vals := make([]parquet.Value, min(writeChunk, t.n))
	for lo := 0; lo < t.n; lo += rowGroupRows {
		hi := min(lo+rowGroupRows, t.n)
		cws := pw.ColumnWriters()
		for j, c := range t.cols {
			for a := lo; a < hi; a += writeChunk {
				b := min(a+writeChunk, hi)
				for i := a; i < b; i++ {
					vals[i-a] = pqValue(c, i, j)
				}
				if _, err := cws[j].WriteRowValues(vals[:b-a]); err != nil {
					return fmt.Errorf("column %q: %w", c.Name, err)
				}
			}
		}
		if err := pw.Flush(); err != nil {
			return err
		}
	}
	return pw.Close()
}

// pqValue returns row i of column c as the Parquet value of column index j.
func pqValue(c *Column, i, j int) parquet.Value {
	def := 0
	if c.Nulls != nil {
		if c.Nulls[i] {
			return parquet.NullValue().Level(0, 0, j)
		}
		def = 1
	}
	var v parquet.Value
	switch c.Type {
	case Float:
		v = parquet.DoubleValue(c.Floats[i])
	case Int:
		v = parquet.Int64Value(c.Ints[i])
	case Bool:
		v = parquet.BooleanValue(c.Bools[i])
	case String:
		v = parquet.ByteArrayValue([]byte(c.Strings[i]))
	case Time:
		v = parquet.Int64Value(c.Times[i].UnixMicro())
	}
	return v.Level(0, def, j)
}
