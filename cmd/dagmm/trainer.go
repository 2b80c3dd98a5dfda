package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/model"
)

// fleetBackends opens the model registry (cfg) a trainer publishes to and
// the operators' false-alarm marks (nil: none) on js.
type fleetBackends func(ctx context.Context, js jetstream.JetStream, cfg fleet.RegistryConfig) (fleet.Store, fleet.FalseAlarms, error)

// openRegistry opens the fleet's model registry and false-alarm marks,
// creating their buckets when missing.
func openRegistry(ctx context.Context, js jetstream.JetStream, cfg fleet.RegistryConfig) (fleet.Store, fleet.FalseAlarms, error) {
	reg, err := fleet.NewRegistry(ctx, js, cfg)
	if err != nil {
		return nil, nil, err
	}
	marks, err := fleet.NewMarks(ctx, js, fleet.MarksConfig{}, nil)
	return reg, marks, err
}

// trainerOptions are the flags of dagmm trainer besides the train flags.
type trainerOptions struct {
	natsURL     string
	auth        natsauth.Config
	hist        fleet.HistoryConfig
	reg         fleet.RegistryConfig
	jobs        fleet.JobsConfig
	trainer     fleet.TrainerConfig
	eventStream string
	anomalies   string
	schedule    bool
	sched       fleet.SchedulerConfig
}

func runTrainer(ctx context.Context, env *cliEnv, args []string) error {
	return trainerCommand(ctx, env, args, openRegistry)
}

// trainerCommand is dagmm trainer, publishing to what open returns.
func trainerCommand(ctx context.Context, env *cliEnv, args []string, open fleetBackends) error {
	fs := newFlagSet(env, "trainer", "[flags]",
		`Trainer trains a model per host: it takes retraining jobs from a JetStream
work queue (--jobs-stream), reads the host's latest samples back from the
history stream (--stream, over --subject: a host's samples on
"metrics.<host>", its '.' written '_'), leaves out the samples that raised
events (their "event" member) and, with --event-stream, those dagmm flagged
unless an operator marked them as false alarms, trains as dagmm train does
with the train flags below, publishes the model to the registry, and only
then acknowledges the job. Run any number of trainers on any machines: they
share one durable consumer. A job in progress signals it every --ack-wait/3;
a trainer that dies leaves its job to another after --ack-wait. A host with
fewer than --min-samples samples is "learning": its job ends and it is queued
again when it has more.

With --schedule the process also runs the scheduler, which queues every host
whose model is missing, older than --retrain, or trained on half the history
it now has. Several may run: one acts at a time (a lease in a KV bucket).

Without --nats-url it connects to nats://127.0.0.1:4222, the embedded server
of a local dagmm serve. Every flag can also be set by its environment
variable (flag > environment > default).`,
		`  dagmm trainer --nats-url nats://nats:4222 --schedule
  dagmm trainer --nats-url nats://nats:4222 --epochs 300 --event-stream DAGMM_EVENTS`)
	var tf trainFlags
	addTrainFlags(fs, &tf)
	o := trainerOptions{
		hist: fleet.DefaultHistoryConfig(), jobs: fleet.DefaultJobsConfig(), reg: fleet.DefaultRegistryConfig(),
		trainer: fleet.DefaultTrainerConfig(), sched: fleet.DefaultSchedulerConfig(),
	}
	fs.StringVar(&o.natsURL, "nats-url", nats.DefaultURL, "NATS server `URL`s, comma-separated")
	o.auth.AddFlags(fs)
	fs.StringVar(&o.hist.Stream, "stream", o.hist.Stream, "history `stream` of the samples (created on --subject if missing)")
	fs.StringVar(&o.hist.Subject, "subject", o.hist.Subject, "`subject` the samples arrive on: a prefix and \".>\"")
	fs.Int64Var(&o.hist.MaxMsgsPerSubject, "history", o.hist.MaxMsgsPerSubject, "`messages` of each host the history keeps: the training window")
	fs.Int64Var(&o.hist.MaxBytes, "history-max-bytes", o.hist.MaxBytes, "largest size of the history stream when the trainer creates it, in `bytes` (oldest discarded); -1 for no limit")
	fs.StringVar(&o.jobs.Stream, "jobs-stream", o.jobs.Stream, "work-queue `stream` of the training jobs")
	fs.StringVar(&o.reg.Objects, "registry-objects", o.reg.Objects, "the registry's Object Store `bucket` of models")
	fs.StringVar(&o.reg.Index, "registry-index", o.reg.Index, "the registry's KV `bucket` of current versions")
	fs.Int64Var(&o.reg.MaxBytes, "registry-max-bytes", o.reg.MaxBytes, "largest size of the registry's Object Store bucket when the trainer creates it, in `bytes`; 0 for no limit")
	fs.Var(replicasFlag{&o.hist.Replicas, &o.jobs.Replicas, &o.reg.Replicas}, "stream-replicas", "`replicas` of the history and job streams and of the registry's buckets that the trainer creates, in a NATS cluster (1 to 5)")
	fs.StringVar(&o.trainer.Consumer, "consumer", o.trainer.Consumer, "durable consumer `name` the trainers share")
	fs.DurationVar(&o.trainer.AckWait, "ack-wait", o.trainer.AckWait, "a job without word from its trainer this long goes to another")
	fs.IntVar(&o.trainer.MaxDeliver, "max-deliver", o.trainer.MaxDeliver, "most deliveries of a job that fails for a reason that may pass")
	fs.IntVar(&o.trainer.MinSamples, "min-samples", o.trainer.MinSamples, "fewest samples to train a host on; below, it is learning")
	fs.StringVar(&o.eventStream, "event-stream", "", "JetStream `stream` of dagmm serve's events (its --event-stream): the samples it flagged are left out of training unless marked as false alarms; empty: none left out")
	fs.StringVar(&o.anomalies, "anomaly-prefix", "anomalies", "subject `prefix` of the anomaly events")
	fs.BoolVar(&o.schedule, "schedule", false, "also run the scheduler that queues the hosts needing a model")
	fs.DurationVar(&o.sched.Interval, "schedule-every", o.sched.Interval, "with --schedule, how often the fleet is looked at")
	fs.DurationVar(&o.sched.Retrain, "retrain", o.sched.Retrain, "with --schedule, the model age at which a host is retrained")
	documentEnv(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if cfg := tf.config(); cfg.Validate() != nil {
		return usagef("%v", cfg.Validate())
	}
	o.sched.MinSamples = o.trainer.MinSamples
	return o.run(ctx, env, &tf, open)
}

// run connects, binds the streams and runs the trainer (and the
// scheduler) until ctx is cancelled.
func (o *trainerOptions) run(ctx context.Context, env *cliEnv, tf *trainFlags, open fleetBackends) error {
	auth, err := o.auth.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(o.natsURL, append(auth, nats.Name("dagmm-trainer"), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { env.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { env.log.Info("nats reconnected") }))...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	hist, err := fleet.EnsureHistory(ctx, js, o.hist)
	if err != nil {
		return err
	}
	jobs, err := fleet.EnsureJobs(ctx, js, o.jobs)
	if err != nil {
		return err
	}
	store, marks, err := open(ctx, js, o.reg)
	if err != nil {
		return fmt.Errorf("model registry: %w", err)
	}
	o.trainer.Log = env.log
	if o.eventStream != "" {
		o.trainer.Window = fleet.WindowOptions{Flags: fleet.EventFlags{JS: js, Stream: o.eventStream, Prefix: o.anomalies}, FalseAlarms: marks}
	}
	tr, err := fleet.NewTrainer(ctx, jobs, hist, store, windowTrainer(tf), o.trainer)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tr.Run(gctx) })
	if o.schedule {
		o.sched.Log = env.log
		s, err := fleet.NewScheduler(ctx, js, hist, jobs, store, o.sched)
		if err != nil {
			return err
		}
		g.Go(func() error { return s.Run(gctx) })
	}
	cfg := tf.config()
	env.log.Info("trainer running", "nats", o.natsURL, "history", hist.Stream(), "window", hist.Limit(), "jobs", jobs.Stream(),
		"consumer", o.trainer.Consumer, "schedule", o.schedule, "epochs", cfg.Epochs, "encoder", cfg.Encoder, "k", cfg.K)
	err = g.Wait()
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
		env.log.Warn("nats connection not drained", "err", derr)
	}
	return err
}

// windowTrainer returns the training function of dagmm trainer: a host's
// window becomes a table (ts and one column per feature) that goes down
// dagmm train's path (the column choice, the constant columns set apart,
// the train flags' configuration), and the model is encoded.
func windowTrainer(tf *trainFlags) fleet.TrainFunc {
	return func(ctx context.Context, w *fleet.Window) ([]byte, error) {
		t, err := windowTable(w)
		if err != nil {
			return nil, fleet.Permanent(err)
		}
		data, err := prepareTraining(t, "nats:"+w.Subject, "", tf)
		if err != nil {
			return nil, fleet.Permanent(err)
		}
		m, _, err := fitModel(ctx, "nats:"+w.Subject, data, tf.config(), nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, fleet.Permanent(err) // same window, same seed: same failure
		}
		m.Provenance.RowsExcluded = w.Events + w.Flagged
		var buf bytes.Buffer
		if err := model.Encode(&buf, m); err != nil {
			return nil, fleet.Permanent(err)
		}
		return buf.Bytes(), nil
	}
}

// windowTable returns w as a table: a "ts" column and one float column per
// feature.
func windowTable(w *fleet.Window) (*datasets.Table, error) {
	cols := []*datasets.Column{datasets.TimeColumn("ts", w.TS)}
	d := len(w.Features)
	for j, f := range w.Features {
		v := make([]float64, w.Rows())
		for i := range v {
			v[i] = w.X[i*d+j]
		}
		cols = append(cols, datasets.FloatColumn(f, v))
	}
	t, err := datasets.NewTable(cols...)
	if err != nil {
		return nil, fmt.Errorf("window of %s: %w", w.Host, err)
	}
	return t, nil
}

// replicasFlag sets the replica count of several streams and buckets at
// once: 1 to 5, as JetStream allows.
type replicasFlag []*int

func (r replicasFlag) String() string {
	if len(r) == 0 || *r[0] == 0 {
		return "1"
	}
	return strconv.Itoa(*r[0])
}

func (r replicasFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 5 {
		return fmt.Errorf("%q: want 1 to 5 replicas", s)
	}
	for _, p := range r {
		*p = n
	}
	return nil
}
