package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"gonum.org/v1/gonum/floats/scalar"
)

// seedFeatures are the seed's four features, in the order of the default
// mapping.
var seedFeatures = []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

// metric is a Telegraf metric written by the tests in Telegraf's wire
// formats.
type metric struct {
	name   string
	tags   map[string]string
	fields map[string]any // int64, uint64, float64, bool or string
	ts     time.Time
}

// influx encodes m as Telegraf's influx serializer does: tags and fields
// sorted by key, integers with the i suffix, nanosecond timestamp, '\n'.
func (m metric) influx(t testing.TB) []byte {
	t.Helper()
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	enc.StartLine(m.name)
	for _, k := range sortedKeys(m.tags) {
		enc.AddTag(k, m.tags[k])
	}
	for _, k := range sortedKeys(m.fields) {
		v, ok := lineprotocol.NewValue(m.fields[k])
		if !ok {
			t.Fatalf("field %s: unsupported value %#v", k, m.fields[k])
		}
		enc.AddField(k, v)
	}
	enc.EndLine(m.ts)
	if err := enc.Err(); err != nil {
		t.Fatal(err)
	}
	return enc.Bytes()
}

// json encodes m as Telegraf's JSON serializer does: encoding/json of a map
// with fields, name, tags and timestamp (Unix seconds), then '\n'.
func (m metric) json(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(m.object())
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func (m metric) object() map[string]any {
	return map[string]any{"fields": m.fields, "name": m.name, "tags": m.tags, "timestamp": m.ts.Unix()}
}

// jsonBatch encodes metrics as Telegraf's batch format, {"metrics":[...]}.
func jsonBatch(t testing.TB, ms []metric) []byte {
	t.Helper()
	objs := make([]any, len(ms))
	for i, m := range ms {
		objs[i] = m.object()
	}
	b, err := json.Marshal(map[string]any{"metrics": objs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// hostState is what a synthetic host reports in one interval.
type hostState struct {
	idle    float64 // cpu-total usage_idle
	memUsed float64 // mem used_percent
	ioTime  int64   // diskio io_time of vda, ms counter
	loopIO  int64   // diskio io_time of loop0 (filtered out)
	recv    int64   // net bytes_recv of eth0
	recv1   int64   // net bytes_recv of eth1
	loRecv  int64   // net bytes_recv of lo (filtered out)
}

// hostMetrics returns the messages Telegraf's cpu, mem, diskio and net inputs
// produce for one host and interval: cpu-total and one core, two disks, three
// interfaces.
func hostMetrics(host string, ts time.Time, s hostState) []metric {
	tags := func(kv ...string) map[string]string {
		m := map[string]string{"host": host}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	return []metric{
		{"cpu", tags("cpu", "cpu-total"), map[string]any{"usage_idle": s.idle, "usage_user": 100 - s.idle, "usage_system": 0.0}, ts},
		{"cpu", tags("cpu", "cpu0"), map[string]any{"usage_idle": 3.0, "usage_user": 97.0}, ts},
		{"mem", tags(), map[string]any{"used_percent": s.memUsed, "used": int64(s.memUsed * 1e7), "total": int64(1e9)}, ts},
		{"diskio", tags("name", "vda"), map[string]any{"io_time": s.ioTime, "reads": int64(42), "weighted_io_time": s.ioTime * 2}, ts},
		{"diskio", tags("name", "loop0"), map[string]any{"io_time": s.loopIO, "reads": int64(1)}, ts},
		{"net", tags("interface", "eth0"), map[string]any{"bytes_recv": s.recv, "bytes_sent": int64(7), "speed": int64(-1)}, ts},
		{"net", tags("interface", "eth1"), map[string]any{"bytes_recv": s.recv1, "bytes_sent": int64(7)}, ts},
		{"net", tags("interface", "lo"), map[string]any{"bytes_recv": s.loRecv, "bytes_sent": int64(7)}, ts},
		{"net", tags("interface", "all"), map[string]any{"icmp_inmsgs": int64(3)}, ts}, // protocol stats: no bytes_recv
	}
}

// readLines returns the lines of a test data file, each with its '\n' as
// Telegraf published it.
func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append(bytes.Clone(sc.Bytes()), '\n'))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// wantVector is an expected vector.
type wantVector struct {
	host   string
	ts     int64 // Unix seconds
	values []float64
}

// checkVectors compares vectors in order, values within tol.
func checkVectors(t *testing.T, got []Vector, want []wantVector, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		for _, v := range got {
			t.Logf("got %s %d %v", v.Host, v.TS.Unix(), v.Values)
		}
		t.Fatalf("got %d vectors, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Host != w.host || g.TS.Unix() != w.ts || g.TS.Nanosecond() != 0 {
			t.Errorf("vector %d: got host %s ts %v, want %s %d", i, g.Host, g.TS, w.host, w.ts)
			continue
		}
		if len(g.Values) != len(w.values) {
			t.Errorf("vector %d (%s %d): got %d values, want %d", i, w.host, w.ts, len(g.Values), len(w.values))
			continue
		}
		for j := range w.values {
			if !scalar.EqualWithinAbsOrRel(g.Values[j], w.values[j], tol, tol) {
				t.Errorf("vector %d (%s %d): %s = %v, want %v", i, w.host, w.ts, seedFeatures[j], g.Values[j], w.values[j])
			}
		}
	}
}
