package serve

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/serve/ingest"
)

// rwPoint is one sample of a remote-written series.
type rwPoint struct {
	name, host string
	v          float64
	ms         int64
}

// appendWriteRequest appends the protobuf WriteRequest of points, each its
// own series with the labels __name__, instance and job (sorted, as
// Prometheus sends them).
func appendWriteRequest(b []byte, points []rwPoint) []byte {
	var ts, lb, sb []byte
	for _, p := range points {
		ts = ts[:0]
		for _, l := range [][2]string{{"__name__", p.name}, {"instance", p.host}, {"job", "node"}} {
			lb = protowire.AppendTag(lb[:0], 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l[0])
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l[1])
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		sb = protowire.AppendTag(sb[:0], 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(p.v))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(p.ms))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ts)
	}
	return b
}

// rwVectors returns the points of host i's vector x (the four-metric
// model's features, as the recording rules name them) at ms.
func rwVectors(features []string, host string, x []float64, ms int64) []rwPoint {
	ps := make([]rwPoint, len(features))
	for j, f := range features {
		ps[j] = rwPoint{name: "dagmm:" + f, host: host, v: x[j], ms: ms}
	}
	return ps
}

// rwConfig is a test configuration with remote write on, 1 s intervals.
func rwConfig(path string) Config {
	cfg := testConfig(path)
	cfg.RemoteWrite = RemoteWriteConfig{Enabled: true, Interval: time.Second, Flush: 50 * time.Millisecond}
	return cfg
}

// postRW posts a remote write body with the headers Prometheus sends,
// then those of header (name, value pairs; an empty value deletes).
func postRW(t testing.TB, url string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+RemoteWritePath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", RemoteWritePath, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestRemoteWriteHandler(t *testing.T) {
	// Three hosts' vectors for one evaluation, one of them an anomaly for
	// the model: 204, a scored vector per host and the anomaly's event on
	// its host's subject. Bodies that are not remote write 1.0 get the 4xx
	// Prometheus does not retry, and take nothing.
	path, m := writeModel(t, t.TempDir(), 1)
	normal, anomalies := testData(t, m, 2, 1, 7)
	d := len(m.Features)
	cfg := rwConfig(path)
	cfg.HTTP.MaxBodyBytes = 64 << 10
	cfg.RemoteWrite.MaxDecodedBytes = 256 << 10
	r := start(t, cfg)
	nc := natstest.Connect(t, r.NATSURL())
	events := collect(t, nc, "anomalies.>")
	reg := r.Registry()

	ms := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	var points []rwPoint
	points = append(points, rwVectors(m.Features, "web-1:9100", normal[:d], ms)...)
	points = append(points, rwVectors(m.Features, "web-2:9100", normal[d:2*d], ms)...)
	points = append(points, rwVectors(m.Features, "db-1:9100", anomalies[:d], ms)...)
	valid := snappy.Encode(nil, appendWriteRequest(nil, points))
	var framed bytes.Buffer
	fw := snappy.NewBufferedWriter(&framed)
	_, _ = fw.Write(appendWriteRequest(nil, points))
	_ = fw.Close()
	// A series with a host label that cannot name a host, next to a good
	// host's vector: the good one is taken.
	badHost := appendWriteRequest(nil, rwVectors(m.Features, "bad host", normal[:d], ms))
	badHost = snappy.Encode(nil, appendWriteRequest(badHost, rwVectors(m.Features, "web-3:9100", normal[:d], ms)))
	// Decodes to 300 KB, over the 256 KB limit, from a small body.
	bomb := snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 150<<10))
	tests := []struct {
		name   string
		body   []byte
		header []string
		code   int
		want   string
	}{
		{"valid", valid, nil, http.StatusNoContent, ""},
		{"valid, no content headers", valid, []string{"Content-Type", "", "Content-Encoding", ""}, http.StatusNoContent, ""},
		{"not snappy", appendWriteRequest(nil, points), nil, http.StatusBadRequest, "not snappy"},
		{"framed snappy", framed.Bytes(), nil, http.StatusBadRequest, "not snappy"},
		{"garbage protobuf", snappy.Encode(nil, []byte("\x0a\xff\xff\xff\xff\x0fgarbage")), nil, http.StatusBadRequest, "not a valid WriteRequest"},
		{"no __name__", snappy.Encode(nil, []byte{0x0a, 0x00}), nil, http.StatusBadRequest, "no __name__"},
		{"body too large", make([]byte, 65<<10), nil, http.StatusRequestEntityTooLarge, "larger than the limit"},
		{"decoded too large", bomb, nil, http.StatusRequestEntityTooLarge, "too large"},
		{"wrong content type", valid, []string{"Content-Type", "application/json"}, http.StatusUnsupportedMediaType, "application/json"},
		{"remote write 2.0", valid, []string{"Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, http.StatusUnsupportedMediaType, "only remote write 1.0"},
		{"gzip", valid, []string{"Content-Encoding", "gzip"}, http.StatusUnsupportedMediaType, "gzip"},
		{"bad host label", badHost, nil, http.StatusBadRequest, "the others taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := postRW(t, r.base, tt.body, tt.header...)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}

	// The valid body twice (the second's samples replace the first's), and
	// web-3 from the bad-host body: four vectors, once their deadline
	// passed, one of them an anomaly.
	natstest.WaitFor(t, 10*time.Second, func() error {
		if v, err := tryCounter(reg, "dagmm_samples_scored_total", map[string]string{"source": "http"}); err != nil || v != 4 {
			return fmt.Errorf("%v vectors scored, want 4 (%v)", v, err)
		}
		return nil
	})
	ev := events.wait(t, 1, 5*time.Second)[0]
	e := decodeEvent(t, ev.Data)
	if ev.Subject != "anomalies.db-1:9100" || e.Host != "db-1:9100" || !e.Anomaly || e.TS.UnixMilli() != ms {
		t.Errorf("anomaly event %s on %s", ev.Data, ev.Subject)
	}
	if more := events.quiet(200 * time.Millisecond); len(more) > 0 {
		t.Errorf("unexpected events: %s", more[0].Data)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dagmm_anomalies_total", map[string]string{"source": "http"}, 1},
		{"dagmm_http_requests_total", map[string]string{"handler": RemoteWritePath, "code": "204"}, 2},
		{"dagmm_http_requests_total", map[string]string{"handler": RemoteWritePath, "code": "400"}, 5},
		{"dagmm_http_requests_total", map[string]string{"handler": RemoteWritePath, "code": "413"}, 2},
		{"dagmm_http_requests_total", map[string]string{"handler": RemoteWritePath, "code": "415"}, 3},
		{"dagmm_remote_write_intervals_total", map[string]string{"result": "emitted"}, 4},
		{"dagmm_remote_write_decode_errors_total", nil, 4},
		{"dagmm_http_panics_total", nil, 0},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Timed: the two valid bodies and the one with a bad host label.
	if n := metricValue(t, reg, "dagmm_score_duration_seconds", map[string]string{"source": "http"}).GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("%d remote write requests timed, want 3", n)
	}
}

func TestRemoteWriteBusy(t *testing.T) {
	// Over capacity (the bytes in flight at their limit) is 429 with a
	// Retry-After; not ready (NATS down) is 503: both retried by
	// Prometheus, and nothing of the request is taken. Once there is room,
	// the same request is taken.
	path, m := writeModel(t, t.TempDir(), 1)
	normal, _ := testData(t, m, 1, 0, 7)
	r := start(t, rwConfig(path))
	body := snappy.Encode(nil, appendWriteRequest(nil, rwVectors(m.Features, "web-1", normal, time.Now().UnixMilli())))

	if !r.budget.tryAcquire(r.budget.limit) {
		t.Fatal("budget taken")
	}
	code, msg := postRW(t, r.base, body)
	r.budget.release(r.budget.limit)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "server busy") {
		t.Errorf("over capacity: %d %s, want 429", code, msg)
	}
	// The body is in, its decoded samples are not.
	if !r.budget.tryAcquire(r.budget.limit - int64(len(body))) {
		t.Fatal("budget taken")
	}
	code, msg = postRW(t, r.base, body)
	r.budget.release(r.budget.limit - int64(len(body)))
	if code != http.StatusTooManyRequests {
		t.Errorf("decoded samples over capacity: %d %s, want 429", code, msg)
	}

	r.setReady(func() { r.natsDown = true })
	code, msg = postRW(t, r.base, body)
	r.setReady(func() { r.natsDown = false })
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "not ready") {
		t.Errorf("not ready: %d %s, want 503", code, msg)
	}
	if got := counterValue(t, r.Registry(), "dagmm_remote_write_measurements_total", nil); got != 0 {
		t.Errorf("%v samples taken from refused requests, want 0", got)
	}
	if code, msg = postRW(t, r.base, body); code != http.StatusNoContent {
		t.Errorf("with room: %d %s, want 204", code, msg)
	}
	if got := counterValue(t, r.Registry(), "dagmm_remote_write_measurements_total", nil); got != float64(len(m.Features)) {
		t.Errorf("%v samples taken, want %d", got, len(m.Features))
	}
}

func TestRemoteWriteStale(t *testing.T) {
	// node_exporter stops: Prometheus sends stale markers for the host's
	// four series. Its interval in progress is never scored with them, and
	// the host is forgotten.
	path, m := writeModel(t, t.TempDir(), 1)
	normal, _ := testData(t, m, 2, 0, 7)
	d := len(m.Features)
	r := start(t, rwConfig(path))
	reg := r.Registry()
	ms := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	body := func(points []rwPoint) []byte { return snappy.Encode(nil, appendWriteRequest(nil, points)) }
	if code, msg := postRW(t, r.base, body(rwVectors(m.Features, "web-1", normal[:d], ms))); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		if v, err := tryCounter(reg, "dagmm_samples_scored_total", map[string]string{"source": "http"}); err != nil || v != 1 {
			return fmt.Errorf("%v vectors scored, want 1 (%v)", v, err)
		}
		return nil
	})
	// The next evaluation: two series still have values, then all four go
	// stale.
	stale := math.Float64frombits(0x7ff0000000000002)
	next := rwVectors(m.Features, "web-1", normal[d:2*d], ms+1000)[:2]
	next = append(next, rwVectors(m.Features, "web-1", []float64{stale, stale, stale, stale}, ms+1500)...)
	if code, msg := postRW(t, r.base, body(next)); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		if v, err := tryCounter(reg, "dagmm_remote_write_series_ended_total", map[string]string{"what": "host"}); err != nil || v != 1 {
			return fmt.Errorf("%v hosts ended, want 1 (%v)", v, err)
		}
		return nil
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dagmm_samples_scored_total", map[string]string{"source": "http"}, 1},
		{"dagmm_remote_write_intervals_total", map[string]string{"result": "incomplete"}, 1},
		{"dagmm_remote_write_series_ended_total", map[string]string{"what": "series"}, 4},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := gaugeValue(t, reg, "dagmm_remote_write_hosts", nil); got != 0 {
		t.Errorf("%v hosts tracked, want 0", got)
	}
}

func TestRemoteWriteShutdownScores(t *testing.T) {
	// What was taken (204) is scored: a vector still waiting for its
	// deadline when the service stops is scored and published at shutdown.
	path, m := writeModel(t, t.TempDir(), 1)
	_, anomalies := testData(t, m, 1, 1, 7)
	nsrv := runNATS(t)
	cfg := rwConfig(path)
	cfg.NATS.URL = nsrv.ClientURL()
	cfg.RemoteWrite.Interval = time.Hour // no deadline passes during the test
	r := start(t, cfg)
	nc := natstest.Connect(t, nsrv.ClientURL())
	events := collect(t, nc, "anomalies.>")
	body := snappy.Encode(nil, appendWriteRequest(nil, rwVectors(m.Features, "db-1", anomalies[:len(m.Features)], time.Now().UnixMilli())))
	if code, msg := postRW(t, r.base, body); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	if got := events.quiet(300 * time.Millisecond); len(got) != 0 {
		t.Fatalf("event before shutdown: %s", got[0].Data)
	}
	r.stop(t)
	e := decodeEvent(t, events.wait(t, 1, 10*time.Second)[0].Data)
	if e.Host != "db-1" || !e.Anomaly {
		t.Errorf("event %+v", e)
	}
}

func TestRemoteWriteConfig(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no NATS", func(c *Config) { c.NATS.Disabled = true }, "without NATS"},
		{"negative interval", func(c *Config) { c.RemoteWrite.Interval = -time.Second }, "interval"},
		{"negative flush", func(c *Config) { c.RemoteWrite.Flush = -time.Second }, "flush"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := rwConfig(path)
			tt.edit(&cfg)
			if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error about %s", err, tt.want)
			}
		})
	}
	// Off: no endpoint.
	r := start(t, testConfig(path))
	if code, _ := postRW(t, r.base, nil); code != http.StatusNotFound {
		t.Errorf("remote write off: %d, want 404", code)
	}
}

// FuzzRemoteWriteHandler posts arbitrary bodies through the whole handler
// of a running service: 204, 400 or 413, never a panic or a 500.
func FuzzRemoteWriteHandler(f *testing.F) {
	path, m := writeModel(f, f.TempDir(), 1)
	x := make([]float64, len(m.Features))
	f.Add(snappy.Encode(nil, appendWriteRequest(nil, rwVectors(m.Features, "web-1", x, 1_796_500_000_000))))
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x02, 0x0a, 0x00}))
	f.Add([]byte("\xff\x06\x00\x00sNaPpY"))
	f.Add(appendWriteRequest(nil, rwVectors(m.Features, "web-1", x, 1)))
	cfg := rwConfig(path)
	cfg.HTTP.MaxBodyBytes = 1 << 16
	cfg.RemoteWrite.MaxDecodedBytes = 1 << 18
	r := start(f, cfg)
	h := r.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, RemoteWritePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if got := counterValue(t, r.Registry(), "dagmm_http_panics_total", nil); got != 0 {
			t.Fatalf("%v panics", got)
		}
	})
}

func TestRemoteWriteMetricsLint(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	s, err := New(rwConfig(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.rw.incomplete(ingest.Incomplete{Host: "h", TS: tgT0, Missing: []ingest.MissingFeature{{Feature: "cpu_usage", Reason: "no data"}}})
	for _, c := range []prometheus.Collector{s.rw.tmet, s.rw.tmet.missing} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	if got := counterValue(t, s.Registry(), "dagmm_remote_write_missing_features_total", map[string]string{"feature": "cpu_usage", "reason": "no_data"}); got != 1 {
		t.Errorf("missing features %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(s.Registry(), "dagmm_remote_write_series_ended_total", "dagmm_telegraf_hosts"); err != nil || n != 2 {
		t.Errorf("%d series of dagmm_remote_write_series_ended_total and no Telegraf metrics, want 2 (%v)", n, err)
	}
}
