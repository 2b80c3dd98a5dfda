package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Errors returned by the package; match them with errors.Is.
var (
	// ErrFormat: the picture's file extension is neither .png nor .svg.
	ErrFormat = errors.New("report: unsupported picture format")
	// ErrNoData: a series, the energies or the feature matrix is empty.
	ErrNoData = errors.New("report: no data")
	// ErrNotFinite: a value is NaN or ±Inf.
	ErrNotFinite = errors.New("report: value is not finite")
	// ErrShape: lengths do not agree (series of different lengths, a matrix
	// whose size is not a multiple of the feature count, a flag per row).
	ErrShape = errors.New("report: shape mismatch")
)

// pngDPI is the resolution of PNG pictures.
const pngDPI = 150

// svgFontFamily is the font-family given to SVG text: Liberation Sans (the
// font the text is measured with), then metric-compatible fallbacks.
const svgFontFamily = "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"

// Colours, as 0xRRGGBB.
const (
	colNormal    = 0x4c72b0 // normal samples, training histogram
	colFlagged   = 0xd62728 // flagged samples, above-threshold counts
	colThreshold = 0x111111 // the threshold line
	colScored    = 0xff7f0e // scored energies
)

// lossColors is the cycle of line colours for loss series.
func lossColors() []uint32 {
	return []uint32{0x1f1f1f, 0x1f77b4, 0x2ca02c, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf}
}

// rgba returns the colour 0xRRGGBB with alpha a (0..255).
func rgba(c uint32, a uint8) color.Color {
	// Premultiplied, as color.RGBA requires.
	f := float64(a) / 255
	return color.RGBA{
		R: uint8(math.Round(float64(c>>16&0xff) * f)),
		G: uint8(math.Round(float64(c>>8&0xff) * f)),
		B: uint8(math.Round(float64(c&0xff) * f)),
		A: a,
	}
}

// sans returns the Liberation Sans font at size points.
func sans(size float64, bold bool) font.Font {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return f
}

// textStyle returns a plain text style in Liberation Sans.
func textStyle(size float64, bold bool, xa text.XAlignment, ya text.YAlignment) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    sans(size, bold),
		XAlign:  xa,
		YAlign:  ya,
		Handler: plot.DefaultTextHandler,
	}
}

// newPlot returns a plot with the package's fonts: title tsize points, axis
// labels lsize points, tick labels two points smaller.
func newPlot(title string, tsize, lsize float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(tsize, true)
	p.Title.Padding = vg.Points(4)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(lsize, false)
		a.Tick.Label.Font = sans(lsize-2, false)
		a.Label.Padding = vg.Points(2)
	}
	p.Legend.TextStyle.Font = sans(lsize-1, false)
	p.Legend.Top = true
	p.Legend.ThumbnailWidth = vg.Points(18)
	return p
}

// formatOf returns "png" or "svg" from the extension of path.
func formatOf(path string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png", ".svg":
		return ext[1:], nil
	default:
		return "", fmt.Errorf("%w %q in %s (supported: .png, .svg)", ErrFormat, ext, path)
	}
}

// save draws a w×h picture with fn and writes it to path in format, which
// is "png" or "svg". The picture is drawn in memory first, so a failure
// leaves no partial file behind.
func save(path, format string, w, h vg.Length, fn func(dc draw.Canvas)) error {
	var c vg.CanvasWriterTo
	switch format {
	case "svg":
		c = vgsvg.New(w, h)
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI))}
	default:
		return fmt.Errorf("%w %q for %s (supported: png, svg)", ErrFormat, format, path)
	}
	var buf bytes.Buffer
	if err := drawSafely(c, fn); err != nil {
		return fmt.Errorf("report: draw %s: %w", path, err)
	}
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("report: encode %s: %w", path, err)
	}
	b := buf.Bytes()
	if format == "svg" {
		// Text is laid out with Liberation Sans metrics; Arial has the same
		// metrics, so a viewer without Liberation keeps the layout.
		b = bytes.ReplaceAll(b, []byte("font-family:Liberation Sans;"), []byte(svgFontFamily))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("report: write picture: %w", err)
	}
	return nil
}

// drawSafely runs fn on c and turns a panic inside gonum/plot (which panics
// on some inputs, e.g. a non-positive value on a log axis) into an error. The
// inputs are validated beforehand, so this is a last guard, not a path the
// package relies on.
func drawSafely(c vg.CanvasSizer, fn func(dc draw.Canvas)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot library panicked: %v", r)
		}
	}()
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	fn(dc)
	return nil
}

// header draws lines of text centred at the top of dc (the first bold and
// larger) and returns the canvas below them.
func header(dc draw.Canvas, lines ...string) draw.Canvas {
	y := dc.Max.Y - vg.Points(6)
	for i, l := range lines {
		sty := textStyle(11, false, draw.XCenter, draw.YTop)
		if i == 0 {
			sty = textStyle(15, true, draw.XCenter, draw.YTop)
		}
		dc.FillText(sty, vg.Point{X: dc.Center().X, Y: y}, l)
		y -= sty.Rectangle(l).Size().Y + vg.Points(3)
	}
	dc.Max.Y = y - vg.Points(4)
	return dc
}

// checkFinite returns ErrNotFinite naming what and the index of the first
// NaN or ±Inf in v, or nil.
func checkFinite(v []float64, what func(i int) string) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: %s is %v", ErrNotFinite, what(i), x)
		}
	}
	return nil
}

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// binning is a set of equal-width bins in the space where a scale is linear
// (fwd space), which is also the space the axes are drawn in.
type binning struct {
	s     scale
	lo, w float64 // in fwd space
	n     int
}

// newBinning spans [lo, hi] (data space, lo ≤ hi, both valid for s) with n
// bins of equal width in fwd space.
func newBinning(s scale, lo, hi float64, n int) binning {
	a, b := s.fwd(lo), s.fwd(hi)
	if !(b > a) { // a single value: bins over a unit interval around it
		a, b = a-0.5, a+0.5
	}
	return binning{s: s, lo: a, w: (b - a) / float64(n), n: n}
}

// hist counts the values v[i] for which keep(i) holds (all when keep is
// nil) into the bins. Bin edges are in fwd space; values outside the range
// fall into the end bins.
func (bn binning) hist(v []float64, keep func(i int) bool) []plotter.HistogramBin {
	bins := make([]plotter.HistogramBin, bn.n)
	for i := range bins {
		bins[i].Min = bn.lo + float64(i)*bn.w
		bins[i].Max = bn.lo + float64(i+1)*bn.w
	}
	for i, x := range v {
		if keep != nil && !keep(i) {
			continue
		}
		k := int(math.Floor((bn.s.fwd(x) - bn.lo) / bn.w))
		bins[min(max(k, 0), bn.n-1)].Weight++
	}
	return bins
}

// binCount is the number of histogram bins for n values: twice the Rice
// rule, within [lo, hi].
func binCount(n, lo, hi int) int {
	return min(max(int(math.Ceil(4*math.Cbrt(float64(n)))), lo), hi)
}

// bars is a plotter for histogram bars whose heights (counts) are mapped
// through ys before drawing, so counts can go on a log axis; empty bins are
// not drawn. Bin edges are in the x axis' (fwd) space.
type bars struct {
	bins []plotter.HistogramBin
	ys   scale
	fill color.Color // nil: outline only
	line draw.LineStyle
}

// Plot implements plot.Plotter. Filled bars are drawn one by one; outline
// bars (no fill) as one step line per run of non-empty bins, which reads
// better over another histogram.
func (b bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	var run []vg.Point // the open step line of outline bars
	flush := func() {
		if len(run) > 0 {
			run = append(run, vg.Point{X: run[len(run)-1].X, Y: c.Min.Y})
			c.StrokeLines(b.line, c.ClipLinesXY(run)...)
			run = nil
		}
	}
	for _, bin := range b.bins {
		if bin.Weight <= 0 {
			flush()
			continue
		}
		x0, x1 := trX(bin.Min), trX(bin.Max)
		y1 := trY(b.ys.fwd(bin.Weight))
		if b.fill == nil {
			if len(run) == 0 {
				run = append(run, vg.Point{X: x0, Y: c.Min.Y})
			}
			run = append(run, vg.Point{X: x0, Y: y1}, vg.Point{X: x1, Y: y1})
			continue
		}
		pts := []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: y1}, {X: x0, Y: y1}}
		c.FillPolygon(b.fill, c.ClipPolygonXY(pts))
		c.StrokeLines(b.line, c.ClipLinesXY(append(pts, pts[0]))...)
	}
	flush()
}

// Thumbnail implements plot.Thumbnailer.
func (b bars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}}
	if b.fill != nil {
		c.FillPolygon(b.fill, c.ClipPolygonXY(pts))
	}
	c.StrokeLines(b.line, c.ClipLinesXY(append(pts, pts[0]))...)
}

// vline is a plotter for a vertical line across the whole data area at x
// (in the x axis' space), labelled in a white box at 78% of the height.
type vline struct {
	x     float64
	label string
	line  draw.LineStyle
	text  text.Style
}

// Plot implements plot.Plotter.
func (v vline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	c.StrokeLine2(v.line, x, c.Min.Y, x, c.Max.Y)
	if v.label == "" {
		return
	}
	sty := v.text
	pt := vg.Point{X: x + vg.Points(4), Y: c.Min.Y + (c.Max.Y-c.Min.Y)*0.78}
	sty.XAlign = draw.XLeft
	if x > c.Center().X { // label on the side with more room
		sty.XAlign = draw.XRight
		pt.X = x - vg.Points(4)
	}
	// A white box behind the label keeps it readable over the bars.
	r := sty.Rectangle(v.label)
	box := vg.Rectangle{Min: pt.Add(r.Min), Max: pt.Add(r.Max)}
	pad := vg.Points(2)
	box.Min.X, box.Min.Y, box.Max.X, box.Max.Y = box.Min.X-pad, box.Min.Y-pad, box.Max.X+pad, box.Max.Y+pad
	c.SetColor(rgba(0xffffff, 220))
	c.Fill(box.Path())
	c.FillText(sty, pt, v.label)
}

// DataRange implements plot.DataRanger: the line widens only the x range.
func (v vline) DataRange() (xmin, xmax, ymin, ymax float64) {
	return v.x, v.x, math.Inf(1), math.Inf(-1)
}

// Thumbnail implements plot.Thumbnailer.
func (v vline) Thumbnail(c *draw.Canvas) {
	x := c.Center().X
	c.StrokeLine2(v.line, x, c.Min.Y, x, c.Max.Y)
}

// rug is a plotter for short vertical ticks along the bottom of the data
// area, one per value in xs (in the x axis' space): it marks a few values a
// histogram cannot show.
type rug struct {
	xs   []float64
	line draw.LineStyle
}

// Plot implements plot.Plotter.
func (r rug) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	h := (c.Max.Y - c.Min.Y) * 0.18
	for _, v := range r.xs {
		x := trX(v)
		c.StrokeLine2(r.line, x, c.Min.Y, x, c.Min.Y+h)
	}
}

// Thumbnail implements plot.Thumbnailer.
func (r rug) Thumbnail(c *draw.Canvas) {
	x := c.Center().X
	c.StrokeLine2(r.line, x, c.Min.Y, x, c.Max.Y)
}
