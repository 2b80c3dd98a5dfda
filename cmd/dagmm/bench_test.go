package main

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
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
	// Usage errors.
	for _, args := range [][]string{nil, {"--model", modelPath, "--modes", "nope"}, {"--model", modelPath, "--batch", "0"}} {
		if err := runBench(t.Context(), env, args); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
