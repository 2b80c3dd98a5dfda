package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/report"
	"github.com/dagmm/dagmm/model"
)

// metricsTable returns n rows of four correlated metrics plus the columns
// extra adds.
func metricsTable(t *testing.T, n int, extra func(i int) map[string]any) *datasets.Table {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	ts := make([]time.Time, n)
	host := make([]string, n)
	cols := map[string][]float64{"cpu_usage": nil, "mem_usage": nil, "disk_busy": nil, "net_in_bps": nil}
	for i := range n {
		load := rng.Float64()
		ts[i] = time.Date(2026, 11, 24, 0, i, 0, 0, time.UTC)
		host[i] = "web-1"
		cols["cpu_usage"] = append(cols["cpu_usage"], 10+80*load+rng.NormFloat64())
		cols["mem_usage"] = append(cols["mem_usage"], 30+40*load+rng.NormFloat64())
		cols["disk_busy"] = append(cols["disk_busy"], 5+30*load+rng.NormFloat64())
		cols["net_in_bps"] = append(cols["net_in_bps"], 1e5+1e6*load*(1+0.1*rng.NormFloat64()))
	}
	tab, err := datasets.NewTable(datasets.TimeColumn("timestamp", ts), datasets.StringColumn("host", host))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"} {
		if err := tab.AddFloats(name, cols[name]); err != nil {
			t.Fatal(err)
		}
	}
	if extra == nil {
		return tab
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range extra(0) {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		var c *datasets.Column
		switch extra(0)[name].(type) {
		case float64:
			v := make([]float64, n)
			for i := range v {
				v[i] = extra(i)[name].(float64)
			}
			c = datasets.FloatColumn(name, v)
		case int64:
			v := make([]int64, n)
			for i := range v {
				v[i] = extra(i)[name].(int64)
			}
			c = datasets.IntColumn(name, v)
		case string:
			v := make([]string, n)
			for i := range v {
				v[i] = extra(i)[name].(string)
			}
			c = datasets.StringColumn(name, v)
		}
		if err := tab.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return tab
}

func writeTable(t *testing.T, path string, tab *datasets.Table) string {
	t.Helper()
	if err := datasets.WriteFile(path, tab); err != nil {
		t.Fatal(err)
	}
	return path
}

func readSummary(t *testing.T, dir string) report.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var s report.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func reasons(s report.Summary) map[string]string {
	out := make(map[string]string)
	for _, c := range s.Skipped {
		out[c.Name] = c.Reason
	}
	return out
}

// TestTrainConstantColumns: three constant columns, in Parquet and in CSV,
// train with a warning naming them; the model records them; score accepts
// rows carrying them and flags the row where one moved.
func TestTrainConstantColumns(t *testing.T) {
	constant := func(i int) map[string]any {
		return map[string]any{"fan_fail": 0.0, "raid_errors": int64(0), "cores": 8.0}
	}
	for _, ext := range []string{"parquet", "csv"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			data := writeTable(t, filepath.Join(dir, "train."+ext), metricsTable(t, 400, constant))
			mp := filepath.Join(dir, "model.json")
			code, _, errOut := dagmm(t, "train", "--epochs", "5", "-o", mp, data)
			if code != 0 {
				t.Fatalf("train: exit %d:\n%s", code, errOut)
			}
			for _, want := range []string{"level=WARN", "cores=8", "fan_fail=0", "raid_errors=0", "constant in every training row"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			m, err := model.Load(mp)
			if err != nil {
				t.Fatal(err)
			}
			want := []model.ConstantFeature{{Name: "cores", Value: 8}, {Name: "fan_fail", Value: 0}, {Name: "raid_errors", Value: 0}}
			if !slices.Equal(m.Constant, want) || len(m.Features) != 4 {
				t.Errorf("model features %v, constant %v; want the four metrics and %v", m.Features, m.Constant, want)
			}
			rs := reasons(readSummary(t, filepath.Join(dir, "model-report")))
			for _, c := range want {
				if !strings.HasPrefix(rs[c.Name], "constant") {
					t.Errorf("report.json: %s skipped for %q, want constant", c.Name, rs[c.Name])
				}
			}
			if rs["timestamp"] != reasonDefault || rs["host"] != reasonDefault {
				t.Errorf("report.json skipped columns %v", rs)
			}
			if _, out, _ := dagmm(t, "inspect", mp); !strings.Contains(out, "constant:     3") || !strings.Contains(out, "raid_errors") {
				t.Errorf("inspect does not show the constant features:\n%s", out)
			}

			// Score: the same rows, then one where raid_errors moved.
			moved := func(i int) map[string]any {
				c := constant(i)
				if i == 17 {
					c["raid_errors"] = int64(4)
				}
				return c
			}
			scoredFlags := func(tab *datasets.Table) (anomalies []bool, top []string) {
				in := writeTable(t, filepath.Join(dir, "in."+ext), tab)
				out := filepath.Join(dir, "out.parquet")
				if code, _, errOut := dagmm(t, "score", "--model", mp, "-o", out, in); code != 0 {
					t.Fatalf("score: exit %d:\n%s", code, errOut)
				}
				st, err := datasets.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				a, _ := st.Column("anomaly")
				ex, _ := st.Column("explanation")
				for i := range st.Len() {
					var fs []featureJSON
					if s := ex.Strings[i]; s != "" {
						if err := json.Unmarshal([]byte(s), &fs); err != nil {
							t.Fatal(err)
						}
					}
					name := ""
					if len(fs) > 0 {
						name = fs[0].Feature
					}
					top = append(top, name)
				}
				return a.Bools, top
			}
			base, _ := scoredFlags(metricsTable(t, 400, nil))
			same, _ := scoredFlags(metricsTable(t, 400, constant))
			if !slices.Equal(base, same) {
				t.Error("rows carrying the constant columns at their training values score differently from rows without them")
			}
			got, top := scoredFlags(metricsTable(t, 400, moved))
			for i := range got {
				want := base[i] || i == 17
				if got[i] != want {
					t.Errorf("row %d: anomaly %v, want %v", i, got[i], want)
				}
			}
			if top[17] != "raid_errors" {
				t.Errorf("row 17's explanation starts with %q, want raid_errors", top[17])
			}
		})
	}
}

// TestTrainColumnsReported: every run says which columns it uses and which
// it skips, and why; --exclude adds to the default exclusions.
func TestTrainColumnsReported(t *testing.T) {
	words := []string{"eu-west", "eu-north", "us-east"}
	extra := func(i int) map[string]any {
		return map[string]any{"region": words[i%3], "label": int64(i % 2), "ts": int64(1795514400 + 60*i), "spare": float64(i % 7)}
	}
	for _, tc := range []struct {
		name     string
		args     []string
		features []string
		skipped  map[string]string
	}{
		{"defaults", nil, []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps", "spare"},
			map[string]string{"label": reasonDefault, "ts": reasonDefault, "region": reasonNotNumeric + " (string)"}},
		{"exclude adds to the defaults", []string{"--exclude", "spare,disk_busy"}, []string{"cpu_usage", "mem_usage", "net_in_bps"},
			map[string]string{"label": reasonDefault, "ts": reasonDefault, "spare": reasonExclude, "disk_busy": reasonExclude}},
		{"no default exclusions", []string{"--no-default-exclude", "--exclude", "spare"}, []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps", "label", "ts"},
			map[string]string{"spare": reasonExclude, "region": reasonNotNumeric + " (string)"}},
		{"features named", []string{"--features", "cpu_usage,mem_usage"}, []string{"cpu_usage", "mem_usage"},
			map[string]string{"disk_busy": reasonNotChosen, "region": reasonNotChosen}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := writeTable(t, filepath.Join(dir, "train.parquet"), metricsTable(t, 300, extra))
			mp := filepath.Join(dir, "model.json")
			args := append(append([]string{"train", "--epochs", "3", "-o", mp}, tc.args...), data)
			code, _, errOut := dagmm(t, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, errOut)
			}
			m, err := model.Load(mp)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Features, tc.features) {
				t.Errorf("features %v, want %v", m.Features, tc.features)
			}
			rs := reasons(readSummary(t, filepath.Join(dir, "model-report")))
			for name, want := range tc.skipped {
				if rs[name] != want {
					t.Errorf("report.json: %s skipped for %q, want %q", name, rs[name], want)
				}
				if !strings.Contains(errOut, "column="+name) {
					t.Errorf("stderr does not name skipped column %s:\n%s", name, errOut)
				}
			}
			if !strings.Contains(errOut, "features="+strings.Join(tc.features, ",")) {
				t.Errorf("stderr does not list the columns used:\n%s", errOut)
			}
			if strings.HasPrefix(tc.skipped["region"], reasonNotNumeric) && !strings.Contains(errOut, `level=WARN msg="column skipped: not numeric" column=region`) {
				t.Errorf("no warning for the text column:\n%s", errOut)
			}
		})
	}
}

// TestTrainRefusesEarly: bad output paths, a numeric column holding text
// and a file of constant columns fail before any training, naming the problem.
func TestTrainRefusesEarly(t *testing.T) {
	dir := t.TempDir()
	good := writeTable(t, filepath.Join(dir, "good.parquet"), metricsTable(t, 200, nil))
	numbersAsText := writeTable(t, filepath.Join(dir, "text.parquet"), metricsTable(t, 200, func(i int) map[string]any {
		v := "12.5"
		if i == 9 {
			v = "n/a"
		}
		return map[string]any{"swap_used": v}
	}))
	allConstant := writeFile(t, dir, "const.csv", "a,b\n1,2\n1,2\n1,2\n")
	aFile := writeFile(t, dir, "file", "x")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing model directory", []string{"-o", filepath.Join(dir, "no", "such", "m.json"), good}, "does not exist"},
		{"model path is a directory", []string{"-o", dir, good}, "is a directory"},
		{"report under a file", []string{"-o", filepath.Join(dir, "m.json"), "--report", filepath.Join(aFile, "rep"), good}, "not a directory"},
		{"numbers held as text", []string{"-o", filepath.Join(dir, "m.json"), numbersAsText}, `column "swap_used" holds text, but 199 of its 200 values are numbers: row 10 is "n/a"`},
		{"every column constant", []string{"-o", filepath.Join(dir, "m.json"), allConstant}, "every feature column is constant (a, b)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := dagmm(t, append([]string{"train", "--epochs", "2"}, tc.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
			if strings.Contains(errOut, "msg=epoch") || strings.Contains(errOut, "msg=training") {
				t.Errorf("training started:\n%s", errOut)
			}
		})
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := dagmm(t, "train", "-o", filepath.Join(ro, "m.json"), good)
		if code != 1 || !strings.Contains(errOut, "not writable") {
			t.Errorf("read-only directory: exit %d:\n%s", code, errOut)
		}
	}
}
