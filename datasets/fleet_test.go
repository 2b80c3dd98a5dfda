package datasets

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"
)

func TestGenerateFleetShape(t *testing.T) {
	cfg := FleetConfig{Hosts: 6, TrainRows: 300, TestRows: 200, Anomalies: 6, TrainAnomalies: 3, Seed: 5}
	f, err := GenerateFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := []FleetHost{{"db-1", RoleDatabase}, {"web-1", RoleWeb}, {"batch-1", RoleBatch}, {"cache-1", RoleCache}, {"db-2", RoleDatabase}, {"web-2", RoleWeb}}
	if !slices.Equal(f.Hosts, wantHosts) {
		t.Fatalf("hosts = %v, want %v", f.Hosts, wantHosts)
	}
	names := []string{"timestamp", "host", "role", "cpu_usage", "mem_usage", "disk_busy", "net_in_bps", "label", "kind", "cause", "event"}
	types := []Type{Time, String, String, Float, Float, Float, Float, Int, String, String, Int}
	start := DefaultFleetConfig().Start
	for _, tt := range []struct {
		name            string
		tab             *Table
		rows, first     int
		anomalies, flag int
	}{
		{"train", f.Train, cfg.TrainRows, 0, cfg.TrainAnomalies, 1},
		{"test", f.Test, cfg.TestRows, cfg.TrainRows, cfg.Anomalies, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab := tt.tab
			if !slices.Equal(tab.Names(), names) || tab.Len() != cfg.Hosts*tt.rows {
				t.Fatalf("columns %q, %d rows; want %q, %d rows", tab.Names(), tab.Len(), names, cfg.Hosts*tt.rows)
			}
			for i, c := range tab.Columns() {
				if c.Type != types[i] {
					t.Errorf("column %s: %v, want %v", c.Name, c.Type, types[i])
				}
			}
			col := func(name string) *Column { c, _ := tab.Column(name); return c }
			ts, host, role := col("timestamp"), col("host"), col("role")
			label, kind, cause, event := col("label"), col("kind"), col("cause"), col("event")
			perHost := map[string]int{}
			kinds := map[string]int{}
			for i := range tab.Len() {
				h := f.Hosts[i%cfg.Hosts]
				want := start.Add(time.Duration(tt.first+i/cfg.Hosts) * time.Minute)
				if !ts.Times[i].Equal(want) || host.Strings[i] != h.Name || role.Strings[i] != h.Role {
					t.Fatalf("row %d: %v %s %s, want %v %s %s", i+1, ts.Times[i], host.Strings[i], role.Strings[i], want, h.Name, h.Role)
				}
				anomalous := label.Ints[i] == 1
				if anomalous != (kind.Strings[i] != "") || anomalous != (cause.Strings[i] != "") {
					t.Fatalf("row %d: label %d, kind %q, cause %q", i+1, label.Ints[i], kind.Strings[i], cause.Strings[i])
				}
				if want := int64(0); anomalous {
					want = int64(tt.flag)
					if event.Ints[i] != want {
						t.Fatalf("row %d: anomalous, event %d, want %d", i+1, event.Ints[i], want)
					}
				} else if event.Ints[i] != 0 {
					t.Fatalf("row %d: normal, event %d", i+1, event.Ints[i])
				}
				if anomalous {
					perHost[h.Name]++
					kinds[kind.Strings[i]]++
					checkCause(t, i, kind.Strings[i], cause.Strings[i], h, f.Hosts)
				}
			}
			for _, h := range f.Hosts {
				// One-sample events in training; 1 to 5 samples each in the test period.
				lo, hi := tt.anomalies, tt.anomalies
				if tt.flag == 0 {
					hi = 5 * tt.anomalies
				}
				if n := perHost[h.Name]; n < lo || n > hi {
					t.Errorf("host %s: %d anomalous rows, want %d to %d", h.Name, n, lo, hi)
				}
			}
			for _, k := range AnomalyKinds() {
				if kinds[k] == 0 {
					t.Errorf("no %s anomaly (kinds %v)", k, kinds)
				}
			}
		})
	}
}

// checkCause checks that an anomaly's cause fits its kind.
func checkCause(t *testing.T, row int, kind, cause string, h FleetHost, hosts []FleetHost) {
	t.Helper()
	switch kind {
	case AnomalyContextual:
		name, ok := strings.CutPrefix(cause, "like ")
		i := slices.IndexFunc(hosts, func(g FleetHost) bool { return g.Name == name })
		if !ok || i < 0 || hosts[i].Role == h.Role {
			t.Fatalf("row %d: host %s (%s): contextual cause %q, want another role's host", row+1, h.Name, h.Role, cause)
		}
	case AnomalyCorrelation, AnomalySpike:
		parts := strings.Split(cause, "+")
		if len(parts) > 2 || (kind == AnomalySpike && len(parts) != 1) {
			t.Fatalf("row %d: %s cause %q", row+1, kind, cause)
		}
		for _, p := range parts {
			if !slices.Contains(GenFeatures(), p) {
				t.Fatalf("row %d: cause %q names no feature", row+1, cause)
			}
		}
	default:
		t.Fatalf("row %d: kind %q, want one of %v", row+1, kind, AnomalyKinds())
	}
}

func TestGenerateFleetDeterministic(t *testing.T) {
	cfg := FleetConfig{Hosts: 5, TrainRows: 200, TestRows: 100, Anomalies: 4, TrainAnomalies: 1, Seed: 9}
	csv := func(cfg FleetConfig) string {
		f, err := GenerateFleet(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, tab := range []*Table{f.Train, f.Test} {
			if err := WriteCSV(&b, tab); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	a, b := csv(cfg), csv(cfg)
	if a != b {
		t.Fatal("the same configuration gave two different fleets")
	}
	cfg.Seed++
	if csv(cfg) == a {
		t.Fatal("seeds 9 and 10 gave the same fleet")
	}
}

// hostStats are one host's normal training rows: each metric's mean and
// standard deviation (net_in_bps in log10) and their correlation matrix.
type hostStats struct {
	role     string
	mean, sd [4]float64
	corr     [4][4]float64
}

func fleetStats(t *testing.T, f *Fleet) []hostStats {
	t.Helper()
	out := make([]hostStats, len(f.Hosts))
	label, _ := f.Train.Column("label")
	var x [4][][]float64
	for m := range x {
		x[m] = make([][]float64, len(f.Hosts))
		c, _ := f.Train.Column(genFeatures[m])
		for i, v := range c.Floats {
			if label.Ints[i] == 1 {
				continue
			}
			if m == 3 {
				v = math.Log10(v)
			}
			x[m][i%len(f.Hosts)] = append(x[m][i%len(f.Hosts)], v)
		}
	}
	for h := range out {
		out[h].role = f.Hosts[h].Role
		for a := range 4 {
			out[h].mean[a], out[h].sd[a] = stat.MeanStdDev(x[a][h], nil)
			for b := range 4 {
				out[h].corr[a][b] = stat.Correlation(x[a][h], x[b][h], nil)
			}
		}
	}
	return out
}

// TestGenerateFleetRolesDiffer checks that hosts of different roles differ
// measurably: every two hosts of different roles have a metric whose means
// are more than 1.5 of their standard deviations apart, every two roles a
// correlation whose mean over the role's hosts differs by more than 0.3, and
// hosts of one role differ from each other too.
func TestGenerateFleetRolesDiffer(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		f, err := GenerateFleet(FleetConfig{Hosts: 20, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		st := fleetStats(t, f)
		roleCorr, count := map[string]*[4][4]float64{}, map[string]int{}
		for _, s := range st {
			count[s.role]++
		}
		for _, s := range st {
			if roleCorr[s.role] == nil {
				roleCorr[s.role] = new([4][4]float64)
			}
			for m := range 4 {
				for n := range 4 {
					roleCorr[s.role][m][n] += s.corr[m][n] / float64(count[s.role])
				}
			}
		}
		for a := range st {
			for b := a + 1; b < len(st); b++ {
				sep := 0.0
				for m := range 4 {
					sep = max(sep, math.Abs(st[a].mean[m]-st[b].mean[m])/math.Max(st[a].sd[m], st[b].sd[m]))
				}
				pair := f.Hosts[a].Name + " and " + f.Hosts[b].Name
				switch {
				case st[a].role != st[b].role && sep < 1.5:
					t.Errorf("seed %d: %s: means at most %.2f standard deviations apart, want 1.5 or more", seed, pair, sep)
				case st[a].role == st[b].role && st[a].mean == st[b].mean:
					t.Errorf("seed %d: %s: same role, same means %v", seed, pair, st[a].mean)
				}
			}
		}
		roles := FleetRoles()
		for i, a := range roles {
			for _, b := range roles[i+1:] {
				diff := 0.0
				for m := range 4 {
					for n := range 4 {
						diff = max(diff, math.Abs(roleCorr[a][m][n]-roleCorr[b][m][n]))
					}
				}
				if diff < 0.3 {
					t.Errorf("seed %d: roles %s and %s: mean correlations at most %.2f apart, want 0.3 or more", seed, a, b, diff)
				}
			}
		}
	}
}

// TestGenerateFleetContextual checks what a contextual anomaly is: its
// values sit within the imitated host's normal range and far outside its
// own host's.
func TestGenerateFleetContextual(t *testing.T) {
	f, err := GenerateFleet(FleetConfig{Hosts: 12, Anomalies: 9, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	st := fleetStats(t, f)
	kind, _ := f.Test.Column("kind")
	cause, _ := f.Test.Column("cause")
	var cols [4]*Column
	for m := range cols {
		cols[m], _ = f.Test.Column(genFeatures[m])
	}
	// maxZ is the row's largest absolute z-score against host h's normal rows.
	maxZ := func(i, h int) float64 {
		z := 0.0
		for m, c := range cols {
			v := c.Floats[i]
			if m == 3 {
				v = math.Log10(v)
			}
			z = max(z, math.Abs(v-st[h].mean[m])/st[h].sd[m])
		}
		return z
	}
	rows, farOwn, nearOther := 0, 0, 0
	for i, k := range kind.Strings {
		if k != AnomalyContextual {
			continue
		}
		other := slices.IndexFunc(f.Hosts, func(g FleetHost) bool { return "like "+g.Name == cause.Strings[i] })
		rows++
		if maxZ(i, i%len(f.Hosts)) > 4 {
			farOwn++
		}
		if maxZ(i, other) < 4 {
			nearOther++
		}
	}
	if rows == 0 {
		t.Fatal("no contextual anomaly")
	}
	if farOwn < rows*9/10 || nearOther < rows*95/100 {
		t.Errorf("of %d contextual rows, %d beyond 4 sd of their own host (want 90%% or more), %d within 4 sd of the imitated host (want 95%% or more)",
			rows, farOwn, nearOther)
	}
}

func TestFleetConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  FleetConfig
		want string // in the error; "" for none
	}{
		{"zero takes defaults", FleetConfig{}, ""},
		{"default", DefaultFleetConfig(), ""},
		{"one host", FleetConfig{Hosts: 1}, "1 hosts, want 2 to"},
		{"too many hosts", FleetConfig{Hosts: 10_001}, "want 2 to 10000"},
		{"negative rows", FleetConfig{TrainRows: -1}, "training"},
		{"too many rows", FleetConfig{Hosts: 10_000, TrainRows: 10_000, TestRows: 1}, "rows in all"},
		{"anomalies crowd the test period", FleetConfig{TestRows: 50, Anomalies: 6}, "TestRows/10 = 5"},
		{"negative anomalies", FleetConfig{Anomalies: -1}, "anomalies per host"},
		{"training anomalies crowd the window", FleetConfig{TrainRows: 10, TrainAnomalies: 2}, "TrainRows/10 = 1"},
		{"negative interval", FleetConfig{Interval: -time.Second}, "negative Interval"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if _, gerr := GenerateFleet(tt.cfg); (gerr == nil) != (err == nil) {
				t.Errorf("GenerateFleet error %v, Validate %v", gerr, err)
			}
		})
	}
}
