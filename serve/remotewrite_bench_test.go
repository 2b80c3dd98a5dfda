package serve

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkRemoteWriteHTTP measures Prometheus remote write ingestion end
// to end: a running service (remote write on, events to its embedded NATS
// server) takes requests on loopback, each one evaluation of 500 hosts'
// four feature series (2,000 samples, Prometheus's max_samples_per_send),
// decodes, assembles, scores the 500 vectors each request completes and
// publishes their events. Clients send in parallel (GOMAXPROCS of them,
// like Prometheus's shards), each for its own 500 hosts, one evaluation a
// second of sample time after the other; a body is encoded by the client
// as it goes. samples/s (one sample is one series value) and vectors/s
// are the figures; every vector counted was scored.
//
//	go test -run '^$' -bench RemoteWriteHTTP -benchtime 3s ./serve/
func BenchmarkRemoteWriteHTTP(b *testing.B) {
	const hosts = 500
	path, m := writeModel(b, b.TempDir(), 1)
	normal, _ := testData(b, m, 100, 0, 3)
	d := len(m.Features)
	cfg := rwConfig(path)
	r := start(b, cfg)
	before := testutil.ToFloat64(r.met.samplesHTTP)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var shard, requests atomic.Int64
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := shard.Add(1)
		names := make([]string, hosts)
		for h := range names {
			names[h] = fmt.Sprintf("node-%d-%03d:9100", id, h)
		}
		var raw, body []byte
		points := make([]rwPoint, 0, hosts*d)
		for k := int64(0); pb.Next(); k++ {
			points = points[:0]
			for h, name := range names {
				row := (h + int(k)) % 100
				points = append(points, rwVectors(m.Features, name, normal[row*d:(row+1)*d], t0+k*1000)...)
			}
			raw = appendWriteRequest(raw[:0], points)
			body = snappy.Encode(body[:cap(body)], raw)
			req, _ := http.NewRequest(http.MethodPost, r.base+RemoteWritePath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			requests.Add(1)
		}
	})
	b.StopTimer()
	vectors := testutil.ToFloat64(r.met.samplesHTTP) - before
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(requests.Load()*hosts*int64(d))/sec, "samples/s")
	b.ReportMetric(vectors/sec, "vectors/s")
	// A shard's first evaluation waits for its deadline (no history says
	// which series to expect); every later one is scored as it arrives.
	if want := float64((requests.Load() - shard.Load()) * hosts); vectors < want {
		b.Errorf("%v vectors scored, want at least %v", vectors, want)
	}
}
