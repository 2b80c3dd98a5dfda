package main

import (
	"context"
	"fmt"

	"github.com/dagmm/dagmm/datasets"
)

func runGen(ctx context.Context, env *cliEnv, args []string) error {
	cfg := datasets.DefaultGenConfig()
	fs := newFlagSet(env, "gen", "[flags] -o FILE",
		`Gen writes the seed's experiment: N samples of four correlated host metrics,
cpu_usage (%), mem_usage (%), disk_busy (%) and net_in_bps (bits/s), with a
few injected anomalies that break their correlation. The file also holds the
columns timestamp, host, label (1 for an injected anomaly) and cause (the
feature or features the anomaly broke, joined with "+"). The format follows
the extension: .parquet or .csv.`,
		`  dagmm gen -o metrics.parquet
  dagmm gen -n 5000 --anomalies 20 --max-broken 2 --seed 7 -o metrics.csv`)
	out := fs.String("o", "", "output `file` (.parquet or .csv); required")
	fs.IntVar(&cfg.N, "n", cfg.N, "number of samples, anomalies included")
	fs.IntVar(&cfg.Anomalies, "anomalies", cfg.Anomalies, "number of injected anomalies")
	fs.IntVar(&cfg.MinBroken, "min-broken", cfg.MinBroken, "fewest features an anomaly breaks (1-3)")
	fs.IntVar(&cfg.MaxBroken, "max-broken", cfg.MaxBroken, "most features an anomaly breaks (1-3); anomalies cycle from min to max")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed: the same seed writes the same file")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "value of the host column")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("an output file is required: -o metrics.parquet")
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
