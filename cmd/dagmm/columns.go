package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/internal/report"
	"github.com/dagmm/dagmm/model"
)

// Reasons a training file's column is not a feature, as stderr and
// report.json give them.
const (
	reasonDefault    = "excluded by default"
	reasonEvent      = "event column"
	reasonExclude    = "excluded by --exclude"
	reasonNotChosen  = "not in --features"
	reasonNotNumeric = "not numeric"
)

// columnChoice is how dagmm train picks its features among a file's columns.
type columnChoice struct {
	features []string // --features, when given
	exclude  []string // --exclude
	defaults bool     // whether datasets.DefaultExclude applies too
	event    string   // the event column, never a feature by default
}

// choose returns the feature columns of t and every other column with the
// reason it is left out. A text column most of whose values read as numbers
// is an error naming it and a value that does not: it is a metric with bad
// values, and training without it would hide the fault.
func (c columnChoice) choose(t *datasets.Table) ([]string, []report.SkippedColumn, error) {
	if len(c.features) > 0 {
		used, err := datasets.SelectFeatures(t, c.features, nil)
		if err != nil {
			return nil, nil, err
		}
		var skipped []report.SkippedColumn
		for _, name := range t.Names() {
			if !slices.Contains(used, name) {
				skipped = append(skipped, report.SkippedColumn{Name: name, Reason: reasonNotChosen})
			}
		}
		return used, skipped, nil
	}
	why := make(map[string]string)
	if c.defaults {
		for _, e := range datasets.DefaultExclude() {
			why[strings.ToLower(e)] = reasonDefault
		}
	}
	if c.event != "" {
		if _, ok := why[strings.ToLower(c.event)]; !ok {
			why[strings.ToLower(c.event)] = reasonEvent
		}
	}
	for _, e := range c.exclude {
		why[strings.ToLower(e)] = reasonExclude
	}
	var skipped []report.SkippedColumn
	var exclude []string
	for _, col := range t.Columns() {
		if r, ok := why[strings.ToLower(col.Name)]; ok {
			skipped = append(skipped, report.SkippedColumn{Name: col.Name, Reason: r})
			exclude = append(exclude, col.Name)
			continue
		}
		if col.Type.Numeric() {
			continue
		}
		if err := numbersAsText(col); err != nil {
			return nil, nil, err
		}
		skipped = append(skipped, report.SkippedColumn{Name: col.Name, Reason: fmt.Sprintf("%s (%v)", reasonNotNumeric, col.Type)})
	}
	used, err := datasets.SelectFeatures(t, nil, exclude)
	if err != nil {
		return nil, nil, err
	}
	return used, skipped, nil
}

// numbersAsText returns an error when col holds text and more than half of
// its non-empty values read as finite numbers.
func numbersAsText(col *datasets.Column) error {
	if col.Type != datasets.String {
		return nil
	}
	nums, texts, firstBad := 0, 0, -1
	for i, s := range col.Strings {
		if col.IsNull(i) || strings.TrimSpace(s) == "" {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			nums++
			continue
		}
		texts++
		if firstBad < 0 {
			firstBad = i
		}
	}
	if nums == 0 || nums <= texts {
		return nil
	}
	return fmt.Errorf("column %q holds text, but %d of its %d values are numbers: row %d is %q; fix the values or leave the column out with --exclude %s",
		col.Name, nums, nums+texts, firstBad+1, col.Strings[firstBad], col.Name)
}

// constantColumns returns the constant features as skipped columns.
func constantColumns(cs []model.ConstantFeature) []report.SkippedColumn {
	out := make([]report.SkippedColumn, len(cs))
	for i, c := range cs {
		v := c.Value
		out[i] = report.SkippedColumn{Name: c.Name, Reason: fmt.Sprintf("constant (every row is %v)", v), Value: &v}
	}
	return out
}

// checkOutputs fails when the model file or the report directory (unless
// "-") cannot be written, so that training does not run for nothing.
func checkOutputs(modelPath, reportDir string) error {
	if fi, err := os.Stat(modelPath); err == nil && fi.IsDir() {
		return fmt.Errorf("model file %s is a directory", modelPath)
	}
	if err := checkWritableDir(filepath.Dir(modelPath), false); err != nil {
		return fmt.Errorf("model file %s: %w", modelPath, err)
	}
	if reportDir == "-" {
		return nil
	}
	if err := checkWritableDir(reportDir, true); err != nil {
		return fmt.Errorf("report directory %s: %w", reportDir, err)
	}
	return nil
}

// checkWritableDir checks that a file can be created in dir. With create,
// dir may be missing as long as its nearest existing parent is writable.
func checkWritableDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && create:
		parent := filepath.Dir(filepath.Clean(dir))
		if parent == dir || parent == filepath.Clean(dir) {
			return fmt.Errorf("directory %s does not exist", dir)
		}
		return checkWritableDir(parent, true)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".dagmm-write-check-*")
	if err != nil {
		if pe, ok := errors.AsType[*os.PathError](err); ok {
			err = pe.Err
		}
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
