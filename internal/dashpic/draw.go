package dashpic

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// hostColors are the hosts' line colours, in the order of the hosts.
var hostColors = []color.Color{
	color.RGBA{0x73, 0xbf, 0x69, 0xff}, // green
	color.RGBA{0xf2, 0xcc, 0x0c, 0xff}, // yellow
	color.RGBA{0x56, 0x94, 0xf2, 0xff}, // blue
	color.RGBA{0xff, 0x78, 0x0a, 0xff}, // orange
	color.RGBA{0xb8, 0x77, 0xd9, 0xff}, // purple
}

// RateSteps is the number of frames the anomalies panel's increase spans:
// the dashboard's increase(dagmm_host_anomalies_total[1m]) at the
// scenario's 15 s interval.
const RateSteps = 4

// Draw draws the dashboard's four main panels from frames to path (.png
// or .svg): each host's energy against its threshold, the anomalies per
// minute (the increase of dagmm_host_anomalies_total), the severity with
// the alerts' bands, and the latest anomaly's top feature and share
// (dagmm_host_explanation) at the last frame.
func Draw(path string, frames []Frame) error {
	if len(frames) == 0 {
		return errors.New("dashpic: no frames to draw")
	}
	format := filepath.Ext(path)
	if format != ".png" && format != ".svg" {
		return fmt.Errorf("dashpic: %s: want a .png or .svg file", path)
	}
	hosts := hostsOf(frames)
	panels := []*plot.Plot{
		energyPanel(frames, hosts),
		anomaliesPanel(frames, hosts),
		severityPanel(frames, hosts),
		explanationPanel(frames[len(frames)-1], hosts),
	}
	for _, p := range panels {
		if p == nil {
			return errors.New("dashpic: a panel cannot be drawn")
		}
	}
	const w, h = 12 * vg.Inch, 7 * vg.Inch
	return save(path, format, w, h, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
			PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
		canvases := plot.Align([][]*plot.Plot{panels[:2], panels[2:]}, tiles, dc)
		for i, p := range panels {
			p.Draw(canvases[i/2][i%2])
		}
	})
}

// hostsOf returns the hosts of the last frame, sorted.
func hostsOf(frames []Frame) []string {
	var hosts []string
	for h := range frames[len(frames)-1].Hosts {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}

func newPanel(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = ylabel
	p.X.Tick.Marker = plot.TimeTicks{Format: "15:04"}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// series returns the points of f over the frames where the host has
// series.
func series(frames []Frame, host string, f func(HostState) float64) plotter.XYs {
	var xy plotter.XYs
	for _, fr := range frames {
		if st, ok := fr.Hosts[host]; ok {
			xy = append(xy, plotter.XY{X: float64(fr.T.Unix()), Y: f(st)})
		}
	}
	return xy
}

func addLine(p *plot.Plot, xy plotter.XYs, c color.Color, dashed bool, legend string) {
	l, err := plotter.NewLine(xy)
	if err != nil {
		return
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		l.Width = vg.Points(1)
	}
	p.Add(l)
	if legend != "" {
		p.Legend.Add(legend, l)
	}
}

func energyPanel(frames []Frame, hosts []string) *plot.Plot {
	p := newPanel("Energy against threshold\ndagmm_host_energy, dagmm_host_threshold", "energy")
	for i, h := range hosts {
		c := hostColors[i%len(hostColors)]
		addLine(p, series(frames, h, func(s HostState) float64 { return s.Energy }), c, false, h)
	}
	th := series(frames, hosts[0], func(s HostState) float64 { return s.Threshold })
	addLine(p, th, color.RGBA{0xe0, 0x2f, 0x44, 0xff}, true, "threshold")
	return p
}

func anomaliesPanel(frames []Frame, hosts []string) *plot.Plot {
	p := newPanel("Anomalies\nincrease(dagmm_host_anomalies_total[1m])", "anomalies")
	for i, h := range hosts {
		total := series(frames, h, func(s HostState) float64 { return s.Anomalies })
		inc := make(plotter.XYs, len(total))
		for k := range total {
			inc[k] = plotter.XY{X: total[k].X, Y: total[k].Y - total[max(0, k-RateSteps)].Y}
		}
		addLine(p, inc, hostColors[i%len(hostColors)], false, h)
	}
	p.Y.Min = 0
	return p
}

func severityPanel(frames []Frame, hosts []string) *plot.Plot {
	p := newPanel("Severity (alerts at 60 and 75)\ndagmm_host_severity", "severity (0-100)")
	x0, x1 := float64(frames[0].T.Unix()), float64(frames[len(frames)-1].T.Unix())
	for _, b := range []struct {
		y float64
		c color.Color
	}{
		{60, color.RGBA{0xff, 0x98, 0x30, 0xff}},
		{75, color.RGBA{0xe0, 0x2f, 0x44, 0xff}},
	} {
		addLine(p, plotter.XYs{{X: x0, Y: b.y}, {X: x1, Y: b.y}}, b.c, true, "")
	}
	for i, h := range hosts {
		addLine(p, series(frames, h, func(s HostState) float64 { return s.Severity }), hostColors[i%len(hostColors)], false, h)
	}
	p.Y.Min, p.Y.Max = 0, 100
	return p
}

func explanationPanel(last Frame, hosts []string) *plot.Plot {
	p := plot.New()
	p.Title.Text = "Latest anomaly's explanation\ndagmm_host_explanation{host, feature}"
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = "share of the anomaly"
	var vals plotter.Values
	var names []string
	for _, h := range hosts {
		st := last.Hosts[h]
		if st.Feature == "" {
			continue
		}
		vals = append(vals, st.Share)
		names = append(names, h+"\n"+st.Feature)
	}
	if len(vals) == 0 {
		vals, names = plotter.Values{0}, []string{"no anomaly yet"}
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(40))
	if err != nil {
		return nil
	}
	bars.Color = color.RGBA{0x56, 0x94, 0xf2, 0xff}
	bars.LineStyle.Width = 0
	p.Add(plotter.NewGrid(), bars)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.7, float64(len(vals))-0.3
	p.Y.Min, p.Y.Max = 0, 1
	return p
}

// save draws with fn on a w×h canvas of the format (.png at 120 dpi, or
// .svg) and writes it to path; nothing is written when drawing fails.
func save(path, format string, w, h vg.Length, fn func(draw.Canvas)) error {
	var wt io.WriterTo
	switch format {
	case ".png":
		c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
		fn(draw.New(c))
		wt = vgimg.PngCanvas{Canvas: c}
	default:
		c := vgsvg.New(w, h)
		fn(draw.New(c))
		wt = c
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return fmt.Errorf("dashpic: draw %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("dashpic: %w", err)
	}
	return nil
}
