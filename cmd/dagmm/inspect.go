package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/dagmm/dagmm/model"
)

func runInspect(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "inspect", "[flags] MODEL",
		`Inspect loads a model file, validates it, and prints its metadata: features
and their normalisation, architecture, mixture, threshold and training
provenance. With --json it prints the whole artifact as JSON.`,
		`  dagmm inspect model.json
  dagmm inspect --json model.json | jq .calibration`)
	asJSON := fs.Bool("json", false, "print the whole model as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one model file, got %d arguments", fs.NArg())
	}
	m, err := model.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	describeModel(env.stdout, fs.Arg(0), m)
	return nil
}

func describeModel(w io.Writer, path string, m *model.Model) {
	p := m.Provenance
	fmt.Fprintf(w, "model:        %s (format version %d)\n", path, model.FormatVersion)
	fmt.Fprintf(w, "features:     %d\n", len(m.Features))
	for i, f := range m.Features {
		t := m.Norm[i]
		fmt.Fprintf(w, "  %-20s %-7s offset %.6g scale %.6g", f, t.Kind, t.Offset, t.Scale)
		if t.Spread > 0 {
			fmt.Fprintf(w, " spread %.6g", t.Spread)
		}
		fmt.Fprintln(w)
	}
	if len(m.Constant) > 0 {
		fmt.Fprintf(w, "constant:     %d (left out of the network; a sample departing from one is an anomaly)\n", len(m.Constant))
		for _, c := range m.Constant {
			fmt.Fprintf(w, "  %-20s %.6g in every training row\n", c.Name, c.Value)
		}
	}
	fmt.Fprintf(w, "compression:  %s (code size %d)\n", layerSizes(m.Encoder, m.Decoder), m.CodeSize())
	fmt.Fprintf(w, "estimation:   %s\n", layerSizes(m.Estimator, nil))
	fmt.Fprintf(w, "mixture:      K=%d over z of dimension %d, phi %s\n", m.GMM.K, m.GMM.Dim, floats(m.GMM.Phi))
	if p.ComponentsDropped > 0 {
		fmt.Fprintf(w, "              %d component(s) dropped after training, weight below %g\n", p.ComponentsDropped, p.MinComponentWeight)
	}
	c := m.Calibration
	fmt.Fprintf(w, "threshold:    %.6g (%gth percentile of the training energies; median %.6g)\n", c.Threshold, c.Percentile, c.Quantiles[50])
	fmt.Fprintf(w, "trained on:   %s (sha256 %s)\n", orDash(p.Input), orDash(p.InputSHA256))
	fmt.Fprintf(w, "rows:         %d used, %d excluded by events\n", p.RowsUsed, p.RowsExcluded)
	fmt.Fprintf(w, "training:     %d epochs, batch %d, lr %g, lambda1 %g, lambda2 %g, dropout %g, jitter %g, %s, seed %d\n",
		p.Epochs, p.BatchSize, p.LearningRate, p.Lambda1, p.Lambda2, p.Dropout, p.Jitter, p.DType, p.Seed)
	if n := len(p.Losses); n > 0 {
		fmt.Fprintf(w, "loss:         %.6g (first epoch) -> %.6g (last)\n", p.Losses[0], p.Losses[n-1])
	}
	fmt.Fprintf(w, "built by:     dagmm %s\n", p.ProjectVersion)
}

func layerSizes(layers, mirror []model.Layer) string {
	if len(layers) == 0 {
		return "-"
	}
	parts := []string{fmt.Sprint(layers[0].In)}
	for _, l := range layers {
		parts = append(parts, fmt.Sprint(l.Out))
	}
	s := strings.Join(parts, "-")
	if len(mirror) > 0 {
		s += " and mirror"
	}
	return s
}

func floats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.3g", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
