package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets"
)

// normalRows reads the generated data and returns the rows not labelled
// as anomalies, by feature.
func normalRows(t *testing.T, data string) ([][]float64, []string) {
	t.Helper()
	tab, err := datasets.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	features := datasets.GenFeatures()
	x, err := datasets.Matrix(tab, features)
	if err != nil {
		t.Fatal(err)
	}
	label, ok := tab.Column("label")
	if !ok {
		t.Fatal("no label column")
	}
	d := len(features)
	var rows [][]float64
	for i := range tab.Len() {
		if l, _ := label.Float64(i); l == 0 {
			rows = append(rows, x[i*d:(i+1)*d])
		}
	}
	return rows, features
}

func TestStreamDemo(t *testing.T) {
	// A model trained with the default epochs (trainedModel's 20 epochs
	// underfit: the injected anomalies need the correlations learnt).
	dir := t.TempDir()
	data, modelPath := filepath.Join(dir, "metrics.parquet"), filepath.Join(dir, "model.json")
	if code, _, errOut := dagmm(t, "gen", "-o", data); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errOut)
	}
	if code, _, errOut := dagmm(t, "train", "--report", "-", "-o", modelPath, data); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errOut)
	}
	rows, features := normalRows(t, data)
	var out bytes.Buffer
	env := newCLIEnv(&out, io.Discard)
	sum, err := streamDemo(t.Context(), env, modelPath, rows, features, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	t.Logf("summary: %s", sum)
	if sum.NATSSamples+sum.HTTPSamples != len(rows) || sum.NATSSamples == 0 || sum.HTTPSamples == 0 {
		t.Errorf("streamed %d + %d samples, want %d in all through both", sum.NATSSamples, sum.HTTPSamples, len(rows))
	}
	if sum.Injected != len(rows)/50 {
		t.Errorf("%d anomalies injected, want %d", sum.Injected, len(rows)/50)
	}
	if sum.DeadLetters != 1 || !strings.Contains(text, "dead letter from metrics.web-1") {
		t.Errorf("%d dead letters, want the one malformed message", sum.DeadLetters)
	}
	// Every event printed was counted, and the injected anomalies stand out.
	if n := strings.Count(text, "ANOMALY via nats"); n != sum.Events {
		t.Errorf("%d NATS events printed, %d counted", n, sum.Events)
	}
	if sum.Caught < sum.Injected*3/4 {
		t.Errorf("only %d of %d injected anomalies flagged:\n%s", sum.Caught, sum.Injected, text)
	}
	if !strings.Contains(text, "[injected]") || !strings.Contains(text, "of the anomaly") || !strings.Contains(text, "stream: ") {
		t.Errorf("output lacks events with explanations or the summary:\n%s", text)
	}
	if _, err := streamDemo(t.Context(), env, modelPath, rows, []string{"a", "b", "c", "d"}, false); err == nil {
		t.Error("features that are not the model's were accepted")
	}
}
