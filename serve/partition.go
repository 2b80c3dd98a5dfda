package serve

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
)

// Partitioning returns how the hosts are split over scorer replicas, and
// false when they are not (NATS.Partitions below 2). The sample stream
// (JetStream.Stream) is given the subject transform of [fleet.Partitions],
// which stores a sample published on "<prefix>.<host token>" as
// "<prefix>.<p>.<host token>", p being NATS's {{partition(N)}} of the
// subject. This replica consumes "<prefix>.<Partition>.>" through the
// durable consumer "<Consumer>-p<Partition>", which the replicas of one
// partition share, and in fleet mode keeps only the models of its
// partition's hosts up to date. Call it on a configuration with defaults
// applied.
func (c *Config) Partitioning() (fleet.Partitions, bool) {
	if c.NATS.Partitions < 2 {
		return fleet.Partitions{}, false
	}
	return fleet.Partitions{Prefix: strings.TrimSuffix(c.NATS.Subject, ".>"), N: c.NATS.Partitions}, true
}

// partitionConsumer is the durable consumer of this replica's partition.
func (c *Config) partitionConsumer() string {
	return c.JetStream.Consumer + "-p" + strconv.Itoa(c.NATS.Partition)
}

// validatePartitions checks NATS.Partitions and NATS.Partition.
func (c *Config) validatePartitions() error {
	n, i := c.NATS.Partitions, c.NATS.Partition
	switch {
	case n < 0:
		return fmt.Errorf("%d: want 0 or 1 (not partitioned), or the number of partitions", n)
	case n < 2 && i != 0:
		return fmt.Errorf("partition %d without partitions: give the number of partitions too", i)
	case n < 2:
		return nil
	case i < 0 || i >= n:
		return fmt.Errorf("partition %d out of range: want 0 to %d with %d partitions", i, n-1, n)
	case c.NATS.Disabled:
		return errors.New("partitions split the NATS subjects of the samples: they need NATS")
	case c.Telegraf.Enabled:
		return errors.New("not with Telegraf: the server splits hosts by subject, and Telegraf's subject does not name the host (its tags do)")
	case !c.JetStream.Enabled:
		return errors.New("they need durable mode (JetStream): the sample stream's subject transform assigns the partitions; core NATS subscriptions are not partitioned")
	}
	prefix, ok := strings.CutSuffix(c.NATS.Subject, ".>")
	if !ok || checkSubject(prefix, false) != nil {
		return fmt.Errorf("they need a subject \"<prefix>.>\", such as \"metrics.>\", whose last token names the host; got %q", c.NATS.Subject)
	}
	if err := checkToken(c.partitionConsumer()); err != nil {
		return fmt.Errorf("consumer %q %v", c.partitionConsumer(), err)
	}
	return nil
}

// partitionStream gives the sample stream this replica's partitioning, on
// the first connection only, and returns it with the filter and durable
// consumer to read it with. A replica that is not partitioned reads the
// whole stream, partitioned or not.
func (n *natsSide) partitionStream(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream) (jetstream.Stream, string, string, error) {
	cfg := &n.cfg
	p, ok := cfg.Partitioning()
	if !ok {
		if sp, ok := fleet.PartitionsOf(stream.CachedInfo().Config); ok {
			n.log.Warn("the sample stream is partitioned; this replica is not, and consumes every partition", "stream", cfg.JetStream.Stream, "partitions", sp.N)
		}
		return stream, cfg.NATS.Subject, cfg.JetStream.Consumer, nil
	}
	filter, durable := p.Filter(cfg.NATS.Partition), cfg.partitionConsumer()
	if n.partitioned {
		// Once, at start: a replica of an older count that reconnects
		// during a rollout must not set its count back.
		return stream, filter, durable, nil
	}
	stream, prev, err := fleet.EnsurePartitions(ctx, js, stream, p)
	if err != nil {
		return nil, "", "", fmt.Errorf("serve: %w", err)
	}
	n.partitioned = true
	if prev != p.N {
		// Messages stored before keep their subjects: those of a
		// partition that no longer exists wait for its consumer.
		n.log.Warn("sample stream partitioned", "stream", cfg.JetStream.Stream, "partitions", p.N, "before", prev)
	}
	return stream, filter, durable, nil
}
