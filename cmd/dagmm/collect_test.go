package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/serve"
	"github.com/dagmm/dagmm/serve/ingest"
)

// syncBuffer is a bytes.Buffer safe for concurrent use, for a command's
// log, that a test can wait on.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer matches re, and returns the match.
func (s *syncBuffer) waitFor(t *testing.T, re string, timeout time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within %v:\n%s", re, timeout, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runNATSServer starts an in-process nats-server on a free port, with
// JetStream in a temporary store when jetStream is set, and returns its URL.
func runNATSServer(t *testing.T, jetStream bool) string {
	t.Helper()
	return natstest.StartServer(t, natstest.Options{JetStream: jetStream}).ClientURL()
}

// background runs a command in a goroutine until the test cancels it; wait
// returns its error.
type background struct {
	cancel context.CancelFunc
	done   chan error
	stdout *syncBuffer
	stderr *syncBuffer
}

func startCommand(t *testing.T, run func(context.Context, *cliEnv, []string) error, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan error, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	env := newCLIEnv(b.stdout, b.stderr)
	go func() { b.done <- run(ctx, env, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			t.Error("command still running 20s after cancel")
		}
	})
	return b
}

// stop cancels the command (as SIGTERM does) and returns its error.
func (b *background) stop(t *testing.T) error {
	t.Helper()
	b.cancel()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("command still running 20s after cancel")
		return nil
	}
}

// host is one host's Telegraf counters.
type host struct {
	name     string
	io, recv int64
}

// telegrafRow is one interval of one host: its vector, and the four
// measurements Telegraf publishes for it.
type telegrafRow struct {
	host string
	ts   time.Time
	x    []float64 // cpu_usage, mem_usage, disk_busy, net_in_bps
}

// next makes host h's measurements for the interval at ts from the wanted
// values (disk busy %, network bits/s), rounded the way counters are: it
// returns the messages and the vector the default mapping makes of them.
func (h *host) next(ts time.Time, cpu, mem, disk, net float64, jsonFormat bool) ([][]byte, []float64) {
	dio := int64(math.Round(disk * 100)) // ms in 10 s
	drecv := int64(math.Round(net * 10 / 8))
	h.io += dio
	h.recv += drecv
	x := []float64{cpu, mem, float64(dio) / 10 * 0.1, float64(drecv) / 10 * 8}
	idle := 100 - cpu
	if jsonFormat {
		s := ts.Unix()
		return [][]byte{
			fmt.Appendf(nil, `{"fields":{"usage_guest":0,"usage_idle":%v,"usage_iowait":0.25,"usage_system":%v,"usage_user":%v},"name":"cpu","tags":{"cpu":"cpu-total","host":%q},"timestamp":%d}`+"\n", idle, cpu/4, cpu*3/4, h.name, s),
			fmt.Appendf(nil, `{"fields":{"available_percent":%v,"total":25276502016,"used":606879744,"used_percent":%v},"name":"mem","tags":{"host":%q},"timestamp":%d}`+"\n", 100-mem, mem, h.name, s),
			fmt.Appendf(nil, `{"fields":{"io_time":%d,"reads":111371,"writes":77723},"name":"diskio","tags":{"host":%q,"name":"vda"},"timestamp":%d}`+"\n", h.io, h.name, s),
			fmt.Appendf(nil, `{"fields":{"bytes_recv":%d,"bytes_sent":3326777,"drop_in":0},"name":"net","tags":{"host":%q,"interface":"eth0"},"timestamp":%d}`+"\n", h.recv, h.name, s),
		}, x
	}
	ns := ts.UnixNano()
	return [][]byte{
		fmt.Appendf(nil, "cpu,cpu=cpu-total,host=%s usage_guest=0,usage_idle=%v,usage_iowait=0.25,usage_system=%v,usage_user=%v %d\n", h.name, idle, cpu/4, cpu*3/4, ns),
		fmt.Appendf(nil, "mem,host=%s available_percent=%v,total=25276502016i,used=606879744i,used_percent=%v %d\n", h.name, 100-mem, mem, ns),
		fmt.Appendf(nil, "diskio,host=%s,name=vda io_time=%di,reads=111371i,writes=77723i %d\n", h.name, h.io, ns),
		fmt.Appendf(nil, "net,host=%s,interface=eth0 bytes_recv=%di,bytes_sent=3326777i,drop_in=0i %d\n", h.name, h.recv, ns),
	}, x
}

// telegrafFleet publishes intervals [from, to) of the hosts' correlated metrics
// (one load drives CPU, memory, disk and network) and returns the vectors
// the default mapping makes of them (none for each host's first interval,
// when from is 0). Odd hosts send JSON, even ones influx; every third host
// sends its interval as one batch.
func telegrafFleet(t *testing.T, nc *nats.Conn, hosts []*host, from, to int, rng *rand.Rand) []telegrafRow {
	t.Helper()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var rows []telegrafRow
	for k := from; k < to; k++ {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		for i, h := range hosts {
			load := 0.1 + 0.8*rng.Float64()
			msgs, x := h.next(ts, 5+80*load+2*rng.NormFloat64(), 30+20*load+rng.NormFloat64(), 1+30*load, 1e6+5e7*load, i%2 == 1)
			if k > 0 {
				rows = append(rows, telegrafRow{host: h.name, ts: ts, x: x})
			}
			publishTelegraf(t, nc, i%2 == 1, i%3 == 0, msgs)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func publishTelegraf(t *testing.T, nc *nats.Conn, jsonFormat, batch bool, msgs [][]byte) {
	t.Helper()
	if batch {
		var b []byte
		if jsonFormat {
			parts := make([]string, len(msgs))
			for i, m := range msgs {
				parts[i] = strings.TrimSpace(string(m))
			}
			b = []byte(`{"metrics":[` + strings.Join(parts, ",") + `]}`)
		} else {
			b = bytes.Join(msgs, nil)
		}
		msgs = [][]byte{b}
	}
	for _, m := range msgs {
		if err := nc.Publish("telegraf", m); err != nil {
			t.Fatal(err)
		}
	}
}

func makeHosts(n int) []*host {
	hosts := make([]*host, n)
	for i := range hosts {
		hosts[i] = &host{name: fmt.Sprintf("web-%02d", i), io: int64(1000 * i), recv: int64(1e8 * (i + 1))}
	}
	return hosts
}

// readCollected reads every Parquet file of the collection, keyed host/ts.
func readCollected(t *testing.T, files []string) map[string][]float64 {
	t.Helper()
	got := map[string][]float64{}
	for _, f := range files {
		tab, err := datasets.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"timestamp", "host", "cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}; !slices.Equal(tab.Names(), want) {
			t.Fatalf("%s: columns %v, want %v", f, tab.Names(), want)
		}
		ts, _ := tab.Column("timestamp")
		hc, _ := tab.Column("host")
		x, err := datasets.Matrix(tab, []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range tab.Len() {
			key := hc.Strings[i] + "/" + ts.Times[i].Format(time.RFC3339)
			if _, dup := got[key]; dup {
				t.Errorf("%s twice", key)
			}
			got[key] = x[i*4 : (i+1)*4]
		}
	}
	return got
}

func checkCollected(t *testing.T, got map[string][]float64, want []telegrafRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d rows collected, want %d", len(got), len(want))
	}
	for _, r := range want {
		key := r.host + "/" + r.ts.Format(time.RFC3339)
		x, ok := got[key]
		if !ok {
			t.Errorf("no row for %s", key)
			continue
		}
		for j := range x {
			if !scalar.EqualWithinAbsOrRel(x[j], r.x[j], 1e-9, 1e-9) {
				t.Errorf("%s: %v, want %v", key, x, r.x)
				break
			}
		}
	}
}

func TestCollectTrainServe(t *testing.T) {
	// The three steps of docs/telegraf.md through a real NATS server:
	// collect a fleet's Telegraf stream (both formats, single and batched,
	// a malformed message among them) to rolling Parquet files; merge
	// them; train on the result; serve --telegraf with that model scores
	// the live stream of the same fleet.
	url := runNATSServer(t, false)
	nc := natstest.Connect(t, url)
	dead, err := nc.SubscribeSync("dagmm.deadletter")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "telemetry")
	col := startCommand(t, runCollect, "--nats-url", url, "-o", dir, "--roll-rows", "150", "--flush", "20ms", "--status", "0")
	col.stderr.waitFor(t, `msg=collecting`, 10*time.Second)

	hosts := makeHosts(10)
	rng := rand.New(rand.NewPCG(1, 2))
	rows := telegrafFleet(t, nc, hosts[:5], 0, 41, rng)
	bad := []byte("cpu,cpu=cpu-total,host=web-99 usage_idle=oops 1795546170000000000\n")
	if err := nc.Publish("telegraf", bad); err != nil {
		t.Fatal(err)
	}
	// A host too long for a subject token is refused as in serve.
	badHost := []byte("mem,host=" + strings.Repeat("h", 5000) + " used_percent=1 1795546170000000000\n")
	if err := nc.Publish("telegraf", badHost); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, telegrafFleet(t, nc, hosts[5:], 0, 41, rng)...)
	for _, want := range []struct {
		data   []byte
		reason string
	}{{bad, "ingest: influx metric 0 (line 1, column"}, {badHost, `measurement "mem", tag "host": invalid host: 5000 bytes long`}} {
		dl, err := dead.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if reason := dl.Header.Get(serve.HeaderReason); !strings.Contains(reason, want.reason) || string(dl.Data) != string(want.data) {
			t.Errorf("dead letter %q: %.80s, want %q", reason, dl.Data, want.reason)
		}
	}
	// Every row published reaches a file: SIGTERM drains the subscription
	// and completes the last file.
	if err := col.stop(t); err != nil {
		t.Fatalf("collect: %v\n%s", err, col.stderr)
	}
	out := col.stdout.String()
	files := strings.Fields(out[strings.Index(out, "\n")+1:])
	if !strings.HasPrefix(out, "collected 400 vectors from 10 hosts into 3 files") || len(files) != 3 {
		t.Fatalf("collect printed:\n%s", out)
	}
	if !strings.Contains(out, "(10 intervals incomplete, 0 measurements late, 2 dead letters)") {
		t.Errorf("collect summary:\n%s", out)
	}
	checkCollected(t, readCollected(t, files), rows)
	for i, f := range files {
		tab, err := datasets.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{150, 150, 100}[i]; tab.Len() != want {
			t.Errorf("%s: %d rows, want %d", f, tab.Len(), want)
		}
	}

	// Merge, and train on the merged file.
	merged := filepath.Join(t.TempDir(), "training.parquet")
	var stdout bytes.Buffer
	if err := runCollect(context.Background(), newCLIEnv(&stdout, io.Discard), append([]string{"--merge", "-o", merged}, files...)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "wrote "+merged+": 400 rows from 3 files") {
		t.Errorf("merge printed %q", stdout.String())
	}
	checkCollected(t, readCollected(t, []string{merged}), rows)
	modelPath := filepath.Join(t.TempDir(), "model.json")
	if code, out, errOut := dagmm(t, "train", "--epochs", "30", "--report", "-", "-o", modelPath, merged); code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errOut)
	} else if !strings.Contains(out, "4 features, 400 rows used") {
		t.Errorf("train printed %q", out)
	}

	// Serve the stream with the model: a score for every interval of every
	// host, and the one whose CPU is pegged with no disk or network
	// activity is flagged.
	scores, err := nc.SubscribeSync("scores.>")
	if err != nil {
		t.Fatal(err)
	}
	events, err := nc.SubscribeSync("anomalies.>")
	if err != nil {
		t.Fatal(err)
	}
	srv := startCommand(t, runServe, "--model", modelPath, "--telegraf", "--nats-url", url, "--http", "127.0.0.1:0", "--scores", "--poll", "0")
	srv.stderr.waitFor(t, `msg=serving`, 10*time.Second)
	live := telegrafFleet(t, nc, hosts, 41, 44, rng)
	msgs, x := hosts[3].next(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(44*10*time.Second), 97, 30, 0.1, 2e4, false)
	publishTelegraf(t, nc, false, false, msgs)
	want := map[string]bool{}
	for _, r := range live {
		if r.ts.Minute() == 6 && r.ts.Second() == 50 {
			continue // interval 41, the first the scorer sees: no rates yet
		}
		want[r.host+"/"+r.ts.Format(time.RFC3339)] = true
	}
	want["web-03/2026-11-24T10:07:20Z"] = true
	for range want {
		m, err := scores.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("%v (%d scores wanted)", err, len(want))
		}
		var e serve.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		key := e.Host + "/" + e.TS.Format(time.RFC3339)
		if !want[key] {
			t.Errorf("unexpected score %s", m.Data)
		}
		delete(want, key)
	}
	ev, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no anomaly event for %v: %v", x, err)
	}
	var e serve.Event
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		t.Fatal(err)
	}
	if ev.Subject != "anomalies.web-03" || e.Host != "web-03" || e.TS.Format(time.RFC3339) != "2026-11-24T10:07:20Z" || len(e.Explanation) != 4 {
		t.Errorf("anomaly event %s on %s", ev.Data, ev.Subject)
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("serve: %v", err)
	}
}

func TestCollectEmbeddedRollsByTime(t *testing.T) {
	// No --nats-url: Telegraf publishes to the embedded server. Files are
	// completed every --roll-every while the collection runs.
	dir := t.TempDir()
	col := startCommand(t, runCollect, "-o", dir, "--nats-port", "-1", "--roll-every", "300ms", "--flush", "20ms", "--prefix", "fleet")
	url := col.stderr.waitFor(t, `msg=collecting .*nats=(nats://[0-9.:]+)`, 10*time.Second)[1]
	nc := natstest.Connect(t, url)
	hosts := makeHosts(2)
	rng := rand.New(rand.NewPCG(3, 4))
	rows := telegrafFleet(t, nc, hosts, 0, 5, rng)
	deadline := time.Now().Add(10 * time.Second)
	var files []string
	for len(files) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no file within 10s:\n%s", col.stderr)
		}
		time.Sleep(20 * time.Millisecond)
		files, _ = filepath.Glob(filepath.Join(dir, "fleet-*.parquet"))
	}
	more := telegrafFleet(t, nc, hosts, 5, 8, rng)
	if err := col.stop(t); err != nil {
		t.Fatal(err)
	}
	files, _ = filepath.Glob(filepath.Join(dir, "fleet-*.parquet"))
	if len(files) < 2 {
		t.Errorf("%d files, want one per --roll-every and the last", len(files))
	}
	checkCollected(t, readCollected(t, files), append(rows, more...))
	if hidden, _ := filepath.Glob(filepath.Join(dir, ".*")); len(hidden) != 0 {
		t.Errorf("temporary files left: %v", hidden)
	}
	if !strings.Contains(col.stderr.String(), "msg=\"file written\"") {
		t.Errorf("no log of the files written:\n%s", col.stderr)
	}
}

func TestCollectUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool   // a usage error
		want  string // in the error
	}{
		{"no output", nil, true, "output directory is required"},
		{"arguments", []string{"-o", dir, "x"}, true, "unexpected arguments"},
		{"merge without files", []string{"--merge", "-o", filepath.Join(dir, "m.parquet")}, true, "files to join"},
		{"merge without output", []string{"--merge", "a.parquet"}, true, "output file is required"},
		{"bad format", []string{"-o", dir, "--format", "xml"}, true, "format"},
		{"bad interval", []string{"-o", dir, "--interval", "-1s"}, true, "--interval"},
		{"roll rows", []string{"-o", dir, "--roll-rows", "0"}, true, "--roll-rows"},
		{"flush", []string{"-o", dir, "--flush", "0s"}, true, "--flush"},
		{"no mapping file", []string{"-o", dir, "--mapping", filepath.Join(dir, "nope.json")}, false, "nope.json"},
		{"unmapped feature", []string{"-o", dir, "--features", "cpu_usage,swap"}, false, `feature "swap" of the model has no mapping`},
		{"merge missing file", []string{"--merge", "-o", filepath.Join(dir, "m.parquet"), filepath.Join(dir, "nope.parquet")}, false, "nope.parquet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runCollect(context.Background(), newCLIEnv(io.Discard, io.Discard), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("error %v (usage error: %v), want %q (usage error: %v)", err, errors.As(err, new(usageError)), tc.want, tc.usage)
			}
		})
	}

	var out bytes.Buffer
	if err := runCollect(context.Background(), newCLIEnv(&out, io.Discard), []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, s := range []string{"Usage:", "Examples:", "--merge", "$DAGMM_NATS_URL", "-roll-every"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("--help lacks %q", s)
		}
	}

	// The default mapping, printed, is a mapping file, and an interval
	// given on the command line replaces its interval and wait.
	out.Reset()
	if err := runCollect(context.Background(), newCLIEnv(&out, io.Discard), []string{"--print-mapping"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mapping.json")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := loadMapping(path, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	def := ingest.DefaultConfig()
	if len(m.Features) != 4 || m.Interval != 2*time.Second || m.Wait != 0 || def.Interval != 10*time.Second {
		t.Errorf("mapping %+v", m)
	}
}

func TestServeTelegrafFlags(t *testing.T) {
	checkServeFlags(t, []serveFlagCase{
		{"off", nil, nil, func(c serve.Config) bool {
			return !c.Telegraf.Enabled && c.NATS.Subject == "metrics.>" && c.Telegraf.Mapping == nil
		}, ""},
		{"defaults", []string{"--telegraf"}, nil, func(c serve.Config) bool {
			return c.Telegraf.Enabled && c.NATS.Subject == "telegraf" && c.Telegraf.Format == ingest.FormatAuto && c.Telegraf.Mapping != nil &&
				c.Telegraf.Mapping.Interval == 10*time.Second && len(c.Telegraf.Mapping.Features) == 4
		}, ""},
		{"env", nil, map[string]string{"DAGMM_TELEGRAF": "true", "DAGMM_SUBJECT": "telegraf.>", "DAGMM_TELEGRAF_FORMAT": "json", "DAGMM_INTERVAL": "30s"},
			func(c serve.Config) bool {
				return c.Telegraf.Enabled && c.NATS.Subject == "telegraf.>" && c.Telegraf.Format == ingest.FormatJSON && c.Telegraf.Mapping.Interval == 30*time.Second
			}, ""},
		{"mapping without telegraf", []string{"--mapping", "m.json"}, nil, nil, "--mapping needs --telegraf"},
		{"bad format", []string{"--telegraf", "--telegraf-format", "csv"}, nil, nil, "telegraf-format"},
		{"missing mapping", []string{"--telegraf", "--mapping", "/nonexistent/m.json"}, nil, nil, "/nonexistent/m.json"},
	}, func(fs *flag.FlagSet, cfg *serve.Config) func() error {
		tf := addTelegrafFlags(fs)
		return func() error { return applyTelegraf(fs, cfg, tf) }
	})
}
