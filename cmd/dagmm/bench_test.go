package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/model"
)

func TestBenchSmoke(t *testing.T) {
	// A short, slow run of every mode against the in-process service:
	// every mode reports its figures and loses nothing.
	_, modelPath := trainedModel(t)
	var stdout bytes.Buffer
	env := newCLIEnv(&stdout, io.Discard)
	err := runBench(t.Context(), env, []string{"--model", modelPath, "--duration", "200ms",
		"--single-rate", "5000", "--batch-rate", "20000", "--latency-rate", "2000", "--concurrency", "2", "--batch", "20"})
	out := stdout.String()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, mode := range benchModes {
		if !strings.Contains(out, mode+": ") {
			t.Errorf("no figures for %s:\n%s", mode, out)
		}
	}
	if n := strings.Count(out, "p99 "); n != len(benchModes) {
		t.Errorf("%d latency lines, want %d:\n%s", n, len(benchModes), out)
	}
	lost := regexp.MustCompile(`(\d+) lost`)
	for _, m := range lost.FindAllStringSubmatch(out, -1) {
		if m[1] != "0" {
			t.Errorf("loss reported: %s\n%s", m[0], out)
		}
	}
	if strings.Count(out, "failed requests: 0") != 2 || !strings.Contains(out, "resident memory") {
		t.Errorf("HTTP failures or no memory figure:\n%s", out)
	}
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	// A model scoring over a window flags more in the service than one
	// sample at a time: the events expected are a lower bound.
	if got, want := strings.Count(out, "anomaly events: at least "), map[bool]int{true: 3}[m.Window > 1]; got != want {
		t.Errorf("window %d: %d event lines say \"at least\", want %d:\n%s", m.Window, got, want, out)
	}
	// Usage errors.
	for _, args := range [][]string{nil, {"--model", modelPath, "--modes", "nope"}, {"--model", modelPath, "--batch", "0"}} {
		if err := runBench(t.Context(), env, args); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestBenchHostModels runs the bench with a model per host: every host
// "<mode>-<i>" is scored by model i, and nothing is lost.
func TestBenchHostModels(t *testing.T) {
	_, modelPath := trainedModel(t)
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newBenchHostModels(m, 30)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"nats-single-7": "host-7", "http-batch-29": "host-29", "nats-single-30": "host-0", "web-1.example.com": "host-0", "": "host-0"} {
		if l, err := src.ForHost(host); err != nil || l.Name != want {
			t.Errorf("ForHost(%q) = %v, %v; want model %s", host, l, err, want)
		}
	}
	var stdout bytes.Buffer
	env := newCLIEnv(&stdout, io.Discard)
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	err = runBench(t.Context(), env, []string{"--model", modelPath, "--duration", "200ms", "--host-models", "--hosts", "30",
		"--modes", "nats-single,http-batch", "--single-rate", "5000", "--concurrency", "2", "--batch", "20",
		"--warm-up", "--cpuprofile", prof})
	out := stdout.String()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "30 host models loaded") {
		t.Errorf("no host models:\n%s", out)
	}
	if !strings.Contains(out, "warm-up: 30 hosts scored once") {
		t.Errorf("no warm-up of the 30 hosts:\n%s", out)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile: %v, %v", fi, err)
	}
	for _, m := range regexp.MustCompile(`(\d+) lost`).FindAllStringSubmatch(out, -1) {
		if m[1] != "0" {
			t.Errorf("loss reported: %s\n%s", m[0], out)
		}
	}
	if err := runBench(t.Context(), env, []string{"--model", modelPath, "--host-models", "--nats-url", "nats://127.0.0.1:1"}); !errors.As(err, new(usageError)) {
		t.Errorf("--host-models with --nats-url: %v, want a usage error", err)
	}
}

// TestBenchServeOnly runs the service and its load in two benches, as the
// README measures a replica's CPU per message: one with --serve-only and
// host models on a NATS server of its own, the other sending to it.
func TestBenchServeOnly(t *testing.T) {
	_, modelPath := trainedModel(t)
	url := runNATSServer(t, false)
	svc := startCommand(t, runBench, "--model", modelPath, "--serve-only", "--serve-nats-url", url, "--host-models", "--hosts", "20")
	m := svc.stdout.waitFor(t, `in-process service: NATS (\S+), HTTP (\S+),`, 20*time.Second)
	if m[1] != url {
		t.Errorf("the service connected to %s, want %s", m[1], url)
	}
	svc.stdout.waitFor(t, `serving until interrupted \(process \d+\)`, 5*time.Second)
	var stdout bytes.Buffer
	err := runBench(t.Context(), newCLIEnv(&stdout, io.Discard), []string{"--model", modelPath, "--nats-url", url, "--http-url", m[2],
		"--modes", "nats-single", "--hosts", "20", "--single-rate", "2000", "--duration", "200ms", "--warm-up"})
	out := stdout.String()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	scored := regexp.MustCompile(`samples: (\d+) sent, (\d+) scored, 0 lost`).FindStringSubmatch(out)
	if scored == nil || scored[1] != scored[2] || scored[1] == "0" {
		t.Errorf("the served bench did not score every sample sent:\n%s", out)
	}
	if err := svc.stop(t); err != nil {
		t.Errorf("--serve-only ended with %v", err)
	}
	for _, args := range [][]string{
		{"--model", modelPath, "--serve-only", "--nats-url", url},
		{"--model", modelPath, "--serve-nats-url", url, "--http-url", "http://127.0.0.1:1"},
	} {
		if err := runBench(t.Context(), newCLIEnv(io.Discard, io.Discard), args); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
