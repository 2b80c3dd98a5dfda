// Package prom reads training data from Prometheus: a window of history
// pulled through the HTTP API's query_range, one PromQL expression per
// feature, joined per host and timestamp into a [datasets.Table] with the
// columns timestamp, host and the features, the table dagmm collect writes.
//
// [NodeExporter] is the ready mapping of the seed's four metrics from
// node_exporter (cpu_usage, mem_usage, disk_busy, net_in_bps), each
// aggregated to one series per host. The same expressions are the recording
// rules shipped in deploy/prometheus/rules.yaml ([RecordingRules] generates
// that file, and a test checks it matches), whose series a Prometheus sends
// to dagmm serve by remote_write: training and live scoring see the same
// features.
//
// The package sits under datasets because it is one more source of the
// tables dagmm trains on; it is its own package so that the Prometheus client
// stays out of the Parquet and CSV code that the scorer's tools import.
package prom
