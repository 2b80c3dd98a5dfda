package datasets

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Cause is one line of an interpretation file (the OmniAnomaly and
// InterFusion papers' ground truth for explanations): the operators named
// the metrics Dims as the cause of the anomaly in the test rows Start to
// End−1.
type Cause struct {
	Start, End int   // 0-based test rows, End excluded
	Dims       []int // 0-based column numbers (the file's are 1-based)
}

// ReadCauses reads an interpretation file; see [ParseCauses].
func ReadCauses(path string) ([]Cause, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ParseCauses(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCauses reads interpretation lines `START-END:DIMS`, START and END
// 0-based row numbers with END excluded, DIMS a comma-separated list of
// 1-based metric numbers (1 is the first metric column). Blank lines are
// skipped. A malformed line is an error naming its line number.
func ParseCauses(r io.Reader) ([]Cause, error) {
	var out []Cause
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		c, err := parseCause(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseCause(line string) (Cause, error) {
	span, dims, ok := strings.Cut(line, ":")
	if !ok {
		return Cause{}, fmt.Errorf("want START-END:DIMS, no ':'")
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return Cause{}, fmt.Errorf("want START-END before ':', got %q", span)
	}
	start, err1 := strconv.Atoi(strings.TrimSpace(a))
	end, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || start < 0 || end <= start {
		return Cause{}, fmt.Errorf("rows %q: want 0 <= START < END", span)
	}
	c := Cause{Start: start, End: end}
	for _, f := range strings.Split(dims, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || d < 1 {
			return Cause{}, fmt.Errorf("metric %q: want a number from 1", f)
		}
		c.Dims = append(c.Dims, d-1)
	}
	return c, nil
}

// HitRate returns the share of the named metrics truth found among the
// first ⌊p·len(truth)⌋ entries of ranking (metric numbers, most to blame
// first): HitRate@100% for p = 1, @150% for p = 1.5. A metric missing from
// ranking counts as not found. It is 0 for no truth.
func HitRate(ranking, truth []int, p float64) float64 {
	if len(truth) == 0 {
		return 0
	}
	top := min(int(p*float64(len(truth))), len(ranking))
	hits := 0
	for _, t := range truth {
		for _, r := range ranking[:top] {
			if r == t {
				hits++
				break
			}
		}
	}
	return float64(hits) / float64(len(truth))
}
