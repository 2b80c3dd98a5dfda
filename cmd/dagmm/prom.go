package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/datasets/prom"
)

func runProm(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "pull":
			return runPromPull(ctx, env, args[1:])
		case "rules":
			return runPromRules(env, args[1:])
		}
	}
	fs := newFlagSet(env, "prom", "pull|rules [flags]",
		`Prom works with a Prometheus that scrapes node_exporter.

  dagmm prom pull    pull history through the HTTP API into a training file
  dagmm prom rules   print the recording rules of dagmm's four features

Run 'dagmm prom pull --help' for its flags.`,
		`  dagmm prom pull --url http://prometheus:9090 --since 24h --step 15s -o history.parquet
  dagmm prom rules > /etc/prometheus/dagmm-rules.yaml`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want a subcommand: pull or rules")
	}
	return usagef("unknown subcommand %q: want pull or rules", fs.Arg(0))
}

// promMappingFlags are the flags that choose the node_exporter mapping.
type promMappingFlags struct {
	hostLabel string
	window    time.Duration
}

func (m *promMappingFlags) add(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.StringVar(&m.hostLabel, "host-label", prom.DefaultHostLabel, "`label` naming the host; the features are aggregated by it")
	fs.DurationVar(&m.window, "window", prom.DefaultWindow, "range of the rate() windows (at least four scrape intervals)")
}

func runPromPull(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "prom pull", "--url URL [flags] -o FILE",
		`Pull reads a window of history from Prometheus (query_range) and writes the
training file dagmm collect writes: the columns timestamp, host and the four
features, one row per host and step at which every feature has a value.

The features come from node_exporter's series, aggregated to one series per
host (the label --host-label): cpu_usage (100 - the idle share of the CPUs),
mem_usage (from MemAvailable and MemTotal), disk_busy (the busiest disk's
I/O time, % of wall time) and net_in_bps (bits received per second, summed
over interfaces but loopback and virtual ones); 'dagmm prom rules' prints the
expressions. Ranges longer than 11,000 steps are split into several queries.

With --train MODEL, dagmm train then trains a model on the file; dagmm
train's flags go after --. With --history URL (fleet mode), each host's
latest rows also fill its history in the fleet's history stream, so that
the trainers can train every host at once; -o is then optional.`,
		`  dagmm prom pull --url http://localhost:9090 --since 6h --step 15s -o history.parquet
  dagmm prom pull --url http://localhost:9090 --start 2026-12-01T00:00:00Z --end 2026-12-02T00:00:00Z -o day.parquet --train model.json -- --epochs 100
  dagmm prom pull --url http://localhost:9090 --since 6h --step 15s --history nats://nats:4222`)
	var m promMappingFlags
	m.add(fs)
	url := fs.String("url", "", "base `URL` of the Prometheus server; required")
	since := fs.Duration("since", 6*time.Hour, "pull the last `duration` (ignored with --start)")
	start := fs.String("start", "", "first timestamp, RFC 3339 (default: now - --since)")
	end := fs.String("end", "", "last timestamp, RFC 3339 (default: now)")
	step := fs.Duration("step", 15*time.Second, "time between rows (the scrape interval is a good choice)")
	out := fs.String("o", "", "training `file` to write (.parquet or .csv); required")
	modelOut := fs.String("train", "", "also train a model on the file and write it to `MODEL`")
	var hist promHistory
	hist.addFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *url == "":
		return usagef("--url is required: the Prometheus server, e.g. http://localhost:9090")
	case *out == "" && (hist.natsURL == "" || *modelOut != ""):
		return usagef("an output file is required: -o history.parquet")
	case fs.NArg() != 0 && *modelOut == "":
		return usagef("unexpected arguments %q (dagmm train's flags go after -- with --train)", fs.Args())
	}
	if _, err := datasets.FormatOf(*out); *out != "" && err != nil {
		return usagef("-o %s: %v", *out, err)
	}
	if err := hist.auth.Validate(); err != nil {
		return usagef("%v", err)
	}
	r := prom.Range{Features: prom.NodeExporter(m.hostLabel, m.window), HostLabel: m.hostLabel, Step: *step, End: time.Now().UTC()}
	var err error
	if *end != "" {
		if r.End, err = time.Parse(time.RFC3339, *end); err != nil {
			return usagef("--end %q: want an RFC 3339 timestamp", *end)
		}
	}
	r.Start = r.End.Add(-*since)
	if *start != "" {
		if r.Start, err = time.Parse(time.RFC3339, *start); err != nil {
			return usagef("--start %q: want an RFC 3339 timestamp", *start)
		}
	}
	if err := r.Validate(); err != nil {
		return usagef("%v", err)
	}
	api, err := prom.NewAPI(*url)
	if err != nil {
		return err
	}
	env.log.Info("pulling", "url", *url, "start", r.Start, "end", r.End, "step", r.Step, "queries", len(r.Chunks())*len(r.Features))
	t, err := prom.Pull(ctx, api, r, func(w string) { env.log.Warn("prometheus", "warning", w) })
	if err != nil {
		return err
	}
	if *out != "" {
		if err := datasets.WriteFile(*out, t); err != nil {
			return err
		}
		hosts, _, err := hostGroups(t)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "wrote %s: %d rows, %d hosts, features %v\n", *out, t.Len(), len(hosts), t.Names()[2:])
	}
	if hist.natsURL != "" {
		if err := hist.fill(ctx, env.stdout, t); err != nil {
			return err
		}
	}
	if *modelOut == "" {
		return nil
	}
	return runTrain(ctx, env, append(append([]string{"-o", *modelOut}, fs.Args()...), *out))
}

func runPromRules(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "prom rules", "[flags]",
		`Rules prints a Prometheus rule file with one recording rule per feature
(dagmm:cpu_usage, dagmm:mem_usage, dagmm:disk_busy, dagmm:net_in_bps), the
expressions 'dagmm prom pull' queries. deploy/prometheus/rules.yaml is its
output with the default flags.`,
		`  dagmm prom rules > /etc/prometheus/rules/dagmm.yaml
  dagmm prom rules --host-label node --window 2m`)
	var m promMappingFlags
	m.add(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	_, err := fmt.Fprint(env.stdout, prom.RecordingRules(prom.NodeExporter(m.hostLabel, m.window)))
	return err
}
