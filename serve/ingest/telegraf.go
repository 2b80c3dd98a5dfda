package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Measurement is one Telegraf metric: a measurement name, its tags, its
// numeric fields and its time.
type Measurement struct {
	// Name is the measurement name, e.g. "cpu" or "diskio".
	Name string
	// Tags in the order the message gives them (Telegraf sorts them by key).
	Tags []Tag
	// Fields holds the numeric fields: integers, unsigned integers and
	// floats as float64 (integers beyond 2^53 lose their lowest bits),
	// booleans as 0 or 1. String fields are left out.
	Fields []Field
	// Time is the metric's timestamp; zero when the message has none, in
	// which case the [Assembler] uses the receive time.
	Time time.Time
}

// Tag is one tag of a [Measurement].
type Tag struct {
	Key, Value string
}

// Field is one numeric field of a [Measurement].
type Field struct {
	Key   string
	Value float64
}

// Tag returns the value of the tag with the given key.
func (m *Measurement) Tag(key string) (string, bool) {
	for i := range m.Tags {
		if m.Tags[i].Key == key {
			return m.Tags[i].Value, true
		}
	}
	return "", false
}

// Field returns the value of the field with the given key.
func (m *Measurement) Field(key string) (float64, bool) {
	for i := range m.Fields {
		if m.Fields[i].Key == key {
			return m.Fields[i].Value, true
		}
	}
	return 0, false
}

// Format is a Telegraf wire format.
type Format uint8

// Telegraf wire formats. FormatAuto picks JSON when the message's first
// non-blank byte is '{', and line protocol otherwise.
const (
	FormatAuto   Format = iota
	FormatInflux        // influx line protocol, Telegraf's default data_format
	FormatJSON          // data_format = "json"
)

// String returns "auto", "influx" or "json".
func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatInflux:
		return "influx"
	case FormatJSON:
		return "json"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ParseFormat parses "auto", "influx" (or "line") and "json", as a flag
// would give them.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return FormatAuto, nil
	case "influx", "line", "lineprotocol", "line-protocol":
		return FormatInflux, nil
	case "json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("ingest: unknown Telegraf format %q (want auto, influx or json)", s)
}

// detect resolves FormatAuto for one message.
func detect(data []byte) Format {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return FormatJSON
		}
		return FormatInflux
	}
	return FormatInflux
}

// DecodeError is one metric of a Telegraf message that could not be decoded.
// A message with several bad metrics gives several, joined with errors.Join.
type DecodeError struct {
	// Format is FormatInflux or FormatJSON.
	Format Format
	// Metric is the position of the metric in the message, from 0 (the
	// entry of line protocol, the element of a JSON batch).
	Metric int
	// Line and Column locate the problem, both from 1, Column in bytes.
	// They are 0 when unknown.
	Line, Column int
	// Text is the start of the offending line (influx), at most 80 bytes.
	Text string
	// Err says what is wrong.
	Err error
}

// Error implements error, e.g.
// `ingest: influx metric 2 (line 3, column 14): want '=' after field key "x", found " " in "cpu,host=a x 1"`.
func (e *DecodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ingest: %s metric %d", e.Format, e.Metric)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "ingest: "))
	if e.Text != "" {
		fmt.Fprintf(&b, " in %q", e.Text)
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// maxDecodeErrors bounds the errors one message reports.
const maxDecodeErrors = 10

// maxIntern bounds the decoder's table of interned strings; it is cleared
// when full.
const maxIntern = 1 << 16

// TelegrafDecoder decodes the messages Telegraf publishes into Measurements.
// It interns measurement names, tag keys and values and field keys, so that
// steady streams decode without allocating strings.
//
// Timestamps: a JSON "timestamp" may be a number or an RFC 3339 string
// (json_timestamp_format). Numbers, and line-protocol timestamps, are
// read in the unit their magnitude implies: below 1e11 seconds, below 1e14
// milliseconds, below 1e17 microseconds, nanoseconds above; this covers every
// json_timestamp_units and influx precision for dates after 1973.
//
// A TelegrafDecoder is not safe for concurrent use; use one per goroutine.
type TelegrafDecoder struct {
	strs    map[string]string
	scratch []byte
}

// NewTelegrafDecoder returns a decoder.
func NewTelegrafDecoder() *TelegrafDecoder {
	return &TelegrafDecoder{strs: make(map[string]string, 256)}
}

// intern returns b as a string, shared with earlier calls for the same bytes.
func (d *TelegrafDecoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if len(d.strs) >= maxIntern {
		clear(d.strs)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// Decode decodes one message in the given format and appends its metrics to
// dst, reusing the Tags and Fields arrays of dst's spare capacity.
//
// A bad metric does not stop the others: Decode appends every metric it
// could decode and returns, with them, an error naming each bad one (a
// [*DecodeError], or several joined; at most ten). After malformed JSON
// nothing more of the message can be read. A message with no metric at all
// is not an error.
func (d *TelegrafDecoder) Decode(dst []Measurement, data []byte, format Format) ([]Measurement, error) {
	var errs errorList
	dst = d.decode(dst, data, format, &errs)
	return dst, errs.err()
}

func (d *TelegrafDecoder) decode(dst []Measurement, data []byte, format Format, errs *errorList) []Measurement {
	if format == FormatAuto {
		format = detect(data)
	}
	switch format {
	case FormatInflux:
		return d.lineProtocol(dst, data, errs)
	case FormatJSON:
		return d.json(dst, data, errs)
	}
	errs.add(fmt.Errorf("ingest: unknown Telegraf format %d", format))
	return dst
}

// next extends dst by one Measurement, reusing spare capacity.
func next(dst []Measurement) ([]Measurement, *Measurement) {
	n := len(dst)
	if n < cap(dst) {
		dst = dst[:n+1]
		m := &dst[n]
		m.Name, m.Tags, m.Fields, m.Time = "", m.Tags[:0], m.Fields[:0], time.Time{}
		return dst, m
	}
	dst = append(dst, Measurement{})
	return dst, &dst[n]
}

// errorList collects the errors of one message.
type errorList struct {
	errs    []error
	dropped int
}

func (l *errorList) add(err error) {
	if len(l.errs) < maxDecodeErrors {
		l.errs = append(l.errs, err)
		return
	}
	l.dropped++
}

func (l *errorList) err() error {
	if l.dropped > 0 {
		l.errs = append(l.errs, fmt.Errorf("ingest: and %d more bad metrics", l.dropped))
	}
	return errors.Join(l.errs...)
}

// count is the number of bad metrics.
func (l *errorList) count() int { return len(l.errs) + l.dropped }

// DecodeLineProtocol decodes influx line protocol: one metric per line, as
// many lines as the message holds. See [TelegrafDecoder.Decode] for dst and
// errors; a line-protocol error names the line, the column and what is wrong.
func (d *TelegrafDecoder) DecodeLineProtocol(dst []Measurement, data []byte) ([]Measurement, error) {
	var errs errorList
	dst = d.lineProtocol(dst, data, &errs)
	return dst, errs.err()
}

func (d *TelegrafDecoder) lineProtocol(dst []Measurement, data []byte, errs *errorList) []Measurement {
	dec := lineprotocol.NewDecoderWithBytes(data)
	for entry := 0; dec.Next(); entry++ {
		var m *Measurement
		dst, m = next(dst)
		if err := d.lineEntry(dec, m); err != nil {
			dst = dst[:len(dst)-1]
			errs.add(lineError(data, entry, err))
		}
	}
	return dst
}

func (d *TelegrafDecoder) lineEntry(dec *lineprotocol.Decoder, m *Measurement) error {
	name, err := dec.Measurement()
	if err != nil {
		return err
	}
	m.Name = d.intern(name)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return err
		}
		if k == nil {
			break
		}
		m.Tags = append(m.Tags, Tag{Key: d.intern(k), Value: d.intern(v)})
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return err
		}
		if k == nil {
			break
		}
		var f float64
		switch v.Kind() {
		case lineprotocol.Int:
			f = float64(v.IntV())
		case lineprotocol.Uint:
			f = float64(v.UintV())
		case lineprotocol.Float:
			f = v.FloatV()
		case lineprotocol.Bool:
			if v.BoolV() {
				f = 1
			}
		default:
			continue // strings carry no numeric value
		}
		m.Fields = append(m.Fields, Field{Key: d.intern(k), Value: f})
	}
	ts, err := dec.TimeBytes()
	if err != nil {
		return err
	}
	if ts != nil {
		n, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid timestamp %q: out of range", ts)
		}
		if m.Time = unixAuto(n); !inNanoRange(m.Time) {
			return fmt.Errorf("timestamp %s is out of range (years 1678 to 2262)", ts)
		}
	}
	return nil
}

// inNanoRange reports whether t is within the int64 nanoseconds since the
// Unix epoch that time.Time.UnixNano can give (years 1678 to 2262).
func inNanoRange(t time.Time) bool {
	s := t.Unix()
	return s > -9.2e9 && s < 9.2e9
}

// lineError turns an error of the line-protocol decoder into a DecodeError.
func lineError(data []byte, entry int, err error) error {
	de := &DecodeError{Format: FormatInflux, Metric: entry, Err: err}
	var le *lineprotocol.DecodeError
	if errors.As(err, &le) {
		de.Line, de.Column, de.Err = int(le.Line), le.Column, le.Err
		de.Text = lineText(data, de.Line)
	}
	return de
}

// lineText returns the start of line n (from 1) of data.
func lineText(data []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	data = bytes.TrimSuffix(data, []byte{'\r'})
	if len(data) > 80 {
		data = data[:80]
	}
	return string(data)
}

// Bounds of the units unixAuto infers.
const (
	maxSeconds = 1e11
	maxMillis  = 1e14
	maxMicros  = 1e17
)

// unixAuto reads a Unix timestamp in the unit its magnitude implies.
func unixAuto(n int64) time.Time {
	a := n
	if a < 0 {
		a = -a
	}
	switch {
	case a < maxSeconds:
		return time.Unix(n, 0).UTC()
	case a < maxMillis:
		return time.UnixMilli(n).UTC()
	case a < maxMicros:
		return time.UnixMicro(n).UTC()
	}
	return time.Unix(0, n).UTC()
}

// unixAutoFloat is unixAuto for a number with a fraction.
func unixAutoFloat(f float64) (time.Time, bool) {
	a := math.Abs(f)
	switch {
	case math.IsNaN(f) || a >= math.MaxInt64:
		return time.Time{}, false
	case a < maxSeconds:
		return unixSeconds(f)
	case a < maxMillis:
		return unixSeconds(f / 1e3)
	case a < maxMicros:
		return unixSeconds(f / 1e6)
	}
	return time.Unix(0, int64(f)).UTC(), true
}

// DecodeJSON decodes Telegraf JSON: one metric
//
//	{"fields":{"usage_idle":97.5},"name":"cpu","tags":{"cpu":"cpu-total","host":"web-1"},"timestamp":1732442400}
//
// or the batch of use_batch_format, {"metrics":[...]}; several such objects
// may follow one another in a message. "name" and "fields" are required;
// field values may be numbers, booleans (0 or 1) or strings (left out); tags
// must be strings. See [TelegrafDecoder.Decode] for dst and errors.
func (d *TelegrafDecoder) DecodeJSON(dst []Measurement, data []byte) ([]Measurement, error) {
	var errs errorList
	dst = d.json(dst, data, &errs)
	return dst, errs.err()
}

func (d *TelegrafDecoder) json(dst []Measurement, data []byte, errs *errorList) []Measurement {
	s := scanner{data: data, scratch: d.scratch}
	defer func() { d.scratch = s.scratch[:0] }()
	metric := 0
	for !s.eof() {
		if s.peek() != '{' {
			errs.add(jsonError(&s, metric, s.unexpected("'{'")))
			return dst
		}
		var err error
		dst, err = d.jsonMetric(&s, dst, &metric, errs, true)
		if err != nil { // a syntax error: nothing more can be read
			errs.add(jsonError(&s, metric, err))
			return dst
		}
	}
	return dst
}

// jsonError wraps err with its position.
func jsonError(s *scanner, metric int, err error) error {
	off := s.pos
	var se *syntaxError
	if errors.As(err, &se) {
		off = se.off
	}
	off = min(off, len(s.data))
	line := 1 + bytes.Count(s.data[:off], []byte{'\n'})
	col := off + 1
	if i := bytes.LastIndexByte(s.data[:off], '\n'); i >= 0 {
		col = off - i
	}
	return &DecodeError{Format: FormatJSON, Metric: metric, Line: line, Column: col, Err: err}
}

// Member bits of a Telegraf JSON metric.
const (
	tmName = 1 << iota
	tmFields
	tmTags
	tmTime
	tmMetrics
)

// jsonMetric decodes one metric object at s.pos and appends it to dst. At the
// top level (top), the object may instead be a {"metrics":[...]} batch, whose
// metrics are appended. A semantic problem is added to errs and the metric
// dropped; a syntax error is returned, and nothing more can be read.
func (d *TelegrafDecoder) jsonMetric(s *scanner, dst []Measurement, metric *int, errs *errorList, top bool) ([]Measurement, error) {
	start := len(dst)
	var m *Measurement
	dst, m = next(dst)
	var bad error // first semantic problem of this metric
	objOff := s.pos
	members := 0
	more, err := s.objectStart()
	for more && err == nil {
		keyOff := s.pos
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		var bit int
		switch string(k) {
		case "name":
			bit = tmName
		case "fields":
			bit = tmFields
		case "tags":
			bit = tmTags
		case "timestamp":
			bit = tmTime
		case "metrics":
			if top {
				bit = tmMetrics
			}
		}
		if bit != 0 && members&bit != 0 && bad == nil {
			bad = withOffset(fmt.Errorf("member %q given twice", k), keyOff)
		}
		members |= bit
		var problem error
		switch bit {
		case tmName:
			problem, err = d.jsonName(s, m)
		case tmFields:
			problem, err = d.jsonFields(s, m)
		case tmTags:
			problem, err = d.jsonTags(s, m)
		case tmTime:
			problem, err = jsonTime(s, m)
		case tmMetrics:
			if s.peek() != '[' {
				problem = fmt.Errorf("\"metrics\" is %s, want an array of metrics", s.kindAt())
				err = s.skip(0)
				break
			}
			dst, err = d.jsonBatch(s, dst, metric, errs)
			m = &dst[start] // dst may have moved
		default:
			err = s.skip(0)
		}
		if problem != nil && bad == nil {
			bad = withOffset(problem, keyOff)
		}
		if err == nil {
			more, err = s.more('}')
		}
	}
	if err != nil {
		return remove(dst, start), err
	}
	if members&tmMetrics != 0 {
		// The batch wrapper itself is not a metric.
		if members&(tmName|tmFields|tmTags|tmTime) != 0 && bad == nil {
			bad = withOffset(errors.New("an object with \"metrics\" is a batch and cannot also have \"name\", \"fields\", \"tags\" or \"timestamp\""), objOff)
		}
		if bad != nil {
			errs.add(jsonErrorAt(s, *metric, bad))
		}
		return remove(dst, start), nil
	}
	if bad == nil {
		switch {
		case members&tmName == 0:
			bad = withOffset(errors.New("metric has no \"name\""), objOff)
		case members&tmFields == 0:
			bad = withOffset(errors.New("metric has no \"fields\""), objOff)
		}
	}
	if bad != nil {
		errs.add(jsonErrorAt(s, *metric, bad))
		*metric++
		return remove(dst, start), nil
	}
	*metric++
	return dst, nil
}

// jsonBatch decodes the array of a {"metrics":[...]} batch; it returns a
// syntax error only.
func (d *TelegrafDecoder) jsonBatch(s *scanner, dst []Measurement, metric *int, errs *errorList) ([]Measurement, error) {
	more, err := s.arrayStart()
	for more && err == nil {
		if s.peek() != '{' {
			if s.kindAt() == "" {
				return dst, s.unexpected("metric object")
			}
			errs.add(jsonError(s, *metric, fmt.Errorf("metric is %s, want an object", s.kindAt())))
			*metric++
			err = s.skip(0)
		} else {
			dst, err = d.jsonMetric(s, dst, metric, errs, false)
		}
		if err == nil {
			more, err = s.more(']')
		}
	}
	return dst, err
}

// remove removes dst[i], keeping its Tags and Fields arrays in the spare
// capacity so that no two elements ever share them.
func remove(dst []Measurement, i int) []Measurement {
	m := dst[i]
	copy(dst[i:], dst[i+1:])
	dst[len(dst)-1] = m
	return dst[:len(dst)-1]
}

// offsetError is a semantic error at a byte offset of a JSON message.
type offsetError struct {
	off int
	err error
}

func (e *offsetError) Error() string { return e.err.Error() }
func (e *offsetError) Unwrap() error { return e.err }

// withOffset places err at off, unless it has a position already.
func withOffset(err error, off int) error {
	var se *syntaxError
	var oe *offsetError
	if errors.As(err, &se) || errors.As(err, &oe) {
		return err
	}
	return &offsetError{off: off, err: err}
}

// jsonErrorAt is jsonError at the offset the error carries.
func jsonErrorAt(s *scanner, metric int, err error) error {
	var oe *offsetError
	if errors.As(err, &oe) {
		t := scanner{data: s.data, pos: oe.off}
		return jsonError(&t, metric, oe.err)
	}
	return jsonError(s, metric, err)
}

// jsonName reads "name". It returns a semantic problem, or a syntax error.
func (d *TelegrafDecoder) jsonName(s *scanner, m *Measurement) (problem, err error) {
	if s.peek() != '"' {
		return fmt.Errorf("\"name\" is %s, want a string", s.kindAt()), s.skip(0)
	}
	b, err := s.str()
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return errors.New("\"name\" is empty"), nil
	}
	m.Name = d.intern(b)
	return nil, nil
}

// jsonTags reads "tags", an object of strings.
func (d *TelegrafDecoder) jsonTags(s *scanner, m *Measurement) (problem, err error) {
	if s.peek() != '{' {
		return fmt.Errorf("\"tags\" is %s, want an object", s.kindAt()), s.skip(0)
	}
	more, err := s.objectStart()
	for more && err == nil {
		var k []byte
		if k, err = s.key(); err != nil {
			return nil, err
		}
		key := d.intern(k)
		if s.peek() != '"' {
			if problem == nil {
				problem = withOffset(fmt.Errorf("tag %q is %s, want a string", key, s.kindAt()), s.pos)
			}
			err = s.skip(0)
		} else {
			var v []byte
			if v, err = s.str(); err == nil {
				m.Tags = append(m.Tags, Tag{Key: key, Value: d.intern(v)})
			}
		}
		if err == nil {
			more, err = s.more('}')
		}
	}
	return problem, err
}

// jsonFields reads "fields": numbers, booleans and strings (left out).
func (d *TelegrafDecoder) jsonFields(s *scanner, m *Measurement) (problem, err error) {
	if s.peek() != '{' {
		return fmt.Errorf("\"fields\" is %s, want an object", s.kindAt()), s.skip(0)
	}
	more, err := s.objectStart()
	for more && err == nil {
		var k []byte
		if k, err = s.key(); err != nil {
			return nil, err
		}
		key := d.intern(k)
		switch c := s.peek(); {
		case c == '-' || isDigit(c):
			off := s.pos
			var f float64
			f, err = s.float()
			if errors.Is(err, errRange) {
				err = nil
				if problem == nil {
					problem = withOffset(fmt.Errorf("field %q: %s is beyond the range of float64", key, s.data[off:s.pos]), off)
				}
			} else if err == nil {
				m.Fields = append(m.Fields, Field{Key: key, Value: f})
			}
		case c == 't':
			if err = s.literal("true"); err == nil {
				m.Fields = append(m.Fields, Field{Key: key, Value: 1})
			}
		case c == 'f':
			if err = s.literal("false"); err == nil {
				m.Fields = append(m.Fields, Field{Key: key, Value: 0})
			}
		case c == '"' || c == 'n':
			err = s.skip(0) // strings and nulls carry no number
		default:
			if problem == nil && s.kindAt() != "" {
				problem = withOffset(fmt.Errorf("field %q is %s, want a number", key, s.kindAt()), s.pos)
			}
			err = s.skip(0)
		}
		if err == nil {
			more, err = s.more('}')
		}
	}
	return problem, err
}

// jsonTime reads "timestamp": a number in the unit its magnitude implies,
// or an RFC 3339 string.
func jsonTime(s *scanner, m *Measurement) (problem, err error) {
	switch c := s.peek(); {
	case c == '-' || isDigit(c):
		text, integer, err := s.numberText()
		if err != nil {
			return nil, err
		}
		var t time.Time
		ok := false
		if integer {
			if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
				t, ok = unixAuto(n), true
			}
		}
		if !ok {
			f, ferr := parseFloat(text)
			t, ok = unixAutoFloat(f)
			ok = ok && ferr == nil
		}
		if !ok || !inNanoRange(t) {
			return fmt.Errorf("\"timestamp\" %s is out of range", text), nil
		}
		m.Time = t
		return nil, nil
	case c == '"':
		off := s.pos
		b, err := s.str()
		if err != nil {
			return nil, err
		}
		t, perr := time.Parse(time.RFC3339Nano, string(b))
		if perr != nil {
			return withOffset(fmt.Errorf("\"timestamp\" %q is not a number or an RFC 3339 time", b), off), nil
		}
		if !inNanoRange(t) {
			return withOffset(fmt.Errorf("\"timestamp\" %q is out of range", b), off), nil
		}
		m.Time = t
		return nil, nil
	default:
		return fmt.Errorf("\"timestamp\" is %s, want a number", s.kindAt()), s.skip(0)
	}
}
