package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
)

// TestFleetEndToEnd is issue 15's acceptance on a real embedded JetStream
// server: dagmm serve --fleet runs first (every host learning); 50
// generated hosts of four roles publish their training window to the
// history stream; a scheduler queues every host and two dagmm trainer
// processes (each its own NATS connection) train them with the train
// package and publish to the registry; serve picks every model up without
// restart; and a contextual anomaly (another role's normal values) is
// flagged on its own host and not on the host it imitates.
func TestFleetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 50 host models: skipped with -short")
	}
	const hosts = 50
	f, err := datasets.GenerateFleet(datasets.FleetConfig{
		Hosts: hosts, TrainRows: 300, TestRows: 100, Anomalies: 6, TrainAnomalies: 2, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	features := datasets.GenFeatures()

	url := runNATSServer(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The service runs before any model exists; --model only gives the
	// features samples carry.
	base := filepath.Join(t.TempDir(), "base.dagmm")
	if err := model.Save(base, modeltest.Metrics4(1)); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	serveCmd := startCommand(t, runServe, "--fleet", "--nats-url", url, "--model", base,
		"--http", addr, "--poll", "0", "--log-level", "warn")
	first := f.Hosts[0].Name
	waitScore(t, addr, first, fleetRow(f.Test, features, 0), func(r e2eResult) bool { return r.Learning })

	_, js := natstest.ConnectJS(t, url)
	hist, err := fleet.EnsureHistory(ctx, js, fleet.HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	publishHistory(ctx, t, js, hist, f.Train, features)

	// --window 1: a sample's score is its own energy, not also its host's
	// last samples', so the same values can be scored as two hosts.
	trainerArgs := []string{"--nats-url", url, "--epochs", "60", "--window", "1", "--ack-wait", "20s", "--min-samples", "200"}
	run := func(ctx context.Context, env *cliEnv, args []string) error {
		return trainerCommand(ctx, env, args, openRegistry)
	}
	trainers := []*background{
		startCommand(t, run, append(trainerArgs, "--schedule", "--schedule-every", "200ms")...),
		startCommand(t, run, trainerArgs...),
	}
	reg := waitRegistry(ctx, t, js)
	deadline := time.Now().Add(150 * time.Second)
	for _, h := range f.Hosts {
		for !hasModel(ctx, reg, h.Name) {
			if time.Now().After(deadline) {
				t.Fatalf("%s has no model after 150s:\n%s\n%s", h.Name, trainers[0].stderr.String(), trainers[1].stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, tr := range trainers {
		if err := tr.stop(t); err != nil {
			t.Fatalf("trainer %d: %v\n%s", i, err, tr.stderr.String())
		}
		n := strings.Count(tr.stderr.String(), "model published")
		t.Logf("trainer %d published %d models", i, n)
		if n == 0 {
			t.Errorf("trainer %d took no job:\n%s", i, tr.stderr.String())
		}
	}
	if !strings.Contains(trainers[0].stderr.String(), "jobs queued") {
		t.Errorf("the scheduler queued no jobs:\n%s", trainers[0].stderr.String())
	}

	checkFleetScores(ctx, t, addr, reg, f, features)
	if err := serveCmd.stop(t); err != nil {
		t.Fatalf("serve: %v\n%s", err, serveCmd.stderr.String())
	}
}

// checkFleetScores waits until serve scores every host with its current
// registry model, then checks the test period's normal rows are mostly
// normal on their own hosts and the contextual anomalies are flagged on
// their own hosts and on another host of the same role, but not on the
// hosts they imitate.
func checkFleetScores(ctx context.Context, t *testing.T, addr string, reg *fleet.Registry, f *datasets.Fleet, features []string) {
	t.Helper()
	sameRole := make(map[string]string) // host: another host of its role
	for i, h := range f.Hosts {
		sameRole[h.Name] = f.Hosts[(i+4)%len(f.Hosts)].Name // roles cycle every 4 hosts
		info, err := reg.Current(ctx, h.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := strconv.FormatUint(info.Version, 10)
		r := waitScore(t, addr, h.Name, fleetRow(f.Test, features, 0), func(r e2eResult) bool { return !r.Learning })
		if r.ModelVersion != want {
			t.Errorf("%s scored by %q version %q, want its registry model's version %s", h.Name, r.Model, r.ModelVersion, want)
		}
	}
	kind, _ := f.Test.Column("kind")
	cause, _ := f.Test.Column("cause")
	host, _ := f.Test.Column("host")
	var normal, falseAlarms, contextual, own, peer, imitated int
	for i := range f.Test.Len() {
		x := fleetRow(f.Test, features, i)
		switch kind.Strings[i] {
		case "":
			if i%5 != 0 { // a sample of the normal rows is enough
				continue
			}
			normal++
			if score(t, addr, host.Strings[i], x).Anomaly {
				falseAlarms++
			}
		case datasets.AnomalyContextual:
			other, ok := strings.CutPrefix(cause.Strings[i], "like ")
			if !ok {
				t.Fatalf("row %d: contextual cause %q", i, cause.Strings[i])
			}
			contextual++
			a, b := score(t, addr, host.Strings[i], x), score(t, addr, other, x)
			if a.Anomaly {
				own++
			}
			if score(t, addr, sameRole[host.Strings[i]], x).Anomaly {
				peer++
			}
			if b.Anomaly {
				imitated++
			}
		}
	}
	t.Logf("normal rows flagged %d/%d; contextual rows flagged on their own host %d/%d, on another host of its role %d/%d, on the host they imitate %d/%d",
		falseAlarms, normal, own, contextual, peer, contextual, imitated, contextual)
	if contextual < 20 || normal < 100 {
		t.Fatalf("%d contextual and %d normal rows scored: the fleet is too small to judge", contextual, normal)
	}
	if own < contextual*8/10 {
		t.Errorf("contextual anomalies flagged on their own host %d/%d, want at least 80%%", own, contextual)
	}
	if peer < contextual*8/10 {
		t.Errorf("contextual anomalies flagged on another host of their host's role %d/%d, want at least 80%%", peer, contextual)
	}
	if imitated > contextual*2/10 {
		t.Errorf("contextual anomalies flagged on the host they imitate %d/%d, want at most 20%%", imitated, contextual)
	}
	if falseAlarms > normal*2/10 {
		t.Errorf("normal rows flagged %d/%d, want at most 20%%", falseAlarms, normal)
	}
}

// publishHistory publishes every row of train to its host's history
// subject, as dagmm serve's samples (with the event member where the
// existing monitoring raised one).
func publishHistory(ctx context.Context, t *testing.T, js jetstream.JetStream, hist *fleet.History, train *datasets.Table, features []string) {
	t.Helper()
	ts, _ := train.Column("timestamp")
	host, _ := train.Column("host")
	event, _ := train.Column("event")
	for i := range train.Len() {
		msg := e2eSample(host.Strings[i], ts.Times[i], features, fleetRow(train, features, i))
		if event.Ints[i] == 1 {
			msg = strings.TrimSuffix(msg, "}") + `,"event":"alert"}`
		}
		if _, err := js.PublishAsync(hist.Subject(host.Strings[i]), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("history not acknowledged")
	}
}

// fleetRow returns row i's features.
func fleetRow(tab *datasets.Table, features []string, i int) []float64 {
	x := make([]float64, len(features))
	for j, name := range features {
		c, _ := tab.Column(name)
		x[j] = c.Floats[i]
	}
	return x
}

func e2eSample(host string, ts time.Time, features []string, x []float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"host":%q,"ts":%q,"values":{`, host, ts.UTC().Format(time.RFC3339Nano))
	for j, name := range features {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%v", name, x[j])
	}
	b.WriteString("}}")
	return b.String()
}

// e2eResult is one result of POST /v1/score.
type e2eResult struct {
	Host         string `json:"host"`
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	Anomaly      bool   `json:"anomaly"`
	Learning     bool   `json:"learning"`
}

// score scores x as host over HTTP.
func score(t *testing.T, addr, host string, x []float64) e2eResult {
	t.Helper()
	r, err := tryScore(addr, host, x)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryScore(addr, host string, x []float64) (e2eResult, error) {
	body := e2eSample(host, time.Now(), datasets.GenFeatures(), x)
	resp, err := http.Post("http://"+addr+"/v1/score", "application/json", strings.NewReader(body))
	if err != nil {
		return e2eResult{}, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return e2eResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return e2eResult{}, fmt.Errorf("score %s: %d %s", host, resp.StatusCode, buf.String())
	}
	var out struct{ Results []e2eResult }
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil || len(out.Results) != 1 {
		return e2eResult{}, fmt.Errorf("score %s: %v: %s", host, err, buf.String())
	}
	return out.Results[0], nil
}

// waitScore scores x as host until the result satisfies ok (10 s at most).
func waitScore(t *testing.T, addr, host string, x []float64, ok func(e2eResult) bool) e2eResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := tryScore(addr, host, x)
		if err == nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last result %+v, error %v", host, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
