package ingest

import (
	"fmt"
	"testing"
	"time"
)

// fleetMessages returns Telegraf messages for hosts × intervals (10 s),
// made from the real capture's cpu, mem, diskio and net lines (34 fields for
// mem) with the host, time and counters changed, in the order Telegraf
// flushes them: every host's four messages of an interval, then the next.
func fleetMessages(b *testing.B, format Format, hosts, intervals int) [][]byte {
	b.Helper()
	lines := readLines(b, "testdata/telegraf-1.37-influx.txt")[3:7] // cpu, mem, diskio, net at ...170
	d := NewTelegrafDecoder()
	var tmpl []Measurement
	for _, l := range lines {
		ms, err := d.DecodeLineProtocol(nil, l)
		if err != nil {
			b.Fatal(err)
		}
		tmpl = append(tmpl, ms...)
	}
	var out [][]byte
	for k := range intervals {
		ts := t0.Add(time.Duration(k) * 10 * time.Second)
		for h := range hosts {
			for _, m := range tmpl {
				mt := metric{name: m.Name, tags: map[string]string{}, fields: map[string]any{}, ts: ts}
				for _, tg := range m.Tags {
					mt.tags[tg.Key] = tg.Value
				}
				mt.tags["host"] = fmt.Sprintf("host-%05d", h)
				for _, f := range m.Fields {
					switch f.Key {
					case "io_time":
						mt.fields[f.Key] = int64(f.Value) + int64(k*(100+h%400))
					case "bytes_recv":
						mt.fields[f.Key] = int64(f.Value) + int64(k*(1e6+h))
					case "usage_idle", "used_percent":
						mt.fields[f.Key] = f.Value + float64(h%50)
					default:
						if f.Value == float64(int64(f.Value)) && m.Name != "cpu" {
							mt.fields[f.Key] = int64(f.Value)
						} else {
							mt.fields[f.Key] = f.Value
						}
					}
				}
				if format == FormatJSON {
					out = append(out, mt.json(b))
				} else {
					out = append(out, mt.influx(b))
				}
			}
		}
	}
	return out
}

// BenchmarkAssemble measures Telegraf messages through decoder and assembler
// (AddMessage), one message per measurement as outputs.nats publishes them:
// 1,000 hosts, 4 messages per host and interval.
func BenchmarkAssemble(b *testing.B) {
	const hosts, intervals = 1000, 30
	for _, format := range []Format{FormatInflux, FormatJSON} {
		msgs := fleetMessages(b, format, hosts, intervals) // once, not per b.N round
		b.Run("format="+format.String(), func(b *testing.B) {
			var bytes int64
			for _, m := range msgs {
				bytes += int64(len(m))
			}
			b.SetBytes(bytes / int64(len(msgs)))
			b.ReportAllocs()
			var a *Assembler
			var i, vectors int
			var now time.Time
			newRun := func() {
				var err error
				if a, err = NewAssembler(DefaultConfig(), seedFeatures); err != nil {
					b.Fatal(err)
				}
				i = 0
			}
			newRun()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				if i == len(msgs) { // timestamps would repeat: start again
					b.StopTimer()
					newRun()
					b.StartTimer()
				}
				now = t0.Add(time.Duration(i/(4*hosts))*10*time.Second + time.Second)
				vs, err := a.AddMessage(msgs[i], format, now)
				if err != nil {
					b.Fatal(err)
				}
				vectors += len(vs)
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if b.N > 8*hosts && vectors == 0 {
				b.Fatal("no vectors assembled")
			}
		})
	}
}

// BenchmarkDecodeTelegraf measures the decoders alone on the real capture.
func BenchmarkDecodeTelegraf(b *testing.B) {
	for _, bc := range []struct {
		format Format
		file   string
	}{{FormatInflux, "testdata/telegraf-1.37-influx.txt"}, {FormatJSON, "testdata/telegraf-1.37-json.txt"}} {
		b.Run("format="+bc.format.String(), func(b *testing.B) {
			lines := readLines(b, bc.file)
			d := NewTelegrafDecoder()
			var buf []Measurement
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				var err error
				if buf, err = d.Decode(buf[:0], lines[n%len(lines)], bc.format); err != nil || len(buf) != 1 {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
