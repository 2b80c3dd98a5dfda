package datasets

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat"
)

// The benchmark protocol of the DAGMM paper (Zong et al., ICLR 2018, section
// 4 and Table 2), in pieces that cmd/dagmm's eval command puts together:
//
//   - [Labels] reads the 0/1 label column, 1 being the anomaly class;
//   - [SplitNormal] draws one run's split: a seeded random half of the normal
//     rows to train on, the other half and every anomaly to test on;
//   - [RatioThreshold] is the paper's threshold (flag the top r% of the
//     training and test energies together, r the data set's anomaly ratio)
//     and [Percentile] of the training energies alone is the serving rule;
//   - [Detect] gives precision, recall and F1 of the anomaly class at a
//     threshold, [AUROC] and [AUPRC] the threshold-free figures;
//   - [MeanSD] summarises the runs.

// ErrProtocol is matched by every error the protocol functions return for
// unusable input: mismatched lengths, NaN scores, a label other than 0 or 1,
// a split with nothing to train or test on.
var ErrProtocol = errors.New("datasets: protocol")

// splitStream is the PCG stream of [SplitNormal]'s shuffle, so that the same
// seed used elsewhere (say to initialise a network) draws other numbers.
const splitStream = 0x5eed_5b11

// Labels returns column's values as anomaly labels: true for 1 (the anomaly
// class), false for 0. The column may hold integers, floats or booleans. Any
// other value, a null, or a missing column is an error naming the row and
// the column.
func Labels(t *Table, column string) ([]bool, error) {
	c, ok := t.Column(column)
	if !ok {
		return nil, failf(ErrNoColumn, "datasets: no label column %q (columns: %s)", column, columnList(t.Names()))
	}
	n := t.Len()
	out := make([]bool, n)
	if c.Type == Bool {
		for i := range n {
			if c.IsNull(i) {
				return nil, fmt.Errorf("%w: %w", ErrProtocol, &CellError{Row: t.SourceRow(i), Column: column, Problem: "missing label"})
			}
		}
		copy(out, c.Bools)
		return out, nil
	}
	if !c.Type.Numeric() {
		return nil, failf(ErrNotNumeric, "datasets: label column %q holds %v values, want 0 and 1", column, c.Type)
	}
	for i := range n {
		v, ok := c.Float64(i)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: %w", ErrProtocol, &CellError{Row: t.SourceRow(i), Column: column, Problem: "missing label"})
		case v == 1:
			out[i] = true
		case v != 0:
			return nil, fmt.Errorf("%w: %w", ErrProtocol, &CellError{Row: t.SourceRow(i), Column: column, Problem: fmt.Sprintf("label %v, want 0 (normal) or 1 (anomaly)", v)})
		}
	}
	return out, nil
}

// AnomalyRatio returns the share of true labels, in [0, 1]; 0 for no labels.
func AnomalyRatio(labels []bool) float64 {
	if len(labels) == 0 {
		return 0
	}
	a := 0
	for _, l := range labels {
		if l {
			a++
		}
	}
	return float64(a) / float64(len(labels))
}

// Split is one run of the protocol: row indices (0-based) into the labelled
// rows.
type Split struct {
	// Train holds the normal rows trained on, in increasing order.
	Train []int
	// Test holds the other normal rows, in increasing order, then every
	// anomaly, in increasing order.
	Test []int
}

// SplitNormal draws one run's split: it shuffles the normal rows (false
// labels) with a PCG generator seeded with seed, puts the first
// ⌊fraction·normal⌋ of them in Train and the rest, followed by every anomaly,
// in Test. The paper's protocol is fraction 0.5. The same labels, fraction
// and seed give the same split. It returns an error matching [ErrProtocol]
// when fraction is outside (0, 1) or when Train or Test would be empty.
func SplitNormal(labels []bool, fraction float64, seed uint64) (Split, error) {
	if !(fraction > 0 && fraction < 1) {
		return Split{}, fmt.Errorf("%w: training fraction %v, want a number in (0, 1)", ErrProtocol, fraction)
	}
	var normal, anomalies []int
	for i, l := range labels {
		if l {
			anomalies = append(anomalies, i)
		} else {
			normal = append(normal, i)
		}
	}
	nTrain := int(math.Floor(fraction * float64(len(normal))))
	if nTrain == 0 {
		return Split{}, fmt.Errorf("%w: %d normal rows: a fraction of %v leaves none to train on", ErrProtocol, len(normal), fraction)
	}
	if nTrain == len(normal) && len(anomalies) == 0 {
		return Split{}, fmt.Errorf("%w: %d normal rows and no anomalies: nothing left to test on", ErrProtocol, len(normal))
	}
	rng := rand.New(rand.NewPCG(seed, splitStream))
	rng.Shuffle(len(normal), func(i, j int) { normal[i], normal[j] = normal[j], normal[i] })
	tr := slices.Clone(normal[:nTrain])
	te := slices.Clone(normal[nTrain:])
	slices.Sort(tr)
	slices.Sort(te)
	return Split{Train: tr, Test: append(te, anomalies...)}, nil
}

// Pick returns the given labels in the order of rows, a subset of Split.Test
// or Split.Train. It panics when a row is out of range, like a slice index.
func Pick[T any](s []T, rows []int) []T {
	return pick(s, rows)
}

// Rows returns a new row-major matrix holding the given rows of the
// row-major n×d matrix x, in that order. It panics when a row is out of
// range, like a slice index.
func Rows(x []float64, d int, rows []int) []float64 {
	out := make([]float64, len(rows)*d)
	for i, r := range rows {
		copy(out[i*d:(i+1)*d], x[r*d:(r+1)*d])
	}
	return out
}

// VaryingColumns returns the indices of the columns of the row-major n×d
// matrix x that take more than one value over the given rows (all rows when
// rows is nil). A column that is constant where a model is trained carries
// no information there, and min-max or z-score normalisation cannot scale it.
func VaryingColumns(x []float64, d int, rows []int) []int {
	n := len(x) / max(d, 1)
	if rows == nil {
		rows = make([]int, n)
		for i := range rows {
			rows[i] = i
		}
	}
	if len(rows) == 0 {
		return nil
	}
	first := x[rows[0]*d : rows[0]*d+d]
	varies := make([]bool, d)
	left := d
	for _, r := range rows[1:] {
		row := x[r*d : r*d+d]
		for j, v := range row {
			if !varies[j] && v != first[j] {
				varies[j] = true
				left--
			}
		}
		if left == 0 {
			break
		}
	}
	var out []int
	for j, v := range varies {
		if v {
			out = append(out, j)
		}
	}
	return out
}

// SelectColumns returns a new row-major matrix holding the given columns of
// the row-major n×d matrix x, in that order. It panics when a column is out
// of range.
func SelectColumns(x []float64, d int, cols []int) []float64 {
	n := len(x) / max(d, 1)
	k := len(cols)
	out := make([]float64, n*k)
	for i := range n {
		src := x[i*d : (i+1)*d]
		dst := out[i*k : (i+1)*k]
		for c, j := range cols {
			dst[c] = src[j]
		}
	}
	return out
}

// Percentile returns the p-th percentile (0 to 100) of values, interpolating
// linearly between order statistics as NumPy's default does: for n sorted
// values v, v[h] + (h − ⌊h⌋)(v[⌊h⌋+1] − v[⌊h⌋]) with h = (n−1)·p/100. values
// may hold +Inf (an energy beyond the model's range); it is copied, not
// sorted in place. It returns an error matching [ErrProtocol] for no values,
// a NaN, or p outside [0, 100].
func Percentile(values []float64, p float64) (float64, error) {
	if len(values) == 0 {
		return 0, fmt.Errorf("%w: percentile of no values", ErrProtocol)
	}
	if !(p >= 0 && p <= 100) {
		return 0, fmt.Errorf("%w: percentile %v, want a number in [0, 100]", ErrProtocol, p)
	}
	if i := slices.IndexFunc(values, math.IsNaN); i >= 0 {
		return 0, fmt.Errorf("%w: value %d is NaN", ErrProtocol, i)
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return percentileSorted(s, p), nil
}

// percentileSorted is Percentile on sorted values without NaN.
func percentileSorted(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	frac := h - float64(lo)
	if frac == 0 || s[lo] == s[lo+1] {
		return s[lo]
	}
	return s[lo] + frac*(s[lo+1]-s[lo]) // +Inf when s[lo+1] is
}

// RatioThreshold is the DAGMM paper's threshold: the percentile 100·(1 −
// ratio) of all the given energies together (the paper passes the training
// and the test energies), so that a share ratio of them lies above it. ratio
// is the data set's anomaly ratio, in (0, 1).
func RatioThreshold(ratio float64, energies ...[]float64) (float64, error) {
	if !(ratio > 0 && ratio < 1) {
		return 0, fmt.Errorf("%w: anomaly ratio %v, want a number in (0, 1)", ErrProtocol, ratio)
	}
	all := slices.Concat(energies...)
	return Percentile(all, 100*(1-ratio))
}

// Detection is the anomaly class's figures at one threshold: a sample is
// flagged when its score is above the threshold; the positive class is the
// anomaly (label true).
type Detection struct {
	Threshold float64 `json:"threshold"`
	// TP, FP, TN and FN count flagged anomalies, flagged normal samples,
	// passed normal samples and missed anomalies.
	TP int `json:"tp"`
	FP int `json:"fp"`
	TN int `json:"tn"`
	FN int `json:"fn"`
	// Precision is TP/(TP+FP), 0 when nothing is flagged; Recall TP/(TP+FN),
	// 0 without anomalies; F1 their harmonic mean, 0 when both are 0.
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Detect flags the scores above threshold and counts them against labels.
// It returns an error matching [ErrProtocol] when the lengths differ or a
// score or the threshold is NaN; +Inf scores are flagged unless the
// threshold is +Inf too.
func Detect(scores []float64, labels []bool, threshold float64) (Detection, error) {
	if err := checkScores(scores, labels); err != nil {
		return Detection{}, err
	}
	if math.IsNaN(threshold) {
		return Detection{}, fmt.Errorf("%w: threshold is NaN", ErrProtocol)
	}
	d := Detection{Threshold: threshold}
	for i, s := range scores {
		switch flagged := s > threshold; {
		case flagged && labels[i]:
			d.TP++
		case flagged:
			d.FP++
		case labels[i]:
			d.FN++
		default:
			d.TN++
		}
	}
	d.Precision = ratio(d.TP, d.TP+d.FP)
	d.Recall = ratio(d.TP, d.TP+d.FN)
	if d.Precision+d.Recall > 0 {
		d.F1 = 2 * d.Precision * d.Recall / (d.Precision + d.Recall)
	}
	return d, nil
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// checkScores checks that scores and labels pair up and that no score is NaN.
func checkScores(scores []float64, labels []bool) error {
	if len(scores) != len(labels) {
		return fmt.Errorf("%w: %d scores for %d labels", ErrProtocol, len(scores), len(labels))
	}
	if i := slices.IndexFunc(scores, math.IsNaN); i >= 0 {
		return fmt.Errorf("%w: score %d is NaN", ErrProtocol, i)
	}
	return nil
}

// ranked returns the sample indices by decreasing score, and the counts of
// positive and negative labels; an error when either class is missing.
func ranked(scores []float64, labels []bool) (order []int, pos, neg int, err error) {
	if err := checkScores(scores, labels); err != nil {
		return nil, 0, 0, err
	}
	for _, l := range labels {
		if l {
			pos++
		}
	}
	neg = len(labels) - pos
	if pos == 0 || neg == 0 {
		return nil, 0, 0, fmt.Errorf("%w: %d anomalies and %d normal samples: the area needs both", ErrProtocol, pos, neg)
	}
	order = make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	return order, pos, neg, nil
}

// AUROC returns the area under the ROC curve of scores against labels (true
// = anomaly = positive): the probability that a random anomaly scores above
// a random normal sample, ties counting one half (the Mann–Whitney U
// statistic over pos·neg). It returns an error matching [ErrProtocol] when
// the lengths differ, a score is NaN, or either class is absent.
func AUROC(scores []float64, labels []bool) (float64, error) {
	order, pos, neg, err := ranked(scores, labels)
	if err != nil {
		return 0, err
	}
	// Walk groups of equal scores from the top; each positive is above every
	// negative seen in later groups and ties with the group's negatives.
	var above float64 // pairs (positive, negative) with the positive ranked higher, ties ½
	negSeen := 0
	for lo := 0; lo < len(order); {
		hi := lo
		p, n := 0, 0
		for hi < len(order) && scores[order[hi]] == scores[order[lo]] {
			if labels[order[hi]] {
				p++
			} else {
				n++
			}
			hi++
		}
		// Positives in this group beat the negatives not yet seen (below)
		// and tie with this group's negatives.
		above += float64(p) * (float64(neg-negSeen-n) + 0.5*float64(n))
		negSeen += n
		lo = hi
	}
	return above / (float64(pos) * float64(neg)), nil
}

// AUPRC returns the area under the precision–recall curve of scores against
// labels (true = anomaly = positive), as average precision: Σ_t (R_t −
// R_{t−1})·P_t over the distinct scores t from the highest down, where P_t
// and R_t are the precision and recall of flagging the scores ≥ t (the
// definition of scikit-learn's average_precision_score; no interpolation).
// A random scorer gets about the anomaly ratio, a perfect one 1. Errors as
// for [AUROC].
func AUPRC(scores []float64, labels []bool) (float64, error) {
	order, pos, _, err := ranked(scores, labels)
	if err != nil {
		return 0, err
	}
	var ap float64
	tp, flagged := 0, 0
	for lo := 0; lo < len(order); {
		hi := lo
		p := 0
		for hi < len(order) && scores[order[hi]] == scores[order[lo]] {
			if labels[order[hi]] {
				p++
			}
			hi++
		}
		tp += p
		flagged += hi - lo
		ap += float64(p) / float64(pos) * float64(tp) / float64(flagged)
		lo = hi
	}
	return ap, nil
}

// MeanSD returns the mean and the sample standard deviation (n − 1 in the
// denominator) of xs: 0 and 0 for none, the value and 0 for one.
func MeanSD(xs []float64) (mean, sd float64) {
	switch len(xs) {
	case 0:
		return 0, 0
	case 1:
		return xs[0], 0
	}
	return stat.MeanStdDev(xs, nil)
}
