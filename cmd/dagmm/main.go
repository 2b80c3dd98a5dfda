// Command dagmm trains DAGMM anomaly detectors on host metrics, scores samples
// with them and serves the scores.
//
// Usage:
//
//	dagmm <command> [flags]
//
// Run "dagmm help" for the list of commands and "dagmm <command> --help" for
// the flags and examples of each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
)

// command is one subcommand of the dagmm binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

func commands() []command {
	return []command{
		{"gen", "generate the seed's synthetic host metrics (Parquet or CSV)", runGen},
		{"collect", "record the live metrics of a fleet running Telegraf (NATS) to Parquet files, for train", runCollect},
		{"prom", "pull training data from Prometheus (query_range); print its recording rules", runProm},
		{"train", "train a DAGMM model on a Parquet or CSV file", runTrain},
		{"score", "score a Parquet or CSV file with a model", runScore},
		{"inspect", "print a model's metadata", runInspect},
		{"models", "list, show, roll back and publish the fleet's per-host models in the NATS registry", runModels},
		{"eval", "the DAGMM paper's protocol on a labelled benchmark file, over several seeds", runEval},
		{"serve", "score live metrics from NATS and HTTP", runServe},
		{"trainer", "train a model per host from the NATS history, on the fleet's training jobs", runTrainer},
		{"bench", "load-test the service (NATS and HTTP) and print throughput, latency and loss", runBench},
		{"demo", "run the main job end to end on generated data", runDemo},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code:
// 0 on success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := newCLIEnv(stdout, stderr)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "dagmm %s: %v\nRun 'dagmm %s --help' for usage.\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "dagmm %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "dagmm: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "dagmm finds anomalies in host metrics with DAGMM (Deep Autoencoding Gaussian Mixture Model).")
	fmt.Fprintln(w, "\nUsage:\n  dagmm <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'dagmm <command> --help' for a command's flags and examples.")
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "version", "", "Version prints the version of this dagmm build.", "  dagmm version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "dagmm %s (model format %d)\n", buildinfo.String(), model.FormatVersion)
	return nil
}
