package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/serve"
	"github.com/dagmm/dagmm/serve/ingest"
)

// TestServePartitionsProcesses runs partitioned scorers the way they are
// deployed: dagmm serve --jetstream --partitions 2 as two OS processes (this
// test binary run as the command line through DAGMM_TEST_MAIN, see
// TestMain), partition 0 given by flags and partition 1 by DAGMM_PARTITIONS
// and DAGMM_PARTITION, both on one model file and on a JetStream server
// embedded in the test process. 20 hosts publish samples on
// metrics.<host token>.
//
// Which process scored a sample is told by where its event arrives: each
// process publishes every score (--scores) under a score prefix of its own
// (--score-prefix scores-p<I>), and each event carries the stream sequence
// of its sample, which the test knows from the publish acknowledgement. So
// every sample is checked to be scored exactly once, by the process of its
// host's partition (fleet.Partitions.Of, NATS's {{partition(2)}} of the
// subject), and each process's dagmm_samples_scored_total on /metrics
// must count the same samples.
//
// Then partition 1's process is killed (SIGKILL, no drain): the samples
// published next for its hosts are not scored by partition 0's process but
// wait on the durable consumer dagmm-scorer-p1, and a replacement started
// with the same --partition scores exactly those.
func TestServePartitionsProcesses(t *testing.T) {
	url := runNATSServer(t, true)
	nc, js := natstest.ConnectJS(t, url)
	modelPath := modelFile(t, t.TempDir(), 1)
	part := fleet.Partitions{Prefix: "metrics", N: 2}
	events := [2]*scoreLog{subscribeEvents(t, nc, "scores-p0.>"), subscribeEvents(t, nc, "scores-p1.>")}
	dead := subscribeEvents(t, nc, serve.DefaultConfig().NATS.DeadLetterSubject)

	procs := [2]*serveProcess{
		startServeProcess(t, url, modelPath, 0, false),
		startServeProcess(t, url, modelPath, 1, true),
	}
	stream, err := js.Stream(context.Background(), "DAGMM_METRICS")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := fleet.PartitionsOf(stream.CachedInfo().Config); !ok || p != part {
		t.Fatalf("sample stream partitioned %+v %v, want %+v", p, ok, part)
	}

	hosts := make([]string, 20)
	var byPart [2][]string
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i)
		if i%5 == 4 {
			hosts[i] = fmt.Sprintf("db%02d.example.com", i) // a host token of its own
		}
		byPart[part.Of(hosts[i])] = append(byPart[part.Of(hosts[i])], hosts[i])
	}
	if len(byPart[0]) == 0 || len(byPart[1]) == 0 {
		t.Fatalf("hosts split %d/%d: pick other names", len(byPart[0]), len(byPart[1]))
	}

	// Every sample once, by its partition's process.
	sent := publishSamples(t, js, hosts, 3, 0)
	want := sent.byPartition(part)
	for i, ev := range events {
		checkScored(t, fmt.Sprintf("process %d", i), ev, i, want[i], sent, dead)
	}
	for i, p := range procs {
		waitCounter(t, p, len(want[i]))
	}

	// Partition 1's process dies once it has acknowledged everything: its
	// hosts' next samples wait for a process of partition 1.
	cons, err := stream.Consumer(context.Background(), "dagmm-scorer-p1")
	if err != nil {
		t.Fatal(err)
	}
	waitConsumer(t, cons, 0, 0, -1)
	procs[1].kill(t)
	// The server drops a pull request once its connection is gone (the
	// consumer info expires those without interest): until then a sample
	// could be delivered to the dead process and come back only after the
	// ack wait.
	waitConsumer(t, cons, 0, 0, 0)
	sent = publishSamples(t, js, hosts, 2, time.Minute)
	want = sent.byPartition(part)
	checkScored(t, "process 0, partition 1's killed", events[0], 0, want[0], sent, dead)
	if got := events[1].drain(); len(got) != 0 {
		t.Errorf("%d scores from partition 1 after its process was killed: %v", len(got), got)
	}
	waitConsumer(t, cons, uint64(len(want[1])), 0, 0)

	// Its replacement scores them.
	procs[1] = startServeProcess(t, url, modelPath, 1, false)
	checkScored(t, "partition 1's replacement", events[1], 1, want[1], sent, dead)
	waitCounter(t, procs[1], len(want[1]))
	waitConsumer(t, cons, 0, 0, -1)

	for i, p := range procs {
		if err := p.stop(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, p.stderr.String())
		}
	}
}

// serveProcess is dagmm serve running as a process of its own.
type serveProcess struct {
	cmd    *exec.Cmd
	done   chan error
	stderr *syncBuffer
	addr   string // its HTTP address
}

// startServeProcess starts dagmm serve on partition i of 2 of the JetStream
// server at url, given by flags or, with env, by DAGMM_PARTITIONS and
// DAGMM_PARTITION, and waits until it serves (its consumer bound). It
// publishes every score to scores-p<i>.<host>.
func startServeProcess(t *testing.T, url, modelPath string, i int, env bool) *serveProcess {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--model", modelPath, "--nats-url", url, "--jetstream", "--http", "127.0.0.1:0", "--poll", "0",
		"--scores", "--score-prefix", fmt.Sprintf("scores-p%d", i), "--anomaly-prefix", fmt.Sprintf("anomalies-p%d", i)}
	var vars []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, envPrefix) { // a DAGMM_* of the caller's must not configure it
			vars = append(vars, v)
		}
	}
	if env {
		vars = append(vars, "DAGMM_PARTITIONS=2", "DAGMM_PARTITION="+strconv.Itoa(i))
	} else {
		args = append(args, "--partitions", "2", "--partition", strconv.Itoa(i))
	}
	for _, a := range args {
		if strings.ContainsFunc(a, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }) {
			t.Skipf("argument %q has a space: DAGMM_TEST_MAIN splits the command line on spaces", a)
		}
	}
	p := &serveProcess{cmd: exec.Command(bin), done: make(chan error, 1), stderr: &syncBuffer{}}
	p.cmd.Env = append(vars, "DAGMM_TEST_MAIN="+strings.Join(args, " "))
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
		if t.Failed() {
			t.Logf("partition %d's process (pid %d) logged:\n%s", i, p.cmd.Process.Pid, p.stderr.String())
		}
	})
	serving := regexp.MustCompile(`msg=serving .*? http=(\S+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := serving.FindStringSubmatch(p.stderr.String()); m != nil {
			p.addr = m[1]
			if want := fmt.Sprintf("partition=%d/2", i); !strings.Contains(p.stderr.String(), want) {
				t.Errorf("partition %d's serving log line does not say %s:\n%s", i, want, p.stderr.String())
			}
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("partition %d's process exited before serving: %v\n%s", i, err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d's process not serving after 15s:\n%s", i, p.stderr.String())
		}
	}
}

// kill kills the process with SIGKILL and waits until it is gone.
func (p *serveProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process %d: %v, want killed by SIGKILL", p.cmd.Process.Pid, err)
	}
}

// stop stops the process as an orchestrator does (SIGTERM) and returns how
// it exited.
func (p *serveProcess) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(15 * time.Second):
		return fmt.Errorf("still running 15s after SIGTERM")
	}
}

// scoredNATS reads dagmm_samples_scored_total{source="nats"} on the
// process's /metrics.
func (p *serveProcess) scoredNATS() (int, error) {
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^dagmm_samples_scored_total\{source="nats"\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0, nil // no sample scored yet
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return int(v), err
}

// waitCounter waits until the process's scored counter reads want (the
// counter may follow the event by a moment).
func waitCounter(t *testing.T, p *serveProcess, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := p.scoredNATS()
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: dagmm_samples_scored_total{source=\"nats\"} %d (%v), want %d", p.addr, n, err, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitConsumer waits until the consumer has pending messages not yet
// delivered, ackPending delivered and not acknowledged, and, unless
// waiting is -1, that many pull requests waiting.
func waitConsumer(t *testing.T, cons jetstream.Consumer, pending uint64, ackPending, waiting int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cons.Info(context.Background())
		if err == nil && info.NumPending == pending && info.NumAckPending == ackPending && (waiting < 0 || info.NumWaiting == waiting) {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("consumer info: %v", err)
			}
			t.Fatalf("consumer %s: %d pending, %d delivered unacknowledged and %d pull requests waiting; want %d, %d and %d (-1: any)",
				info.Name, info.NumPending, info.NumAckPending, info.NumWaiting, pending, ackPending, waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// published maps the stream sequence of each sample published to its host.
type published map[uint64]string

// byPartition splits the published samples' sequences by their host's
// partition.
func (s published) byPartition(p fleet.Partitions) [2][]uint64 {
	var out [2][]uint64
	for seq, h := range s {
		out[p.Of(h)] = append(out[p.Of(h)], seq)
	}
	for i := range out {
		slices.Sort(out[i])
	}
	return out
}

// publishSamples publishes perHost samples of each host on metrics.<host
// token>, timed from a fixed instant plus offset, and returns them by
// stream sequence.
func publishSamples(t *testing.T, js jetstream.JetStream, hosts []string, perHost int, offset time.Duration) published {
	t.Helper()
	m := modeltest.Metrics4(1)
	x := modeltest.Inputs(m, len(hosts)*perHost, 7)
	ts := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).Add(offset)
	d := len(m.Features)
	sent := published{}
	for k := range perHost {
		for j, h := range hosts {
			row := (k*len(hosts) + j) * d
			body := e2eSample(h, ts.Add(time.Duration(k)*time.Second), m.Features, x[row:row+d])
			ack, err := js.Publish(context.Background(), "metrics."+ingest.HostToken(h), []byte(body))
			if err != nil {
				t.Fatalf("publish %s: %v", h, err)
			}
			sent[ack.Sequence] = h
		}
	}
	return sent
}

// scoreLog collects the events published on a subject.
type scoreLog struct {
	mu     sync.Mutex
	events []serve.Event
	errs   []string
	more   chan struct{} // signalled on each message
}

func subscribeEvents(t *testing.T, nc *nats.Conn, subject string) *scoreLog {
	t.Helper()
	l := &scoreLog{more: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var ev serve.Event
		err := json.Unmarshal(m.Data, &ev)
		l.mu.Lock()
		if err != nil || ev.Source == nil {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v %s (%s)", m.Subject, err, m.Data, m.Header.Get("Dagmm-Reason")))
		} else {
			l.events = append(l.events, ev)
		}
		l.mu.Unlock()
		select {
		case l.more <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return l
}

// drain returns the events collected since the last drain, and the
// messages that were not events.
func (l *scoreLog) drain() []serve.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.events
	l.events = nil
	for _, e := range l.errs {
		evs = append(evs, serve.Event{Host: "not an event: " + e})
	}
	l.errs = nil
	return evs
}

// collect gathers l's events until it holds n, or 15 s have passed, and
// then for a quiet 300 ms more, to catch duplicates.
func (l *scoreLog) collect(n int) []serve.Event {
	var got []serve.Event
	deadline := time.After(15 * time.Second)
	for len(got) < n {
		select {
		case <-l.more:
			got = append(got, l.drain()...)
		case <-deadline:
			return append(got, l.drain()...)
		}
	}
	time.Sleep(300 * time.Millisecond)
	return append(got, l.drain()...)
}

// checkScored checks that l, the events of partition i's process(es),
// receives one event for each sequence in want and nothing else, each
// naming its sample's host and stored subject, and that no message was
// dead-lettered.
func checkScored(t *testing.T, who string, l *scoreLog, i int, want []uint64, sent published, dead *scoreLog) {
	t.Helper()
	got := l.collect(len(want))
	seqs := make([]uint64, 0, len(got))
	for _, ev := range got {
		seqs = append(seqs, ev.Source.Seq)
		h := sent[ev.Source.Seq]
		if subj := fmt.Sprintf("metrics.%d.%s", i, ingest.HostToken(h)); ev.Host != h || ev.Source.Subject != subj {
			t.Errorf("%s: the score of sequence %d names %s from %s, want %s from %s", who, ev.Source.Seq, ev.Host, ev.Source.Subject, h, subj)
		}
	}
	slices.Sort(seqs)
	if !slices.Equal(seqs, want) {
		t.Errorf("%s scored the stream sequences %v, want each once of %v (partition %d's share of %d samples)", who, seqs, want, i, len(sent))
	}
	if dl := dead.drain(); len(dl) != 0 {
		t.Fatalf("%d dead letters: %+v", len(dl), dl)
	}
}
