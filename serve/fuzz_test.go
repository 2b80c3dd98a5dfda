package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzHandlers posts arbitrary bodies to the scoring endpoints through the
// service's handler: the answer is never a 5xx, always JSON, and a 200 has
// one result per sample.
func FuzzHandlers(f *testing.F) {
	path, _ := writeModel(f, f.TempDir(), 1)
	cfg := httpOnly(path)
	cfg.Scoring.MaxSamples = 50
	cfg.HTTP.MaxBodyBytes = 1 << 16
	s, err := New(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	for _, seed := range []string{
		`{"host":"h","values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}`,
		`[{"values":{"cpu_usage":1e308,"mem_usage":-1e308,"disk_busy":3,"net_in_bps":4}}]`,
		`{"samples":[]}`,
		`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}`,
		`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[[1e308,-1e308,1e308,1e308]]}]}`,
		`{"values":{"cpu_usage":"NaN"}}`, `[`, ``, `null`,
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
	}
	paths := []string{"/v1/score", "/v2/models/dagmm/infer", "/v1/score?explain=all&method=gradient", "/v1/score?explain=all&method=share"}
	f.Fuzz(func(t *testing.T, body string, which uint8) {
		p := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, p, bytes.NewReader([]byte(body)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: status %d: %s", p, body, rec.Code, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("POST %s %q: body is not JSON: %s", p, body, rec.Body.Bytes())
		}
	})
}
