package main

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/promtest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// TestPromEndToEnd: a real node_exporter scraped by a real Prometheus with
// the shipped recording rules; dagmm prom pull writes the history and
// trains a model on it, and the remote write bodies Prometheus sends decode
// into four-feature vectors of the host that the model scores.
func TestPromEndToEnd(t *testing.T) {
	node := promtest.StartNodeExporter(t)
	capture := promtest.CaptureRemoteWrite(t)
	rules, err := filepath.Abs("../../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := promtest.Start(t, promtest.Options{Targets: []string{node}, RuleFiles: []string{rules},
		RemoteWrite: promtest.RemoteWriteFeatures(capture.URL)})
	time.Sleep(20 * time.Second)

	dir := t.TempDir()
	hist, modelPath := filepath.Join(dir, "history.parquet"), filepath.Join(dir, "model.json")
	code, out, errOut := dagmm(t, "prom", "pull", "--url", p.URL, "--since", "25s", "--step", "1s", "-o", hist,
		"--train", modelPath, "--", "--epochs", "30", "--report", "-")
	if code != 0 {
		t.Fatalf("prom pull: exit %d\n%s\n%s", code, out, errOut)
	}
	tab, err := datasets.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	features := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	if got, want := strings.Join(tab.Names(), ","), "timestamp,host,"+strings.Join(features, ","); got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	if tab.Len() < 10 {
		t.Fatalf("%d rows of history after 20s at 1s steps, want 10 or more", tab.Len())
	}
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.NewScorer(m)
	if err != nil {
		t.Fatal(err)
	}
	// A feature constant over the history (on a quiet test machine,
	// net_in_bps for one) is recorded in the model outside the network.
	col := map[string]int{}
	for i, f := range features {
		col[f] = i
	}
	inputs := slices.Clone(sc.Features())
	for _, c := range m.Constant {
		inputs = append(inputs, c.Name)
	}
	slices.Sort(inputs)
	if want := slices.Sorted(slices.Values(features)); !slices.Equal(inputs, want) {
		t.Fatalf("model inputs %v, want %v\n%s", inputs, want, errOut)
	}

	checkPromHistory(t, p.URL, node, tab)

	a, err := ingest.NewAssembler(ingest.PrometheusConfig(features, promtest.Interval), features)
	if err != nil {
		t.Fatal(err)
	}
	var d ingest.RemoteWriteDecoder
	scored := 0
	deadline := time.Now().Add(20 * time.Second)
	for scored < 3 && time.Now().Before(deadline) {
		bodies, _ := capture.Take()
		var vs []ingest.Vector
		for _, b := range bodies {
			w, err := d.Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, err := a.AddRemoteWrite(w, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, got...)
		}
		for _, v := range append(vs, a.Flush(time.Now())...) {
			if v.Host != node || len(v.Values) != 4 {
				t.Fatalf("vector %+v: want host %s and 4 values", v, node)
			}
			x := make([]float64, 0, 4)
			for _, f := range sc.Features() {
				x = append(x, v.Values[col[f]])
			}
			r, err := sc.Score(x)
			if err != nil {
				t.Fatalf("score %s %v %v: %v", v.Host, v.TS, v.Values, err)
			}
			if math.IsNaN(r.Energy) || math.IsInf(r.Energy, 0) {
				t.Fatalf("vector of %s scored %+v", v.Host, r)
			}
			scored++
		}
		time.Sleep(500 * time.Millisecond)
	}
	if scored < 3 {
		t.Fatalf("%d remote-written vectors scored in 20s, want 3 or more; assembler %+v", scored, a.Stats())
	}
}

// checkPromHistory: prom pull --history fills the fleet's history stream
// with the host's pulled rows, which the trainers' window reads back; a
// second pull leaves the host, which has history now, alone.
func checkPromHistory(t *testing.T, promURL, node string, pulled *datasets.Table) {
	t.Helper()
	url := runNATSServer(t, true)
	code, out, errOut := dagmm(t, "prom", "pull", "--url", promURL, "--since", "25s", "--step", "1s", "--history", url)
	if code != 0 || !strings.Contains(out, "1 hosts published") {
		t.Fatalf("prom pull --history: exit %d\n%s\n%s", code, out, errOut)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hist, err := fleet.EnsureHistory(ctx, js, fleet.HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := hist.Window(ctx, node, fleet.WindowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Rows() < pulled.Len()-5 || !slices.Equal(slices.Sorted(slices.Values(w.Features)), slices.Sorted(slices.Values(pulled.Names()[2:]))) {
		t.Fatalf("window of %s: %d rows of %v; the pull had %d rows of %v", node, w.Rows(), w.Features, pulled.Len(), pulled.Names()[2:])
	}
	code, out, errOut = dagmm(t, "prom", "pull", "--url", promURL, "--since", "25s", "--step", "1s", "--history", url)
	if code != 0 || !strings.Contains(out, "0 samples of 0 hosts published; 1 hosts already had history") {
		t.Fatalf("second prom pull --history: exit %d\n%s\n%s", code, out, errOut)
	}
	again, err := hist.Window(ctx, node, fleet.WindowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Messages != w.Messages {
		t.Errorf("the second pull changed the window: %d messages, then %d", w.Messages, again.Messages)
	}
}

func TestPromPullErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "h.parquet")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"prom", "pull", "-o", out}, 2, "--url is required"},
		{[]string{"prom", "pull", "--url", "http://127.0.0.1:1"}, 2, "output file is required"},
		{[]string{"prom", "pull", "--url", "http://127.0.0.1:1", "--history", "nats://127.0.0.1:1", "--train", "m.json"}, 2, "output file is required"},
		{[]string{"prom", "pull", "--url", "http://127.0.0.1:1", "--history", "nats://127.0.0.1:1", "--nats-password", "x"}, 2, "password"},
		{[]string{"prom", "pull", "--url", "http://127.0.0.1:1", "-o", "h.txt"}, 2, "h.txt"},
		{[]string{"prom", "pull", "--url", "http://127.0.0.1:1", "-o", out, "--step", "0s"}, 2, "step"},
		{[]string{"prom", "pull", "--url", "http://" + promtest.FreeAddr(t), "-o", out}, 1, "connection refused"},
		{[]string{"prom", "bogus"}, 2, "unknown subcommand"},
	}
	for _, tt := range tests {
		code, _, errOut := dagmm(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("dagmm %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tt.args, " "), code, errOut, tt.code, tt.want)
		}
	}
}

func TestPromRules(t *testing.T) {
	code, out, _ := dagmm(t, "prom", "rules", "--host-label", "node")
	if code != 0 || !strings.Contains(out, "record: dagmm:net_in_bps") || !strings.Contains(out, "by (node)") {
		t.Fatalf("prom rules: exit %d\n%s", code, out)
	}
}
