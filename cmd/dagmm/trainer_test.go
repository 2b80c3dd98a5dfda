package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/model"
)

// memStore is a fleet.Store in memory, standing in for the registry built
// on another branch; it validates artifacts as the registry does.
type memStore struct {
	mu   sync.Mutex
	data map[string][][]byte
}

func (s *memStore) Publish(_ context.Context, host string, artifact []byte) (fleet.ModelInfo, error) {
	_, digest, err := model.DecodeDigest(bytes.NewReader(artifact))
	if err != nil {
		return fleet.ModelInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[host] = append(s.data[host], artifact)
	return fleet.ModelInfo{Host: host, Version: uint64(len(s.data[host])), Digest: digest, Size: int64(len(artifact)), Created: time.Now()}, nil
}

func (s *memStore) Current(_ context.Context, host string) (fleet.ModelInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.data[host]
	if len(v) == 0 {
		return fleet.ModelInfo{}, fmt.Errorf("%w: %s", fleet.ErrNoModel, host)
	}
	return fleet.ModelInfo{Host: host, Version: uint64(len(v)), Created: time.Now()}, nil
}

func (s *memStore) current(host string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.data[host]; len(v) > 0 {
		return v[len(v)-1]
	}
	return nil
}

// TestTrainerCommand runs dagmm trainer --schedule on an embedded
// JetStream server with two hosts whose normal differs: the scheduler
// queues both, the trainer trains each with the train package (few
// epochs) down dagmm train's path (events left out, a constant column set
// apart), and each host's model flags the other host's normal as an
// anomaly but not its own.
func TestTrainerCommand(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	nc := natsConnect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hist, err := fleet.EnsureHistory(ctx, js, fleet.HistoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	hosts := []struct {
		name  string
		means []float64 // cpu_usage, mem_usage, disk_busy, net_in_bps
	}{
		{"web-1", []float64{20, 30, 10, 1000}},
		{"db.example.com", []float64{70, 80, 60, 5000}},
	}
	features := []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().Add(-time.Hour)
	sample := func(means []float64) []float64 {
		v := make([]float64, len(means))
		for j, m := range means {
			v[j] = m * (1 + 0.05*rng.NormFloat64())
		}
		return v
	}
	for i := range 300 {
		for _, h := range hosts {
			v := sample(h.means)
			event := ""
			if i%50 == 49 { // the existing monitoring raised these: not normal
				v[0], event = 99, `,"event":"cpu alert"`
			}
			var b strings.Builder
			fmt.Fprintf(&b, `{"host":%q,"ts":%q,"values":{`, h.name, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano))
			for j, f := range features {
				fmt.Fprintf(&b, "%q:%g,", f, v[j])
			}
			fmt.Fprintf(&b, `"cores":8}%s}`, event)
			if _, err := js.Publish(ctx, hist.Subject(h.name), []byte(b.String())); err != nil {
				t.Fatal(err)
			}
		}
	}

	store := &memStore{data: make(map[string][][]byte)}
	run := func(ctx context.Context, env *cliEnv, args []string) error {
		return trainerCommand(ctx, env, args, func(context.Context, jetstream.JetStream) (fleet.Store, fleet.FalseAlarms, error) {
			return store, nil, nil
		})
	}
	cmd := startCommand(t, run, "--nats-url", srv.ClientURL(), "--schedule", "--schedule-every", "200ms",
		"--epochs", "40", "--ack-wait", "10s", "--min-samples", "100")
	deadline := time.Now().Add(90 * time.Second)
	for store.current(hosts[0].name) == nil || store.current(hosts[1].name) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no models after 90s:\n%s", cmd.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.stop(t); err != nil {
		t.Fatalf("dagmm trainer: %v\n%s", err, cmd.stderr.String())
	}
	for i, h := range hosts {
		m, err := model.Decode(bytes.NewReader(store.current(h.name)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.Features, features) {
			t.Errorf("%s: features %v, want %v", h.name, m.Features, features)
		}
		if len(m.Constant) != 1 || m.Constant[0].Name != "cores" {
			t.Errorf("%s: constant columns %+v, want cores", h.name, m.Constant)
		}
		if m.Provenance.RowsExcluded != 6 || !strings.Contains(m.Provenance.Input, "metrics.") {
			t.Errorf("%s: provenance %+v, want 6 rows excluded by events, input the host's subject", h.name, m.Provenance)
		}
		sc, err := model.NewScorer(m)
		if err != nil {
			t.Fatal(err)
		}
		own, err := sc.Score(h.means)
		if err != nil {
			t.Fatal(err)
		}
		other, err := sc.Score(hosts[1-i].means)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: own %.3g other %.3g threshold %.3g", h.name, own.Score, other.Score, sc.Threshold())
		if own.Anomaly || !other.Anomaly {
			t.Errorf("%s's model: its own normal anomalous %v (%.3g), the other host's normal anomalous %v (%.3g), threshold %.3g",
				h.name, own.Anomaly, own.Score, other.Anomaly, other.Score, sc.Threshold())
		}
	}
	if s := cmd.stderr.String(); !strings.Contains(s, "model published") || !strings.Contains(s, "jobs queued") {
		t.Errorf("the log does not show the scheduler queuing and the trainer publishing:\n%s", s)
	}
}

// TestTrainerWithoutRegistry: on a build without the registry, dagmm
// trainer says so rather than training for nothing.
func TestTrainerWithoutRegistry(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	code, _, stderr := dagmm(t, "trainer", "--nats-url", srv.ClientURL())
	if code != 1 || !strings.Contains(stderr, "registry") {
		t.Errorf("exit %d, stderr %q; want 1 and a word about the registry", code, stderr)
	}
}
