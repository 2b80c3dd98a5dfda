// Command dashpic draws docs/img/dashboard.png, the README's picture of
// what the Grafana dashboard (deploy/grafana/dashboard.json) shows: it
// starts a real dagmm serve with the trained four-metric model
// (model/testdata/metrics4.dagmm.json), scores three hosts' samples of
// dagmm gen's metrics with two injected incidents through POST /v1/score,
// scrapes /metrics after each step as Prometheus would, and draws the
// dashboard's main panels from the dagmm_host_* series it read. It is not
// a Grafana screenshot.
//
//	go run ./scripts/dashpic [-model model/testdata/metrics4.dagmm.json] [-o docs/img/dashboard.png]
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/dagmm/dagmm/internal/dashpic"
)

func main() {
	modelPath := flag.String("model", "model/testdata/metrics4.dagmm.json", "the model `file` serve scores with")
	out := flag.String("o", "docs/img/dashboard.png", "the picture `file` (.png or .svg)")
	flag.Parse()
	if err := run(context.Background(), *modelPath, *out); err != nil {
		fmt.Fprintln(os.Stderr, "dashpic:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, modelPath, out string) error {
	s, err := dashpic.Start(ctx, modelPath, nil)
	if err != nil {
		return err
	}
	frames, err := dashpic.DefaultScenario().Run(ctx, s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := dashpic.Draw(out, frames); err != nil {
		return err
	}
	last := frames[len(frames)-1]
	fmt.Printf("%s: %d scrapes of %d hosts\n", out, len(frames), len(last.Hosts))
	for _, h := range slices.Sorted(maps.Keys(last.Hosts)) {
		st := last.Hosts[h]
		fmt.Printf("%s: %v anomalies, latest explained by %q (share %.3f)\n", h, st.Anomalies, st.Feature, st.Share)
	}
	return nil
}
