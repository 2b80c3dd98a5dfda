package fleet

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

// Partitions splits the hosts of a sample stream over N partitions with
// NATS's deterministic subject mapping, so that N scorer replicas each
// consume one partition and load only its hosts' models. The stream's
// subject transform ([Partitions.Transform]) stores a message published on
// "<Prefix>.<host token>" as "<Prefix>.<p>.<host token>", p being
// {{partition(N)}} of the subject published; replica p consumes
// [Partitions.Filter](p). No server configuration is needed.
type Partitions struct {
	// Prefix is the samples' subject without its ".>", e.g. "metrics".
	Prefix string
	// N is the number of partitions, at least 2.
	N int
}

// PartitionOf returns the partition NATS's {{partition(n)}} mapping
// function, given no token positions, assigns subject to: the 32-bit
// FNV-1a hash of the whole subject, modulo n (nats-server's
// subjectTransform.getHashPartition, over the subject's tokens joined by
// '.', which is the subject itself). It returns 0 for n below 1.
func PartitionOf(subject string, n int) int {
	if n < 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return int(h.Sum32() % uint32(n))
}

// Of returns the partition of host: that of the subject its samples are
// published on, "<Prefix>.<host token>" ([ingest.HostToken]).
func (p Partitions) Of(host string) int {
	return PartitionOf(p.Prefix+"."+ingest.HostToken(host), p.N)
}

// Filter returns the subject of partition i's messages in the stream.
func (p Partitions) Filter(i int) string { return p.Prefix + "." + strconv.Itoa(i) + ".>" }

// Transform returns the stream's subject transform that partitions the
// samples.
func (p Partitions) Transform() *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      p.Prefix + ".>",
		Destination: p.Prefix + ".{{partition(" + strconv.Itoa(p.N) + ")}}.>",
	}
}

// PartitionsOf returns the partitioning a stream's subject transform
// applies, and false when the stream has no transform or another one than
// [Partitions.Transform] makes.
func PartitionsOf(sc jetstream.StreamConfig) (Partitions, bool) {
	tr := sc.SubjectTransform
	if tr == nil || !strings.HasSuffix(tr.Source, ".>") {
		return Partitions{}, false
	}
	prefix := strings.TrimSuffix(tr.Source, ".>")
	fn, ok := strings.CutPrefix(tr.Destination, prefix+".{{partition(")
	if !ok {
		return Partitions{}, false
	}
	num, ok := strings.CutSuffix(fn, ")}}.>")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 2 {
		return Partitions{}, false
	}
	return Partitions{Prefix: prefix, N: n}, true
}

// EnsurePartitions gives stream the subject transform of p, unless it has
// it already, and returns the stream and the number of partitions it had
// (0: none). A stream partitioned over another number is repartitioned:
// the messages it stored keep their subjects, later ones get p's. It
// refuses a stream with a subject transform of another kind, or one that
// does not hold p's subjects.
func EnsurePartitions(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, p Partitions) (jetstream.Stream, int, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("fleet: partition stream: %w", err)
	}
	sc := info.Config
	cur, ok := PartitionsOf(sc)
	switch {
	case ok && cur == p:
		return stream, cur.N, nil
	case sc.SubjectTransform != nil && !ok:
		return nil, 0, fmt.Errorf("fleet: partition stream %s: it has the subject transform %s → %s, not dagmm's partitioning (%s → %s): remove it or use another stream",
			sc.Name, sc.SubjectTransform.Source, sc.SubjectTransform.Destination, p.Transform().Source, p.Transform().Destination)
	case !slices.ContainsFunc(sc.Subjects, func(s string) bool { return covers(s, p.Prefix+".>") }):
		return nil, 0, fmt.Errorf("fleet: partition stream %s: it holds %s, not the samples' subject %s.>", sc.Name, strings.Join(sc.Subjects, ", "), p.Prefix)
	}
	sc.SubjectTransform = p.Transform()
	if stream, err = js.UpdateStream(ctx, sc); err != nil {
		return nil, 0, fmt.Errorf("fleet: partition stream %s over %d: %w", sc.Name, p.N, err)
	}
	return stream, cur.N, nil
}
