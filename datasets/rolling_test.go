package datasets

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var rollFeatures = []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

// rollRow is row i of the test rows.
func rollRow(i int) (time.Time, string, []float64) {
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * time.Second)
	return ts, fmt.Sprintf("host-%d", i%3), []float64{float64(i), 0.5 * float64(i), 1e-3 * float64(i), 1.2e6 + float64(i)}
}

// checkRolled reads the files and checks that they hold rows from, from+1,
// ... in order, with the sizes given.
func checkRolled(t *testing.T, files []string, from int, sizes ...int) {
	t.Helper()
	if len(files) != len(sizes) {
		t.Fatalf("%d files %v, want %d", len(files), files, len(sizes))
	}
	i := from
	for k, path := range files {
		tab, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]string{"timestamp", "host"}, rollFeatures...); !slices.Equal(tab.Names(), want) {
			t.Fatalf("%s: columns %v, want %v", path, tab.Names(), want)
		}
		if tab.Len() != sizes[k] {
			t.Errorf("%s: %d rows, want %d", path, tab.Len(), sizes[k])
		}
		tsCol, _ := tab.Column("timestamp")
		hostCol, _ := tab.Column("host")
		if tsCol.Type != Time || hostCol.Type != String {
			t.Fatalf("%s: timestamp %v, host %v", path, tsCol.Type, hostCol.Type)
		}
		x, err := Matrix(tab, rollFeatures)
		if err != nil {
			t.Fatal(err)
		}
		for r := range tab.Len() {
			ts, host, v := rollRow(i)
			if !tsCol.Times[r].Equal(ts) || hostCol.Strings[r] != host || !slices.Equal(x[r*4:(r+1)*4], v) {
				t.Fatalf("%s row %d: %v %s %v, want %v %s %v", path, r, tsCol.Times[r], hostCol.Strings[r], x[r*4:(r+1)*4], ts, host, v)
			}
			i++
		}
	}
}

// visible lists the files of dir not starting with '.'.
func visible(t *testing.T, dir string) (names, hidden []string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") {
			hidden = append(hidden, e.Name())
		} else {
			names = append(names, e.Name())
		}
	}
	return names, hidden
}

func TestRollingByRows(t *testing.T) {
	dir := t.TempDir()
	var rolled []string
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Prefix: "telegraf", Features: rollFeatures, MaxRows: 10,
		OnRoll: func(path string, rows int) { rolled = append(rolled, fmt.Sprintf("%s:%d", filepath.Base(path), rows)) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
		// While a file is written it has a hidden name only: a file under
		// a final name is always whole.
		if names, hidden := visible(t, dir); len(names) != (i+1)/10 || (i%10 != 9 && len(hidden) != 1) {
			t.Fatalf("after row %d: files %v, hidden %v", i, names, hidden)
		}
	}
	if total, pending := w.Rows(); total != 25 || pending != 5 {
		t.Errorf("rows %d, pending %d", total, pending)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := w.Files()
	checkRolled(t, files, 0, 10, 10, 5)
	names, hidden := visible(t, dir)
	if len(names) != 3 || len(hidden) != 0 {
		t.Errorf("files %v, hidden %v after Close", names, hidden)
	}
	for i, f := range files {
		if b := filepath.Base(f); !strings.HasPrefix(b, "telegraf-") || !strings.HasSuffix(b, fmt.Sprintf("-%04d.parquet", i+1)) {
			t.Errorf("file name %s", b)
		}
		if i > 0 && files[i-1] >= f {
			t.Errorf("file names do not sort in order: %s, %s", files[i-1], f)
		}
	}
	if len(rolled) != 3 || !strings.HasSuffix(rolled[2], ":5") {
		t.Errorf("OnRoll calls %v", rolled)
	}
	if err := w.Write(rollRow(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRollingByAge(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Features: rollFeatures, MaxRows: -1, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing written: no file, whatever the time.
	if err := w.Tick(time.Now().Add(2 * time.Hour)); err != nil || len(w.Files()) != 0 {
		t.Fatalf("tick without rows: %v, files %v", err, w.Files())
	}
	for i := range 5 {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Tick(time.Now()); err != nil || len(w.Files()) != 0 {
		t.Fatalf("tick before MaxAge: %v, files %v", err, w.Files())
	}
	if err := w.Tick(time.Now().Add(time.Hour)); err != nil || len(w.Files()) != 1 {
		t.Fatalf("tick after MaxAge: %v, files %v", err, w.Files())
	}
	for i := 5; i < 8; i++ {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := w.Roll(); err != nil { // nothing to roll: no empty file
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRolled(t, w.Files(), 0, 5, 3)
	if !strings.HasPrefix(filepath.Base(w.Files()[0]), DefaultRollingPrefix+"-") {
		t.Errorf("default prefix: %s", w.Files()[0])
	}
}

func TestRollingManyRowGroups(t *testing.T) {
	// More rows than a row group: the file is still one whole file.
	if testing.Short() {
		t.Skip("short")
	}
	w, err := NewRollingWriter(RollingConfig{Dir: t.TempDir(), Features: rollFeatures, MaxRows: -1})
	if err != nil {
		t.Fatal(err)
	}
	const n = rollingRowGroup + 1000
	for i := range n {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRolled(t, w.Files(), 0, n)
}

func TestRollingNameTaken(t *testing.T) {
	// Files of an earlier run with the names this run would use are kept:
	// the new file takes the next sequence number.
	dir := t.TempDir()
	now := time.Now().UTC()
	var taken []string
	for _, ts := range []time.Time{now, now.Add(time.Second)} {
		for seq := 1; seq <= 2; seq++ {
			p := filepath.Join(dir, fmt.Sprintf("samples-%s-%04d.parquet", ts.Format("20060102T150405Z"), seq))
			if err := os.WriteFile(p, []byte("earlier"), 0o644); err != nil {
				t.Fatal(err)
			}
			taken = append(taken, p)
		}
	}
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Features: rollFeatures})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rollRow(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(taken, w.Files()[0]) {
		t.Errorf("wrote over %s", w.Files()[0])
	}
	for _, p := range taken {
		if b, err := os.ReadFile(p); err != nil || string(b) != "earlier" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	checkRolled(t, w.Files(), 0, 1)
}

func TestRollingConcurrent(t *testing.T) {
	w, err := NewRollingWriter(RollingConfig{Dir: t.TempDir(), Features: rollFeatures, MaxRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if err := w.Write(rollRow(g*50 + i)); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					w.Tick(time.Now())
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range w.Files() {
		tab, err := ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += tab.Len()
	}
	if n != 200 || len(w.Files()) != 29 {
		t.Errorf("%d rows in %d files, want 200 in 29", n, len(w.Files()))
	}
}

func TestRollingErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  RollingConfig
		want string
	}{
		{"no dir", RollingConfig{Dir: filepath.Join(dir, "nope"), Features: rollFeatures}, "no such file"},
		{"not a dir", RollingConfig{Dir: file, Features: rollFeatures}, "not a directory"},
		{"no features", RollingConfig{Dir: dir}, "no feature"},
		{"empty name", RollingConfig{Dir: dir, Features: []string{"a", ""}}, "feature 2 has no name"},
		{"twice", RollingConfig{Dir: dir, Features: []string{"a", "a"}}, `feature "a": the name is taken`},
		{"host", RollingConfig{Dir: dir, Features: []string{"host"}}, `feature "host"`},
		{"prefix slash", RollingConfig{Dir: dir, Prefix: "a/b", Features: rollFeatures}, "prefix"},
		{"prefix dot", RollingConfig{Dir: dir, Prefix: ".x", Features: rollFeatures}, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRollingWriter(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}

	// Bad rows are refused, and the writer goes on.
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Features: rollFeatures})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	for _, tc := range []struct {
		values []float64
		want   string
	}{
		{[]float64{1, 2, 3}, "row of 3 values, want 4"},
		{[]float64{1, math.NaN(), 3, 4}, `feature "mem_usage" is NaN`},
		{[]float64{1, 2, math.Inf(1), 4}, `feature "disk_busy" is +Inf`},
	} {
		if err := w.Write(ts, "h", tc.values); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.values, err, tc.want)
		}
	}
	if err := w.Write(rollRow(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRolled(t, w.Files(), 0, 1)
}

func TestRollingFailure(t *testing.T) {
	// The directory disappears under the writer: the roll fails, the error
	// says how many rows are lost and sticks, and Close reports it.
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Features: rollFeatures})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = w.Roll()
	if err == nil || !strings.Contains(err.Error(), "3 rows of the file being written are lost") {
		t.Fatalf("roll into a removed directory: %v", err)
	}
	if err2 := w.Write(rollRow(4)); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("write after the failure: %v", err2)
	}
	if err2 := w.Close(); err2 == nil {
		t.Error("Close after the failure: nil error")
	}
}

func TestConcat(t *testing.T) {
	dir := t.TempDir()
	w, err := NewRollingWriter(RollingConfig{Dir: dir, Features: rollFeatures, MaxRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := w.Write(rollRow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var tables []*Table
	for _, f := range w.Files() {
		tab, err := ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tab)
	}
	all, err := Concat(tables...)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "all.parquet")
	if err := WriteFile(out, all); err != nil {
		t.Fatal(err)
	}
	checkRolled(t, []string{out}, 0, 10)
	if all.SourceRow(9) != 10 {
		t.Errorf("source row of row 9: %d", all.SourceRow(9))
	}

	// Nulls are kept, and an empty table adds nothing.
	a, _ := NewTable(FloatColumn("x", []float64{1, 0}), StringColumn("s", []string{"a", "b"}))
	a.cols[0].Nulls = []bool{false, true}
	b, _ := NewTable(FloatColumn("x", []float64{3}), StringColumn("s", []string{"c"}))
	empty, _ := NewTable(FloatColumn("x", []float64{}), StringColumn("s", []string{}))
	ab, err := Concat(a, empty, b)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ab.Column("x")
	s, _ := ab.Column("s")
	if ab.Len() != 3 || !slices.Equal(x.Floats, []float64{1, 0, 3}) || !slices.Equal(x.Nulls, []bool{false, true, false}) ||
		!slices.Equal(s.Strings, []string{"a", "b", "c"}) {
		t.Errorf("concat: %d rows, x %v nulls %v, s %v", ab.Len(), x.Floats, x.Nulls, s.Strings)
	}
	if e, err := Concat(empty, empty); err != nil || e.Len() != 0 {
		t.Errorf("concat of empty tables: %v, %v", e, err)
	}

	for _, tc := range []struct {
		name   string
		tables []*Table
		want   string
	}{
		{"none", nil, "no tables"},
		{"columns", []*Table{a, mustTable(t, FloatColumn("x", []float64{1}))}, `table 2 has columns "x", table 1 has "x", "s"`},
		{"types", []*Table{a, mustTable(t, IntColumn("x", []int64{1}), StringColumn("s", []string{"c"}))}, `column "x" holds int values in table 2, float in table 1`},
	} {
		if _, err := Concat(tc.tables...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func mustTable(t *testing.T, cols ...*Column) *Table {
	t.Helper()
	tab, err := NewTable(cols...)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}
