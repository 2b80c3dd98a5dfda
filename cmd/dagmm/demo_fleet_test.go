package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestFleetDemo runs dagmm demo --fleet on a small fleet and checks what
// it reports: every host trained and served by its own model without
// restart, the contextual anomaly flagged on its own host and not on the
// host whose normal it imitates, its event naming the host's model and
// version, and most injected anomalies flagged with few false alarms.
func TestFleetDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 9 models: skipped with -short")
	}
	var out bytes.Buffer
	env := newCLIEnv(&out, io.Discard)
	// The full window: a shorter history misses part of the hosts' daily cycle.
	cfg := fleetDemoConfig{hosts: 8, rows: 1000, live: 200, epochs: 60, trainers: 2, seed: 1}
	sum, err := fleetDemo(t.Context(), env, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if sum.Trained != cfg.hosts {
		t.Errorf("%d host models trained, want %d", sum.Trained, cfg.hosts)
	}
	if len(sum.Hosts) != cfg.hosts || sum.Live != cfg.hosts*cfg.live {
		t.Fatalf("%d hosts and %d live samples reported, want %d and %d", len(sum.Hosts), sum.Live, cfg.hosts, cfg.hosts*cfg.live)
	}
	for _, h := range sum.Hosts {
		if h.Version == "" || h.Samples != cfg.live {
			t.Errorf("host %+v: want a model version and %d samples", h, cfg.live)
		}
	}
	if sum.Host == "" || sum.Like == "" || sum.Host == sum.Like {
		t.Fatalf("contextual anomaly on %q imitating %q", sum.Host, sum.Like)
	}
	if !sum.Own {
		t.Errorf("the contextual anomaly was not flagged on its own host %s", sum.Host)
	}
	if sum.Imitated {
		t.Errorf("the contextual anomaly was flagged on %s, whose normal it imitates", sum.Like)
	}
	if e := sum.OwnEvent; e.Model != sum.Host || e.ModelVersion == "" || !e.Anomaly {
		t.Errorf("the contextual anomaly's event names model %q version %q (anomaly %v), want %s's model", e.Model, e.ModelVersion, e.Anomaly, sum.Host)
	}
	if sum.Injected == 0 || sum.Caught*2 < sum.Injected {
		t.Errorf("%d of %d injected anomalies flagged, want at least half", sum.Caught, sum.Injected)
	}
	if normal := sum.Live - sum.Injected; sum.FalseAlarms*10 > normal {
		t.Errorf("%d false alarms of %d normal samples, want at most 10%%", sum.FalseAlarms, normal)
	}
	for _, want := range []string{"without restart", "host models trained and published", `"model":"` + sum.Host + `"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
