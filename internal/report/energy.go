package report

import (
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// EnergyHistogram draws the histogram of the training energies to path (.png
// or .svg), with a vertical line at threshold labelled "99th percentile =
// 12.3" (percentile in (0, 100], the percentile of the training energies the
// threshold was set at). The counts of the samples above the threshold are
// drawn in red over the bars. The y axis (samples per bin) is logarithmic so
// the few samples in the tail stay visible; the energy axis switches to a
// symmetric log scale when a few energies lie far beyond the bulk.
//
// energies must be non-empty and finite, threshold finite. Nothing is written
// on error.
func EnergyHistogram(path string, energies []float64, threshold, percentile float64) error {
	return EnergyHistogramScored(path, energies, nil, threshold, percentile)
}

// EnergyHistogramScored is [EnergyHistogram] with a second series: the
// energies of scored samples (for example a file passed through the model),
// drawn as an orange outline over the same bins. scored may be empty.
func EnergyHistogramScored(path string, training, scored []float64, threshold, percentile float64) error {
	format, err := formatOf(path)
	if err != nil {
		return err
	}
	if err := checkEnergies(training, scored, threshold, percentile); err != nil {
		return err
	}
	p, err := energyPlot(training, scored, threshold, percentile)
	if err != nil {
		return fmt.Errorf("report: energy histogram: %w", err)
	}
	return save(path, format, 9*vg.Inch, 5.5*vg.Inch, func(dc draw.Canvas) {
		dc = draw.Crop(dc, vg.Points(6), -vg.Points(14), vg.Points(6), -vg.Points(6))
		p.Draw(dc)
	})
}

// checkEnergies validates the inputs of an energy histogram.
func checkEnergies(training, scored []float64, threshold, percentile float64) error {
	if len(training) == 0 {
		return fmt.Errorf("%w: no training energies", ErrNoData)
	}
	if err := checkFinite(training, func(i int) string { return fmt.Sprintf("training energy of sample %d", i) }); err != nil {
		return err
	}
	if err := checkFinite(scored, func(i int) string { return fmt.Sprintf("scored energy of sample %d", i) }); err != nil {
		return err
	}
	if !finite(threshold) {
		return fmt.Errorf("%w: threshold is %v", ErrNotFinite, threshold)
	}
	if !(percentile > 0 && percentile <= 100) {
		return fmt.Errorf("report: percentile %v is outside (0, 100]", percentile)
	}
	return nil
}

// countAbove is the number of values above t.
func countAbove(v []float64, t float64) int {
	n := 0
	for _, x := range v {
		if x > t {
			n++
		}
	}
	return n
}

// energyHeadroom multiplies the tallest bar to leave room for the legend at
// the top of the (logarithmic) count axis.
const energyHeadroom = 20

// energyPlot builds the energy histogram.
func energyPlot(training, scored []float64, threshold, percentile float64) (*plot.Plot, error) {
	all := make([]float64, 0, len(training)+len(scored)+1)
	all = append(append(append(all, training...), scored...), threshold)
	sx, sy := chooseScale(all), scale{kind: logScale}
	lo, hi := minMax(all)
	bn := newBinning(sx, lo, hi, binCount(len(training), 20, 100))

	above := countAbove(training, threshold)
	title := fmt.Sprintf("Training energy: %d of %d samples above the threshold (%s)",
		above, len(training), percent(above, len(training)))
	p := newPlot(title, 14, 12)
	sx.apply(&p.X)
	sy.apply(&p.Y)
	p.X.Label.Text = "sample energy  E(z) = -log likelihood" + sx.suffix()
	p.Y.Label.Text = "samples per bin (log scale)"
	p.Legend.Padding = vg.Points(3)
	p.Add(plotter.NewGrid())

	bins := bn.hist(training, nil)
	top := maxWeight(bins)
	h := bars{bins: bins, ys: sy, fill: rgba(colNormal, 150), line: draw.LineStyle{Color: rgba(colNormal, 255), Width: vg.Points(0.6)}}
	p.Add(h)
	p.Legend.Add(fmt.Sprintf("training energies (%d samples)", len(training)), h)
	if above > 0 {
		ha := bars{bins: bn.hist(training, func(i int) bool { return training[i] > threshold }), ys: sy,
			fill: rgba(colFlagged, 220), line: draw.LineStyle{Color: rgba(colFlagged, 255), Width: vg.Points(0.6)}}
		p.Add(ha)
		p.Legend.Add(fmt.Sprintf("training samples above the threshold (%d)", above), ha)
	}
	if len(scored) > 0 {
		sb := bn.hist(scored, nil)
		top = max(top, maxWeight(sb))
		hs := bars{bins: sb, ys: sy, line: draw.LineStyle{Color: rgba(colScored, 255), Width: vg.Points(1.8)}}
		p.Add(hs)
		p.Legend.Add(fmt.Sprintf("scored energies (%d samples, %d above)", len(scored), countAbove(scored, threshold)), hs)
	}
	label := fmt.Sprintf("%s percentile = %s", ordinal(percentile), numLabel(threshold))
	vl := vline{
		x:     sx.fwd(threshold),
		label: label,
		line:  draw.LineStyle{Color: rgba(colThreshold, 255), Width: vg.Points(1.6), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}},
		text:  textStyle(11, true, draw.XLeft, draw.YCenter),
	}
	p.Add(vl)
	p.Legend.Add("threshold: "+label, vl)
	p.X.Min, p.X.Max = bins[0].Min, bins[len(bins)-1].Max
	p.Y.Min, p.Y.Max = sy.fwd(0.5), sy.fwd(top*energyHeadroom)
	return p, nil
}

// maxWeight is the largest bin count (at least 1).
func maxWeight(bins []plotter.HistogramBin) float64 {
	m := 1.0
	for _, b := range bins {
		m = max(m, b.Weight)
	}
	return m
}

// percent formats k/n as a percentage.
func percent(k, n int) string {
	if n == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*float64(k)/float64(n), 'g', 3, 64) + "%"
}

// ordinal writes a percentile as an English ordinal: 99th, 1st, 92nd, 99.5th.
func ordinal(p float64) string {
	s := strconv.FormatFloat(p, 'f', -1, 64)
	if p != math.Trunc(p) {
		return s + "th"
	}
	n := int(p)
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return s + "th"
	case n%10 == 1:
		return s + "st"
	case n%10 == 2:
		return s + "nd"
	case n%10 == 3:
		return s + "rd"
	default:
		return s + "th"
	}
}
