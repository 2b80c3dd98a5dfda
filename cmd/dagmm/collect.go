package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/internal/natsconn"
	"github.com/dagmm/dagmm/internal/natsio"
	"github.com/dagmm/dagmm/serve"
	"github.com/dagmm/dagmm/serve/ingest"
)

// formatFlag is a flag holding a Telegraf wire format.
type formatFlag struct{ f *ingest.Format }

func (v formatFlag) String() string {
	if v.f == nil {
		return ingest.FormatAuto.String()
	}
	return v.f.String()
}

func (v formatFlag) Set(s string) error {
	f, err := ingest.ParseFormat(s)
	if err != nil {
		return err
	}
	*v.f = f
	return nil
}

// loadMapping returns the Telegraf mapping of the file at path, or the
// default mapping when path is empty. A positive interval replaces the
// mapping's collection interval, and the wait and host TTL then follow it
// (their defaults derive from the interval).
func loadMapping(path string, interval time.Duration) (ingest.Config, error) {
	cfg := ingest.DefaultConfig()
	if path != "" {
		var err error
		if cfg, err = ingest.LoadConfig(path); err != nil {
			return cfg, fmt.Errorf("mapping %s: %w", path, err)
		}
	}
	switch {
	case interval < 0:
		return cfg, usagef("--interval %v: want a positive duration", interval)
	case interval > 0:
		cfg.Interval, cfg.Wait, cfg.HostTTL = interval, 0, 0
		if err := cfg.Validate(); err != nil {
			return cfg, usagef("--interval %v: %v", interval, err)
		}
	}
	return cfg, nil
}

// flagGiven reports whether the flag was set on the command line or from
// the environment.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// collectOptions are the settings of dagmm collect.
type collectOptions struct {
	natsURL    string
	natsHost   string
	natsPort   int
	auth       natsauth.Config
	subject    string
	format     ingest.Format
	mapping    string
	interval   time.Duration
	features   listFlag
	out        string
	prefix     string
	rollRows   int
	rollEvery  time.Duration
	deadLetter string
	flush      time.Duration
	status     time.Duration
	logLevel   string
}

func runCollect(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "collect", "[flags] -o DIR   |   dagmm collect --merge -o FILE FILES...",
		`Collect records the live metrics of a fleet that runs Telegraf, as training
data for dagmm train.

Telegraf's outputs.nats plugin publishes one message per measurement (cpu,
mem, diskio, net, ...) on --subject, in influx line protocol (its default) or
JSON, one metric per message or a batch. Collect joins them per host and
collection interval into feature vectors, as the mapping says (--mapping; by
default cpu_usage = 100 - cpu.usage_idle of cpu-total, mem_usage =
mem.used_percent, disk_busy = the rate of diskio.io_time as a percentage of
wall time, max over the disks, and net_in_bps = 8 x the rate of
net.bytes_recv summed over the interfaces but lo). Counters become rates: a
host's first interval, and an interval where a counter went down (a reboot),
give no vector. An interval still incomplete one interval after its first
measurement is dropped; a measurement that comes later than that is late and
dropped. Run "dagmm collect --print-mapping" for the mapping file format.

The vectors go to Parquet files in the directory -o (created if missing),
with the columns timestamp, host and the features. A file is completed and
a new one started every --roll-rows rows and every --roll-every; a file is
written under a hidden temporary name and renamed when complete, so every
.parquet file in the directory is whole. SIGINT or SIGTERM stops the
collection: the open intervals are finalised and the last file is completed.

A message with a metric that cannot be decoded goes to --dead-letter, with
the reason in its Dagmm-Reason header; its good metrics are still used.

Without --nats-url an embedded NATS server listens on --nats-host:--nats-port
(127.0.0.1:4222) for Telegraf to publish to.

dagmm train takes one file: --merge joins the collected files into one.

Every flag can also be set with an environment variable, shown in brackets:
a flag on the command line wins over the environment, which wins over the
default.`,
		`  dagmm collect -o telemetry/
  dagmm collect --nats-url nats://nats:4222 --subject 'telegraf.>' --interval 10s --roll-every 6h -o telemetry/
  dagmm collect --merge -o training.parquet telemetry/*.parquet
  dagmm train -o model.json training.parquet
  dagmm collect --print-mapping > mapping.json`)
	var o collectOptions
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS server `URL`s, comma-separated; empty starts an embedded server")
	fs.StringVar(&o.natsHost, "nats-host", "127.0.0.1", "interface of the embedded NATS server")
	fs.IntVar(&o.natsPort, "nats-port", 4222, "client `port` of the embedded NATS server; -1 picks a free one")
	o.auth.AddFlags(fs)
	fs.StringVar(&o.subject, "subject", serve.DefaultTelegrafSubject, "NATS `subject` Telegraf publishes to (wildcards allowed)")
	fs.Var(formatFlag{&o.format}, "format", "Telegraf's data_format, a `format`: auto (JSON when a message starts with '{'), influx or json")
	fs.StringVar(&o.mapping, "mapping", "", "mapping `file` (JSON) saying how features are made from measurements; empty: the default of the four seed metrics")
	fs.DurationVar(&o.interval, "interval", 0, "Telegraf's agent interval; overrides the mapping's (10s by default), and the wait and host TTL then follow it")
	fs.Var(&o.features, "features", "comma-separated `features` to record (default: every feature of the mapping)")
	fs.StringVar(&o.out, "o", "", "output `directory` of the Parquet files, or with --merge the output file; required")
	fs.StringVar(&o.prefix, "prefix", "telegraf", "file name `prefix`: PREFIX-<start time>-<sequence>.parquet")
	fs.IntVar(&o.rollRows, "roll-rows", datasets.DefaultRollingMaxRows, "complete a file after this many rows; -1 for no limit")
	fs.DurationVar(&o.rollEvery, "roll-every", datasets.DefaultRollingMaxAge, "complete a file this long after it was started; -1s for no limit")
	fs.StringVar(&o.deadLetter, "dead-letter", "dagmm.deadletter", "`subject` of the messages with metrics that cannot be decoded; - for none")
	fs.DurationVar(&o.flush, "flush", time.Second, "how often the intervals past their deadline are finalised")
	fs.DurationVar(&o.status, "status", time.Minute, "log the counts this often; 0 for never")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug (also every incomplete interval), info, warn or error")
	merge := fs.Bool("merge", false, "join the Parquet FILES given as arguments into the file -o, for dagmm train")
	printMapping := fs.Bool("print-mapping", false, "print the default mapping file and exit")
	documentEnv(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	switch {
	case *printMapping:
		_, err := env.stdout.Write(ingest.DefaultConfigJSON())
		return err
	case *merge:
		return mergeFiles(env, o.out, fs.Args())
	case fs.NArg() > 0:
		return usagef("unexpected arguments %q (the output directory is given with -o)", fs.Args())
	case o.out == "":
		return usagef("an output directory is required: -o telemetry/")
	case o.flush <= 0:
		return usagef("--flush %v: want a positive duration", o.flush)
	case o.rollRows == 0:
		return usagef("--roll-rows 0: want a positive number, or -1 for no limit")
	case o.rollEvery == 0:
		return usagef("--roll-every 0: want a positive duration, or -1s for no limit")
	}
	level, err := logLevelOf(o.logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level})).With("component", "collect")
	return collect(ctx, env, logger, &o)
}

// mergeFiles joins Parquet or CSV files with the same columns into out.
func mergeFiles(env *cliEnv, out string, inputs []string) error {
	switch {
	case out == "":
		return usagef("an output file is required with --merge: -o training.parquet")
	case len(inputs) == 0:
		return usagef("--merge needs the files to join as arguments")
	}
	tables := make([]*datasets.Table, 0, len(inputs))
	for _, in := range inputs {
		t, err := datasets.ReadFile(in)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	all, err := datasets.Concat(tables...)
	if err != nil {
		return err
	}
	if err := datasets.WriteFile(out, all); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s: %d rows from %d files\n", out, all.Len(), len(inputs))
	return nil
}

// collector is a running dagmm collect: NATS in, Parquet out.
type collector struct {
	log        *slog.Logger
	o          *collectOptions
	asm        *ingest.Assembler
	rw         *datasets.RollingWriter
	conn       *natsconn.Conn     // redials when the client closes a connection
	sub        *nats.Subscription // of the connection in use
	pub        natsio.Publisher   // dead letters, on the connection in use
	hosts      sync.Map           // host names seen, for the summary
	nhosts     atomic.Int64
	vectors    atomic.Int64
	deadLetter atomic.Int64
	failure    atomic.Pointer[error] // the first write failure
	fail       context.CancelFunc
}

// collect runs until ctx is cancelled or writing fails.
func collect(ctx context.Context, env *cliEnv, logger *slog.Logger, o *collectOptions) error {
	mapping, err := loadMapping(o.mapping, o.interval)
	if err != nil {
		return err
	}
	features := []string(o.features)
	if len(features) == 0 {
		for _, f := range mapping.Features {
			features = append(features, f.Name)
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	c := &collector{log: logger, o: o}
	c.asm, err = ingest.NewAssembler(mapping, features, ingest.WithIncomplete(c.incomplete))
	if err != nil {
		return err
	}
	c.rw, err = datasets.NewRollingWriter(datasets.RollingConfig{
		Dir: o.out, Prefix: o.prefix, Features: features, MaxRows: o.rollRows, MaxAge: o.rollEvery,
		OnRoll: func(path string, rows int) { logger.Info("file written", "path", path, "rows", rows) },
	})
	if err != nil {
		return err
	}

	// NATS: the user's, or an embedded server.
	url := o.natsURL
	opts := []nats.Option{
		nats.Name("dagmm-collect"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { logger.Warn("nats error", "err", err) }),
	}
	if url == "" {
		if o.auth.Set() {
			return usagef("the NATS credentials and TLS flags are for a server given with --nats-url, not the embedded one")
		}
		srv, err := natsio.StartEmbedded(natsio.EmbeddedOptions{
			Name: "dagmm-collect", Host: o.natsHost, Port: o.natsPort, MaxPayload: 8 << 20,
			PortHint: "choose another with --nats-port, or -1 for any",
		})
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		url = srv.URL()
		opts = append(opts, srv.InProcess())
	} else {
		auth, err := o.auth.Options()
		if err != nil {
			return err
		}
		opts = append(opts, auth...)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.fail = cancel
	// Reconnects without limit, and a new connection, subscribed again,
	// when the client closes one.
	c.conn, err = natsconn.Dial(natsconn.Options{URL: url, NATS: opts, Setup: c.subscribe, Log: logger})
	if err != nil {
		return err
	}
	defer c.conn.Close()
	logger.Info("collecting", "nats", url, "subject", o.subject, "format", o.format, "interval", mapping.Interval,
		"features", strings.Join(features, ","), "dir", o.out, "roll_rows", o.rollRows, "roll_every", o.rollEvery)

	// The flush loop: intervals past their deadline, files past their age.
	var wg sync.WaitGroup
	stopFlush := make(chan struct{})
	wg.Go(func() { c.flushLoop(stopFlush) })

	<-runCtx.Done()
	// Stop taking messages, finish those delivered, then finalise every
	// open interval and complete the last file.
	var errs []error
	c.conn.Stop() // no new connection, so c.sub is the last
	if err := natsio.Drain(10*time.Second, []*nats.Subscription{c.sub}, nil); err != nil {
		errs = append(errs, err)
	}
	close(stopFlush)
	wg.Wait()
	c.write(c.asm.Drain())
	if err := c.rw.Close(); err != nil && c.failure.Load() == nil {
		errs = append(errs, err)
	}
	if err := c.conn.Drain(10 * time.Second); err != nil {
		logger.Warn("nats connection not drained", "err", err)
	}
	if p := c.failure.Load(); p != nil {
		errs = append([]error{*p}, errs...)
	}
	st := c.asm.Stats()
	files := c.rw.Files()
	fmt.Fprintf(env.stdout, "collected %d vectors from %d hosts into %d files in %s (%d intervals incomplete, %d measurements late, %d dead letters)\n",
		c.vectors.Load(), c.nhosts.Load(), len(files), o.out, st.Incomplete, st.Late, c.deadLetter.Load())
	for _, f := range files {
		fmt.Fprintln(env.stdout, f)
	}
	return errors.Join(errs...)
}

// subscribe subscribes on a new connection (the first, or one dialled
// after the client closed the previous). One subscription: its messages
// are assembled one at a time, in order, so that each host's counters are
// seen in order.
func (c *collector) subscribe(nc *nats.Conn) error {
	sub, err := natsio.Subscribe(nc, c.o.subject, "", natsio.OrderedLimits(), c.handle)
	if err != nil {
		return err
	}
	link, err := natsio.NewLink(nc, false)
	if err != nil {
		return err
	}
	c.pub.SetLink(link)
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe %s: %w", c.o.subject, err)
	}
	c.sub = sub
	return nil
}

// handle assembles one message and records the vectors it completed.
func (c *collector) handle(m *nats.Msg) {
	vs, err := c.asm.AddMessage(m.Data, c.o.format, time.Now())
	if err != nil {
		c.deadLetter.Add(1)
		c.log.Debug("telegraf message with bad metrics", "subject", m.Subject, "err", err)
		if c.o.deadLetter != "-" {
			dl := natsconn.DeadLetter(c.o.deadLetter, m.Data, c.pub.MaxPayload(), m.Subject, "decode", err)
			if perr := c.pub.PublishMsg(dl, ""); perr != nil {
				c.log.Warn("dead letter not published", "err", perr)
			}
		}
	}
	c.write(vs)
}

// flushLoop finalises the intervals past their deadline, completes files
// past their age and logs the counts, until stop is closed.
func (c *collector) flushLoop(stop <-chan struct{}) {
	tick := time.NewTicker(c.o.flush)
	defer tick.Stop()
	var status <-chan time.Time
	if c.o.status > 0 {
		st := time.NewTicker(c.o.status)
		defer st.Stop()
		status = st.C
	}
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			c.write(c.asm.Flush(now))
			if err := c.rw.Tick(now); err != nil {
				c.failed(err)
			}
		case <-status:
			s := c.asm.Stats()
			total, pending := c.rw.Rows()
			c.log.Info("status", "vectors", total, "in_open_file", pending, "files", len(c.rw.Files()), "hosts", s.Hosts,
				"measurements", s.Measurements, "incomplete", s.Incomplete, "late", s.Late, "dead_letters", c.deadLetter.Load())
		}
	}
}

// write records vectors; a failure to write stops the collection.
func (c *collector) write(vs []ingest.Vector) {
	for _, v := range vs {
		if err := c.rw.Write(v.TS, v.Host, v.Values); err != nil {
			c.failed(err)
			return
		}
		c.vectors.Add(1)
		if _, seen := c.hosts.LoadOrStore(v.Host, true); !seen {
			c.nhosts.Add(1)
		}
	}
}

// failed records the first failure and stops the collection.
func (c *collector) failed(err error) {
	if c.failure.CompareAndSwap(nil, &err) {
		c.log.Error("recording failed: stopping", "err", err)
		c.fail()
	}
}

// incomplete logs an interval finalised without a vector, at debug level.
// It runs with the assembler locked.
func (c *collector) incomplete(inc ingest.Incomplete) {
	if !c.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	parts := make([]string, len(inc.Missing))
	for i, m := range inc.Missing {
		parts[i] = m.Feature + ": " + m.Reason
	}
	c.log.Debug("interval incomplete", "host", inc.Host, "ts", inc.TS, "missing", strings.Join(parts, "; "))
}
