package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/internal/natsio"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve"
)

// envPrefix is the prefix of the environment variables that set flags:
// --nats-url is DAGMM_NATS_URL.
const envPrefix = "DAGMM_"

// envName returns the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// documentEnv appends each flag's environment variable to its usage.
func documentEnv(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
}

// applyEnv sets every flag not given on the command line from its DAGMM_*
// environment variable, if set: flag > environment > default.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usagef("environment variable %s=%q: %v", name, v, serr)
		}
	})
	return err
}

// serveFlags registers the flags of every serve.Config field on fs.
func serveFlags(fs *flag.FlagSet, cfg *serve.Config) (poll *time.Duration, logLevel *string) {
	fs.StringVar(&cfg.Model.Path, "model", cfg.Model.Path, "model `file` written by dagmm train; required")
	fs.StringVar(&cfg.Model.Name, "model-name", cfg.Model.Name, "the model's `name` in /v2/models/{name} and in events")
	poll = fs.Duration("poll", cfg.Model.PollInterval, "check the model file for changes this often and reload it when it changes; 0 disables")
	fs.StringVar(&cfg.HTTP.Addr, "http", cfg.HTTP.Addr, "HTTP listen `address`")
	fs.StringVar(&cfg.HTTP.AdminToken, "admin-token", "", "bearer `token` required by POST /v1/model/reload (prefer the environment variable to the flag, which other users can see)")
	fs.Int64Var(&cfg.HTTP.MaxBodyBytes, "max-body", cfg.HTTP.MaxBodyBytes, "largest HTTP request body, in `bytes`")
	cfg.HTTP.MaxInFlightBytes = 0 // derived by serve.New, once --memory-limit is applied
	fs.Var(byteSize{&cfg.HTTP.MaxInFlightBytes}, "max-inflight-bytes", "most request body `bytes` held by all HTTP requests in flight (e.g. 256MiB); a request beyond it is answered 429 with Retry-After; 0: derived from the memory limit (see README, Memory)")
	fs.IntVar(&cfg.Scoring.MaxSamples, "max-samples", cfg.Scoring.MaxSamples, "most samples in one request or NATS message")
	fs.IntVar(&cfg.Scoring.HostSeriesMax, "host-series-max", cfg.Scoring.HostSeriesMax, "most hosts with dagmm_host_* series on /metrics (-1: none); further new hosts are counted in dagmm_host_series_dropped_total")
	fs.DurationVar(&cfg.Scoring.HostSeriesTTL, "host-series-ttl", cfg.Scoring.HostSeriesTTL, "how long a host not scored keeps its dagmm_host_* series")
	fs.DurationVar(&cfg.HTTP.ReadTimeout, "read-timeout", cfg.HTTP.ReadTimeout, "HTTP read timeout (whole request)")
	fs.DurationVar(&cfg.HTTP.WriteTimeout, "write-timeout", cfg.HTTP.WriteTimeout, "HTTP write timeout")
	fs.DurationVar(&cfg.HTTP.IdleTimeout, "idle-timeout", cfg.HTTP.IdleTimeout, "HTTP keep-alive idle timeout")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long each part may take to finish its work at shutdown")

	fs.BoolVar(&cfg.NATS.Disabled, "no-nats", cfg.NATS.Disabled, "HTTP only: no NATS connection and no embedded server")
	fs.StringVar(&cfg.NATS.URL, "nats-url", cfg.NATS.URL, "NATS server `URL`s, comma-separated; empty starts an embedded server")
	fs.StringVar(&cfg.NATS.EmbeddedHost, "nats-host", cfg.NATS.EmbeddedHost, "interface of the embedded NATS server")
	fs.IntVar(&cfg.NATS.EmbeddedPort, "nats-port", cfg.NATS.EmbeddedPort, "client `port` of the embedded NATS server; -1 picks a free one")
	fs.StringVar(&cfg.NATS.StoreDir, "nats-store", cfg.NATS.StoreDir, "JetStream store `directory` of the embedded server; empty uses a temporary one removed at exit")
	cfg.NATS.Auth.AddFlags(fs)
	fs.StringVar(&cfg.NATS.Subject, "subject", cfg.NATS.Subject, "NATS `subject` the samples arrive on (wildcards allowed); with --telegraf the default is "+serve.DefaultTelegrafSubject)
	fs.StringVar(&cfg.NATS.AnomalyPrefix, "anomaly-prefix", cfg.NATS.AnomalyPrefix, "anomaly events go to `prefix`.<host>")
	fs.StringVar(&cfg.NATS.ScorePrefix, "score-prefix", cfg.NATS.ScorePrefix, "with --scores, every score goes to `prefix`.<host>")
	fs.BoolVar(&cfg.NATS.PublishScores, "scores", cfg.NATS.PublishScores, "publish every sample's score, not only anomalies")
	fs.StringVar(&cfg.NATS.DeadLetterSubject, "dead-letter", cfg.NATS.DeadLetterSubject, "`subject` of the messages that cannot be scored")
	fs.StringVar(&cfg.NATS.QueueGroup, "queue", cfg.NATS.QueueGroup, "core-NATS queue `group` shared by replicas")
	fs.IntVar(&cfg.NATS.Partitions, "partitions", cfg.NATS.Partitions, "with --jetstream, split the hosts over this many scorer replicas by subject (a {{partition(N)}} subject transform on the stream); 0 or 1: not partitioned")
	fs.IntVar(&cfg.NATS.Partition, "partition", cfg.NATS.Partition, "with --partitions, this replica's partition, 0 to N-1 (e.g. a StatefulSet pod's ordinal): it consumes only its hosts' samples")
	fs.IntVar(&cfg.Scoring.Workers, "workers", cfg.Scoring.Workers, "scoring goroutines")
	fs.IntVar(&cfg.Scoring.Batch, "batch", cfg.Scoring.Batch, "largest number of samples scored at once per worker")
	methods := make([]string, 0, len(model.Methods()))
	for _, m := range model.Methods() {
		methods = append(methods, string(m))
	}
	fs.StringVar(&cfg.Scoring.ExplainMethod, "explain", cfg.Scoring.ExplainMethod, "explanation `method` of anomalies: "+strings.Join(methods, ", ")+" (default: "+defaultMethodHelp()+")")

	fs.BoolVar(&cfg.Telegraf.Enabled, "telegraf", cfg.Telegraf.Enabled, "take Telegraf's outputs.nats messages (one per measurement, influx or JSON) on --subject and join them per host and interval into the model's vectors (--mapping)")
	fs.Var(formatFlag{&cfg.Telegraf.Format}, "telegraf-format", "with --telegraf, Telegraf's data_format, a `format`: auto (JSON when a message starts with '{'), influx or json")
	fs.DurationVar(&cfg.Telegraf.Flush, "telegraf-flush", cfg.Telegraf.Flush, "with --telegraf, how often the intervals past their deadline are finalised")
	fs.BoolVar(&cfg.JetStream.Enabled, "jetstream", cfg.JetStream.Enabled, "durable mode: consume through a JetStream pull consumer, at least once across restarts")
	fs.StringVar(&cfg.JetStream.Stream, "stream", cfg.JetStream.Stream, "JetStream `stream` of the samples (created on --subject if missing)")
	fs.DurationVar(&cfg.JetStream.StreamMaxAge, "stream-max-age", cfg.JetStream.StreamMaxAge, "how long a stream created by the service keeps messages")
	fs.Int64Var(&cfg.JetStream.StreamMaxBytes, "stream-max-bytes", cfg.JetStream.StreamMaxBytes, "largest size of a stream created by the service, in `bytes` (oldest discarded); -1 for no limit")
	fs.StringVar(&cfg.JetStream.Consumer, "consumer", cfg.JetStream.Consumer, "durable consumer `name`")
	fs.DurationVar(&cfg.JetStream.AckWait, "ack-wait", cfg.JetStream.AckWait, "redeliver a message not acknowledged within this time")
	fs.IntVar(&cfg.JetStream.MaxDeliver, "max-deliver", cfg.JetStream.MaxDeliver, "most deliveries of a message whose events cannot be published (waits 1s, 2s, 4s... 30s between), after which it is dead-lettered; -1 for no limit")
	fs.IntVar(&cfg.JetStream.MaxAckPending, "max-ack-pending", cfg.JetStream.MaxAckPending, "most messages delivered and not yet acknowledged")
	fs.StringVar(&cfg.JetStream.EventStream, "event-stream", cfg.JetStream.EventStream, "JetStream `stream` that stores the events (created if missing); empty publishes them plainly")
	fleetFlags(fs, cfg)
	logLevel = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	return poll, logLevel
}

// fleetFlags are the flags of fleet mode (serve.FleetConfig).
func fleetFlags(fs *flag.FlagSet, cfg *serve.Config) {
	f := &cfg.Fleet
	reg := fleet.DefaultRegistryConfig()
	hist := fleet.DefaultHistoryConfig()
	marks := fleet.DefaultMarksConfig()
	jobs := fleet.DefaultJobsConfig()
	f.Registry.Objects, f.Registry.Index = reg.Objects, reg.Index
	f.History.Stream, f.History.MaxMsgsPerSubject = hist.Stream, hist.MaxMsgsPerSubject
	f.Marks.Bucket, f.MarksSubject, f.Jobs.Stream = marks.Bucket, fleet.DefaultMarksSubject, jobs.Stream
	f.Models.FleetKey, f.Models.NegativeTTL = "fleet", 10*time.Second
	fs.BoolVar(&f.Enabled, "fleet", f.Enabled, "fleet mode: score each host with its own model from the registry (dagmm trainer publishes them); --model is then optional and only gives the features samples carry when the registry has no fleet model")
	fs.StringVar(&f.Registry.Objects, "registry-objects", f.Registry.Objects, "with --fleet, the registry's Object Store `bucket` of models")
	fs.StringVar(&f.Registry.Index, "registry-index", f.Registry.Index, "with --fleet, the registry's KV `bucket` of current versions")
	fs.StringVar(&f.Models.FleetKey, "fleet-model", f.Models.FleetKey, "with --fleet, the registry `host` name of the fleet model, which scores hosts without a model of their own (none published under it: such hosts are learning)")
	fs.IntVar(&f.Models.CacheSize, "model-cache", f.Models.CacheSize, "with --fleet, most host models held in memory (least recently used evicted); 0: as many as --model-cache-bytes holds, or 1024 when it holds no bound")
	fs.Var(byteSize{&f.Models.CacheBytes}, "model-cache-bytes", "with --fleet, most `memory` of the host models held (e.g. 512MiB; about 10 KiB a four-metric model); 0: a quarter of the Go memory limit less 96 MiB, none without a limit; -1: none")
	fs.DurationVar(&f.Models.NegativeTTL, "learning-ttl", f.Models.NegativeTTL, "with --fleet, how long a host found without a model is not looked up again (a publish is noticed at once all the same)")
	fs.StringVar(&f.History.Stream, "history-stream", f.History.Stream, "with --fleet, the `stream` keeping each host's latest samples over --subject (created or bound; --jetstream reads the same stream by default)")
	fs.Int64Var(&f.History.MaxMsgsPerSubject, "history-max", f.History.MaxMsgsPerSubject, "with --fleet, samples kept per host in the history stream (a stream created by serve)")
	fs.StringVar(&f.Marks.Bucket, "marks-bucket", f.Marks.Bucket, "with --fleet, the KV `bucket` of false-alarm marks")
	fs.StringVar(&f.MarksSubject, "marks-subject", f.MarksSubject, "with --fleet, the NATS `subject` answering false-alarm marks (POST /v1/false-alarms over HTTP)")
	fs.StringVar(&f.Jobs.Stream, "jobs-stream", f.Jobs.Stream, "with --fleet, the work-queue `stream` a marked host is queued on for retraining")
	fs.Int64Var(&f.History.MaxBytes, "history-max-bytes", -1, "with --fleet, largest size of the history stream (a stream created by serve), in `bytes`; -1 for no limit")
	fs.Int64Var(&f.Registry.MaxBytes, "registry-max-bytes", 0, "with --fleet, largest size of the registry's Object Store bucket (created by serve), in `bytes`; 0 for no limit")
	fs.Var(replicasFlag{&f.History.Replicas, &f.Registry.Replicas, &f.Jobs.Replicas, &f.Marks.Replicas}, "stream-replicas", "with --fleet, `replicas` of the history and job streams and the registry's buckets that serve creates, in a NATS cluster (1 to 5)")
}

// fleetSetup opens fleet mode (--fleet) on the NATS server cfg names, or
// on an embedded one it starts (and cfg then names): it returns the
// service options and a function that closes what it opened.
func fleetSetup(ctx context.Context, cfg *serve.Config, logger *slog.Logger) ([]serve.Option, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) ([]serve.Option, func(), error) {
		closeAll()
		return nil, nil, err
	}
	if cfg.NATS.Disabled {
		return fail(usagef("--fleet needs NATS: the registry, history and marks are on JetStream (drop --no-nats)"))
	}
	if cfg.NATS.URL == "" {
		emb, err := natsio.StartEmbedded(natsio.EmbeddedOptions{
			Name: "dagmm-embedded", Host: cfg.NATS.EmbeddedHost, Port: cfg.NATS.EmbeddedPort,
			JetStream: true, StoreDir: cfg.NATS.StoreDir, MaxPayload: 8 << 20,
			PortHint: "choose another with --nats-port, or -1 for any",
		})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, emb.Shutdown)
		cfg.NATS.URL = emb.URL()
		cfg.NATS.Auth = natsauth.Config{}
	}
	auth, err := cfg.NATS.Auth.Options()
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(cfg.NATS.URL, append(auth, nats.Name(cfg.NATS.Name+"-fleet"))...)
	if err != nil {
		return fail(fmt.Errorf("serve: fleet: connect %s: %w", cfg.NATS.URL, err))
	}
	closers = append(closers, nc.Close)
	if cfg.JetStream.Enabled {
		cfg.JetStream.Stream = cfg.Fleet.History.Stream // one stream over the subject
	}
	var base *serve.Loaded
	if cfg.Model.Path != "" {
		src, err := serve.NewFileSource(cfg.Model.Path, cfg.Model.Name, -1)
		if err != nil {
			return fail(err)
		}
		base = src.Default()
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f, err := serve.OpenFleet(octx, nc, *cfg, base, logger)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, f.Close)
	return f.Options(), closeAll, nil
}

// telegrafFlags are the flags of serve --telegraf that are not
// serve.Config fields.
type telegrafFlags struct {
	mapping  string
	interval time.Duration
}

func addTelegrafFlags(fs *flag.FlagSet) *telegrafFlags {
	var tf telegrafFlags
	fs.StringVar(&tf.mapping, "mapping", "", "with --telegraf, the mapping `file` (JSON) saying how features are made from measurements; empty: the default of the four seed metrics (dagmm collect --print-mapping)")
	fs.DurationVar(&tf.interval, "interval", 0, "with --telegraf, Telegraf's agent interval; overrides the mapping's (10s by default), and the wait and host TTL then follow it")
	return &tf
}

// applyTelegraf completes cfg for --telegraf: the mapping, and the subject
// when none was given.
func applyTelegraf(fs *flag.FlagSet, cfg *serve.Config, tf *telegrafFlags) error {
	if !cfg.Telegraf.Enabled {
		for _, name := range []string{"mapping", "interval", "telegraf-format", "telegraf-flush"} {
			if flagGiven(fs, name) {
				return usagef("--%s needs --telegraf", name)
			}
		}
		return nil
	}
	mapping, err := loadMapping(tf.mapping, tf.interval)
	if err != nil {
		return err
	}
	cfg.Telegraf.Mapping = &mapping
	if !flagGiven(fs, "subject") {
		cfg.NATS.Subject = serve.DefaultTelegrafSubject
	}
	return nil
}

// parseServeFlags parses args and the environment into cfg.
func parseServeFlags(fs *flag.FlagSet, cfg *serve.Config, poll *time.Duration, args []string, lookup func(string) (string, bool)) error {
	documentEnv(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs, lookup); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q (the model is given with --model)", fs.Args())
	}
	if cfg.NATS.URL == "" && cfg.NATS.Auth.Set() {
		return usagef("the NATS credentials and TLS flags (--nats-creds, --nats-token, --nats-tls-ca...) are for a server given with --nats-url, not the embedded one")
	}
	cfg.Model.PollInterval = *poll
	if *poll == 0 {
		cfg.Model.PollInterval = -1
	}
	return nil
}

func logLevelOf(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	cfg := serve.DefaultConfig()
	fs := newFlagSet(env, "serve", "[flags] --model MODEL",
		`Serve scores live metrics with a model, from NATS and over HTTP, in one process.

NATS: samples arrive on --subject as JSON, one per message or a batch:
  {"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}
  [{...},{...}]   or   {"samples":[{...},{...}]}
Each anomaly is published to anomalies.<host> with its energy, the threshold
and each feature's actual value, expected value and share of the error. A
message that cannot be scored goes to --dead-letter with the reason in its
Dagmm-Reason header. Without --nats-url an embedded NATS server starts on
127.0.0.1:4222 (JetStream on), so one machine works out of the box. With
--jetstream the scorer reads a durable stream and acknowledges a message only
after its events are out: a restart loses nothing (events carry the stream
sequence, so consumers can drop duplicates). With --jetstream, --partitions N
--partition I splits the hosts over N replicas: the stream maps each host's
subject to one partition, and replica I consumes (and, with --fleet, keeps
the models of) its partition's hosts only.

HTTP: POST /v1/score (same JSON), GET /v1/model, POST /v1/model/reload
(refused unless --admin-token is set; then Authorization: Bearer TOKEN),
GET /metrics (Prometheus), and the Open Inference Protocol v2 of KServe:
/v2/health/live, /v2/health/ready, /v2/models/{name}[/ready|/infer].
Request bodies in flight are capped (--max-inflight-bytes, derived from the
memory limit); a request beyond the cap is answered 429 with Retry-After.
The Go memory limit is 90% of the container's cgroup limit when there is
one (--memory-limit overrides).

The model is reloaded on SIGHUP, on POST /v1/model/reload and when its file
changes (--poll); a file that does not load leaves the old model serving.
SIGINT or SIGTERM stops the service gracefully: it stops taking work,
finishes what is in flight, then exits.

Telegraf: with --telegraf the scorer takes what Telegraf's outputs.nats plugin
publishes (default subject telegraf): one message per measurement (cpu, mem,
diskio, net, ...) or a batch, in influx line protocol or JSON. It joins them
per host and collection interval into the model's vectors as the mapping says
(--mapping, the same as dagmm collect's), counters turned into rates, and
scores each vector; anomalies go to anomalies.<host>. A host's first
interval and an interval where a counter went down give no vector; an
interval still incomplete one interval after its first measurement is
dropped, and measurements later than that are dropped too (both counted in
the dagmm_telegraf_* metrics, logged at debug level). With --jetstream a
message is acknowledged once assembled.

Prometheus: with --remote-write the service takes Prometheus remote write
1.0 at POST /api/v1/write (answers 204; 400, 413 or 415 for what is not a
snappy-compressed WriteRequest; 429 and 503 for what a retry mends). The
series of the recording rules in deploy/prometheus/rules.yaml (dagmm:<feature>,
one per host in the label instance) are joined per host and evaluation
(--remote-write-interval, Prometheus's evaluation_interval) by the same
assembler as Telegraf's, scored, and anomalies go to anomalies.<host>; a
stale marker ends its series (dagmm_remote_write_* metrics).

Every flag can also be set with an environment variable, shown in brackets:
a flag on the command line wins over the environment, which wins over the
default.`,
		`  dagmm serve --model model.json
  dagmm serve --model model.json --http :9000 --nats-url nats://nats:4222 --jetstream
  DAGMM_MODEL=model.json DAGMM_ADMIN_TOKEN=s3cret dagmm serve --scores
  dagmm serve --model model.json --telegraf --nats-url nats://nats:4222 --interval 10s
  dagmm serve --model model.json --remote-write --remote-write-interval 15s
  nats pub metrics.web-1 '{"values":{"cpu_usage":97,"mem_usage":20,"disk_busy":3,"net_in_bps":1e5}}'
  nats sub 'anomalies.>'
  curl -s localhost:8080/v1/score -d '{"host":"web-1","values":{"cpu_usage":97,"mem_usage":20,"disk_busy":3,"net_in_bps":1e5}}'
  kill -HUP $(pidof dagmm)    # reload the model`)
	poll, logLevel := serveFlags(fs, &cfg)
	tf := addTelegrafFlags(fs)
	var rwMapping string
	remoteWriteFlags(fs, &cfg, &rwMapping)
	fromRegistry := fs.String("model-from-registry", "", "serve the current model of this `key` in the fleet's registry (--registry-objects, --registry-index on --nats-url; dagmm models publish KEY model.json) to every host, and load each new version of it while serving")
	var memLimit int64
	fs.Var(byteSize{&memLimit}, "memory-limit", "Go runtime memory `limit` (e.g. 1GiB); 0: GOMEMLIMIT if set, else 90% of the container's cgroup memory limit when there is one; -1: none")
	if err := parseServeFlags(fs, &cfg, poll, args, os.LookupEnv); err != nil {
		return err
	}
	if err := applyTelegraf(fs, &cfg, tf); err != nil {
		return err
	}
	if err := applyRemoteWrite(fs, &cfg, rwMapping); err != nil {
		return err
	}
	switch {
	case *fromRegistry != "" && (cfg.Model.Path != "" || cfg.Fleet.Enabled):
		return usagef("--model-from-registry serves one model from the registry: not with --model or --fleet")
	case cfg.Model.Path == "" && !cfg.Fleet.Enabled && *fromRegistry == "":
		return usagef("a model is required: --model model.json (or DAGMM_MODEL), --model-from-registry KEY, or --fleet")
	}
	level, err := logLevelOf(*logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level})).With("component", "serve")
	limit, source, err := setMemoryLimit(memLimit, os.LookupEnv)
	if err != nil {
		logger.Warn("no Go memory limit set", "err", err)
	}
	var opts []serve.Option
	if cfg.Fleet.Enabled {
		// Refuse a bad configuration before fleet mode touches the streams.
		if c := cfg.WithDefaults(); c.Validate() != nil {
			return c.Validate()
		}
		o, closeFleet, err := fleetSetup(ctx, &cfg, logger)
		if err != nil {
			return err
		}
		defer closeFleet()
		opts = o
	}
	if *fromRegistry != "" {
		o, closeReg, err := registryModelSetup(ctx, &cfg, *fromRegistry, logger)
		if err != nil {
			return err
		}
		defer closeReg()
		opts = o
	}
	svc, err := serve.New(cfg, logger, opts...)
	if err != nil {
		return err
	}
	logConfig(logger, svc.Config())
	logMemory(logger, limit, source, svc.Config())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				svc.Reload(runCtx, "SIGHUP") // logged inside
			}
		}
	}()
	err = svc.Run(runCtx)
	cancel()
	<-done
	return err
}

// logMemory logs the memory limit and the bound on request bytes in
// flight, and warns when the limit is too small for the largest body.
func logMemory(logger *slog.Logger, limit int64, source string, cfg serve.Config) {
	shown := "none"
	if limit < math.MaxInt64 {
		shown = strconv.FormatInt(limit, 10)
	}
	logger.Info("memory", "go_memory_limit_bytes", shown, "source", source,
		"max_inflight_bytes", cfg.HTTP.MaxInFlightBytes, "max_body_bytes", cfg.HTTP.MaxBodyBytes)
	if limit < math.MaxInt64 && cfg.HTTP.MaxBodyBytes*serve.BytesPerBodyByte > limit-serve.MemoryReserve {
		logger.Warn("the memory limit is small for the largest request body: lower --max-body",
			"go_memory_limit_bytes", limit, "max_body_bytes", cfg.HTTP.MaxBodyBytes, "bytes_per_body_byte", serve.BytesPerBodyByte)
	}
}

// logConfig logs the effective configuration, the admin token redacted.
func logConfig(logger *slog.Logger, cfg serve.Config) {
	if cfg.HTTP.AdminToken != "" {
		cfg.HTTP.AdminToken = "(set)"
	}
	cfg.NATS.Auth = cfg.NATS.Auth.Redacted()
	fields := strings.Fields(strings.Trim(fmt.Sprintf("%+v", cfg), "{}"))
	sort.Strings(fields)
	logger.Debug("config", "settings", strings.Join(fields, " "))
}
