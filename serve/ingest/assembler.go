package ingest

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Vector is one host's feature vector for one collection interval: a
// [Sample] without optional values.
type Vector struct {
	// Host is the value of the host tag.
	Host string
	// TS is the start of the interval, in UTC.
	TS time.Time
	// Values holds one finite value per feature, in the assembler's
	// feature order.
	Values []float64
}

// Incomplete describes an interval that was finalised without a vector.
type Incomplete struct {
	Host string
	// TS is the start of the interval, in UTC.
	TS time.Time
	// Missing lists the features without a usable value, in feature order.
	Missing []MissingFeature
}

// MissingFeature says why one feature of an [Incomplete] interval has no
// value.
type MissingFeature struct {
	Feature string
	// Reason is one of "no data", "first observation of a counter",
	// "counter reset", "counter gap", "series ... missing" or
	// "value not finite".
	Reason string
}

// Stats are an [Assembler]'s counters since it was made. Counters only grow;
// Hosts and Pending are current sizes.
type Stats struct {
	// Measurements is the number of measurements added.
	Measurements uint64
	// Ignored measurements contributed to no feature: another measurement
	// name, a series left out by a tag filter, or no mapped field.
	Ignored uint64
	// NoHost measurements lacked the host tag and were dropped.
	NoHost uint64
	// Late measurements were for an interval already finalised, or too
	// far behind their host's newest interval; they were dropped.
	Late uint64
	// Dropped measurements were refused by MaxHosts or MaxSeries, or had a
	// time outside the years 1678 to 2262.
	Dropped uint64
	// CounterResets counts counters seen going down.
	CounterResets uint64
	// HostResets counts hosts whose clock jumped back more than 100
	// intervals: their state was dropped and started again.
	HostResets uint64
	// DecodeErrors counts the metrics that [Assembler.AddMessage] could not
	// decode.
	DecodeErrors uint64
	// Emitted is the number of vectors emitted.
	Emitted uint64
	// Incomplete is the number of intervals finalised without a vector.
	Incomplete uint64
	// Ended counts the series ended by a stale marker (remote write): they
	// were no longer waited for.
	Ended uint64
	// HostsEnded counts the hosts forgotten because every series of theirs
	// ended.
	HostsEnded uint64
	// Hosts is the number of hosts tracked now.
	Hosts int
	// Pending is the number of intervals open now.
	Pending int
}

// Option configures an [Assembler].
type Option func(*Assembler)

// WithIncomplete has fn called for every interval finalised without a
// vector. fn runs with the assembler locked: it must not call the assembler,
// and should be quick (count, log, publish).
func WithIncomplete(fn func(Incomplete)) Option {
	return func(a *Assembler) { a.onIncomplete = fn }
}

// resetIntervals: a measurement this many intervals behind its host's newest
// means the host's clock was set back; the host starts again.
const resetIntervals = 100

// Assembler joins Telegraf measurements into feature vectors, per host and
// collection interval, as its [Config] says.
//
// Intervals. A measurement belongs to the interval its timestamp falls in
// (truncated to Config.Interval; a measurement without a timestamp takes its
// receive time). Each host has its own open intervals, so a slow or silent
// host never holds another back.
//
// Series and rates. A series is one host, feature and tag set (the host tag
// left out). A Rate feature's value for a series is the counter's increase
// per second from the series' previous observation by timestamp, worked out
// when the interval is finalised, so an interval that arrives out of order
// still gets the right predecessor. There is no rate on a series' first
// observation, when the counter went down (a reset: no negative spike), or
// after a gap of more than MaxGapIntervals intervals (the rate restarts from
// the new value). Such an interval is incomplete; the next one has a rate
// again. So a host's first interval never gives a vector when a feature is a
// rate.
//
// Completeness. An interval is emitted as a [Vector] as soon as
//
//   - every feature has a value from every series its host sent for that
//     feature in the previous interval (a sum over interfaces waits for all
//     of them), and
//   - every counter's previous observation is from the previous interval
//     (otherwise a late observation might still come in between).
//
// When a feature has no such history (a host's first interval, a new
// feature), the interval waits for its deadline. When everything expected
// has come but a series has no usable value (a counter reset), the interval
// is finalised as incomplete at once.
//
// Deadlines. An interval still open Config.Wait after its first measurement
// arrived (in receive time: the now passed to Add) is finalised by the next
// Add, AddMessage or Flush: emitted if every feature has values from every
// series that reported and from every series expected, counted as incomplete
// otherwise. An incomplete interval is never emitted with holes: it is
// counted in [Stats] and passed to the [WithIncomplete] callback.
//
// Lateness. A measurement for an interval already finalised, or more than
// MaxLateIntervals intervals behind the newest interval of its host, is
// counted as late and dropped; an open interval that falls that far behind
// is finalised. A measurement more than 100 intervals behind means the host's
// clock was set back: the host's state is dropped and it starts again.
//
// Memory. At most MaxHosts hosts, MaxSeries series per host and feature and
// MaxLateIntervals+1 open intervals per host are kept; a host silent for
// HostTTL is forgotten. With the default mapping and Telegraf's cpu, mem,
// diskio and net inputs a host takes about 3 KB (10,000 hosts about 30 MB).
//
// Vectors come out in the order intervals are finalised, not sorted by time
// or host. The now passed to successive calls should not go backwards:
// deadlines are kept in the order intervals were opened.
//
// An Assembler is safe for concurrent use; its methods serialise on one
// mutex, so a service that needs more than one core shards hosts over
// several assemblers.
type Assembler struct {
	mu sync.Mutex

	cfg       Config
	names     []string
	specs     []spec
	byName    map[string][]int // measurement name -> feature indices
	interval  int64            // ns
	window    int64            // ns: MaxLateIntervals × interval
	maxGap    int64            // ns: MaxGapIntervals × interval
	resetSpan int64            // ns
	histLen   int

	hosts     map[string]*host
	queue     []due // deadlines, in the order intervals were opened
	qhead     int
	free      []*pending
	lastSweep time.Time
	stats     Stats

	onIncomplete func(Incomplete)

	// Scratch, reused between calls.
	out     []Vector
	key     []byte
	tags    []Tag
	contrib []contribution
	dec     *TelegrafDecoder
	msgs    []Measurement
	errs    errorList
}

// spec is a compiled Feature.
type spec struct {
	name, field   string
	rate          bool
	scale, offset float64
	agg           Aggregate
	filters       []filter
}

// filter is a compiled TagFilter.
type filter struct {
	key              string
	include, exclude []*regexp.Regexp
}

// host is the state of one host.
type host struct {
	name     string
	lastRecv time.Time
	started  bool
	newest   int64      // start of the newest interval seen
	pending  []*pending // open intervals, by start
	done     []int64    // starts of finalised intervals within the window
	index    []map[string]*series
	series   [][]*series // accepted series, per feature
}

// series is one host, feature and tag set.
type series struct {
	key      string
	rejected bool   // left out by the feature's tag filters
	first    int64  // start of the first interval it reported in
	last     int64  // start of the newest interval it reported in
	hist     []obs  // recent observations by time (rates only)
	slots    []slot // where it is among the entries of open intervals
}

// slot says that a series is entries[i] of its feature in the open interval
// starting at start.
type slot struct {
	start int64
	i     int
}

type obs struct {
	t int64
	v float64
}

// why says whether an entry has a usable value.
type why uint8

const (
	whyOK why = iota
	whyFirst
	whyReset
	whyGap
)

func (w why) String() string {
	switch w {
	case whyFirst:
		return "first observation of a counter"
	case whyReset:
		return "counter reset"
	case whyGap:
		return "counter gap"
	}
	return "ok"
}

// entry is one series' contribution to one interval: a gauge's value, or
// the time of a counter's observation (its rate is worked out when the
// interval is finalised, from the history as it is then, so that an
// observation arriving out of order still counts).
type entry struct {
	s *series
	v float64 // gauge value
	t int64   // counter observation time, ns
}

type contribution struct {
	fi int
	e  entry
}

// pending is an open interval of one host.
type pending struct {
	start   int64
	seq     uint64 // bumped when recycled, so stale queue entries are ignored
	final   bool
	entries [][]entry // per feature
	need    []int     // per feature: series expected when it was opened
}

type due struct {
	at  time.Time
	h   *host
	p   *pending
	seq uint64
}

// NewAssembler returns an assembler producing vectors of the given features,
// in that order (the model's). Every feature must be mapped by cfg; features
// of cfg not asked for are ignored. cfg is validated with defaults applied.
func NewAssembler(cfg Config, features []string, opts ...Option) (*Assembler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if len(features) == 0 {
		return nil, errors.New("ingest: assembler: no features")
	}
	byFeature := make(map[string]Feature, len(cfg.Features))
	for _, f := range cfg.Features {
		byFeature[f.Name] = f
	}
	a := &Assembler{
		cfg:       cfg,
		names:     slices.Clone(features),
		byName:    make(map[string][]int),
		interval:  int64(cfg.Interval),
		window:    int64(cfg.MaxLateIntervals) * int64(cfg.Interval),
		maxGap:    int64(cfg.MaxGapIntervals) * int64(cfg.Interval),
		resetSpan: resetIntervals * int64(cfg.Interval),
		histLen:   cfg.MaxLateIntervals + 2,
		hosts:     make(map[string]*host),
		dec:       NewTelegrafDecoder(),
	}
	seen := make(map[string]bool, len(features))
	for i, name := range features {
		f, ok := byFeature[name]
		if !ok {
			return nil, fmt.Errorf("%w: feature %q of the model has no mapping", ErrConfig, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("ingest: assembler: feature %q given twice", name)
		}
		seen[name] = true
		sp := spec{
			name:   name,
			field:  f.Field,
			rate:   f.Kind == Rate,
			scale:  f.Scale,
			offset: f.Offset,
			agg:    f.Aggregate,
		}
		if sp.scale == 0 {
			sp.scale = 1
		}
		if sp.agg == "" {
			sp.agg = Mean
		}
		keys := make([]string, 0, len(f.Tags))
		for k := range f.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			tf := f.Tags[k]
			fl := filter{key: k}
			for _, p := range tf.Include {
				fl.include = append(fl.include, glob(p))
			}
			for _, p := range tf.Exclude {
				fl.exclude = append(fl.exclude, glob(p))
			}
			sp.filters = append(sp.filters, fl)
		}
		a.specs = append(a.specs, sp)
		a.byName[f.Measurement] = append(a.byName[f.Measurement], i)
	}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Features returns the feature names in vector order. The caller must not
// modify the slice.
func (a *Assembler) Features() []string { return a.names }

// Config returns the configuration in use, defaults applied.
func (a *Assembler) Config() Config { return a.cfg }

// Add adds one measurement received at now and returns the vectors that
// became ready: its host's, and any other host's whose deadline has passed.
// The result is nil when there are none. m is not retained. A measurement
// whose host [CheckHost] refuses is dropped and counted in
// Stats.DecodeErrors.
func (a *Assembler) Add(m Measurement, now time.Time) []Vector {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out = nil
	a.errs = errorList{}
	a.expire(now)
	a.add(&m, now)
	a.expire(now)
	return a.out
}

// AddMessage decodes one Telegraf message received at now (see
// [TelegrafDecoder]), adds its measurements and returns the vectors that
// became ready. When some metrics cannot be decoded, or their host tag is
// one [CheckHost] refuses, the others are still added and the error names
// the bad ones (the service sends the message to
// its dead-letter subject with that reason); they are counted in
// Stats.DecodeErrors.
func (a *Assembler) AddMessage(data []byte, format Format, now time.Time) ([]Vector, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out = nil
	a.expire(now)
	a.errs = errorList{}
	a.msgs = a.dec.decode(a.msgs[:0], data, format, &a.errs)
	a.stats.DecodeErrors += uint64(a.errs.count())
	for i := range a.msgs {
		a.add(&a.msgs[i], now)
	}
	a.expire(now)
	return a.out, a.errs.err()
}

// AddRemoteWrite adds the samples of a decoded Prometheus remote write
// request received at now (see [RemoteWriteDecoder]) and returns the vectors
// that became ready. A sample whose host label [CheckHost] refuses is
// dropped, counted in Stats.DecodeErrors and named in the error; the others
// are still added.
//
// A stale marker (w.Ends) ends its series, after the request's samples: the
// series is no longer expected in its host's open intervals (which are then
// finalised when the others are there, never with the stale value), and a
// host all of whose series ended has its open intervals finalised and is
// forgotten. A series that comes back later is a new one.
func (a *Assembler) AddRemoteWrite(w *RemoteWrite, now time.Time) ([]Vector, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out = nil
	a.expire(now)
	a.errs = errorList{}
	for i := range w.Samples {
		a.add(&w.Samples[i], now)
	}
	for i := range w.Ends {
		a.end(&w.Ends[i])
	}
	a.expire(now)
	return a.out, a.errs.err()
}

// end ends the series of the stale marker m: see [Assembler.AddRemoteWrite].
func (a *Assembler) end(m *Measurement) {
	idx := a.byName[m.Name]
	if len(idx) == 0 {
		return
	}
	name, ok := m.Tag(a.cfg.HostTag)
	if !ok {
		return
	}
	h := a.hosts[name]
	if h == nil {
		return
	}
	a.seriesKey(m)
	ended := false
	for _, fi := range idx {
		s := h.index[fi][string(a.key)]
		if s == nil {
			continue
		}
		delete(h.index[fi], s.key)
		h.series[fi] = slices.DeleteFunc(h.series[fi], func(x *series) bool { return x == s })
		ended = true
	}
	if !ended {
		return
	}
	a.stats.Ended++
	if h.live() {
		// Intervals that waited for the series may be ready now.
		for i := 0; i < len(h.pending); i++ {
			p := h.pending[i]
			for fi := range a.specs {
				n := 0
				a.expected(h, fi, p.start, func(*series) bool { n++; return true })
				p.need[fi] = n
			}
			if a.ready(h, p) {
				a.finalize(h, p, false)
				i--
			}
		}
		return
	}
	for len(h.pending) > 0 {
		a.finalize(h, h.pending[0], true)
	}
	delete(a.hosts, name)
	a.stats.HostsEnded++
}

// live reports whether h has a series not ended.
func (h *host) live() bool {
	for _, ss := range h.series {
		if len(ss) > 0 {
			return true
		}
	}
	return false
}

// Flush finalises the intervals whose deadline has passed at now and returns
// the vectors among them. Call it periodically (every second or so) so that
// intervals of hosts that stopped sending are finalised.
func (a *Assembler) Flush(now time.Time) []Vector {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out = nil
	a.expire(now)
	return a.out
}

// Drain finalises every open interval, deadline or not, and returns the
// vectors among them, sorted by time and host: for shutdown, or the end of a
// recorded stream. Counter state is kept.
func (a *Assembler) Drain() []Vector {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out = nil
	for _, h := range a.hosts {
		for len(h.pending) > 0 {
			a.finalize(h, h.pending[0], true)
		}
	}
	// Every queued deadline is stale now.
	clear(a.queue)
	a.queue, a.qhead = a.queue[:0], 0
	slices.SortFunc(a.out, func(x, y Vector) int {
		if c := x.TS.Compare(y.TS); c != 0 {
			return c
		}
		return strings.Compare(x.Host, y.Host)
	})
	return a.out
}

// Stats returns the counters.
func (a *Assembler) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Hosts = len(a.hosts)
	return s
}

// floorTo truncates t (ns) to a multiple of d, towards minus infinity.
func floorTo(t, d int64) int64 {
	r := t % d
	if r < 0 {
		r += d
	}
	return t - r
}

func (a *Assembler) add(m *Measurement, now time.Time) {
	a.stats.Measurements++
	idx := a.byName[m.Name]
	if len(idx) == 0 {
		a.stats.Ignored++
		return
	}
	name, ok := m.Tag(a.cfg.HostTag)
	if !ok {
		a.stats.NoHost++
		return
	}
	t := m.Time
	if t.IsZero() {
		t = now
	}
	if !inNanoRange(t) {
		a.stats.Dropped++
		return
	}
	tn := t.UnixNano()
	start := floorTo(tn, a.interval)

	h := a.hosts[name]
	if h == nil {
		if p := hostProblem(name); p != "" && name != "" {
			a.stats.DecodeErrors++
			a.errs.add(&hostError{where: fmt.Sprintf("measurement %q, tag %q", m.Name, a.cfg.HostTag), problem: p})
			return
		}
		if len(a.hosts) >= a.cfg.MaxHosts {
			a.stats.Dropped++
			return
		}
		h = &host{
			name:   name,
			index:  make([]map[string]*series, len(a.specs)),
			series: make([][]*series, len(a.specs)),
		}
		a.hosts[name] = h
	}
	h.lastRecv = now

	// What the measurement gives each feature.
	a.contrib = a.contrib[:0]
	keyed := false
	for _, fi := range idx {
		sp := &a.specs[fi]
		v, ok := m.Field(sp.field)
		if !ok {
			continue
		}
		if !keyed {
			a.seriesKey(m)
			keyed = true
		}
		s := h.index[fi][string(a.key)]
		if s == nil {
			if s = a.newSeries(h, fi, m); s == nil {
				a.stats.Dropped++
				continue
			}
		}
		if !s.rejected {
			a.contrib = append(a.contrib, contribution{fi: fi, e: entry{s: s, v: v, t: tn}})
		}
	}
	if len(a.contrib) == 0 {
		a.stats.Ignored++
		return
	}

	if h.started {
		switch {
		case start < h.newest-a.resetSpan:
			a.resetHost(h)
			a.add(m, now) // again, as the host's first measurement
			a.stats.Measurements--
			return
		case start < h.newest-a.window || slices.Contains(h.done, start):
			a.stats.Late++
			return
		}
	}
	for _, c := range a.contrib {
		if a.specs[c.fi].rate {
			c.e.s.observe(c.e.t, c.e.v, a.histLen)
		}
	}
	if !h.started || start > h.newest {
		h.started = true
		h.newest = start
		a.supersede(h)
	}
	p := h.find(start)
	if p == nil {
		p = a.open(h, start, now)
	}
	for _, c := range a.contrib {
		s := c.e.s
		if start < s.first {
			s.first = start
		}
		if start > s.last {
			s.last = start
		}
		p.record(c.fi, c.e, h.newest-a.window)
	}
	// This interval may be ready, and so may later ones that waited for a
	// counter's observation in this one.
	for i := 0; i < len(h.pending); i++ {
		if q := h.pending[i]; q.start >= start && a.ready(h, q) {
			a.finalize(h, q, false)
			i--
		}
	}
}

// seriesKey builds the key of m's series in a.key: its tags but the host
// tag, sorted by key, each key and value followed by a NUL byte.
func (a *Assembler) seriesKey(m *Measurement) {
	tags := a.tags[:0]
	for _, t := range m.Tags {
		if t.Key != a.cfg.HostTag {
			tags = append(tags, t)
		}
	}
	// Insertion sort: a handful of tags, usually sorted already.
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0 && tags[j].Key < tags[j-1].Key; j-- {
			tags[j], tags[j-1] = tags[j-1], tags[j]
		}
	}
	k := a.key[:0]
	for _, t := range tags {
		k = append(k, t.Key...)
		k = append(k, 0)
		k = append(k, t.Value...)
		k = append(k, 0)
	}
	a.key, a.tags = k, tags
}

// newSeries records the series of m (key in a.key) for feature fi, accepted
// or rejected by its filters; nil when the host has MaxSeries of them.
func (a *Assembler) newSeries(h *host, fi int, m *Measurement) *series {
	if h.index[fi] == nil {
		h.index[fi] = make(map[string]*series)
	}
	if len(h.index[fi]) >= a.cfg.MaxSeries {
		return nil
	}
	s := &series{key: string(a.key), rejected: !a.specs[fi].accepts(m), first: math.MaxInt64, last: math.MinInt64}
	h.index[fi][s.key] = s
	if !s.rejected {
		h.series[fi] = append(h.series[fi], s)
	}
	return s
}

// accepts reports whether m's tags pass the feature's filters.
func (sp *spec) accepts(m *Measurement) bool {
	for _, f := range sp.filters {
		v, ok := m.Tag(f.key)
		if len(f.include) > 0 {
			if !ok || !matchAny(f.include, v) {
				return false
			}
		}
		if ok && matchAny(f.exclude, v) {
			return false
		}
	}
	return true
}

func matchAny(res []*regexp.Regexp, v string) bool {
	for _, re := range res {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// observe adds a counter observation (t in ns) to the series' history,
// which keeps the newest histLen observations by time. An observation at a
// time already kept replaces it.
func (s *series) observe(t int64, v float64, histLen int) {
	h := s.hist
	i := len(h) // where the observation goes
	for i > 0 && h[i-1].t > t {
		i--
	}
	switch {
	case i > 0 && h[i-1].t == t:
		h[i-1].v = v
	case len(h) < histLen:
		h = append(h, obs{})
		copy(h[i+1:], h[i:])
		h[i] = obs{t: t, v: v}
		s.hist = h
	case i == 0: // older than all that is kept: useless
	default: // full: drop the oldest
		copy(h[:i-1], h[1:i])
		h[i-1] = obs{t: t, v: v}
	}
}

// prev returns the index in the history of the observation at t and of the
// one before it (-1 when there is none); i is -1 when t is not kept.
func (s *series) prev(t int64) (i, j int) {
	for i = len(s.hist) - 1; i >= 0; i-- {
		if s.hist[i].t == t {
			return i, i - 1
		}
	}
	return -1, -1
}

// rate returns the counter's increase per second from the observation before
// t to the one at t, or why there is none.
func (s *series) rate(t, maxGap int64) (float64, why) {
	i, j := s.prev(t)
	if j < 0 {
		return 0, whyFirst
	}
	cur, prev := s.hist[i], s.hist[j]
	dt := cur.t - prev.t
	switch {
	case dt > maxGap:
		return 0, whyGap
	case cur.v < prev.v:
		return 0, whyReset
	}
	return (cur.v - prev.v) / (float64(dt) / float64(time.Second)), whyOK
}

// settled reports whether the counter observation at t has its predecessor
// at or after since, so that no late observation can come between them.
func (s *series) settled(t, since int64) bool {
	_, j := s.prev(t)
	return j >= 0 && s.hist[j].t >= since
}

// find returns the open interval starting at start, or nil.
func (h *host) find(start int64) *pending {
	for _, p := range h.pending {
		if p.start == start {
			return p
		}
	}
	return nil
}

// record adds a series' entry, replacing an earlier one of the same series.
// limit is the oldest interval start still open or late-checked.
func (p *pending) record(fi int, e entry, limit int64) {
	if i := p.index(fi, e.s); i >= 0 {
		p.entries[fi][i] = e
		return
	}
	p.entries[fi] = append(p.entries[fi], e)
	s := e.s
	s.slots = slices.DeleteFunc(s.slots, func(sl slot) bool { return sl.start < limit })
	s.slots = append(s.slots, slot{start: p.start, i: len(p.entries[fi]) - 1})
}

// index returns the position of series s among the entries of feature fi,
// or -1.
func (p *pending) index(fi int, s *series) int {
	for _, sl := range s.slots {
		if sl.start == p.start {
			if es := p.entries[fi]; sl.i < len(es) && es[sl.i].s == s {
				return sl.i
			}
			return -1
		}
	}
	return -1
}

// has reports whether series s reported for feature fi.
func (p *pending) has(fi int, s *series) bool { return p.index(fi, s) >= 0 }

// open opens the interval of h starting at start.
func (a *Assembler) open(h *host, start int64, now time.Time) *pending {
	var p *pending
	if n := len(a.free); n > 0 {
		p, a.free = a.free[n-1], a.free[:n-1]
	} else {
		p = &pending{entries: make([][]entry, len(a.specs)), need: make([]int, len(a.specs))}
	}
	p.start, p.final = start, false
	for fi := range a.specs {
		n := 0
		a.expected(h, fi, start, func(*series) bool { n++; return true })
		p.need[fi] = n
	}
	i := len(h.pending)
	for i > 0 && h.pending[i-1].start > start {
		i--
	}
	h.pending = slices.Insert(h.pending, i, p)
	a.queue = append(a.queue, due{at: now.Add(a.cfg.Wait), h: h, p: p, seq: p.seq})
	a.stats.Pending++
	return p
}

// expected calls fn for each series of h expected to report for feature fi
// in the interval starting at start: those that reported in the previous
// interval or around it. It stops when fn returns false.
func (a *Assembler) expected(h *host, fi int, start int64, fn func(*series) bool) {
	prev := start - a.interval
	for _, s := range h.series[fi] {
		if s.first <= prev && s.last >= prev && !fn(s) {
			return
		}
	}
}

// ready reports whether p can be finalised before its deadline: every
// feature has expected series, all of them have reported, and every counter
// has its previous observation in the previous interval (or a later one), so
// none can arrive late in between.
func (a *Assembler) ready(h *host, p *pending) bool {
	// Cheap test first: as many entries as series were expected at open.
	for fi, n := range p.need {
		if n == 0 || len(p.entries[fi]) < n {
			return false
		}
	}
	prev := p.start - a.interval
	for fi := range a.specs {
		n, ok := 0, true
		a.expected(h, fi, p.start, func(s *series) bool {
			n++
			ok = p.has(fi, s)
			return ok
		})
		if n == 0 || !ok {
			return false
		}
		if a.specs[fi].rate {
			for _, e := range p.entries[fi] {
				if !e.s.settled(e.t, prev) {
					return false
				}
			}
		}
	}
	return true
}

// supersede finalises h's open intervals that fell out of the lateness
// window, and forgets finalised ones that did.
func (a *Assembler) supersede(h *host) {
	limit := h.newest - a.window
	for len(h.pending) > 0 && h.pending[0].start < limit {
		a.finalize(h, h.pending[0], true)
	}
	h.done = slices.DeleteFunc(h.done, func(s int64) bool { return s < limit })
}

// finalize closes p: a vector if every feature has a usable value, an
// incomplete interval otherwise. At a deadline (late), missing expected
// series also make it incomplete.
func (a *Assembler) finalize(h *host, p *pending, late bool) {
	var missing []MissingFeature
	var values []float64
	for fi := range a.specs {
		sp := &a.specs[fi]
		es := p.entries[fi]
		reason := ""
		if len(es) == 0 {
			reason = "no data"
		}
		if sp.rate {
			for k := range es {
				r, w := es[k].s.rate(es[k].t, a.maxGap)
				if w == whyReset {
					a.stats.CounterResets++
				}
				if w != whyOK && reason == "" {
					reason = w.String()
				}
				es[k].v = r
			}
		}
		if reason == "" && late {
			a.expected(h, fi, p.start, func(s *series) bool {
				if !p.has(fi, s) {
					reason = "series " + describeKey(s.key) + " missing"
				}
				return reason == ""
			})
		}
		var v float64
		if reason == "" {
			v = sp.offset + sp.scale*aggregate(sp.agg, es)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				reason = "value not finite"
			}
		}
		if reason != "" {
			missing = append(missing, MissingFeature{Feature: sp.name, Reason: reason})
			continue
		}
		if missing == nil {
			if values == nil {
				values = make([]float64, len(a.specs))
			}
			values[fi] = v
		}
	}

	// Close the interval.
	i := slices.Index(h.pending, p)
	h.pending = slices.Delete(h.pending, i, i+1)
	if p.start >= h.newest-a.window {
		h.done = append(h.done, p.start)
	}
	a.stats.Pending--
	ts := time.Unix(0, p.start).UTC()
	if missing == nil {
		a.out = append(a.out, Vector{Host: h.name, TS: ts, Values: values})
		a.stats.Emitted++
	} else {
		a.stats.Incomplete++
		if a.onIncomplete != nil {
			a.onIncomplete(Incomplete{Host: h.name, TS: ts, Missing: missing})
		}
	}
	p.final = true
	p.seq++
	for fi := range p.entries {
		clear(p.entries[fi])
		p.entries[fi] = p.entries[fi][:0]
	}
	if len(a.free) < maxFree {
		a.free = append(a.free, p)
	}
}

// maxFree bounds the finalised intervals kept for reuse.
const maxFree = 4096

// describeKey renders a series key as tag=value pairs.
func describeKey(key string) string {
	parts := strings.Split(strings.TrimSuffix(key, "\x00"), "\x00")
	if len(parts) < 2 {
		return "(no tags)"
	}
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(parts[i])
		b.WriteByte('=')
		b.WriteString(parts[i+1])
	}
	return b.String()
}

// aggregate combines the entries' values; es is not empty.
func aggregate(agg Aggregate, es []entry) float64 {
	v := es[0].v
	for _, e := range es[1:] {
		switch agg {
		case Sum, Mean:
			v += e.v
		case Max:
			v = max(v, e.v)
		case Min:
			v = min(v, e.v)
		}
	}
	if agg == Mean {
		v /= float64(len(es))
	}
	return v
}

// resetHost drops h's state after its clock jumped back.
func (a *Assembler) resetHost(h *host) {
	for len(h.pending) > 0 {
		a.finalize(h, h.pending[0], true)
	}
	h.started, h.done = false, h.done[:0]
	for fi := range h.index {
		h.index[fi] = nil
		h.series[fi] = nil
	}
	a.stats.HostResets++
}

// expire finalises the intervals whose deadline is at or before now, and
// forgets hosts silent for HostTTL.
func (a *Assembler) expire(now time.Time) {
	for a.qhead < len(a.queue) {
		d := a.queue[a.qhead]
		if d.at.After(now) {
			break
		}
		a.queue[a.qhead] = due{}
		a.qhead++
		if d.p.seq == d.seq && !d.p.final {
			a.finalize(d.h, d.p, true)
		}
	}
	if a.qhead == len(a.queue) {
		a.queue, a.qhead = a.queue[:0], 0
	} else if a.qhead > 1024 && a.qhead > len(a.queue)/2 {
		n := copy(a.queue, a.queue[a.qhead:])
		clear(a.queue[n:])
		a.queue, a.qhead = a.queue[:n], 0
	}
	if now.Sub(a.lastSweep) >= a.cfg.Interval {
		a.lastSweep = now
		for name, h := range a.hosts {
			if len(h.pending) == 0 && now.Sub(h.lastRecv) > a.cfg.HostTTL {
				delete(a.hosts, name)
			}
		}
	}
}
