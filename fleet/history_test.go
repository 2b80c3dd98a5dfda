package fleet

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

func TestDecodeSamples(t *testing.T) {
	received := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		msg    string
		ts     []time.Time
		events []bool
		names  []string
		bad    bool
		err    bool
	}{
		{name: "single", msg: `{"host":"h","ts":"2026-12-01T10:00:00Z","values":{"b":1,"a":2}}`,
			ts: []time.Time{received.Add(10 * time.Hour)}, events: []bool{false}, names: []string{"b", "a"}},
		{name: "unix ts and no ts", msg: `[{"ts":1764547200.5,"values":{"a":1}},{"values":{"a":2}}]`,
			ts: []time.Time{time.Unix(1764547200, 5e8).UTC(), received}, events: []bool{false, false}, names: []string{"a"}},
		{name: "batch object", msg: `{"samples":[{"values":{"a":1},"event":1},{"values":{"a":1},"event":0}]}`,
			ts: []time.Time{received, received}, events: []bool{true, false}, names: []string{"a"}},
		{name: "event kinds", msg: `[{"values":{"a":1},"event":"yes"},{"values":{"a":1},"event":" No "},{"values":{"a":1},"event":true},{"values":{"a":1},"event":null},{"values":{"a":1},"event":"false"},{"values":{"a":1},"event":""},{"values":{"a":1},"event":{"id":3}}]`,
			ts: slices.Repeat([]time.Time{received}, 7), events: []bool{true, false, true, false, false, false, true}, names: []string{"a"}},
		{name: "string value", msg: `{"values":{"a":"12"}}`, ts: []time.Time{received}, events: []bool{false}, bad: true},
		{name: "not json", msg: `cpu=1`, err: true},
		{name: "bad ts", msg: `{"ts":"yesterday","values":{"a":1}}`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSamples([]byte(tc.msg), received)
			if tc.err {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.ts) {
				t.Fatalf("%d samples, want %d", len(got), len(tc.ts))
			}
			for i, s := range got {
				if !s.TS.Equal(tc.ts[i]) || s.Event != tc.events[i] || s.bad != tc.bad {
					t.Errorf("sample %d: ts %v event %v bad %v, want %v %v %v", i, s.TS, s.Event, s.bad, tc.ts[i], tc.events[i], tc.bad)
				}
				if !tc.bad && !slices.Equal(s.Names, tc.names) {
					t.Errorf("sample %d: names %v, want %v (in the message's order)", i, s.Names, tc.names)
				}
			}
		})
	}
}

// TestHistoryFleet: 50 hosts with different normal levels stream more
// than the window; the stream keeps each host's latest samples only, and a
// host's window reads back its own samples, newest last.
func TestHistoryFleet(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, time.Minute)
	const hosts, limit, sent = 50, 120, 150
	h, err := EnsureHistory(ctx, js, HistoryConfig{MaxMsgsPerSubject: limit})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	publishHistory(t, js, h, hostRange(hosts), 0, sent, t0)

	counts, err := h.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != hosts {
		t.Fatalf("%d host subjects, want %d", len(counts), hosts)
	}
	if s, err := js.Stream(ctx, h.Stream()); err == nil {
		st := s.CachedInfo().State
		t.Logf("history: %d messages, %d bytes, %.0f bytes per message of %d bytes of JSON", st.Msgs, st.Bytes, float64(st.Bytes)/float64(st.Msgs), len(testSample(0, 0, t0, "")))
	}
	for tok, n := range counts {
		if n != limit {
			t.Errorf("%s: %d messages kept, want the limit %d", tok, n, limit)
		}
	}
	for _, i := range []int{0, 4, 31, 49} {
		w, err := h.Window(ctx, hostName(i), WindowOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Rows() != limit || w.Messages != limit {
			t.Fatalf("%s: %d rows from %d messages, want %d", hostName(i), w.Rows(), w.Messages, limit)
		}
		if !slices.Equal(w.Features, testFeatures) {
			t.Errorf("%s: features %v, want %v", hostName(i), w.Features, testFeatures)
		}
		if first, last := w.TS[0], w.TS[len(w.TS)-1]; !first.Equal(t0.Add((sent-limit)*time.Second)) || !last.Equal(t0.Add((sent-1)*time.Second)) {
			t.Errorf("%s: window from %v to %v, want the latest %d samples", hostName(i), first, last, limit)
		}
		for j := range testFeatures {
			mean := 0.0
			for r := range w.Rows() {
				mean += w.X[r*len(testFeatures)+j] / float64(w.Rows())
			}
			if math.Abs(mean-hostMean(i, j)) > 1 {
				t.Errorf("%s: %s mean %.2f, want about %.0f: another host's samples?", hostName(i), testFeatures[j], mean, hostMean(i, j))
			}
		}
	}
	if host, err := h.HostOf(ctx, ingest.HostToken(hostName(4))); err != nil || host != hostName(4) {
		t.Errorf("HostOf(%s) = %q, %v, want %q", ingest.HostToken(hostName(4)), host, err, hostName(4))
	}
	w, err := h.Window(ctx, "never-seen", WindowOptions{})
	if err != nil || w.Rows() != 0 {
		t.Errorf("window of a host without history: %d rows, %v; want 0, nil", w.Rows(), err)
	}
}

// TestEnsureHistoryBinds: a stream that holds the subject already (as
// dagmm serve --jetstream creates one) is bound under its own name and
// given the per-subject limit; one with a limit keeps it.
func TestEnsureHistoryBinds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		existing  int64 // the existing stream's MaxMsgsPerSubject
		wantLimit int
	}{
		{"no limit", 0, 1000},
		{"own limit", 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := runNATS(t)
			_, js := connectJS(t, srv)
			ctx := testContext(t, 10*time.Second)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SCORER", Subjects: []string{"metrics.>"}, MaxMsgsPerSubject: tc.existing}); err != nil {
				t.Fatal(err)
			}
			h, err := EnsureHistory(ctx, js, HistoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if h.Stream() != "SCORER" || h.Limit() != tc.wantLimit {
				t.Fatalf("bound %s with limit %d, want SCORER with %d", h.Stream(), h.Limit(), tc.wantLimit)
			}
			s, err := js.Stream(ctx, "SCORER")
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.MaxMsgsPerSubject; got != int64(tc.wantLimit) {
				t.Errorf("stream's per-subject limit %d, want %d", got, tc.wantLimit)
			}
		})
	}
}

// TestEnsureHistoryWrongStream: a stream of the history's name over other
// subjects is refused, not bound.
func TestEnsureHistoryWrongStream(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 10*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DAGMM_METRICS", Subjects: []string{"telegraf.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureHistory(ctx, js, HistoryConfig{}); err == nil || !strings.Contains(err.Error(), "telegraf.>") {
		t.Errorf("EnsureHistory = %v, want an error naming the stream's subjects", err)
	}
}

func TestHistoryConfigValidate(t *testing.T) {
	for _, subj := range []string{"metrics", "metrics.*", ">", "a.*.>"} {
		if err := (HistoryConfig{Subject: subj}).withDefaults().Validate(); err == nil {
			t.Errorf("subject %q accepted", subj)
		}
	}
	if err := DefaultHistoryConfig().Validate(); err != nil {
		t.Error(err)
	}
}

// TestWindowExclusions: samples with an event are removed, and so are
// those dagmm flagged (anomaly events in the event stream), unless an
// operator marked them as false alarms (KV), which stay in the window.
func TestWindowExclusions(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 30*time.Second)
	h, err := EnsureHistory(ctx, js, HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"anomalies.>", "scores.>"}}); err != nil {
		t.Fatal(err)
	}
	const host = 4 // db04.example.com: dots in the name
	name := hostName(host)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ts := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	const n = 40
	withEvent := map[int]string{3: `,"event":true`, 7: `,"event":"disk alert"`, 9: `,"event":0`, 11: `,"event":"no"`}
	flagged := []int{5, 20, 30}
	for i := range n {
		if _, err := js.Publish(ctx, h.Subject(name), testSample(host, i, t0, withEvent[i])); err != nil {
			t.Fatal(err)
		}
	}
	publishEvent := func(subject string, i int, anomaly bool) {
		t.Helper()
		ev := fmt.Sprintf(`{"host":%q,"ts":%q,"energy":20,"anomaly":%v,"severity":80,"band":"high"}`, name, ts(i).Format(time.RFC3339Nano), anomaly)
		if _, err := js.Publish(ctx, subject, []byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range flagged {
		publishEvent("anomalies."+ingest.HostToken(name), i, true)
	}
	publishEvent("scores."+ingest.HostToken(name), 25, false) // a score, not an anomaly
	publishEvent("anomalies.web-00", 26, true)                // another host's
	marks := newKVMarks(t, js)
	marks.mark(t, name, ts(20))
	marks.mark(t, name, ts(21)) // marked but never flagged: nothing to keep

	for _, tc := range []struct {
		name                           string
		opt                            WindowOptions
		removed                        []int
		events, flags, falseAlarms, kp int
	}{
		{"events only", WindowOptions{}, []int{3, 7}, 2, 0, 0, n - 2},
		{"flags", WindowOptions{Flags: EventFlags{JS: js, Stream: "EVENTS"}}, []int{3, 7, 5, 20, 30}, 2, 3, 0, n - 5},
		{"flags and marks", WindowOptions{Flags: EventFlags{JS: js, Stream: "EVENTS"}, FalseAlarms: marks}, []int{3, 7, 5, 30}, 2, 2, 1, n - 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := h.Window(ctx, name, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if w.Rows() != tc.kp || w.Events != tc.events || w.Flagged != tc.flags || w.FalseAlarms != tc.falseAlarms {
				t.Errorf("rows %d events %d flagged %d false alarms %d, want %d %d %d %d", w.Rows(), w.Events, w.Flagged, w.FalseAlarms, tc.kp, tc.events, tc.flags, tc.falseAlarms)
			}
			for _, i := range tc.removed {
				if slices.ContainsFunc(w.TS, ts(i).Equal) {
					t.Errorf("sample %d is in the window", i)
				}
			}
			if !slices.ContainsFunc(w.TS, ts(9).Equal) || !slices.ContainsFunc(w.TS, ts(11).Equal) {
				t.Error(`samples with "event":0 or "no" were removed`)
			}
			if tc.opt.FalseAlarms != nil && !slices.ContainsFunc(w.TS, ts(20).Equal) {
				t.Error("the sample marked as a false alarm is not in the window")
			}
		})
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, sub string
		want         bool
	}{
		{"metrics.>", "metrics.>", true},
		{">", "metrics.>", true},
		{"*.>", "metrics.>", true},
		{"metrics.*", "metrics.>", false},
		{"metrics.a.>", "metrics.>", false},
		{"telegraf.>", "metrics.>", false},
		{"metrics", "metrics.>", false},
	} {
		if got := covers(tc.pattern, tc.sub); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.pattern, tc.sub, got, tc.want)
		}
	}
}

// TestWindowFeatures: the window's features are those of the latest
// readable sample; samples without one of them, with a value that is not a
// number, or in a message that cannot be decoded are counted, not trained
// on; a batch message gives all its samples.
func TestWindowFeatures(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 10*time.Second)
	h, err := EnsureHistory(ctx, js, HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{
		`{"ts":1,"values":{"a":1}}`,                                         // lacks b
		`[{"ts":2,"values":{"b":2,"a":1}},{"ts":3,"values":{"a":1,"b":3}}]`, // a batch
		`not json`,
		`{"ts":4,"values":{"a":1,"b":4,"c":9}}`, // an extra value is ignored
		`{"ts":5,"values":{"b":5,"a":1}}`,       // the latest readable: its order
		`{"ts":6,"values":{"b":"6","a":1}}`,     // not a number
	} {
		if _, err := js.Publish(ctx, h.Subject("h1"), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := h.Window(ctx, "h1", WindowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Features, []string{"b", "a"}) {
		t.Errorf("features %v, want [b a]", w.Features)
	}
	if w.Messages != 6 || w.Samples != 6 || w.Incomplete != 3 || w.Rows() != 4 {
		t.Errorf("messages %d samples %d incomplete %d rows %d, want 6 6 3 4", w.Messages, w.Samples, w.Incomplete, w.Rows())
	}
	if want := []float64{2, 1, 3, 1, 4, 1, 5, 1}; !slices.Equal(w.X, want) {
		t.Errorf("X %v, want %v", w.X, want)
	}
}
