package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve"
)

// benchModes are the load patterns of dagmm bench, in the order they run.
var benchModes = []string{"nats-single", "nats-batch", "nats-latency", "http-single", "http-batch"}

// benchConfig is what one bench run needs.
type benchConfig struct {
	duration    time.Duration
	singleRate  int // nats-single, messages (= samples) per second
	batchRate   int // nats-batch, samples per second
	latencyRate int // nats-latency, samples per second
	batch       int
	concurrency int
	hosts       int
	natsURL     string
	httpURL     string
	jetstream   bool
	warmUp      bool // NATS modes: one sample of each host first, untimed
	out         io.Writer
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bench", "[flags] --model MODEL",
		`Bench is a load generator for dagmm serve. It sends samples through NATS and
HTTP and prints, for each mode, the throughput, the latency percentiles
(p50, p90, p99, max) and the loss.

Modes (--modes, comma-separated; all by default):
  nats-single   one sample per message at --single-rate messages/s
  nats-batch    --batch samples per message at --batch-rate samples/s
  nats-latency  one sample per message at --latency-rate samples/s (the
                latency figure: publish to anomaly event)
  http-single   POST /v1/score with one sample, --concurrency clients, closed loop
  http-batch    POST /v1/score with --batch samples, --concurrency clients

NATS latency runs from the publish (the sample's ts) to the arrival of its
anomaly event; loss compares the anomaly events expected (the bench scores
every sample it sends with the model, one at a time) with those received,
and the samples sent with those the service scored. A model with a window
flags more in the service, which scores a sample with its host's recent
ones: its events expected are a lower bound, and the samples the exact
check. HTTP latency is per request; loss counts failed requests.

Without --nats-url and --http-url the bench starts the service in this
process, on an embedded NATS server, and reports the process's resident
memory (service and load generator together). With them it loads a running
service (start it with the same model); the resident memory then comes from
its /metrics. Samples come from --data (the model's feature columns) or are
drawn from the model's normalisation, with 1% anomalies.

--serve-only starts the in-process service (host models too) and sends
nothing; --serve-nats-url has it connect to a NATS server instead of
embedding one. Another bench then sends the load, so that the service's
process holds nothing else: its CPU time per message scored is one
replica's cost.`,
		`  dagmm bench --model model.json
  dagmm bench --model model.json --modes nats-batch,http-batch --duration 10s
  dagmm bench --model model.json --nats-url nats://127.0.0.1:4222 --http-url http://127.0.0.1:8080
  dagmm bench --model model.json --serve-only --serve-nats-url nats://127.0.0.1:4222 --hosts 100000 --host-models`)
	modelPath := fs.String("model", "", "model `file`; required")
	data := fs.String("data", "", "Parquet or CSV `file` to take samples from (default: drawn from the model)")
	modes := listFlag(slices.Clone(benchModes))
	fs.Var(&modes, "modes", "comma-separated `modes` to run")
	cfg := benchConfig{out: env.stdout}
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each mode sends")
	fs.IntVar(&cfg.singleRate, "single-rate", 50000, "nats-single: messages per second")
	fs.IntVar(&cfg.batchRate, "batch-rate", 300000, "nats-batch: samples per second")
	fs.IntVar(&cfg.latencyRate, "latency-rate", 20000, "nats-latency: samples per second")
	fs.IntVar(&cfg.batch, "batch", 100, "samples per batch message or request")
	fs.IntVar(&cfg.concurrency, "concurrency", 8, "concurrent HTTP clients")
	fs.IntVar(&cfg.hosts, "hosts", 100, "distinct hosts the samples come from")
	fs.StringVar(&cfg.natsURL, "nats-url", "", "NATS `URL` of a running service (default: start one in this process)")
	fs.StringVar(&cfg.httpURL, "http-url", "", "base `URL` of a running service's HTTP server")
	fs.BoolVar(&cfg.jetstream, "jetstream", false, "publish to the service's JetStream stream (the in-process service runs in durable mode)")
	fs.BoolVar(&cfg.warmUp, "warm-up", false, "NATS modes: send each host one sample and wait for it to be scored before the timing starts, so that the figures are those of a scorer that has seen every host (its series made, its host models prepared)")
	workers := fs.Int("workers", 0, "scoring goroutines of the in-process service (default GOMAXPROCS)")
	hostModels := fs.Bool("host-models", false, "in-process service only: score each of the --hosts hosts with a model of its own (copies of --model, each with its own threshold and version) held in a least-recently-used cache as dagmm serve --fleet holds them, to compare per-host routing with one model")
	serveOnly := fs.Bool("serve-only", false, "start the in-process service and serve until interrupted, sending nothing: another dagmm bench with --nats-url and --http-url sends the load, so that this process holds the service alone and its CPU time is the service's")
	serveNATS := fs.String("serve-nats-url", "", "in-process service: connect to the NATS server at `URL` instead of starting an embedded one")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (service and load generator) to `file`, for go tool pprof")
	documentEnv(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("a model is required: --model model.json")
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	inProcess := cfg.natsURL == "" && cfg.httpURL == ""
	if !inProcess && (*hostModels || *serveOnly || *serveNATS != "") {
		return usagef("--host-models, --serve-only and --serve-nats-url need the in-process service: drop --nats-url and --http-url")
	}
	for _, m := range modes {
		if !slices.Contains(benchModes, m) {
			return usagef("unknown mode %q (want %s)", m, strings.Join(benchModes, ", "))
		}
	}
	if cfg.batch < 1 || cfg.concurrency < 1 || cfg.hosts < 1 || cfg.duration <= 0 {
		return usagef("--batch, --concurrency, --hosts and --duration must be positive")
	}
	m, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	pool, err := benchPool(m, *data)
	if err != nil {
		return err
	}

	var svc *serve.Service
	if inProcess {
		scfg := serve.DefaultConfig()
		scfg.Model.Path = *modelPath
		scfg.HTTP.Addr = "127.0.0.1:0"
		scfg.NATS.EmbeddedPort = -1
		scfg.NATS.URL = *serveNATS
		scfg.Model.PollInterval = -1
		scfg.JetStream.Enabled = cfg.jetstream
		scfg.Scoring.MaxSamples = max(scfg.Scoring.MaxSamples, cfg.batch)
		if *workers > 0 {
			scfg.Scoring.Workers = *workers
		}
		logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		var opts []serve.Option
		if *hostModels {
			src, err := newBenchHostModels(m, cfg.hosts)
			if err != nil {
				return err
			}
			opts = append(opts, serve.WithModelSource(src))
			fmt.Fprintf(env.stdout, "%d host models loaded\n", cfg.hosts)
		}
		svc, err = serve.New(scfg, logger, opts...)
		if err != nil {
			return err
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(runCtx) }()
		defer func() {
			cancel()
			<-done
		}()
		select {
		case <-svc.Ready():
		case err := <-done:
			return err
		}
		cfg.natsURL, cfg.httpURL = svc.NATSURL(), "http://"+svc.HTTPAddr()
		fmt.Fprintf(env.stdout, "in-process service: NATS %s, HTTP %s, %d workers, model %s\n", cfg.natsURL, cfg.httpURL, svc.Config().Scoring.Workers, svc.Model().Version)
		if *serveOnly {
			fmt.Fprintf(env.stdout, "serving until interrupted (process %d)\n", os.Getpid())
			<-ctx.Done()
			return nil
		}
	}
	fmt.Fprintf(env.stdout, "pool: %d samples, %d anomalies (%.1f%%)\n\n", pool.n, pool.anomalies, 100*float64(pool.anomalies)/float64(pool.n))
	for _, mode := range modes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var err error
		switch {
		case strings.HasPrefix(mode, "nats"):
			if cfg.natsURL == "" {
				return usagef("mode %s needs --nats-url", mode)
			}
			err = benchNATS(ctx, cfg, mode, pool, svc)
		default:
			if cfg.httpURL == "" {
				return usagef("mode %s needs --http-url", mode)
			}
			err = benchHTTP(ctx, cfg, mode, pool)
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", mode, err)
		}
		reportMemory(cfg, svc)
	}
	return nil
}

// samplePool holds the samples the bench sends, pre-encoded.
type samplePool struct {
	n         int
	values    [][]byte // `"values":{...}}` of each sample
	anomaly   []bool   // the model's verdict, one sample at a time
	anomalies int
	// window is the model's window: above 1, the service scores a
	// sample with its host's recent ones too, and flags every sample the
	// model flags alone, and some more.
	window int
}

// benchPool builds up to 4096 samples from a data file, or draws them
// from the model's normalisation with 1% anomalies.
func benchPool(m *model.Model, data string) (*samplePool, error) {
	s, err := model.NewScorer(m)
	if err != nil {
		return nil, err
	}
	d := len(m.Features)
	var x []float64
	if data != "" {
		t, err := datasets.ReadFile(data)
		if err != nil {
			return nil, err
		}
		if x, err = datasets.Matrix(t, m.Features); err != nil {
			return nil, fmt.Errorf("read %s: %w", data, err)
		}
		x = x[:min(len(x), 4096*d)]
	} else {
		rng := rand.New(rand.NewPCG(1, 2))
		var normal, odd []float64
		for tries := 0; len(normal) < 4055*d && tries < 1<<20; tries++ {
			row := make([]float64, d)
			for j := range row {
				row[j] = m.Norm[j].Invert(rng.NormFloat64())
			}
			r, err := s.Score(row)
			switch {
			case err != nil:
			case r.Anomaly && len(odd) < 41*d:
				odd = append(odd, row...)
			case !r.Anomaly:
				normal = append(normal, row...)
			}
		}
		// One anomaly every 100 samples.
		for i := 0; i*d < len(normal); i++ {
			x = append(x, normal[i*d:(i+1)*d]...)
			if k := i / 99; i%99 == 98 && (k+1)*d <= len(odd) {
				x = append(x, odd[k*d:(k+1)*d]...)
			}
		}
	}
	if len(x) == 0 {
		return nil, errors.New("no samples to send")
	}
	p := &samplePool{n: len(x) / d, window: m.Window}
	for i := range p.n {
		row := x[i*d : (i+1)*d]
		r, err := s.Score(row)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		var b []byte
		b = append(b, `"values":{`...)
		for j, f := range m.Features {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, f)
			b = append(b, ':')
			b = strconv.AppendFloat(b, row[j], 'g', -1, 64)
		}
		b = append(b, "}}"...)
		p.values = append(p.values, b)
		p.anomaly = append(p.anomaly, r.Anomaly)
		if r.Anomaly {
			p.anomalies++
		}
	}
	return p, nil
}

// appendSample appends sample i of the pool as JSON with the given host
// and timestamp (Unix seconds, microsecond precision).
func (p *samplePool) appendSample(b []byte, i int, host string, ts time.Time) []byte {
	b = append(b, `{"host":"`...)
	b = append(b, host...)
	b = append(b, `","ts":`...)
	b = strconv.AppendFloat(b, float64(ts.UnixMicro())/1e6, 'f', 6, 64)
	b = append(b, ',')
	return append(b, p.values[i%p.n]...)
}

// latencies collects durations from several goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d ...time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

// summary formats percentiles of the collected durations.
func (l *latencies) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return "no samples"
	}
	slices.Sort(l.d)
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(l.d)))) - 1
		return l.d[max(0, min(i, len(l.d)-1))]
	}
	f := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (%d measured)", f(pct(0.5)), f(pct(0.9)), f(pct(0.99)), f(l.d[len(l.d)-1]), len(l.d))
}

// benchNATS publishes at a fixed rate and measures the anomaly events.
func benchNATS(ctx context.Context, cfg benchConfig, mode string, p *samplePool, svc *serve.Service) error {
	per, rate := 1, cfg.singleRate
	switch mode {
	case "nats-batch":
		per, rate = cfg.batch, cfg.batchRate
	case "nats-latency":
		rate = cfg.latencyRate
	}
	if rate <= 0 {
		return usagef("the rate of %s must be positive", mode)
	}
	pub, err := nats.Connect(cfg.natsURL, nats.Name("dagmm-bench-pub"))
	if err != nil {
		return err
	}
	defer pub.Close()
	sub, err := nats.Connect(cfg.natsURL, nats.Name("dagmm-bench-sub"))
	if err != nil {
		return err
	}
	defer sub.Close()
	run := fmt.Sprintf("b%04x", rand.Uint32()&0xffff)
	var timed atomic.Int64 // when the timing started: earlier events are the warm-up's
	var lat latencies
	var received atomic.Int64
	var lastEvent atomic.Int64
	s, err := sub.Subscribe("anomalies.>", func(msg *nats.Msg) {
		now := time.Now()
		var e struct {
			Host string    `json:"host"`
			TS   time.Time `json:"ts"`
		}
		if json.Unmarshal(msg.Data, &e) != nil || !strings.HasPrefix(e.Host, run) || e.TS.UnixNano() < timed.Load() {
			return // another run's, or the warm-up's
		}
		received.Add(1)
		lastEvent.Store(now.UnixNano())
		lat.add(now.Sub(e.TS))
	})
	if err != nil {
		return err
	}
	if err := s.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	if err := sub.Flush(); err != nil {
		return err
	}
	var js jetstream.JetStream
	if cfg.jetstream {
		if js, err = jetstream.New(pub, jetstream.WithPublishAsyncMaxPending(8192)); err != nil {
			return err
		}
	}
	hosts := make([]string, cfg.hosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("%s-%d", run, i)
	}
	subjects := make([]string, cfg.hosts)
	for i := range subjects {
		subjects[i] = "metrics." + hosts[i]
	}
	if cfg.warmUp {
		if err := warmUp(ctx, cfg, pub, js, p, hosts, subjects, svc); err != nil {
			return err
		}
	}
	timed.Store(time.Now().UnixNano())
	scoredBefore := scoredSamples(cfg, svc)
	var buf []byte
	sent, msgs, expected := 0, 0, 0
	start := time.Now()
	end := start.Add(cfg.duration)
	for {
		now := time.Now()
		if now.After(end) || ctx.Err() != nil {
			break
		}
		due := int(float64(rate) * now.Sub(start).Seconds())
		if sent >= due {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for sent < due {
			h := msgs % cfg.hosts
			buf = buf[:0]
			if per > 1 {
				buf = append(buf, '[')
			}
			for k := range per {
				if k > 0 {
					buf = append(buf, ',')
				}
				buf = p.appendSample(buf, sent+k, hosts[h], now)
				if p.anomaly[(sent+k)%p.n] {
					expected++
				}
			}
			if per > 1 {
				buf = append(buf, ']')
			}
			if err := publish(pub, js, subjects[h], buf); err != nil {
				return err
			}
			sent += per
			msgs++
		}
	}
	sendTime := time.Since(start)
	if js != nil {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			return errors.New("the stream did not acknowledge the messages within 30s")
		}
	}
	if err := pub.Flush(); err != nil {
		return err
	}
	// Wait for the scorer to finish (its counter, when known) and the
	// events to stop coming.
	scored := int64(-1)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c := scoredSamples(cfg, svc); c >= 0 {
			scored = c - scoredBefore
		}
		quiet := time.Since(time.Unix(0, lastEvent.Load())) > 500*time.Millisecond
		if (scored < 0 || scored >= int64(sent)) && received.Load() >= int64(expected) && quiet {
			break
		}
		if scored >= int64(sent) && quiet && time.Since(start) > sendTime+2*time.Second {
			break
		}
		// A scrape of the in-process service gathers its whole registry,
		// per-host series included: not so often that it slows the scorer.
		time.Sleep(250 * time.Millisecond)
	}
	doneTime := time.Since(start)
	if last := lastEvent.Load(); last > 0 {
		doneTime = max(sendTime, time.Unix(0, last).Sub(start))
	}
	w := cfg.out
	unit := "messages"
	fmt.Fprintf(w, "%s: %d %s (%d samples) in %.2fs: %.0f samples/s sent (target %d/s)", mode, msgs, unit, sent, sendTime.Seconds(),
		float64(sent)/sendTime.Seconds(), rate)
	if scored >= 0 {
		fmt.Fprintf(w, ", %.0f samples/s scored", float64(scored)/doneTime.Seconds())
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  publish-to-event latency: %s\n", lat.summary())
	lost := int64(expected) - received.Load()
	atLeast := ""
	if p.window > 1 {
		atLeast = "at least "
	}
	fmt.Fprintf(w, "  anomaly events: %s%d expected, %d received, %d lost", atLeast, expected, received.Load(), max(0, lost))
	if scored >= 0 {
		fmt.Fprintf(w, "; samples: %d sent, %d scored, %d lost", sent, scored, max(0, int64(sent)-scored))
	}
	fmt.Fprintln(w)
	return nil
}

// scoredSamples returns the service's dagmm_samples_scored_total{source="nats"},
// or -1 when it cannot be read.
func scoredSamples(cfg benchConfig, svc *serve.Service) int64 {
	v, ok := scrape(cfg, svc, "dagmm_samples_scored_total", `source="nats"`)
	if !ok {
		return -1
	}
	return int64(v)
}

// scrape reads one series from the service's metrics: from its registry
// in process, else from GET /metrics.
func scrape(cfg benchConfig, svc *serve.Service, name, label string) (float64, bool) {
	if svc != nil {
		mfs, err := svc.Registry().Gather()
		if err != nil {
			return 0, false
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				match := label == ""
				for _, lp := range m.GetLabel() {
					if lp.GetName()+`="`+lp.GetValue()+`"` == label {
						match = true
					}
				}
				if match {
					if c := m.GetCounter(); c != nil {
						return c.GetValue(), true
					}
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	if cfg.httpURL == "" {
		return 0, false
	}
	resp, err := http.Get(cfg.httpURL + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	want := name
	if label != "" {
		want += "{" + label + "}"
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, want+" ") {
			v, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// benchHTTP runs closed-loop clients against POST /v1/score.
func benchHTTP(ctx context.Context, cfg benchConfig, mode string, p *samplePool) error {
	per := 1
	if mode == "http-batch" {
		per = cfg.batch
	}
	// Pre-encoded bodies; ts is omitted, so samples take the receive time.
	var bodies [][]byte
	for i := 0; i < 64; i++ {
		var b []byte
		if per > 1 {
			b = append(b, '[')
		}
		for k := range per {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"host":"bench",`...)
			b = append(b, p.values[(i*per+k)%p.n]...)
		}
		if per > 1 {
			b = append(b, ']')
		}
		bodies = append(bodies, b)
	}
	tr := &http.Transport{MaxIdleConns: cfg.concurrency, MaxIdleConnsPerHost: cfg.concurrency, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := cfg.httpURL + "/v1/score?explain=anomalies"
	var lat latencies
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for c := range cfg.concurrency {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			for i := c; time.Now().Before(end) && ctx.Err() == nil; i += cfg.concurrency {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i%len(bodies)]))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t0))
				ok.Add(1)
			}
			lat.add(local...)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	w := cfg.out
	fmt.Fprintf(w, "%s: %d requests of %d samples in %.2fs from %d clients: %.0f requests/s, %.0f samples/s\n", mode,
		ok.Load(), per, elapsed.Seconds(), cfg.concurrency, float64(ok.Load())/elapsed.Seconds(), float64(ok.Load()*int64(per))/elapsed.Seconds())
	fmt.Fprintf(w, "  request latency: %s\n", lat.summary())
	fmt.Fprintf(w, "  failed requests: %d", failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(w, " (first: %s)", e)
	}
	fmt.Fprintln(w)
	return nil
}

// reportMemory prints the service's resident memory.
func reportMemory(cfg benchConfig, svc *serve.Service) {
	if svc != nil {
		rss, peak := procMemory()
		fmt.Fprintf(cfg.out, "  resident memory of this process (service and load generator): %.1f MB now, %.1f MB peak\n\n", rss/1e6, peak/1e6)
		return
	}
	if v, ok := scrape(cfg, nil, "process_resident_memory_bytes", ""); ok {
		fmt.Fprintf(cfg.out, "  resident memory of the service: %.1f MB\n\n", v/1e6)
		return
	}
	fmt.Fprintln(cfg.out)
}

// procMemory returns VmRSS and VmHWM of this process in bytes (Linux), or
// zeros.
func procMemory() (rss, peak float64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			peak = v * 1024
		}
	}
	return rss, peak
}

// benchHostModels is the model source of dagmm bench --host-models: host
// "<mode>-<i>" is scored by model i, from a least-recently-used cache as
// serve.RegistrySource holds its host models, and any other host by the
// base model.
type benchHostModels struct {
	base  *serve.Loaded
	cache *lru.Cache[string, *serve.Loaded]
}

// newBenchHostModels makes n scorers of m, model i's threshold moved by
// i·1e-12 (far too little to change a verdict) so that none is another's.
func newBenchHostModels(m *model.Model, n int) (*benchHostModels, error) {
	cache, err := lru.New[string, *serve.Loaded](n)
	if err != nil {
		return nil, err
	}
	b := &benchHostModels{cache: cache}
	for i := range n {
		c := *m
		c.Calibration.Threshold += float64(i) * 1e-12
		s, err := model.NewScorer(&c)
		if err != nil {
			return nil, err
		}
		id := strconv.Itoa(i)
		l := &serve.Loaded{Scorer: s, Name: "host-" + id, Version: strconv.Itoa(i + 1), Origin: "bench", LoadedAt: time.Now()}
		if i == 0 {
			b.base = l
		}
		cache.Add(id, l)
	}
	return b, nil
}

// ForHost returns the model of the host's number.
func (b *benchHostModels) ForHost(host string) (*serve.Loaded, error) {
	if i := strings.LastIndexByte(host, '-'); i >= 0 {
		if l, ok := serve.CachedModel(b.cache, host[i+1:]); ok {
			return l, nil
		}
	}
	return b.base, nil
}

// Default returns model 0.
func (b *benchHostModels) Default() *serve.Loaded { return b.base }

// Reload does nothing.
func (b *benchHostModels) Reload(context.Context) (*serve.Loaded, error) { return b.base, nil }

// Watch returns at once: the models never change.
func (b *benchHostModels) Watch(context.Context, chan<- struct{}) error { return nil }

// startCPUProfile starts a CPU profile into path; stop ends it and closes
// the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// publish sends buf to subject, through the stream when js is set (a
// copy: PublishAsync keeps it until acknowledged).
func publish(pub *nats.Conn, js jetstream.JetStream, subject string, buf []byte) error {
	if js != nil {
		_, err := js.PublishAsync(subject, slices.Clone(buf))
		return err
	}
	return pub.Publish(subject, buf)
}

// warmUp sends each host one sample, 20,000 a second, and waits up to a
// minute for the scorer to have scored them all (when its counter can be
// read; else for a second).
func warmUp(ctx context.Context, cfg benchConfig, pub *nats.Conn, js jetstream.JetStream, p *samplePool, hosts, subjects []string, svc *serve.Service) error {
	before := scoredSamples(cfg, svc)
	start := time.Now()
	var buf []byte
	for i := range hosts {
		if i%1000 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / 20000)))
		}
		buf = p.appendSample(buf[:0], i, hosts[i], time.Now())
		if err := publish(pub, js, subjects[i], buf); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := pub.Flush(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c := scoredSamples(cfg, svc)
		if c < 0 || before < 0 {
			time.Sleep(time.Second)
			break
		}
		if c-before >= int64(len(hosts)) {
			fmt.Fprintf(cfg.out, "warm-up: %d hosts scored once in %.1fs\n", len(hosts), time.Since(start).Seconds())
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(cfg.out, "warm-up: %d hosts sent in %.1fs\n", len(hosts), time.Since(start).Seconds())
	return nil
}
