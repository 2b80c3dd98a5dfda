package ingest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// rwSeries is one time series of a test WriteRequest.
type rwSeries struct {
	labels  [][2]string
	values  []float64
	times   []int64
	unknown bool // add an exemplar-numbered field, to be skipped
}

// writeRequest encodes series as a protobuf WriteRequest (not compressed).
func writeRequest(series ...rwSeries) []byte {
	var b []byte
	for _, s := range series {
		var ts []byte
		for _, l := range s.labels {
			var lb []byte
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l[0])
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l[1])
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		for i, v := range s.values {
			var sb []byte
			sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
			sb = protowire.AppendFixed64(sb, math.Float64bits(v))
			sb = protowire.AppendTag(sb, 2, protowire.VarintType)
			sb = protowire.AppendVarint(sb, uint64(s.times[i]))
			ts = protowire.AppendTag(ts, 2, protowire.BytesType)
			ts = protowire.AppendBytes(ts, sb)
		}
		if s.unknown {
			ts = protowire.AppendTag(ts, 3, protowire.BytesType)
			ts = protowire.AppendBytes(ts, []byte{8, 1})
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ts)
	}
	// A metadata entry (field 3), which the decoder skips.
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte{0x12, 1, 'x'})
	return b
}

func feature(name, host string, v float64, ms int64) rwSeries {
	return rwSeries{labels: [][2]string{{"__name__", name}, {"instance", host}}, values: []float64{v}, times: []int64{ms}}
}

func TestRemoteWriteDecode(t *testing.T) {
	t0 := int64(1_796_500_000_000)
	stale := math.Float64frombits(StaleNaN)
	body := snappy.Encode(nil, writeRequest(
		rwSeries{labels: [][2]string{{"__name__", "dagmm:cpu_usage"}, {"instance", "web-1:9100"}, {"job", "node"}},
			values: []float64{37.5, 38, stale}, times: []int64{t0, t0 + 1000, t0 + 2000}, unknown: true},
		feature("dagmm:mem_usage", "web-1:9100", math.NaN(), t0),
	))
	var d RemoteWriteDecoder
	w, err := d.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if w.Series != 2 || len(w.Samples) != 3 || len(w.Ends) != 1 {
		t.Fatalf("series %d, samples %d, ends %d; want 2, 3, 1", w.Series, len(w.Samples), len(w.Ends))
	}
	m := w.Samples[1]
	if m.Name != "dagmm:cpu_usage" || !slices.Equal(m.Tags, []Tag{{"instance", "web-1:9100"}, {"job", "node"}}) ||
		len(m.Fields) != 1 || m.Fields[0] != (Field{RemoteWriteField, 38}) || !m.Time.Equal(time.UnixMilli(t0+1000)) {
		t.Errorf("second sample %+v", m)
	}
	if v := w.Samples[2].Fields[0].Value; !math.IsNaN(v) || IsStaleNaN(v) {
		t.Errorf("an ordinary NaN should be a sample, got %v", v)
	}
	if e := w.Ends[0]; e.Name != "dagmm:cpu_usage" || !e.Time.Equal(time.UnixMilli(t0+2000)) {
		t.Errorf("end %+v", e)
	}
}

func TestRemoteWriteErrors(t *testing.T) {
	valid := writeRequest(feature("dagmm:cpu_usage", "h", 1, 0))
	framed := []byte("\xff\x06\x00\x00sNaPpY")
	badTS := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3)
	tests := []struct {
		name    string
		body    []byte
		max     int
		want    error
		mention string
	}{
		{"plain protobuf", valid, 0, ErrNotSnappy, ""},
		{"framed snappy", framed, 0, ErrNotSnappy, ""},
		{"empty", nil, 0, ErrNotSnappy, ""},
		{"json", snappy.Encode(nil, []byte(`{"timeseries":[]}`)), 0, ErrNotWriteRequest, ""},
		{"truncated", snappy.Encode(nil, valid[:len(valid)-6]), 0, ErrNotWriteRequest, ""},
		{"timeseries as varint", snappy.Encode(nil, badTS), 0, ErrNotWriteRequest, "timeseries 1"},
		{"no name", snappy.Encode(nil, writeRequest(rwSeries{labels: [][2]string{{"instance", "h"}}})), 0, ErrNotWriteRequest, "__name__"},
		{"empty label name", snappy.Encode(nil, writeRequest(rwSeries{labels: [][2]string{{"__name__", "x"}, {"", "h"}}})), 0, ErrNotWriteRequest, "empty name"},
		{"bad utf-8", snappy.Encode(nil, writeRequest(rwSeries{labels: [][2]string{{"__name__", "x\xff"}}})), 0, ErrNotWriteRequest, "UTF-8"},
		{"compressed too large", snappy.Encode(nil, valid), 8, ErrTooLarge, "limit 8"},
		{"decompressed too large", snappy.Encode(nil, make([]byte, 4096)), 1024, ErrTooLarge, "4096 bytes decompressed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := RemoteWriteDecoder{MaxSize: tt.max}
			w, err := d.Decode(tt.body)
			if !errors.Is(err, tt.want) || w != nil {
				t.Fatalf("Decode: %v, %v; want %v", w, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// TestRemoteWriteAssembles: remote-written features become one vector per
// host and evaluation.
func TestRemoteWriteAssembles(t *testing.T) {
	names := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	a, err := NewAssembler(PrometheusConfig(names, 15*time.Second), names)
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_796_500_005_000)
	var series []rwSeries
	for _, h := range []string{"web-1:9100", "db-1:9100"} {
		for i, n := range names {
			series = append(series, rwSeries{labels: [][2]string{{"__name__", "dagmm:" + n}, {"instance", h}},
				values: []float64{float64(i + 1), float64(i + 11)}, times: []int64{t0, t0 + 15000}})
		}
	}
	series = append(series, feature("node_load1", "web-1:9100", 3, t0)) // not a feature: ignored
	var d RemoteWriteDecoder
	w, err := d.Decode(snappy.Encode(nil, writeRequest(series...)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(t0 + 16000)
	vs, err := a.AddRemoteWrite(w, now)
	if err != nil {
		t.Fatal(err)
	}
	vs = append(vs, a.Drain()...)
	if len(vs) != 4 {
		t.Fatalf("%d vectors, want 2 hosts x 2 evaluations: %+v", len(vs), vs)
	}
	for _, v := range vs {
		off := 0.0
		if v.TS.UnixMilli() == t0+15000-(t0+15000)%15000 {
			off = 10
		}
		if want := []float64{1 + off, 2 + off, 3 + off, 4 + off}; !slices.Equal(v.Values, want) {
			t.Errorf("%s %v: %v, want %v", v.Host, v.TS, v.Values, want)
		}
	}
	if s := a.Stats(); s.Ignored != 1 {
		t.Errorf("ignored %d, want 1 (node_load1)", s.Ignored)
	}
}

func FuzzRemoteWrite(f *testing.F) {
	f.Add(snappy.Encode(nil, writeRequest(feature("dagmm:cpu_usage", "h", 1, 5), rwSeries{labels: [][2]string{{"__name__", "x"}}, values: []float64{math.Float64frombits(StaleNaN)}, times: []int64{1}})))
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x02, 0x0a, 0x00}))
	f.Add([]byte("\xff\x06\x00\x00sNaPpY"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := RemoteWriteDecoder{MaxSize: 1 << 16}
		w, err := d.Decode(body)
		if err != nil {
			if !errors.Is(err, ErrNotSnappy) && !errors.Is(err, ErrNotWriteRequest) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		for _, m := range append(w.Samples, w.Ends...) {
			if m.Name == "" || len(m.Fields) != 1 {
				t.Fatalf("bad measurement %+v", m)
			}
		}
	})
}

// BenchmarkRemoteWrite decodes remote write bodies of 500 hosts' four
// feature series (2,000 samples, Prometheus's max_samples_per_send) and
// assembles them into vectors; samples/s is the figure.
func BenchmarkRemoteWrite(b *testing.B) {
	const hosts, rounds = 500, 64
	names := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	t0 := int64(1_796_500_005_000)
	bodies := make([][]byte, rounds)
	for k := range bodies {
		var series []rwSeries
		for h := range hosts {
			for i, n := range names {
				series = append(series, feature("dagmm:"+n, fmt.Sprintf("host-%05d:9100", h), float64(i+h%50), t0+int64(k)*15000))
			}
		}
		bodies[k] = snappy.Encode(nil, writeRequest(series...))
	}
	var d RemoteWriteDecoder
	var a *Assembler
	vectors := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % rounds
		if k == 0 {
			b.StopTimer()
			var err error
			if a, err = NewAssembler(PrometheusConfig(names, 15*time.Second), names); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		w, err := d.Decode(bodies[k])
		if err != nil {
			b.Fatal(err)
		}
		vs, err := a.AddRemoteWrite(w, time.UnixMilli(t0+int64(k)*15000+1000))
		if err != nil {
			b.Fatal(err)
		}
		vectors += len(vs)
	}
	b.ReportMetric(float64(b.N*hosts*len(names))/b.Elapsed().Seconds(), "samples/s")
	if b.N > rounds && vectors == 0 {
		b.Fatal("no vectors")
	}
}

// TestRemoteWriteEnds checks that stale markers end series: a vector is
// never made with a stale value, an interval waiting for a series that
// ended is finalised without it, and a host all of whose series ended is
// forgotten.
func TestRemoteWriteEnds(t *testing.T) {
	names := []string{"cpu_usage", "mem_usage"}
	stale := math.Float64frombits(StaleNaN)
	const t0 = int64(1_796_500_005_000) // a multiple of the interval, plus 5 s
	both := func(host string, ms int64, cpu, mem float64) []rwSeries {
		return []rwSeries{feature("dagmm:cpu_usage", host, cpu, ms), feature("dagmm:mem_usage", host, mem, ms)}
	}
	tests := []struct {
		name        string
		second      []rwSeries // the request after a first complete interval of h1
		wantVectors int        // from the second request, before any deadline
		wantHosts   int
		wantEnded   uint64
		wantIncompl uint64 // after a Flush past the deadlines
	}{
		{"every series ends: the host is forgotten",
			[]rwSeries{feature("dagmm:cpu_usage", "h1", stale, t0+15000), feature("dagmm:mem_usage", "h1", stale, t0+15000)},
			0, 0, 2, 0},
		{"one series ends: the next interval of the other is incomplete, not scored with a stale value",
			[]rwSeries{feature("dagmm:mem_usage", "h1", 7, t0+15000), feature("dagmm:cpu_usage", "h1", stale, t0+15000)},
			0, 1, 1, 1},
		{"a value then its marker in the same interval: the value counts",
			append(both("h1", t0+15000, 3, 4), feature("dagmm:cpu_usage", "h1", stale, t0+16000)),
			1, 1, 1, 0},
		{"a marker for a series never seen: nothing ends",
			append(both("h1", t0+15000, 3, 4), feature("dagmm:cpu_usage", "h9", stale, t0+15000)),
			1, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAssembler(PrometheusConfig(names, 15*time.Second), names)
			if err != nil {
				t.Fatal(err)
			}
			var d RemoteWriteDecoder
			add := func(series []rwSeries, now int64) []Vector {
				w, err := d.Decode(snappy.Encode(nil, writeRequest(series...)))
				if err != nil {
					t.Fatal(err)
				}
				vs, err := a.AddRemoteWrite(w, time.UnixMilli(now))
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range vs {
					for _, x := range v.Values {
						if math.IsNaN(x) {
							t.Fatalf("vector %+v has a NaN", v)
						}
					}
				}
				return vs
			}
			add(both("h1", t0, 1, 2), t0+1000)
			first := a.Flush(time.UnixMilli(t0 + 20000)) // past the first interval's deadline
			if len(first) != 1 {
				t.Fatalf("first interval: %d vectors, want 1", len(first))
			}
			vs := add(tt.second, t0+16000)
			if len(vs) != tt.wantVectors {
				t.Errorf("%d vectors, want %d: %+v", len(vs), tt.wantVectors, vs)
			}
			for _, v := range vs {
				if want := []float64{3, 4}; !slices.Equal(v.Values, want) {
					t.Errorf("vector %v, want %v", v.Values, want)
				}
			}
			if late := a.Flush(time.UnixMilli(t0 + 60000)); len(late) != 0 {
				t.Errorf("after the deadline: %+v, want no vector", late)
			}
			s := a.Stats()
			if s.Hosts != tt.wantHosts || s.Ended != tt.wantEnded || s.Incomplete != tt.wantIncompl {
				t.Errorf("hosts %d, ended %d, incomplete %d; want %d, %d, %d", s.Hosts, s.Ended, s.Incomplete,
					tt.wantHosts, tt.wantEnded, tt.wantIncompl)
			}
			if tt.wantHosts == 0 && s.HostsEnded != 1 {
				t.Errorf("hosts ended %d, want 1", s.HostsEnded)
			}
		})
	}
}
