package datasets

import (
	"fmt"
	"math"
	"strings"
)

// DefaultExclude returns, in a new slice, the column names that
// [SelectFeatures] leaves out when it picks the features itself: timestamp,
// ts, time, host, label and event (compared without regard to letter case).
// Callers pass it, or their own list, to SelectFeatures.
func DefaultExclude() []string {
	return []string{"timestamp", "ts", "time", "host", "label", "event"}
}

// SelectFeatures returns the names of the feature columns of t.
//
// With names given, it returns them (in a new slice, in that order) after
// checking that each is a numeric column of t, named once; a missing column is
// an error that matches [ErrNoColumn] and lists the available ones, and a
// column that is not numeric matches [ErrNotNumeric].
//
// With no names, it returns every numeric (Float or Int) column of t, in table
// order, whose name is not in exclude (without regard to letter case); pass
// [DefaultExclude] for the usual list.
//
// A table with no rows is an error matching [ErrNoRows]; no feature column at
// all is an error matching [ErrNoFeatures].
func SelectFeatures(t *Table, names, exclude []string) ([]string, error) {
	if t.Len() == 0 {
		return nil, failf(ErrNoRows, "datasets: no data rows")
	}
	if len(names) > 0 {
		seen := make(map[string]bool, len(names))
		for _, name := range names {
			c, ok := t.Column(name)
			if !ok {
				return nil, failf(ErrNoColumn, "datasets: no column %q (columns: %s)", name, columnList(t.Names()))
			}
			if !c.Type.Numeric() {
				return nil, failf(ErrNotNumeric, "datasets: column %q holds %v values, not numbers", name, c.Type)
			}
			if seen[name] {
				return nil, fmt.Errorf("datasets: feature %q named twice", name)
			}
			seen[name] = true
		}
		return append([]string(nil), names...), nil
	}
	skip := make(map[string]bool, len(exclude))
	for _, e := range exclude {
		skip[strings.ToLower(e)] = true
	}
	var out []string
	for _, c := range t.cols {
		if c.Type.Numeric() && !skip[strings.ToLower(c.Name)] {
			out = append(out, c.Name)
		}
	}
	if len(out) == 0 {
		return nil, failf(ErrNoFeatures, "datasets: no numeric column to use as a feature (columns: %s; excluded: %s)",
			columnList(t.Names()), columnList(exclude))
	}
	return out, nil
}

// Matrix returns the named columns of t as a new row-major n×d float64
// matrix: element (i, j) is at i*d + j, for n = t.Len() rows and d =
// len(names) columns. Int columns are converted. A NaN, an infinite or a
// missing (null) value is an error naming its row and column (a [*CellError]);
// so are a missing or non-numeric column, no names, and a table with no rows.
func Matrix(t *Table, names []string) ([]float64, error) {
	if t.Len() == 0 {
		return nil, failf(ErrNoRows, "datasets: no data rows")
	}
	if len(names) == 0 {
		return nil, failf(ErrNoFeatures, "datasets: no feature columns given")
	}
	n, d := t.Len(), len(names)
	vals := make([][]float64, d) // each column as float64s, checked
	for j, name := range names {
		c, ok := t.Column(name)
		if !ok {
			return nil, failf(ErrNoColumn, "datasets: no column %q (columns: %s)", name, columnList(t.Names()))
		}
		if !c.Type.Numeric() {
			return nil, failf(ErrNotNumeric, "datasets: column %q holds %v values, not numbers", name, c.Type)
		}
		v := c.Floats
		if c.Type != Float || c.Nulls != nil {
			v = make([]float64, n)
			for i := range v {
				f, ok := c.Float64(i)
				if !ok {
					return nil, fmt.Errorf("datasets: %w", &CellError{Row: t.SourceRow(i), Column: name, Problem: "missing value"})
				}
				v[i] = f
			}
		}
		for i, f := range v {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("datasets: %w", &CellError{Row: t.SourceRow(i), Column: name, Problem: fmt.Sprintf("%v is not a finite number", f)})
			}
		}
		vals[j] = v
	}
	x := make([]float64, n*d)
	for i := range n {
		row := x[i*d : i*d+d]
		for j := range row {
			row[j] = vals[j][i]
		}
	}
	return x, nil
}
