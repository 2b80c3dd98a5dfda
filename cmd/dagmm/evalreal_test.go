package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/model"
)

// realEvalCmd runs dagmm eval in-process and returns its output and error.
func realEvalCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = runEval(context.Background(), newCLIEnv(&out, &errOut), args)
	return out.String(), errOut.String(), err
}

func TestFindPairs(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b-train.csv", "b-test.csv", "a-train.parquet", "a-test.parquet", "a-interpretation.txt",
		"notes.txt", "c-test.parquet", "d-train.json"} {
		writeFile(t, dir, f, "x")
	}
	if err := os.Mkdir(filepath.Join(dir, "e-train.parquet"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := findPairs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []realPair{
		{Name: "a", Train: filepath.Join(dir, "a-train.parquet"), Test: filepath.Join(dir, "a-test.parquet"), Interpretation: filepath.Join(dir, "a-interpretation.txt")},
		{Name: "b", Train: filepath.Join(dir, "b-train.csv"), Test: filepath.Join(dir, "b-test.csv")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("findPairs = %+v\nwant %+v", got, want)
	}

	writeFile(t, dir, "f-train.parquet", "x")
	if _, err := findPairs(dir); err == nil || !strings.Contains(err.Error(), "f-train.parquet has no test file") {
		t.Errorf("a training file alone: err = %v, want one naming it", err)
	}
	if _, err := findPairs(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no NAME-train.parquet") {
		t.Errorf("an empty directory: err = %v", err)
	}
}

// realPairFiles writes NAME-train.parquet, NAME-test.parquet and
// NAME-interpretation.txt into dir: six metrics, f05 constant, the others
// near a line in f00; the test file has three anomalous segments, each
// breaking named metrics, and the interpretation file names them (1-based).
func realPairFiles(t *testing.T, dir, name string) (anomalies int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	const d = 6
	rows := func(n int, broken func(i int) []int) *datasets.Table {
		cols := make([][]float64, d)
		labels := make([]int64, n)
		for i := range n {
			u := rng.Float64()
			v := []float64{u, 0.5*u + 0.2, 1 - u, 0.3 + 0.4*u, 0.8 - 0.6*u, 0}
			for j := range d - 1 {
				v[j] += 0.01 * rng.NormFloat64()
			}
			if b := broken(i); b != nil {
				labels[i] = 1
				for _, j := range b {
					v[j] += 2
				}
			}
			for j := range d {
				cols[j] = append(cols[j], v[j])
			}
		}
		var cs []*datasets.Column
		for j := range d {
			cs = append(cs, datasets.FloatColumn(fmt.Sprintf("f%02d", j), cols[j]))
		}
		tb, err := datasets.NewTable(append(cs, datasets.IntColumn("label", labels))...)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	segments := []struct {
		start, end int
		dims       []int // 0-based
	}{{100, 110, []int{1}}, {200, 206, []int{2, 3}}, {300, 304, []int{4}}}
	train := rows(600, func(int) []int { return nil })
	test := rows(400, func(i int) []int {
		for _, s := range segments {
			if i >= s.start && i < s.end {
				return s.dims
			}
		}
		return nil
	})
	var interp strings.Builder
	for _, s := range segments {
		var dims []string
		for _, j := range s.dims {
			dims = append(dims, fmt.Sprint(j+1))
		}
		fmt.Fprintf(&interp, "%d-%d:%s\n", s.start, s.end, strings.Join(dims, ","))
		anomalies += s.end - s.start
	}
	for f, tb := range map[string]*datasets.Table{"train": train, "test": test} {
		if err := datasets.WriteFile(filepath.Join(dir, name+"-"+f+".parquet"), tb); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, name+"-interpretation.txt", interp.String())
	return anomalies
}

func TestEvalRealEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 2 small networks")
	}
	dir := t.TempDir()
	anomalies := realPairFiles(t, dir, "m1")
	out := t.TempDir()
	jsonPath, mdPath := filepath.Join(out, "real.json"), filepath.Join(out, "real.md")
	stdout, stderr, err := realEvalCmd(t, "--seeds", "2", "--epochs", "5", "--json", jsonPath, "--markdown", mdPath, dir)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	for _, want := range []string{"m1", "mean", "dagmm", "kNN (k=5)", "PA best F1", "HitRate@150%", "(default for a series)", "(default for one sample)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	var rep realReport
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Machines) != 1 || !slices.Equal(rep.Seeds, []uint64{1, 2}) {
		t.Fatalf("machines %d, seeds %v; want 1 and [1 2]", len(rep.Machines), rep.Seeds)
	}
	m := rep.Machines[0]
	if m.TrainRows != 600 || m.TestRows != 400 || m.Anomalies != anomalies || m.Features != 5 ||
		!slices.Equal(m.LeftOut, []string{"f05"}) || m.Explained != anomalies || m.ExplainedOf != anomalies {
		t.Errorf("machine: %+v", m)
	}
	var names []string
	for _, d := range m.Detectors {
		names = append(names, d.Name)
	}
	if want := []string{"dagmm", "PCA (3 components)", "kNN (k=5)", "PCA over 5 rows (3 components)"}; !slices.Equal(names, want) {
		t.Fatalf("detectors %v, want %v", names, want)
	}
	if n := len(m.Detectors[0].Runs); n != 2 {
		t.Errorf("dagmm has %d runs, want one per seed", n)
	}
	// The anomalies are 2 off a line drawn with noise 0.01: every baseline
	// separates them, and point adjustment never lowers a best F1.
	for _, d := range m.Detectors {
		for _, f := range d.Runs {
			for _, v := range []float64{f.AUROC, f.AUPRC, f.F1, f.BestF1, f.PAF1, f.PABestF1, f.Flagged} {
				if !(v >= 0 && v <= 1+1e-12) { // AUPRC sums to 1 within rounding
					t.Errorf("%s: a figure %v outside [0, 1]: %+v", d.Name, v, f)
				}
			}
			if f.PABestF1 < f.BestF1-1e-12 {
				t.Errorf("%s: point-adjusted best F1 %v below the point-wise %v", d.Name, f.PABestF1, f.BestF1)
			}
		}
		if d.Name != "dagmm" && d.Summary.AUROC.Mean < 0.95 {
			t.Errorf("%s: AUROC %v on obvious anomalies, want ≥ 0.95", d.Name, d.Summary.AUROC.Mean)
		}
	}
	// The mean over one machine is that machine's figures.
	if rep.Detectors[1].Summary.AUROC != m.Detectors[1].Summary.AUROC {
		t.Errorf("mean PCA AUROC %v, machine's %v", rep.Detectors[1].Summary.AUROC, m.Detectors[1].Summary.AUROC)
	}
	var zs *realExplainer
	for i, e := range m.Explainers {
		if len(e.At150) == 0 || e.Mean150.Mean < e.Mean100.Mean-1e-12 {
			t.Errorf("%s: HitRate@150%% %v below @100%% %v", e.Name, e.Mean150, e.Mean100)
		}
		if strings.HasPrefix(e.Name, "absolute z-score") {
			zs = &m.Explainers[i]
		}
	}
	if want := len(model.Methods()) + 3; len(m.Explainers) != want || zs == nil {
		t.Fatalf("explainers: %+v, want %d methods, recent with history and 2 baselines", m.Explainers, want-3)
	}
	// A broken metric is at least 1.5 from its mean, 5 sds of a uniform
	// spread over [0, 1], no other above 1.75 sds: the z-score ranks them first.
	if zs.Mean100.Mean != 1 {
		t.Errorf("z-score HitRate@100%% = %v, want 1", zs.Mean100.Mean)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Mean over the 1 machines", "### m1", "| dagmm |", "left out, constant in training: f05"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestEvalRealUsage(t *testing.T) {
	dir := t.TempDir()
	realPairFiles(t, dir, "m1")
	train, test := filepath.Join(dir, "m1-train.parquet"), filepath.Join(dir, "m1-test.parquet")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"paper flags with --train", []string{"--train", train, "--runs", "2", test}, "--runs: only for the paper's protocol"},
		{"paper flags with a directory", []string{"--untrained", dir}, "--untrained: only for the paper's protocol"},
		{"seeds on one file", []string{"--seeds", "2", test}, "--seeds: only for pre-split data"},
		{"no seeds", []string{"--seeds", "0", dir}, "--seeds 0"},
		{"interpretation with a directory", []string{"--interpretation", "x.txt", dir}, "--interpretation: only with --train"},
		{"bad interpretation", []string{"--epochs", "1", "--train", train, "--interpretation", writeFile(t, t.TempDir(), "i.txt", "1-5:2\n9:3\n"), test}, "line 2"},
		{"interpretation beyond the file", []string{"--epochs", "1", "--train", train, "--interpretation", writeFile(t, t.TempDir(), "i.txt", "390-420:2\n"), test}, "ends beyond the 400 rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := realEvalCmd(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestEvalRealSMD runs the evaluation on one machine of the shared Server
// Machine Dataset, briefly, when it is there.
func TestEvalRealSMD(t *testing.T) {
	const dir = "../../../shared/datasets/smd"
	train := filepath.Join(dir, "smd-2-8-train.parquet")
	if _, err := os.Stat(train); err != nil {
		t.Skipf("the Server Machine Dataset is not in %s: %v", dir, err)
	}
	if testing.Short() {
		t.Skip("kNN over 23,700 rows")
	}
	stdout, stderr, err := realEvalCmd(t, "--seeds", "1", "--epochs", "1", "--explain-rows", "20", "--train", train,
		"--interpretation", filepath.Join(dir, "smd-2-8-interpretation.txt"), filepath.Join(dir, "smd-2-8-test.parquet"))
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "20 of ") {
		t.Errorf("table:\n%s", stdout)
	}
}
