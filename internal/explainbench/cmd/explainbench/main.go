// Command explainbench measures the explanation methods of package model on
// generated data with known causes and prints the figures as Markdown (see
// package explainbench).
//
//	go run ./internal/explainbench/cmd/explainbench [-seeds 5] [-first 1] [-methods repair,search]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/dagmm/dagmm/internal/explainbench"
	"github.com/dagmm/dagmm/model"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "explainbench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := explainbench.DefaultConfig()
	seeds := flag.Int("seeds", len(cfg.Seeds), "number of seeds")
	first := flag.Uint64("first", 1, "first seed: the run uses first, first+1, ...")
	methods := flag.String("methods", "", "comma-separated explanation methods (default: all)")
	flag.IntVar(&cfg.TestAnomalies, "anomalies", cfg.TestAnomalies, "injected anomalies per test file")
	flag.IntVar(&cfg.Train.Epochs, "epochs", cfg.Train.Epochs, "training epochs")
	flag.Parse()
	cfg.Seeds = cfg.Seeds[:0]
	for i := range *seeds {
		cfg.Seeds = append(cfg.Seeds, *first+uint64(i))
	}
	if *methods != "" {
		cfg.Methods = nil
		for _, name := range strings.Split(*methods, ",") {
			m, err := model.ParseMethod(name)
			if err != nil {
				return err
			}
			cfg.Methods = append(cfg.Methods, m)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rep, err := explainbench.Run(ctx, cfg, func(rf explainbench.RunFigures) {
		logger.Info("seed done", "seed", rf.Seed, "flagged", rf.Flagged, "injected", rf.Injected, "false_alarms", rf.FalseAlarms)
	})
	if err != nil {
		return err
	}
	return rep.Markdown(os.Stdout)
}
