package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dagmm runs one command line in-process and returns its exit code and output.
func dagmm(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainedModel generates the seed's data and trains a model on it, once per test binary.
func trainedModel(t *testing.T, flags ...string) (data, modelPath string) {
	t.Helper()
	dir := t.TempDir()
	data = filepath.Join(dir, "metrics.parquet")
	modelPath = filepath.Join(dir, "model.json")
	if code, _, errOut := dagmm(t, "gen", "-o", data); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, errOut)
	}
	args := append([]string{"train", "--epochs", "20", "--report", "-", "-o", modelPath}, flags...)
	if code, _, errOut := dagmm(t, append(args, data)...); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errOut)
	}
	return data, modelPath
}

func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := dagmm(t, c.name, "--help")
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, "Examples:") {
				t.Errorf("help lacks usage or examples:\n%s", out)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nosuchcommand"},
		{"train", "--nosuchflag"},
		{"train", "in.csv"},
		{"score", "--model", "m.json", "in.csv"},
		{"gen"},
	} {
		if code, _, _ := dagmm(t, args...); code != 2 {
			t.Errorf("dagmm %v: exit %d, want 2 (usage)", args, code)
		}
	}
}

func TestTrainSameSeedSameModel(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "m.csv")
	if code, _, e := dagmm(t, "gen", "-n", "300", "-o", data); code != 0 {
		t.Fatal(e)
	}
	var files [2][]byte
	for i := range files {
		p := filepath.Join(dir, "model"+string(rune('a'+i))+".json")
		if code, _, e := dagmm(t, "train", "--epochs", "5", "--seed", "3", "--report", "-", "-o", p, data); code != 0 {
			t.Fatal(e)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two trainings with the same seed wrote different model files")
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	header := "timestamp,host,cpu_usage,mem_usage\n"
	var rows strings.Builder
	rows.WriteString(header)
	for i := range 50 {
		rows.WriteString("2026-11-24T00:00:00Z,web-1,")
		rows.WriteString(strings.Repeat("1", 1+i%3) + ".5," + strings.Repeat("2", 1+i%4) + ".25\n")
	}
	good := rows.String()
	_, modelPath := trainedModel(t)
	corrupt := filepath.Join(dir, "corrupt.json")
	b, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"threshold":`)) + len(`"threshold":`)
	b[i] = '9'
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := writeFile(t, dir, "truncated.json", string(b[:len(b)/2]))

	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"empty file", []string{"train", "-o", filepath.Join(dir, "m.json"), writeFile(t, dir, "empty.csv", "")}, "empty"},
		{"header only", []string{"train", "-o", filepath.Join(dir, "m.json"), writeFile(t, dir, "header.csv", header)}, "no data rows"},
		{"missing column", []string{"train", "--features", "cpu_usage,disk_busy", "-o", filepath.Join(dir, "m.json"), writeFile(t, dir, "ok.csv", good)}, `"disk_busy"`},
		{"non-numeric value", []string{"train", "-o", filepath.Join(dir, "m.json"),
			writeFile(t, dir, "nonnum.csv", good+"2026-11-24T00:00:00Z,web-1,abc,3\n")}, `row 51, column "cpu_usage"`},
		{"NaN", []string{"train", "-o", filepath.Join(dir, "m.json"),
			writeFile(t, dir, "nan.csv", good+"2026-11-24T00:00:00Z,web-1,NaN,3\n")}, `row 51, column "cpu_usage"`},
		{"Inf", []string{"train", "-o", filepath.Join(dir, "m.json"),
			writeFile(t, dir, "inf.csv", good+"2026-11-24T00:00:00Z,web-1,1,+Inf\n")}, `row 51, column "mem_usage"`},
		{"single row", []string{"train", "-o", filepath.Join(dir, "m.json"),
			writeFile(t, dir, "one.csv", header+"2026-11-24T00:00:00Z,web-1,1,2\n")}, "row"},
		{"only constant columns", []string{"train", "--features", "mem_usage", "-o", filepath.Join(dir, "m.json"),
			writeFile(t, dir, "const.csv", constantColumn(50))}, `every feature column is constant (mem_usage)`},
		{"edited model", []string{"score", "--model", corrupt, "-o", filepath.Join(dir, "s.csv"), filepath.Join(dir, "ok.csv")}, "edited or corrupted"},
		{"truncated model", []string{"inspect", truncated}, "truncated"},
		{"model does not fit file", []string{"score", "--model", modelPath, "-o", filepath.Join(dir, "s.csv"), filepath.Join(dir, "ok.csv")}, `"disk_busy"`},
		{"unsupported format", []string{"train", "-o", filepath.Join(dir, "m.json"), writeFile(t, dir, "x.txt", good)}, ".txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := dagmm(t, tc.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr does not name the problem (want %q):\n%s", tc.want, errOut)
			}
			t.Logf("%s", strings.TrimSpace(errOut))
		})
	}
}

func TestGenTrainScore(t *testing.T) {
	data, modelPath := trainedModel(t)
	out := filepath.Join(t.TempDir(), "scored.csv")
	code, stdout, errOut := dagmm(t, "score", "--model", modelPath, "-o", out, data)
	if code != 0 {
		t.Fatalf("score: exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "scored 1000 rows") {
		t.Errorf("summary: %s", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "\n")
	if want := "timestamp,host,cpu_usage,mem_usage,disk_busy,net_in_bps,label,cause,energy,score,anomaly,severity,band,explain_method,explanation"; head != want {
		t.Errorf("header %q, want %q", head, want)
	}
	if code, stdout, _ := dagmm(t, "inspect", modelPath); code != 0 || !strings.Contains(stdout, "threshold:") || !strings.Contains(stdout, " spread ") {
		t.Errorf("inspect: exit %d:\n%s", code, stdout)
	}
}

// constantColumn returns a CSV whose mem_usage column never changes.
func constantColumn(n int) string {
	var b strings.Builder
	b.WriteString("cpu_usage,mem_usage\n")
	for i := range n {
		fmt.Fprintf(&b, "%d.5,42\n", i)
	}
	return b.String()
}
