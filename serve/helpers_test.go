package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// writeModel saves the four-metric test model of the given seed in dir and
// returns its path and the model.
func writeModel(t testing.TB, dir string, seed uint64) (string, *model.Model) {
	t.Helper()
	m := modeltest.Metrics4(seed)
	path := filepath.Join(dir, fmt.Sprintf("model-%d.json", seed))
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path, m
}

// saveModelAt writes m to path (atomically).
func saveModelAt(t testing.TB, path string, m *model.Model) {
	t.Helper()
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
}

// runNATS starts an in-process nats-server with JetStream on a free port,
// taking messages of up to 8 MiB.
func runNATS(t testing.TB) *server.Server {
	t.Helper()
	return natstest.StartServer(t, natstest.Options{JetStream: true, MaxPayload: 8 << 20})
}

// withNATS starts a JetStream nats-server (runNATS) and returns it, the
// four-metric model of seed 1 saved in a temporary directory, and a test
// configuration that serves that model and reads samples from the server.
func withNATS(t testing.TB) (*server.Server, *model.Model, Config) {
	t.Helper()
	srv := runNATS(t)
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := testConfig(path)
	cfg.NATS.URL = srv.ClientURL()
	return srv, m, cfg
}

// testConfig returns a configuration for tests: free ports, small
// timeouts, two workers.
func testConfig(modelPath string) Config {
	return Config{
		Model: ModelConfig{
			Path:         modelPath,
			PollInterval: -1,
		},
		Scoring: ScoringConfig{
			Workers: 2,
		},
		NATS: NATSConfig{
			EmbeddedPort: -1,
		},
		HTTP: HTTPConfig{
			Addr: "127.0.0.1:0",
		},
		ShutdownTimeout: 5 * time.Second,
	}
}

// running is a service started by start.
type running struct {
	*Service
	cancel context.CancelFunc
	done   chan error
	base   string // http://addr
}

// start builds and runs a service; cleanup stops it and checks that Run
// returned nil.
func start(t testing.TB, cfg Config, opts ...Option) *running {
	t.Helper()
	s, err := New(cfg, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Service: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-r.done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("service not ready after 20s")
	}
	r.base = "http://" + s.HTTPAddr()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the service and waits for Run (once).
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return 30s after cancel")
	}
}

// kill stops the service at once, without draining, and waits for Run.
func (r *running) kill(t testing.TB) {
	t.Helper()
	r.abort()
	r.stop(t)
}

// post sends body to the service and returns the status and body.
func (r *running) post(t testing.TB, path, body string, header ...string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodPost, r.base+path, body, header...)
}

func (r *running) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodGet, r.base+path, "")
}

func do(t testing.TB, method, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// sampleJSON encodes one sample of the four-metric model.
func sampleJSON(host string, ts time.Time, features []string, x []float64) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"host":%q,"ts":%q,"values":{`, host, ts.UTC().Format(time.RFC3339Nano))
	for j, f := range features {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%v", f, x[j])
	}
	b.WriteString("}}")
	return b.String()
}

// batchJSON encodes rows of x (row-major, d = len(features)) as a batch.
func batchJSON(host string, ts time.Time, features []string, x []float64) string {
	d := len(features)
	parts := make([]string, 0, len(x)/d)
	for i := 0; i*d < len(x); i++ {
		parts = append(parts, sampleJSON(host, ts.Add(time.Duration(i)*time.Second), features, x[i*d:(i+1)*d]))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// testData returns n normal samples and k injected anomalies for m, with
// the local scorer's verdict for each: normal samples are drawn from the
// model's input distribution and kept only when the model finds them
// normal; anomalies push one feature far outside it.
func testData(t testing.TB, m *model.Model, n, k int, seed uint64) (normal, anomalies []float64) {
	t.Helper()
	s, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	d := len(m.Features)
	pool := modeltest.Inputs(m, 4*(n+k), seed)
	for i := 0; i*d < len(pool) && len(normal) < n*d; i++ {
		x := pool[i*d : (i+1)*d]
		if r, err := s.Score(x); err == nil && !r.Anomaly {
			normal = append(normal, x...)
		}
	}
	zs := []float64{-20, -6, -3, 3, 6, 20}
	rows := len(pool) / d
	for i := 0; len(anomalies) < k*d; i++ {
		if i >= rows*d*len(zs) {
			t.Fatalf("cannot build %d anomalies for the model", k)
		}
		// Push feature j of row r to z standard units.
		r, j, z := i%rows, (i/rows)%d, zs[(i/(rows*d))%len(zs)]
		x := slices.Clone(pool[r*d : (r+1)*d])
		x[j] = m.Norm[j].Invert(z)
		if res, err := s.Score(x); err == nil && res.Anomaly {
			anomalies = append(anomalies, x...)
		}
	}
	if len(normal) < n*d {
		t.Fatalf("only %d normal samples of %d", len(normal)/d, n)
	}
	return normal, anomalies
}

// collector gathers messages on a subject.
type collector struct {
	ch  chan *nats.Msg
	sub *nats.Subscription
}

func collect(t testing.TB, nc *nats.Conn, subject string) *collector {
	t.Helper()
	c := &collector{ch: make(chan *nats.Msg, 1<<20)}
	sub, err := nc.ChanSubscribe(subject, c.ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.sub = sub
	return c
}

// wait returns n messages, failing after timeout.
func (c *collector) wait(t testing.TB, n int, timeout time.Duration) []*nats.Msg {
	t.Helper()
	var out []*nats.Msg
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-c.ch:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("got %d messages on %s within %v, want %d", len(out), c.sub.Subject, timeout, n)
		}
	}
	return out
}

// quiet returns what arrives until nothing has come for d.
func (c *collector) quiet(d time.Duration) []*nats.Msg {
	var out []*nats.Msg
	for {
		select {
		case m := <-c.ch:
			out = append(out, m)
		case <-time.After(d):
			return out
		}
	}
}

func decodeEvent(t testing.TB, data []byte) Event {
	t.Helper()
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("event %s: %v", data, err)
	}
	return e
}

// checkNoLeak fails the test if goroutines started during it are still
// running (after a grace period) when it ends. Register it first, so that
// it runs after the other cleanups.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		var leaked []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			t.Errorf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

// ignorable reports goroutines that belong to the runtime or the test
// framework, or are process-wide caches of libraries.
func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run", "testing.tRunner", "runtime.goexit0", "created by runtime",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "dagmm") {
			return true
		}
	}
	return false
}

// goroutines maps goroutine ids to their stacks.
func goroutines() map[string]string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		// "goroutine 123 [running]:"
		f := strings.Fields(head)
		if len(f) >= 2 {
			out[f[1]] = g
		}
	}
	return out
}
