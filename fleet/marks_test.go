package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/internal/natstest"
)

// enqueued records the hosts queued for retraining, and fails when err is
// set: an Enqueuer as the job queue would be, without the queue.
type enqueued struct {
	mu      sync.Mutex
	hosts   []string
	reasons []string
	err     error
}

func (e *enqueued) Enqueue(_ context.Context, host, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	e.hosts = append(e.hosts, host)
	e.reasons = append(e.reasons, reason)
	return nil
}

func (e *enqueued) calls() ([]string, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.hosts), slices.Clone(e.reasons)
}

// marksFor starts a server and returns marks on it, and its connection.
func marksFor(t *testing.T, enq Enqueuer) (*Marks, *nats.Conn) {
	t.Helper()
	nc, js := connectJS(t, runNATS(t))
	m, err := NewMarks(testContext(t, 30*time.Second), js, MarksConfig{}, enq)
	if err != nil {
		t.Fatal(err)
	}
	return m, nc
}

func TestMarksRoundTrip(t *testing.T) {
	enq := &enqueued{}
	m, _ := marksFor(t, enq)
	ctx := testContext(t, 30*time.Second)
	base := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	ts := []time.Time{base.Add(20 * time.Second), base, base.Add(10*time.Second + 123456789)}
	for _, tm := range ts {
		if err := m.Mark(ctx, "web-1.example.com", tm, "ana", "deploy"); err != nil {
			t.Fatal(err)
		}
	}
	// Marking a sample again replaces its mark; times in another zone are
	// the same instants.
	if err := m.Mark(ctx, "web-1.example.com", base.In(time.FixedZone("CET", 3600)), "bo", "again"); err != nil {
		t.Fatal(err)
	}
	if err := m.Mark(ctx, "web-1=2Eexample=2Ecom", base.Add(time.Hour), "", ""); err != nil { // another host, whose name looks like the first's key
		t.Fatal(err)
	}

	got, err := m.Marked(ctx, "web-1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(ts)
	slices.SortFunc(want, time.Time.Compare)
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("marked: %v, want %v", got, want)
	}
	marks, err := m.List(ctx, "web-1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 3 || marks[0].By != "bo" || marks[0].Note != "again" || marks[1].By != "ana" || marks[0].Marked.IsZero() {
		t.Fatalf("marks: %+v", marks)
	}
	if other, err := m.Marked(ctx, "web-1=2Eexample=2Ecom"); err != nil || len(other) != 1 || !other[0].Equal(base.Add(time.Hour)) {
		t.Fatalf("other host's marks: %v, %v", other, err)
	}
	if none, err := m.Marked(ctx, "db-1"); err != nil || len(none) != 0 {
		t.Fatalf("marks of a host never marked: %v, %v", none, err)
	}

	hosts, reasons := enq.calls()
	if want := []string{"web-1.example.com", "web-1.example.com", "web-1.example.com", "web-1.example.com", "web-1=2Eexample=2Ecom"}; !slices.Equal(hosts, want) {
		t.Fatalf("enqueued %v, want %v", hosts, want)
	}
	if !strings.Contains(reasons[0], "2026-12-05T20:00:20Z") || !strings.Contains(reasons[0], `"ana"`) {
		t.Errorf("reason %q does not name the sample time and who marked it", reasons[0])
	}
}

func TestMarkRefused(t *testing.T) {
	enq := &enqueued{}
	m, _ := marksFor(t, enq)
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	for _, tc := range []struct {
		name, host string
		ts         time.Time
		by, note   string
		want       string
	}{
		{"empty host", "", now, "", "", "empty"},
		{"host with a space", "web 1", now, "", "", "white space"},
		{"no time", "web-1", time.Time{}, "", "", "no sample time"},
		{"long by", "web-1", now, strings.Repeat("a", MaxMarkBy+1), "", `"by" is 256 bytes`},
		{"long note", "web-1", now, "", strings.Repeat("a", MaxMarkNote+1), "the note is 4097 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Mark(ctx, tc.host, tc.ts, tc.by, tc.note); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("mark: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if hosts, _ := enq.calls(); len(hosts) != 0 {
		t.Fatalf("refused marks queued %v", hosts)
	}
	if got, err := m.Marked(ctx, "web-1"); err != nil || len(got) != 0 {
		t.Fatalf("refused marks kept: %v, %v", got, err)
	}
}

func TestMarkNotQueued(t *testing.T) {
	m, _ := marksFor(t, &enqueued{err: errors.New("job stream unavailable")})
	ctx := testContext(t, 30*time.Second)
	ts := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	err := m.Mark(ctx, "web-1", ts, "ana", "")
	if !errors.Is(err, ErrNotQueued) || !strings.Contains(err.Error(), "job stream unavailable") || !strings.Contains(err.Error(), `"web-1"`) {
		t.Fatalf("mark: %v, want ErrNotQueued with the cause and host", err)
	}
	if got, err := m.Marked(ctx, "web-1"); err != nil || len(got) != 1 || !got[0].Equal(ts) {
		t.Fatalf("the mark is not kept: %v, %v", got, err)
	}
}

func TestServeMarks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		enq    *enqueued
		body   string
		want   MarkReply
		errHas string
		kept   int
	}{
		{"marked and queued", &enqueued{}, `{"host":"web-1","ts":"2026-12-05T20:49:05Z","by":"ana","note":"deploy"}`, MarkReply{OK: true, Queued: true}, "", 1},
		{"an event as published", &enqueued{}, `{"host":"web-1","ts":"2026-11-24T10:00:00Z","model":"dagmm","score":12.5,"anomaly":true}`, MarkReply{OK: true, Queued: true}, "", 1},
		{"marked without a queue", nil, `{"host":"web-1","ts":"2026-12-05T20:49:05Z"}`, MarkReply{OK: true}, "", 1},
		{"marked, queueing failed", &enqueued{err: errors.New("no job stream")}, `{"host":"web-1","ts":"2026-12-05T20:49:05Z"}`, MarkReply{OK: true}, "no job stream", 1},
		{"not JSON", &enqueued{}, `host=web-1`, MarkReply{}, "not a JSON object", 0},
		{"no ts", &enqueued{}, `{"host":"web-1"}`, MarkReply{}, "no sample time", 0},
		{"bad host", &enqueued{}, `{"host":"web*","ts":"2026-12-05T20:49:05Z"}`, MarkReply{}, "wildcard", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var enq Enqueuer
			if tc.enq != nil {
				enq = tc.enq
			}
			m, nc := marksFor(t, enq)
			ctx, cancel := context.WithCancel(testContext(t, 30*time.Second))
			defer cancel()
			if _, err := ServeMarks(ctx, nc, DefaultMarksSubject, m, 0); err != nil {
				t.Fatal(err)
			}
			client, _ := natstest.ConnectJS(t, nc.ConnectedUrl())
			msg, err := client.Request(DefaultMarksSubject, []byte(tc.body), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var reply MarkReply
			if err := json.Unmarshal(msg.Data, &reply); err != nil {
				t.Fatalf("reply %q: %v", msg.Data, err)
			}
			if reply.OK != tc.want.OK || reply.Queued != tc.want.Queued || (tc.errHas == "") != (reply.Error == "") || !strings.Contains(reply.Error, tc.errHas) {
				t.Fatalf("reply %+v, want %+v with error %q", reply, tc.want, tc.errHas)
			}
			if got, err := m.Marked(ctx, "web-1"); err != nil || len(got) != tc.kept {
				t.Fatalf("marks kept: %v, %v; want %d", got, err, tc.kept)
			}
			cancel()
			// The responder stops with its context.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := client.Request(DefaultMarksSubject, []byte(tc.body), time.Second)
				if errors.Is(err, nats.ErrNoResponders) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still answered after cancel: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestMarkQueuesOnTheJobQueue: marks queue the host on the real job queue,
// and a second mark while the first job is pending is no error: that job
// reads the window with both marks.
func TestMarkQueuesOnTheJobQueue(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	_, js := connectJS(t, runNATS(t))
	jobs, err := EnsureJobs(ctx, js, JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMarks(ctx, js, MarksConfig{}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	for i := range 2 {
		if err := m.Mark(ctx, "db-1", base.Add(time.Duration(i)*time.Minute), "ana", ""); err != nil {
			t.Fatalf("mark %d: %v", i+1, err)
		}
	}
	if err := jobs.Enqueue(ctx, "db-1", "test"); !errors.Is(err, ErrJobPending) {
		t.Errorf("enqueue after the marks: %v, want ErrJobPending (the marks queued a job)", err)
	}
	if got, err := m.Marked(ctx, "db-1"); err != nil || len(got) != 2 {
		t.Errorf("marked: %v, %v; want 2 marks", got, err)
	}
}
