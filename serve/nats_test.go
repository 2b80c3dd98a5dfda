package serve

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"

	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/serve/ingest"
)

func TestNATSCoreEvents(t *testing.T) {
	checkNoLeak(t)
	path, m := writeModel(t, t.TempDir(), 1)
	r := start(t, testConfig(path)) // embedded server
	s, _ := model.NewScorer(m)
	d := len(m.Features)
	normal, anomalies := testData(t, m, 60, 6, 5)
	nc := natstest.Connect(t, r.NATSURL())
	events := collect(t, nc, "anomalies.>")
	ts := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

	// Single-sample messages: normal ones from web-1, anomalies from
	// "db.2" (its dot cannot be in a subject token).
	want := map[string][]float64{} // key host/ts → sample
	for i := 0; i < 50; i++ {
		x := normal[i*d : (i+1)*d]
		if err := nc.Publish("metrics.web-1", []byte(sampleJSON("web-1", ts.Add(time.Duration(i)*time.Second), m.Features, x))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			k := i / 10
			a := anomalies[k*d : (k+1)*d]
			at := ts.Add(time.Duration(i) * time.Second)
			if err := nc.Publish("metrics.db", []byte(sampleJSON("db.2", at, m.Features, a))); err != nil {
				t.Fatal(err)
			}
			want["db.2/"+at.Format(time.RFC3339)] = a
		}
	}
	// A batch without host: the host comes from the subject.
	batch := slices.Concat(normal[50*d:60*d], anomalies[5*d:6*d])
	var parts []string
	for i := 0; i < len(batch)/d; i++ {
		parts = append(parts, fmt.Sprintf(`{"ts":%d,"values":{"cpu_usage":%v,"mem_usage":%v,"disk_busy":%v,"net_in_bps":%v}}`,
			ts.Unix()+int64(i), batch[i*d], batch[i*d+1], batch[i*d+2], batch[i*d+3]))
	}
	if err := nc.Publish("metrics.web-3", []byte(`{"samples":[`+strings.Join(parts, ",")+`]}`)); err != nil {
		t.Fatal(err)
	}
	want["web-3/"+ts.Add(10*time.Second).Format(time.RFC3339)] = anomalies[5*d : 6*d]

	msgs := events.wait(t, len(want), 10*time.Second)
	msgs = append(msgs, events.quiet(300*time.Millisecond)...)
	if len(msgs) != len(want) {
		t.Fatalf("%d events, want %d (one per injected anomaly, none for normal samples)", len(msgs), len(want))
	}
	for _, msg := range msgs {
		e := decodeEvent(t, msg.Data)
		key := e.Host + "/" + e.TS.UTC().Format(time.RFC3339)
		x, ok := want[key]
		if !ok {
			t.Errorf("unexpected event %s", msg.Data)
			continue
		}
		delete(want, key)
		wantSubject := "anomalies." + ingest.HostToken(e.Host)
		if msg.Subject != wantSubject {
			t.Errorf("event on %s, want %s", msg.Subject, wantSubject)
		}
		res, _ := s.Score(x)
		if !e.Anomaly || !scalar.EqualWithinAbsOrRel(float64(e.Energy), res.Energy, 1e-12, 1e-12) ||
			float64(e.Threshold) != s.Threshold() || e.Model != "dagmm" || e.ModelVersion != r.Model().Version ||
			e.Severity != res.Severity || e.Band != res.Band.String() || e.ExplanationMethod != string(s.DefaultMethod()) {
			t.Errorf("event %s, want energy %v", msg.Data, res.Energy)
		}
		checkExplanation(t, e.Explanation, s, x, "")
		if e.Source == nil || !strings.HasPrefix(e.Source.Subject, "metrics.") {
			t.Errorf("event source %+v", e.Source)
		} else if e.Host == "web-3" && e.Source.Index != 10 {
			t.Errorf("batch event index %d, want 10", e.Source.Index)
		}
	}
	if len(want) > 0 {
		t.Errorf("no event for %v", want)
	}
}

func TestNATSScoresAndMsgID(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := testConfig(path)
	cfg.NATS.PublishScores = true
	r := start(t, cfg)
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	normal, _ := testData(t, m, 3, 0, 9)
	msg := nats.NewMsg("metrics.h1")
	msg.Header.Set(nats.MsgIdHdr, "producer-42")
	msg.Data = []byte(batchJSON("h1", time.Now(), m.Features, normal))
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	got := scores.wait(t, 3, 5*time.Second)
	for i, g := range got {
		e := decodeEvent(t, g.Data)
		if g.Subject != "scores.h1" || e.Anomaly || e.Explanation != nil || e.Source == nil ||
			e.Source.ID != "producer-42:"+strconv.Itoa(e.Source.Index) {
			t.Errorf("score %d: %s on %s", i, g.Data, g.Subject)
		}
	}
}

func TestNATSDeadLetters(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	r := start(t, testConfig(path))
	nc := natstest.Connect(t, r.NATSURL())
	dead := collect(t, nc, "dagmm.deadletter")
	events := collect(t, nc, "anomalies.>")
	ok := sampleJSON("h", time.Now(), m.Features, []float64{1, 2, 3, 4})
	cases := []struct {
		name, payload, reason string
	}{
		{"malformed", `{"values":{`, "malformed JSON"},
		{"empty", ``, "empty message"},
		{"missing feature", `{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3}}`, `feature "net_in_bps": missing feature`},
		{"NaN", `{"values":{"cpu_usage":"NaN","mem_usage":2,"disk_busy":3,"net_in_bps":4}}`, `feature "cpu_usage": value is not finite`},
		{"not a number", `[` + ok + `,{"values":{"cpu_usage":1,"mem_usage":true,"disk_busy":3,"net_in_bps":4}}]`, `sample 1 (offset`},
		{"too many", `[` + strings.Repeat(ok+",", 10000) + ok + `]`, "too many samples"},
		{"binary", "\x00\xff\xfe", "ingest:"},
	}
	for _, tc := range cases {
		if err := nc.Publish("metrics.h."+strings.ReplaceAll(tc.name, " ", "-"), []byte(tc.payload)); err != nil {
			t.Fatal(err)
		}
	}
	// The scorer is still alive: an anomaly after the bad input gets its event.
	_, anomalies := testData(t, m, 1, 1, 3)
	if err := nc.Publish("metrics.h", []byte(sampleJSON("h", time.Now(), m.Features, anomalies))); err != nil {
		t.Fatal(err)
	}
	events.wait(t, 1, 5*time.Second)
	got := dead.wait(t, len(cases), 5*time.Second)
	bySubject := map[string]*nats.Msg{}
	for _, g := range got {
		bySubject[g.Header.Get(HeaderSubject)] = g
	}
	for _, tc := range cases {
		g := bySubject["metrics.h."+strings.ReplaceAll(tc.name, " ", "-")]
		if g == nil {
			t.Errorf("%s: no dead letter", tc.name)
			continue
		}
		if reason := g.Header.Get(HeaderReason); !strings.Contains(reason, tc.reason) || g.Header.Get(HeaderReasonKind) != "decode" {
			t.Errorf("%s: reason %q (%s), want %q", tc.name, reason, g.Header.Get(HeaderReasonKind), tc.reason)
		}
		if string(g.Data) != tc.payload {
			t.Errorf("%s: payload %.40q, want the original %.40q", tc.name, g.Data, tc.payload)
		}
		if g.Header.Get(HeaderModelVersion) != r.Model().Version {
			t.Errorf("%s: model version header %q", tc.name, g.Header.Get(HeaderModelVersion))
		}
	}
}

func TestNATSScoreDeadLetter(t *testing.T) {
	// A value the decoder accepts but the model cannot normalise (it
	// overflows) is a "score" dead letter naming the sample and feature.
	m := modeltest.Metrics4(1)
	m.Norm[0] = model.Transform{Kind: model.NormZScore, Offset: 0, Scale: 0.01}
	path := t.TempDir() + "/m.json"
	saveModelAt(t, path, m)
	r := start(t, testConfig(path))
	nc := natstest.Connect(t, r.NATSURL())
	dead := collect(t, nc, "dagmm.deadletter")
	payload := `[{"values":{"cpu_usage":1,"mem_usage":2,"disk_busy":3,"net_in_bps":4}},{"values":{"cpu_usage":1e307,"mem_usage":2,"disk_busy":3,"net_in_bps":4}}]`
	if err := nc.Publish("metrics.h", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	g := dead.wait(t, 1, 5*time.Second)[0]
	reason := g.Header.Get(HeaderReason)
	if g.Header.Get(HeaderReasonKind) != "score" || !strings.Contains(reason, `sample 1: feature "cpu_usage"`) || string(g.Data) != payload {
		t.Errorf("dead letter %q kind %q payload %s", reason, g.Header.Get(HeaderReasonKind), g.Data)
	}
}

func TestNATSQueueGroup(t *testing.T) {
	// Two replicas in one queue group share the subject: every message is
	// scored once.
	srv, m, cfg := withNATS(t)
	cfg.NATS.PublishScores = true
	a, b := start(t, cfg), start(t, cfg)
	nc := natstest.Connect(t, srv.ClientURL())
	scores := collect(t, nc, "scores.>")
	normal, _ := testData(t, m, 1, 0, 1)
	const n = 400
	for i := range n {
		if err := nc.Publish("metrics.h", []byte(sampleJSON("h", time.Unix(int64(i), 0), m.Features, normal))); err != nil {
			t.Fatal(err)
		}
	}
	got := scores.wait(t, n, 10*time.Second)
	got = append(got, scores.quiet(300*time.Millisecond)...)
	seen := map[int64]bool{}
	for _, g := range got {
		seen[decodeEvent(t, g.Data).TS.Unix()] = true
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d scores for %d distinct samples, want %d each", len(got), len(seen), n)
	}
	ca := counterValue(t, a.Registry(), "dagmm_samples_scored_total", map[string]string{"source": "nats"})
	cb := counterValue(t, b.Registry(), "dagmm_samples_scored_total", map[string]string{"source": "nats"})
	if ca+cb != n || ca == 0 || cb == 0 {
		t.Errorf("replicas scored %v and %v, want a share each summing to %d", ca, cb, n)
	}
}

func TestShutdownDrains(t *testing.T) {
	// Messages published before the cancel are all scored and their
	// events delivered before Run returns.
	checkNoLeak(t)
	srv, m, cfg := withNATS(t)
	cfg.NATS.PublishScores = true
	r := start(t, cfg)
	nc := natstest.Connect(t, srv.ClientURL())
	scores := collect(t, nc, "scores.>")
	normal, _ := testData(t, m, 10, 0, 1)
	const n = 300
	for i := range n {
		if err := nc.Publish("metrics.h", []byte(batchJSON("h", time.Unix(int64(i), 0), m.Features, normal))); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	scores.wait(t, n*10, 10*time.Second)
	if resp, err := http.Get(r.base + "/v2/health/live"); err == nil {
		resp.Body.Close()
		t.Error("the HTTP server still answers after Run returned")
	}
}

func TestJetStreamRestart(t *testing.T) {
	// A scorer killed mid-stream and restarted scores every sample.
	checkNoLeak(t)
	srv, m, cfg := withNATS(t)
	cfg.JetStream.Enabled = true
	cfg.NATS.PublishScores = true
	cfg.JetStream.AckWait = time.Second
	nc, js := natstest.ConnectJS(t, srv.ClientURL())
	a := start(t, cfg) // creates the stream and the consumer
	scores := collect(t, nc, "scores.>")
	events := collect(t, nc, "anomalies.>")
	// Enough messages that the first scorer cannot finish them before the
	// kill, which comes after its first 50 scores.
	const msgs = 20000
	normal, anomalies := testData(t, m, 40, msgs/200, 2)
	d := len(m.Features)
	wantAnomalies := map[string]bool{}
	ctx := context.Background()
	for i := range msgs {
		var payload string
		if i%200 == 0 { // a batch with one anomaly
			k := i / 200
			payload = batchJSON("h", time.Unix(int64(i), 0), m.Features, slices.Concat(normal[:4*d], anomalies[k*d:(k+1)*d]))
		} else {
			j := i % 40
			payload = sampleJSON("h", time.Unix(int64(i), 0), m.Features, normal[j*d:(j+1)*d])
		}
		// A long stall wait: under the race detector the server acks
		// slower than the default 200 ms allows for 4,000 in flight.
		if _, err := js.PublishAsync("metrics.h", []byte(payload), jetstream.WithStallWait(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 { // stay under the client's limit on acks outstanding, even on a loaded machine
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishing to the stream timed out")
			}
		}
		if i%200 == 0 {
			wantAnomalies[strconv.Itoa(i+1)+":4"] = true // stream seq i+1, index 4
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to the stream timed out")
	}
	const total = msgs + msgs/200*4 // single samples plus the batches' extra samples
	// Kill the first scorer once it has scored some.
	seen := map[string]int{}
	for _, msg := range scores.wait(t, 50, 10*time.Second) {
		seen[decodeEvent(t, msg.Data).Source.ID]++
	}
	a.kill(t)
	cons, err := js.Consumer(ctx, cfg.WithDefaults().JetStream.Stream, cfg.WithDefaults().JetStream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at the kill: %d messages not yet delivered, %d delivered and not acknowledged", info.NumPending, info.NumAckPending)
	if info.NumPending+uint64(info.NumAckPending) == 0 {
		t.Fatal("the first scorer finished before the kill: the test proves nothing")
	}
	b := start(t, cfg)
	deadline := time.After(30 * time.Second)
	for len(seen) < total {
		select {
		case msg := <-scores.ch:
			e := decodeEvent(t, msg.Data)
			if e.Source == nil || e.Source.Stream != "DAGMM_METRICS" || e.Source.ID != fmt.Sprintf("DAGMM_METRICS:%d:%d", e.Source.Seq, e.Source.Index) {
				t.Fatalf("score without a proper source: %s", msg.Data)
			}
			seen[e.Source.ID]++
		case <-deadline:
			t.Fatalf("%d distinct samples scored, want %d", len(seen), total)
		}
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d samples scored, %d duplicates after the kill", len(seen), dups)
	for _, e := range events.quiet(500 * time.Millisecond) {
		ev := decodeEvent(t, e.Data)
		delete(wantAnomalies, strconv.FormatUint(ev.Source.Seq, 10)+":"+strconv.Itoa(ev.Source.Index))
	}
	if len(wantAnomalies) > 0 {
		t.Errorf("no anomaly event for %v", wantAnomalies)
	}
	// Everything is acknowledged.
	natstest.WaitFor(t, 5*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("ack pending %d, pending %d", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	_ = b
}

func TestJetStreamDeadLetterAndEventStream(t *testing.T) {
	// Durable mode on the embedded server, with events stored in a stream:
	// a bad message is dead-lettered with its stream sequence and
	// acknowledged (not redelivered); events carry message ids.
	path, m := writeModel(t, t.TempDir(), 1)
	cfg := testConfig(path)
	cfg.JetStream.Enabled = true
	cfg.JetStream.EventStream = "DAGMM_EVENTS"
	cfg.JetStream.AckWait = time.Second
	r := start(t, cfg)
	nc := natstest.Connect(t, r.NATSURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	_, anomalies := testData(t, m, 1, 2, 4)
	for _, p := range []string{"garbage", sampleJSON("h", time.Now(), m.Features, anomalies[:4]), sampleJSON("h", time.Now(), m.Features, anomalies[4:])} {
		if _, err := js.Publish(ctx, "metrics.h", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	events, err := js.Stream(ctx, "DAGMM_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, func() error {
		info, err := events.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 3 {
			return fmt.Errorf("%d messages in the event stream, want 3", info.State.Msgs)
		}
		return nil
	})
	dl, err := events.GetLastMsgForSubject(ctx, "dagmm.deadletter")
	if err != nil {
		t.Fatal(err)
	}
	if dl.Header.Get(HeaderStreamSeq) != "1" || dl.Header.Get(HeaderStream) != "DAGMM_METRICS" || string(dl.Data) != "garbage" ||
		dl.Header.Get(nats.MsgIdHdr) != "d:DAGMM_METRICS:1" {
		t.Errorf("dead letter headers %v data %q", dl.Header, dl.Data)
	}
	ev, err := events.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if id := ev.Header.Get(nats.MsgIdHdr); id != "a:DAGMM_METRICS:3:0" && id != "a:DAGMM_METRICS:2:0" {
		t.Errorf("event message id %q", id)
	}
	time.Sleep(1500 * time.Millisecond) // past AckWait: nothing may come back
	cons, _ := js.Consumer(ctx, "DAGMM_METRICS", "dagmm-scorer")
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.AckFloor.Stream != 3 {
		t.Errorf("consumer: ack pending %d, redelivered %d, ack floor %d", info.NumAckPending, info.NumRedelivered, info.AckFloor.Stream)
	}
	if got := counterValue(t, r.Registry(), "dagmm_dead_letters_total", map[string]string{"reason": "decode"}); got != 1 {
		t.Errorf("dead letters %v", got)
	}
}

func TestNATSDeadLetterTruncated(t *testing.T) {
	// A bad message as large as the server takes still fits as a dead
	// letter: its payload is cut to leave room for the headers.
	path, _ := writeModel(t, t.TempDir(), 1)
	r := start(t, testConfig(path))
	nc := natstest.Connect(t, r.NATSURL())
	dead := collect(t, nc, "dagmm.deadletter")
	payload := []byte("x" + strings.Repeat(" ", int(nc.MaxPayload())-200))
	if err := nc.Publish("metrics.h", payload); err != nil {
		t.Fatal(err)
	}
	g := dead.wait(t, 1, 10*time.Second)[0]
	if g.Header.Get(HeaderTruncated) != strconv.Itoa(len(payload)) || len(g.Data) >= len(payload) || !strings.HasPrefix(string(payload), string(g.Data)) {
		t.Errorf("truncated header %q, %d of %d bytes", g.Header.Get(HeaderTruncated), len(g.Data), len(payload))
	}
	if got := counterValue(t, r.Registry(), "dagmm_nats_messages_total", map[string]string{"result": "dead_letter"}); got != 1 {
		t.Errorf("dead-lettered messages %v", got)
	}
}
