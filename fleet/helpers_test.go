package fleet

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"

	"github.com/dagmm/dagmm/serve/ingest"
)

// runNATS starts an in-process nats-server with JetStream on a free port and
// a temporary store.
func runNATS(t testing.TB) *server.Server {
	t.Helper()
	return natstest.StartServer(t, natstest.Options{JetStream: true})
}

// connectJS connects a client to srv and returns its JetStream context.
func connectJS(t testing.TB, srv *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return natstest.ConnectJS(t, srv.ClientURL())
}

// testContext returns a context cancelled at the end of the test or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mapStore is a [Store] in memory: the registry is built elsewhere. It
// validates artifacts as the registry does, with model.DecodeDigest.
type mapStore struct {
	mu     sync.Mutex
	models map[string][]ModelInfo // host → versions
	data   map[string][]byte      // host → current artifact
	age    map[string]time.Duration
}

func newMapStore() *mapStore {
	return &mapStore{models: make(map[string][]ModelInfo), data: make(map[string][]byte), age: make(map[string]time.Duration)}
}

func (s *mapStore) Publish(_ context.Context, host string, artifact []byte) (ModelInfo, error) {
	_, digest, err := model.DecodeDigest(bytes.NewReader(artifact))
	if err != nil {
		return ModelInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := ModelInfo{Host: host, Version: uint64(len(s.models[host]) + 1), Digest: digest, Size: int64(len(artifact)), Created: time.Now()}
	s.models[host] = append(s.models[host], info)
	s.data[host] = artifact
	return info, nil
}

func (s *mapStore) Current(_ context.Context, host string) (ModelInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.models[host]
	if len(v) == 0 {
		return ModelInfo{}, fmt.Errorf("%w: %s", ErrNoModel, host)
	}
	info := v[len(v)-1]
	info.Created = info.Created.Add(-s.age[host])
	return info, nil
}

// makeOlder makes host's models look d older.
func (s *mapStore) makeOlder(host string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.age[host] += d
}

// versions returns the number of versions per host.
func (s *mapStore) versions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.models))
	for h, v := range s.models {
		out[h] = len(v)
	}
	return out
}

// artifact returns host's current artifact.
func (s *mapStore) artifact(host string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[host]
}

// kvMarks is [FalseAlarms] on a real KV bucket: one key per mark,
// "<host token>.<unix nanoseconds>".
type kvMarks struct{ kv jetstream.KeyValue }

func newKVMarks(t testing.TB, js jetstream.JetStream) *kvMarks {
	t.Helper()
	kv, err := js.CreateKeyValue(testContext(t, 5*time.Second), jetstream.KeyValueConfig{Bucket: "test-marks"})
	if err != nil {
		t.Fatal(err)
	}
	return &kvMarks{kv: kv}
}

func (m *kvMarks) mark(t testing.TB, host string, ts time.Time) {
	t.Helper()
	if _, err := m.kv.Put(testContext(t, 5*time.Second), fmt.Sprintf("%s.%d", ingest.HostToken(host), ts.UnixNano()), []byte("operator")); err != nil {
		t.Fatal(err)
	}
}

func (m *kvMarks) Marked(ctx context.Context, host string) ([]time.Time, error) {
	keys, err := m.kv.ListKeysFiltered(ctx, ingest.HostToken(host)+".*")
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for k := range keys.Keys() {
		ns, err := strconv.ParseInt(k[strings.LastIndexByte(k, '.')+1:], 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, time.Unix(0, ns))
	}
	return out, nil
}

// hostName is the name of test host i; every fifth has dots, which
// become '_' in subjects.
func hostName(i int) string {
	if i%5 == 4 {
		return fmt.Sprintf("db%02d.example.com", i)
	}
	return fmt.Sprintf("web-%02d", i)
}

// features are the test samples' features.
var testFeatures = []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

// hostMean is host i's normal level of feature j: hosts differ.
func hostMean(i, j int) float64 { return float64(10*(i+1) + 100*j) }

// testSample returns host i's n-th sample as JSON: its values are the
// host's means plus a small pattern, and its ts is t0 + n seconds.
func testSample(i, n int, t0 time.Time, extra string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"host":%q,"ts":%q,"values":{`, hostName(i), t0.Add(time.Duration(n)*time.Second).Format(time.RFC3339Nano))
	for j, f := range testFeatures {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%g", f, hostMean(i, j)+float64((n*7+j*3)%11)-5)
	}
	b.WriteByte('}')
	b.WriteString(extra)
	b.WriteByte('}')
	return []byte(b.String())
}

// publishHistory publishes samples [from, to) of each host in hosts on the
// history subject, with JetStream acknowledgements.
func publishHistory(t testing.TB, js jetstream.JetStream, h *History, hosts []int, from, to int, t0 time.Time) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	var futures []jetstream.PubAckFuture
	wait := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal("history not acknowledged")
		}
		for _, f := range futures {
			select {
			case err := <-f.Err():
				t.Fatal(err)
			default:
			}
		}
		futures = futures[:0]
	}
	for n := from; n < to; n++ {
		for _, i := range hosts {
			f, err := js.PublishAsync(h.Subject(hostName(i)), testSample(i, n, t0, ""))
			if err != nil {
				t.Fatal(err)
			}
			if futures = append(futures, f); len(futures) == 1000 {
				wait()
			}
		}
	}
	wait()
}

// hostRange returns 0, 1, ..., n-1.
func hostRange(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// fastTrain is a TrainFunc that makes a valid random model of the window's
// features at once (after delay), so that tests exercise the queue, not
// Gorgonia; calls counts its calls per host.
type fastTrain struct {
	delay time.Duration
	mu    sync.Mutex
	calls map[string]int
	rows  map[string]int
}

func (f *fastTrain) train(ctx context.Context, w *Window) ([]byte, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls, f.rows = make(map[string]int), make(map[string]int)
	}
	f.calls[w.Host]++
	f.rows[w.Host] = w.Rows()
	f.mu.Unlock()
	sleep(ctx, f.delay)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := model.Encode(&buf, modeltest.NewRandom(w.Features, []int{4, 1}, []int{4}, 2, uint64(len(w.Host)))); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (f *fastTrain) callCount(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[host]
}

// testArtifact returns a small valid model artifact.
func testArtifact(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := model.Encode(&buf, modeltest.NewRandom(testFeatures, []int{4, 1}, []int{4}, 2, 1)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
