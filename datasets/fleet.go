package datasets

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Host roles of a generated fleet: each has its own normal behaviour.
const (
	RoleDatabase = "database"
	RoleWeb      = "web"
	RoleBatch    = "batch"
	RoleCache    = "cache"
)

// Kinds of anomaly [GenerateFleet] injects, in its kind column.
const (
	// AnomalyContextual: for a few samples the host reports what a healthy
	// host of another role reports at that time (a cache host looking like
	// a web server): ordinary values in the fleet, wrong for this host.
	AnomalyContextual = "contextual"
	// AnomalyCorrelation: one or two of the host's most load-driven metrics
	// take the values of a load 0.45 to 0.6 away, as in [Generate]: each
	// value within the host's own range, the row inconsistent.
	AnomalyCorrelation = "correlation"
	// AnomalySpike: one metric 8 to 12 of the host's noise standard
	// deviations above its value at full load.
	AnomalySpike = "spike"
)

// FleetRoles returns the host roles in the order hosts are assigned to them.
func FleetRoles() []string { return []string{RoleDatabase, RoleWeb, RoleBatch, RoleCache} }

// AnomalyKinds returns the kinds of anomaly [GenerateFleet] injects, in the
// order each host's events cycle through them.
func AnomalyKinds() []string {
	return []string{AnomalyContextual, AnomalyCorrelation, AnomalySpike}
}

// FleetConfig configures [GenerateFleet]. Zero Hosts, TrainRows, TestRows,
// Start and Interval take the defaults of [DefaultFleetConfig]; Anomalies,
// TrainAnomalies and Seed are used as given, zero included.
type FleetConfig struct {
	// Hosts is the number of hosts, 2 to 10,000 (default 20); host i has
	// role FleetRoles()[i mod 4].
	Hosts int
	// TrainRows and TestRows are each host's samples in the training window
	// and in the test period that follows it (default 1,000 each).
	TrainRows, TestRows int
	// Anomalies is the number of anomalous events per host in the test
	// period (DefaultFleetConfig has 6), each 1 to 5 consecutive samples,
	// their kinds cycling through [AnomalyKinds]; at most TestRows/10.
	Anomalies int
	// TrainAnomalies is the number of one-sample anomalies per host in the
	// training window (DefaultFleetConfig has 2), flagged in the event
	// column as the existing monitoring would have; at most TrainRows/10.
	TrainAnomalies int
	// Seed seeds the PCG generator: the same configuration gives the same
	// fleet.
	Seed uint64
	// Start is the training window's first timestamp (default
	// 2026-11-24T00:00:00Z); Interval separates a host's samples (default
	// one minute).
	Start    time.Time
	Interval time.Duration
}

// maxFleetHosts bounds FleetConfig.Hosts; maxFleetRows bounds the rows of
// the whole fleet.
const (
	maxFleetHosts = 10_000
	maxFleetRows  = 100_000_000
)

// DefaultFleetConfig returns 20 hosts of 1,000 training and 1,000 test
// samples a minute each from 2026-11-24T00:00:00Z, 6 anomalous events per
// host in the test period and 2 flagged ones in the training window, seed 1.
func DefaultFleetConfig() FleetConfig {
	return FleetConfig{
		Hosts:          20,
		TrainRows:      1000,
		TestRows:       1000,
		Anomalies:      6,
		TrainAnomalies: 2,
		Seed:           1,
		Start:          genStart(),
		Interval:       genInterval,
	}
}

// withDefaults returns c with its zero fields set to their defaults.
func (c FleetConfig) withDefaults() FleetConfig {
	d := DefaultFleetConfig()
	if c.Hosts == 0 {
		c.Hosts = d.Hosts
	}
	if c.TrainRows == 0 {
		c.TrainRows = d.TrainRows
	}
	if c.TestRows == 0 {
		c.TestRows = d.TestRows
	}
	c.Start, c.Interval = clockDefaults(c.Start, c.Interval)
	return c
}

// Validate reports the first invalid field of c, after defaults are applied.
func (c FleetConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Hosts < 2 || c.Hosts > maxFleetHosts:
		return fmt.Errorf("datasets: fleet: %d hosts, want 2 to %d (a contextual anomaly takes another role's values)", c.Hosts, maxFleetHosts)
	case c.TrainRows < 1 || c.TestRows < 1:
		return fmt.Errorf("datasets: fleet: %d training and %d test rows per host, want at least 1 each", c.TrainRows, c.TestRows)
	case c.Hosts*(c.TrainRows+c.TestRows) > maxFleetRows:
		return fmt.Errorf("datasets: fleet: %d hosts × %d rows, want at most %d rows in all", c.Hosts, c.TrainRows+c.TestRows, maxFleetRows)
	case c.Anomalies < 0 || c.Anomalies*10 > c.TestRows:
		return fmt.Errorf("datasets: fleet: %d anomalies per host, want 0 to TestRows/10 = %d", c.Anomalies, c.TestRows/10)
	case c.TrainAnomalies < 0 || c.TrainAnomalies*10 > c.TrainRows:
		return fmt.Errorf("datasets: fleet: %d training anomalies per host, want 0 to TrainRows/10 = %d", c.TrainAnomalies, c.TrainRows/10)
	case c.Interval < 0:
		return errors.New("datasets: fleet: negative Interval")
	}
	return nil
}

// FleetHost is one generated host: its name (the host column) and role.
type FleetHost struct {
	Name, Role string
}

// Fleet is a generated fleet: its hosts, and the rows of their training
// window and of the test period that follows it (columns as described at
// [GenerateFleet]).
type Fleet struct {
	Hosts       []FleetHost
	Train, Test *Table
}

// span is a range of values a host's parameter is drawn from, uniformly.
type span [2]float64

func (s span) draw(rng *rand.Rand) float64 { return s[0] + (s[1]-s[0])*rng.Float64() }

// metricSpec is how one metric of a role follows the host's load L and
// burst B (both 0 to 1): base + load·L + burst·B + noise·z, z standard
// normal; net_in_bps in log10 bits per second, the others in percent.
type metricSpec struct{ base, load, burst, noise span }

// roleSpec is one role's normal behaviour: its metrics, and its bursts
// (backups, checkpoints, batch jobs): on for burstOn minutes and off for
// burstOff on average.
type roleSpec struct {
	name, prefix      string
	metrics           [len(genFeatures)]metricSpec
	burstOn, burstOff float64
}

// roleSpecs returns the roles' behaviour, in FleetRoles order.
func roleSpecs() []roleSpec {
	return []roleSpec{
		{name: RoleDatabase, prefix: "db", burstOn: 5, burstOff: 25, metrics: [4]metricSpec{
			{span{10, 20}, span{35, 50}, span{0, 5}, span{2, 4}},           // cpu: queries
			{span{70, 80}, span{0, 2}, span{0, 0}, span{0.8, 1.5}},         // mem: the buffer pool
			{span{5, 15}, span{10, 20}, span{35, 50}, span{2, 4}},          // disk: checkpoints
			{span{4.8, 5.3}, span{0.8, 1.3}, span{0, 0}, span{0.08, 0.12}}, // net: queries in
		}},
		{name: RoleWeb, prefix: "web", burstOn: 5, burstOff: 55, metrics: [4]metricSpec{
			{span{8, 15}, span{45, 65}, span{0, 0}, span{2, 4}},
			{span{25, 40}, span{8, 15}, span{0, 0}, span{1.5, 2.5}},
			{span{2, 5}, span{0, 2}, span{5, 10}, span{1, 2}}, // log rotation
			{span{5.3, 5.8}, span{1.5, 2.2}, span{0, 0}, span{0.08, 0.15}},
		}},
		{name: RoleBatch, prefix: "batch", burstOn: 45, burstOff: 60, metrics: [4]metricSpec{
			{span{3, 8}, span{0, 5}, span{70, 85}, span{2, 4}}, // jobs, not the daily load
			{span{15, 25}, span{0, 0}, span{40, 55}, span{1.5, 3}},
			{span{3, 8}, span{0, 0}, span{30, 50}, span{2, 4}},
			{span{4, 4.5}, span{0.3, 0.6}, span{0, 0}, span{0.08, 0.12}}, // control traffic
		}},
		{name: RoleCache, prefix: "cache", burstOn: 10, burstOff: 110, metrics: [4]metricSpec{
			{span{4, 8}, span{10, 20}, span{5, 10}, span{1, 2}},
			{span{87, 92}, span{1, 3}, span{-4, -2}, span{0.5, 1}}, // snapshots evict
			{span{0.5, 2}, span{0, 2}, span{3, 6}, span{0.3, 0.8}}, // and write
			{span{6.2, 6.8}, span{1, 1.6}, span{0, 0}, span{0.06, 0.12}},
		}},
	}
}

// metricParams is one host's metric: base + load·L + burst·B + noise·z.
type metricParams struct{ base, load, burst, noise float64 }

// hostModel is one host's normal behaviour, drawn from its role's spans.
type hostModel struct {
	role    int
	metrics [len(genFeatures)]metricParams
	// amp and phase shape the daily cycle; pOn and pOff are the chances a
	// burst starts or ends in one interval.
	amp, phase, pOn, pOff float64
}

func drawHost(rng *rand.Rand, role int, spec roleSpec, interval time.Duration) hostModel {
	h := hostModel{role: role, amp: span{0.25, 0.35}.draw(rng), phase: span{-1.5, 1.5}.draw(rng) / 24}
	for f, m := range spec.metrics {
		h.metrics[f] = metricParams{m.base.draw(rng), m.load.draw(rng), m.burst.draw(rng), m.noise.draw(rng)}
	}
	minutes := interval.Minutes()
	h.pOn, h.pOff = min(1, minutes/spec.burstOff), min(1, minutes/spec.burstOn)
	return h
}

// value returns metric f of host h under load l and burst b with the
// standard normal draw z, clipped and rounded as [metric] does.
func (h *hostModel) value(f int, l, b, z float64) float64 {
	p := h.metrics[f]
	v := p.base + p.load*l + p.burst*b + p.noise*z
	if f == 3 {
		return max(1, math.Round(math.Pow(10, v)))
	}
	return math.Round(min(100, max(0, v))*100) / 100
}

// latent returns the host's load and burst series over n samples from
// start: the load a daily cycle (shifted by the host's phase) plus an AR(1)
// term as in [Generate], the burst a two-state Markov chain smoothed into
// ramps.
func (h *hostModel) latent(rng *rand.Rand, start time.Time, interval time.Duration, n int) (load, burst []float64) {
	load, burst = make([]float64, n), make([]float64, n)
	ar, on, b := 0.0, false, 0.0
	for i := range n {
		ts := start.Add(time.Duration(i) * interval)
		hh, mm, ss := ts.UTC().Clock()
		day := float64(hh*3600+mm*60+ss) / 86400
		ar = 0.95*ar + 0.03*rng.NormFloat64()
		load[i] = min(0.98, max(0.02, 0.5+h.amp*math.Sin(2*math.Pi*(day-0.375-h.phase))+ar))
		if u := rng.Float64(); (on && u < h.pOff) || (!on && u < h.pOn) {
			on = !on
		}
		target := 0.0
		if on {
			target = 1
		}
		b = 0.6*b + 0.4*target
		burst[i] = b
	}
	return load, burst
}

// fleetRows is the fleet's rows in host-major order while they are made.
type fleetRows struct {
	x      [len(genFeatures)][]float64
	label  []int64
	kind   []string
	cause  []string
	event  []int64
	load   []float64
	burst  []float64
	models []hostModel
	n      int // rows per host
}

// GenerateFleet returns a fleet of cfg.Hosts hosts whose normal behaviour
// differs: host i has role FleetRoles()[i mod 4] (database, web, batch,
// cache) and its own means, scales and correlations of the four metrics of
// [Generate], drawn from its role's ranges. A database's memory sits at 70
// to 82% whatever its load, its CPU and network follow the daily load and
// its disk its checkpoints; a web server's CPU, memory and network rise
// together with the daily load while its disk stays nearly idle; a batch host's CPU, memory and disk follow its jobs (45
// minutes on, an hour off, on average), not the daily load, and its network
// is light; a cache's memory sits at 83 to 95%, falling while a snapshot
// writes to its disk, its network is the fleet's heaviest and its CPU low. Each host's daily cycle is shifted by
// up to 1.5 hours.
//
// Both tables have the columns
//
//	timestamp   Time    Start + k·Interval; the test period follows the training window
//	host        String  the host's name: its role's prefix (db, web, batch, cache) and a number
//	role        String  the host's role
//	cpu_usage, mem_usage, disk_busy, net_in_bps   Float, as in [Generate]
//	label       Int     1 for an injected anomaly, 0 otherwise
//	kind        String  the anomaly's kind (see [AnomalyKinds]), "" for normal rows
//	cause       String  the features the anomaly changed joined with "+", or
//	                    for a contextual one "like " and the host it imitates
//	event       Int     1 where the existing monitoring raised an event
//
// with rows in time order, the hosts of one timestamp in host order. The
// test period holds cfg.Anomalies events per host, each 1 to 5 consecutive
// samples, their kinds cycling through contextual, correlation and spike:
// event is 0 there, for the detector to find. The training window holds
// cfg.TrainAnomalies one-sample anomalies per host, flagged in event, so
// that training drops them as the existing monitoring's events.
//
// The same configuration always gives the same fleet (math/rand/v2 PCG).
func GenerateFleet(cfg FleetConfig) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xf1ee7))
	specs := roleSpecs()
	hosts := make([]FleetHost, cfg.Hosts)
	width := len(fmt.Sprint((cfg.Hosts + len(specs) - 1) / len(specs)))
	rows := &fleetRows{n: cfg.TrainRows + cfg.TestRows}
	for i := range hosts {
		r := i % len(specs)
		hosts[i] = FleetHost{Name: fmt.Sprintf("%s-%0*d", specs[r].prefix, width, i/len(specs)+1), Role: specs[r].name}
		rows.models = append(rows.models, drawHost(rng, r, specs[r], cfg.Interval))
	}
	rows.fill(rng, cfg)
	for h := range hosts {
		lo := h * rows.n
		rows.inject(rng, hosts, h, lo, cfg.TrainRows, cfg.TrainAnomalies, 1)
		rows.inject(rng, hosts, h, lo+cfg.TrainRows, cfg.TestRows, cfg.Anomalies, 0)
	}
	train, err := rows.table(cfg, hosts, 0, cfg.TrainRows)
	if err != nil {
		return nil, err
	}
	test, err := rows.table(cfg, hosts, cfg.TrainRows, cfg.TestRows)
	if err != nil {
		return nil, err
	}
	return &Fleet{Hosts: hosts, Train: train, Test: test}, nil
}

// fill draws every host's latent series and normal metrics.
func (r *fleetRows) fill(rng *rand.Rand, cfg FleetConfig) {
	total := len(r.models) * r.n
	for f := range r.x {
		r.x[f] = make([]float64, total)
	}
	r.label, r.event = make([]int64, total), make([]int64, total)
	r.kind, r.cause = make([]string, total), make([]string, total)
	r.load, r.burst = make([]float64, 0, total), make([]float64, 0, total)
	for h := range r.models {
		l, b := r.models[h].latent(rng, cfg.Start, cfg.Interval, r.n)
		r.load, r.burst = append(r.load, l...), append(r.burst, b...)
		for i := range r.n {
			for f := range r.x {
				r.x[f][h*r.n+i] = r.models[h].value(f, l[i], b[i], rng.NormFloat64())
			}
		}
	}
}

// inject places k anomalous events in host h's rows lo to lo+n, one in
// each of k equal slots at a random place; with event 1 they last one
// sample and are flagged in the event column, otherwise 1 to 5 samples.
func (r *fleetRows) inject(rng *rand.Rand, hosts []FleetHost, h, lo, n, k int, event int64) {
	kinds := AnomalyKinds()
	for e := range k {
		slot := n / k
		dur := 1
		if event == 0 {
			dur = 1 + rng.IntN(5)
		}
		start := lo + e*slot + rng.IntN(slot-dur+1)
		kind := kinds[(e+h)%len(kinds)]
		var cause string
		switch kind {
		case AnomalyContextual:
			cause = r.contextual(rng, hosts, h, start, dur)
		case AnomalyCorrelation:
			cause = r.correlation(rng, h, start, dur, 1+e%2)
		default:
			cause = r.spike(rng, h, start, dur)
		}
		for i := start; i < start+dur; i++ {
			r.label[i], r.kind[i], r.cause[i], r.event[i] = 1, kind, cause, event
		}
	}
}

// contextual gives host h's rows start to start+dur the normal values of a
// host of another role at the same times.
func (r *fleetRows) contextual(rng *rand.Rand, hosts []FleetHost, h, start, dur int) string {
	var others []int
	for g := range r.models {
		if r.models[g].role != r.models[h].role {
			others = append(others, g)
		}
	}
	g := others[rng.IntN(len(others))]
	off := g*r.n - h*r.n
	for i := start; i < start+dur; i++ {
		for f := range r.x {
			r.x[f][i] = r.models[g].value(f, r.load[i+off], r.burst[i+off], rng.NormFloat64())
		}
	}
	return "like " + hosts[g].Name
}

// correlation breaks the host's most load-driven metrics (the two with the
// largest (load + burst) / noise), broken of them, with [brokenLoad].
func (r *fleetRows) correlation(rng *rand.Rand, h, start, dur, broken int) string {
	m := &r.models[h]
	order := []int{0, 1, 2, 3}
	snr := func(f int) float64 {
		p := m.metrics[f]
		return (math.Abs(p.load) + math.Abs(p.burst)) / p.noise
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(snr(b), snr(a)) })
	chosen := order[:broken]
	u := rng.Float64()
	for i := start; i < start+dur; i++ {
		for b, f := range chosen {
			l, bu := brokenLoad(r.load[i], b, u), brokenLoad(r.burst[i], b, u)
			r.x[f][i] = m.value(f, l, bu, rng.NormFloat64())
		}
	}
	return featureNames(chosen)
}

// spike raises one metric with room above its full-load value (net_in_bps
// always has) 8 to 12 noise standard deviations above it.
func (r *fleetRows) spike(rng *rand.Rand, h, start, dur int) string {
	m := &r.models[h]
	var room []int
	for f, p := range m.metrics {
		if f == 3 || p.base+p.load+p.burst+8*p.noise < 100 {
			room = append(room, f)
		}
	}
	f := room[rng.IntN(len(room))]
	sd := 8 + 4*rng.Float64()
	for i := start; i < start+dur; i++ {
		// z = sd puts the value sd noise deviations above its full load's.
		r.x[f][i] = m.value(f, 1, 1, sd+0.5*rng.NormFloat64())
	}
	return genFeatures[f]
}

func featureNames(fs []int) string {
	s := slices.Clone(fs)
	slices.Sort(s)
	names := make([]string, len(s))
	for i, f := range s {
		names[i] = genFeatures[f]
	}
	return strings.Join(names, "+")
}

// table returns rows off to off+n of every host, in time order.
func (r *fleetRows) table(cfg FleetConfig, hosts []FleetHost, off, n int) (*Table, error) {
	total := len(hosts) * n
	times := make([]time.Time, 0, total)
	names, roles := make([]string, 0, total), make([]string, 0, total)
	var x [len(genFeatures)][]float64
	for f := range x {
		x[f] = make([]float64, 0, total)
	}
	label, event := make([]int64, 0, total), make([]int64, 0, total)
	kind, cause := make([]string, 0, total), make([]string, 0, total)
	for i := off; i < off+n; i++ {
		ts := cfg.Start.Add(time.Duration(i) * cfg.Interval)
		for h, host := range hosts {
			j := h*r.n + i
			times, names, roles = append(times, ts), append(names, host.Name), append(roles, host.Role)
			for f := range x {
				x[f] = append(x[f], r.x[f][j])
			}
			label, event = append(label, r.label[j]), append(event, r.event[j])
			kind, cause = append(kind, r.kind[j]), append(cause, r.cause[j])
		}
	}
	cols := []*Column{TimeColumn("timestamp", times), StringColumn("host", names), StringColumn("role", roles)}
	for f, name := range genFeatures {
		cols = append(cols, FloatColumn(name, x[f]))
	}
	cols = append(cols, IntColumn("label", label), StringColumn("kind", kind), StringColumn("cause", cause), IntColumn("event", event))
	return NewTable(cols...)
}
