package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve"
)

// TestExplanationsAgreeAcrossChannels scores the same anomalous samples
// through the HTTP endpoint, through NATS and with dagmm score, and checks
// that the three explanations are identical.
func TestExplanationsAgreeAcrossChannels(t *testing.T) {
	// Without a window: the service scores each sample on its own, while
	// dagmm score gives a model with a window each host's history.
	data, modelPath := trainedModel(t, "--window", "1")
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	scored := filepath.Join(t.TempDir(), "scored.csv")
	if code, _, errOut := dagmm(t, "score", "--model", modelPath, "-o", scored, data); code != 0 {
		t.Fatalf("score: %s", errOut)
	}
	rows, fromFile := fileExplanations(t, scored, m.Features)
	if len(rows) == 0 {
		t.Fatal("the model flags no sample of its training data")
	}

	cfg := serve.DefaultConfig()
	cfg.Model.Path, cfg.HTTP.Addr, cfg.NATS.EmbeddedPort, cfg.Model.PollInterval = modelPath, "127.0.0.1:0", -1, -1
	svc, err := serve.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync("anomalies.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	for k, row := range rows {
		values := map[string]float64{}
		for j, f := range m.Features {
			values[f] = row[j]
		}
		body, err := json.Marshal(map[string]any{"host": "h", "ts": time.Unix(int64(k), 0).UTC(), "values": values})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+svc.HTTPAddr()+"/v1/score", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var sr serve.ScoreResponse
		err = json.NewDecoder(resp.Body).Decode(&sr)
		resp.Body.Close()
		if err != nil || len(sr.Results) != 1 {
			t.Fatalf("sample %d: HTTP response %+v: %v", k, sr, err)
		}
		if err := nc.Publish("metrics.h", body); err != nil {
			t.Fatal(err)
		}
		msg, err := events.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("sample %d: no anomaly event: %v", k, err)
		}
		var ev serve.Event
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatal(err)
		}
		httpEx := flatten(sr.Results[0].ExplanationMethod, sr.Results[0].Explanation)
		natsEx := flatten(ev.ExplanationMethod, ev.Explanation)
		if httpEx != fromFile[k] || natsEx != fromFile[k] {
			t.Errorf("sample %d explanations differ:\n file %s\n http %s\n nats %s", k, fromFile[k], httpEx, natsEx)
		}
	}
	t.Logf("%d anomalies explained identically over HTTP, NATS and in the file", len(rows))
}

// fileExplanations returns the feature values and the flattened
// explanation of every anomaly in a file written by dagmm score.
func fileExplanations(t *testing.T, path string, features []string) (rows [][]float64, ex []string) {
	t.Helper()
	tb, err := datasets.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := datasets.Matrix(tb, features)
	if err != nil {
		t.Fatal(err)
	}
	anomaly, _ := tb.Column("anomaly")
	method, _ := tb.Column("explain_method")
	expl, _ := tb.Column("explanation")
	d := len(features)
	for i := range tb.Len() {
		if !datasets.Flagged(anomaly, i) {
			continue
		}
		var fs []serve.FeatureExplanation
		if err := json.Unmarshal([]byte(expl.Text(i)), &fs); err != nil {
			t.Fatalf("row %d: explanation column: %v", i+1, err)
		}
		rows = append(rows, x[i*d:(i+1)*d])
		ex = append(ex, flatten(method.Text(i), fs))
	}
	return rows, ex
}

func flatten(method string, fs []serve.FeatureExplanation) string {
	s := method
	for _, f := range fs {
		s += fmt.Sprintf(" %s:%v/%v/%v", f.Feature, float64(f.Actual), float64(f.Expected), float64(f.Share))
	}
	return s
}
