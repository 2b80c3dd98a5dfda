package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dagmm/dagmm/datasets"
)

func runGen(ctx context.Context, env *cliEnv, args []string) error {
	cfg := datasets.DefaultGenConfig()
	fleet := datasets.DefaultFleetConfig()
	fs := newFlagSet(env, "gen", "[flags] -o FILE",
		`Gen writes the seed's experiment: N samples of four correlated host metrics,
cpu_usage (%), mem_usage (%), disk_busy (%) and net_in_bps (bits/s), with a
few injected anomalies that break their correlation. The file also holds the
columns timestamp, host, label (1 for an injected anomaly) and cause (the
feature or features the anomaly broke, joined with "+"). The format follows
the extension: .parquet or .csv.

With --hosts N it writes a fleet instead: N hosts whose normal behaviour
differs, host i being a database, web, batch or cache host in turn (i mod 4),
each with its own means, scales and correlations of the four metrics. Each
host has --train-rows samples of a training window, then --test-rows of a
test period; -o FILE names two files, FILE-train and FILE-test with FILE's
extension (fleet.parquet: fleet-train.parquet and fleet-test.parquet), the
pair dagmm eval reads. Columns: timestamp, host, role, the four metrics,
label (1 for an injected anomaly), kind (the anomaly's kind), cause and event.
The test period holds --host-anomalies events per host, 1 to 5 samples each,
of three kinds in turn:

  contextual:  the host reports what a healthy host of another role reports
               at that time (a cache looking like a web server): values
               ordinary in the fleet, wrong for this host;
  correlation: one or two of the host's most load-driven metrics take the
               values of a load 0.45 to 0.6 away: each within the host's
               range, the sample inconsistent;
  spike:       one metric 8 to 12 noise deviations above its full-load value.

The training window holds --train-anomalies one-sample anomalies per host,
flagged in the event column (as the existing monitoring would have), which
dagmm train drops. Train one host's model with dagmm train --host NAME.`,
		`  dagmm gen -o metrics.parquet
  dagmm gen -n 5000 --anomalies 20 --max-broken 2 --seed 7 -o metrics.csv
  dagmm gen --hosts 20 --seed 3 -o fleet.parquet    # fleet-train.parquet, fleet-test.parquet
  dagmm train --host db-1 -o db-1.json fleet-train.parquet
  dagmm eval --per-host --train fleet-train.parquet fleet-test.parquet`)
	out := fs.String("o", "", "output `file` (.parquet or .csv); required")
	fs.IntVar(&cfg.N, "n", cfg.N, "number of samples, anomalies included")
	fs.IntVar(&cfg.Anomalies, "anomalies", cfg.Anomalies, "number of injected anomalies")
	fs.IntVar(&cfg.MinBroken, "min-broken", cfg.MinBroken, "fewest features an anomaly breaks (1-3)")
	fs.IntVar(&cfg.MaxBroken, "max-broken", cfg.MaxBroken, "most features an anomaly breaks (1-3); anomalies cycle from min to max")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed: the same seed writes the same file")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "value of the host column")
	fs.IntVar(&fleet.Hosts, "hosts", 0, "write a fleet of `N` hosts (2 or more) that differ in normal behaviour, as a training and a test file")
	fs.IntVar(&fleet.TrainRows, "train-rows", fleet.TrainRows, "with --hosts: samples per host in the training window")
	fs.IntVar(&fleet.TestRows, "test-rows", fleet.TestRows, "with --hosts: samples per host in the test period")
	fs.IntVar(&fleet.Anomalies, "host-anomalies", fleet.Anomalies, "with --hosts: anomalous events per host in the test period (at most test-rows/10)")
	fs.IntVar(&fleet.TrainAnomalies, "train-anomalies", fleet.TrainAnomalies, "with --hosts: anomalies per host in the training window, flagged in the event column (at most train-rows/10)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("an output file is required: -o metrics.parquet")
	}
	if fleet.Hosts != 0 {
		fleet.Seed = cfg.Seed
		return genFleet(env, fs, fleet, *out)
	}
	var fleetOnly []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "train-rows", "test-rows", "host-anomalies", "train-anomalies":
			fleetOnly = append(fleetOnly, "--"+f.Name)
		}
	})
	if len(fleetOnly) > 0 {
		return usagef("%s: only with --hosts", strings.Join(fleetOnly, ", "))
	}
	if cfg.MaxBroken < cfg.MinBroken {
		cfg.MaxBroken = cfg.MinBroken
	}
	t, err := datasets.Generate(cfg)
	if err != nil {
		return err
	}
	if err := datasets.WriteFile(*out, t); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s: %d samples, %d anomalies, features %v\n", *out, t.Len(), cfg.Anomalies, datasets.GenFeatures())
	return nil
}

// genFleet is dagmm gen --hosts: it writes the fleet's training and test
// files beside out.
func genFleet(env *cliEnv, fs *flag.FlagSet, cfg datasets.FleetConfig, out string) error {
	var single []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "n", "anomalies", "min-broken", "max-broken", "host":
			single = append(single, "--"+f.Name)
		}
	})
	if len(single) > 0 {
		return usagef("%s: not with --hosts (see --train-rows, --test-rows, --host-anomalies)", strings.Join(single, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	if _, err := datasets.FormatOf(out); err != nil {
		return usagef("-o %s: %v", out, err)
	}
	f, err := datasets.GenerateFleet(cfg)
	if err != nil {
		return err
	}
	trainPath, testPath := fleetPaths(out)
	if err := datasets.WriteFile(trainPath, f.Train); err != nil {
		return err
	}
	if err := datasets.WriteFile(testPath, f.Test); err != nil {
		return err
	}
	roles := map[string]int{}
	for _, h := range f.Hosts {
		roles[h.Role]++
	}
	var counts []string
	for _, r := range datasets.FleetRoles() {
		counts = append(counts, fmt.Sprintf("%d %s", roles[r], r))
	}
	fmt.Fprintf(env.stdout, "wrote %s (%d samples, %d flagged in event) and %s (%d samples, %d anomalous in %d events): %d hosts (%s), features %v\n",
		trainPath, f.Train.Len(), cfg.Hosts*cfg.TrainAnomalies, testPath, f.Test.Len(), labelled(f.Test), cfg.Hosts*cfg.Anomalies,
		cfg.Hosts, strings.Join(counts, ", "), datasets.GenFeatures())
	return nil
}

// fleetPaths returns the training and test files dagmm gen --hosts writes
// for -o out: out's name with -train and -test before the extension.
func fleetPaths(out string) (trainPath, testPath string) {
	ext := filepath.Ext(out)
	base := strings.TrimSuffix(out, ext)
	return base + "-train" + ext, base + "-test" + ext
}

// labelled returns the number of rows of a generated table labelled 1.
func labelled(t *datasets.Table) int {
	c, _ := t.Column("label")
	n := 0
	for _, v := range c.Ints {
		if v == 1 {
			n++
		}
	}
	return n
}
