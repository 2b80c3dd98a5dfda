package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// hostileSample is one sample for the four-metric model with any host,
// JSON-encoded whatever bytes it holds. An empty host leaves "host" out.
func hostileSample(host string, ts time.Time, features []string, x []float64) []byte {
	v := map[string]any{"ts": ts.UTC().Format(time.RFC3339Nano)}
	if host != "" {
		v["host"] = host
	}
	vals := map[string]float64{}
	for j, f := range features {
		vals[f] = x[j]
	}
	v["values"] = vals
	b, _ := json.Marshal(v)
	return b
}

// badHostCases are samples whose host cannot be put in a subject token, the
// subject they arrive on and what the dead letter's reason must say.
var badHostCases = []struct {
	name, host, subject, reason string
}{
	{"5000-byte host", strings.Repeat("h", 5000), "metrics.x", "longer than 255 bytes"},
	{"4100-byte host (the report)", strings.Repeat("a", 4100), "metrics.x", "longer than 255 bytes"},
	{"white space and CR LF", "web 1\r\nPUB x 1", "metrics.x", "white space or a control character"},
	{"wildcards", "web-*>", "metrics.x", `'*' or '>'`},
	{"control byte", "web\x01", "metrics.x", "white space or a control character"},
	{"no host, long subject token", "", "metrics." + strings.Repeat("s", 3000), "longer than 255 bytes"},
}

// publishPoisonThenValid publishes every bad-host sample of badHostCases,
// then n valid samples from host "ok"; pub publishes one message. It
// returns the bad samples' payloads, by case.
func publishPoisonThenValid(t *testing.T, m *model.Model, n int, pub func(subject string, data []byte) error) []string {
	t.Helper()
	normal, _ := testData(t, m, n, 0, 11)
	d := len(m.Features)
	ts := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var payloads []string
	for i, tc := range badHostCases {
		p := hostileSample(tc.host, ts.Add(-time.Duration(i+1)*time.Second), m.Features, normal[:d])
		if err := pub(tc.subject, p); err != nil {
			t.Fatalf("%s: publish: %v", tc.name, err)
		}
		payloads = append(payloads, string(p))
	}
	for i := range n {
		if err := pub("metrics.ok", hostileSample("ok", ts.Add(time.Duration(i)*time.Second), m.Features, normal[i*d:(i+1)*d])); err != nil {
			t.Fatal(err)
		}
	}
	return payloads
}

// checkPoisonHandled waits for one dead letter per bad-host case, with
// its reason and payload, and for the n scores of the valid samples.
func checkPoisonHandled(t *testing.T, dead, scores *collector, payloads []string, n int) {
	t.Helper()
	byPayload := map[string]*nats.Msg{}
	for _, g := range dead.wait(t, len(badHostCases), 20*time.Second) {
		byPayload[string(g.Data)] = g
	}
	for i, tc := range badHostCases {
		g := byPayload[payloads[i]]
		if g == nil {
			t.Errorf("%s: no dead letter with the sample as payload", tc.name)
			continue
		}
		reason := g.Header.Get(HeaderReason)
		if g.Header.Get(HeaderSubject) != tc.subject || !strings.Contains(reason, "host") || !strings.Contains(reason, tc.reason) ||
			g.Header.Get(HeaderReasonKind) != reasonDecode {
			t.Errorf("%s: dead letter from %.40s…, kind %q, reason %q; want the reason to say %q",
				tc.name, g.Header.Get(HeaderSubject), g.Header.Get(HeaderReasonKind), reason, tc.reason)
		}
	}
	for i, s := range scores.wait(t, n, 20*time.Second) {
		if e := decodeEvent(t, s.Data); e.Host != "ok" || s.Subject != "scores.ok" {
			t.Errorf("score %d: host %q on %s", i, e.Host, s.Subject)
		}
	}
	if extra := dead.quiet(200 * time.Millisecond); len(extra) > 0 {
		t.Errorf("%d more dead letters, the first: %q", len(extra), extra[0].Header.Get(HeaderReason))
	}
}

// TestBadHostDeadLettered: a host that cannot go in a subject gives a dead
// letter naming the problem, and the scorer goes on scoring, in core and
// in durable mode.
func TestBadHostDeadLettered(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("jetstream=%v", durable), func(t *testing.T) {
			srv, m, cfg := withNATS(t)
			cfg.JetStream.Enabled = durable
			cfg.NATS.PublishScores = true
			r := start(t, cfg)
			nc := natstest.Connect(t, srv.ClientURL())
			dead := collect(t, nc, "dagmm.deadletter")
			scores := collect(t, nc, "scores.>")
			terminated := collect(t, nc, server.JSAdvisoryConsumerMsgTerminatedPre+".>")
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			pub := func(subject string, data []byte) error { return nc.Publish(subject, data) }
			if durable {
				pub = func(subject string, data []byte) error {
					_, err := js.Publish(context.Background(), subject, data)
					return err
				}
			}
			const n = 100
			payloads := publishPoisonThenValid(t, m, n, pub)
			checkPoisonHandled(t, dead, scores, payloads, n)
			if got := gaugeValue(t, r.Registry(), "dagmm_nats_connected", nil); got != 1 {
				t.Errorf("dagmm_nats_connected %v after the bad hosts", got)
			}
			if durable {
				// Terminated, not acknowledged: the server says so.
				terminated.wait(t, len(badHostCases), 5*time.Second)
				checkConsumerDone(t, js, cfg)
			}
		})
	}
}

// TestDurableRestartOnPoison: a durable scorer started on a stream that
// already holds messages with bad hosts dead-letters them and scores every
// message after them.
func TestDurableRestartOnPoison(t *testing.T) {
	checkNoLeak(t)
	srv, m, cfg := withNATS(t)
	cfg.JetStream.Enabled = true
	cfg.NATS.PublishScores = true
	first := start(t, cfg) // creates the stream and the consumer
	first.stop(t)
	nc, js := natstest.ConnectJS(t, srv.ClientURL())
	const n = 100
	payloads := publishPoisonThenValid(t, m, n, func(subject string, data []byte) error {
		_, err := js.Publish(context.Background(), subject, data)
		return err
	})
	dead := collect(t, nc, "dagmm.deadletter")
	scores := collect(t, nc, "scores.>")
	start(t, cfg)
	checkPoisonHandled(t, dead, scores, payloads, n)
	checkConsumerDone(t, js, cfg)
}

// checkConsumerDone waits until the durable consumer has nothing pending
// or unacknowledged.
func checkConsumerDone(t *testing.T, js jetstream.JetStream, cfg Config) {
	t.Helper()
	cfg = cfg.WithDefaults()
	cons, err := js.Consumer(context.Background(), cfg.JetStream.Stream, cfg.JetStream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// runNATSAt starts an in-process nats-server with JetStream on port (-1
// for a free one) and store dir, and returns it; cleanup shuts it down.
func runNATSAt(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	return natstest.StartServer(t, natstest.Options{Port: port, JetStream: true, StoreDir: dir, MaxPayload: 8 << 20})
}

// scorerCID returns the server's id of the scorer's client connection.
func scorerCID(t *testing.T, srv *server.Server) uint64 {
	t.Helper()
	var cid uint64
	natstest.WaitFor(t, 5*time.Second, func() error {
		cz, err := srv.Connz(&server.ConnzOptions{})
		if err != nil {
			return err
		}
		for _, c := range cz.Conns {
			if c.Name == "dagmm-serve" {
				cid = c.Cid
				return nil
			}
		}
		return fmt.Errorf("no dagmm-serve client among %d connections", len(cz.Conns))
	})
	return cid
}

// checkReady waits until /v2/health/ready, dagmm_ready and
// dagmm_nats_connected all say ready (or all say not ready).
func checkReady(t *testing.T, r *running, ready bool, timeout time.Duration) {
	t.Helper()
	wantCode, want := http.StatusServiceUnavailable, 0.0
	if ready {
		wantCode, want = http.StatusOK, 1
	}
	natstest.WaitFor(t, timeout, func() error {
		code, body := r.get(t, "/v2/health/ready")
		g := gaugeValue(t, r.Registry(), "dagmm_ready", nil)
		c := gaugeValue(t, r.Registry(), "dagmm_nats_connected", nil)
		if code != wantCode || g != want || c != want {
			return fmt.Errorf("ready: /v2/health/ready %d %s, dagmm_ready %v, dagmm_nats_connected %v; want %d and %v", code, body, g, c, wantCode, want)
		}
		return nil
	})
}

// TestNATSConnectionLoss: however the scorer's connection is lost — the
// server kicks the client, the server restarts, the client closes the
// connection for good after a server error — the service reports not
// ready and why, gets a connection back, reports ready and scores again.
func TestNATSConnectionLoss(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string // the dagmm_nats_disconnects_total reason it counts
		// cut breaks the connection; it reports whether the service stays
		// not ready until restore is called.
		cut     func(t *testing.T, srv *server.Server, r *running) bool
		restore func(t *testing.T, port int, dir string) *server.Server
	}{
		{"server kicks the client", disconnectLost, func(t *testing.T, srv *server.Server, r *running) bool {
			if err := srv.DisconnectClientByID(scorerCID(t, srv)); err != nil {
				t.Fatal(err)
			}
			return false
		}, nil},
		{"server restarts", disconnectLost, func(t *testing.T, srv *server.Server, r *running) bool {
			srv.Shutdown()
			srv.WaitForShutdown()
			return true
		}, func(t *testing.T, port int, dir string) *server.Server { return runNATSAt(t, port, dir) }},
		{"client closes on a server error", disconnectClosed, func(t *testing.T, srv *server.Server, r *running) bool {
			// What a 4,100-byte host did: a protocol line over the
			// server's limit, which nats.go answers by closing for good.
			nc := r.nats.conn.NC()
			if err := nc.Publish("anomalies."+strings.Repeat("x", 5000), []byte("{}")); err != nil {
				t.Fatal(err)
			}
			natstest.WaitFor(t, 5*time.Second, func() error {
				if !nc.IsClosed() {
					return fmt.Errorf("the client did not close its connection: %v", nc.Status())
				}
				return nil
			})
			return false
		}, nil},
	} {
		for _, durable := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/jetstream=%v", tc.name, durable), func(t *testing.T) {
				checkNoLeak(t)
				dir := t.TempDir()
				srv := runNATSAt(t, -1, dir)
				port := srv.Addr().(*net.TCPAddr).Port
				path, m := writeModel(t, t.TempDir(), 1)
				cfg := testConfig(path)
				cfg.NATS.URL = srv.ClientURL()
				cfg.JetStream.Enabled = durable
				cfg.NATS.PublishScores = true
				r := start(t, cfg)
				checkReady(t, r, true, 5*time.Second)
				if tc.cut(t, srv, r) {
					checkReady(t, r, false, 5*time.Second)
					time.Sleep(300 * time.Millisecond) // and it stays so
					checkReady(t, r, false, time.Second)
					srv = tc.restore(t, port, dir)
				}
				// The disconnect is counted first: checking readiness before
				// the client noticed the cut would pass, and core samples
				// published while it reconnects are lost.
				natstest.WaitFor(t, 10*time.Second, func() error {
					if got := counterValue(t, r.Registry(), "dagmm_nats_disconnects_total", map[string]string{"reason": tc.reason}); got < 1 {
						return fmt.Errorf("dagmm_nats_disconnects_total{reason=%q} = %v, want at least 1", tc.reason, got)
					}
					return nil
				})
				checkReady(t, r, true, 10*time.Second)

				// It scores again.
				nc := natstest.Connect(t, srv.ClientURL())
				scores := collect(t, nc, "scores.>")
				normal, _ := testData(t, m, 10, 0, 3)
				d := len(m.Features)
				js, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 10 {
					p := []byte(sampleJSON("after", time.Now(), m.Features, normal[i*d:(i+1)*d]))
					if durable {
						_, err = js.Publish(context.Background(), "metrics.after", p)
					} else {
						err = nc.Publish("metrics.after", p)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				scores.wait(t, 10, 15*time.Second)
			})
		}
	}
}

// TestDurableMaxDeliver: a message whose events keep failing to publish is
// delivered again with a backoff, MaxDeliver times in all, then
// dead-lettered and terminated; the messages behind it are not held back.
func TestDurableMaxDeliver(t *testing.T) {
	srv, m, cfg := withNATS(t)
	cfg.JetStream.Enabled = true
	cfg.JetStream.MaxDeliver = 3
	cfg.JetStream.EventStream = "EVENTS"
	_, js := natstest.ConnectJS(t, srv.ClientURL())
	ctx := context.Background()
	// An event stream that takes one message per subject and refuses the
	// next: the second anomaly of a host cannot be stored.
	events, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "EVENTS", Subjects: []string{"anomalies.>", "dagmm.deadletter"},
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	normal, anomalies := testData(t, m, 20, 3, 7)
	d := len(m.Features)
	now := time.Now()
	pub := func(host string, x []float64) {
		t.Helper()
		if _, err := js.Publish(ctx, "metrics."+host, []byte(sampleJSON(host, now, m.Features, x))); err != nil {
			t.Fatal(err)
		}
	}
	pub("h", anomalies[:d]) // seq 1: stored on anomalies.h
	// Wait for it: workers score in parallel, and seq 2's event must be the
	// one refused.
	natstest.WaitFor(t, 5*time.Second, func() error {
		_, err := events.GetLastMsgForSubject(ctx, "anomalies.h")
		return err
	})
	pub("h", anomalies[d:2*d]) // seq 2: its event is refused, every time
	for i := range 20 {        // seq 3-22: normal, no events
		pub("n", normal[i*d:(i+1)*d])
	}
	pub("h2", anomalies[2*d:3*d]) // seq 23: stored on anomalies.h2

	// The messages behind seq 2 are done long before its retries end.
	natstest.WaitFor(t, 3*time.Second, func() error {
		if _, err := events.GetLastMsgForSubject(ctx, "anomalies.h2"); err != nil {
			return fmt.Errorf("the anomaly behind the failing message: %w", err)
		}
		return nil
	})
	var dl *jetstream.RawStreamMsg
	natstest.WaitFor(t, 15*time.Second, func() error {
		dl, err = events.GetLastMsgForSubject(ctx, "dagmm.deadletter")
		return err
	})
	reason := dl.Header.Get(HeaderReason)
	if dl.Header.Get(HeaderReasonKind) != reasonPublish || dl.Header.Get(HeaderStreamSeq) != "2" ||
		!strings.Contains(reason, "delivery 3") || !strings.Contains(reason, "publish events") {
		t.Errorf("dead letter of seq %s, kind %q, reason %q; want seq 2, publish, on delivery 3",
			dl.Header.Get(HeaderStreamSeq), dl.Header.Get(HeaderReasonKind), reason)
	}
	checkConsumerDone(t, js, cfg)
	cons, err := js.Consumer(ctx, cfg.WithDefaults().JetStream.Stream, cfg.WithDefaults().JetStream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxDeliver != 3 || info.NumRedelivered != 0 || info.AckFloor.Stream != 23 {
		t.Errorf("consumer: max deliver %d, %d redelivered, ack floor %d; want 3, 0, 23", info.Config.MaxDeliver, info.NumRedelivered, info.AckFloor.Stream)
	}
}

// TestHTTPBadHost: the HTTP endpoint takes the same samples as NATS and
// refuses the same hosts, with a 400 naming the problem.
func TestHTTPBadHost(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := testConfig(path)
	cfg.NATS.Disabled = true
	r := start(t, cfg)
	x := []float64{1, 2, 3, 4}
	for _, tc := range badHostCases {
		if tc.host == "" {
			continue // over HTTP a sample without host has no host
		}
		code, body := r.post(t, "/v1/score", string(hostileSample(tc.host, time.Now(), m.Features, x)))
		var e struct{ Error string }
		if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest ||
			!strings.Contains(e.Error, "invalid host") || !strings.Contains(e.Error, tc.reason) {
			t.Errorf("%s: %d %.200s; want 400 saying %q", tc.name, code, body, tc.reason)
		}
	}
	if code, body := r.post(t, "/v1/score", string(hostileSample("web-1.example.com", time.Now(), m.Features, x))); code != http.StatusOK {
		t.Errorf("a fully qualified host: %d %s", code, body)
	}
}
