package datasets

import (
	"strings"
)

// DefaultEventColumn is the name of the column in which the existing
// monitoring flags the rows it already raised an event on.
const DefaultEventColumn = "event"

// Flagged reports whether row i of c holds a truthy value, that is, an
// event: a non-zero number (NaN included), true, or a string other than "",
// "0", "false" and "no" (trimmed, any letter case; "true", "yes" and "1"
// are events), or a timestamp other than the zero time. A null is never
// flagged.
func Flagged(c *Column, i int) bool {
	if c.IsNull(i) {
		return false
	}
	switch c.Type {
	case Float:
		return c.Floats[i] != 0
	case Int:
		return c.Ints[i] != 0
	case Bool:
		return c.Bools[i]
	case String:
		switch strings.ToLower(strings.TrimSpace(c.Strings[i])) {
		case "", "0", "false", "no":
			return false
		}
		return true
	case Time:
		return !c.Times[i].IsZero()
	}
	return false
}

// RemoveEvents returns a new table without the rows flagged (see [Flagged])
// in the named column, and how many rows it removed; the rows used are
// kept.Len(). The event column itself stays in kept. A missing column is an
// error that matches [ErrNoColumn]; check with [Table.Column] first when the
// column is optional. When every row is flagged, the error matches
// [ErrNoRows].
func RemoveEvents(t *Table, column string) (kept *Table, removed int, err error) {
	c, ok := t.Column(column)
	if !ok {
		return nil, 0, failf(ErrNoColumn, "datasets: no event column %q (columns: %s)", column, columnList(t.Names()))
	}
	rows := make([]int, 0, t.Len())
	for i := range t.Len() {
		if !Flagged(c, i) {
			rows = append(rows, i)
		}
	}
	removed = t.Len() - len(rows)
	if len(rows) == 0 && t.Len() > 0 {
		return nil, removed, failf(ErrNoRows, "datasets: all %d rows are flagged in event column %q", removed, column)
	}
	return t.Take(rows), removed, nil
}
