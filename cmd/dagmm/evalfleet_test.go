package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

// genFleetFiles writes a small fleet with dagmm gen --hosts and returns its
// training and test files.
func genFleetFiles(t *testing.T, dir, name string, flags ...string) (trainPath, testPath string) {
	t.Helper()
	out := filepath.Join(dir, name)
	args := append([]string{"gen", "--hosts", "4", "--train-rows", "300", "--test-rows", "200", "-o", out}, flags...)
	code, stdout, stderr := dagmm(t, args...)
	if code != 0 {
		t.Fatalf("dagmm %v: exit %d: %s", args, code, stderr)
	}
	trainPath, testPath = fleetPaths(out)
	if !strings.Contains(stdout, trainPath) || !strings.Contains(stdout, testPath) {
		t.Errorf("gen output names neither %s nor %s:\n%s", trainPath, testPath, stdout)
	}
	return trainPath, testPath
}

// TestGenHostsTrainOneHost writes a fleet with dagmm gen --hosts, in both
// formats, and trains one host's model on it with dagmm train --host.
func TestGenHostsTrainOneHost(t *testing.T) {
	for _, ext := range []string{".parquet", ".csv"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			trainPath, testPath := genFleetFiles(t, dir, "fleet"+ext)
			for _, f := range []struct {
				path string
				rows int
			}{{trainPath, 4 * 300}, {testPath, 4 * 200}} {
				tab, err := datasets.ReadFile(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if tab.Len() != f.rows {
					t.Errorf("%s: %d rows, want %d", f.path, tab.Len(), f.rows)
				}
			}
			modelPath := filepath.Join(dir, "web-1.json")
			code, stdout, stderr := dagmm(t, "train", "--host", "web-1", "--epochs", "5", "--report", "-", "-o", modelPath, trainPath)
			if code != 0 {
				t.Fatalf("train --host web-1: exit %d: %s", code, stderr)
			}
			// 300 rows of web-1, of which the 2 training anomalies are flagged in event.
			if !strings.Contains(stdout, "298 rows used, 2 excluded by events") {
				t.Errorf("train output: %s", stdout)
			}
			m, err := model.Load(modelPath)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Features, datasets.GenFeatures()) {
				t.Errorf("model features %v, want %v", m.Features, datasets.GenFeatures())
			}
			if code, _, _ := dagmm(t, "score", "--model", modelPath, "-o", filepath.Join(dir, "scored"+ext), testPath); code != 0 {
				t.Errorf("score the test file with web-1's model: exit %d", code)
			}
		})
	}
}

func TestGenHostsErrors(t *testing.T) {
	dir := t.TempDir()
	trainPath, _ := genFleetFiles(t, dir, "fleet.parquet")
	single := filepath.Join(dir, "single.csv")
	if code, _, stderr := dagmm(t, "gen", "-n", "100", "-o", single); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(dir, "x.parquet")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"gen", "--hosts", "4", "-n", "100", "-o", out}, 2, "-n: not with --hosts"},
		{[]string{"gen", "--test-rows", "100", "-o", out}, 2, "--test-rows: only with --hosts"},
		{[]string{"gen", "--hosts", "1", "-o", out}, 2, "1 hosts, want 2 to"},
		{[]string{"gen", "--hosts", "4", "--test-rows", "30", "-o", out}, 2, "TestRows/10 = 3"},
		{[]string{"gen", "--hosts", "4", "-o", filepath.Join(dir, "x.txt")}, 2, ".txt"},
		{[]string{"train", "--host", "db-9", "--report", "-", "-o", filepath.Join(dir, "m.json"), trainPath}, 1, `no rows of host "db-9" (hosts: db-1, web-1, batch-1, cache-1)`},
	} {
		code, _, stderr := dagmm(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("dagmm %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	// The seed's single-host file has host web-1 only: --host web-1 keeps every row.
	if code, stdout, _ := dagmm(t, "train", "--host", "web-1", "--epochs", "2", "--report", "-", "-o", filepath.Join(dir, "m.json"), single); code != 0 || !strings.Contains(stdout, "100 rows used") {
		t.Errorf("train --host web-1 on the seed's file: exit %d, %s", code, stdout)
	}
}

// TestEvalPerHost runs dagmm eval --per-host on a tiny fleet: one pair
// given with --train and two in a directory.
func TestEvalPerHost(t *testing.T) {
	dir := t.TempDir()
	trainPath, testPath := genFleetFiles(t, dir, "fleet.parquet", "--host-anomalies", "6", "--seed", "2")
	jsonPath := filepath.Join(dir, "out.json")
	code, stdout, stderr := dagmm(t, "eval", "--per-host", "--seeds", "2", "--epochs", "40", "--json", jsonPath, "--train", trainPath, testPath)
	if code != 0 {
		t.Fatalf("eval --per-host: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"per-host models (4)", "one fleet model", "recall by kind", "contextual", "of 2 runs"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep perHostReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2 || len(rep.Fleets) != 1 || rep.Fleets[0].Hosts != 4 || rep.Fleets[0].TestRows != 800 {
		t.Fatalf("report: %d runs, fleets %+v", len(rep.Runs), rep.Fleets)
	}
	if !slices.Equal(rep.Kinds, datasets.AnomalyKinds()) {
		t.Errorf("kinds %v, want %v", rep.Kinds, datasets.AnomalyKinds())
	}
	kinds := 0
	for _, n := range rep.Fleets[0].Kinds {
		kinds += n
	}
	if kinds != rep.Fleets[0].Anomalies || kinds < 24 {
		t.Errorf("anomalies %d, by kind %v", rep.Fleets[0].Anomalies, rep.Fleets[0].Kinds)
	}
	for _, r := range rep.Runs {
		for name, f := range map[string]hostFigures{"per-host": r.PerHost, "fleet": r.Pooled} {
			for _, v := range []float64{f.F1, f.Precision, f.Recall, f.AUROC, f.AUPRC, f.HostAUROC, f.HostAUPRC, f.Flagged} {
				if !(v >= 0 && v <= 1) {
					t.Errorf("seed %d, %s: a figure out of [0, 1]: %+v", r.Seed, name, f)
				}
			}
			if f.AUROC == 0 || f.TrainSeconds <= 0 || len(f.KindRecall) != 3 {
				t.Errorf("seed %d, %s: figures missing: %+v", r.Seed, name, f)
			}
		}
		// A contextual anomaly is a healthy host of another role: the fleet
		// model has seen such rows, the host's own model has not.
		if r.PerHost.KindRecall[datasets.AnomalyContextual] <= r.Pooled.KindRecall[datasets.AnomalyContextual] {
			t.Errorf("seed %d: contextual recall per host %.3f, fleet model %.3f; want per host higher",
				r.Seed, r.PerHost.KindRecall[datasets.AnomalyContextual], r.Pooled.KindRecall[datasets.AnomalyContextual])
		}
	}

	pairs := t.TempDir()
	genFleetFiles(t, pairs, "a.csv", "--seed", "3")
	genFleetFiles(t, pairs, "b.csv", "--seed", "4")
	code, stdout, stderr = dagmm(t, "eval", "--per-host", "--seeds", "1", "--epochs", "5", "--markdown", "-", pairs)
	if code != 0 {
		t.Fatalf("eval --per-host DIR: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"## Per-host models against one fleet model", "2 fleets × 1 seeds", "| a | 4 | 800 |", "| b | 4 | 800 |", "| recall by kind |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("markdown lacks %q:\n%s", want, stdout)
		}
	}
}

func TestEvalPerHostErrors(t *testing.T) {
	dir := t.TempDir()
	trainPath, testPath := genFleetFiles(t, dir, "fleet.parquet")
	other := t.TempDir()
	_, otherTest := genFleetFiles(t, other, "big.parquet", "--hosts", "8")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--per-host", "--interpretation", "x.txt", "--train", trainPath, testPath}, 2, "--interpretation: not with --per-host"},
		{[]string{"eval", "--per-host", "--seeds", "0", "--train", trainPath, testPath}, 2, "--seeds 0"},
		{[]string{"eval", "--per-host", testPath}, 2, "--per-host: only for pre-split data"},
		{[]string{"eval", "--kind", "kind", "--train", trainPath, testPath}, 2, "--kind: only with --per-host"},
		{[]string{"eval", "--per-host", "--epochs", "1", "--train", trainPath, otherTest}, 1, `host "db-2" (row 5) has no rows in`},
		{[]string{"eval", "--per-host", "--label", "nope", "--train", trainPath, testPath}, 1, `no label column "nope"`},
	} {
		code, _, stderr := dagmm(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("dagmm %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
