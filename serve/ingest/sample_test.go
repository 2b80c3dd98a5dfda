package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

var received = time.Date(2026, 11, 24, 10, 0, 5, 0, time.UTC)

func newSampleDecoder(t testing.TB) *SampleDecoder {
	t.Helper()
	d, err := NewSampleDecoder(seedFeatures)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSampleDecoderDecode(t *testing.T) {
	const one = `{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}`
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	vals := []float64{37.5, 61.2, 12, 1.2e6}
	tests := []struct {
		name string
		in   string
		want []Sample
	}{
		{"design example", one, []Sample{{"web-1", ts, vals, nil}}},
		{"array batch", "[" + one + ",\n " + strings.Replace(one, "web-1", "web-2", 1) + "]",
			[]Sample{{"web-1", ts, vals, nil}, {"web-2", ts, vals, nil}}},
		{"object batch", `{"samples":[` + one + "]}", []Sample{{"web-1", ts, vals, nil}}},
		{"empty batch", `[]`, []Sample{}},
		{"empty object batch", ` {"samples": []} `, []Sample{}},
		{"order and spaces", "\t{ \"values\" : { \"net_in_bps\" : 1.2E+6 , \"disk_busy\":12, \"mem_usage\":61.2,\"cpu_usage\":3.75e1 } ,\"ts\":\"2026-11-24T10:00:00Z\", \"host\":\"web-1\"}\n",
			[]Sample{{"web-1", ts, vals, nil}}},
		{"no ts: receive time", `{"host":"a","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"a", received, []float64{1, 2, 3, 4}, nil}}},
		{"null ts: receive time", `{"host":"a","ts":null,"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"a", received, []float64{1, 2, 3, 4}, nil}}},
		{"Unix seconds", `{"ts":1795514400.25,"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"", time.Unix(1795514400, 250e6).UTC(), []float64{1, 2, 3, 4}, nil}}},
		{"RFC 3339 with offset and fraction", `{"ts":"2026-11-24T11:00:00.5+01:00","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"", ts.Add(500 * time.Millisecond), []float64{1, 2, 3, 4}, nil}}},
		{"other members ignored", `{"id":"x1","labels":{"a":[1,true,null]},"host":"h","values":{"cpu_usage":-0,"mem_usage":0,"disk_busy":1e-3,"net_in_bps":9007199254740993}}`,
			[]Sample{{"h", received, []float64{0, 0, 0.001, 9007199254740992}, nil}}},
		{"escaped host", `{"host":"w\u00e9b-\"1\"\ud83d\ude00","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"wéb-\"1\"😀", received, []float64{1, 2, 3, 4}, nil}}},
		{"escaped feature name", `{"values":{"cpu\u005fusage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
			[]Sample{{"", received, []float64{1, 2, 3, 4}, nil}}},
	}
	d := newSampleDecoder(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tc.in), received)
			if err != nil {
				t.Fatal(err)
			}
			checkSamples(t, got, tc.want)
		})
	}
}

func checkSamples(t *testing.T, got, want []Sample) {
	t.Helper()
	if len(got) != len(want) || (got == nil) != (want == nil) {
		t.Fatalf("got %d samples %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Host != w.Host || !g.TS.Equal(w.TS) || len(g.Values) != len(w.Values) {
			t.Errorf("sample %d: got %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.Values {
			if math.Float64bits(g.Values[j]) != math.Float64bits(w.Values[j]) && g.Values[j] != w.Values[j] {
				t.Errorf("sample %d: %s = %v, want %v", i, seedFeatures[j], g.Values[j], w.Values[j])
			}
		}
	}
}

func TestSampleDecoderErrors(t *testing.T) {
	const vals = `"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}`
	tests := []struct {
		name     string
		in       string
		sentinel error
		index    int
		offset   int // -1: not checked
		feature  string
		text     string // in the message
	}{
		{"malformed", `{"host":"a",` + vals + `,}`, ErrSyntax, -1, 80, "", "offset 80: invalid character '}', want string for object key"},
		{"truncated", `{"host":"a",` + vals, ErrSyntax, -1, 79, "", "unexpected end of input"},
		{"bad literal", `{"values":{"cpu_usage":nul}}`, ErrSyntax, -1, 26, "cpu_usage", `want "null"`},
		{"empty", ``, ErrSyntax, -1, 0, "", "empty message"},
		{"trailing data", `{` + vals + `} {}`, ErrSyntax, -1, 70, "", "after the top-level value"},
		{"control character", "{\"host\":\"a\x01\"," + vals + "}", ErrSyntax, -1, 10, "", "control character"},
		{"bad escape", `{"host":"\x",` + vals + "}", ErrSyntax, -1, 9, "", `invalid escape 'x'`},
		{"missing feature", `{"values":{"cpu_usage":1,"mem_usage":2,"net_in_bps":4}}`, ErrMissingFeature, -1, -1, "disk_busy", `feature "disk_busy": missing feature`},
		{"no values", `{"host":"a"}`, ErrInvalidSample, -1, 0, "", `no "values" member`},
		{"unknown feature", `{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4,"gpu":5}}`, ErrUnknownFeature, -1, 68, "gpu", "the model's features are cpu_usage, mem_usage, disk_busy, net_in_bps"},
		{"duplicate feature", `{"values":{"cpu_usage":1,"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrDuplicateFeature, -1, 25, "cpu_usage", ""},
		{"string value", `{"values":{"cpu_usage":"37.5","mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrNotNumber, -1, 23, "cpu_usage", "got a string"},
		{"NaN string", `{"values":{"cpu_usage":1,"mem_usage":"NaN","disk_busy":3,"net_in_bps":4}}`, ErrNotFinite, -1, 37, "mem_usage", `"NaN"`},
		{"-Infinity string", `{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":"-Infinity","net_in_bps":4}}`, ErrNotFinite, -1, -1, "disk_busy", ""},
		{"bare NaN", `{"values":{"cpu_usage":NaN,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrSyntax, -1, 23, "cpu_usage", ""},
		{"beyond float64", `{"values":{"cpu_usage":1e999,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrNotFinite, -1, 23, "cpu_usage", "1e999 is beyond the range"},
		{"null value", `{"values":{"cpu_usage":null,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrNotNumber, -1, 23, "cpu_usage", "the value is null, want a number"},
		{"bool value", `{"values":{"cpu_usage":true,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, ErrNotNumber, -1, 23, "cpu_usage", "a boolean"},
		{"values array", `{"values":[1,2,3,4]}`, ErrInvalidSample, -1, 10, "", `"values" is an array`},
		{"host number", `{"host":7,` + vals + `}`, ErrInvalidSample, -1, 8, "", `"host" is a number, want a string`},
		{"bad ts", `{"ts":"yesterday",` + vals + `}`, ErrTimestamp, -1, 6, "", `"yesterday" is not an RFC 3339 time`},
		{"ts out of range", `{"ts":1e300,` + vals + `}`, ErrTimestamp, -1, 6, "", "out of range"},
		{"ts object", `{"ts":{},` + vals + `}`, ErrTimestamp, -1, 6, "", "is an object"},
		{"member twice", `{"host":"a","host":"b",` + vals + `}`, ErrInvalidSample, -1, 12, "", `member "host" given twice`},
		{"message is a number", `42`, ErrInvalidSample, -1, 0, "", "the message is a number"},
		{"batch element", `[{` + vals + `},{` + vals + `},{"values":{"cpu_usage":1}}]`, ErrMissingFeature, 2, -1, "mem_usage", "sample 2"},
		{"batch element not an object", `[{` + vals + `},7]`, ErrInvalidSample, 1, -1, "", "sample 1"},
		{"batch in batch", `[{"samples":[]}]`, ErrInvalidSample, 0, -1, "", `no "values"`},
		{"batch with host", `{"host":"a","samples":[]}`, ErrInvalidSample, -1, 0, "", "is a batch"},
		{"object batch element", `{"samples":[{` + vals + `},{"values":{"cpu_usage":"x"}}]}`, ErrNotNumber, 1, -1, "cpu_usage", "sample 1"},
	}
	d := newSampleDecoder(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decode([]byte(tc.in), received)
			if err == nil {
				t.Fatalf("decoded %+v, want an error", got)
			}
			var se *SampleError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v, want *SampleError", err, err)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tc.sentinel)
			}
			if se.Index != tc.index || (tc.offset >= 0 && se.Offset != tc.offset) || se.Feature != tc.feature {
				t.Errorf("error %q: index %d offset %d feature %q, want %d %d %q", err, se.Index, se.Offset, se.Feature, tc.index, tc.offset, tc.feature)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
			if strings.Count(err.Error(), "ingest:") != 1 {
				t.Errorf("error %q repeats its prefix", err)
			}
		})
	}
}

func TestSampleDecoderOptions(t *testing.T) {
	d := newSampleDecoder(t)
	d.IgnoreUnknown = true
	d.MaxSamples = 2
	s := `{"values":{"gpu":[1],"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`
	got, err := d.Decode([]byte("["+s+","+s+"]"), received)
	if err != nil || len(got) != 2 {
		t.Fatalf("IgnoreUnknown: %v %v", got, err)
	}
	if _, err := d.Decode([]byte("["+s+","+s+","+s+"]"), received); !errors.Is(err, ErrTooManySamples) {
		t.Errorf("3 samples with MaxSamples 2: %v", err)
	}
	for _, features := range [][]string{nil, {"a", ""}, {"a", "b", "a"}} {
		if _, err := NewSampleDecoder(features); err == nil {
			t.Errorf("NewSampleDecoder(%q) accepted", features)
		}
	}
	// More than 64 features (the bitset spans words).
	var many []string
	var b strings.Builder
	b.WriteString(`{"values":{`)
	for i := range 130 {
		many = append(many, fmt.Sprintf("f%d", i))
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":%d`, 129-i, 129-i)
	}
	b.WriteString("}}")
	dm, err := NewSampleDecoder(many)
	if err != nil {
		t.Fatal(err)
	}
	got, err = dm.Decode([]byte(b.String()), received)
	if err != nil || got[0].Values[100] != 100 || got[0].Values[0] != 0 || got[0].Values[129] != 129 {
		t.Fatalf("130 features: %v %v", got, err)
	}
	if _, err := dm.Decode([]byte(strings.Replace(b.String(), `"f70":70,`, "", 1)), received); !errors.Is(err, ErrMissingFeature) || !strings.Contains(err.Error(), `"f70"`) {
		t.Errorf("missing f70: %v", err)
	}
}

// Samples share Values memory in chunks but never overlap.
func TestSampleDecoderValuesDoNotAlias(t *testing.T) {
	d := newSampleDecoder(t)
	var b strings.Builder
	b.WriteString("[")
	for i := range 200 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"values":{"cpu_usage":%d,"mem_usage":%d,"disk_busy":%d,"net_in_bps":%d}}`, i, i+1, i+2, i+3)
	}
	b.WriteString("]")
	got, err := d.Decode([]byte(b.String()), received)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		for j, v := range s.Values {
			if v != float64(i+j) {
				t.Fatalf("sample %d value %d = %v, want %d", i, j, v, i+j)
			}
		}
	}
	got[0].Values = append(got[0].Values, 99) // full capacity: must not touch sample 1
	if got[1].Values[0] != 1 {
		t.Errorf("appending to sample 0 changed sample 1")
	}
}

// refDecode is the reference semantics written on encoding/json, for the
// differential fuzz test and as the baseline of the benchmark.
func refDecode(features []string, data []byte, received time.Time) ([]Sample, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	index := make(map[string]int, len(features))
	for i, f := range features {
		index[f] = i
	}
	batch := func(v any) ([]Sample, error) {
		arr, ok := v.([]any)
		if !ok {
			return nil, errors.New("batch is not an array")
		}
		out := []Sample{}
		for _, e := range arr {
			s, err := refSample(index, e, received)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	switch x := v.(type) {
	case []any:
		return batch(x)
	case map[string]any:
		if samples, ok := x["samples"]; ok {
			for _, k := range []string{"host", "ts", "values"} {
				if _, ok := x[k]; ok {
					return nil, errors.New("batch with " + k)
				}
			}
			return batch(samples)
		}
		s, err := refSample(index, x, received)
		if err != nil {
			return nil, err
		}
		return []Sample{s}, nil
	}
	return nil, errors.New("not an object or array")
}

func refSample(index map[string]int, v any, received time.Time) (Sample, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Sample{}, errors.New("sample is not an object")
	}
	s := Sample{TS: received}
	if h, ok := obj["host"]; ok {
		if s.Host, ok = h.(string); !ok {
			return Sample{}, errors.New("host is not a string")
		}
	}
	switch ts := obj["ts"].(type) {
	case nil:
	case string:
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Sample{}, err
		}
		s.TS = t
	case json.Number:
		f, err := strconv.ParseFloat(string(ts), 64)
		if err != nil {
			return Sample{}, err
		}
		t, ok := unixSeconds(f)
		if !ok {
			return Sample{}, errors.New("ts out of range")
		}
		s.TS = t
	default:
		return Sample{}, errors.New("ts of a wrong kind")
	}
	vals, ok := obj["values"].(map[string]any)
	if !ok {
		return Sample{}, errors.New("values is not an object")
	}
	s.Values = make([]float64, len(index))
	for k, v := range vals {
		i, ok := index[k]
		if !ok {
			return Sample{}, errors.New("unknown feature")
		}
		n, ok := v.(json.Number)
		if !ok {
			return Sample{}, errors.New("not a number")
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return Sample{}, err
		}
		s.Values[i] = f
	}
	if len(vals) != len(index) {
		return Sample{}, errors.New("missing feature")
	}
	return s, nil
}

// FuzzDecodeSample checks that the decoder never panics, refuses all that
// encoding/json refuses, and where it accepts a message agrees with the
// encoding/json reference exactly. It may refuse more: a member or feature
// given twice (encoding/json keeps the last) and nesting beyond 256.
func FuzzDecodeSample(f *testing.F) {
	for _, s := range []string{
		`{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}`,
		`[{"host":"a","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}},{"ts":1795514400.5,"values":{"net_in_bps":4,"disk_busy":3,"mem_usage":2,"cpu_usage":1}}]`,
		`{"samples":[{"host":"\u00e9\ud800","ts":null,"values":{"cpu_usage":-0.0e-0,"mem_usage":2,"disk_busy":3,"net_in_bps":4},"x":[{},[],"\"",true,false,null]}]}`,
		`{"values":{"cpu_usage":"NaN"}}`, `[]`, `{"samples":[]}`, `[1]`, `{"host":"a","host":"b"}`, `{"values":{"cpu_usage":1e999}}`,
		"{\"host\":\"\xff\xfe\",\"values\":{}}", `{"values":{"cpu\u005fusage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
	} {
		f.Add([]byte(s))
	}
	d, err := NewSampleDecoder(seedFeatures)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := d.Decode(data, received)
		want, werr := refDecode(seedFeatures, data, received)
		if err != nil {
			var se *SampleError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) || se.Err == nil {
				t.Fatalf("error %#v is not a *SampleError with an offset in the message", err)
			}
			if werr == nil && !errors.Is(err, ErrInvalidSample) && !errors.Is(err, ErrDuplicateFeature) && !strings.Contains(err.Error(), "nested") {
				t.Fatalf("refused %q (%v), which encoding/json accepts as %+v", data, err, want)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not valid JSON", data)
		}
		if werr != nil {
			t.Fatalf("accepted %q as %+v, which the reference refuses: %v", data, got, werr)
		}
		if len(got) != len(want) {
			t.Fatalf("%d samples, reference %d", len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Host != w.Host || !g.TS.Equal(w.TS) {
				t.Fatalf("sample %d: %q %v, reference %q %v", i, g.Host, g.TS, w.Host, w.TS)
			}
			for j := range w.Values {
				if math.Float64bits(g.Values[j]) != math.Float64bits(w.Values[j]) {
					t.Fatalf("sample %d value %d: %v, reference %v", i, j, g.Values[j], w.Values[j])
				}
			}
		}
	})
}

// batchMessage returns a batch of n samples of varied hosts and values.
func batchMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * time.Second)
		fmt.Fprintf(&b, `{"host":"web-%d","ts":%q,"values":{"cpu_usage":%.2f,"mem_usage":%.2f,"disk_busy":%.3f,"net_in_bps":%.6g}}`,
			i%50, ts.Format(time.RFC3339), 20+float64(i%700)/10, 40+float64(i%300)/10, float64(i%1000)/100, 1e6+float64(i)*1234.5)
	}
	b.WriteString(`]`)
	return b.Bytes()
}

// BenchmarkDecodeSample measures the dagmm JSON decoder in samples/s, with
// the encoding/json reference as the baseline.
func BenchmarkDecodeSample(b *testing.B) {
	d := newSampleDecoder(b)
	single := []byte(`{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}`)
	batch := batchMessage(1000)
	for _, bc := range []struct {
		name string
		msg  []byte
		n    int
	}{{"single", single, 1}, {"batch=1000", batch, 1000}} {
		b.Run("impl=scanner/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				s, err := d.Decode(bc.msg, received)
				if err != nil || len(s) != bc.n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*bc.n)/b.Elapsed().Seconds(), "samples/s")
		})
		b.Run("impl=encoding-json/"+bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				s, err := refDecode(seedFeatures, bc.msg, received)
				if err != nil || len(s) != bc.n {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*bc.n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
