package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// out, when set, is where TestRealisticReport leaves its pictures for a
// person to look at: go test ./internal/report -run Realistic -args -out /tmp/report
var out = flag.String("out", "", "directory to write the realistic report into (default: a temporary one)")

// metrics is a synthetic host-metrics matrix like the seed's experiment.
type metrics struct {
	names     []string
	x         []float64 // n×4 row-major
	energies  []float64
	anomalies []int // rows that break the correlation
}

// genMetrics makes n samples of cpu_usage %, mem_usage %, disk_busy % and
// net_in_bps, all driven by one load level, plus two anomalies that break the
// correlation. The energies are the squared standardised residuals from the
// load (what a model that learned the correlation would find), so the
// anomalies get the highest ones.
func genMetrics(n int, seed uint64) metrics {
	r := rand.New(rand.NewPCG(seed, 1))
	m := metrics{names: []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}}
	m.x = make([]float64, 0, 4*n)
	m.energies = make([]float64, 0, n)
	sd := []float64{3, 2.5, 4, 0.15}
	for i := range n {
		load := 0.5 + 0.4*math.Sin(2*math.Pi*float64(i)/288) + 0.08*r.NormFloat64()
		load = min(max(load, 0.02), 0.98)
		mean := []float64{10 + 75*load, 30 + 40*load, 5 + 55*load, math.Log(1e5) + load*math.Log(1e3)}
		row := make([]float64, 4)
		for j := range row {
			row[j] = mean[j] + sd[j]*r.NormFloat64()
		}
		switch i {
		case n / 3: // CPU pegged while nothing else moves
			row[0], row[1], row[2], row[3] = 97, mean[1], mean[2], mean[3]
			m.anomalies = append(m.anomalies, i)
		case 2 * n / 3: // a traffic burst with idle CPU and disk
			row[0], row[1], row[2], row[3] = 12, mean[1], 6, math.Log(9e7)
			m.anomalies = append(m.anomalies, i)
		}
		var e float64
		for j := range row {
			z := (row[j] - mean[j]) / sd[j]
			e += 0.5 * z * z
		}
		row[3] = math.Exp(row[3])
		m.x = append(m.x, row...)
		m.energies = append(m.energies, e-3)
	}
	return m
}

// percentileOf is the p-th percentile of v (nearest rank).
func percentileOf(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(math.Ceil(p/100*float64(len(s))))-1]
}

// genLosses makes the per-epoch losses of a training run that converges.
func genLosses(epochs int) []Series {
	r := rand.New(rand.NewPCG(7, 7))
	total := make([]float64, epochs)
	rec := make([]float64, epochs)
	energy := make([]float64, epochs)
	cov := make([]float64, epochs)
	for e := range epochs {
		t := float64(e)
		rec[e] = 0.04 + 0.9*math.Exp(-t/12) + 0.004*r.NormFloat64()
		energy[e] = 0.1 * (2.5*math.Exp(-t/25) - 1.2 + 0.02*r.NormFloat64())
		cov[e] = 0.005 * (400*math.Exp(-t/6) + 3)
		total[e] = rec[e] + energy[e] + cov[e]
	}
	return []Series{
		{Name: "total", Values: total},
		{Name: "reconstruction", Values: rec},
		{Name: "lambda1 × energy", Values: energy},
		{Name: "lambda2 × covariance penalty", Values: cov},
	}
}

// checkPicture fails unless path is a non-empty, well-formed PNG or SVG, as
// its extension says, and returns the decoded PNG (nil for SVG).
func checkPicture(t *testing.T, path string) image.Image {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read picture: %v", err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	switch filepath.Ext(path) {
	case ".png":
		img, format, err := image.Decode(bytes.NewReader(b))
		if err != nil || format != "png" {
			t.Fatalf("%s: image.Decode = %q, %v; want a PNG", path, format, err)
		}
		if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 300 {
			t.Fatalf("%s is only %v pixels", path, r.Size())
		}
		return img
	case ".svg":
		if !bytes.HasPrefix(b, []byte("<?xml")) && !bytes.HasPrefix(b, []byte("<svg")) {
			t.Fatalf("%s does not start like an SVG: %q", path, b[:min(len(b), 40)])
		}
		dec := xml.NewDecoder(bytes.NewReader(b))
		var sawSVG bool
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s is not well-formed XML: %v", path, err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "svg" {
				sawSVG = true
			}
		}
		if !sawSVG {
			t.Fatalf("%s has no <svg> element", path)
		}
		return nil
	default:
		t.Fatalf("unexpected picture extension in %s", path)
		return nil
	}
}

// checkNoFile fails if path exists.
func checkNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists after an error (stat: %v)", path, err)
	}
}

// redPixels counts the pixels of img close to the flagged colour.
func redPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 190 && g>>8 < 80 && bl>>8 < 80 {
				n++
			}
		}
	}
	return n
}

func TestFormatOf(t *testing.T) {
	for _, tt := range []struct {
		path, want string
		ok         bool
	}{
		{"a/loss.png", "png", true},
		{"a/loss.PNG", "png", true},
		{"loss.svg", "svg", true},
		{"loss.jpg", "", false},
		{"loss.pdf", "", false},
		{"loss", "", false},
		{"loss.png.txt", "", false},
	} {
		got, err := formatOf(tt.path)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("formatOf(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), ".png, .svg") {
			t.Errorf("formatOf(%q) error = %v; want ErrFormat naming .png, .svg", tt.path, err)
		}
	}
}

func TestLossCurve(t *testing.T) {
	good := genLosses(40)
	for _, tt := range []struct {
		name    string
		file    string
		series  []Series
		wantErr error
		errText string
	}{
		{name: "png", file: "loss.png", series: good},
		{name: "svg", file: "loss.svg", series: good},
		{name: "one epoch", file: "loss.png", series: []Series{{Name: "total", Values: []float64{1.5}}}},
		{name: "long run log axis", file: "loss.png", series: []Series{{Values: genLosses(500)[3].Values}}},
		{name: "constant", file: "loss.svg", series: []Series{{Name: "total", Values: []float64{2, 2, 2}}}},
		{name: "bad extension", file: "loss.jpg", series: good, wantErr: ErrFormat, errText: ".png, .svg"},
		{name: "no series", file: "loss.png", wantErr: ErrNoData},
		{name: "empty series", file: "loss.png", series: []Series{{Name: "total"}}, wantErr: ErrNoData, errText: `"total"`},
		{name: "NaN", file: "loss.png", series: []Series{{Name: "total", Values: []float64{1, math.NaN(), 0.5}}},
			wantErr: ErrNotFinite, errText: `"total" at epoch 2 is NaN`},
		{name: "Inf", file: "loss.svg", series: []Series{{Name: "total", Values: []float64{1, 0.7}}, {Name: "energy", Values: []float64{math.Inf(1), 1}}},
			wantErr: ErrNotFinite, errText: `"energy" at epoch 1 is +Inf`},
		{name: "lengths differ", file: "loss.png", series: []Series{{Name: "total", Values: []float64{1, 0.7}}, {Name: "energy", Values: []float64{1}}},
			wantErr: ErrShape, errText: `"energy" has 1 epochs`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			err := LossCurve(path, tt.series)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("LossCurve error = %v; want %v containing %q", err, tt.wantErr, tt.errText)
				}
				checkNoFile(t, path)
				return
			}
			if err != nil {
				t.Fatalf("LossCurve: %v", err)
			}
			checkPicture(t, path)
		})
	}
}

func TestEnergyHistogram(t *testing.T) {
	m := genMetrics(1000, 1)
	thr := percentileOf(m.energies, 99)
	outlier := append(slices.Clone(m.energies), 5e4)
	for _, tt := range []struct {
		name       string
		file       string
		energies   []float64
		scored     []float64
		thr, pct   float64
		wantErr    error
		errText    string
		wantAnyErr bool
	}{
		{name: "png", file: "e.png", energies: m.energies, thr: thr, pct: 99},
		{name: "svg with scored", file: "e.svg", energies: m.energies, scored: m.energies[:100], thr: thr, pct: 99},
		{name: "far outlier symlog", file: "e.png", energies: outlier, thr: thr, pct: 99.5},
		{name: "single energy", file: "e.png", energies: []float64{3}, thr: 3, pct: 99},
		{name: "all equal", file: "e.svg", energies: []float64{-2, -2, -2}, thr: -2, pct: 50},
		{name: "bad extension", file: "e.gif", energies: m.energies, thr: thr, pct: 99, wantErr: ErrFormat},
		{name: "empty", file: "e.png", thr: 1, pct: 99, wantErr: ErrNoData},
		{name: "NaN energy", file: "e.png", energies: []float64{1, 2, math.NaN()}, thr: 1, pct: 99,
			wantErr: ErrNotFinite, errText: "training energy of sample 2 is NaN"},
		{name: "Inf scored", file: "e.png", energies: []float64{1, 2}, scored: []float64{math.Inf(-1)}, thr: 1, pct: 99,
			wantErr: ErrNotFinite, errText: "scored energy of sample 0 is -Inf"},
		{name: "NaN threshold", file: "e.png", energies: []float64{1, 2}, thr: math.NaN(), pct: 99,
			wantErr: ErrNotFinite, errText: "threshold"},
		{name: "percentile 0", file: "e.png", energies: []float64{1, 2}, thr: 1, pct: 0, wantAnyErr: true, errText: "percentile 0"},
		{name: "percentile 101", file: "e.png", energies: []float64{1, 2}, thr: 1, pct: 101, wantAnyErr: true, errText: "percentile 101"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			err := EnergyHistogramScored(path, tt.energies, tt.scored, tt.thr, tt.pct)
			if tt.wantErr != nil || tt.wantAnyErr {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("EnergyHistogram error = %v; want %v containing %q", err, tt.wantErr, tt.errText)
				}
				checkNoFile(t, path)
				return
			}
			if err != nil {
				t.Fatalf("EnergyHistogram: %v", err)
			}
			checkPicture(t, path)
		})
	}
}

func TestScatterMatrix(t *testing.T) {
	m := genMetrics(1000, 2)
	flags := make([]bool, 1000)
	for _, r := range m.anomalies {
		flags[r] = true
	}
	wide, wideNames := widen(m, 12)
	for _, tt := range []struct {
		name    string
		file    string
		names   []string
		x       []float64
		flagged []bool
		show    []string
		wantErr error
		errText string
	}{
		{name: "png", file: "s.png", names: m.names, x: m.x, flagged: flags},
		{name: "show three", file: "s.png", names: m.names, x: m.x, flagged: flags, show: []string{"net_in_bps", "cpu_usage", "disk_busy"}},
		{name: "show unknown", file: "s.png", names: m.names, x: m.x, show: []string{"cpu_usage", "swap"}, errText: `feature "swap" to show is not among the 4 features`},
		{name: "show twice", file: "s.png", names: m.names, x: m.x, show: []string{"cpu_usage", "cpu_usage"}, errText: `"cpu_usage" to show is named twice`},
		{name: "show nine", file: "s.png", names: wideNames, x: wide, show: wideNames[:9], errText: "9 features to show, at most 8"},
		{name: "svg no flags", file: "s.svg", names: m.names, x: m.x},
		{name: "png no flags", file: "s.png", names: m.names, x: m.x, flagged: make([]bool, 1000)},
		{name: "one feature", file: "s.png", names: []string{"cpu_usage"}, x: []float64{1, 2, 3, 50}, flagged: []bool{false, false, false, true}},
		{name: "one row", file: "s.svg", names: []string{"a", "b"}, x: []float64{1, 2}},
		{name: "twelve features capped", file: "s.png", names: wideNames, x: wide, flagged: flags},
		{name: "bad extension", file: "s.bmp", names: m.names, x: m.x, wantErr: ErrFormat},
		{name: "no names", file: "s.png", x: m.x, wantErr: ErrNoData},
		{name: "no rows", file: "s.png", names: m.names, wantErr: ErrNoData},
		{name: "ragged", file: "s.png", names: m.names, x: m.x[:3999], wantErr: ErrShape, errText: "3999 values"},
		{name: "flag count", file: "s.png", names: m.names, x: m.x, flagged: flags[:10], wantErr: ErrShape, errText: "10 flags for 1000 samples"},
		{name: "NaN", file: "s.png", names: []string{"a", "b"}, x: []float64{1, 2, 3, math.NaN()},
			wantErr: ErrNotFinite, errText: `row 1, feature "b" is NaN`},
		{name: "empty name", file: "s.png", names: []string{"a", ""}, x: []float64{1, 2}, errText: "feature 1 has an empty name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			err := ScatterMatrix(path, tt.names, tt.x, tt.flagged, tt.show...)
			if tt.wantErr != nil || tt.errText != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("ScatterMatrix error = %v; want %v containing %q", err, tt.wantErr, tt.errText)
				}
				checkNoFile(t, path)
				return
			}
			if err != nil {
				t.Fatalf("ScatterMatrix: %v", err)
			}
			img := checkPicture(t, path)
			if img == nil {
				return
			}
			nflag := 0
			for _, f := range tt.flagged {
				if f {
					nflag++
				}
			}
			// Each flagged sample is a red dot of ~140 pixels in every panel
			// off the diagonal (plus a red tick on it, and the legend).
			k := min(len(tt.names), MaxScatterFeatures)
			if len(tt.show) > 0 {
				k = len(tt.show)
			}
			red := redPixels(img)
			if (nflag == 0 && red > 0) || (nflag > 0 && (red == 0 || red < nflag*k*(k-1)*100)) {
				t.Errorf("%d flagged samples but %d red pixels", nflag, red)
			}
		})
	}
}

// widen returns m's matrix with d-4 extra noise features (f04, f05, ...)
// appended after the four metrics, and the names.
func widen(m metrics, d int) ([]float64, []string) {
	r := rand.New(rand.NewPCG(3, 3))
	n := len(m.x) / 4
	names := slices.Clone(m.names)
	for j := 4; j < d; j++ {
		names = append(names, "f"+string(rune('0'+j/10))+string(rune('0'+j%10)))
	}
	x := make([]float64, 0, n*d)
	for i := range n {
		x = append(x, m.x[i*4:i*4+4]...)
		for j := 4; j < d; j++ {
			x = append(x, float64(j)+r.NormFloat64())
		}
	}
	return x, names
}

func TestScatterFeatures(t *testing.T) {
	m := genMetrics(500, 4)
	const d = 12
	x, names := widen(m, d)
	row := m.anomalies[0]
	flags := make([]bool, 500)
	flags[row] = true
	// Make the anomaly stand out in two of the noise features only: 9 and 11.
	x[row*d+9] += 40
	x[row*d+11] -= 25
	for _, tt := range []struct {
		name    string
		flagged []bool
		must    []string
		first   []string
	}{
		{name: "no flags keeps the first", flagged: nil, first: names[:MaxScatterFeatures]},
		{name: "flagged deviations win", flagged: flags, must: []string{"f09", "f11", "cpu_usage"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ScatterFeatures(names, x, tt.flagged)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != MaxScatterFeatures {
				t.Fatalf("got %d features %v, want %d", len(got), got, MaxScatterFeatures)
			}
			if tt.first != nil && !slices.Equal(got, tt.first) {
				t.Errorf("got %v, want %v", got, tt.first)
			}
			for _, f := range tt.must {
				if !slices.Contains(got, f) {
					t.Errorf("%q missing from %v", f, got)
				}
			}
			// In the input order.
			pos := func(s string) int { return slices.Index(names, s) }
			if !slices.IsSortedFunc(got, func(a, b string) int { return pos(a) - pos(b) }) {
				t.Errorf("features %v are not in input order", got)
			}
		})
	}
}

func TestChooseScale(t *testing.T) {
	m := genMetrics(1000, 5)
	col := func(j int) []float64 {
		v := make([]float64, 1000)
		for i := range v {
			v[i] = m.x[i*4+j]
		}
		return v
	}
	bulk := make([]float64, 1000)
	for i := range bulk {
		bulk[i] = float64(i%40) - 10
	}
	bulk[500] = 2e5
	for _, tt := range []struct {
		name string
		v    []float64
		want scaleKind
	}{
		{"cpu percent", col(0), linearScale},
		{"net bps over three decades", col(3), logScale},
		{"positive, two decades", []float64{1, 5, 50, 100}, linearScale},
		{"bulk with far outlier", bulk, symlogScale},
		{"energies with two anomalies", m.energies, symlogScale},
		{"constant", []float64{4, 4, 4}, linearScale},
		{"single", []float64{-1}, linearScale},
	} {
		if got := chooseScale(tt.v).kind; got != tt.want {
			t.Errorf("%s: chooseScale = %d, want %d", tt.name, got, tt.want)
		}
	}
	// fwd and inv are inverses.
	for _, s := range []scale{{}, {kind: logScale}, {kind: symlogScale, c: 0.1}, {kind: symlogScale, c: 100}} {
		for _, v := range []float64{-1e6, -3, -0.01, 0, 0.5, 7, 1e8} {
			if s.kind == logScale && v <= 0 {
				continue
			}
			if got := s.inv(s.fwd(v)); math.Abs(got-v) > 1e-9*max(1, math.Abs(v)) {
				t.Errorf("scale %+v: inv(fwd(%v)) = %v", s, v, got)
			}
		}
	}
}

func TestBinning(t *testing.T) {
	m := genMetrics(1000, 6)
	for _, s := range []scale{{}, {kind: logScale}, {kind: symlogScale, c: 1}} {
		v := m.energies
		if s.kind == logScale {
			v = make([]float64, 1000)
			for i := range v {
				v[i] = m.x[i*4+3]
			}
		}
		lo, hi := minMax(v)
		lo0, hi0 := lo, hi
		bn := newBinning(s, lo, hi, 37)
		bins := bn.hist(v, nil)
		if len(bins) != 37 {
			t.Fatalf("scale %+v: %d bins, want 37", s, len(bins))
		}
		var total float64
		for i, b := range bins {
			total += b.Weight
			if !(b.Max > b.Min) || (i > 0 && math.Abs(b.Min-bins[i-1].Max) > 1e-9*max(1, math.Abs(b.Min))) {
				t.Fatalf("scale %+v: bin %d [%v, %v] after [%v, %v]", s, i, b.Min, b.Max, bins[max(i-1, 0)].Min, bins[max(i-1, 0)].Max)
			}
			var want float64
			for _, x := range v { // edges are in the scale's linear (fwd) space
				if f := s.fwd(x); (f >= b.Min && f < b.Max) || (i == len(bins)-1 && x == hi) {
					want++
				}
			}
			if math.Abs(want-b.Weight) > 1 { // a value on an edge may round either way
				t.Errorf("scale %+v: bin %d holds %v, want %v", s, i, b.Weight, want)
			}
		}
		if total != 1000 {
			t.Errorf("scale %+v: bins hold %v values, want 1000", s, total)
		}
		if lo, hi := bins[0].Min, bins[len(bins)-1].Max; math.Abs(lo-s.fwd(lo0)) > 1e-9 || math.Abs(hi-s.fwd(hi0)) > 1e-9 {
			t.Errorf("scale %+v: bins span [%v, %v], want [fwd(%v), fwd(%v)]", s, lo, hi, lo0, hi0)
		}
	}
}

func TestLabels(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {12.345, "12.35"}, {-3.5, "-3.5"}, {9999, "9999"}, {12500, "12.5k"},
		{250000, "250k"}, {999999, "1M"}, {1.5e6, "1.5M"}, {2e9, "2G"}, {3e13, "30T"}, {-4e6, "-4M"},
	} {
		if got := numLabel(tt.v); got != tt.want {
			t.Errorf("numLabel(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for _, tt := range []struct {
		p    float64
		want string
	}{
		{99, "99th"}, {1, "1st"}, {2, "2nd"}, {3, "3rd"}, {11, "11th"}, {12, "12th"}, {13, "13th"},
		{21, "21st"}, {92, "92nd"}, {99.5, "99.5th"}, {100, "100th"},
	} {
		if got := ordinal(tt.p); got != tt.want {
			t.Errorf("ordinal(%v) = %q, want %q", tt.p, got, tt.want)
		}
	}
	for _, tt := range []struct {
		lo, hi float64
		want   []string
	}{
		{-0.0787, 0.19, []string{"-0.05", "0.00", "0.05", "0.10", "0.15"}},
		{0, 100, []string{"0", "20", "40", "60", "80", "100"}},
		{27, 75, []string{"30", "40", "50", "60", "70"}},
		{1e5, 1.2e8, []string{"20M", "40M", "60M", "80M", "100M", "120M"}},
		{100000, 100900, []string{"100.0k", "100.2k", "100.4k", "100.6k", "100.8k"}},
		{1, 1.0001, []string{"1.00000", "1.00002", "1.00004", "1.00006", "1.00008", "1.00010"}},
	} {
		var labels []string
		for _, tk := range (linearTicks{}).Ticks(tt.lo, tt.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if !slices.Equal(labels, tt.want) {
			t.Errorf("linear tick labels over [%v, %v] = %v, want %v", tt.lo, tt.hi, labels, tt.want)
		}
	}
	var labels []string
	for _, tk := range (logTicks{}).Ticks(1.2e5, 9e7) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if want := []string{"1M", "10M"}; !slices.Equal(labels, want) {
		t.Errorf("log tick labels over [1.2e5, 9e7] = %v, want %v", labels, want)
	}
	labels = labels[:0]
	for _, tk := range (symlogTicks{c: 1}).Ticks(-5, 2e3) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	slices.Sort(labels)
	if want := []string{"-1", "0", "1", "10", "100", "1000"}; !slices.Equal(labels, want) {
		t.Errorf("symlog tick labels over [-5, 2000] = %v, want %v", labels, want)
	}
}

// realisticInput is a report input for the seed's experiment.
func realisticInput(t *testing.T, format string) (Input, metrics) {
	t.Helper()
	m := genMetrics(1000, 42)
	return Input{
		Format:     format,
		Losses:     genLosses(100),
		Energies:   m.energies,
		Threshold:  percentileOf(m.energies, 99),
		Percentile: 99,
		Features:   m.names,
		X:          m.x,
		Duration:   1500 * time.Millisecond,
	}, m
}

func TestRealisticReport(t *testing.T) {
	dir := *out
	if dir == "" {
		dir = t.TempDir()
	}
	for _, format := range []string{"png", "svg"} {
		t.Run(format, func(t *testing.T) {
			in, m := realisticInput(t, format)
			paths, err := Write(dir, in)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			want := []string{"loss." + format, "energy." + format, "scatter." + format, SummaryFile}
			if len(paths) != len(want) {
				t.Fatalf("Write returned %v, want %v", paths, want)
			}
			for i, p := range paths {
				if filepath.Base(p) != want[i] || filepath.Dir(p) != filepath.Clean(dir) {
					t.Errorf("path %d = %s, want %s in %s", i, p, want[i], dir)
				}
			}
			for _, p := range paths[:3] {
				checkPicture(t, p)
			}
			b, err := os.ReadFile(paths[3])
			if err != nil {
				t.Fatal(err)
			}
			var s Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatalf("decode %s: %v", paths[3], err)
			}
			var above []int
			for i, e := range m.energies {
				if e > in.Threshold {
					above = append(above, i)
				}
			}
			for _, a := range m.anomalies {
				if !slices.Contains(above, a) {
					t.Fatalf("test data: anomaly %d is not above the threshold", a)
				}
			}
			if format == "png" {
				f, err := os.Open(paths[2])
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				img, err := png.Decode(f)
				if err != nil {
					t.Fatal(err)
				}
				// ~140 red pixels per flagged dot, in 12 panels.
				if red := redPixels(img); red < len(above)*12*100 {
					t.Errorf("scatter matrix has %d red pixels for %d flagged samples", red, len(above))
				}
			}
			if s.Samples != 1000 || s.AboveThreshold != len(above) || s.Flagged != len(above) || !slices.Equal(s.FlaggedRows, above) {
				t.Errorf("summary samples %d above %d flagged %d rows %v; want 1000, %d, %d, %v",
					s.Samples, s.AboveThreshold, s.Flagged, s.FlaggedRows, len(above), len(above), above)
			}
			if s.Epochs != 100 || s.FinalLoss != in.Losses[0].Values[99] || len(s.Losses) != 4 {
				t.Errorf("summary epochs %d final %v series %d; want 100, %v, 4", s.Epochs, s.FinalLoss, len(s.Losses), in.Losses[0].Values[99])
			}
			if s.Threshold != in.Threshold || s.Percentile != 99 || s.DurationSeconds != 1.5 {
				t.Errorf("summary threshold %v percentile %v duration %v", s.Threshold, s.Percentile, s.DurationSeconds)
			}
			if want := 1000.0 * 100 / 1.5; math.Abs(s.Throughput-want) > 1e-6*want {
				t.Errorf("derived throughput %v, want %v", s.Throughput, want)
			}
			if !slices.Equal(s.FeaturesShown, m.names) || !slices.Equal(s.Pictures, want[:3]) {
				t.Errorf("summary features shown %v pictures %v", s.FeaturesShown, s.Pictures)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		edit    func(in *Input)
		wantErr error
		errText string
	}{
		{"bad format", func(in *Input) { in.Format = "jpeg" }, ErrFormat, `"jpeg"`},
		{"no losses", func(in *Input) { in.Losses = nil }, ErrNoData, "loss"},
		{"NaN energy", func(in *Input) { in.Energies[17] = math.NaN() }, ErrNotFinite, "sample 17"},
		{"rows differ from energies", func(in *Input) { in.Energies = in.Energies[:999] }, ErrShape, "999 energies"},
		{"NaN feature", func(in *Input) { in.Flagged = make([]bool, 1000); in.X[4*5+3] = math.Inf(1) }, ErrNotFinite, `row 5, feature "net_in_bps"`},
		{"negative duration", func(in *Input) { in.Duration = -time.Second }, nil, "negative training duration"},
		{"unknown feature to show", func(in *Input) { in.Show = []string{"load"} }, nil, `feature "load" to show`},
		{"NaN throughput", func(in *Input) { in.Throughput = math.NaN() }, nil, "throughput NaN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := realisticInput(t, "png")
			tt.edit(&in)
			dir := filepath.Join(t.TempDir(), "report")
			paths, err := Write(dir, in)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("Write error = %v; want %v containing %q", err, tt.wantErr, tt.errText)
			}
			if paths != nil {
				t.Errorf("Write returned paths %v with an error", paths)
			}
			checkNoFile(t, dir)
		})
	}
}

// TestMorePictures draws the less common cases (a short run, scored
// energies, a capped scatter matrix of many samples) for a person to look at
// with -args -out DIR, and checks they are valid pictures.
func TestMorePictures(t *testing.T) {
	dir := *out
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := genMetrics(1000, 8)
	thr := percentileOf(m.energies, 99)
	big := genMetrics(30000, 9)
	wide, names := widen(big, 12)
	flags := make([]bool, 30000)
	bigThr := percentileOf(big.energies, 99.95)
	for i, e := range big.energies {
		flags[i] = e > bigThr
	}
	for _, tt := range []struct {
		file string
		draw func(path string) error
	}{
		{"short_loss.png", func(p string) error {
			short := genLosses(3)
			return LossCurve(p, short[:2])
		}},
		{"scored_energy.png", func(p string) error {
			scored := slices.Clone(m.energies[:200])
			for i := range 20 {
				scored[i] += 6
			}
			return EnergyHistogramScored(p, m.energies, scored, thr, 99)
		}},
		{"wide_scatter.png", func(p string) error { return ScatterMatrix(p, names, wide, flags) }},
	} {
		path := filepath.Join(dir, tt.file)
		if err := tt.draw(path); err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		checkPicture(t, path)
	}
}

// TestExtremeValues feeds finite values at the ends of the float64 range:
// each call must return (a valid picture or an error) without panicking or
// hanging.
func TestExtremeValues(t *testing.T) {
	const big = math.MaxFloat64
	for _, tt := range []struct {
		name string
		v    []float64
	}{
		{"both ends", []float64{-big, big, 0, 1}},
		{"huge positive", []float64{big, big / 2, big / 4}},
		{"tiny positive", []float64{5e-324, 1e-300, 1}},
		{"huge with close values", []float64{1e17, 1e17 + 64, 1e17 + 32}},
		{"all huge equal", []float64{big, big, big}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			check := func(file string, err error) {
				t.Helper()
				if err != nil {
					t.Logf("%s: %v", file, err)
					return
				}
				checkPicture(t, filepath.Join(dir, file))
			}
			check("loss.png", LossCurve(filepath.Join(dir, "loss.png"), []Series{{Name: "total", Values: tt.v}}))
			check("energy.png", EnergyHistogram(filepath.Join(dir, "energy.png"), tt.v, tt.v[0], 99))
			x := make([]float64, 0, 2*len(tt.v))
			for i, v := range tt.v {
				x = append(x, v, float64(i))
			}
			check("scatter.png", ScatterMatrix(filepath.Join(dir, "scatter.png"), []string{"a", "b"}, x, nil))
		})
	}
}

// TestConcurrentWrite writes two reports at once (run with -race to check
// that nothing is shared).
func TestConcurrentWrite(t *testing.T) {
	in, _ := realisticInput(t, "svg")
	in.Losses = genLosses(5)
	dirs := []string{t.TempDir(), t.TempDir()}
	errs := make(chan error, len(dirs))
	for _, d := range dirs {
		go func() {
			_, err := Write(d, in)
			errs <- err
		}()
	}
	for range dirs {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Write: %v", err)
		}
	}
	a, err := os.ReadFile(filepath.Join(dirs[0], "scatter.svg"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dirs[1], "scatter.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two concurrent reports of the same input differ")
	}
}
