package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/natstest"
)

func TestReloadUnderLoad(t *testing.T) {
	// While HTTP clients and a NATS publisher keep the service busy, the
	// model file is replaced (watched), reloaded through the endpoint, and
	// replaced by a bad file: no request fails and no message goes
	// unscored.
	checkNoLeak(t)
	dir := t.TempDir()
	path, m := writeModel(t, dir, 1)
	_, m2 := writeModel(t, dir, 2)
	cfg := testConfig(path)
	cfg.NATS.PublishScores = true
	cfg.Model.PollInterval = 20 * time.Millisecond
	cfg.HTTP.AdminToken = "s3cret"
	r := start(t, cfg)
	v1 := r.Model().Version
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	normal, _ := testData(t, m, 5, 0, 1)
	body := batchJSON("h", time.Unix(0, 0), m.Features, normal)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var requests, failures atomic.Int64
	versions := sync.Map{}
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := http.Post(r.base+"/v1/score", "application/json", strings.NewReader(body))
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("request: %v", err)
					return
				}
				var sr ScoreResponse
				err = json.NewDecoder(resp.Body).Decode(&sr)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || len(sr.Results) != 5 {
					failures.Add(1)
					t.Errorf("status %d, %d results, %v", resp.StatusCode, len(sr.Results), err)
					return
				}
				versions.Store(sr.ModelVersion, true)
			}
		})
	}
	var published atomic.Int64
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := nc.Publish("metrics.h", []byte(sampleJSON("h", time.Unix(int64(i), 0), m.Features, normal[:4]))); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			published.Add(1)
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})

	waitVersion := func(want string) {
		t.Helper()
		natstest.WaitFor(t, 5*time.Second, func() error {
			if v := r.Model().Version; v != want {
				return fmt.Errorf("serving %s, want %s", v, want)
			}
			return nil
		})
	}
	time.Sleep(100 * time.Millisecond)
	saveModelAt(t, path, m2) // picked up by the watcher
	waitVersion(versionOf(t, m2))
	time.Sleep(100 * time.Millisecond)
	saveModelAt(t, path, m) // reloaded through the endpoint (before the watcher, or after: same result)
	if code, b := r.post(t, "/v1/model/reload", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("reload: %d %s", code, b)
	}
	waitVersion(v1)
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(path, []byte(`{"format":"dagmm-model","version":1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := r.post(t, "/v1/model/reload", "", "Authorization", "Bearer s3cret"); code != 500 {
		t.Errorf("reload of a truncated file answered %d, want 500", code)
	}
	time.Sleep(100 * time.Millisecond)
	waitVersion(v1)
	stop()
	wg.Wait()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	n := int(published.Load())
	got := scores.wait(t, n, 10*time.Second)
	got = append(got, scores.quiet(200*time.Millisecond)...)
	seen := map[int64]bool{}
	for _, g := range got {
		seen[decodeEvent(t, g.Data).TS.Unix()] = true
	}
	if len(seen) != n {
		t.Errorf("%d messages published, %d scored", n, len(seen))
	}
	if failures.Load() > 0 {
		t.Errorf("%d of %d requests failed", failures.Load(), requests.Load())
	}
	for _, v := range []string{v1, versionOf(t, m2)} {
		if _, ok := versions.Load(v); !ok {
			t.Errorf("no response from model %s", v)
		}
	}
	t.Logf("%d requests and %d messages across 2 reloads and 1 refused file", requests.Load(), n)
	if got := counterValue(t, r.Registry(), "dagmm_model_reloads_total", map[string]string{"result": "changed"}); got < 2 {
		t.Errorf("%v reloads changed the model, want ≥ 2", got)
	}
}
