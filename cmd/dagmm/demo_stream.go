package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/serve"
)

// streamSummary is what the streaming part of the demo saw.
type streamSummary struct {
	NATSSamples int // samples published on NATS
	HTTPSamples int // samples posted to /v1/score
	Injected    int // anomalies injected (on both paths)
	Caught      int // injected anomalies flagged
	FalseAlarms int // normal samples flagged
	Events      int // anomaly events received from NATS
	DeadLetters int // messages dead-lettered (one malformed message is sent on purpose)
}

// String formats the summary as one line.
func (s streamSummary) String() string {
	return fmt.Sprintf("%d samples streamed (%d through NATS, %d through HTTP): %d of %d injected anomalies flagged, %d false alarms, %d anomaly events, %d dead letters",
		s.NATSSamples+s.HTTPSamples, s.NATSSamples, s.HTTPSamples, s.Caught, s.Injected, s.FalseAlarms, s.Events, s.DeadLetters)
}

// streamDemo starts the service in this process on an embedded NATS server
// and streams the normal samples (rows in the order of features) with
// injected anomalies through NATS and through HTTP, printing each anomaly
// event as it arrives with its explanation. When keep is set it keeps the
// service running after the stream, until ctx is cancelled, so that one can
// try it by hand.
//
// An anomaly is injected every 50 samples, the way dagmm gen makes them:
// one feature of a normal sample is moved to the other end of its range
// (to its 5th percentile among the normal samples when it is above the
// median, to its 95th otherwise). The value is plausible for the feature
// alone and wrong for the row, since the features are correlated.
func streamDemo(ctx context.Context, env *cliEnv, modelPath string, normal [][]float64, features []string, keep bool) (streamSummary, error) {
	var sum streamSummary
	cfg := serve.DefaultConfig()
	cfg.Model.Path = modelPath
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.EmbeddedPort = -1
	cfg.Model.PollInterval = -1
	cfg.Scoring.Workers = 2
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := serve.New(cfg, logger)
	if err != nil {
		return sum, err
	}
	mf := svc.Model().Scorer.Features()
	if !slices.Equal(mf, features) {
		return sum, fmt.Errorf("demo: the data's features %v are not the model's %v", features, mf)
	}
	d := len(features)
	for i, row := range normal {
		if len(row) != d {
			return sum, fmt.Errorf("demo: row %d has %d values, want %d", i, len(row), d)
		}
	}
	if len(normal) == 0 {
		return sum, fmt.Errorf("demo: no samples to stream")
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		return sum, err
	}
	defer func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintf(env.stderr, "demo: service: %v\n", err)
		}
	}()
	base := "http://" + svc.HTTPAddr()
	fmt.Fprintf(env.stdout, "\nservice up: NATS %s, HTTP %s, model %s (threshold %.4g)\n",
		svc.NATSURL(), base, svc.Model().Version, svc.Model().Scorer.Threshold())

	nc, err := nats.Connect(svc.NATSURL(), nats.Name("dagmm-demo"))
	if err != nil {
		return sum, err
	}
	defer nc.Close()

	// Injected anomalies are recognised by their timestamp.
	start := time.Now().UTC().Truncate(time.Second)
	injected := map[int64]bool{} // unix seconds → injected
	var mu sync.Mutex            // guards sum's counters and the output
	out := env.stdout
	events, err := nc.Subscribe("anomalies.>", func(msg *nats.Msg) {
		var e serve.Event
		if err := json.Unmarshal(msg.Data, &e); err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		sum.Events++
		if injected[e.TS.Unix()] {
			sum.Caught++
		} else {
			sum.FalseAlarms++
		}
		printEvent(out, "nats", msg.Subject, e, injected[e.TS.Unix()])
	})
	if err != nil {
		return sum, err
	}
	dead, err := nc.Subscribe("dagmm.deadletter", func(msg *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		sum.DeadLetters++
		fmt.Fprintf(out, "dead letter from %s: %s\n", msg.Header.Get(serve.HeaderSubject), msg.Header.Get(serve.HeaderReason))
	})
	if err != nil {
		return sum, err
	}
	defer events.Unsubscribe()
	defer dead.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return sum, err
	}

	lo, mid, hi := columnQuantiles(normal, d)
	sample := func(i int) ([]float64, bool) {
		row := slices.Clone(normal[i%len(normal)])
		if i%50 != 49 {
			return row, false
		}
		j := (i / 50) % d
		if row[j] > mid[j] {
			row[j] = lo[j]
		} else {
			row[j] = hi[j]
		}
		return row, true
	}
	n := len(normal)
	natsN := n * 3 / 4
	fmt.Fprintf(out, "streaming %d samples through NATS (metrics.<host>) and %d through HTTP (POST /v1/score), an anomaly every 50\n\n", natsN, n-natsN)
	// NATS: single samples, and batches of 10 for the second half.
	for i := 0; i < natsN; {
		host := fmt.Sprintf("web-%d", i%3+1)
		per := 1
		if i >= natsN/2 {
			per = min(10, natsN-i)
		}
		var b bytes.Buffer
		if per > 1 {
			b.WriteByte('[')
		}
		for k := range per {
			row, inj := sample(i + k)
			ts := start.Add(time.Duration(i+k) * time.Second)
			if inj {
				mu.Lock()
				injected[ts.Unix()] = true
				sum.Injected++
				mu.Unlock()
			}
			if k > 0 {
				b.WriteByte(',')
			}
			writeSample(&b, host, ts, features, row)
		}
		if per > 1 {
			b.WriteByte(']')
		}
		if err := nc.Publish("metrics."+host, b.Bytes()); err != nil {
			return sum, err
		}
		i += per
		sum.NATSSamples += per
	}
	// One malformed message, to show the dead-letter subject.
	if err := nc.Publish("metrics.web-1", []byte(`{"host":"web-1","values":{"cpu_usage":"high"}}`)); err != nil {
		return sum, err
	}
	if err := nc.Flush(); err != nil {
		return sum, err
	}
	// HTTP: batches of 25.
	client := &http.Client{Timeout: 10 * time.Second}
	for i := natsN; i < n; i += 25 {
		var b bytes.Buffer
		b.WriteByte('[')
		var inj []bool
		for k := i; k < min(i+25, n); k++ {
			row, is := sample(k)
			if k > i {
				b.WriteByte(',')
			}
			writeSample(&b, "api-1", start.Add(time.Duration(k)*time.Second), features, row)
			inj = append(inj, is)
		}
		b.WriteByte(']')
		resp, err := client.Post(base+"/v1/score?explain=anomalies", "application/json", &b)
		if err != nil {
			return sum, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return sum, err
		}
		if resp.StatusCode != http.StatusOK {
			return sum, fmt.Errorf("demo: POST /v1/score: %d %s", resp.StatusCode, body)
		}
		var sr serve.ScoreResponse
		if err := json.Unmarshal(body, &sr); err != nil {
			return sum, err
		}
		mu.Lock()
		for k, r := range sr.Results {
			sum.HTTPSamples++
			if inj[k] {
				sum.Injected++
			}
			switch {
			case r.Anomaly && inj[k]:
				sum.Caught++
			case r.Anomaly:
				sum.FalseAlarms++
			}
			if r.Anomaly {
				printEvent(out, "http", "/v1/score", r, inj[k])
			}
		}
		mu.Unlock()
	}
	// Wait for the scorer to finish the NATS messages and the events to
	// arrive.
	waitScored(svc, sum.NATSSamples, 10*time.Second)
	if err := nc.Flush(); err != nil {
		return sum, err
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	final := sum
	mu.Unlock()
	fmt.Fprintf(out, "\nstream: %s\n", final)
	if keep {
		fmt.Fprintf(out, "\nthe service keeps running (Ctrl-C to stop):\n  nats sub --server %s 'anomalies.>'\n  curl -s %s/v1/model\n  curl -s %s/metrics | grep ^dagmm_\n",
			svc.NATSURL(), base, base)
		<-ctx.Done()
	}
	return final, nil
}

// waitScored polls the service's counter until n NATS samples are scored
// or the timeout passes.
func waitScored(svc *serve.Service, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		mfs, err := svc.Registry().Gather()
		if err != nil {
			return
		}
		scored, dead := 0.0, 0.0
		for _, mf := range mfs {
			switch mf.GetName() {
			case "dagmm_samples_scored_total":
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "source" && l.GetValue() == "nats" {
							scored = m.GetCounter().GetValue()
						}
					}
				}
			case "dagmm_dead_letters_total":
				for _, m := range mf.GetMetric() {
					dead += m.GetCounter().GetValue()
				}
			}
		}
		if int(scored) >= n && dead >= 1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSample writes one sample in dagmm's JSON format.
func writeSample(b *bytes.Buffer, host string, ts time.Time, features []string, row []float64) {
	fmt.Fprintf(b, `{"host":%q,"ts":%q,"values":{`, host, ts.Format(time.RFC3339))
	for j, f := range features {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(f))
		b.WriteByte(':')
		b.WriteString(strconv.FormatFloat(row[j], 'g', -1, 64))
	}
	b.WriteString("}}")
}

// printEvent prints an anomaly with its three largest contributions.
func printEvent(w io.Writer, via, subject string, e serve.Event, injected bool) {
	tag := "false alarm"
	if injected {
		tag = "injected"
	}
	fmt.Fprintf(w, "ANOMALY via %s %s host=%s ts=%s energy=%.4g severity=%.0f (%s) [%s]\n", via, subject, e.Host,
		e.TS.UTC().Format(time.RFC3339), float64(e.Energy), e.Severity, e.Band, tag)
	for k, f := range e.Explanation {
		if k == 3 {
			break
		}
		fmt.Fprintf(w, "    %-12s actual %-12.4g expected %-12.4g %5.1f%% of the anomaly\n", f.Feature, float64(f.Actual), float64(f.Expected), 100*float64(f.Share))
	}
}

// columnQuantiles returns the 5th, 50th and 95th percentiles of each
// column.
func columnQuantiles(rows [][]float64, d int) (lo, mid, hi []float64) {
	lo, mid, hi = make([]float64, d), make([]float64, d), make([]float64, d)
	col := make([]float64, len(rows))
	for j := range d {
		for i, r := range rows {
			col[i] = r[j]
		}
		slices.Sort(col)
		at := func(p float64) float64 { return col[int(math.Round(p*float64(len(col)-1)))] }
		lo[j], mid[j], hi[j] = at(0.05), at(0.5), at(0.95)
	}
	return lo, mid, hi
}
