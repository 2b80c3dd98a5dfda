package serve

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagmm/dagmm/datasets/prom"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/internal/promtest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/train"
)

// fakeNode writes a /proc for node_exporter (--path.procfs): the four files
// its cpu, meminfo, diskstats and netdev collectors read, for a host with
// two CPUs 20% busy, 40% of its memory in use, a disk 5% busy and 8 Mbit/s
// received, with some noise; after fault, both CPUs are 100% busy and 97%
// of the memory is in use, as on a host that a runaway process took over.
type fakeNode struct {
	dir   string
	fault atomic.Bool

	rng              *rand.Rand
	idle, user       [2]float64 // per CPU, in USER_HZ ticks
	ioMS, rxBytes    float64
	totalKB, availKB float64
	lastWrite        time.Time
	stop             chan struct{}
	done             sync.WaitGroup
}

// Normal values of the fake node's features, and their spread in the
// training data.
var fakeNormal = struct{ mean, sd [4]float64 }{
	mean: [4]float64{20, 40, 5, 8e6},
	sd:   [4]float64{3, 2, 1, 8e5},
}

func startFakeNode(t testing.TB) *fakeNode {
	t.Helper()
	n := &fakeNode{dir: t.TempDir(), rng: rand.New(rand.NewPCG(1, 2)), stop: make(chan struct{}),
		totalKB: 16_000_000, lastWrite: time.Now()}
	n.idle = [2]float64{1e6, 1e6}
	n.user = [2]float64{2e5, 2e5}
	if err := os.MkdirAll(filepath.Join(n.dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.write(t)
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-tick.C:
				n.write(t)
			}
		}
	}()
	t.Cleanup(func() { close(n.stop); n.done.Wait() })
	return n
}

// write advances the counters to now and writes the files, each by a
// rename so that node_exporter never reads half of one.
func (n *fakeNode) write(t testing.TB) {
	now := time.Now()
	dt := now.Sub(n.lastWrite).Seconds()
	n.lastWrite = now
	busy, mem := fakeNormal.mean[0]/100+0.01*n.rng.NormFloat64(), fakeNormal.mean[1]/100+0.005*n.rng.NormFloat64()
	if n.fault.Load() {
		busy, mem = 1, 0.97
	}
	for c := range 2 {
		ticks := 100 * dt // USER_HZ
		n.user[c] += ticks * busy
		n.idle[c] += ticks * (1 - busy)
	}
	n.ioMS += 1000 * dt * (fakeNormal.mean[2]/100 + 0.002*n.rng.NormFloat64())
	n.rxBytes += dt * fakeNormal.mean[3] / 8 * (1 + 0.02*n.rng.NormFloat64())
	n.availKB = n.totalKB * (1 - mem)

	stat := "cpu  %d 0 %d %d 0 0 0 0 0 0\n"
	stat = fmt.Sprintf(stat, int64(n.user[0]+n.user[1]), 1000, int64(n.idle[0]+n.idle[1]))
	for c := range 2 {
		stat += fmt.Sprintf("cpu%d %d 0 500 %d 0 0 0 0 0 0\n", c, int64(n.user[c]), int64(n.idle[c]))
	}
	stat += "intr 0\nctxt 0\nbtime 1764000000\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n"
	files := map[string]string{
		"stat": stat,
		"meminfo": fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\nBuffers:        0 kB\nCached:         0 kB\n",
			int64(n.totalKB), int64(n.availKB), int64(n.availKB)),
		"diskstats": fmt.Sprintf("   8       0 sda 1000 0 8000 300 2000 0 16000 900 0 %d %d 0 0 0 0 0 0\n", int64(n.ioMS), int64(n.ioMS)),
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			fmt.Sprintf("    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n  eth0: %d 1000 0 0 0 0 0 0 5000 100 0 0 0 0 0 0\n", int64(n.rxBytes)),
	}
	for name, body := range files {
		path := filepath.Join(n.dir, name)
		if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Error(err)
			return
		}
	}
}

// fakeNodeModel trains a model (one sample a window) on the fake node's
// normal values, in the units of the recording rules.
func fakeNodeModel(t testing.TB) string {
	t.Helper()
	const n = 600
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, 0, n*4)
	for range n {
		for j := range 4 {
			x = append(x, fakeNormal.mean[j]+fakeNormal.sd[j]*rng.NormFloat64())
		}
	}
	cfg := train.DefaultConfig()
	cfg.Epochs, cfg.Window, cfg.Normalization, cfg.Dropout = 30, 1, train.NormZScore, 0
	m, _, err := train.Train(context.Background(), modeltest.Metrics4Features, x, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	if err := model.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRemoteWriteFromPrometheusEndToEnd runs the whole path with a real
// Prometheus: two node_exporters (this machine's, and one reading a /proc
// the test writes), Prometheus evaluating the recording rules every second
// and remote-writing them into a running service. Each host gets a scored
// vector per evaluation (published with --scores). With the shipped
// deploy/prometheus/rules.yaml that is all: its 1m rate windows
// underestimate rates until a minute of history has been scraped, so its
// first minute of vectors is not the node's normal. With the same rules at
// 5 s windows the fake node's vectors settle to normal within seconds;
// then its CPUs and memory fill up, and its anomaly event comes on NATS.
func TestRemoteWriteFromPrometheusEndToEnd(t *testing.T) {
	promtest.Require(t, promtest.PrometheusBinary)
	promtest.Require(t, promtest.NodeExporterBinary)
	shipped, err := filepath.Abs("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(short, []byte(prom.RecordingRules(prom.NodeExporter(prom.DefaultHostLabel, 5*time.Second))), 0o644); err != nil {
		t.Fatal(err)
	}
	modelPath := fakeNodeModel(t)
	t.Run("shipped rules", func(t *testing.T) { promEndToEnd(t, modelPath, shipped, false) })
	t.Run("5s windows and a fault", func(t *testing.T) { promEndToEnd(t, modelPath, short, true) })
}

func promEndToEnd(t *testing.T, modelPath, rules string, fault bool) {
	fake := startFakeNode(t)
	fakeAddr := promtest.StartNodeExporterArgs(t, "--path.procfs="+fake.dir, "--path.sysfs="+t.TempDir(),
		"--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.diskstats",
		"--collector.netdev", "--no-collector.netdev.netlink")
	realAddr := promtest.StartNodeExporter(t)

	cfg := rwConfig(modelPath)
	cfg.RemoteWrite.Interval = promtest.Interval
	cfg.RemoteWrite.Flush = 100 * time.Millisecond
	cfg.NATS.PublishScores = true
	r := start(t, cfg)
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	anomalies := collect(t, nc, "anomalies.>")
	promtest.Start(t, promtest.Options{Targets: []string{fakeAddr, realAddr}, RuleFiles: []string{rules},
		RemoteWrite: promtest.RemoteWriteFeatures(r.base + RemoteWritePath)})

	// A scored vector per host per evaluation, three at least; before a
	// fault, until the fake node's rates have settled: three normal
	// vectors in a row.
	seen := map[string]map[int64]bool{fakeAddr: {}, realAddr: {}}
	deadline := time.After(40 * time.Second)
	normalRun := 0
	for len(seen[fakeAddr]) < 3 || len(seen[realAddr]) < 3 || (fault && normalRun < 3) {
		select {
		case m := <-scores.ch:
			e := decodeEvent(t, m.Data)
			ts, ok := seen[e.Host]
			if !ok {
				t.Fatalf("score of an unknown host: %s", m.Data)
			}
			if ts[e.TS.UnixMilli()] {
				t.Fatalf("interval scored twice: %s", m.Data)
			}
			if e.TS.UnixMilli()%1000 != 0 || math.IsNaN(float64(e.Energy)) {
				t.Fatalf("score %s: want an interval start and an energy", m.Data)
			}
			ts[e.TS.UnixMilli()] = true
			switch {
			case e.Host != fakeAddr:
			case e.Anomaly:
				normalRun = 0
			default:
				normalRun++
			}
		case <-deadline:
			t.Fatalf("after 40s: %d evaluations of %s scored (%d normal in a row, want 3), %d of %s (want 3)",
				len(seen[fakeAddr]), fakeAddr, normalRun, len(seen[realAddr]), realAddr)
		}
	}

	if !fault {
		return
	}
	faultAt := time.Now()
	fake.fault.Store(true)
	deadline = time.After(30 * time.Second)
	for {
		select {
		case m := <-anomalies.ch:
			e := decodeEvent(t, m.Data)
			if e.Host != fakeAddr || e.TS.Add(promtest.Interval).Before(faultAt) {
				continue // another host, or the fake one warming up
			}
			if len(e.Explanation) == 0 {
				t.Fatalf("anomaly without an explanation: %s", m.Data)
			}
			if top := e.Explanation[0].Feature; top != "cpu_usage" && top != "mem_usage" {
				t.Errorf("anomaly explained by %s, want cpu_usage or mem_usage: %s", top, m.Data)
			}
			t.Logf("anomaly: %s", m.Data)
			return
		case <-deadline:
			t.Fatalf("no anomaly event for %s within 30s of the fault", fakeAddr)
		}
	}
}
