package serve

// Benchmarks of the scoring stage alone and of the whole service over NATS
// and HTTP on loopback (an embedded nats-server in the process). Compare
// runs with benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 6 ./serve/ | tee new.txt
//	benchstat -col /batch old.txt new.txt

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// benchBodies returns pre-encoded batches of size n of the model's normal
// samples with 1% anomalies.
func benchBody(b *testing.B, m *model.Model, n int) []byte {
	b.Helper()
	normal, anomalies := testData(b, m, 99, 1, 1)
	d := len(m.Features)
	var parts []string
	for i := range n {
		x := normal[(i%99)*d : (i%99+1)*d]
		if i%100 == 99 {
			x = anomalies
		}
		parts = append(parts, sampleJSON(fmt.Sprintf("h%d", i%10), time.Unix(int64(i), 0), m.Features, x))
	}
	if n == 1 {
		return []byte(parts[0])
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// BenchmarkScoreMessage measures the decode and scoring stages of one NATS
// message, events encoded, without the network.
func BenchmarkScoreMessage(b *testing.B) {
	path, m := writeModel(b, b.TempDir(), 1)
	s, err := New(httpOnly(path), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			body := benchBody(b, m, n)
			w := newWorker(s.cfg.Scoring.Batch)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				src := Source{Subject: "metrics.h"}
				if _, err := s.pipe.scoreMessage(w, body, &src, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkNATS measures the service end to end on core NATS: messages
// published on one connection, scored by the service's workers, with at
// most 20000 samples in flight.
func BenchmarkNATS(b *testing.B) {
	path, m := writeModel(b, b.TempDir(), 1)
	cfg := testConfig(path)
	r := start(b, cfg)
	nc := natstest.Connect(b, r.NATSURL())
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			body := benchBody(b, m, n)
			counter := r.met.samplesNATS
			base := testutil.ToFloat64(counter)
			sent := 0
			b.ResetTimer()
			for b.Loop() {
				if err := nc.Publish("metrics.h", body); err != nil {
					b.Fatal(err)
				}
				sent += n
				if sent%20000 < n {
					for testutil.ToFloat64(counter)-base < float64(sent-20000) {
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
			for testutil.ToFloat64(counter)-base < float64(sent) {
				time.Sleep(50 * time.Microsecond)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkHTTP measures POST /v1/score over loopback with parallel
// keep-alive clients.
func BenchmarkHTTP(b *testing.B) {
	path, m := writeModel(b, b.TempDir(), 1)
	r := start(b, httpOnly(path))
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			body := benchBody(b, m, n)
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(r.base+"/v1/score", "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkDecodeInfer measures the Open Inference Protocol body decoder.
func BenchmarkDecodeInfer(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"inputs":[{"name":"x","shape":[1000,4],"datatype":"FP64","data":[`)
	for i := range 4000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%g", float64(i)*1.25e-3)
	}
	sb.WriteString(`]}]}`)
	body := []byte(sb.String())
	var buf []float64
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bt, _, err := decodeInfer(body, oipFeatures, 1000, buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = bt.x[:0]
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
}
