package serve

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// memoryBodies returns the request bodies whose memory per body byte
// BenchmarkRequestMemory measures: the largest requests of each shape
// within the default limits (10,000 samples, 8 MiB).
func memoryBodies(tb testing.TB, m4, m38 *model.Model) []struct {
	name, path string
	body       []byte
} {
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	batch := func(m *model.Model, host string, n int) []byte {
		x := modeltest.Inputs(m, n, 1)
		return []byte(batchJSON(host, ts, m.Features, x))
	}
	longHost := strings.Repeat("h", 255) // the longest host a sample may carry
	var params strings.Builder
	params.WriteString(`{"parameters":{"p":[`)
	for params.Len() < 8<<20-200 {
		params.WriteString("1,")
	}
	params.WriteString(`1]},"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}`)
	var infer strings.Builder
	infer.WriteString(`{"inputs":[{"name":"x","shape":[10000,4],"datatype":"FP64","data":[`)
	for i, v := range modeltest.Inputs(m4, 10000, 1) {
		if i > 0 {
			infer.WriteByte(',')
		}
		fmt.Fprintf(&infer, "%v", v)
	}
	infer.WriteString(`]}]}`)
	return []struct {
		name, path string
		body       []byte
	}{
		{"score/4-features", "/v1/score?explain=all", batch(m4, "web-1", 10000)},
		{"score/4-features-long-hosts", "/v1/score?explain=all", batch(m4, longHost, 10000)},
		{"score/38-features", "/v1/score?explain=all", batch(m38, "web-1", 6500)},
		{"infer/10000x4", "/v2/models/dagmm/infer", []byte(infer.String())},
		{"infer/parameters", "/v2/models/dagmm/infer", []byte(params.String())},
	}
}

// BenchmarkRequestMemory measures the bytes allocated while serving the
// largest requests, per byte of body (alloc/body-byte): what a request in
// flight can hold at most. It calls the service's handler directly so that
// the client's allocations are not counted.
func BenchmarkRequestMemory(b *testing.B) {
	dir := b.TempDir()
	path4, m4 := writeModel(b, dir, 1)
	m38 := modeltest.NewRandom(modeltest.Names("metric_", 38), []int{16, 8, 1}, []int{10}, 4, 1)
	path38 := dir + "/model-38.json"
	saveModelAt(b, path38, m38)
	for _, c := range memoryBodies(b, m4, m38) {
		path := path4
		if strings.Contains(c.name, "38") {
			path = path38
		}
		cfg := httpOnly(path)
		s, err := New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(c.body))
				w := &discardWriter{header: http.Header{}}
				s.Handler().ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.TotalAlloc-before)/float64(b.N)/float64(len(c.body)), "alloc/body-byte")
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
