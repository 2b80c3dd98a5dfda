package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestAssembler returns an assembler of the seed's features with the
// default mapping and the given interval, recording incomplete intervals.
func newTestAssembler(t *testing.T, interval time.Duration, edit func(*Config)) (*Assembler, *[]Incomplete) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Interval, cfg.Wait = interval, interval
	if edit != nil {
		edit(&cfg)
	}
	var inc []Incomplete
	a, err := NewAssembler(cfg, seedFeatures, WithIncomplete(func(i Incomplete) { inc = append(inc, i) }))
	if err != nil {
		t.Fatal(err)
	}
	return a, &inc
}

// feed adds messages received at now, failing on a decode error.
func feed(t *testing.T, a *Assembler, now time.Time, format Format, msgs ...[]byte) []Vector {
	t.Helper()
	var out []Vector
	for _, m := range msgs {
		vs, err := a.AddMessage(m, format, now)
		if err != nil {
			t.Fatalf("AddMessage(%q): %v", m, err)
		}
		out = append(out, vs...)
	}
	return out
}

// The real captures (2 s interval, one host "vm"), every message received
// 100 ms after its timestamp. Expected values by hand from the fixture lines:
//
//	cpu_usage  = 100 - usage_idle of cpu=cpu-total
//	mem_usage  = used_percent
//	disk_busy  = (io_time - previous io_time) ms / 2 s × 0.1 (percent of wall time)
//	net_in_bps = (bytes_recv - previous bytes_recv) / 2 s × 8
//
// The first interval has no cpu line (Telegraf's cpu input needs two
// samples) and only first observations of the counters: incomplete.
func TestAssemblerTelegrafCaptures(t *testing.T) {
	// Influx capture: bytes_recv stays 799928576 (net_in_bps 0) and io_time
	// goes 17580 (ts ...168) -> 17620 (...170) and then stays.
	wantInflux := []wantVector{
		// usage_idle 0; used_percent 2.379849298843741; io_time (17620-17580)/2*0.1 = 2
		{"vm", 1795546170, []float64{100, 2.379849298843741, 2, 0}},
		{"vm", 1795546172, []float64{100, 2.2557369355897507, 0, 0}},
		{"vm", 1795546174, []float64{100, 2.2330826616859674, 0, 0}},
		{"vm", 1795546176, []float64{100, 2.2180446315123543, 0, 0}},
		{"vm", 1795546178, []float64{100, 2.177565106325193, 0, 0}},
		{"vm", 1795546180, []float64{100, 2.191063682978878, 0, 0}},
		// usage_idle 0.25000000000545697 -> 99.74999999999454
		{"vm", 1795546182, []float64{99.74999999999454, 2.1916794643868496, 0, 0}},
		{"vm", 1795546184, []float64{100, 2.1925707269510184, 0, 0}},
		{"vm", 1795546186, []float64{100, 2.1917604882563193, 0, 0}},
	}
	// JSON capture: io_time 18000 until ...198, 18004 from ...200:
	// (18004-18000)/2*0.1 = 0.2 at 1795546200.
	wantJSON := []wantVector{
		{"vm", 1795546194, []float64{100, 4.823707454568701, 0, 0}},
		{"vm", 1795546196, []float64{100, 4.653346666621293, 0, 0}},
		{"vm", 1795546198, []float64{100, 4.612445817312889, 0, 0}},
		{"vm", 1795546200, []float64{100, 4.689434698083186, 0.2, 0}},
		{"vm", 1795546202, []float64{100, 4.592870450448961, 0, 0}},
		{"vm", 1795546204, []float64{100, 4.3302396799492335, 0, 0}},
		{"vm", 1795546206, []float64{100, 4.359602730245125, 0, 0}},
		{"vm", 1795546208, []float64{100, 4.32497312843369, 0, 0}},
		{"vm", 1795546210, []float64{100, 4.258096026573236, 0, 0}},
	}
	influx := readLines(t, "testdata/telegraf-1.37-influx.txt")
	jsonLines := readLines(t, "testdata/telegraf-1.37-json.txt")
	tests := []struct {
		name     string
		lines    [][]byte
		format   Format
		batch    func([][]byte) []byte // nil: one message per line
		want     []wantVector
		firstInc int64
	}{
		{"influx", influx, FormatInflux, nil, wantInflux, 1795546168},
		{"influx/auto", influx, FormatAuto, nil, wantInflux, 1795546168},
		{"influx/batch", influx, FormatInflux, func(ls [][]byte) []byte { return bytes.Join(ls, nil) }, wantInflux, 1795546168},
		{"json", jsonLines, FormatJSON, nil, wantJSON, 1795546192},
		{"json/auto", jsonLines, FormatAuto, nil, wantJSON, 1795546192},
		{"json/batch", jsonLines, FormatJSON, func(ls [][]byte) []byte {
			objs := make([][]byte, len(ls))
			for i, l := range ls {
				objs[i] = bytes.TrimSuffix(l, []byte("\n"))
			}
			return append(append([]byte(`{"metrics":[`), bytes.Join(objs, []byte(","))...), "]}"...)
		}, wantJSON, 1795546192},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, inc := newTestAssembler(t, 2*time.Second, nil)
			dec := NewTelegrafDecoder()
			var got []Vector
			var last time.Time
			// Group the lines by timestamp: a batch holds one interval.
			var group [][]byte
			var groupTS time.Time
			flush := func() {
				if len(group) > 0 {
					got = append(got, feed(t, a, groupTS.Add(100*time.Millisecond), tc.format, tc.batch(group))...)
				}
				group = nil
			}
			for _, line := range tc.lines {
				ms, err := dec.Decode(nil, line, tc.format)
				if err != nil || len(ms) != 1 {
					t.Fatalf("decode %q: %d metrics, %v", line, len(ms), err)
				}
				ts := ms[0].Time
				last = ts
				if tc.batch == nil {
					got = append(got, feed(t, a, ts.Add(100*time.Millisecond), tc.format, line)...)
					continue
				}
				if !ts.Equal(groupTS) {
					flush()
					groupTS = ts
				}
				group = append(group, line)
			}
			if tc.batch != nil {
				flush()
			}
			got = append(got, a.Flush(last.Add(time.Minute))...)
			checkVectors(t, got, tc.want, 1e-12)

			if len(*inc) != 1 {
				t.Fatalf("incomplete intervals %+v, want only the first", *inc)
			}
			first := (*inc)[0]
			wantMissing := []MissingFeature{
				{"cpu_usage", "no data"},
				{"disk_busy", "first observation of a counter"},
				{"net_in_bps", "first observation of a counter"},
			}
			if first.Host != "vm" || first.TS.Unix() != tc.firstInc || !slices.Equal(first.Missing, wantMissing) {
				t.Errorf("incomplete %+v, want vm %d %v", first, tc.firstInc, wantMissing)
			}
			st := a.Stats()
			if st.Measurements != 39 || st.Emitted != 9 || st.Incomplete != 1 || st.Late != 0 || st.Ignored != 0 || st.DecodeErrors != 0 || st.Pending != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// rates of the synthetic hosts, per 10 s interval.
const (
	ioPerInterval   = 500     // ms of io_time: 5 % busy
	recvPerInterval = 1250000 // bytes on eth0: 1,000,000 bit/s
	recv1Interval   = 250000  // bytes on eth1: 200,000 bit/s
)

// steady returns a host's state in interval k of a steady load.
func steady(k int64, salt float64) hostState {
	return hostState{
		idle:    60 - salt,
		memUsed: 40 + salt,
		ioTime:  1000 + k*ioPerInterval,
		loopIO:  k * 10000, // a busy loop device, filtered out
		recv:    5e9 + k*recvPerInterval,
		recv1:   1e6 + k*recv1Interval,
		loRecv:  k * 1e9, // heavy loopback traffic, filtered out
	}
}

// steadyVector is the vector steady gives from its second interval on.
func steadyVector(salt float64) []float64 {
	return []float64{
		40 + salt, // 100 - (60 - salt)
		40 + salt, // used_percent
		5,         // 500 ms / 10 s = 5 %
		8 * (recvPerInterval + recv1Interval) / 10, // (1.25e6 + 0.25e6) B / 10 s × 8 = 1.2e6 bit/s
	}
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func TestAssemblerSyntheticFleet(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		encode func(t *testing.T, ms []metric) [][]byte
	}{
		{"influx", FormatInflux, func(t *testing.T, ms []metric) (out [][]byte) {
			for _, m := range ms {
				out = append(out, m.influx(t))
			}
			return out
		}},
		{"json", FormatJSON, func(t *testing.T, ms []metric) (out [][]byte) {
			for _, m := range ms {
				out = append(out, m.json(t))
			}
			return out
		}},
		{"influx/batch", FormatInflux, func(t *testing.T, ms []metric) [][]byte {
			var b []byte
			for _, m := range ms {
				b = append(b, m.influx(t)...)
			}
			return [][]byte{b}
		}},
		{"json/batch", FormatJSON, func(t *testing.T, ms []metric) [][]byte { return [][]byte{jsonBatch(t, ms)} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, inc := newTestAssembler(t, 10*time.Second, nil)
			var got []Vector
			for k := range int64(4) {
				ts := t0.Add(time.Duration(k) * 10 * time.Second)
				got = append(got, feed(t, a, ts.Add(time.Second), tc.format, tc.encode(t, hostMetrics("web-1", ts, steady(k, 0)))...)...)
			}
			got = append(got, a.Flush(t0.Add(time.Hour))...)
			want := []wantVector{
				{"web-1", t0.Unix() + 10, steadyVector(0)},
				{"web-1", t0.Unix() + 20, steadyVector(0)},
				{"web-1", t0.Unix() + 30, steadyVector(0)},
			}
			checkVectors(t, got, want, 1e-9)
			if len(*inc) != 1 || (*inc)[0].TS != t0 {
				t.Errorf("incomplete %+v, want the first interval only", *inc)
			}
			// cpu0, loop0, lo and interface=all are filtered out or lack the
			// field: 4 per interval.
			if st := a.Stats(); st.Ignored != 16 || st.Measurements != 36 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// A vector is emitted by the message that completes it, not at a deadline,
// once the host has history.
func TestAssemblerEmitsWhenComplete(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	for k := range int64(3) {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		ms := hostMetrics("web-1", ts, steady(k, 0))
		for i, m := range ms {
			vs := feed(t, a, ts.Add(time.Second), FormatInflux, m.influx(t))
			// The last mapped series of an interval is eth1 (index 6).
			if k == 2 && i == 6 {
				if len(vs) != 1 || vs[0].TS.Unix() != ts.Unix() {
					t.Fatalf("interval %d: eth1 gave %v, want its vector", k, vs)
				}
			} else if k == 2 && len(vs) != 0 {
				t.Fatalf("interval %d, message %d (%s): emitted %v early", k, i, m.name, vs)
			}
		}
	}
}

func TestAssemblerCounterReset(t *testing.T) {
	a, inc := newTestAssembler(t, 10*time.Second, nil)
	var got []Vector
	for k := range int64(6) {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		st := steady(k, 0)
		if k >= 3 {
			// The disk's counter went back to 100 at interval 3 (a reboot,
			// or a wrap), then grows 500 per interval again.
			st.ioTime = 100 + (k-3)*ioPerInterval
		}
		for _, m := range hostMetrics("db-1", ts, st) {
			got = append(got, feed(t, a, ts.Add(time.Second), FormatInflux, m.influx(t))...)
		}
	}
	got = append(got, a.Flush(t0.Add(time.Hour))...)
	want := []wantVector{
		{"db-1", t0.Unix() + 10, steadyVector(0)},
		{"db-1", t0.Unix() + 20, steadyVector(0)},
		// interval 3: no disk rate (17000 -> 100 is a reset, not -1690 %)
		{"db-1", t0.Unix() + 40, steadyVector(0)}, // (600-100)/10 s × 0.1 = 5
		{"db-1", t0.Unix() + 50, steadyVector(0)},
	}
	checkVectors(t, got, want, 1e-9)
	if len(*inc) != 2 {
		t.Fatalf("incomplete %+v, want intervals 0 and 3", *inc)
	}
	reset := (*inc)[1]
	if reset.TS.Unix() != t0.Unix()+30 || !slices.Equal(reset.Missing, []MissingFeature{{"disk_busy", "counter reset"}}) {
		t.Errorf("incomplete %+v, want disk_busy counter reset at interval 3", reset)
	}
	if st := a.Stats(); st.CounterResets != 1 || st.Incomplete != 2 || st.Emitted != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestAssemblerGap(t *testing.T) {
	a, inc := newTestAssembler(t, 10*time.Second, nil) // MaxGapIntervals 3
	var got []Vector
	// Intervals 0, 1, then silence until 6 (a 50 s gap > 3 × 10 s), 7.
	for _, k := range []int64{0, 1, 6, 7} {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		for _, m := range hostMetrics("web-1", ts, steady(k, 0)) {
			got = append(got, feed(t, a, ts.Add(time.Second), FormatJSON, m.json(t))...)
		}
	}
	got = append(got, a.Flush(t0.Add(time.Hour))...)
	want := []wantVector{
		{"web-1", t0.Unix() + 10, steadyVector(0)},
		{"web-1", t0.Unix() + 70, steadyVector(0)},
	}
	checkVectors(t, got, want, 1e-9)
	if len(*inc) != 2 || (*inc)[1].TS.Unix() != t0.Unix()+60 {
		t.Fatalf("incomplete %+v, want intervals 0 and 6", *inc)
	}
	wantMissing := []MissingFeature{{"disk_busy", "counter gap"}, {"net_in_bps", "counter gap"}}
	if !slices.Equal((*inc)[1].Missing, wantMissing) {
		t.Errorf("interval 6 missing %v, want %v", (*inc)[1].Missing, wantMissing)
	}
}

// A host that stops sending is finalised at its deadline, counted as
// incomplete, and never delays the others.
func TestAssemblerSilentHost(t *testing.T) {
	a, inc := newTestAssembler(t, 10*time.Second, nil)
	var got []Vector
	for k := range int64(8) {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		now := ts.Add(time.Second)
		for _, m := range hostMetrics("quiet", ts, steady(k, 1)) {
			if k > 3 || (k == 3 && m.name != "cpu" && m.name != "mem") {
				continue // quiet sends cpu and mem at interval 3, then nothing
			}
			got = append(got, feed(t, a, now, FormatInflux, m.influx(t))...)
		}
		for i, m := range hostMetrics("busy", ts, steady(k, 2)) {
			vs := feed(t, a, now, FormatInflux, m.influx(t))
			got = append(got, vs...)
			// From interval 2 on, busy's vector comes with its last series
			// (eth1), whatever quiet does.
			if k >= 2 && i == 6 && !slices.ContainsFunc(vs, func(v Vector) bool { return v.Host == "busy" && v.TS.Equal(ts) }) {
				t.Fatalf("interval %d: busy's vector not emitted on completion: %v", k, vs)
			}
		}
	}
	got = append(got, a.Flush(t0.Add(80*time.Second+time.Second))...)
	var busy, quiet []Vector
	for _, v := range got {
		if v.Host == "busy" {
			busy = append(busy, v)
		} else {
			quiet = append(quiet, v)
		}
	}
	var wantBusy []wantVector
	for k := int64(1); k < 8; k++ {
		wantBusy = append(wantBusy, wantVector{"busy", t0.Unix() + 10*k, steadyVector(2)})
	}
	checkVectors(t, busy, wantBusy, 1e-9)
	for _, v := range quiet {
		if v.TS.Unix() >= t0.Unix()+30 {
			t.Errorf("quiet emitted %v at %v with holes", v.Values, v.TS)
		}
	}
	var quietInc []Incomplete
	for _, i := range *inc {
		if i.Host == "quiet" {
			quietInc = append(quietInc, i)
		}
	}
	// quiet: interval 0 (first), interval 3 (disk and net never came).
	if len(quietInc) != 2 || quietInc[1].TS.Unix() != t0.Unix()+30 {
		t.Fatalf("quiet incomplete %+v", quietInc)
	}
	wantMissing := []MissingFeature{{"disk_busy", "no data"}, {"net_in_bps", "no data"}}
	if !slices.Equal(quietInc[1].Missing, wantMissing) {
		t.Errorf("quiet interval 3 missing %v, want %v", quietInc[1].Missing, wantMissing)
	}
	// quiet (last message at t0+31s) is forgotten once silent for HostTTL,
	// (3+3+1) × 10 s + 10 s = 80 s; busy's last message came at t0+71s.
	for _, c := range []struct {
		at    time.Duration
		hosts int
	}{{110 * time.Second, 2}, {125 * time.Second, 1}, {160 * time.Second, 0}} {
		a.Flush(t0.Add(c.at))
		if st := a.Stats(); st.Hosts != c.hosts || st.Pending != 0 {
			t.Errorf("at t0+%v: stats %+v, want %d hosts", c.at, st, c.hosts)
		}
	}
}

// Many hosts, their messages interleaved in a random order within each
// interval, one message per measurement.
func TestAssemblerManyInterleavedHosts(t *testing.T) {
	const hosts, intervals = 200, 5
	for _, format := range []Format{FormatInflux, FormatJSON} {
		t.Run(format.String(), func(t *testing.T) {
			a, inc := newTestAssembler(t, 10*time.Second, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			var got []Vector
			for k := range int64(intervals) {
				ts := t0.Add(time.Duration(k) * 10 * time.Second)
				var msgs [][]byte
				for h := range hosts {
					for _, m := range hostMetrics(fmt.Sprintf("host-%03d", h), ts, steady(k, float64(h)/10)) {
						if format == FormatJSON {
							msgs = append(msgs, m.json(t))
						} else {
							msgs = append(msgs, m.influx(t))
						}
					}
				}
				rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
				for i, msg := range msgs {
					// Receive times spread over 2 s, in order.
					got = append(got, feed(t, a, ts.Add(time.Second+time.Duration(i)*time.Millisecond), format, msg)...)
				}
			}
			got = append(got, a.Flush(t0.Add(time.Hour))...)
			slices.SortFunc(got, func(x, y Vector) int {
				if c := x.TS.Compare(y.TS); c != 0 {
					return c
				}
				return strings.Compare(x.Host, y.Host)
			})
			var want []wantVector
			for k := int64(1); k < intervals; k++ {
				for h := range hosts {
					want = append(want, wantVector{fmt.Sprintf("host-%03d", h), t0.Unix() + 10*k, steadyVector(float64(h) / 10)})
				}
			}
			checkVectors(t, got, want, 1e-9)
			if len(*inc) != hosts {
				t.Errorf("%d incomplete, want %d (each host's first interval)", len(*inc), hosts)
			}
			if st := a.Stats(); st.Late != 0 || st.Dropped != 0 || st.Hosts != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Intervals arriving out of order within MaxLateIntervals are assembled, and
// rates use the right previous observation.
func TestAssemblerOutOfOrder(t *testing.T) {
	// io_time grows 100, 200, 300, 400 ms in intervals 1..4, so each
	// interval's disk_busy differs: 1, 2, 3, 4 %.
	io := []int64{0, 100, 300, 600, 1000}
	state := func(k int64) hostState {
		s := steady(k, 0)
		s.ioTime = io[k]
		return s
	}
	tests := []struct {
		name  string
		order []int64 // intervals in arrival order
	}{
		{"in order", []int64{0, 1, 2, 3, 4}},
		{"3 before 2", []int64{0, 1, 3, 2, 4}},
		{"4 3 2 after 1", []int64{0, 1, 4, 3, 2}},
		{"1 last", []int64{0, 2, 3, 1, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, inc := newTestAssembler(t, 10*time.Second, nil)
			var got []Vector
			now := t0
			for _, k := range tc.order {
				ts := t0.Add(time.Duration(k) * 10 * time.Second)
				now = now.Add(2 * time.Second)
				for _, m := range hostMetrics("web-1", ts, state(k)) {
					got = append(got, feed(t, a, now, FormatInflux, m.influx(t))...)
				}
			}
			got = append(got, a.Flush(now.Add(time.Hour))...)
			slices.SortFunc(got, func(x, y Vector) int { return x.TS.Compare(y.TS) })
			var want []wantVector
			for k := int64(1); k <= 4; k++ {
				v := steadyVector(0)
				v[2] = float64(k) // (io[k]-io[k-1]) / 10 s × 0.1
				want = append(want, wantVector{"web-1", t0.Unix() + 10*k, v})
			}
			checkVectors(t, got, want, 1e-9)
			if len(*inc) != 1 {
				t.Errorf("incomplete %+v, want the first interval only", *inc)
			}
			if st := a.Stats(); st.Late != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestAssemblerLate(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil) // MaxLateIntervals 3
	send := func(k int64, now time.Time) []Vector {
		var vs []Vector
		for _, m := range hostMetrics("web-1", t0.Add(time.Duration(k)*10*time.Second), steady(k, 0)) {
			vs = append(vs, feed(t, a, now, FormatInflux, m.influx(t))...)
		}
		return vs
	}
	now := t0.Add(time.Second)
	for k := range int64(6) {
		send(k, now)
		now = now.Add(10 * time.Second)
	}
	before := a.Stats()
	// Interval 4 was emitted: all of its 9 messages are late; 5 of them were
	// mapped. Interval 1 is beyond the window (newest 5, window 3): late.
	if vs := send(4, now); len(vs) != 0 {
		t.Errorf("a repeated interval gave %v", vs)
	}
	send(1, now)
	after := a.Stats()
	if late := after.Late - before.Late; late != 10 {
		t.Errorf("late %d, want 10 (the mapped measurements of intervals 4 and 1)", late)
	}
	if after.Emitted != before.Emitted || after.Pending != 0 {
		t.Errorf("stats %+v after late data, before %+v", after, before)
	}
}

func TestAssemblerClockSetBack(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	now := t0
	send := func(ts time.Time, k int64) []Vector {
		now = now.Add(10 * time.Second)
		var vs []Vector
		for _, m := range hostMetrics("web-1", ts, steady(k, 0)) {
			vs = append(vs, feed(t, a, now, FormatInflux, m.influx(t))...)
		}
		return vs
	}
	// A host whose clock was a day ahead, then corrected.
	ahead := t0.Add(24 * time.Hour)
	got := send(ahead, 0)
	got = append(got, send(ahead.Add(10*time.Second), 1)...)
	for k := int64(2); k < 5; k++ {
		got = append(got, send(t0.Add(time.Duration(k)*10*time.Second), k)...)
	}
	got = append(got, a.Flush(now.Add(time.Hour))...)
	checkVectors(t, got, []wantVector{
		{"web-1", t0.Unix() + 24*3600 + 10, steadyVector(0)},
		{"web-1", t0.Unix() + 30, steadyVector(0)},
		{"web-1", t0.Unix() + 40, steadyVector(0)},
	}, 1e-9)
	if st := a.Stats(); st.HostResets != 1 || st.Late != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestAssemblerLimits(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, func(c *Config) {
		c.MaxHosts = 2
		c.MaxSeries = 3
	})
	for h := range 3 {
		for _, m := range hostMetrics(fmt.Sprintf("h%d", h), t0, steady(0, 0)) {
			feed(t, a, t0, FormatInflux, m.influx(t))
		}
	}
	st := a.Stats()
	// h2 is refused: its 5 measurements of mapped names (9 messages, 2 with
	// an unmapped... all 9 are cpu, mem, diskio or net) are dropped. h0 and
	// h1 have 4 net series (eth0, eth1, lo, all): all has no bytes_recv, so
	// 3 are tracked, within MaxSeries.
	if st.Hosts != 2 || st.Dropped != 9 {
		t.Errorf("stats %+v, want 2 hosts and 9 dropped", st)
	}
	// A fourth interface of h0 exceeds MaxSeries.
	m := metric{"net", map[string]string{"host": "h0", "interface": "eth9"}, map[string]any{"bytes_recv": int64(1)}, t0}
	feed(t, a, t0, FormatInflux, m.influx(t))
	if st2 := a.Stats(); st2.Dropped != st.Dropped+1 {
		t.Errorf("dropped %d, want %d", st2.Dropped, st.Dropped+1)
	}
}

func TestAssemblerNoHostAndIgnored(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	msgs := []metric{
		{"mem", map[string]string{}, map[string]any{"used_percent": 1.0}, t0},                         // no host tag
		{"swap", map[string]string{"host": "a"}, map[string]any{"used_percent": 1.0}, t0},             // unmapped name
		{"mem", map[string]string{"host": "a"}, map[string]any{"free": int64(3)}, t0},                 // no mapped field
		{"cpu", map[string]string{"host": "a", "cpu": "cpu3"}, map[string]any{"usage_idle": 1.0}, t0}, // filtered out
	}
	for _, m := range msgs {
		feed(t, a, t0, FormatInflux, m.influx(t))
	}
	if st := a.Stats(); st.NoHost != 1 || st.Ignored != 3 || st.Pending != 0 {
		t.Errorf("stats %+v, want 1 without host, 3 ignored, nothing pending", st)
	}
}

// A message with a malformed line: the good lines are assembled, the error
// names the bad line and what is wrong, and it is counted.
func TestAssemblerMalformedMessage(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	msg := []byte("mem,host=a used_percent=12.5 1795546160000000000\n" +
		"mem,host=b used_percent=12.5,free= 1795546160000000000\n" +
		"cpu,cpu=cpu-total,host=a usage_idle=90 1795546160000000000\n")
	_, err := a.AddMessage(msg, FormatInflux, t0)
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a *DecodeError", err)
	}
	if de.Line != 2 || de.Metric != 1 || !strings.Contains(de.Text, "host=b") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %q (%+v): want line 2, metric 1, and its text", err, de)
	}
	if st := a.Stats(); st.DecodeErrors != 1 || st.Measurements != 2 || st.Pending != 1 {
		t.Errorf("stats %+v, want 1 decode error and the 2 good lines added", st)
	}
}

func TestNewAssemblerErrors(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name     string
		cfg      Config
		features []string
		want     string
	}{
		{"unmapped", cfg, []string{"cpu_usage", "gpu_usage"}, `feature "gpu_usage" of the model has no mapping`},
		{"twice", cfg, []string{"cpu_usage", "cpu_usage"}, `"cpu_usage" given twice`},
		{"none", cfg, nil, "no features"},
		{"bad config", Config{}, seedFeatures, "no features"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAssembler(tc.cfg, tc.features)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// A subset of the mapping, in another order.
	a, err := NewAssembler(cfg, []string{"net_in_bps", "mem_usage"})
	if err != nil || !slices.Equal(a.Features(), []string{"net_in_bps", "mem_usage"}) {
		t.Fatalf("subset: %v %v", a, err)
	}
}

// Add, AddMessage, Flush and Stats from several goroutines (run with -race).
// All use one receive time, so that no deadline depends on how the
// goroutines are scheduled.
func TestAssemblerConcurrent(t *testing.T) {
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	emitted := 0
	for g := range 4 {
		wg.Go(func() {
			dec := NewTelegrafDecoder()
			for k := range int64(4) {
				ts := t0.Add(time.Duration(k) * 10 * time.Second)
				for _, m := range hostMetrics(fmt.Sprintf("g%d", g), ts, steady(k, 0)) {
					var vs []Vector
					if g%2 == 0 {
						var err error
						if vs, err = a.AddMessage(m.influx(t), FormatInflux, t0); err != nil {
							t.Error(err)
						}
					} else {
						ms, err := dec.DecodeJSON(nil, m.json(t))
						if err != nil || len(ms) != 1 {
							t.Error(err)
							continue
						}
						vs = a.Add(ms[0], t0)
					}
					mu.Lock()
					emitted += len(vs)
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			a.Flush(t0)
			a.Stats()
		}
	})
	wg.Wait()
	emitted += len(a.Drain())
	if st := a.Stats(); emitted != 12 || st.Emitted != 12 {
		t.Errorf("emitted %d (stats %+v), want 3 intervals × 4 hosts", emitted, st)
	}
}

func TestDrain(t *testing.T) {
	a, inc := newTestAssembler(t, 10*time.Second, nil)
	// One complete first interval of gauges only: it waits for its deadline,
	// or Drain.
	a2, err := NewAssembler(DefaultConfig(), []string{"mem_usage"})
	if err != nil {
		t.Fatal(err)
	}
	m := metric{"mem", map[string]string{"host": "a"}, map[string]any{"used_percent": 12.5}, t0}
	if vs := feed(t, a2, t0, FormatInflux, m.influx(t)); len(vs) != 0 {
		t.Fatalf("first interval emitted before its deadline: %v", vs)
	}
	if vs := a2.Drain(); len(vs) != 1 || vs[0].Values[0] != 12.5 {
		t.Fatalf("Drain gave %v, want the mem vector", vs)
	}
	// Another host's first interval, finalised at its deadline (Wait
	// defaults to Interval, 10 s).
	m.ts, m.tags = t0.Add(10*time.Second), map[string]string{"host": "b"}
	if vs := feed(t, a2, t0.Add(10*time.Second), FormatInflux, m.influx(t)); len(vs) != 0 {
		t.Fatalf("first interval emitted before its deadline: %v", vs)
	}
	if vs := a2.Flush(t0.Add(19 * time.Second)); len(vs) != 0 {
		t.Fatalf("Flush before the deadline gave %v", vs)
	}
	if vs := a2.Flush(t0.Add(20 * time.Second)); len(vs) != 1 || !vs[0].TS.Equal(m.ts) {
		t.Fatalf("Flush at the deadline gave %v, want the mem vector of %v", vs, m.ts)
	}
	feed(t, a, t0, FormatInflux, m.influx(t))
	if vs := a.Drain(); len(vs) != 0 || len(*inc) != 1 || a.Stats().Pending != 0 {
		t.Fatalf("Drain of an incomplete interval gave %v, incomplete %v", vs, *inc)
	}
}

// A host with many series of one feature (a container host's veth
// interfaces): the sum waits for all of them and then is emitted at once.
func TestAssemblerManySeries(t *testing.T) {
	const n = 300
	cfg := Config{Interval: 10 * time.Second, Features: []Feature{{Name: "net_in_bps", Measurement: "net", Field: "bytes_recv", Kind: Rate, Scale: 8, Aggregate: Sum}}}
	a, err := NewAssembler(cfg, []string{"net_in_bps"})
	if err != nil {
		t.Fatal(err)
	}
	var got []Vector
	for k := range int64(3) {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		for i := range n {
			// Interface i receives (i+1) × 1000 bytes per interval.
			m := metric{"net", map[string]string{"host": "node", "interface": fmt.Sprintf("veth%d", i)}, map[string]any{"bytes_recv": k * int64(i+1) * 1000}, ts}
			vs := feed(t, a, ts.Add(time.Second), FormatInflux, m.influx(t))
			if k == 2 && i < n-1 && len(vs) != 0 {
				t.Fatalf("emitted after %d of %d interfaces: %v", i+1, n, vs)
			}
			got = append(got, vs...)
		}
	}
	// Σ (i+1) × 1000 B / 10 s × 8 over i < 300 = 300·301/2 × 800 bit/s.
	want := float64(n*(n+1)/2) * 800
	if len(got) != 2 || got[0].Values[0] != want || got[1].Values[0] != want {
		t.Errorf("got %v, want 2 vectors of %v", got, want)
	}
}
