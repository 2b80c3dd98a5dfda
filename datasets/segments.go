package datasets

import (
	"cmp"
	"fmt"
	"slices"
)

// Metrics for labelled time series, beside [Detect], [AUROC] and [AUPRC]:
// the best F1 over every threshold, and point adjustment, the convention of
// the time-series anomaly literature (a whole labelled segment counts as
// found when any of its points is flagged) which flatters every method
// (Kim et al., AAAI 2022) and is reported only beside point-wise figures.

// Segment is a run of consecutive anomalous rows: Start is its first row,
// End one past its last (0-based, END excluded).
type Segment struct {
	Start, End int
}

// Len returns the number of rows in s.
func (s Segment) Len() int { return s.End - s.Start }

// Segments returns the runs of consecutive true labels, in order.
func Segments(labels []bool) []Segment {
	var out []Segment
	for i := 0; i < len(labels); i++ {
		if !labels[i] {
			continue
		}
		j := i
		for j < len(labels) && labels[j] {
			j++
		}
		out = append(out, Segment{i, j})
		i = j
	}
	return out
}

// PointAdjust returns scores with every anomalous row's score raised to the
// highest score in its labelled segment (labels in time order), so that at
// any threshold [Detect] on the result gives the point-adjusted figures: a
// segment is flagged whole when any of its rows is, normal rows as they
// are. It returns an error matching [ErrProtocol] when the lengths differ
// or a score is NaN.
func PointAdjust(scores []float64, labels []bool) ([]float64, error) {
	if err := checkScores(scores, labels); err != nil {
		return nil, err
	}
	out := slices.Clone(scores)
	for _, s := range Segments(labels) {
		top := slices.Max(scores[s.Start:s.End])
		for i := s.Start; i < s.End; i++ {
			out[i] = top
		}
	}
	return out, nil
}

// BestF1 returns the detection with the highest F1 over every threshold:
// each distinct score t taken as the lowest flagged score (the returned
// Threshold is the next lower distinct score, or t minus one when t is the
// lowest, so that [Detect] at it flags the same rows). Ties in F1 go to the
// higher threshold. It returns an error matching [ErrProtocol] when the
// lengths differ, a score is NaN, or there is no anomaly.
func BestF1(scores []float64, labels []bool) (Detection, error) {
	if err := checkScores(scores, labels); err != nil {
		return Detection{}, err
	}
	pos := 0
	for _, l := range labels {
		if l {
			pos++
		}
	}
	if pos == 0 {
		return Detection{}, fmt.Errorf("%w: no anomalies: the best F1 needs some", ErrProtocol)
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	best := Detection{FN: pos, TN: len(scores) - pos}
	best.Threshold = scores[order[0]]
	tp, fp := 0, 0
	for lo := 0; lo < len(order); {
		hi := lo
		for hi < len(order) && scores[order[hi]] == scores[order[lo]] {
			if labels[order[hi]] {
				tp++
			} else {
				fp++
			}
			hi++
		}
		d := Detection{TP: tp, FP: fp, FN: pos - tp, TN: len(scores) - pos - fp}
		d.Precision, d.Recall = ratio(tp, tp+fp), ratio(tp, pos)
		if d.Precision+d.Recall > 0 {
			d.F1 = 2 * d.Precision * d.Recall / (d.Precision + d.Recall)
		}
		if d.F1 > best.F1 {
			if hi < len(order) {
				d.Threshold = scores[order[hi]]
			} else {
				d.Threshold = scores[order[lo]] - 1
			}
			best = d
		}
		lo = hi
	}
	return best, nil
}
