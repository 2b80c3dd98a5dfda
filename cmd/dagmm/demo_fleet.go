package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsio"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve"
	"github.com/dagmm/dagmm/train"
)

// fleetDemoConfig is what dagmm demo --fleet runs on.
type fleetDemoConfig struct {
	hosts    int    // hosts of the generated fleet
	rows     int    // each host's history: its training window
	live     int    // each host's live samples streamed after training
	epochs   int    // training epochs of every model
	trainers int    // trainers in the process
	seed     uint64 // of the fleet and of the training
}

// hostOutcome is what the live stream did on one host.
type hostOutcome struct {
	Host, Role, Version string
	Samples             int // live samples streamed
	Injected            int // of them anomalies
	Caught              int // injected anomalies flagged
	FalseAlarms         int // normal samples flagged
}

// fleetDemoSummary is what dagmm demo --fleet saw.
type fleetDemoSummary struct {
	Trained   int           // host models trained and published
	TrainTime time.Duration // from the trainers' start to the last model published
	Hosts     []hostOutcome
	// The contextual anomaly: values normal on Like, streamed as Host (its
	// own host) and as Like.
	Host, Like        string
	FleetOwn          bool // flagged on Host by the fleet model, before training
	Own, Imitated     bool // flagged on Host, and on Like, by their own models
	OwnEvent          serve.Event
	OwnEventJSON      string
	Injected, Caught  int
	FalseAlarms, Live int
}

// runFleetDemo is dagmm demo --fleet.
func runFleetDemo(ctx context.Context, env *cliEnv, cfg fleetDemoConfig) error {
	_, err := fleetDemo(ctx, env, cfg)
	return err
}

// fleetDemo runs the fleet end to end in this process, on an embedded
// NATS server with JetStream: a fleet model trained on every host's rows
// serves first; the hosts' history goes into the history stream; the
// scheduler queues every host and cfg.trainers trainers train and publish
// their models; the scorer, running all along, picks them up without
// restart; then the hosts' live samples, with anomalies, are streamed over
// NATS, and one contextual anomaly is also streamed as the host whose
// normal it imitates.
func fleetDemo(ctx context.Context, env *cliEnv, cfg fleetDemoConfig) (fleetDemoSummary, error) {
	var sum fleetDemoSummary
	out := env.stdout
	f, err := datasets.GenerateFleet(datasets.FleetConfig{
		Hosts: cfg.hosts, TrainRows: cfg.rows, TestRows: cfg.live, Anomalies: max(1, cfg.live/100), TrainAnomalies: 2, Seed: cfg.seed,
	})
	if err != nil {
		return sum, err
	}
	features := datasets.GenFeatures()
	fmt.Fprintf(out, "\n$ dagmm gen --hosts %d --seed %d   (%d samples of history and %d live samples a host)\n", cfg.hosts, cfg.seed, cfg.rows, cfg.live)
	for _, h := range f.Hosts {
		fmt.Fprintf(out, "  %-9s %s\n", h.Name, h.Role)
	}

	emb, err := natsio.StartEmbedded(natsio.EmbeddedOptions{Name: "dagmm-demo", Host: "127.0.0.1", Port: -1, JetStream: true, MaxPayload: 8 << 20})
	if err != nil {
		return sum, err
	}
	defer emb.Shutdown()
	nc, err := nats.Connect(emb.URL(), nats.Name("dagmm-demo"))
	if err != nil {
		return sum, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return sum, err
	}
	tf := demoTrainFlags(cfg)

	// A fleet model first: one model of every host's rows, which scores
	// the hosts until they have their own.
	start := time.Now()
	fleetModel, err := trainFleetModel(ctx, f.Train, &tf)
	if err != nil {
		return sum, err
	}
	reg, err := fleet.NewRegistry(ctx, js, fleet.RegistryConfig{})
	if err != nil {
		return sum, err
	}
	if _, err := reg.Publish(ctx, "fleet", fleetModel); err != nil {
		return sum, err
	}
	fmt.Fprintf(out, "\nfleet model trained on all %d hosts' rows (%d epochs) in %s and published as \"fleet\"\n",
		cfg.hosts, cfg.epochs, time.Since(start).Round(10*time.Millisecond))

	svc, stopService, err := startFleetService(ctx, env, emb.URL(), nc)
	if err != nil {
		return sum, err
	}
	defer stopService()
	fmt.Fprintf(out, "$ dagmm serve --fleet   (in-process, embedded NATS %s, HTTP %s)\n", svc.NATSURL(), svc.HTTPAddr())

	ev, err := newEventLog(nc)
	if err != nil {
		return sum, err
	}
	defer ev.close()

	// The contextual anomaly: the first of the live period.
	ctxRow, err := firstContextual(f.Test)
	if err != nil {
		return sum, err
	}
	host, _ := f.Test.Column("host")
	cause, _ := f.Test.Column("cause")
	ts, _ := f.Test.Column("timestamp")
	sum.Host = host.Strings[ctxRow]
	sum.Like, _ = strings.CutPrefix(cause.Strings[ctxRow], "like ")
	x := fleetDemoRow(f.Test, features, ctxRow)
	early := ts.Times[0].Add(-time.Hour) // before the live period, so that the live counts do not see it
	e, err := ev.publishAndWait(nc, sum.Host, early, features, x)
	if err != nil {
		return sum, err
	}
	sum.FleetOwn = e != nil
	fmt.Fprintf(out, "\nbefore training: %s's contextual anomaly (values of %s's normal) scored by the fleet model: %s\n",
		sum.Host, sum.Like, flaggedWord(sum.FleetOwn))

	// History in, then the scheduler and the trainers.
	start = time.Now()
	hist, err := fleet.EnsureHistory(ctx, js, fleet.HistoryConfig{})
	if err != nil {
		return sum, err
	}
	if err := publishFleetHistory(ctx, js, hist, f.Train, features, nil); err != nil {
		return sum, err
	}
	fmt.Fprintf(out, "\nhistory: %d samples into stream %s (%s.<host>, %d kept per host) in %s\n",
		f.Train.Len(), hist.Stream(), "metrics", hist.Limit(), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "$ dagmm trainer --schedule --epochs %d   (in-process, %d trainers)\n", cfg.epochs, cfg.trainers)
	start = time.Now()
	trained, err := trainFleet(ctx, env, js, hist, reg, &tf, cfg)
	if err != nil {
		return sum, err
	}
	sum.Trained, sum.TrainTime = trained, time.Since(start)
	fmt.Fprintf(out, "%d host models trained and published in %s (%.2f s of a trainer a model, %d trainers on this machine's cores)\n",
		trained, sum.TrainTime.Round(10*time.Millisecond), sum.TrainTime.Seconds()*float64(cfg.trainers)/float64(trained), cfg.trainers)

	// The scorer picks the models up while serving.
	versions, err := waitHostModels(ctx, svc, reg, f.Hosts, features, x)
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(out, "the scorer serves every host with its own model, without restart\n")

	// Live samples.
	if err := streamFleetLive(ctx, nc, svc, ev, f, features, &sum, versions); err != nil {
		return sum, err
	}
	// The contextual anomaly again, as its host and as the host it imitates.
	own, err := ev.publishAndWait(nc, sum.Host, early.Add(time.Minute), features, x)
	if err != nil {
		return sum, err
	}
	imitated, err := ev.publishAndWait(nc, sum.Like, early.Add(time.Minute), features, x)
	if err != nil {
		return sum, err
	}
	sum.Own, sum.Imitated = own != nil, imitated != nil
	if own != nil {
		sum.OwnEvent, sum.OwnEventJSON = own.e, own.raw
	}
	printFleetDemo(out, &sum)
	return sum, nil
}

// demoTrainFlags returns dagmm train's defaults with the demo's epochs
// and seed.
func demoTrainFlags(cfg fleetDemoConfig) trainFlags {
	tf := trainFlags{cfg: train.DefaultConfig(), event: datasets.DefaultEventColumn}
	tf.cfg.Epochs, tf.cfg.Seed = cfg.epochs, cfg.seed
	tf.encoder, tf.est = intListFlag(tf.cfg.Encoder), intListFlag(tf.cfg.Estimator)
	return tf
}

// trainFleetModel trains one model on every host's rows of t and returns
// its artifact.
func trainFleetModel(ctx context.Context, t *datasets.Table, tf *trainFlags) ([]byte, error) {
	data, err := prepareTraining(t, "fleet", "", tf)
	if err != nil {
		return nil, err
	}
	m, _, err := fitModel(ctx, "fleet", data, tf.config(), nil)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := model.Encode(&buf, m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startFleetService runs dagmm serve --fleet in this process on the NATS
// server at url, nc being a connection to it.
func startFleetService(ctx context.Context, env *cliEnv, url string, nc *nats.Conn) (*serve.Service, func(), error) {
	cfg := serve.DefaultConfig()
	cfg.NATS.URL = url
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Model.PollInterval = -1
	cfg.Scoring.Workers = 2
	cfg.Fleet.Enabled = true
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fl, err := serve.OpenFleet(ctx, nc, cfg, nil, logger)
	if err != nil {
		return nil, nil, err
	}
	svc, err := serve.New(cfg, logger, fl.Options()...)
	if err != nil {
		fl.Close()
		return nil, nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	stopAll := func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintf(env.stderr, "demo: service: %v\n", err)
		}
		fl.Close()
	}
	select {
	case <-svc.Ready():
		return svc, stopAll, nil
	case err := <-done:
		stop()
		fl.Close()
		return nil, nil, err
	}
}

// publishFleetHistory publishes the given rows of t (every row when rows
// is nil) to their hosts' history subjects, with the event member where the
// existing monitoring raised one (an event column).
func publishFleetHistory(ctx context.Context, js jetstream.JetStream, hist *fleet.History, t *datasets.Table, features []string, rows []int) error {
	ts, _ := t.Column("timestamp")
	host, _ := t.Column("host")
	event, hasEvent := t.Column("event")
	if rows == nil {
		rows = make([]int, t.Len())
		for i := range rows {
			rows[i] = i
		}
	}
	var b bytes.Buffer
	for _, i := range rows {
		b.Reset()
		writeSample(&b, host.Strings[i], ts.Times[i], features, fleetDemoRow(t, features, i))
		if hasEvent && event.Ints[i] == 1 {
			b.Truncate(b.Len() - 1)
			b.WriteString(`,"event":"alert"}`)
		}
		if _, err := js.PublishAsync(hist.Subject(host.Strings[i]), bytes.Clone(b.Bytes())); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trainFleet runs the scheduler and cfg.trainers trainers until every
// host has a model, and returns the models trained.
func trainFleet(ctx context.Context, env *cliEnv, js jetstream.JetStream, hist *fleet.History, reg *fleet.Registry, tf *trainFlags, cfg fleetDemoConfig) (int, error) {
	jobs, err := fleet.EnsureJobs(ctx, js, fleet.JobsConfig{})
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	trained := 0
	all := make(chan struct{})
	var failed []string
	onResult := func(r fleet.Result) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Outcome {
		case fleet.OutcomeTrained:
			trained++
			if trained == cfg.hosts {
				close(all)
			}
		case fleet.OutcomeFailed, fleet.OutcomeLearning:
			failed = append(failed, fmt.Sprintf("%s: %s: %v", r.Job.Host, r.Outcome, r.Err))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for range cfg.trainers {
		tr, err := fleet.NewTrainer(ctx, jobs, hist, reg, windowTrainer(tf), fleet.TrainerConfig{Log: env.log, OnResult: onResult})
		if err != nil {
			return 0, err
		}
		g.Go(func() error { return tr.Run(gctx) })
	}
	s, err := fleet.NewScheduler(ctx, js, hist, jobs, reg, fleet.SchedulerConfig{Interval: 200 * time.Millisecond, Log: env.log})
	if err != nil {
		return 0, err
	}
	g.Go(func() error { return s.Run(gctx) })
	g.Go(func() error {
		select {
		case <-all:
			return errStopTraining
		case <-gctx.Done():
			return nil
		case <-time.After(5 * time.Minute):
			mu.Lock()
			defer mu.Unlock()
			return fmt.Errorf("demo: %d of %d host models trained after 5 minutes; failed: %v", trained, cfg.hosts, failed)
		}
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errStopTraining) {
		return 0, err
	}
	return trained, nil
}

// errStopTraining stops the demo's trainers once every host has a model.
var errStopTraining = errors.New("demo: every host trained")

// waitHostModels scores x as each host over HTTP until the service scores
// it with the host's current registry model, and returns each host's
// version.
func waitHostModels(ctx context.Context, svc *serve.Service, reg *fleet.Registry, hosts []datasets.FleetHost, features []string, x []float64) (map[string]string, error) {
	versions := make(map[string]string)
	for _, h := range hosts {
		info, err := reg.Current(ctx, h.Name)
		if err != nil {
			return nil, err
		}
		want := fmt.Sprint(info.Version)
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := scoreOver(svc.HTTPAddr(), h.Name, features, x)
			if err == nil && r.Model == h.Name && r.ModelVersion == want {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("demo: %s not scored by its model version %s after 10s (last %+v, %v)", h.Name, want, r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		versions[h.Name] = want
	}
	return versions, nil
}

// streamFleetLive publishes the fleet's live samples over NATS, in time
// order, waits for them to be scored, and counts each host's events.
func streamFleetLive(ctx context.Context, nc *nats.Conn, svc *serve.Service, ev *eventLog, f *datasets.Fleet, features []string, sum *fleetDemoSummary, versions map[string]string) error {
	t := f.Test
	ts, _ := t.Column("timestamp")
	host, _ := t.Column("host")
	label, _ := t.Column("label")
	idx := make(map[string]int)
	for i, h := range f.Hosts {
		idx[h.Name] = i
		sum.Hosts = append(sum.Hosts, hostOutcome{Host: h.Name, Role: h.Role, Version: versions[h.Name]})
	}
	injected := make(map[eventKey]bool)
	base := scoredNATS(svc)
	var b bytes.Buffer
	for i := range t.Len() {
		h := &sum.Hosts[idx[host.Strings[i]]]
		h.Samples++
		if label.Ints[i] == 1 {
			h.Injected++
			injected[eventKey{h.Host, ts.Times[i].Unix()}] = true
		}
		b.Reset()
		writeSample(&b, h.Host, ts.Times[i], features, fleetDemoRow(t, features, i))
		if err := nc.Publish("metrics."+h.Host, b.Bytes()); err != nil {
			return err
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	sum.Live = t.Len()
	if err := waitFleetScored(ctx, svc, base, t.Len()); err != nil {
		return err
	}
	for _, e := range ev.since(ts.Times[0]) {
		h := &sum.Hosts[idx[e.e.Host]]
		if injected[eventKey{e.e.Host, e.e.TS.Unix()}] {
			h.Caught++
		} else {
			h.FalseAlarms++
		}
	}
	for _, h := range sum.Hosts {
		sum.Injected += h.Injected
		sum.Caught += h.Caught
		sum.FalseAlarms += h.FalseAlarms
	}
	return nil
}

// waitFleetScored waits until the service has scored n NATS samples since
// its scored counter read base (every host has a model: none is learning).
func waitFleetScored(ctx context.Context, svc *serve.Service, base float64, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if scoredNATS(svc)-base >= float64(n) {
			time.Sleep(100 * time.Millisecond) // the last events in flight
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("demo: %v of %d live samples scored after 30s", scoredNATS(svc)-base, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scoredNATS returns dagmm_samples_scored_total{source="nats"}.
func scoredNATS(svc *serve.Service) float64 {
	mfs, err := svc.Registry().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "dagmm_samples_scored_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == "nats" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// eventKey identifies a sample: its host and time.
type eventKey struct {
	host string
	ts   int64
}

// loggedEvent is an anomaly event as received, decoded and raw.
type loggedEvent struct {
	e   serve.Event
	raw string
}

// eventLog keeps the anomaly events published on anomalies.>.
type eventLog struct {
	sub    *nats.Subscription
	mu     sync.Mutex
	events []loggedEvent
	byKey  map[eventKey]int // index in events
	notify chan struct{}
}

func newEventLog(nc *nats.Conn) (*eventLog, error) {
	l := &eventLog{byKey: make(map[eventKey]int), notify: make(chan struct{}, 1)}
	sub, err := nc.Subscribe("anomalies.>", func(msg *nats.Msg) {
		var e serve.Event
		if json.Unmarshal(msg.Data, &e) != nil {
			return
		}
		l.mu.Lock()
		l.events = append(l.events, loggedEvent{e, string(msg.Data)})
		l.byKey[eventKey{e.Host, e.TS.Unix()}] = len(l.events) - 1
		l.mu.Unlock()
		select {
		case l.notify <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	l.sub = sub
	return l, nc.Flush()
}

func (l *eventLog) close() { _ = l.sub.Unsubscribe() }

// since returns the events of samples at or after t.
func (l *eventLog) since(t time.Time) []loggedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedEvent
	for _, e := range l.events {
		if !e.e.TS.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// publishAndWait publishes one sample of host at ts and returns its
// anomaly event, or nil when none came within a second (the sample was
// scored normal: events of one host's samples arrive in order, and a
// second is far beyond the scoring time).
func (l *eventLog) publishAndWait(nc *nats.Conn, host string, ts time.Time, features []string, x []float64) (*loggedEvent, error) {
	var b bytes.Buffer
	writeSample(&b, host, ts, features, x)
	if err := nc.Publish("metrics."+host, b.Bytes()); err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	deadline := time.After(time.Second)
	for {
		l.mu.Lock()
		i, ok := l.byKey[eventKey{host, ts.Unix()}]
		var e loggedEvent
		if ok {
			e = l.events[i]
		}
		l.mu.Unlock()
		if ok {
			return &e, nil
		}
		select {
		case <-l.notify:
		case <-deadline:
			return nil, nil
		}
	}
}

// firstContextual returns the index of the first contextual anomaly in t.
func firstContextual(t *datasets.Table) (int, error) {
	kind, _ := t.Column("kind")
	for i, k := range kind.Strings {
		if k == datasets.AnomalyContextual {
			return i, nil
		}
	}
	return 0, errors.New("demo: the live period holds no contextual anomaly: stream more live samples")
}

// fleetDemoRow returns row i's features.
func fleetDemoRow(t *datasets.Table, features []string, i int) []float64 {
	x := make([]float64, len(features))
	for j, name := range features {
		c, _ := t.Column(name)
		x[j] = c.Floats[i]
	}
	return x
}

func flaggedWord(b bool) string {
	if b {
		return "FLAGGED"
	}
	return "not flagged"
}

// printFleetDemo prints the live stream's outcome.
func printFleetDemo(w io.Writer, s *fleetDemoSummary) {
	fmt.Fprintf(w, "\nlive: %d samples streamed over NATS (metrics.<host>), scored by each host's model:\n", s.Live)
	fmt.Fprintf(w, "  %-9s %-8s %-7s %8s %9s %8s %12s\n", "host", "role", "model", "samples", "injected", "flagged", "false alarms")
	for _, h := range s.Hosts {
		fmt.Fprintf(w, "  %-9s %-8s v%-6s %8d %9d %8d %12d\n", h.Host, h.Role, h.Version, h.Samples, h.Injected, h.Caught, h.FalseAlarms)
	}
	fmt.Fprintf(w, "  %-9s %-8s %-7s %8d %9d %8d %12d\n", "all", "", "", s.Live, s.Injected, s.Caught, s.FalseAlarms)
	fmt.Fprintf(w, "\ncontextual anomaly (values normal on %s):\n", s.Like)
	fmt.Fprintf(w, "  on %-9s by the fleet model: %s\n", s.Host, flaggedWord(s.FleetOwn))
	fmt.Fprintf(w, "  on %-9s by its own model:  %s\n", s.Host, flaggedWord(s.Own))
	fmt.Fprintf(w, "  on %-9s by its own model:  %s\n", s.Like, flaggedWord(s.Imitated))
	if s.Own {
		fmt.Fprintf(w, "\nits event on anomalies.%s names the model and version that scored it:\n  %s\n", s.Host, s.OwnEventJSON)
	}
}

// scoredBy is who scored a sample over HTTP.
type scoredBy struct {
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	Learning     bool   `json:"learning"`
}

// scoreOver scores x as host with POST /v1/score at addr.
func scoreOver(addr, host string, features []string, x []float64) (scoredBy, error) {
	var b bytes.Buffer
	writeSample(&b, host, time.Now().UTC(), features, x)
	resp, err := http.Post("http://"+addr+"/v1/score", "application/json", &b)
	if err != nil {
		return scoredBy{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return scoredBy{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scoredBy{}, fmt.Errorf("score %s: %d %s", host, resp.StatusCode, body)
	}
	var out struct{ Results []scoredBy }
	if err := json.Unmarshal(body, &out); err != nil || len(out.Results) != 1 {
		return scoredBy{}, fmt.Errorf("score %s: %v: %s", host, err, body)
	}
	return out.Results[0], nil
}
