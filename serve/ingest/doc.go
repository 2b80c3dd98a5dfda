// Package ingest turns message bytes into the model's feature vectors.
//
// It is a pure library: it imports no NATS, HTTP or training code, and it does
// not import package model either. Vectors are built by feature name in the
// order the caller gives (the model's Features), so the service
// wires this package to NATS or HTTP and hands the vectors to the scorer.
//
// # dagmm's own JSON samples
//
// A [SampleDecoder] reads the sample format of DESIGN.md,
//
//	{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}
//
// one sample per message, or a batch: either a JSON array of samples or an
// object {"samples":[...]} (both are accepted). The decoder is a small
// hand-written JSON scanner rather than encoding/json: it is on the hot path,
// and the benchmark beside it (BenchmarkDecodeSample) shows it four to nine
// times as fast as encoding/json decoding into a map (about 900,000 samples/s
// on one core of the 2-core development machine, against 90,000 to 230,000),
// with no allocation per sample besides the host string. A differential fuzz
// test (FuzzDecodeSample) checks it against encoding/json.
//
// # Telegraf
//
// A [TelegrafDecoder] reads what Telegraf's outputs.nats plugin publishes:
// influx line protocol (Telegraf's default, decoded with
// github.com/influxdata/line-protocol/v2) and Telegraf JSON, one metric per
// message or a batch (use_batch_format: several lines, or {"metrics":[...]}).
// Each metric becomes a [Measurement].
//
// # Prometheus remote write
//
// A [RemoteWriteDecoder] reads the body of a Prometheus remote write 1.0
// request (snappy block format, protobuf WriteRequest). Each sample becomes
// a [Measurement] named after its series (__name__), its other labels as
// tags and one field, [RemoteWriteField]; stale markers ([StaleNaN]) come
// apart, as ends of series. The request is refused whole with an error
// wrapping [ErrNotSnappy], [ErrNotWriteRequest] or [ErrTooLarge], which an
// HTTP endpoint answers with 400 or 413 (never retried by Prometheus).
// [PrometheusConfig] maps the recorded series of deploy/prometheus/rules.yaml
// (dagmm:cpu_usage, ...; host label instance) to features, and
// [Assembler.AddRemoteWrite] feeds the samples to the same assembler as
// Telegraf's, and ends the series of the stale markers: they are no longer
// waited for, never scored, and a host whose every series ended is
// forgotten. BenchmarkRemoteWrite measures decoding and assembling; serve's
// POST /api/v1/write is the endpoint.
//
// # The assembler
//
// An [Assembler] joins measurements into vectors, per host (the tag named by
// [Config.HostTag]) and per collection interval (the measurement's timestamp
// truncated to [Config.Interval]). A [Config] maps each feature to one field of
// one measurement: a gauge or a counter turned into a per-second rate,
// filtered by tags, aggregated over series (sum, max, min, mean) and scaled
// (offset + scale × value). [DefaultConfig] maps the seed's four metrics,
// cpu_usage, mem_usage, disk_busy and net_in_bps; see config.json in this
// directory.
//
// The rules, in short (the [Assembler] documentation has them all):
//
//   - An interval is emitted as soon as every feature has a value from every
//     series the host sent for it in the previous interval; an interval
//     without such history (a host's first) waits for its deadline.
//   - A counter's first observation, a counter that went down (a reset) and a
//     gap longer than [Config.MaxGapIntervals] give no rate: that interval is
//     incomplete, and the next one has a rate again. So a host's first
//     interval never yields a vector when a feature is a rate.
//   - An interval still open [Config.Wait] after its first measurement
//     arrived is finalised: a vector if it is complete, otherwise it is
//     counted as incomplete (and reported to the [WithIncomplete] callback),
//     never emitted with holes.
//   - A measurement for an interval already finalised, or older than
//     [Config.MaxLateIntervals] intervals behind the host's newest, is late:
//     counted and dropped.
//   - Memory is bounded: [Config.MaxHosts] hosts, [Config.MaxSeries] series
//     per host and feature, at most MaxLateIntervals+1 open intervals per
//     host, and a host silent for [Config.HostTTL] is forgotten.
//
// A service feeds it with [Assembler.AddMessage] (decoding included; a
// message with a bad metric gives an error naming it, for the dead-letter
// subject, while its good metrics are still used) and calls [Assembler.Flush]
// every second or so, so that the intervals of silent hosts are finalised.
package ingest
