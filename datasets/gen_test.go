package datasets

import (
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"
)

func TestGenerateShape(t *testing.T) {
	tab, err := Generate(DefaultGenConfig())
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 1000 {
		t.Fatalf("rows = %d, want 1000", tab.Len())
	}
	wantNames := []string{"timestamp", "host", "cpu_usage", "mem_usage", "disk_busy", "net_in_bps", "label", "cause"}
	if !slices.Equal(tab.Names(), wantNames) {
		t.Fatalf("names = %q, want %q", tab.Names(), wantNames)
	}
	wantTypes := []Type{Time, String, Float, Float, Float, Float, Int, String}
	for i, c := range tab.Columns() {
		if c.Type != wantTypes[i] || c.Nulls != nil {
			t.Errorf("column %q: type %v (nulls %v), want %v", c.Name, c.Type, c.Nulls != nil, wantTypes[i])
		}
	}
	if got := GenFeatures(); !slices.Equal(got, wantNames[2:6]) {
		t.Errorf("GenFeatures = %q", got)
	}
	ts, _ := tab.Column("timestamp")
	host, _ := tab.Column("host")
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := range tab.Len() {
		if want := start.Add(time.Duration(i) * time.Minute); !ts.Times[i].Equal(want) {
			t.Fatalf("timestamp[%d] = %v, want %v", i, ts.Times[i], want)
		}
		if host.Strings[i] != "web-1" {
			t.Fatalf("host[%d] = %q", i, host.Strings[i])
		}
	}
	label, _ := tab.Column("label")
	cause, _ := tab.Column("cause")
	anomalies := 0
	for i, l := range label.Ints {
		if (l == 1) != (cause.Strings[i] != "") || (l != 0 && l != 1) {
			t.Errorf("row %d: label %d, cause %q", i+1, l, cause.Strings[i])
		}
		if l == 1 {
			anomalies++
			if !slices.Contains(GenFeatures(), cause.Strings[i]) {
				t.Errorf("row %d: cause %q, want one feature (MaxBroken 1)", i+1, cause.Strings[i])
			}
		}
	}
	if anomalies != 2 {
		t.Errorf("anomalies = %d, want 2", anomalies)
	}

	zero, err := Generate(GenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := zero.Column("label"); zero.Len() != 1000 || slices.Contains(l.Ints, 1) {
		t.Errorf("zero config: %d rows, labels %v; want 1000 rows without anomalies", zero.Len(), l.Ints)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := GenConfig{N: 3000, Anomalies: 30, MinBroken: 1, MaxBroken: 2, Seed: 42}
	a, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualTables(t, a, b)
	cfg.Seed = 43
	c, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := a.Column("cpu_usage")
	cc, _ := c.Column("cpu_usage")
	if slices.Equal(ca.Floats, cc.Floats) {
		t.Error("seeds 42 and 43 gave the same cpu_usage")
	}
}

// genMetrics returns the four metric columns of tab and the label column.
func genMetrics(t testing.TB, tab *Table) (x [4][]float64, label, cause *Column) {
	t.Helper()
	for f, name := range GenFeatures() {
		c, ok := tab.Column(name)
		if !ok {
			t.Fatalf("no column %q", name)
		}
		x[f] = c.Floats
	}
	label, _ = tab.Column("label")
	cause, _ = tab.Column("cause")
	return x, label, cause
}

func quantile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	return stat.Quantile(p, stat.Empirical, s, nil)
}

func TestGenerateRangesAndCorrelation(t *testing.T) {
	tab, err := Generate(GenConfig{N: 20000, Anomalies: 200, MaxBroken: 2, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	x, label, _ := genMetrics(t, tab)
	for f := range 3 {
		lo, hi := slices.Min(x[f]), slices.Max(x[f])
		if lo < 0 || hi > 100 {
			t.Errorf("%s in [%v, %v], want within [0, 100]", GenFeatures()[f], lo, hi)
		}
		if hi-lo < 40 {
			t.Errorf("%s spans only [%v, %v]", GenFeatures()[f], lo, hi)
		}
	}
	var net []float64
	for i, l := range label.Ints {
		if l == 0 {
			net = append(net, x[3][i])
		}
	}
	if lo, hi := slices.Min(net), slices.Max(net); lo < 5e4 || hi > 3e8 {
		t.Errorf("net_in_bps in [%v, %v] on normal rows, want about 1e5 to 1e8", lo, hi)
	}
	if q05, q95 := quantile(net, 0.05), quantile(net, 0.95); q95/q05 < 100 {
		t.Errorf("net_in_bps 5%%..95%% = %v..%v, want a heavy tail spanning two decades or more", q05, q95)
	}
	// Correlation on normal rows.
	var normal [5][]float64 // cpu, mem, disk, net, log net
	for i, l := range label.Ints {
		if l == 0 {
			for f := range 4 {
				normal[f] = append(normal[f], x[f][i])
			}
			normal[4] = append(normal[4], math.Log(x[3][i]))
		}
	}
	names := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps", "log(net_in_bps)"}
	pairs := [][2]int{{0, 1}, {0, 2}, {1, 2}, {0, 4}, {1, 4}, {2, 4}}
	for _, p := range pairs {
		if r := stat.Correlation(normal[p[0]], normal[p[1]], nil); r < 0.8 {
			t.Errorf("corr(%s, %s) = %.3f on normal rows, want > 0.8", names[p[0]], names[p[1]], r)
		}
	}
}

// deviations returns, for row i, how far each feature's implied load is from
// the mean implied load of the features not in skip.
func deviations(x [4][]float64, i int, skip []int) [4]float64 {
	var mean float64
	k := 0
	for f := range 4 {
		if !slices.Contains(skip, f) {
			mean += impliedLoad(f, x[f][i])
			k++
		}
	}
	mean /= float64(k)
	var d [4]float64
	for f := range 4 {
		d[f] = math.Abs(impliedLoad(f, x[f][i]) - mean)
	}
	return d
}

func TestGenerateAnomalies(t *testing.T) {
	tests := []struct {
		name                 string
		cfg                  GenConfig
		wantBroken           map[int]int // broken features -> anomalies
		minSeparated, minGap float64     // share of anomalies whose broken features are all off by minGap
	}{
		{"default", DefaultGenConfig(), map[int]int{1: 2}, 1, 0.3},
		{"one", GenConfig{N: 10000, Anomalies: 100, Seed: 5}, map[int]int{1: 100}, 0.95, 0.25},
		// A second broken feature goes towards the near end of the range, where 0% clips it.
		{"two", GenConfig{N: 10000, Anomalies: 100, MinBroken: 2, Seed: 5}, map[int]int{2: 100}, 0.95, 0.2},
		{"mix", GenConfig{N: 10000, Anomalies: 101, MinBroken: 1, MaxBroken: 2, Seed: 5}, map[int]int{1: 51, 2: 50}, 0.95, 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Generate(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			x, label, cause := genMetrics(t, tab)
			broken := map[int]int{}
			separated, anomalies, normalOff, normal, pairs, opposed := 0, 0, 0, 0, 0, 0
			for i, l := range label.Ints {
				if l == 0 {
					normal++
					d := deviations(x, i, nil)
					if slices.Max(d[:]) > 0.25 {
						normalOff++
					}
					continue
				}
				anomalies++
				names := strings.Split(cause.Strings[i], "+")
				var fs []int
				for _, n := range names {
					f := slices.Index(GenFeatures(), n)
					if f < 0 {
						t.Fatalf("row %d: cause %q names no feature", i+1, cause.Strings[i])
					}
					fs = append(fs, f)
				}
				if !slices.IsSorted(fs) || len(slices.Compact(slices.Clone(fs))) != len(fs) {
					t.Errorf("row %d: cause %q not in column order or repeated", i+1, cause.Strings[i])
				}
				broken[len(fs)]++
				if len(fs) == 2 {
					pairs++
					if opposite(x, i, fs) {
						opposed++
					}
				}
				d := deviations(x, i, fs)
				ok := true
				for _, f := range fs {
					ok = ok && d[f] >= tt.minGap
				}
				if ok {
					separated++
				}
			}
			if !maps(broken, tt.wantBroken) {
				t.Errorf("anomalies by broken features = %v, want %v", broken, tt.wantBroken)
			}
			if share := float64(separated) / float64(anomalies); share < tt.minSeparated {
				t.Errorf("%d of %d anomalies have every broken feature off by %.2f load or more, want %.0f%%",
					separated, anomalies, tt.minGap, 100*tt.minSeparated)
			}
			if opposed < pairs*95/100 {
				t.Errorf("%d of %d two-feature anomalies break their features in opposite directions, want 95%%", opposed, pairs)
			}
			if share := float64(normalOff) / float64(normal); share > 0.01 {
				t.Errorf("%d of %d normal rows have a feature off by more than 0.25 load, want under 1%%", normalOff, normal)
			}
		})
	}
}

// opposite reports whether the two broken features fs of row i imply loads
// on opposite sides of the mean implied load of the others.
func opposite(x [4][]float64, i int, fs []int) bool {
	var mean float64
	for f := range 4 {
		if !slices.Contains(fs, f) {
			mean += impliedLoad(f, x[f][i]) / 2
		}
	}
	a, b := impliedLoad(fs[0], x[fs[0]][i])-mean, impliedLoad(fs[1], x[fs[1]][i])-mean
	return a*b < 0
}

func maps(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestGenConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  GenConfig
		want string
	}{
		{"negative N", GenConfig{N: -1}, "N = -1 rows, want 1 to 100000000"},
		{"huge N", GenConfig{N: maxGenRows + 1}, "N = 100000001 rows"},
		{"too many anomalies", GenConfig{N: 10, Anomalies: 11}, "11 anomalies, want 0 to N = 10"},
		{"negative anomalies", GenConfig{Anomalies: -1}, "-1 anomalies"},
		{"MinBroken", GenConfig{MinBroken: 4}, "MinBroken = 4, want 1 to 3"},
		{"MaxBroken", GenConfig{MinBroken: 2, MaxBroken: 1}, "MaxBroken = 1, want MinBroken (2) to 3"},
		{"interval", GenConfig{Interval: -time.Second}, "negative Interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "datasets: generator: ") {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
			if _, err := Generate(tt.cfg); err == nil {
				t.Error("Generate accepted an invalid configuration")
			}
		})
	}
	if err := DefaultGenConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}
