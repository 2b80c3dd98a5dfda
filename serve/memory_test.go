package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
)

// loadResult is what concurrentPosts saw.
type loadResult struct {
	codes      map[int]int // responses by status
	errs       []error     // transport errors
	badRefusal []string    // 429s without Retry-After or a JSON error
}

// concurrentPosts sends body to url from clients goroutines at once, each
// on its own connection, and collects the answers.
func concurrentPosts(url string, body []byte, clients int) loadResult {
	res := loadResult{codes: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for range clients {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
			<-startGate
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errs = append(res.errs, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			res.codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				var e APIError
				if resp.Header.Get("Retry-After") != strconv.Itoa(RetryAfter) || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "in flight") {
					res.badRefusal = append(res.badRefusal, fmt.Sprintf("Retry-After %q body %.200s", resp.Header.Get("Retry-After"), b))
				}
			}
		})
	}
	close(startGate)
	wg.Wait()
	return res
}

// peakMemory samples the memory the Go runtime holds from the OS (mapped
// and not released) every millisecond until stop is closed, and returns
// the largest value.
func peakMemory(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		samples := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			rtmetrics.Read(samples)
			peak = max(peak, samples[0].Value.Uint64()-samples[1].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// vmHWM returns the process's peak resident memory (VmHWM), or 0 when
// /proc cannot tell.
func vmHWM(pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestHTTPMemoryBound sends 48 requests of the largest size at once (the
// reproduction of issue 13, which took the process to 1.37 GB) to a
// service on loopback under a Go memory limit of 512 MiB, with the default
// bound on body bytes in flight derived from it. The memory the process
// holds must stay under the documented bound (MemoryReserve +
// BytesPerBodyByte × MaxInFlightBytes, no more than the limit); the
// requests over the bound are answered 429 with Retry-After, the others
// 200, none 5xx. Under the race detector only the answers are checked.
func TestHTTPMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 48 × 8 MiB; skipped with -short")
	}
	const limit = 512 << 20
	prev := debug.SetMemoryLimit(limit)
	defer debug.SetMemoryLimit(prev)
	path, m := writeModel(t, t.TempDir(), 1)
	hc := httpOnly(path)
	// Scoring 10,000 samples may take seconds under the race detector.
	hc.HTTP.ReadTimeout, hc.HTTP.WriteTimeout = time.Minute, time.Minute
	r := start(t, hc)
	cfg := r.Config()
	if want := InFlightBytesFor(limit, cfg.HTTP.MaxBodyBytes); cfg.HTTP.MaxInFlightBytes != want {
		t.Fatalf("MaxInFlightBytes %d, want %d derived from the memory limit", cfg.HTTP.MaxInFlightBytes, want)
	}
	bound := uint64(MemoryReserve + BytesPerBodyByte*cfg.HTTP.MaxInFlightBytes)
	body, err := modeltest.MaxSizeBody(m, cfg.Scoring.MaxSamples, int(cfg.HTTP.MaxBodyBytes))
	if err != nil {
		t.Fatal(err)
	}
	debug.FreeOSMemory()
	stop := make(chan struct{})
	peak := peakMemory(stop)
	res := concurrentPosts(r.base+"/v1/score", body, 48)
	close(stop)
	p := <-peak
	t.Logf("48 requests of %d bytes, %d bytes in flight at most: %v; Go memory peak %.1f MiB (bound %.1f MiB), process VmHWM %.1f MiB",
		len(body), cfg.HTTP.MaxInFlightBytes, res.codes, float64(p)/(1<<20), float64(bound)/(1<<20), float64(vmHWM("self"))/(1<<20))
	if len(res.errs) > 0 {
		t.Errorf("%d requests failed: %v", len(res.errs), res.errs[0])
	}
	for code, n := range res.codes {
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Errorf("%d requests answered %d, want only 200 or 429", n, code)
		}
	}
	if res.codes[http.StatusOK] == 0 || res.codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("answers %v: want some scored and some refused", res.codes)
	}
	for _, b := range res.badRefusal {
		t.Errorf("429 without Retry-After or JSON error: %s", b)
	}
	if p > bound && !raceEnabled {
		t.Errorf("Go memory peaked at %.1f MiB, over the bound of %.1f MiB", float64(p)/(1<<20), float64(bound)/(1<<20))
	}
	if got := counterValue(t, r.Registry(), "dagmm_http_requests_refused_busy_total", nil); got != float64(res.codes[http.StatusTooManyRequests]) {
		t.Errorf("refused counter %v, want %d", got, res.codes[http.StatusTooManyRequests])
	}
	if got := gaugeValue(t, r.Registry(), "dagmm_http_inflight_body_bytes", nil); got != 0 {
		t.Errorf("%v body bytes in flight after the load, want 0", got)
	}
}

func TestInFlightBytesFor(t *testing.T) {
	for _, tc := range []struct {
		name              string
		memLimit, maxBody int64
		want              int64
	}{
		{"no limit", math.MaxInt64, 8 << 20, DefaultMaxInFlightBytes},
		{"no limit, large bodies", math.MaxInt64, 100 << 20, 100 << 20},
		{"1 GiB container (90%)", 966367641, 8 << 20, (966367641 - MemoryReserve) / BytesPerBodyByte},
		{"512 MiB", 512 << 20, 8 << 20, (512<<20 - MemoryReserve) / BytesPerBodyByte},
		{"too small for one body", 128 << 20, 8 << 20, 8 << 20},
		{"below the reserve", 64 << 20, 8 << 20, 8 << 20},
	} {
		if got := InFlightBytesFor(tc.memLimit, tc.maxBody); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestHTTPInFlightBudget takes part of the budget of body bytes in flight
// by hand, as a request in flight would, and checks which requests fit.
func TestHTTPInFlightBudget(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := httpOnly(path)
	cfg.HTTP.MaxBodyBytes = 64 << 10
	cfg.HTTP.MaxInFlightBytes = 100 << 10
	r := start(t, cfg)
	x := modeltest.Inputs(m, 20, 1)
	body := []byte(batchJSON("web-1", time.Unix(0, 0), m.Features, x)) // about 3 KiB
	for _, tc := range []struct {
		name    string
		held    int64 // bytes taken by requests in flight
		chunked bool  // no Content-Length
		expect  bool  // Expect: 100-continue
		code    int
	}{
		{"free", 0, false, false, http.StatusOK},
		{"fits", 100<<10 - int64(len(body)), false, false, http.StatusOK},
		{"one byte short", 100<<10 - int64(len(body)) + 1, false, false, http.StatusTooManyRequests},
		{"chunked counts as the largest body", 40 << 10, true, false, http.StatusTooManyRequests},
		{"chunked, room for the largest body", 36 << 10, true, false, http.StatusOK},
		{"expect continue", 100 << 10, false, true, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !r.budget.tryAcquire(tc.held) {
				t.Fatalf("cannot take %d bytes", tc.held)
			}
			defer r.budget.release(tc.held)
			var rd io.Reader = bytes.NewReader(body)
			if tc.chunked {
				rd = io.MultiReader(rd) // unknown length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, r.base+"/v1/score", rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
			}
			client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, b, tc.code)
			}
			if tc.code == http.StatusTooManyRequests {
				var e APIError
				if resp.Header.Get("Retry-After") != "1" || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "--max-inflight-bytes") {
					t.Errorf("429 with Retry-After %q and body %s", resp.Header.Get("Retry-After"), b)
				}
			}
		})
		if got := r.budget.inUse.Load(); got != 0 {
			t.Fatalf("%s: %d bytes still taken after the request", tc.name, got)
		}
	}
}
