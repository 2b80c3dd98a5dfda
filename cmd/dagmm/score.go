package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

func runScore(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "score", "[flags] --model MODEL -o OUT INPUT",
		`Score reads a Parquet or CSV file, scores every row with the model, and
writes the same rows to OUT with two more columns: energy (higher is more
unusual) and anomaly (energy above the model's threshold). The input must
have a numeric column for each of the model's features, by name; other
columns are carried through unchanged. A summary with the most unusual rows
and the feature each one's reconstruction error points to goes to stdout.`,
		`  dagmm score --model model.json -o scored.parquet metrics.parquet
  dagmm score --model model.json --top 10 -o scored.csv metrics.csv`)
	modelPath := fs.String("model", "", "model `file` written by dagmm train; required")
	out := fs.String("o", "", "output `file` (.parquet or .csv); required")
	top := fs.Int("top", 5, "list this many of the highest-energy rows in the summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("a model is required: --model model.json")
	case *out == "":
		return usagef("an output file is required: -o scored.parquet")
	case fs.NArg() != 1:
		return usagef("want exactly one input file, got %d arguments", fs.NArg())
	}
	m, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	s, err := model.NewScorer(m)
	if err != nil {
		return err
	}
	in := fs.Arg(0)
	t, err := datasets.ReadFile(in)
	if err != nil {
		return err
	}
	if _, err := datasets.SelectFeatures(t, m.Features, nil); err != nil {
		return fmt.Errorf("%s does not fit model %s: %w", in, *modelPath, err)
	}
	x, err := datasets.Matrix(t, m.Features)
	if err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	res, err := scoreAll(ctx, s, x)
	if err != nil {
		return fmt.Errorf("score %s: %w", in, err)
	}
	for _, name := range []string{"energy", "anomaly"} {
		if t.Remove(name) {
			env.log.Warn("input already has a score column; replacing it", "column", name)
		}
	}
	energy := make([]float64, len(res))
	anomaly := make([]bool, len(res))
	for i, r := range res {
		energy[i], anomaly[i] = r.energy, r.anomaly
	}
	if err := t.AddFloats("energy", energy); err != nil {
		return err
	}
	if err := t.AddBools("anomaly", anomaly); err != nil {
		return err
	}
	if err := datasets.WriteFile(*out, t); err != nil {
		return err
	}
	summarize(env.stdout, in, *out, m, t, res, *top)
	return nil
}

// scored is one row's score with its explanation, copied out of a workspace.
type scored struct {
	row      int
	energy   float64
	anomaly  bool
	actual   []float64
	expected []float64
	share    []float64
}

// scoreAll scores x (row-major, model feature order) on every core and keeps
// the explanation of each anomaly.
func scoreAll(ctx context.Context, s *model.Scorer, x []float64) ([]scored, error) {
	d := s.NumFeatures()
	n := len(x) / d
	wss := make([]*model.Workspace, runtime.GOMAXPROCS(0))
	for i := range wss {
		wss[i] = s.NewWorkspace(model.DefaultBatch)
	}
	chunk := len(wss) * model.DefaultBatch
	out := make([]model.Result, chunk)
	res := make([]scored, n)
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+chunk, n)
		if err := s.ScoreParallel(wss, x[lo*d:hi*d], out); err != nil {
			return nil, shiftSample(err, lo)
		}
		for i, r := range out[:hi-lo] {
			sc := scored{row: lo + i, energy: r.Energy, anomaly: r.Anomaly}
			if r.Anomaly {
				sc.actual, sc.expected, sc.share = slices.Clone(r.Actual), slices.Clone(r.Expected), slices.Clone(r.Share)
			}
			res[lo+i] = sc
		}
	}
	return res, nil
}

// shiftSample renumbers an input error's sample index from a chunk to the file.
func shiftSample(err error, offset int) error {
	if ie, ok := err.(*model.InputError); ok && ie.Sample >= 0 {
		c := *ie
		c.Sample += offset
		return &c
	}
	return err
}

func summarize(w io.Writer, in, out string, m *model.Model, t *datasets.Table, res []scored, top int) {
	flagged := 0
	for _, r := range res {
		if r.anomaly {
			flagged++
		}
	}
	fmt.Fprintf(w, "scored %d rows of %s: %d anomalies (%.2f%%) above threshold %.4g; wrote %s\n",
		len(res), in, flagged, 100*float64(flagged)/float64(max(len(res), 1)), m.Calibration.Threshold, out)
	byEnergy := slices.Clone(res)
	slices.SortStableFunc(byEnergy, func(a, b scored) int { return cmp.Compare(b.energy, a.energy) })
	for _, r := range byEnergy[:min(top, len(byEnergy))] {
		if !r.anomaly {
			break
		}
		fmt.Fprintf(w, "  row %d%s: energy %.4g — %s\n", r.row+1, rowLabel(t, r.row), r.energy, explain(m.Features, r))
	}
}

// rowLabel names a row by its host and timestamp columns when the file has them.
func rowLabel(t *datasets.Table, i int) string {
	var parts []string
	for _, name := range []string{"host", "timestamp", "ts", "time"} {
		if c, ok := t.Column(name); ok {
			parts = append(parts, c.Text(i))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " ") + ")"
}

// explain names the feature with the largest share of the reconstruction
// error, with its actual and expected values.
func explain(features []string, r scored) string {
	if len(r.share) == 0 {
		return ""
	}
	j := 0
	for i, v := range r.share {
		if v > r.share[j] {
			j = i
		}
	}
	return fmt.Sprintf("%s is %.4g, expected about %.4g (%.0f%% of the reconstruction error)",
		features[j], r.actual[j], r.expected[j], 100*r.share[j])
}
