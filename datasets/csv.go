package datasets

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ReadCSV reads a comma-separated table. The first record is the header: one
// unique, non-empty name per column (surrounding spaces and a UTF-8 byte order
// mark are dropped). Every later record is a data row, numbered from 1, and
// must have as many fields as the header.
//
// Each column gets a type from its cells:
//
//   - Numeric when its first non-empty cell is a number (anything
//     [strconv.ParseFloat] accepts after trimming spaces, NaN and Inf
//     included): Int when every cell is an integer, Float otherwise. An empty
//     or non-numeric cell later in the column is an error that names the row,
//     the column and the value.
//   - Otherwise text; but a text column in which more than half of the
//     non-empty cells are numbers is taken for a numeric column with bad
//     values, and is an error that names its first non-numeric cell.
//   - A text column whose every cell is true or false (any letter case) is
//     Bool; one whose every cell is an RFC 3339 timestamp is Time; any other
//     is String, with cells kept as they are.
//
// An input without a header, or with a header alone, is an error that
// matches [ErrNoRows].
func ReadCSV(r io.Reader) (*Table, error) {
	t, err := readCSV(r)
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	return t, nil
}

// WriteCSV writes t as CSV: a header of the column names, then one record per
// row, each cell as [Column.Text] gives it. Floats that are whole numbers get
// a ".0" so that the column reads back as Float, not Int. A null becomes an
// empty cell (so a numeric column with nulls does not read back).
func WriteCSV(w io.Writer, t *Table) error {
	if err := writeCSV(w, t); err != nil {
		return fmt.Errorf("datasets: write csv: %w", err)
	}
	return nil
}

// sentinelError carries a message of its own and matches a sentinel with
// errors.Is, without repeating the sentinel's text.
type sentinelError struct {
	msg string
	err error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.err }

func failf(sentinel error, format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), err: sentinel}
}

// csvColumn accumulates one column's cells while the file is read.
type csvColumn struct {
	name   string
	kind   csvKind
	empty  int // leading empty cells, while kind is csvUnknown
	floats []float64
	ints   []int64 // kept while every number is an integer
	allInt bool
	text   []string
	// For text columns: how many non-empty cells are numbers, and the first
	// cell that is not, in case the column turns out mostly numeric.
	numbers, nonEmpty int
	firstText         int
	firstTextValue    string
}

type csvKind uint8

const (
	csvUnknown csvKind = iota // only empty cells so far
	csvNumber
	csvText
)

func readCSV(r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, failf(ErrNoRows, "empty file: want a header row and data rows")
	}
	if err != nil {
		return nil, err
	}
	cols := make([]*csvColumn, len(header))
	seen := make(map[string]int, len(header))
	for j, h := range header {
		if j == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("header: column %d has no name", j+1)
		}
		if k, dup := seen[h]; dup {
			return nil, fmt.Errorf("header: column name %q appears twice (columns %d and %d)", h, k+1, j+1)
		}
		seen[h] = j
		cols[j] = &csvColumn{name: h, allInt: true}
	}
	n := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n++
		if len(rec) != len(cols) {
			return nil, fmt.Errorf("row %d has %d fields, the header has %d", n, len(rec), len(cols))
		}
		for j, cell := range rec {
			if err := cols[j].add(n, cell); err != nil {
				return nil, err
			}
		}
	}
	if n == 0 {
		return nil, failf(ErrNoRows, "header but no data rows")
	}
	t := &Table{n: n, sized: true, byName: make(map[string]int, len(cols))}
	for j, c := range cols {
		col, err := c.finish()
		if err != nil {
			return nil, err
		}
		t.byName[col.Name] = j
		t.cols = append(t.cols, col)
	}
	return t, nil
}

// add appends the cell of data row row (1-based).
func (c *csvColumn) add(row int, cell string) error {
	s := strings.TrimSpace(cell)
	switch c.kind {
	case csvUnknown:
		if s == "" {
			c.empty++
			return nil
		}
		if _, ok := parseNumber(s); ok {
			if c.empty > 0 {
				return &CellError{Row: row - c.empty, Column: c.name, Problem: "empty cell in a numeric column"}
			}
			c.kind = csvNumber
			return c.add(row, cell)
		}
		c.kind = csvText
		c.text = make([]string, c.empty, max(c.empty, 64))
		return c.add(row, cell)
	case csvNumber:
		if s == "" {
			return &CellError{Row: row, Column: c.name, Problem: "empty cell in a numeric column"}
		}
		v, ok := parseNumber(s)
		if !ok {
			return &CellError{Row: row, Column: c.name, Problem: fmt.Sprintf("%q is not a number", cell)}
		}
		c.floats = append(c.floats, v)
		if c.allInt {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				c.ints = append(c.ints, i)
			} else {
				c.allInt, c.ints = false, nil
			}
		}
	case csvText:
		c.text = append(c.text, cell)
		if s == "" {
			return nil
		}
		c.nonEmpty++
		if _, ok := parseNumber(s); ok {
			c.numbers++
		} else if c.firstText == 0 {
			c.firstText, c.firstTextValue = row, cell
		}
	}
	return nil
}

// finish returns the typed column.
func (c *csvColumn) finish() (*Column, error) {
	switch c.kind {
	case csvNumber:
		if c.allInt {
			return IntColumn(c.name, c.ints), nil
		}
		return FloatColumn(c.name, c.floats), nil
	case csvUnknown:
		return StringColumn(c.name, make([]string, c.empty)), nil
	}
	if 2*c.numbers > c.nonEmpty {
		return nil, &CellError{Row: c.firstText, Column: c.name, Problem: fmt.Sprintf("%q is not a number", c.firstTextValue)}
	}
	if c.nonEmpty == len(c.text) {
		if b, ok := parseBools(c.text); ok {
			return BoolColumn(c.name, b), nil
		}
		if ts, ok := parseTimes(c.text); ok {
			return TimeColumn(c.name, ts), nil
		}
	}
	return StringColumn(c.name, c.text), nil
}

// parseNumber parses a trimmed cell as a float64. Out-of-range values such as
// 1e999 count as numbers (±Inf), so that they are reported as infinite where a
// finite value is needed.
func parseNumber(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return v, true
		}
		return 0, false
	}
	return v, true
}

func parseBools(cells []string) ([]bool, bool) {
	out := make([]bool, len(cells))
	for i, c := range cells {
		switch s := strings.TrimSpace(c); {
		case strings.EqualFold(s, "true"):
			out[i] = true
		case strings.EqualFold(s, "false"):
		default:
			return nil, false
		}
	}
	return out, true
}

func parseTimes(cells []string) ([]time.Time, bool) {
	out := make([]time.Time, len(cells))
	for i, c := range cells {
		ts, err := time.Parse(time.RFC3339, strings.TrimSpace(c))
		if err != nil {
			return nil, false
		}
		out[i] = ts
	}
	return out, true
}

func writeCSV(w io.Writer, t *Table) error {
	if len(t.cols) == 0 {
		return errors.New("table has no columns")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	cols := t.cols
	rec := make([]string, len(cols))
	if err := cw.Write(t.Names()); err != nil {
		return err
	}
	for i := range t.n {
		for j, c := range cols {
			rec[j] = cellText(c, i)
		}
		if len(rec) == 1 && rec[0] == "" {
			// A lone empty field would be an empty line, which readers skip.
			cw.Flush()
			if _, err := bw.WriteString("\"\"\n"); err != nil {
				return err
			}
			continue
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// cellText is Column.Text, with ".0" on whole floats so that the column keeps
// its type when read back.
func cellText(c *Column, i int) string {
	s := c.Text(i)
	if c.Type == Float && !c.IsNull(i) && !strings.ContainsAny(s, ".eEnN") {
		s += ".0"
	}
	return s
}
