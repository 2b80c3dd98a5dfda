package fleet

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

// partitionHosts are host names of many shapes: plain, with dots (which
// become '_' in subjects), non-ASCII, long.
func partitionHosts(n int) []string {
	hosts := make([]string, 0, n)
	for i := range n {
		switch i % 4 {
		case 0:
			hosts = append(hosts, fmt.Sprintf("web-%03d", i))
		case 1:
			hosts = append(hosts, fmt.Sprintf("db%d.dc%d.example.com", i, i%3))
		case 2:
			hosts = append(hosts, fmt.Sprintf("höst-%d-ü", i))
		default:
			hosts = append(hosts, strings.Repeat("n", i%50+1)+strconv.Itoa(i))
		}
	}
	return hosts
}

// TestPartitionOfMatchesServer: the partition Go computes for a host is
// the one the real server's subject transform stores its samples under,
// for several partition counts and 300 host names.
func TestPartitionOfMatchesServer(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 30*time.Second)
	hosts := partitionHosts(300)
	for _, n := range []int{2, 3, 7, 16} {
		p := Partitions{Prefix: "m" + strconv.Itoa(n), N: n}
		stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "P" + strconv.Itoa(n), Subjects: []string{p.Prefix + ".>"}, Storage: jetstream.MemoryStorage,
			SubjectTransform: p.Transform(),
		})
		if err != nil {
			t.Fatal(err)
		}
		perPartition := make([]int, n)
		for _, host := range hosts {
			ack, err := js.Publish(ctx, p.Prefix+"."+ingest.HostToken(host), []byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := stream.GetMsg(ctx, ack.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%s.%d.%s", p.Prefix, p.Of(host), ingest.HostToken(host))
			if m.Subject != want {
				t.Errorf("N=%d: host %q stored on %s, Go says %s", n, host, m.Subject, want)
			}
			perPartition[p.Of(host)]++
		}
		for i, c := range perPartition {
			if c == 0 {
				t.Errorf("N=%d: no host of %d in partition %d", n, len(hosts), i)
			}
		}
		// A subject of several tokens is partitioned whole.
		subj := p.Prefix + ".dc1.web-1"
		ack, err := js.Publish(ctx, subj, []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s.%d.dc1.web-1", p.Prefix, PartitionOf(subj, n)); m.Subject != want {
			t.Errorf("N=%d: %s stored on %s, want %s", n, subj, m.Subject, want)
		}
	}
}

func TestPartitionsOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		tr   *jetstream.SubjectTransformConfig
		want Partitions
		ok   bool
	}{
		{"none", nil, Partitions{}, false},
		{"ours", Partitions{Prefix: "metrics", N: 4}.Transform(), Partitions{Prefix: "metrics", N: 4}, true},
		{"deep prefix", Partitions{Prefix: "a.b", N: 12}.Transform(), Partitions{Prefix: "a.b", N: 12}, true},
		{"token partition", &jetstream.SubjectTransformConfig{Source: "metrics.*", Destination: "metrics.{{partition(4,1)}}.{{wildcard(1)}}"}, Partitions{}, false},
		{"other prefix", &jetstream.SubjectTransformConfig{Source: "metrics.>", Destination: "other.{{partition(4)}}.>"}, Partitions{}, false},
		{"one partition", &jetstream.SubjectTransformConfig{Source: "metrics.>", Destination: "metrics.{{partition(1)}}.>"}, Partitions{}, false},
		{"rename", &jetstream.SubjectTransformConfig{Source: "metrics.>", Destination: "m.>"}, Partitions{}, false},
	} {
		got, ok := PartitionsOf(jetstream.StreamConfig{SubjectTransform: tc.tr})
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: PartitionsOf = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestEnsurePartitions: a stream is given the transform, kept when it has
// it, repartitioned over another count; a stream with a transform of
// another kind, or over other subjects, is refused.
func TestEnsurePartitions(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, 20*time.Second)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"metrics.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n, prev int
	}{{2, 0}, {2, 2}, {3, 2}} {
		p := Partitions{Prefix: "metrics", N: tc.n}
		s, prev, err := EnsurePartitions(ctx, js, stream, p)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := PartitionsOf(info.Config); !ok || got != p || prev != tc.prev {
			t.Errorf("N=%d: stream partitioned %+v (%v), previously %d; want %+v, previously %d", tc.n, got, ok, prev, p, tc.prev)
		}
	}

	other, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"raw.>"}, Storage: jetstream.MemoryStorage,
		SubjectTransform: &jetstream.SubjectTransformConfig{Source: "raw.>", Destination: "cooked.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsurePartitions(ctx, js, other, Partitions{Prefix: "raw", N: 2}); err == nil || !strings.Contains(err.Error(), "cooked.>") {
		t.Errorf("a stream with another transform: %v, want an error naming it", err)
	}
	if _, _, err := EnsurePartitions(ctx, js, stream, Partitions{Prefix: "telegraf", N: 2}); err == nil || !strings.Contains(err.Error(), "telegraf.>") {
		t.Errorf("a stream over other subjects: %v, want an error naming the samples' subject", err)
	}
}

// TestHistoryPartitioned: a host's window, counts and name are found in a
// history that was partitioned while in use, then repartitioned: the
// samples stored before either change are read too, by a history bound
// before (a trainer's) as by one bound after.
func TestHistoryPartitioned(t *testing.T) {
	srv := runNATS(t)
	_, js := connectJS(t, srv)
	ctx := testContext(t, time.Minute)
	const hosts, limit = 12, 100
	before, err := EnsureHistory(ctx, js, HistoryConfig{MaxMsgsPerSubject: limit})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	publishHistory(t, js, before, hostRange(hosts), 0, 20, t0)
	after, err := EnsureHistory(ctx, js, HistoryConfig{MaxMsgsPerSubject: limit, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, after.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := PartitionsOf(stream.CachedInfo().Config); !ok || p.N != 2 || p.Prefix != "metrics" {
		t.Fatalf("history stream partitioned %+v %v, want metrics over 2", p, ok)
	}
	publishHistory(t, js, after, hostRange(hosts), 20, 35, t0)
	if _, _, err := EnsurePartitions(ctx, js, stream, Partitions{Prefix: "metrics", N: 3}); err != nil {
		t.Fatal(err)
	}
	publishHistory(t, js, after, hostRange(hosts), 35, 50, t0)

	for name, h := range map[string]*History{"bound before": before, "bound after": after} {
		counts, err := h.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != hosts {
			t.Errorf("%s: %d host tokens counted, want %d: %v", name, len(counts), hosts, counts)
		}
		for i := range hosts {
			tok := ingest.HostToken(hostName(i))
			if counts[tok] != 50 {
				t.Errorf("%s: %s: %d messages counted, want 50 (unpartitioned, over 2, over 3)", name, tok, counts[tok])
			}
			w, err := h.Window(ctx, hostName(i), WindowOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if w.Rows() != 50 || !w.TS[0].Equal(t0) || !w.TS[49].Equal(t0.Add(49*time.Second)) || w.Subject != "metrics.*."+tok {
				t.Fatalf("%s: %s: window of %d rows on %s, want its 50 samples from the three layouts, in order", name, hostName(i), w.Rows(), w.Subject)
			}
			for r := range w.Rows() {
				if v := w.X[r*len(testFeatures)]; v < hostMean(i, 0)-5 || v > hostMean(i, 0)+5 {
					t.Fatalf("%s: %s: row %d cpu %.1f, want about %.0f: another host's samples?", name, hostName(i), r, v, hostMean(i, 0))
				}
			}
		}
		if host, err := h.HostOf(ctx, ingest.HostToken(hostName(4))); err != nil || host != hostName(4) {
			t.Errorf("%s: HostOf(%s) = %q, %v, want %q", name, ingest.HostToken(hostName(4)), host, err, hostName(4))
		}
	}
}
