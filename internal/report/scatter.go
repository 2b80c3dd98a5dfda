package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Limits of the scatter matrix, so that the picture stays readable and small.
const (
	// MaxScatterFeatures is the most features a scatter matrix shows.
	MaxScatterFeatures = 8
	maxNormalPoints    = 4000  // normal samples drawn per panel (strided beyond)
	maxFlaggedPoints   = 1000  // flagged samples drawn per panel (strided beyond)
	pointBudget        = 48000 // normal points over all panels, which keeps an SVG under ~8 MB
	minNormalPoints    = 500
)

// ScatterMatrix draws every pair of features against each other to path
// (.png or .svg): x holds n samples of len(names) features, row-major (row i
// is x[i*d:(i+1)*d]); flagged, nil or one per row, marks the samples drawn in
// red and larger over the normal ones. The diagonal shows each feature's
// histogram, with the flagged samples as red ticks along its bottom.
// Features whose values are positive and span more than three decades (such
// as network rates in bps) get a log axis.
//
// At most [MaxScatterFeatures] features are shown. show, when given, names
// them (in the order to draw; unknown or repeated names are an error): pass
// the features the model blames for the flagged samples, for example those
// with the largest share of their reconstruction error. Otherwise, with more
// than MaxScatterFeatures features, the ones where some flagged sample lies
// farthest from the bulk in robust standard deviations are kept, in their
// original order; that finds spikes in one feature but not samples that only
// break a correlation. The picture says when features were left out.
// At most 4,000 normal samples per panel (fewer with more features, about
// 48,000 over all panels: 857 with 8 features) and 1,000 flagged ones are
// drawn, evenly strided, while the histograms and axis ranges use every
// sample; the picture says when points were left out.
//
// Nothing is written on error.
func ScatterMatrix(path string, names []string, x []float64, flagged []bool, show ...string) error {
	_, err := scatterMatrix(path, names, x, flagged, show)
	return err
}

// ScatterFeatures returns the names of the features [ScatterMatrix] would
// show for the same arguments without show, in order.
func ScatterFeatures(names []string, x []float64, flagged []bool) ([]string, error) {
	m, err := newMatrix(names, x, flagged)
	if err != nil {
		return nil, err
	}
	return m.shownNames(m.pick(MaxScatterFeatures)), nil
}

// matrix is a validated feature matrix with its flags and axis scales.
type matrix struct {
	names   []string
	x       []float64
	n, d    int
	flagged []bool // len n
	nflag   int
	scales  []scale
	lo, hi  []float64 // per feature
}

// newMatrix validates the scatter-matrix inputs and computes each feature's
// range and scale.
func newMatrix(names []string, x []float64, flagged []bool) (*matrix, error) {
	d := len(names)
	if d == 0 {
		return nil, fmt.Errorf("%w: no feature names", ErrNoData)
	}
	for j, nm := range names {
		if nm == "" {
			return nil, fmt.Errorf("report: feature %d has an empty name", j)
		}
	}
	if len(x) == 0 {
		return nil, fmt.Errorf("%w: no samples in the feature matrix", ErrNoData)
	}
	if len(x)%d != 0 {
		return nil, fmt.Errorf("%w: feature matrix has %d values, not a multiple of %d features",
			ErrShape, len(x), d)
	}
	n := len(x) / d
	if flagged != nil && len(flagged) != n {
		return nil, fmt.Errorf("%w: %d flags for %d samples", ErrShape, len(flagged), n)
	}
	if err := checkFinite(x, func(i int) string {
		return fmt.Sprintf("row %d, feature %q", i/d, names[i%d])
	}); err != nil {
		return nil, err
	}
	m := &matrix{names: names, x: x, n: n, d: d, flagged: flagged,
		scales: make([]scale, d), lo: make([]float64, d), hi: make([]float64, d)}
	if m.flagged == nil {
		m.flagged = make([]bool, n)
	}
	for _, f := range m.flagged {
		if f {
			m.nflag++
		}
	}
	col := make([]float64, n)
	for j := range d {
		m.column(col, j)
		m.lo[j], m.hi[j] = minMax(col)
		m.scales[j] = chooseScale(col)
	}
	return m, nil
}

// column copies feature j of every row into dst (len n).
func (m *matrix) column(dst []float64, j int) {
	for i := range dst {
		dst[i] = m.x[i*m.d+j]
	}
}

// pick returns the indices of at most k features to show, in order: all of
// them when there are k or fewer, else the k where some flagged sample lies
// farthest from the feature's median, in robust standard deviations (on the
// feature's axis scale). Ties, and the case of no flagged sample, keep the
// first features.
func (m *matrix) pick(k int) []int {
	idx := make([]int, m.d)
	for j := range idx {
		idx[j] = j
	}
	if m.d <= k {
		return idx
	}
	score := make([]float64, m.d)
	if m.nflag > 0 {
		col := make([]float64, m.n)
		for j := range m.d {
			m.column(col, j)
			for i, v := range col {
				col[i] = m.scales[j].fwd(v)
			}
			med, _ := quantiles(col, 0.5, 0.5)
			q25, q75 := quantiles(col, 0.25, 0.75)
			spread := (q75 - q25) / 1.349 // the standard deviation of a normal
			if spread <= 0 {
				q01, q99 := quantiles(col, 0.01, 0.99)
				spread = (q99 - q01) / 4.65
			}
			for i, v := range col {
				if !m.flagged[i] {
					continue
				}
				dev := math.Abs(v - med)
				switch {
				case spread > 0:
					score[j] = max(score[j], dev/spread)
				case dev > 0: // a constant feature the flagged sample leaves
					score[j] = math.Inf(1)
				}
			}
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	idx = idx[:k]
	slices.Sort(idx)
	return idx
}

// lookup returns the indices of the named features, refusing unknown or
// repeated names and more than MaxScatterFeatures of them.
func (m *matrix) lookup(show []string) ([]int, error) {
	if len(show) > MaxScatterFeatures {
		return nil, fmt.Errorf("report: %d features to show, at most %d fit a scatter matrix", len(show), MaxScatterFeatures)
	}
	idx := make([]int, len(show))
	for i, nm := range show {
		j := slices.Index(m.names, nm)
		if j < 0 {
			return nil, fmt.Errorf("report: feature %q to show is not among the %d features", nm, m.d)
		}
		if slices.Contains(idx[:i], j) {
			return nil, fmt.Errorf("report: feature %q to show is named twice", nm)
		}
		idx[i] = j
	}
	return idx, nil
}

// shownNames maps feature indices to names.
func (m *matrix) shownNames(idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = m.names[j]
	}
	return out
}

// stride returns the rows with flag f, every s-th one so at most limit remain,
// and s.
func (m *matrix) stride(f bool, limit int) ([]int, int) {
	total := m.nflag
	if !f {
		total = m.n - m.nflag
	}
	s := max(1, (total+limit-1)/limit)
	var rows []int
	k := 0
	for i, g := range m.flagged {
		if g != f {
			continue
		}
		if k%s == 0 {
			rows = append(rows, i)
		}
		k++
	}
	return rows, s
}

// scatterMatrix draws the scatter matrix and returns the features shown.
func scatterMatrix(path string, names []string, x []float64, flagged []bool, show []string) ([]string, error) {
	format, err := formatOf(path)
	if err != nil {
		return nil, err
	}
	m, err := newMatrix(names, x, flagged)
	if err != nil {
		return nil, err
	}
	shown := m.pick(MaxScatterFeatures)
	why := "those where the flagged samples stand out most"
	if len(show) > 0 {
		if shown, err = m.lookup(show); err != nil {
			return nil, err
		}
		why = "as chosen"
	}
	k := len(shown)
	perPanel := maxNormalPoints
	if k > 1 {
		perPanel = min(max(pointBudget/(k*(k-1)), minNormalPoints), maxNormalPoints)
	}
	normal, ns := m.stride(false, perPanel)
	flag, fs := m.stride(true, maxFlaggedPoints)

	plots := make([][]*plot.Plot, k)
	for r, fi := range shown {
		plots[r] = make([]*plot.Plot, k)
		for c, fj := range shown {
			var p *plot.Plot
			if r == c {
				p = m.histPanel(fi, flag)
			} else if p, err = m.scatterPanel(fj, fi, normal, flag); err != nil {
				return nil, fmt.Errorf("report: scatter panel %s × %s: %w", names[fj], names[fi], err)
			}
			if r == k-1 {
				p.X.Label.Text = names[fj] + m.scales[fj].suffix()
			}
			if c == 0 {
				p.Y.Label.Text = names[fi] + m.scales[fi].suffix()
				if r == c {
					p.Y.Label.Text = "samples"
				}
			}
			plots[r][c] = p
		}
	}

	lines := []string{fmt.Sprintf("Scatter matrix of the features: %d of %d samples flagged (red)", m.nflag, m.n)}
	if k < m.d {
		lines = append(lines, fmt.Sprintf("showing %d of %d features, %s", k, m.d, why))
	}
	if ns > 1 || fs > 1 {
		lines = append(lines, fmt.Sprintf("points drawn: %d of %d normal and %d of %d flagged samples (evenly strided); histograms use all",
			len(normal), m.n-m.nflag, len(flag), m.nflag))
	}
	lines = append(lines, "diagonal: each feature's histogram, flagged samples as red ticks")
	tile := 1.6 * vg.Inch
	switch {
	case k <= 3:
		tile = 2.6 * vg.Inch
	case k <= 5:
		tile = 2.1 * vg.Inch
	}
	w := max(vg.Length(k)*tile+1.2*vg.Inch, 7.5*vg.Inch) // room for the header
	h := vg.Length(k)*tile + vg.Length(len(lines))*0.25*vg.Inch + 1.1*vg.Inch
	err = save(path, format, w, h, func(dc draw.Canvas) {
		body := header(dc, lines...)
		items := []legendItem{{normalGlyph(len(normal)), fmt.Sprintf("normal (%d)", m.n-m.nflag)}}
		if m.nflag > 0 {
			items = append(items, legendItem{flaggedGlyph(), fmt.Sprintf("flagged (%d)", m.nflag)})
		}
		body = legendRow(body, items)
		tiles := draw.Tiles{Rows: k, Cols: k, PadX: vg.Points(6), PadY: vg.Points(6),
			PadLeft: vg.Points(6), PadRight: vg.Points(14), PadBottom: vg.Points(6)}
		cs := plot.Align(plots, tiles, body)
		for r := range plots {
			for c := range plots[r] {
				plots[r][c].Draw(cs[r][c])
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return m.shownNames(shown), nil
}

// normalGlyph is the style of a normal sample; smaller and fainter when many
// are drawn.
func normalGlyph(n int) draw.GlyphStyle {
	if n > 1500 {
		return draw.GlyphStyle{Color: rgba(colNormal, 90), Radius: vg.Points(1.1), Shape: draw.CircleGlyph{}}
	}
	return draw.GlyphStyle{Color: rgba(colNormal, 140), Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}}
}

// flaggedGlyph is the style of a flagged sample.
func flaggedGlyph() draw.GlyphStyle {
	return draw.GlyphStyle{Color: rgba(colFlagged, 255), Radius: vg.Points(3.2), Shape: draw.CircleGlyph{}}
}

// flaggedRing outlines flagged samples so they stand out on dense areas.
func flaggedRing() draw.GlyphStyle {
	return draw.GlyphStyle{Color: rgba(0x5a0000, 255), Radius: vg.Points(3.2), Shape: draw.RingGlyph{}}
}

// panel returns an empty scatter-matrix panel with small fonts.
func panel() *plot.Plot {
	p := newPlot("", 10, 10)
	p.X.Tick.Label.Font = sans(7.5, false)
	p.Y.Tick.Label.Font = sans(7.5, false)
	p.X.Padding, p.Y.Padding = vg.Points(3), vg.Points(3)
	return p
}

// scatterPanel plots feature fy against feature fx.
func (m *matrix) scatterPanel(fx, fy int, normal, flag []int) (*plot.Plot, error) {
	p := panel()
	m.scales[fx].apply(&p.X)
	m.scales[fy].apply(&p.Y)
	p.Add(gridLight())
	sx, sy := m.scales[fx], m.scales[fy]
	xy := func(rows []int) plotter.XYs {
		out := make(plotter.XYs, len(rows))
		for i, r := range rows {
			out[i] = plotter.XY{X: sx.fwd(m.x[r*m.d+fx]), Y: sy.fwd(m.x[r*m.d+fy])}
		}
		return out
	}
	if len(normal) > 0 {
		s, err := plotter.NewScatter(xy(normal))
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = normalGlyph(len(normal))
		p.Add(s)
	}
	if len(flag) > 0 {
		pts := xy(flag)
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = flaggedGlyph()
		ring, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		ring.GlyphStyle = flaggedRing()
		p.Add(s, ring)
	}
	p.X.Min, p.X.Max = sx.fwd(m.lo[fx]), sx.fwd(m.hi[fx])
	p.Y.Min, p.Y.Max = sy.fwd(m.lo[fy]), sy.fwd(m.hi[fy])
	return p, nil
}

// histPanel is the histogram of feature f over all samples, with the flagged
// rows as a red rug.
func (m *matrix) histPanel(f int, flag []int) *plot.Plot {
	p := panel()
	p.Title.Text = m.names[f]
	p.Title.TextStyle.Font = sans(10, true)
	s := m.scales[f]
	s.apply(&p.X)
	scale{}.apply(&p.Y)
	p.Add(gridLight())
	col := make([]float64, m.n)
	m.column(col, f)
	bn := newBinning(s, m.lo[f], m.hi[f], binCount(m.n, 10, 40))
	bins := bn.hist(col, nil)
	p.Add(bars{bins: bins, fill: rgba(colNormal, 150), line: draw.LineStyle{Color: rgba(colNormal, 255), Width: vg.Points(0.5)}})
	if len(flag) > 0 {
		xs := make([]float64, len(flag))
		for i, r := range flag {
			xs[i] = s.fwd(m.x[r*m.d+f])
		}
		p.Add(rug{xs: xs, line: draw.LineStyle{Color: rgba(colFlagged, 255), Width: vg.Points(1.6)}})
	}
	p.X.Min, p.X.Max = bins[0].Min, bins[len(bins)-1].Max
	p.Y.Min, p.Y.Max = 0, maxWeight(bins)*1.08
	return p
}

// gridLight is a faint grid.
func gridLight() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Color = rgba(0xcccccc, 255)
	g.Horizontal.Color = rgba(0xcccccc, 255)
	g.Vertical.Width = vg.Points(0.4)
	g.Horizontal.Width = vg.Points(0.4)
	return g
}

// legendItem is one entry of a legendRow.
type legendItem struct {
	glyph draw.GlyphStyle
	text  string
}

// legendRow draws the items side by side, centred at the top of dc, and
// returns the canvas below them.
func legendRow(dc draw.Canvas, items []legendItem) draw.Canvas {
	sty := textStyle(11, false, draw.XLeft, draw.YCenter)
	gap := vg.Points(8)
	var total vg.Length
	for _, it := range items {
		total += 2*it.glyph.Radius + gap/2 + sty.Width(it.text) + 2*gap
	}
	total -= 2 * gap
	y := dc.Max.Y - vg.Points(8)
	x := dc.Center().X - total/2
	for _, it := range items {
		g := it.glyph
		g.Radius = max(g.Radius, vg.Points(3))
		x += g.Radius
		dc.DrawGlyphNoClip(g, vg.Point{X: x, Y: y})
		x += g.Radius + gap/2
		dc.FillText(sty, vg.Point{X: x, Y: y}, it.text)
		x += sty.Width(it.text) + 2*gap
	}
	dc.Max.Y = y - vg.Points(12)
	return dc
}
