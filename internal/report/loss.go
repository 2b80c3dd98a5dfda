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

// Series is one named sequence of values, such as the mean loss of each
// epoch (Values[0] is epoch 1).
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

// maxMarkedEpochs: up to this many epochs, each epoch gets a dot as well as
// the line, so that a very short run is still visible.
const maxMarkedEpochs = 60

// LossCurve draws the loss per epoch to path (.png or .svg): one panel per
// series, stacked over a shared epoch axis, in the order given — typically
// the total loss first, then its parts (reconstruction, lambda1·energy,
// lambda2·covariance penalty). Separate panels keep every part readable
// whatever its magnitude or sign. A panel whose values are all positive and
// span more than a decade uses a log y axis; otherwise, when the first
// quarter of the epochs covers most of the range, the y axis zooms on the
// rest (the title says so). Each panel's title gives the final and the
// smallest value.
//
// Every series must be non-empty, finite and as long as the first; a series
// with no name is called "series N". Nothing is written on error.
func LossCurve(path string, series []Series) error {
	format, err := formatOf(path)
	if err != nil {
		return err
	}
	if err := checkSeries(series); err != nil {
		return err
	}
	epochs := len(series[0].Values)
	plots := make([][]*plot.Plot, len(series))
	colors := lossColors()
	for i, s := range series {
		p, err := lossPanel(seriesName(series, i), s.Values, colors[i%len(colors)], i == len(series)-1)
		if err != nil {
			return fmt.Errorf("report: loss series %q: %w", seriesName(series, i), err)
		}
		plots[i] = []*plot.Plot{p}
	}
	w := 8 * vg.Inch
	h := vg.Inch + vg.Length(len(series))*2*vg.Inch
	title := fmt.Sprintf("Training loss per epoch (%d epochs)", epochs)
	return save(path, format, w, h, func(dc draw.Canvas) {
		body := header(dc, title)
		tiles := draw.Tiles{
			Rows: len(series), Cols: 1,
			PadY: vg.Points(10), PadLeft: vg.Points(8), PadRight: vg.Points(16), PadBottom: vg.Points(6),
		}
		cs := plot.Align(plots, tiles, body)
		for i := range plots {
			plots[i][0].Draw(cs[i][0])
		}
	})
}

// checkSeries validates loss series: at least one, each non-empty, finite
// and of the same length.
func checkSeries(series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("%w: no loss series", ErrNoData)
	}
	n := len(series[0].Values)
	for i, s := range series {
		name := seriesName(series, i)
		if len(s.Values) == 0 {
			return fmt.Errorf("%w: loss series %q has no values", ErrNoData, name)
		}
		if len(s.Values) != n {
			return fmt.Errorf("%w: loss series %q has %d epochs, %q has %d",
				ErrShape, name, len(s.Values), seriesName(series, 0), n)
		}
		if err := checkFinite(s.Values, func(j int) string {
			return fmt.Sprintf("loss series %q at epoch %d", name, j+1)
		}); err != nil {
			return err
		}
	}
	return nil
}

// seriesName is the name of series[i], or "series i+1" if it has none.
func seriesName(series []Series, i int) string {
	if series[i].Name != "" {
		return series[i].Name
	}
	return fmt.Sprintf("series %d", i+1)
}

// lossPanel is one panel of the loss figure. The y axis is logarithmic when
// every value is positive and they span more than a decade. Otherwise, when
// the first quarter of the epochs covers most of the range (a steep start),
// the axis zooms on the rest so the later epochs stay readable, and the
// title says so.
func lossPanel(name string, v []float64, col uint32, bottom bool) (*plot.Plot, error) {
	best := 0
	for i, x := range v {
		if x < v[best] {
			best = i
		}
	}
	title := fmt.Sprintf("%s: final %s, lowest %s at epoch %d", name, numLabel(v[len(v)-1]), numLabel(v[best]), best+1)
	lo, hi := minMax(v)
	sy := scale{}
	ylo, yhi := lo, hi
	if lo > 0 && hi/lo > 10 {
		sy = scale{kind: logScale}
	} else if skip := max(1, len(v)/4); len(v)-skip >= 3 {
		llo, lhi := minMax(v[skip:])
		if hi-lo > 4*(lhi-llo) {
			pad := 0.1 * (lhi - llo)
			if pad == 0 {
				pad = 0.05*math.Abs(lhi) + 1e-12
			}
			ylo, yhi = llo-pad, lhi+pad
			title += fmt.Sprintf(" (y axis zoomed on epochs %d-%d)", skip+1, len(v))
		}
	}
	p := newPlot(title, 11, 10)
	sy.apply(&p.Y)
	p.X.Tick.Marker = epochTicks{}
	p.Y.Label.Text = "loss" + sy.suffix()
	if bottom {
		p.X.Label.Text = "epoch"
	}
	xy := make(plotter.XYs, len(v))
	for i, y := range v {
		xy[i] = plotter.XY{X: float64(i + 1), Y: sy.fwd(y)}
	}
	line, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	line.Color = rgba(col, 255)
	line.Width = vg.Points(1.6)
	p.Add(plotter.NewGrid(), line)
	if len(v) <= maxMarkedEpochs {
		dots, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		dots.GlyphStyle = draw.GlyphStyle{Color: rgba(col, 255), Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		p.Add(dots)
	}
	// Epochs are whole numbers from 1; a single epoch still gets a range.
	p.X.Min, p.X.Max = 1, math.Max(float64(len(v)), 2)
	p.Y.Min, p.Y.Max = sy.fwd(ylo), sy.fwd(yhi)
	return p, nil
}

// epochTicks labels whole epochs at a round step (1, 2 or 5 × 10^k) giving
// at most about eight labels; they start at 1 when the step is 1, else at
// multiples of the step.
type epochTicks struct{}

// Ticks implements plot.Ticker.
func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return nil
	}
	step := 1.0
	for i := 0; (hi-lo)/step > 8 && i < 60; i++ { // 1, 2, 5, 10, 20, 50, ...
		if m := step / math.Pow10(int(math.Floor(math.Log10(step)))); m == 2 {
			step *= 2.5
		} else {
			step *= 2
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		if v >= 1 {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
		}
	}
	if len(ticks) == 0 || ticks[0].Value > 1 {
		ticks = append([]plot.Tick{{Value: 1, Label: "1"}}, ticks...)
	}
	return ticks
}
