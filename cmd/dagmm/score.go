package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

func runScore(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "score", "[flags] --model MODEL -o OUT INPUT",
		`Score reads a Parquet or CSV file, scores every row with the model, and
writes the same rows to OUT with more columns: energy (higher is more
unusual), score (for a model with a window: the larger of the energy and the
mean energy of the host's last samples, the rows being each host's samples
in time order; a host's first rows use the rows seen so far), anomaly (score
above the model's threshold), severity (0-100: 50 at the threshold, each 10
points above it a ten times rarer score) and band
(normal, low, medium, high, critical), and for anomalies explain_method and
explanation: a JSON array of the features ranked by their share of the
anomaly, each with its actual and expected value — the same explanation the
service gives over HTTP and NATS. The input must
have a numeric column for each of the model's features, by name; other
columns are carried through unchanged. A column the model recorded as
constant in training may be present: a row whose value differs from the
training constant is an anomaly, and its explanation names that column first. A summary with the most unusual rows
and the feature each one's reconstruction error points to goes to stdout.`,
		`  dagmm score --model model.json -o scored.parquet metrics.parquet
  dagmm score --model model.json --top 10 -o scored.csv metrics.csv`)
	modelPath := fs.String("model", "", "model `file` written by dagmm train; required")
	out := fs.String("o", "", "output `file` (.parquet or .csv); required")
	top := fs.Int("top", 5, "list this many of the highest-energy rows in the summary")
	methodName := fs.String("explain", "", "explanation `method`: "+methodList()+" (default: "+defaultMethodHelp()+")")
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
	method, err := model.ParseMethod(*methodName)
	if err != nil {
		return usagef("--explain: %v", err)
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
	x, err := modelMatrix(t, m, in, *modelPath)
	if err != nil {
		return err
	}
	deps, err := departures(t, m)
	if err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	res, err := scoreAll(ctx, s, x, seriesOf(t), method, deps)
	if err != nil {
		return fmt.Errorf("score %s: %w", in, err)
	}
	if err := addScoreColumns(t, res, s.Window() > 1); err != nil {
		return err
	}
	if err := datasets.WriteFile(*out, t); err != nil {
		return err
	}
	summarize(env.stdout, in, *out, m, t, res, *top)
	return nil
}

// modelMatrix returns the model's features of every row of t, read from the
// file in, as a row-major matrix in the model's feature order.
func modelMatrix(t *datasets.Table, m *model.Model, in, modelPath string) ([]float64, error) {
	if _, err := datasets.SelectFeatures(t, m.Features, nil); err != nil {
		return nil, fmt.Errorf("%s does not fit model %s: %w", in, modelPath, err)
	}
	x, err := datasets.Matrix(t, m.Features)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in, err)
	}
	return x, nil
}

// scored is one row's score, with the explanation of an anomaly copied out
// of its workspace.
type scored struct {
	row      int
	energy   float64
	score    float64
	severity float64
	band     model.Band
	anomaly  bool
	ex       *model.Explanation // nil for a normal row
	// departed holds the constant features the row departs from.
	departed []model.Departure
}

// seriesOf returns each row's series, its host column's value, or nil when
// the file has no host column (then the file is one series).
func seriesOf(t *datasets.Table) []string {
	c, ok := t.Column("host")
	if !ok {
		return nil
	}
	hosts := make([]string, t.Len())
	for i := range hosts {
		hosts[i] = c.Text(i)
	}
	return hosts
}

// scoreAll scores x (row-major, model feature order) on every core and
// explains each anomaly with method (hosts as for [scoreEach]; the zero
// method explains with each host's recent rows where the model's series
// default says so, [model.Scorer.ExplainSeries]). deps, when not nil, holds each row's
// departures from the model's constant features: such a row is an anomaly
// with at least the model's departure severity, and its explanation names
// them first (model.Model.AddDepartures).
func scoreAll(ctx context.Context, s *model.Scorer, x []float64, hosts []string, method model.Method, deps [][]model.Departure) ([]scored, error) {
	m := s.Model()
	depSev := m.DepartureSeverity()
	res := make([]scored, len(x)/s.NumFeatures())
	// Each host's recent rows, for the series explanation (model.MethodRecent).
	useRecent := method == model.MethodRecent || (method == "" && s.DefaultSeriesMethod() == model.MethodRecent)
	recentOf := func(int) *model.Recent { return nil }
	if useRecent {
		recentOf = perHost(hosts, func() *model.Recent { return s.NewRecent(0) })
	}
	err := scoreEach(ctx, s, x, hosts, func(lo int, wss []*model.Workspace, out []model.Result) error {
		for i, r := range out {
			ws, wi := sampleWorkspace(wss, i)
			rec := recentOf(lo + i)
			sc := scored{row: lo + i, energy: r.Energy, score: r.Score, severity: r.Severity, band: r.Band, anomaly: r.Anomaly}
			if deps != nil && len(deps[lo+i]) > 0 {
				sc.departed, sc.anomaly = deps[lo+i], true
				if sc.severity < depSev {
					sc.severity, sc.band = depSev, model.BandOf(depSev)
				}
			}
			if sc.anomaly {
				sc.ex = new(model.Explanation)
				if err := s.ExplainSeries(ws, wi, rec, method, sc.ex); err != nil {
					return fmt.Errorf("explain row %d: %w", lo+i+1, err)
				}
				m.AddDepartures(sc.ex, sc.departed)
			}
			if rec != nil {
				if err := rec.Add(ws, wi); err != nil {
					return fmt.Errorf("row %d: %w", lo+i+1, err)
				}
			}
			res[lo+i] = sc
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// perHost returns a function giving the state of row i's host, made with
// newState on the host's first row: hosts[i] is row i's host (nil: the rows
// are one host's).
func perHost[T any](hosts []string, newState func() T) func(row int) T {
	states := map[string]T{}
	return func(row int) T {
		host := ""
		if hosts != nil {
			host = hosts[row]
		}
		st, ok := states[host]
		if !ok {
			st = newState()
			states[host] = st
		}
		return st
	}
}

// scoreEach scores x (row-major, model feature order) in file order, a
// chunk at a time on every core, and calls visit with each chunk's first
// row, the workspaces that scored it (for [model.Scorer.ExplainParallel])
// and its results. For a model with a window the rows are each host's
// samples in file order (hosts[i] is row i's host; nil: one host), and a
// host's first rows are scored with the window of the rows seen so far.
// dagmm score and dagmm eval score files through it.
func scoreEach(ctx context.Context, s *model.Scorer, x []float64, hosts []string, visit func(lo int, wss []*model.Workspace, out []model.Result) error) error {
	d := s.NumFeatures()
	n := len(x) / d
	wss := make([]*model.Workspace, runtime.GOMAXPROCS(0))
	for i := range wss {
		wss[i] = s.NewWorkspace(model.DefaultBatch)
	}
	chunk := len(wss) * model.DefaultBatch
	out := make([]model.Result, chunk)
	history := perHost(hosts, s.NewHistory)
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+chunk, n)
		if err := s.ScoreParallel(wss, x[lo*d:hi*d], out); err != nil {
			return shiftSample(err, lo)
		}
		if s.Window() > 1 {
			for i := range out[:hi-lo] {
				s.Smooth(history(lo+i), &out[i])
			}
		}
		if err := visit(lo, wss, out[:hi-lo]); err != nil {
			return err
		}
	}
	return nil
}

// featureJSON is one feature of the explanation column, named as in the
// service's events and HTTP results.
type featureJSON struct {
	Feature  string  `json:"feature"`
	Actual   float64 `json:"actual"`
	Expected float64 `json:"expected"`
	Share    float64 `json:"share"`
}

// addScoreColumns appends energy, anomaly, severity, band, explain_method
// and explanation to t.
func addScoreColumns(t *datasets.Table, res []scored, window bool) error {
	n := len(res)
	energy, score, severity := make([]float64, n), make([]float64, n), make([]float64, n)
	anomaly := make([]bool, n)
	band, method, explanation := make([]string, n), make([]string, n), make([]string, n)
	for i, r := range res {
		energy[i], score[i], severity[i], anomaly[i], band[i] = r.energy, r.score, r.severity, r.anomaly, r.band.String()
		if r.ex == nil {
			continue
		}
		fs := make([]featureJSON, len(r.ex.Features))
		for j, c := range r.ex.Features {
			fs[j] = featureJSON{c.Feature, c.Actual, c.Expected, c.Share}
		}
		b, err := json.Marshal(fs)
		if err != nil {
			return fmt.Errorf("row %d: explanation: %w", r.row+1, err)
		}
		method[i], explanation[i] = r.ex.Method.String(), string(b)
	}
	cols := []*datasets.Column{datasets.FloatColumn("energy", energy)}
	if window {
		cols = append(cols, datasets.FloatColumn("score", score))
	}
	cols = append(cols,
		datasets.BoolColumn("anomaly", anomaly),
		datasets.FloatColumn("severity", severity),
		datasets.StringColumn("band", band),
		datasets.StringColumn("explain_method", method),
		datasets.StringColumn("explanation", explanation),
	)
	for _, c := range cols {
		t.Remove(c.Name)
		if err := t.Add(c); err != nil {
			return err
		}
	}
	return nil
}

// defaultMethodHelp says which method explains anomalies when none is
// named, as model.Scorer.DefaultMethod chooses it.
func defaultMethodHelp() string {
	return fmt.Sprintf("%s for a model of at most %d features; for a wider one %s over the host's last %d samples once it has one, %s for its first", model.MethodRepair, model.RepairMaxFeatures, model.MethodRecent, model.RecentWindow, model.MethodRepairGradient)
}

func methodList() string {
	var names []string
	for _, m := range model.Methods() {
		names = append(names, m.String())
	}
	return strings.Join(names, ", ")
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
	flagged, departed := 0, 0
	for _, r := range res {
		if r.anomaly {
			flagged++
		}
		if len(r.departed) > 0 {
			departed++
		}
	}
	why := fmt.Sprintf("above threshold %.4g", m.Calibration.Threshold)
	if departed > 0 {
		why += fmt.Sprintf(" or departing from a feature constant in training (%d rows)", departed)
	}
	fmt.Fprintf(w, "scored %d rows of %s: %d anomalies (%.2f%%) %s; wrote %s\n",
		len(res), in, flagged, 100*float64(flagged)/float64(max(len(res), 1)), why, out)
	byEnergy := slices.Clone(res)
	slices.SortStableFunc(byEnergy, func(a, b scored) int {
		return cmp.Or(cmp.Compare(len(b.departed), len(a.departed)), cmp.Compare(b.energy, a.energy))
	})
	for _, r := range byEnergy[:min(top, len(byEnergy))] {
		if !r.anomaly {
			break
		}
		fmt.Fprintf(w, "  row %d%s: energy %.4g, severity %.0f (%s) — %s\n", r.row+1, rowLabel(t, r.row), r.energy, r.severity, r.band, explain(r))
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

// departures reads the model's constant features from t where t has them
// and returns each row's departures from their training value, or nil when
// t has none of them. A constant feature's column must be numeric; a
// missing value is no departure.
func departures(t *datasets.Table, m *model.Model) ([][]model.Departure, error) {
	cols := make([]*datasets.Column, len(m.Constant))
	found := false
	for i, c := range m.Constant {
		col, ok := t.Column(c.Name)
		if !ok {
			continue
		}
		if !col.Type.Numeric() {
			return nil, fmt.Errorf("column %q holds %v values; the model recorded it as a number constant in training (%v)", c.Name, col.Type, c.Value)
		}
		cols[i], found = col, true
	}
	if !found {
		return nil, nil
	}
	out := make([][]model.Departure, t.Len())
	vals := make([]float64, len(cols))
	for i := range out {
		for j, col := range cols {
			vals[j] = math.NaN()
			if col != nil {
				if v, ok := col.Float64(i); ok {
					vals[j] = v
				}
			}
		}
		out[i] = m.Departures(nil, vals)
	}
	return out, nil
}

// explain reads the top of an explanation as a sentence.
func explain(r scored) string {
	if len(r.departed) > 0 {
		d := r.departed[0]
		return fmt.Sprintf("%s is %.4g, %.4g in every training row (a departure from a constant feature)", d.Name, d.Actual, d.Value)
	}
	ex := r.ex
	if ex == nil || len(ex.Features) == 0 {
		return ""
	}
	c := ex.Top()
	return fmt.Sprintf("%s is %.4g, expected about %.4g (%.0f%% of the anomaly, by %s)", c.Feature, c.Actual, c.Expected, 100*c.Share, ex.Method)
}

// sampleWorkspace returns the workspace of wss that scored sample i of the
// last ScoreParallel call, and the sample's index in it.
func sampleWorkspace(wss []*model.Workspace, i int) (*model.Workspace, int) {
	for _, ws := range wss {
		if i < ws.Len() {
			return ws, i
		}
		i -= ws.Len()
	}
	return nil, i
}
