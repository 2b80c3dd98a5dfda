package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Format is a file format, chosen by the file name's extension.
type Format uint8

// Supported formats.
const (
	Parquet Format = iota + 1 // ".parquet"
	CSV                       // ".csv"
)

// String returns "parquet" or "csv".
func (f Format) String() string {
	switch f {
	case Parquet:
		return "parquet"
	case CSV:
		return "csv"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// FormatOf returns the format named by path's extension, ".parquet" or
// ".csv" in any letter case. Any other extension is an error that matches
// [ErrFormat].
func FormatOf(path string) (Format, error) {
	switch ext := filepath.Ext(path); strings.ToLower(ext) {
	case ".parquet":
		return Parquet, nil
	case ".csv":
		return CSV, nil
	default:
		if ext == "" {
			return 0, failf(ErrFormat, "no file extension (want .parquet or .csv)")
		}
		return 0, failf(ErrFormat, "unsupported file extension %q (want .parquet or .csv)", ext)
	}
}

// ReadFile reads a .parquet or .csv file (see [ReadParquet] and [ReadCSV]).
// Errors name the path.
func ReadFile(path string) (*Table, error) {
	t, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %w", path, err)
	}
	return t, nil
}

func readFile(path string) (*Table, error) {
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if format == CSV {
		return readCSV(f)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readParquet(f, st.Size())
}

// WriteFile writes t to path as Parquet or CSV, by the path's extension (see
// [WriteParquet] and [WriteCSV]). It writes a temporary file beside path and
// renames it, so path never holds a partial file. Errors name the path.
func WriteFile(path string, t *Table) error {
	if err := writeFile(path, t); err != nil {
		return fmt.Errorf("datasets: %s: %w", path, err)
	}
	return nil
}

func writeFile(path string, t *Table) (err error) {
	format, err := FormatOf(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if format == CSV {
		err = writeCSV(tmp, t)
	} else {
		err = writeParquet(tmp, t)
	}
	if err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
