package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// The first line of each capture, decoded by hand.
func TestDecodeTelegrafCaptures(t *testing.T) {
	tests := []struct {
		file   string
		format Format
		n      int // metrics in the file
		first  Measurement
		fields int // numeric fields of the first metric
	}{
		{"testdata/telegraf-1.37-influx.txt", FormatInflux, 39, Measurement{
			Name:   "mem",
			Tags:   []Tag{{"host", "vm"}},
			Fields: []Field{{"free", 23933980672}, {"used_percent", 2.4009641192275963}},
			Time:   time.Unix(1795546168, 0).UTC(), // 1795546168000000000 ns
		}, 34},
		{"testdata/telegraf-1.37-json.txt", FormatJSON, 39, Measurement{
			Name:   "net",
			Tags:   []Tag{{"host", "vm"}, {"interface", "eth0"}},
			Fields: []Field{{"bytes_recv", 799928576}, {"speed", -1}},
			Time:   time.Unix(1795546192, 0).UTC(), // 1795546192 s
		}, 9},
	}
	for _, tc := range tests {
		t.Run(tc.format.String(), func(t *testing.T) {
			d := NewTelegrafDecoder()
			lines := readLines(t, tc.file)
			if len(lines) != tc.n {
				t.Fatalf("%d lines, want %d", len(lines), tc.n)
			}
			var all []Measurement
			for i, line := range lines {
				ms, err := d.Decode(nil, line, FormatAuto)
				if err != nil || len(ms) != 1 {
					t.Fatalf("line %d: %d metrics, %v", i+1, len(ms), err)
				}
				m := ms[0]
				if _, ok := m.Tag("host"); !ok || m.Time.IsZero() || len(m.Fields) == 0 {
					t.Errorf("line %d: %+v lacks host, time or fields", i+1, m)
				}
				all = append(all, m)
			}
			got := all[0]
			if got.Name != tc.first.Name || !slices.Equal(got.Tags, tc.first.Tags) || !got.Time.Equal(tc.first.Time) || len(got.Fields) != tc.fields {
				t.Errorf("first metric %+v, want %+v with %d fields", got, tc.first, tc.fields)
			}
			for _, f := range tc.first.Fields {
				if v, ok := got.Field(f.Key); !ok || v != f.Value {
					t.Errorf("field %s = %v, want %v", f.Key, v, f.Value)
				}
			}
			// The whole file as one message (influx use_batch_format) gives
			// the same metrics.
			if tc.format == FormatInflux {
				batch, err := d.DecodeLineProtocol(nil, bytes.Join(lines, nil))
				if err != nil || !equalMeasurements(batch, all) {
					t.Errorf("the file as one message: %d metrics, %v", len(batch), err)
				}
			}
		})
	}
}

func equalMeasurements(a, b []Measurement) bool {
	return slices.EqualFunc(a, b, func(x, y Measurement) bool {
		return x.Name == y.Name && x.Time.Equal(y.Time) && slices.Equal(x.Tags, y.Tags) && slices.Equal(x.Fields, y.Fields)
	})
}

// The batch file (use_batch_format) holds the first 8 metrics of the JSON
// capture.
func TestDecodeTelegrafJSONBatch(t *testing.T) {
	d := NewTelegrafDecoder()
	batch := readLines(t, "testdata/telegraf-1.37-json-batch.txt")[0]
	got, err := d.DecodeJSON(nil, batch)
	if err != nil {
		t.Fatal(err)
	}
	var want []Measurement
	for _, line := range readLines(t, "testdata/telegraf-1.37-json.txt")[:8] {
		ms, err := d.DecodeJSON(nil, line)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ms...)
	}
	if !equalMeasurements(got, want) {
		t.Errorf("batch gave %d metrics, different from its 8 lines", len(got))
	}
}

func TestDecodeJSON(t *testing.T) {
	ts := time.Unix(1795546192, 0).UTC()
	tests := []struct {
		name string
		in   string
		want []Measurement
	}{
		{"telegraf", `{"fields":{"usage_idle":97.5,"up":true,"down":false,"mode":"x","n":null},"name":"cpu","tags":{"cpu":"cpu-total","host":"a"},"timestamp":1795546192}` + "\n",
			[]Measurement{{"cpu", []Tag{{"cpu", "cpu-total"}, {"host", "a"}}, []Field{{"usage_idle", 97.5}, {"up", 1}, {"down", 0}}, ts}}},
		{"milliseconds", `{"fields":{"x":1},"name":"m","timestamp":1795546192000}`, []Measurement{{"m", nil, []Field{{"x", 1}}, ts}}},
		{"microseconds", `{"fields":{"x":1},"name":"m","timestamp":1795546192000000}`, []Measurement{{"m", nil, []Field{{"x", 1}}, ts}}},
		{"nanoseconds", `{"fields":{"x":1},"name":"m","timestamp":1795546192000000001}`, []Measurement{{"m", nil, []Field{{"x", 1}}, ts.Add(1)}}},
		{"fraction", `{"fields":{"x":1},"name":"m","timestamp":1795546192.5}`, []Measurement{{"m", nil, []Field{{"x", 1}}, ts.Add(500 * time.Millisecond)}}},
		{"RFC 3339", `{"fields":{"x":1},"name":"m","timestamp":"2026-11-24T18:49:52Z"}`, []Measurement{{"m", nil, []Field{{"x", 1}}, ts}}},
		{"no timestamp", `{"fields":{"x":1},"name":"m","other":[1]}`, []Measurement{{"m", nil, []Field{{"x", 1}}, time.Time{}}}},
		{"two objects", `{"fields":{"x":1},"name":"a"}` + "\n" + `{"fields":{"x":2},"name":"b"}`,
			[]Measurement{{"a", nil, []Field{{"x", 1}}, time.Time{}}, {"b", nil, []Field{{"x", 2}}, time.Time{}}}},
		{"batch", `{"metrics":[{"fields":{"x":1},"name":"a"},{"fields":{"x":2},"name":"b","tags":{"host":"h"}}]}`,
			[]Measurement{{"a", nil, []Field{{"x", 1}}, time.Time{}}, {"b", []Tag{{"host", "h"}}, []Field{{"x", 2}}, time.Time{}}}},
		{"empty", " \n", nil},
		{"empty batch", `{"metrics":[]}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewTelegrafDecoder().DecodeJSON(nil, []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !equalMeasurements(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Bad metrics: each is named (metric index, line and column, what is
// wrong); the good ones of the message are kept.
func TestDecodeTelegrafErrors(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		in     string
		keep   []string // names of the metrics kept
		errs   []string // in the error, in order
	}{
		{"influx: no field value", FormatInflux,
			"cpu,host=a usage_idle=1 1795546192000000000\nmem,host=a used_percent= 1795546192000000000\nnet,host=a bytes_recv=1i\n",
			[]string{"cpu", "net"}, []string{"influx metric 1 (line 2, column 25): field value has unrecognized type", `in "mem,host=a used_percent= 1795546192000000000"`}},
		{"influx: bad integer", FormatInflux, "cpu,host=a x=12ix\n", nil, []string{"line 1", `"cpu,host=a x=12ix"`}},
		{"influx: no fields", FormatInflux, "cpu,host=a\ncpu,host=b x=1\n", []string{"cpu"}, []string{"line 1, column 11", "expected tag key or field but found '\\n'"}},
		{"influx: bad timestamp", FormatInflux, "cpu x=1 12a\n", nil, []string{"line 1", "invalid timestamp"}},
		{"influx: timestamp out of range", FormatInflux, "cpu x=1 99999999999999999999\n", nil, []string{"metric 0", "timestamp"}},
		{"influx: year 5138", FormatInflux, "cpu x=1 99999999999\n", nil, []string{"timestamp 99999999999 is out of range (years 1678 to 2262)"}},
		{"influx: several", FormatInflux, "a x=\nb y=\nc z=1\n", []string{"c"}, []string{"line 1", "line 2"}},
		{"json: syntax", FormatJSON, `{"fields":{"x":1},"name":"a"}` + "\n" + `{"fields":{"x":1,},"name":"b"}`,
			[]string{"a"}, []string{"json metric 1 (line 2, column 18): malformed JSON at offset 47"}},
		{"json: no name", FormatJSON, `{"fields":{"x":1}}`, nil, []string{`metric has no "name"`}},
		{"json: no fields", FormatJSON, `{"name":"a"}`, nil, []string{`metric has no "fields"`}},
		{"json: tag not a string", FormatJSON, `{"metrics":[{"fields":{"x":1},"name":"a","tags":{"n":1}},{"fields":{"x":1},"name":"b"}]}`,
			[]string{"b"}, []string{`json metric 0 (line 1, column 54): tag "n" is a number, want a string`}},
		{"json: field an object", FormatJSON, `{"fields":{"x":{}},"name":"a"}`, nil, []string{`field "x" is an object`}},
		{"json: field beyond float64", FormatJSON, `{"fields":{"x":1e999},"name":"a"}`, nil, []string{`field "x": 1e999 is beyond the range`}},
		{"json: bad timestamp", FormatJSON, `{"fields":{"x":1},"name":"a","timestamp":"noon"}`, nil, []string{`"timestamp" "noon" is not a number or an RFC 3339 time`}},
		{"json: timestamp out of range", FormatJSON, `{"fields":{"x":1},"name":"a","timestamp":1e300}`, nil, []string{`"timestamp" 1e300 is out of range`}},
		{"json: year 5138", FormatJSON, `{"fields":{"x":1},"name":"a","timestamp":99999999999}`, nil, []string{`"timestamp" 99999999999 is out of range`}},
		{"json: batch element", FormatJSON, `{"metrics":[1,{"fields":{"x":1},"name":"b"}]}`, []string{"b"}, []string{"json metric 0", "metric is a number"}},
		{"json: batch with name", FormatJSON, `{"metrics":[],"name":"a"}`, nil, []string{"is a batch"}},
		{"json: name twice", FormatJSON, `{"name":"a","name":"b","fields":{"x":1}}`, nil, []string{`member "name" given twice`}},
		{"json: not an object", FormatJSON, `[1]`, nil, []string{"invalid character '['"}},
		{"auto: json", FormatAuto, ` {"name":"a"}`, nil, []string{"json metric 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewTelegrafDecoder()
			got, err := d.Decode(nil, []byte(tc.in), tc.format)
			if err == nil {
				t.Fatalf("decoded %+v, want an error", got)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			var names []string
			for _, m := range got {
				names = append(names, m.Name)
			}
			if !slices.Equal(names, tc.keep) {
				t.Errorf("kept %q, want %q", names, tc.keep)
			}
			msg := err.Error()
			at := 0
			for _, want := range tc.errs {
				i := strings.Index(msg[at:], want)
				if i < 0 {
					t.Fatalf("error %q does not say %q (after offset %d)", msg, want, at)
				}
				at += i + len(want)
			}
		})
	}
}

// At most ten errors per message are listed.
func TestDecodeTelegrafManyErrors(t *testing.T) {
	msg := strings.Repeat("bad x=\n", 25)
	_, err := NewTelegrafDecoder().DecodeLineProtocol(nil, []byte(msg))
	if err == nil || strings.Count(err.Error(), "\n") != 10 || !strings.Contains(err.Error(), "and 15 more bad metrics") {
		t.Errorf("error %q, want 10 errors and a count of the rest", err)
	}
}

// Decoding into a reused slice does not mix metrics, even when a bad metric
// is dropped between good ones.
func TestDecodeReusesMemory(t *testing.T) {
	d := NewTelegrafDecoder()
	msgs := []string{
		`{"metrics":[{"fields":{"a":1,"b":2},"name":"m1","tags":{"t":"1"}},{"fields":{"c":3},"name":"m2","tags":{"u":"2","v":"3"}}]}`,
		`{"metrics":[{"fields":{"x":1},"tags":{"bad":1},"name":"gone"},{"fields":{"d":4},"name":"m3"},{"fields":{"e":5},"name":"m4","tags":{"w":"4"}}]}`,
	}
	var buf []Measurement
	var err error
	buf, _ = d.DecodeJSON(buf[:0], []byte(msgs[0]))
	buf, err = d.DecodeJSON(buf[:0], []byte(msgs[1]))
	if err == nil {
		t.Fatal("no error for the bad metric")
	}
	want := []Measurement{
		{"m3", nil, []Field{{"d", 4}}, time.Time{}},
		{"m4", []Tag{{"w", "4"}}, []Field{{"e", 5}}, time.Time{}},
	}
	if len(buf) != 2 || buf[0].Name != "m3" || len(buf[0].Tags) != 0 || !slices.Equal(buf[0].Fields, want[0].Fields) ||
		buf[1].Name != "m4" || !slices.Equal(buf[1].Tags, want[1].Tags) || !slices.Equal(buf[1].Fields, want[1].Fields) {
		t.Errorf("got %+v, want %+v", buf, want)
	}
	// The spare element must not share arrays with the kept ones.
	spare := buf[:cap(buf)]
	for i := len(buf); i < len(spare); i++ {
		for j := range buf {
			if cap(spare[i].Fields) > 0 && cap(buf[j].Fields) > 0 && &spare[i].Fields[:1][0] == &buf[j].Fields[:1][0] {
				t.Errorf("spare element %d shares Fields with element %d", i, j)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		err  bool
	}{{"influx", FormatInflux, false}, {"JSON", FormatJSON, false}, {"", FormatAuto, false}, {"line", FormatInflux, false}, {"xml", 0, true}} {
		got, err := ParseFormat(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseFormat(%q) = %v, %v", tc.in, got, err)
		}
	}
	for in, want := range map[string]Format{" \n{": FormatJSON, "cpu x=1": FormatInflux, "": FormatInflux} {
		if got := detect([]byte(in)); got != want {
			t.Errorf("detect(%q) = %v, want %v", in, got, want)
		}
	}
	if FormatJSON.String() != "json" || Format(9).String() != "Format(9)" {
		t.Error("Format.String")
	}
}

// FuzzDecodeLineProtocol: never panics; every error is a *DecodeError;
// what it decodes has a name and fields, and encodes back to line protocol
// that decodes to the same.
func FuzzDecodeLineProtocol(f *testing.F) {
	for _, s := range []string{
		"cpu,cpu=cpu-total,host=vm usage_user=73.9,usage_idle=0 1795546170000000000\n",
		"mem,host=vm free=23933980672i,used_percent=2.4 1795546168000000000\nnet,host=vm,interface=eth0 bytes_recv=799928576i\n",
		"a\\ b,t\\=1=v\\,2 s=\"str \\\" x\",b=true,u=3u 1\n", "a x=", "a,b x=1 -5\r\n", "# comment\n\na x=1e309\n", "a x=1 99999999999999999999",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewTelegrafDecoder()
		ms, err := d.DecodeLineProtocol(nil, data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Format != FormatInflux {
				t.Fatalf("error %v is not an influx *DecodeError", err)
			}
		}
		if len(ms) == 0 {
			return
		}
		for _, m := range ms {
			if m.Name == "" {
				t.Fatalf("metric without a name: %+v", m)
			}
			for _, fl := range m.Fields {
				if math.IsNaN(fl.Value) || math.IsInf(fl.Value, 0) {
					t.Fatalf("non-finite field %+v", fl)
				}
			}
			// Round trip, for metrics whose time encodes in nanoseconds at
			// or above 1e17, which decode as nanoseconds again.
			if sec := m.Time.Unix(); len(m.Fields) == 0 || !m.Time.IsZero() && (sec > -1e8 && sec < 1e8 || sec > 9e9 || sec < -9e9) {
				continue
			}
			var enc lineprotocol.Encoder
			enc.SetLax(true)
			enc.StartLine(m.Name)
			for _, tg := range m.Tags {
				enc.AddTag(tg.Key, tg.Value)
			}
			for _, fl := range m.Fields {
				enc.AddField(fl.Key, lineprotocol.MustNewValue(fl.Value))
			}
			enc.EndLine(m.Time)
			if enc.Err() != nil {
				t.Fatalf("encode %+v: %v", m, enc.Err())
			}
			again, err := NewTelegrafDecoder().DecodeLineProtocol(nil, enc.Bytes())
			if err != nil {
				t.Fatalf("re-encoded %q: %v", enc.Bytes(), err)
			}
			if !equalMeasurements(again, []Measurement{m}) {
				t.Fatalf("round trip: %+v, want %+v", again, m)
			}
		}
	})
}

// FuzzDecodeTelegrafJSON: never panics; every error is a *DecodeError; a
// message accepted without error is valid JSON (a sequence of values), and
// every metric has a name.
func FuzzDecodeTelegrafJSON(f *testing.F) {
	for _, s := range []string{
		`{"fields":{"usage_idle":97.5,"up":true,"mode":"x"},"name":"cpu","tags":{"cpu":"cpu-total","host":"a"},"timestamp":1795546192}` + "\n",
		`{"metrics":[{"fields":{"x":1},"name":"a"},{"fields":{"x":2},"name":"b","tags":{"host":"h"},"timestamp":"2026-11-24T18:49:52Z"}]}`,
		`{"fields":{"x":1e999},"name":"a"}`, `{"metrics":[1,{}]}`, `{"name":"\ud800","fields":{}} {"name":"b","fields":{"y":-0.5e-3}}`,
		`{"fields":{"x":1},"name":"a","timestamp":1795546192000000001}`, "{\"name\":\"\xff\",\"fields\":{\"x\":[[[]]]}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := NewTelegrafDecoder().DecodeJSON(nil, data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Format != FormatJSON || de.Line < 1 || de.Column < 1 {
				t.Fatalf("error %v is not a json *DecodeError with a position", err)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var v any
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
			}
		}
		for _, m := range ms {
			if m.Name == "" {
				t.Fatalf("metric without a name: %+v", m)
			}
		}
	})
}
