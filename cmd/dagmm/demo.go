package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dagmm/dagmm/datasets"
)

func runDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "demo", "[flags]",
		`Demo runs the main job end to end on generated data, with nothing to install:
it generates the seed's experiment (1000 samples of four correlated host
metrics with 2 injected anomalies), trains a model on it, writes the training
report, scores the file and checks that the injected anomalies are flagged.
Then it starts the service on an embedded NATS server, streams fresh samples
with injected anomalies through NATS and through HTTP, and prints each
anomaly event as it arrives with its explanation. Everything it writes goes
to --dir; --keep leaves the service running afterwards (Ctrl-C stops it).

With --fleet it shows a model per host instead, in one process on an
embedded NATS server with JetStream: it generates a fleet (--hosts hosts of
four roles), trains a fleet model that scores every host at first, streams
the hosts' history into the history stream, runs the scheduler and
--trainers trainers that train and publish a model per host to the
registry, and shows the scorer picking them up without restart; then it
streams live samples with anomalies over NATS and prints, per host, the
anomalies injected and flagged, and a contextual anomaly (values normal on
another host) scored on its own host and on the host it imitates. It writes
nothing to --dir.`,
		`  dagmm demo
  dagmm demo --fleet --hosts 12
  dagmm demo --dir /tmp/dagmm-demo --seed 3`)
	dir := fs.String("dir", filepath.Join("out", "demo"), "`directory` for the generated data, the model, its report and the scores")
	seed := fs.Uint64("seed", 1, "seed of the generated data and of the training")
	stream := fs.Int("stream", 500, "normal samples to stream through the service (0 skips the service)")
	keep := fs.Bool("keep", false, "keep the service running after the stream, until interrupted")
	fc := fleetDemoConfig{}
	fleetMode := fs.Bool("fleet", false, "the fleet instead: a model per host trained on NATS JetStream and served without restart (see below)")
	fs.IntVar(&fc.hosts, "hosts", 10, "with --fleet, hosts of the generated fleet")
	fs.IntVar(&fc.rows, "history", 1000, "with --fleet, samples of each host's history (its training window)")
	fs.IntVar(&fc.live, "live", 300, "with --fleet, live samples a host streamed after training")
	fs.IntVar(&fc.epochs, "epochs", 100, "with --fleet, training epochs of every model (dagmm train's default is 200, the study's 1,000)")
	fs.IntVar(&fc.trainers, "trainers", 2, "with --fleet, trainers in the process")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *fleetMode {
		fc.seed = *seed
		return runFleetDemo(ctx, env, fc)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	data := filepath.Join(*dir, "metrics.parquet")
	modelPath := filepath.Join(*dir, "model.json")
	scores := filepath.Join(*dir, "scores.csv")
	s := fmt.Sprint(*seed)
	steps := [][]string{
		{"gen", "--seed", s, "-o", data},
		{"train", "--seed", s, "-o", modelPath, data},
		{"score", "--model", modelPath, "-o", scores, data},
	}
	quiet := env.quiet()
	for _, step := range steps {
		fmt.Fprintf(env.stdout, "\n$ dagmm %s\n", strings.Join(step, " "))
		for _, c := range commands() {
			if c.name == step[0] {
				if err := c.run(ctx, quiet, step[1:]); err != nil {
					return fmt.Errorf("dagmm %s: %w", step[0], err)
				}
			}
		}
	}
	if err := checkDemo(env, scores); err != nil || *stream == 0 {
		return err
	}
	return demoStream(ctx, env, modelPath, *seed, *stream, *keep)
}

// demoStream streams fresh normal samples, with anomalies injected by
// streamDemo, through the service.
func demoStream(ctx context.Context, env *cliEnv, modelPath string, seed uint64, n int, keep bool) error {
	cfg := datasets.DefaultGenConfig()
	cfg.Seed, cfg.N, cfg.Anomalies = seed+1, n, 0
	t, err := datasets.Generate(cfg)
	if err != nil {
		return err
	}
	features := datasets.GenFeatures()
	x, err := datasets.Matrix(t, features)
	if err != nil {
		return err
	}
	d := len(features)
	rows := make([][]float64, t.Len())
	for i := range rows {
		rows[i] = x[i*d : (i+1)*d]
	}
	fmt.Fprintf(env.stdout, "\n$ dagmm serve --model %s   (in-process, embedded NATS; streaming %d samples)\n", modelPath, n)
	_, err = streamDemo(ctx, env, modelPath, rows, features, keep)
	return err
}

// checkDemo reports how the injected anomalies (label 1) were scored.
func checkDemo(env *cliEnv, scores string) error {
	t, err := datasets.ReadFile(scores)
	if err != nil {
		return err
	}
	label, _ := t.Column("label")
	anomaly, _ := t.Column("anomaly")
	if label == nil || anomaly == nil {
		return fmt.Errorf("%s lacks the label or anomaly column", scores)
	}
	var injected, caught, falseAlarms int
	for i := range t.Len() {
		lab, _ := label.Float64(i)
		flag := datasets.Flagged(anomaly, i)
		switch {
		case lab == 1 && flag:
			injected++
			caught++
		case lab == 1:
			injected++
		case flag:
			falseAlarms++
		}
	}
	fmt.Fprintf(env.stdout, "\ndemo: %d of %d injected anomalies flagged; %d of %d normal samples above the threshold\n",
		caught, injected, falseAlarms, t.Len()-injected)
	if caught < injected {
		return fmt.Errorf("demo: only %d of %d injected anomalies were flagged", caught, injected)
	}
	return nil
}
