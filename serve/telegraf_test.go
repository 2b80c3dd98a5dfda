package serve

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/natstest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// tgT0 is the start of interval 0 of the test streams; intervals are 10 s,
// as in the default mapping.
var tgT0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

const tgInterval = 10 * time.Second

// tgTemplate is one measurement of the real Telegraf capture
// (serve/ingest/testdata) turned into fmt formats, one per wire format, with
// the host (%[1]s), the field the mapping uses (%[2]v) and the timestamp
// (%[3]d) as verbs: every other byte is what Telegraf 1.37 sent.
type tgTemplate struct {
	name         string
	field        string
	influx, json string
}

// tgTemplates reads the four measurements of the default mapping from the
// captures.
func tgTemplates(t testing.TB) map[string]tgTemplate {
	t.Helper()
	fields := map[string]string{"cpu": "usage_idle", "mem": "used_percent", "diskio": "io_time", "net": "bytes_recv"}
	out := map[string]tgTemplate{}
	for _, format := range []string{"influx", "json"} {
		f, err := os.Open("ingest/testdata/telegraf-1.37-" + format + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := strings.ReplaceAll(sc.Text(), "%", "%%") + "\n"
			var name string
			if format == "influx" {
				name = line[:strings.IndexAny(line, ", ")]
			} else {
				name = regexp.MustCompile(`"name":"([a-z]+)"`).FindStringSubmatch(line)[1]
			}
			field, ok := fields[name]
			tm := out[name]
			if !ok || (format == "influx" && tm.influx != "") || (format == "json" && tm.json != "") {
				continue
			}
			tm.name, tm.field = name, field
			verb := "%[2]v"
			if name == "diskio" || name == "net" {
				verb = "%[2]d"
			}
			if format == "influx" {
				if name == "diskio" || name == "net" {
					verb += "i"
				}
				line = strings.Replace(line, "host=vm", "host=%[1]s", 1)
				line = regexp.MustCompile(`([ ,])`+field+`=[^ ,]+`).ReplaceAllString(line, "${1}"+field+"="+verb)
				line = regexp.MustCompile(` [0-9]+\n$`).ReplaceAllString(line, " %[3]d\n")
				tm.influx = line
			} else {
				line = strings.Replace(line, `"host":"vm"`, `"host":"%[1]s"`, 1)
				line = regexp.MustCompile(`"`+field+`":[^,}]+`).ReplaceAllString(line, `"`+field+`":`+verb)
				line = regexp.MustCompile(`"timestamp":[0-9]+`).ReplaceAllString(line, `"timestamp":%[3]d`)
				tm.json = line
			}
			out[name] = tm
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"cpu", "mem", "diskio", "net"} {
		tm := out[name]
		if strings.Count(tm.influx, "%[") != 3 || strings.Count(tm.json, "%[") != 3 {
			t.Fatalf("template %s: %q / %q", name, tm.influx, tm.json)
		}
	}
	return out
}

// render returns the message of one measurement: Telegraf's line (influx,
// nanosecond timestamp) or object (json, second timestamp), with its
// newline.
func (tm tgTemplate) render(format ingest.Format, host string, v any, ts time.Time) []byte {
	if format == ingest.FormatJSON {
		return fmt.Appendf(nil, tm.json, host, v, ts.Unix())
	}
	return fmt.Appendf(nil, tm.influx, host, v, ts.UnixNano())
}

// tgPoint is what one host reports for one interval.
type tgPoint struct {
	host string
	k    int // interval number from tgT0
	idle float64
	used float64
	io   int64 // diskio.io_time, ms
	recv int64 // net.bytes_recv
}

func (p tgPoint) ts() time.Time { return tgT0.Add(time.Duration(p.k) * tgInterval) }

// messages returns p's four measurements, cpu, mem, diskio, net, one
// message each.
func (p tgPoint) messages(tms map[string]tgTemplate, format ingest.Format) [][]byte {
	return [][]byte{
		tms["cpu"].render(format, p.host, p.idle, p.ts()),
		tms["mem"].render(format, p.host, p.used, p.ts()),
		tms["diskio"].render(format, p.host, p.io, p.ts()),
		tms["net"].render(format, p.host, p.recv, p.ts()),
	}
}

// batchOf joins messages the way Telegraf does with use_batch_format:
// lines one after another (influx), or {"metrics":[...]} (json).
func batchOf(format ingest.Format, msgs [][]byte) []byte {
	if format != ingest.FormatJSON {
		var b []byte
		for _, m := range msgs {
			b = append(b, m...)
		}
		return b
	}
	b := []byte(`{"metrics":[`)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, strings.TrimSpace(string(m))...)
	}
	return append(b, "]}"...)
}

// tgStream makes k intervals of points for each host: gauges and counter
// increases drawn at random, plus the extra points given.
func tgStream(hosts []string, intervals int, seed uint64) map[string][]tgPoint {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := map[string][]tgPoint{}
	for hi, h := range hosts {
		io, recv := int64(1000+hi*7), int64(5e8+hi*1e6)
		for k := range intervals {
			io += int64(200 + rng.IntN(2000))   // 2% to 22% busy
			recv += int64(1e6 + rng.IntN(20e6)) // 0.8 to 16.8 Mbit/s
			out[h] = append(out[h], tgPoint{host: h, k: k, idle: 40 + 50*rng.Float64(), used: 20 + 30*rng.Float64(), io: io, recv: recv})
		}
	}
	return out
}

// tgVector is the vector the default mapping makes of p after prev.
func tgVector(prev, p tgPoint) []float64 {
	dt := p.ts().Sub(prev.ts()).Seconds()
	return []float64{100 - p.idle, p.used, float64(p.io-prev.io) / dt * 0.1, float64(p.recv-prev.recv) / dt * 8}
}

// tgExpect returns the vectors the default mapping must make of each
// host's points (in interval order, one point per interval): one per
// interval after the first whose counters did not go down, keyed
// host/ts.
func tgExpect(points map[string][]tgPoint) map[string][]float64 {
	want := map[string][]float64{}
	for h, ps := range points {
		for i := 1; i < len(ps); i++ {
			if ps[i].k != ps[i-1].k+1 || ps[i].io < ps[i-1].io || ps[i].recv < ps[i-1].recv {
				continue
			}
			want[h+"/"+ps[i].ts().Format(time.RFC3339)] = tgVector(ps[i-1], ps[i])
		}
	}
	return want
}

// tgConfig returns a test configuration of the Telegraf input: every score
// published, short deadlines.
func tgConfig(modelPath string, wait time.Duration) Config {
	cfg := testConfig(modelPath)
	cfg.Telegraf.Enabled = true
	cfg.NATS.PublishScores = true
	mapping := ingest.DefaultConfig()
	mapping.Wait = wait
	mapping.HostTTL = time.Hour
	cfg.Telegraf.Mapping = &mapping
	cfg.Telegraf.Flush = 20 * time.Millisecond
	return cfg
}

// checkScores reads scores until every wanted vector has one (and then
// anything else arriving within quiet), and checks each: the subject, the
// host, and the energy the local scorer gives the wanted vector.
func checkScores(t *testing.T, c *collector, s *model.Scorer, want map[string][]float64, quiet time.Duration) map[string]Event {
	t.Helper()
	msgs := c.wait(t, len(want), 15*time.Second)
	msgs = append(msgs, c.quiet(quiet)...)
	got := map[string]Event{}
	for _, msg := range msgs {
		e := decodeEvent(t, msg.Data)
		key := e.Host + "/" + e.TS.UTC().Format(time.RFC3339)
		if _, dup := got[key]; dup {
			t.Errorf("two scores for %s", key)
		}
		got[key] = e
		x, ok := want[key]
		if !ok {
			t.Errorf("unexpected score %s on %s", msg.Data, msg.Subject)
			continue
		}
		if msg.Subject != "scores."+ingest.HostToken(e.Host) {
			t.Errorf("score of %s on %s", e.Host, msg.Subject)
		}
		r, err := s.Score(x)
		if err != nil {
			t.Fatal(err)
		}
		if !scalar.EqualWithinAbsOrRel(float64(e.Energy), r.Energy, 1e-9, 1e-9) || e.Anomaly != r.Anomaly || e.Source != nil {
			t.Errorf("score %s: want energy %v for the vector %v", msg.Data, r.Energy, x)
		}
	}
	for key := range want {
		if _, ok := got[key]; !ok {
			t.Errorf("no score for %s", key)
		}
	}
	return got
}

// checkExplained checks that an anomaly event's actual values are the
// vector's.
func checkExplained(t *testing.T, e Event, x []float64, features []string) {
	t.Helper()
	if len(e.Explanation) != len(features) {
		t.Fatalf("explanation %+v", e.Explanation)
	}
	for _, fe := range e.Explanation {
		j := -1
		for i, f := range features {
			if f == fe.Feature {
				j = i
			}
		}
		if j < 0 || !scalar.EqualWithinAbsOrRel(float64(fe.Actual), x[j], 1e-9, 1e-9) {
			t.Errorf("explanation of %s: actual %v, want %v", fe.Feature, fe.Actual, x)
		}
	}
}

// injectAnomaly changes ps[k] so that its vector is an anomaly for the
// model: a sample of the model's normal range with one feature pushed far
// outside it (as testData does), that counters can make (no negative
// rate); the
// counters after it are shifted so that they keep going up. It returns
// ps[k].
func injectAnomaly(t *testing.T, m *model.Model, s *model.Scorer, ps []tgPoint, k int) *tgPoint {
	t.Helper()
	d := len(m.Features)
	pool := modeltest.Inputs(m, 200, 5)
	for _, z := range []float64{20, -20, 6, -6} {
		for j := range d {
			for r := 0; r*d < len(pool); r++ {
				x := slices.Clone(pool[r*d : (r+1)*d])
				x[j] = m.Norm[j].Invert(z)
				if x[2] < 0 || x[3] <= 0 || math.IsNaN(x[j]) || math.IsInf(x[j], 0) {
					continue
				}
				q := ps[k]
				q.idle, q.used = 100-x[0], x[1]
				q.io = ps[k-1].io + int64(math.Round(x[2]*100))      // ms in 10 s; × 0.1 per second
				q.recv = ps[k-1].recv + int64(math.Round(x[3]*10/8)) // bytes in 10 s; × 8 per second
				if res, err := s.Score(tgVector(ps[k-1], q)); err != nil || !res.Anomaly {
					continue
				}
				dio, drecv := q.io-ps[k].io, q.recv-ps[k].recv
				ps[k] = q
				for i := k + 1; i < len(ps); i++ {
					ps[i].io += dio
					ps[i].recv += drecv
				}
				return &ps[k]
			}
		}
	}
	t.Fatal("no anomaly of the test model can be made of Telegraf counters")
	return nil
}

// tryCounter returns the value of a counter series, or an error when it
// does not exist yet.
func tryCounter(reg *prometheus.Registry, name string, labels map[string]string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no series %s%v", name, labels)
}

func tgPublish(t testing.TB, nc *nats.Conn, subject string, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if err := nc.Publish(subject, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestTelegrafEvents(t *testing.T) {
	// Three hosts, five intervals each, in Telegraf's exact wire formats,
	// one measurement per message or batched per interval: a score for every
	// interval after the first (the first has no counter rates), with the
	// energy of the vector the mapping makes; an anomaly event for the
	// injected anomaly, on the subject of its host, explaining the vector.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	hosts := []string{"web-1", "web-2", "db.2"}
	points := tgStream(hosts, 5, 3)
	// db.2 at interval 3: an anomaly for the test model, made of counters
	// that keep going up.
	p := injectAnomaly(t, m, s, points["db.2"], 3)
	want := tgExpect(points)
	anomalyKey := "db.2/" + p.ts().Format(time.RFC3339)
	for _, format := range []ingest.Format{ingest.FormatInflux, ingest.FormatJSON} {
		for _, batch := range []bool{false, true} {
			t.Run(fmt.Sprintf("format=%v/batch=%v", format, batch), func(t *testing.T) {
				cfg := tgConfig(path, 300*time.Millisecond)
				cfg.Telegraf.Format = format
				r := start(t, cfg)
				nc := natstest.Connect(t, r.NATSURL())
				scores := collect(t, nc, "scores.>")
				events := collect(t, nc, "anomalies.>")
				dead := collect(t, nc, "dagmm.deadletter")
				for k := range 5 {
					for _, h := range hosts {
						msgs := points[h][k].messages(tms, format)
						if batch {
							msgs = [][]byte{batchOf(format, msgs)}
						}
						tgPublish(t, nc, "telegraf", msgs...)
					}
				}
				checkScores(t, scores, s, want, 100*time.Millisecond)
				ev := events.wait(t, 1, 5*time.Second)[0]
				e := decodeEvent(t, ev.Data)
				if ev.Subject != "anomalies.db_2" || e.Host != "db.2" || !e.TS.Equal(p.ts()) || !e.Anomaly || e.Model != "dagmm" {
					t.Errorf("anomaly event %s on %s", ev.Data, ev.Subject)
				}
				checkExplained(t, e, want[anomalyKey], m.Features)
				for _, ev := range events.quiet(100 * time.Millisecond) {
					e := decodeEvent(t, ev.Data)
					if r, _ := s.Score(want[e.Host+"/"+e.TS.Format(time.RFC3339)]); !r.Anomaly {
						t.Errorf("unexpected anomaly event %s", ev.Data)
					}
				}
				// The first interval of each host is incomplete once its
				// deadline passed: no rate on a counter's first observation.
				reg := r.Registry()
				natstest.WaitFor(t, 5*time.Second, func() error {
					if v, err := tryCounter(reg, "dagmm_telegraf_intervals_total", map[string]string{"result": "incomplete"}); err != nil || v != 3 {
						return fmt.Errorf("%v incomplete intervals, want 3 (%v)", v, err)
					}
					return nil
				})
				for _, c := range []struct {
					name   string
					labels map[string]string
					want   float64
				}{
					{"dagmm_telegraf_intervals_total", map[string]string{"result": "emitted"}, 12},
					{"dagmm_telegraf_measurements_total", nil, 60},
					{"dagmm_telegraf_missing_features_total", map[string]string{"feature": "disk_busy", "reason": "first_observation"}, 3},
					{"dagmm_telegraf_missing_features_total", map[string]string{"feature": "net_in_bps", "reason": "first_observation"}, 3},
					{"dagmm_samples_scored_total", map[string]string{"source": "nats"}, 12},
					{"dagmm_nats_messages_total", map[string]string{"result": "scored"}, float64(map[bool]int{false: 60, true: 15}[batch])},
				} {
					if got := counterValue(t, reg, c.name, c.labels); got != c.want {
						t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
					}
				}
				if got := gaugeValue(t, reg, "dagmm_telegraf_hosts", nil); got != 3 {
					t.Errorf("%v hosts tracked, want 3", got)
				}
				// Assembled vectors feed the per-host series too.
				if got := gaugeValue(t, reg, "dagmm_host_series", nil); got != 3 {
					t.Errorf("%v hosts with series, want 3", got)
				}
				if got := counterValue(t, reg, "dagmm_host_anomalies_total", map[string]string{"host": "db.2"}); got != 1 {
					t.Errorf("db.2: %v anomalies, want 1", got)
				}
				if d := dead.quiet(10 * time.Millisecond); len(d) > 0 {
					t.Errorf("dead letter %q: %s", d[0].Header.Get(HeaderReason), d[0].Data)
				}
			})
		}
	}
}

func TestTelegrafCounterReset(t *testing.T) {
	// Host h's disk counter goes back to near zero at interval 3 (a
	// reboot): no vector for interval 3 (no negative spike), the rate is
	// back at interval 4, and the reset is counted.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	points := tgStream([]string{"h"}, 6, 5)
	ps := points["h"]
	delta := ps[4].io - ps[3].io
	ps[3].io = 120
	ps[4].io, ps[5].io = ps[3].io+delta, ps[3].io+delta+(ps[5].io-ps[4].io)
	want := tgExpect(points)
	if _, ok := want["h/"+ps[3].ts().Format(time.RFC3339)]; ok || len(want) != 4 {
		t.Fatalf("test data: %d vectors expected", len(want))
	}
	r := start(t, tgConfig(path, 300*time.Millisecond))
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	for _, p := range ps {
		tgPublish(t, nc, "telegraf", p.messages(tms, ingest.FormatInflux)...)
	}
	checkScores(t, scores, s, want, 200*time.Millisecond)
	reg := r.Registry()
	if got := counterValue(t, reg, "dagmm_telegraf_field_resets_total", nil); got != 1 {
		t.Errorf("%v counter resets, want 1", got)
	}
	if got := counterValue(t, reg, "dagmm_telegraf_missing_features_total", map[string]string{"feature": "disk_busy", "reason": "counter_reset"}); got != 1 {
		t.Errorf("%v disk_busy counter resets, want 1", got)
	}
}

func TestTelegrafHostStops(t *testing.T) {
	// Host b stops in the middle of interval 3 (cpu and mem sent, diskio
	// and net never): host a's vectors keep coming without waiting for b's
	// deadline; at the deadline b's interval is incomplete, with the
	// missing features counted.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	const wait = 1500 * time.Millisecond
	r := start(t, tgConfig(path, wait))
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	points := tgStream([]string{"a", "b"}, 7, 7)
	begin := time.Now()
	for k := range 7 {
		for _, h := range []string{"a", "b"} {
			msgs := points[h][k].messages(tms, ingest.FormatInflux)
			switch {
			case h == "b" && k == 3:
				msgs = msgs[:2]
			case h == "b" && k > 3:
				continue
			}
			tgPublish(t, nc, "telegraf", msgs...)
		}
	}
	want := tgExpect(map[string][]tgPoint{"a": points["a"], "b": points["b"][:3]})
	checkScores(t, scores, s, want, 0)
	if took := time.Since(begin); took >= wait {
		t.Errorf("host a's vectors took %v: held back by host b's deadline (%v)", took, wait)
	}
	reg := r.Registry()
	if got := gaugeValue(t, reg, "dagmm_telegraf_open_intervals", nil); got < 1 {
		t.Errorf("%v open intervals before b's deadline, want b's interval 3 open", got)
	}
	natstest.WaitFor(t, wait+5*time.Second, func() error {
		if v, err := tryCounter(reg, "dagmm_telegraf_missing_features_total", map[string]string{"feature": "net_in_bps", "reason": "no_data"}); err != nil || v != 1 {
			return fmt.Errorf("net_in_bps without data %v times, want 1 (%v)", v, err)
		}
		return nil
	})
	if got := counterValue(t, reg, "dagmm_telegraf_missing_features_total", map[string]string{"feature": "disk_busy", "reason": "no_data"}); got != 1 {
		t.Errorf("disk_busy without data %v times, want 1", got)
	}
	if d := scores.quiet(100 * time.Millisecond); len(d) > 0 {
		t.Errorf("a score for b's incomplete interval: %s", d[0].Data)
	}
}

func TestTelegrafInterleavedHosts(t *testing.T) {
	// 40 hosts, six intervals: within each interval every host's
	// measurements are shuffled among all the others', some in influx and
	// some in JSON on the same subject (format auto), with a loopback
	// interface the mapping leaves out. Every vector is right.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	hosts := make([]string, 40)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i)
	}
	points := tgStream(hosts, 6, 11)
	r := start(t, tgConfig(path, time.Second))
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	rng := rand.New(rand.NewPCG(11, 2))
	lo := tgTemplate{influx: strings.Replace(tms["net"].influx, "interface=eth0", "interface=lo", 1)}
	for k := range 6 {
		var msgs [][]byte
		for _, h := range hosts {
			format := ingest.FormatInflux
			if rng.IntN(2) == 0 {
				format = ingest.FormatJSON
			}
			msgs = append(msgs, points[h][k].messages(tms, format)...)
			msgs = append(msgs, lo.render(ingest.FormatInflux, h, 7e9+int64(rng.IntN(1e9)), points[h][k].ts()))
		}
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		tgPublish(t, nc, "telegraf", msgs...)
	}
	checkScores(t, scores, s, tgExpect(points), 200*time.Millisecond)
	if got := counterValue(t, r.Registry(), "dagmm_telegraf_measurements_unused_total", map[string]string{"reason": "ignored"}); got != 40*6 {
		t.Errorf("%v measurements ignored, want the %d of interface lo", got, 40*6)
	}
}

func TestTelegrafOutOfOrder(t *testing.T) {
	// Interval 3 arrives before interval 2, and interval 5's diskio before
	// interval 4's: each rate is still taken from the right predecessor.
	// Then interval 1's cpu comes again, after its interval was finalised:
	// it is late, counted and dropped.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	points := tgStream([]string{"h"}, 6, 13)
	ps := points["h"]
	r := start(t, tgConfig(path, 500*time.Millisecond))
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	msgs := func(k int) [][]byte { return ps[k].messages(tms, ingest.FormatJSON) }
	tgPublish(t, nc, "telegraf", msgs(0)...)
	tgPublish(t, nc, "telegraf", msgs(1)...)
	tgPublish(t, nc, "telegraf", msgs(3)...)
	tgPublish(t, nc, "telegraf", msgs(2)...)
	m4, m5 := msgs(4), msgs(5)
	tgPublish(t, nc, "telegraf", m5[2], m4[0], m4[1], m4[3], m4[2], m5[0], m5[1], m5[3])
	checkScores(t, scores, s, tgExpect(points), 0)
	tgPublish(t, nc, "telegraf", msgs(1)[0])
	reg := r.Registry()
	natstest.WaitFor(t, 5*time.Second, func() error {
		if v, err := tryCounter(reg, "dagmm_telegraf_measurements_unused_total", map[string]string{"reason": "late"}); err != nil || v != 1 {
			return fmt.Errorf("%v late measurements, want 1 (%v)", v, err)
		}
		return nil
	})
	if d := scores.quiet(100 * time.Millisecond); len(d) > 0 {
		t.Errorf("a score after the late measurement: %s", d[0].Data)
	}
}

func TestTelegrafDeadLetter(t *testing.T) {
	// A batch with a malformed line, a JSON batch with a bad metric, and a
	// metric whose host cannot go in a subject go to the dead-letter
	// subject unchanged with the reason naming the metric; the good
	// metrics are still used, so the intervals they belong to still make
	// vectors.
	tms := tgTemplates(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	r := start(t, tgConfig(path, 300*time.Millisecond))
	nc := natstest.Connect(t, r.NATSURL())
	scores := collect(t, nc, "scores.>")
	dead := collect(t, nc, "dagmm.deadletter")
	points := tgStream([]string{"a", "b"}, 3, 17)
	for k := range 2 {
		tgPublish(t, nc, "telegraf", batchOf(ingest.FormatInflux, points["a"][k].messages(tms, ingest.FormatInflux)))
		tgPublish(t, nc, "telegraf", batchOf(ingest.FormatJSON, points["b"][k].messages(tms, ingest.FormatJSON)))
	}
	a2 := points["a"][2].messages(tms, ingest.FormatInflux)
	badInflux := batchOf(ingest.FormatInflux, [][]byte{a2[0], a2[1], []byte("diskio,host=a,name=vdb io_time=12x 1795546170000000000\n"), a2[2], a2[3]})
	b2 := points["b"][2].messages(tms, ingest.FormatJSON)
	badJSON := batchOf(ingest.FormatJSON, [][]byte{b2[0], b2[1], b2[2], []byte(`{"fields":{"bytes_recv":1},"tags":{"host":"b"},"timestamp":1795546170}`), b2[3]})
	// A host that cannot go in a subject: dead-lettered, the others go on.
	badHost := []byte("mem,host=" + strings.Repeat("h", 5000) + " used_percent=1 1795546170000000000\n")
	tgPublish(t, nc, "telegraf", badInflux, badJSON, badHost)
	checkScores(t, scores, s, tgExpect(points), 0)
	got := dead.wait(t, 3, 5*time.Second)
	for i, c := range []struct {
		payload []byte
		reason  string
	}{
		{badInflux, "ingest: influx metric 2 (line 3, column"},
		{badJSON, "ingest: json metric 3"},
		{badHost, `ingest: measurement "mem", tag "host": invalid host: 5000 bytes long`},
	} {
		g := got[i]
		reason := g.Header.Get(HeaderReason)
		if !strings.Contains(reason, c.reason) || g.Header.Get(HeaderReasonKind) != "decode" ||
			g.Header.Get(HeaderSubject) != "telegraf" || string(g.Data) != string(c.payload) {
			t.Errorf("dead letter %d: reason %q (%s, subject %s), payload %.60q; want reason %q and the message unchanged",
				i, reason, g.Header.Get(HeaderReasonKind), g.Header.Get(HeaderSubject), g.Data, c.reason)
		}
	}
	reg := r.Registry()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dagmm_dead_letters_total", map[string]string{"reason": "decode"}, 3},
		{"dagmm_telegraf_decode_errors_total", nil, 3},
		{"dagmm_nats_messages_total", map[string]string{"result": "dead_letter"}, 3},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestTelegrafJetStream(t *testing.T) {
	// Durable mode: messages are acknowledged once assembled. Intervals 0-3
	// are scored; the scorer stops; intervals 4-7 are published while it is
	// down; restarted, it assembles them from the stream: 5-7 are scored,
	// while 4 has no counter history after the restart (incomplete), as
	// the package documentation says.
	checkNoLeak(t)
	tms := tgTemplates(t)
	srv := runNATS(t)
	path, m := writeModel(t, t.TempDir(), 1)
	s, _ := model.NewScorer(m)
	cfg := tgConfig(path, 300*time.Millisecond)
	cfg.NATS.URL = srv.ClientURL()
	cfg.JetStream.Enabled = true
	cfg.JetStream.Stream = "TELEGRAF"
	cfg.JetStream.AckWait = time.Second
	nc, js := natstest.ConnectJS(t, srv.ClientURL())
	ctx := context.Background()
	scores := collect(t, nc, "scores.>")
	points := tgStream([]string{"x", "y"}, 8, 19)
	publish := func(from, to int) {
		t.Helper()
		for k := from; k < to; k++ {
			for _, h := range []string{"x", "y"} {
				for _, msg := range points[h][k].messages(tms, ingest.FormatInflux) {
					if _, err := js.Publish(ctx, "telegraf", msg); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	a := start(t, cfg)
	publish(0, 4)
	before := map[string][]tgPoint{"x": points["x"][:4], "y": points["y"][:4]}
	checkScores(t, scores, s, tgExpect(before), 0)
	a.stop(t)
	publish(4, 8)
	b := start(t, cfg)
	after := map[string][]tgPoint{"x": points["x"][4:], "y": points["y"][4:]}
	checkScores(t, scores, s, tgExpect(after), 200*time.Millisecond)
	cons, err := js.Consumer(ctx, "TELEGRAF", cfg.WithDefaults().JetStream.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("ack pending %d, pending %d, redelivered %d", info.NumAckPending, info.NumPending, info.NumRedelivered)
		}
		return nil
	})
	b.stop(t)
}

func TestTelegrafShutdownDrains(t *testing.T) {
	// A model of gauges only: a host's first interval is complete but has
	// no history to say so, so it waits for its deadline (a minute here).
	// Stopping the service finalises it and publishes its score before Run
	// returns.
	checkNoLeak(t)
	tms := tgTemplates(t)
	srv := runNATS(t)
	m := modeltest.NewRandom([]string{"cpu_usage", "mem_usage"}, []int{4, 1}, []int{4}, 2, 1)
	path := t.TempDir() + "/gauges.json"
	saveModelAt(t, path, m)
	s, _ := model.NewScorer(m)
	cfg := tgConfig(path, time.Minute)
	cfg.NATS.URL = srv.ClientURL()
	r := start(t, cfg)
	nc := natstest.Connect(t, srv.ClientURL())
	scores := collect(t, nc, "scores.>")
	p := tgStream([]string{"g"}, 1, 23)["g"][0]
	tgPublish(t, nc, "telegraf", p.messages(tms, ingest.FormatInflux)[:2]...)
	natstest.WaitFor(t, 5*time.Second, func() error {
		if v := counterValue(t, r.Registry(), "dagmm_telegraf_measurements_total", nil); v != 2 {
			return fmt.Errorf("%v measurements assembled, want 2", v)
		}
		return nil
	})
	if got := scores.quiet(50 * time.Millisecond); len(got) != 0 {
		t.Fatalf("scored before its deadline: %s", got[0].Data)
	}
	r.stop(t)
	checkScores(t, scores, s, map[string][]float64{"g/" + p.ts().Format(time.RFC3339): {100 - p.idle, p.used}}, 0)
}

func TestTelegrafConfig(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	noNet := ingest.DefaultConfig()
	noNet.Features = noNet.Features[:3]
	badMapping := ingest.DefaultConfig()
	badMapping.Interval = -time.Second
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // in the error of New; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no nats", func(c *Config) { c.NATS.Disabled = true }, "cannot be used without NATS"},
		{"format", func(c *Config) { c.Telegraf.Format = 9 }, "telegraf format"},
		{"flush", func(c *Config) { c.Telegraf.Flush = -time.Second }, "telegraf flush"},
		{"bad mapping", func(c *Config) { c.Telegraf.Mapping = &badMapping }, "telegraf mapping"},
		{"unmapped feature", func(c *Config) { c.Telegraf.Mapping = &noNet }, `feature "net_in_bps" of the model has no mapping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Model: ModelConfig{
					Path: path,
				},
				Telegraf: TelegrafConfig{
					Enabled: true,
				},
			}
			tc.edit(&cfg)
			s, err := New(cfg, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c := s.Config(); c.NATS.Subject != DefaultTelegrafSubject || c.Telegraf.Flush != time.Second {
					t.Errorf("defaults: subject %q, flush %v", c.NATS.Subject, c.Telegraf.Flush)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTelegrafMetricsLint(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	reg := prometheus.NewRegistry()
	cfg := testConfig(path)
	cfg.Telegraf.Enabled = true
	s, err := New(cfg, nil, WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	s.tg.incomplete(ingest.Incomplete{Host: "h", TS: tgT0, Missing: []ingest.MissingFeature{{Feature: "disk_busy", Reason: "series name=vdb missing"}}})
	problems, err := testutil.CollectAndLint(s.tg.tmet)
	if err != nil {
		t.Fatal(err)
	}
	problems2, err := testutil.CollectAndLint(s.tg.tmet.missing)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(problems, problems2...) {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if got := counterValue(t, reg, "dagmm_telegraf_missing_features_total", map[string]string{"feature": "disk_busy", "reason": "series_missing"}); got != 1 {
		t.Errorf("missing features %v, want 1", got)
	}
	for _, name := range []string{"dagmm_telegraf_measurements_total", "dagmm_telegraf_intervals_total", "dagmm_telegraf_hosts"} {
		metricValue(t, reg, name, nil)
	}
	if math.IsNaN(gaugeValue(t, reg, "dagmm_telegraf_open_intervals", nil)) {
		t.Error("open intervals NaN")
	}
}

// BenchmarkTelegrafNATS measures the whole Telegraf path of the service:
// messages published to the embedded nats-server, one measurement each in
// influx line protocol (the capture's lines: mem has 34 fields), from 1,000
// hosts; delivered, decoded, assembled, and the vectors scored (events for
// anomalies only). The publisher keeps at most 50,000 messages ahead of the
// scorer, as a steady stream would. Publisher, server and scorer share the
// machine's cores.
//
//	go test -run '^$' -bench TelegrafNATS -benchtime 400000x ./serve/
func BenchmarkTelegrafNATS(b *testing.B) {
	const hosts = 1000
	tms := tgTemplates(b)
	path, _ := writeModel(b, b.TempDir(), 1)
	cfg := tgConfig(path, 10*time.Second)
	cfg.NATS.PublishScores = false
	r := start(b, cfg)
	nc := natstest.Connect(b, r.NATSURL())
	// b.N messages: whole intervals of the fleet, rendered before the clock
	// starts.
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("host-%04d", i)
	}
	points := tgStream(names, (b.N+4*hosts-1)/(4*hosts), 1)
	msgs := make([][]byte, 0, b.N)
	for k := 0; len(msgs) < b.N; k++ {
		for _, h := range names {
			for _, m := range points[h][k].messages(tms, ingest.FormatInflux) {
				if len(msgs) < b.N {
					msgs = append(msgs, m)
				}
			}
		}
	}
	var bytes int64
	for _, m := range msgs {
		bytes += int64(len(m))
	}
	handled := func() int {
		return int(testutil.ToFloat64(r.met.msgScored) + testutil.ToFloat64(r.met.msgDeadLettered) + testutil.ToFloat64(r.met.msgFailed))
	}
	base := handled()
	vectors0 := testutil.ToFloat64(r.met.samplesNATS)
	b.SetBytes(bytes / int64(len(msgs)))
	b.ResetTimer()
	for i, m := range msgs {
		if i%1000 == 0 {
			for i-(handled()-base) > 50000 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		if err := nc.Publish("telegraf", m); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for handled()-base < len(msgs) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages handled after a minute", handled()-base, len(msgs))
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(len(msgs))/sec, "msgs/s")
	b.ReportMetric((testutil.ToFloat64(r.met.samplesNATS)-vectors0)/sec, "vectors/s")
	if failed := testutil.ToFloat64(r.met.msgFailed) + testutil.ToFloat64(r.met.msgDeadLettered); failed > 0 {
		b.Fatalf("%v messages failed or dead-lettered", failed)
	}
}
