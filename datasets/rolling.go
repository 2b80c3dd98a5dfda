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
	"time"

	"github.com/parquet-go/parquet-go"
)

// RollingConfig configures a [RollingWriter]. Zero fields take the defaults
// documented on each.
type RollingConfig struct {
	// Dir is the directory the files go to. It must exist.
	Dir string
	// Prefix starts every file name:
	// <Prefix>-<time the file was started, UTC>-<sequence>.parquet, for
	// example samples-20261124T100000Z-0001.parquet. Default "samples".
	Prefix string
	// Features names the float columns that follow timestamp and host, in
	// order. Required; no name may be empty, repeated, "timestamp" or
	// "host".
	Features []string
	// MaxRows completes the file once it holds this many rows and starts
	// the next. Default 100,000; negative for no limit.
	MaxRows int
	// MaxAge completes the file once it was started this long ago, at the
	// next [RollingWriter.Tick]. Default 1h; negative for no limit.
	MaxAge time.Duration
	// OnRoll, when set, is called with each file completed and its number
	// of rows, with the writer locked (it must not call the writer).
	OnRoll func(path string, rows int)
}

// Defaults of [RollingConfig].
const (
	DefaultRollingPrefix  = "samples"
	DefaultRollingMaxRows = 100_000
	DefaultRollingMaxAge  = time.Hour
)

// rollingRowGroup bounds the rows a file being written keeps in memory: a
// row group goes to the file every rollingRowGroup rows.
const rollingRowGroup = 1 << 16

// RollingWriter records rows of (timestamp, host, features...) to a series
// of Parquet files, so that a long collection ends up in files of bounded
// size that are each complete.
//
// A file is written under a hidden temporary name (".<name>.tmp") in Dir;
// when it is complete (MaxRows reached, MaxAge passed, [RollingWriter.Roll]
// or [RollingWriter.Close]) its footer is written, it is synced to disk and
// renamed to its final name, so a file under a final name is always whole
// and readable by [ReadFile], with columns timestamp (a UTC timestamp,
// microseconds), host (a string) and the features (doubles). Every row
// Write accepted is in a complete file once Close returns. A crash (a
// kill -9, a power cut) loses the rows of the file being written, whose
// temporary file is left behind unreadable; MaxRows and MaxAge bound that
// loss.
//
// A file is started by the first row after the previous one was completed:
// no empty files. The memory a file takes while written is bounded by its
// row groups of 65,536 rows, whatever MaxRows.
//
// A RollingWriter is safe for concurrent use. After a failed write to the
// file system every method returns that error: the rows of the file being
// written are lost, and the temporary file is removed by Close.
type RollingWriter struct {
	mu     sync.Mutex
	cfg    RollingConfig
	schema *parquet.Schema
	seq    int
	files  []string
	total  int64
	err    error // sticky: the file system failed
	closed bool

	// The file being written, if any.
	f      *os.File
	pw     *parquet.GenericWriter[any]
	tmp    string
	opened time.Time
	rows   int
	row    parquet.Row
}

// ErrClosed is returned by the methods of a [RollingWriter] after Close.
var ErrClosed = errors.New("datasets: rolling writer closed")

// NewRollingWriter checks cfg and returns a writer. It creates no file
// until the first row.
func NewRollingWriter(cfg RollingConfig) (*RollingWriter, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultRollingPrefix
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = DefaultRollingMaxRows
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultRollingMaxAge
	}
	if strings.ContainsAny(cfg.Prefix, `/\`) || strings.HasPrefix(cfg.Prefix, ".") {
		return nil, fmt.Errorf("datasets: rolling writer: prefix %q: want a plain file name start, without '/' and not starting with '.'", cfg.Prefix)
	}
	if st, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("datasets: rolling writer: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("datasets: rolling writer: %s is not a directory", cfg.Dir)
	}
	if len(cfg.Features) == 0 {
		return nil, fmt.Errorf("datasets: rolling writer: %w", ErrNoFeatures)
	}
	fields := group{
		field{Node: parquet.Timestamp(parquet.Microsecond), name: "timestamp"},
		field{Node: parquet.Encoded(parquet.String(), &parquet.RLEDictionary), name: "host"},
	}
	seen := map[string]bool{"timestamp": true, "host": true}
	for i, name := range cfg.Features {
		switch {
		case name == "":
			return nil, fmt.Errorf("datasets: rolling writer: feature %d has no name", i+1)
		case seen[name]:
			return nil, fmt.Errorf("datasets: rolling writer: feature %q: the name is taken (features must be distinct, and not timestamp or host)", name)
		}
		seen[name] = true
		fields = append(fields, field{Node: parquet.Leaf(parquet.DoubleType), name: name})
	}
	cfg.Features = slices.Clone(cfg.Features)
	return &RollingWriter{cfg: cfg, schema: parquet.NewSchema("dagmm", fields)}, nil
}

// Write appends one row: the sample's time, its host and one finite value
// per feature, in the order of RollingConfig.Features. A row of the wrong
// length or with a NaN or infinite value is refused (nothing is written).
// When the file reaches MaxRows it is completed.
func (w *RollingWriter) Write(ts time.Time, host string, values []float64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if len(values) != len(w.cfg.Features) {
		return fmt.Errorf("datasets: rolling writer: row of %d values, want %d (%s)", len(values), len(w.cfg.Features), strings.Join(w.cfg.Features, ", "))
	}
	for j, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("datasets: rolling writer: host %q at %s: feature %q is %v", host, ts.UTC().Format(time.RFC3339), w.cfg.Features[j], v)
		}
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return w.fail(err)
		}
	}
	r := w.row[:0]
	r = append(r, parquet.Int64Value(ts.UnixMicro()).Level(0, 0, 0))
	r = append(r, parquet.ByteArrayValue([]byte(host)).Level(0, 0, 1))
	for j, v := range values {
		r = append(r, parquet.DoubleValue(v).Level(0, 0, 2+j))
	}
	w.row = r
	if _, err := w.pw.WriteRows([]parquet.Row{r}); err != nil {
		return w.fail(fmt.Errorf("write %s: %w", w.tmp, err))
	}
	w.rows++
	w.total++
	if w.cfg.MaxRows > 0 && w.rows >= w.cfg.MaxRows {
		return w.roll()
	}
	return nil
}

// Tick completes the file being written if it was started MaxAge or more
// before now. Call it periodically.
func (w *RollingWriter) Tick(now time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if w.f != nil && w.cfg.MaxAge > 0 && now.Sub(w.opened) >= w.cfg.MaxAge {
		return w.roll()
	}
	return nil
}

// Roll completes the file being written now, if there is one.
func (w *RollingWriter) Roll() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.roll()
}

// Close completes the file being written, if any, and makes the writer
// refuse further rows. After a failure it removes the temporary file and
// returns the failure. Closing twice returns nil.
func (w *RollingWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err != nil {
		w.discard()
		return w.err
	}
	return w.roll()
}

// Files returns the paths of the files completed so far, in order.
func (w *RollingWriter) Files() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.files)
}

// Rows returns the number of rows accepted so far, and those among them in
// the file being written.
func (w *RollingWriter) Rows() (total int64, pending int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total, w.rows
}

func (w *RollingWriter) usable() error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return ErrClosed
	}
	return nil
}

// fail makes err sticky and drops the file being written.
func (w *RollingWriter) fail(err error) error {
	w.err = fmt.Errorf("datasets: rolling writer: %w (%d rows of the file being written are lost)", err, w.rows)
	w.discard()
	return w.err
}

// discard closes and removes the file being written.
func (w *RollingWriter) discard() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.tmp)
	}
	w.f, w.pw, w.rows = nil, nil, 0
}

// open starts a file under a temporary name.
func (w *RollingWriter) open() error {
	w.opened = time.Now()
	w.seq++
	w.tmp = filepath.Join(w.cfg.Dir, "."+w.name()+".tmp")
	f, err := os.OpenFile(w.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	cfg, err := parquet.NewWriterConfig(w.schema, parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(rollingRowGroup), parquet.CreatedBy("github.com/dagmm/dagmm", "", ""))
	if err != nil {
		f.Close()
		os.Remove(w.tmp)
		return err
	}
	w.f, w.pw, w.rows = f, parquet.NewGenericWriter[any](f, cfg), 0
	return nil
}

// name returns the final name of the file being written.
func (w *RollingWriter) name() string {
	return fmt.Sprintf("%s-%s-%04d.parquet", w.cfg.Prefix, w.opened.UTC().Format("20060102T150405Z"), w.seq)
}

// roll completes the file being written: footer, sync, rename to a final
// name that no file has yet.
func (w *RollingWriter) roll() error {
	if w.f == nil {
		return nil
	}
	if err := w.pw.Close(); err != nil {
		return w.fail(fmt.Errorf("write %s: %w", w.tmp, err))
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("sync %s: %w", w.tmp, err))
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		return w.fail(fmt.Errorf("close %s: %w", w.tmp, err))
	}
	path := filepath.Join(w.cfg.Dir, w.name())
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		w.seq++ // a file of an earlier run has the name
		path = filepath.Join(w.cfg.Dir, w.name())
	}
	if err := os.Rename(w.tmp, path); err != nil {
		w.f = nil
		return w.fail(err)
	}
	if d, err := os.Open(w.cfg.Dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	rows := w.rows
	w.f, w.pw, w.rows = nil, nil, 0
	w.files = append(w.files, path)
	if w.cfg.OnRoll != nil {
		w.cfg.OnRoll(path, rows)
	}
	return nil
}

// Concat returns a new table holding the rows of every table, in order:
// for example the files of a [RollingWriter], read with [ReadFile], made
// into one training set. The tables must have the same columns (names and
// types, in the same order). Its rows are numbered afresh from 1
// ([Table.SourceRow]), as in a file written from it.
func Concat(tables ...*Table) (*Table, error) {
	if len(tables) == 0 {
		return nil, failf(ErrNoRows, "datasets: concat: no tables")
	}
	first := tables[0]
	n := 0
	for i, t := range tables {
		if i > 0 {
			if !slices.Equal(t.Names(), first.Names()) {
				return nil, fmt.Errorf("datasets: concat: table %d has columns %s, table 1 has %s", i+1, columnList(t.Names()), columnList(first.Names()))
			}
			for j, c := range t.cols {
				if c.Type != first.cols[j].Type {
					return nil, fmt.Errorf("datasets: concat: column %q holds %v values in table %d, %v in table 1", c.Name, c.Type, i+1, first.cols[j].Type)
				}
			}
		}
		n += t.n
	}
	out := &Table{n: n, sized: true, byName: make(map[string]int, len(first.cols))}
	for j, c0 := range first.cols {
		c := &Column{Name: c0.Name, Type: c0.Type}
		nulls := false
		for _, t := range tables {
			tc := t.cols[j]
			switch c.Type {
			case Float:
				c.Floats = append(c.Floats, tc.Floats...)
			case Int:
				c.Ints = append(c.Ints, tc.Ints...)
			case Bool:
				c.Bools = append(c.Bools, tc.Bools...)
			case String:
				c.Strings = append(c.Strings, tc.Strings...)
			case Time:
				c.Times = append(c.Times, tc.Times...)
			}
			nulls = nulls || tc.Nulls != nil
		}
		if nulls {
			c.Nulls = make([]bool, 0, n)
			for _, t := range tables {
				if tc := t.cols[j]; tc.Nulls != nil {
					c.Nulls = append(c.Nulls, tc.Nulls...)
				} else {
					c.Nulls = append(c.Nulls, make([]bool, t.n)...)
				}
			}
		}
		if c.Len() == 0 { // keep the slice of the type set, as validate wants
			switch c.Type {
			case Float:
				c.Floats = []float64{}
			case Int:
				c.Ints = []int64{}
			case Bool:
				c.Bools = []bool{}
			case String:
				c.Strings = []string{}
			case Time:
				c.Times = []time.Time{}
			}
		}
		out.byName[c.Name] = j
		out.cols = append(out.cols, c)
	}
	return out, nil
}
