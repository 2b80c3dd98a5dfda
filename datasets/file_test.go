package datasets

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatOf(t *testing.T) {
	tests := []struct {
		path string
		want Format
		err  string
	}{
		{"a.parquet", Parquet, ""},
		{"dir.v2/A.PARQUET", Parquet, ""},
		{"metrics.csv", CSV, ""},
		{"metrics.Csv", CSV, ""},
		{"metrics.tsv", 0, `unsupported file extension ".tsv" (want .parquet or .csv)`},
		{"metrics.csv.gz", 0, `unsupported file extension ".gz"`},
		{"metrics", 0, "no file extension (want .parquet or .csv)"},
	}
	for _, tt := range tests {
		got, err := FormatOf(tt.path)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) || !errors.Is(err, ErrFormat) {
				t.Errorf("FormatOf(%q): error %v, want %q matching ErrFormat", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("FormatOf(%q) = %v, %v; want %v", tt.path, got, err, tt.want)
		}
	}
	if Parquet.String() != "parquet" || CSV.String() != "csv" {
		t.Errorf("Format names: %v, %v", Parquet, CSV)
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.parquet")
	if _, err := ReadFile(missing); !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "datasets: "+missing+": ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "x.json")); !errors.Is(err, ErrFormat) {
		t.Errorf("json: %v, want ErrFormat", err)
	}
	if err := WriteFile(filepath.Join(dir, "x.json"), sampleTable(t)); !errors.Is(err, ErrFormat) {
		t.Errorf("write json: %v, want ErrFormat", err)
	}
	if err := WriteFile(filepath.Join(dir, "no-such-dir", "x.csv"), sampleTable(t)); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestWriteFileLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.parquet")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A table without columns cannot be written as Parquet: the old file stays.
	empty, err := NewTable()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, empty); err == nil {
		t.Fatal("WriteFile of a table without columns succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("failed write changed the file to %q", b)
	}
	if err := WriteFile(path, sampleTable(t)); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only out.parquet", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}
