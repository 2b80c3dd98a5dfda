package prom

import (
	"fmt"
	"strings"
	"time"
)

// Feature is one feature computed by a PromQL expression that gives one
// series per host.
type Feature struct {
	// Name is the feature name, as in the model and the Parquet column.
	Name string
	// Expr is the PromQL expression; every series it returns carries the
	// host label and no two share its value.
	Expr string
	// Help says what the feature is, for the rule file's comments.
	Help string
}

// Record returns the name of the recording rule that computes f, the
// series name dagmm serve receives by remote_write: "dagmm:" + f.Name.
func (f Feature) Record() string { return RecordPrefix + f.Name }

// RecordPrefix starts the name of every recording rule of dagmm's features.
const RecordPrefix = "dagmm:"

// Defaults of [NodeExporter].
const (
	DefaultHostLabel = "instance"
	DefaultWindow    = time.Minute
)

// Devices left out of disk_busy (RAM disks, loop devices, CD drives,
// floppies, device-mapper and md duplicates of real disks) and interfaces
// left out of net_in_bps (loopback, and the virtual interfaces of
// containers, bridges and overlays, whose traffic the physical interface
// already counts).
const (
	ExcludedDisks      = `loop.*|ram.*|sr.*|fd.*|dm-.*|md.*`
	ExcludedInterfaces = `lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*|cali.*|vxlan.*|tun.*|tap.*|kube-.*|weave.*|lxc.*`
)

// NodeExporter returns the mapping of the seed's four metrics from
// node_exporter's series, aggregated by hostLabel (DefaultHostLabel when
// empty) with rates over window (DefaultWindow when zero; it should span at
// least four scrape intervals):
//
//   - cpu_usage: CPU busy %, 100 minus the idle share averaged over CPUs;
//   - mem_usage: memory in use %, from MemAvailable and MemTotal;
//   - disk_busy: % of wall time the busiest disk did I/O (max over devices);
//   - net_in_bps: bits received per second, summed over interfaces but
//     loopback and virtual ones.
func NodeExporter(hostLabel string, window time.Duration) []Feature {
	if hostLabel == "" {
		hostLabel = DefaultHostLabel
	}
	if window <= 0 {
		window = DefaultWindow
	}
	w := promDuration(window)
	by := "by (" + hostLabel + ")"
	return []Feature{
		{Name: "cpu_usage", Help: "CPU busy %, averaged over CPUs",
			Expr: fmt.Sprintf(`100 * (1 - avg %s (rate(node_cpu_seconds_total{mode="idle"}[%s])))`, by, w)},
		{Name: "mem_usage", Help: "memory in use %",
			Expr: fmt.Sprintf(`100 * (1 - sum %s (node_memory_MemAvailable_bytes) / sum %s (node_memory_MemTotal_bytes))`, by, by)},
		{Name: "disk_busy", Help: "% of wall time the busiest disk did I/O",
			Expr: fmt.Sprintf(`100 * max %s (rate(node_disk_io_time_seconds_total{device!~%q}[%s]))`, by, ExcludedDisks, w)},
		{Name: "net_in_bps", Help: "bits received per second, over physical interfaces",
			Expr: fmt.Sprintf(`8 * sum %s (rate(node_network_receive_bytes_total{device!~%q}[%s]))`, by, ExcludedInterfaces, w)},
	}
}

// promDuration formats d as a PromQL duration ("1m", "90s", "1500ms").
func promDuration(d time.Duration) string {
	switch {
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

// RecordingRules returns a Prometheus rule file with one recording rule per
// feature, in a group named "dagmm" evaluated at the global interval.
func RecordingRules(features []Feature) string {
	var b strings.Builder
	b.WriteString("# Generated from datasets/prom.NodeExporter by `go test ./datasets/prom -update`; do not edit.\n")
	b.WriteString("# dagmm's features, one series per host: dagmm prom pull (query_range) uses the same expressions.\n")
	b.WriteString("groups:\n  - name: dagmm\n    rules:\n")
	for _, f := range features {
		fmt.Fprintf(&b, "      # %s: %s\n      - record: %s\n        expr: %s\n", f.Name, f.Help, f.Record(), yamlQuote(f.Expr))
	}
	return b.String()
}

// yamlQuote returns s as a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
