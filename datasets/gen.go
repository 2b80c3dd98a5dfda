package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// GenConfig configures [Generate]. Zero N, Host, Start, Interval, MinBroken and
// MaxBroken take their defaults (those of [DefaultGenConfig]; MaxBroken
// defaults to MinBroken); Anomalies and Seed are used as given, zero included.
type GenConfig struct {
	// N is the number of rows, anomalies included (default 1000, at most
	// 100,000,000).
	N int
	// Anomalies is the number of rows, at random positions, whose metrics
	// break the correlation (0 to N; DefaultGenConfig has 2).
	Anomalies int
	// MinBroken and MaxBroken bound the number of features an anomaly breaks
	// (1 to 3): the k-th anomaly in row order (from 0) breaks MinBroken +
	// k mod (MaxBroken-MinBroken+1) features, so MinBroken 1 and MaxBroken 2
	// alternate one and two broken features. Default 1 and 1.
	MinBroken, MaxBroken int
	// Seed seeds the PCG generator: the same configuration gives the same
	// table.
	Seed uint64
	// Host is the value of the host column (default "web-1").
	Host string
	// Start is the first row's timestamp (default 2026-11-24T00:00:00Z).
	Start time.Time
	// Interval separates consecutive timestamps (default one minute).
	Interval time.Duration
}

// maxGenRows bounds GenConfig.N.
const maxGenRows = 100_000_000

// genInterval is both generators' default interval between a host's samples.
const genInterval = time.Minute

// genStart returns both generators' default first timestamp.
func genStart() time.Time { return time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC) }

// clockDefaults returns start and interval, each set to the generators'
// default (genStart, genInterval) when zero.
func clockDefaults(start time.Time, interval time.Duration) (time.Time, time.Duration) {
	if start.IsZero() {
		start = genStart()
	}
	if interval == 0 {
		interval = genInterval
	}
	return start, interval
}

// DefaultGenConfig returns the seed experiment's configuration: 1000 rows, 2
// anomalies of one broken feature each, seed 1, host web-1, one row a minute
// from 2026-11-24T00:00:00Z.
func DefaultGenConfig() GenConfig {
	return GenConfig{
		N:         1000,
		Anomalies: 2,
		MinBroken: 1,
		MaxBroken: 1,
		Seed:      1,
		Host:      "web-1",
		Start:     genStart(),
		Interval:  genInterval,
	}
}

// withDefaults returns c with its zero fields set to their defaults.
func (c GenConfig) withDefaults() GenConfig {
	d := DefaultGenConfig()
	if c.N == 0 {
		c.N = d.N
	}
	if c.MinBroken == 0 {
		c.MinBroken = d.MinBroken
	}
	if c.MaxBroken == 0 {
		c.MaxBroken = c.MinBroken
	}
	if c.Host == "" {
		c.Host = d.Host
	}
	c.Start, c.Interval = clockDefaults(c.Start, c.Interval)
	return c
}

// Validate reports the first invalid field of c, after defaults are applied.
func (c GenConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.N < 1 || c.N > maxGenRows:
		return fmt.Errorf("datasets: generator: N = %d rows, want 1 to %d", c.N, maxGenRows)
	case c.Anomalies < 0 || c.Anomalies > c.N:
		return fmt.Errorf("datasets: generator: %d anomalies, want 0 to N = %d", c.Anomalies, c.N)
	case c.MinBroken < 1 || c.MinBroken > len(genFeatures)-1:
		return fmt.Errorf("datasets: generator: MinBroken = %d, want 1 to %d", c.MinBroken, len(genFeatures)-1)
	case c.MaxBroken < c.MinBroken || c.MaxBroken > len(genFeatures)-1:
		return fmt.Errorf("datasets: generator: MaxBroken = %d, want MinBroken (%d) to %d", c.MaxBroken, c.MinBroken, len(genFeatures)-1)
	case c.Interval < 0:
		return errors.New("datasets: generator: negative Interval")
	}
	return nil
}

// genFeatures are the generated metrics, in column order.
var genFeatures = [...]string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

// GenFeatures returns the names of the four metrics [Generate] makes, in
// column order: cpu_usage (%), mem_usage (%), disk_busy (%), net_in_bps
// (bits per second).
func GenFeatures() []string { return slices.Clone(genFeatures[:]) }

// Noise of each metric around its value for the load: standard deviations in
// percentage points, and of the natural logarithm for net_in_bps.
const (
	cpuNoise  = 3.0
	memNoise  = 2.5
	diskNoise = 4.0
	netNoise  = 0.2
)

// metric returns feature f's value for load (0 to 1) and a standard normal
// noise draw z, clipped to its valid range and rounded as a collector would
// report it (0.01 percentage point, 1 bit per second).
func metric(f int, load, z float64) float64 {
	var v float64
	switch f {
	case 0: // cpu_usage
		v = 5 + 85*load + cpuNoise*z
	case 1: // mem_usage
		v = 25 + 55*load + memNoise*z
	case 2: // disk_busy
		v = 2 + 70*load + diskNoise*z
	case 3: // net_in_bps: 1e5 at no load, 1e8 at full load
		return max(1, math.Round(1e5*math.Exp(math.Log(1e3)*load+netNoise*z)))
	}
	return math.Round(min(100, max(0, v))*100) / 100
}

// impliedLoad inverts metric without noise: the load that feature f's value v
// stands for.
func impliedLoad(f int, v float64) float64 {
	switch f {
	case 0:
		return (v - 5) / 85
	case 1:
		return (v - 25) / 55
	case 2:
		return (v - 2) / 70
	}
	return math.Log(v/1e5) / math.Log(1e3)
}

// brokenLoad returns the load whose value the b-th (from 0) broken feature of
// a row of load takes, u in [0, 1) drawing the distance 0.45 to 0.6. The first
// moves to the far side (up when the load is under 0.5, down otherwise),
// clipped to [0.05, 0.95]; the second the other way, as far, where only the
// metric's own range clips it (a CPU at 0% or 100%); a third as the first.
func brokenLoad(load float64, b int, u float64) float64 {
	d := 0.45 + 0.15*u
	up := load < 0.5
	if b%2 == 1 {
		up = !up
	}
	switch {
	case b%2 == 1 && up:
		return load + d
	case b%2 == 1:
		return load - d
	case up:
		return min(0.95, load+d)
	}
	return max(0.05, load-d)
}

// Generate returns a table of synthetic host metrics: cfg.N rows of
//
//	timestamp   Time    Start, Start+Interval, ...
//	host        String  cfg.Host
//	cpu_usage   Float   CPU usage, % (0 to 100)
//	mem_usage   Float   memory usage, %
//	disk_busy   Float   disk busy time, %
//	net_in_bps  Float   network input, bits per second (about 1e5 to 1e8)
//	label       Int     1 for an injected anomaly, 0 otherwise
//	cause       String  the broken features joined with "+", "" for normal rows
//
// A latent load (a daily cycle, low at 03:00 and high at 15:00, plus a slowly
// wandering AR(1) term, within 0.02 to 0.98) drives all four metrics: each is
// linear in the load (net_in_bps log-linear, so heavy-tailed) plus its own
// noise, so that on normal rows they are strongly correlated. An anomaly keeps
// the row's other metrics and sets each broken one to a value it would have
// under a load 0.45 to 0.6 away: the first broken feature high if the load is
// low and low if it is high (plausible for the metric alone, wrong for the
// row), a second one the other way (a CPU pegged while the network drops), so
// that two broken features disagree with each other as well as with the rest.
//
// The same configuration always gives the same table (math/rand/v2 PCG).
func Generate(cfg GenConfig) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := cfg.N
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))

	times := make([]time.Time, n)
	hosts := make([]string, n)
	loads := make([]float64, n)
	x := [len(genFeatures)][]float64{}
	for f := range x {
		x[f] = make([]float64, n)
	}
	ar := 0.0
	for i := range n {
		ts := cfg.Start.Add(time.Duration(i) * cfg.Interval)
		times[i], hosts[i] = ts, cfg.Host
		h, m, s := ts.UTC().Clock()
		day := float64(h*3600+m*60+s) / 86400
		ar = 0.95*ar + 0.03*rng.NormFloat64()
		load := min(0.98, max(0.02, 0.5+0.3*math.Sin(2*math.Pi*(day-0.375))+ar))
		loads[i] = load
		for f := range x {
			x[f][i] = metric(f, load, rng.NormFloat64())
		}
	}

	labels := make([]int64, n)
	causes := make([]string, n)
	rows := rng.Perm(n)[:cfg.Anomalies]
	slices.Sort(rows)
	span := cfg.MaxBroken - cfg.MinBroken + 1
	for k, i := range rows {
		broken := rng.Perm(len(genFeatures))[:cfg.MinBroken+k%span]
		for b, f := range broken {
			x[f][i] = metric(f, brokenLoad(loads[i], b, rng.Float64()), rng.NormFloat64())
		}
		slices.Sort(broken)
		names := make([]string, len(broken))
		for b, f := range broken {
			names[b] = genFeatures[f]
		}
		labels[i] = 1
		causes[i] = strings.Join(names, "+")
	}

	cols := []*Column{TimeColumn("timestamp", times), StringColumn("host", hosts)}
	for f, name := range genFeatures {
		cols = append(cols, FloatColumn(name, x[f]))
	}
	cols = append(cols, IntColumn("label", labels), StringColumn("cause", causes))
	return NewTable(cols...)
}
