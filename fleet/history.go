package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

// HistoryConfig configures the history stream. Zero fields take their
// values from [DefaultHistoryConfig].
type HistoryConfig struct {
	// Stream is the stream's name. Default "DAGMM_METRICS", the name
	// dagmm serve --jetstream gives the stream it scores from, so that the
	// scorer and the trainers share one stream.
	Stream string
	// Subject is the subject the samples arrive on; it must end in ".>",
	// and a host's samples are on "<prefix>.<host token>" (see
	// [ingest.HostToken]). Default "metrics.>", the service's input subject.
	Subject string
	// MaxMsgsPerSubject is how many messages of each host the stream
	// keeps: its latest, the training window. Default 1,000, the study's
	// window.
	MaxMsgsPerSubject int64
	// MaxAge bounds how long the stream keeps a message, so that the
	// history of a host that went away is dropped. Default 7 days.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; -1 (the default) leaves it to the
	// per-subject limit: about hosts × MaxMsgsPerSubject × message size.
	MaxBytes int64
	// Replicas is the stream's replica count in a cluster. Default 1.
	Replicas int
	// Partitions, 2 or more, splits the hosts over that many partitions
	// (see [Partitions]): the stream is given the subject transform that
	// stores a host's samples on "<prefix>.<partition>.<host token>". 0 or
	// 1 leaves the stream as it is: a trainer need not know, the history
	// follows the stream's transform.
	Partitions int
}

// DefaultHistoryConfig returns the history's defaults.
func DefaultHistoryConfig() HistoryConfig {
	return HistoryConfig{
		Stream:            "DAGMM_METRICS",
		Subject:           "metrics.>",
		MaxMsgsPerSubject: 1000,
		MaxAge:            7 * 24 * time.Hour,
		MaxBytes:          -1,
		Replicas:          1,
	}
}

// withDefaults fills c's zero fields.
func (c HistoryConfig) withDefaults() HistoryConfig {
	d := DefaultHistoryConfig()
	if c.Stream == "" {
		c.Stream = d.Stream
	}
	if c.Subject == "" {
		c.Subject = d.Subject
	}
	if c.MaxMsgsPerSubject == 0 {
		c.MaxMsgsPerSubject = d.MaxMsgsPerSubject
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	return c
}

// Validate reports the first field with an invalid value.
func (c HistoryConfig) Validate() error {
	switch {
	case !strings.HasSuffix(c.Subject, ".>") || len(c.Subject) < 3 || strings.ContainsAny(c.Subject[:len(c.Subject)-2], "*> \t"):
		return fmt.Errorf("fleet: history subject %q: want a prefix followed by \".>\", such as \"metrics.>\"", c.Subject)
	case c.MaxMsgsPerSubject < 1:
		return fmt.Errorf("fleet: history max messages per subject %d: want at least 1", c.MaxMsgsPerSubject)
	case c.MaxAge < 0:
		return fmt.Errorf("fleet: history max age %v: want a positive duration", c.MaxAge)
	case c.Partitions < 0:
		return fmt.Errorf("fleet: history partitions %d: want 0 (not partitioned) or more", c.Partitions)
	}
	return nil
}

// History is the stream of each host's latest samples. Its methods are
// safe for concurrent use.
type History struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string
	prefix string // Subject without ".>"
	limit  int    // the window: the latest samples read back
	// parts tells whether the stream is partitioned: its subjects then
	// carry a partition token before the host's. Read again from the
	// stream by Counts and Window, since a scorer may partition it later.
	parts atomic.Bool
}

// EnsureHistory creates the history stream, or binds it when it exists:
// the stream named cfg.Stream, or else any stream that already holds
// cfg.Subject (JetStream refuses two streams over one subject). A bound
// stream without a per-subject limit, such as one dagmm serve --jetstream
// created, is given cfg.MaxMsgsPerSubject; one with a limit keeps it.
func EnsureHistory(ctx context.Context, js jetstream.JetStream, cfg HistoryConfig) (*History, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := cfg.Stream
	stream, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if other, oerr := js.StreamNameBySubject(ctx, cfg.Subject); oerr == nil {
			name = other
			stream, err = js.Stream(ctx, name)
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:              name,
			Description:       "dagmm: each host's latest samples, scored and trained on",
			Subjects:          []string{cfg.Subject},
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: cfg.MaxMsgsPerSubject,
			MaxAge:            cfg.MaxAge,
			MaxBytes:          cfg.MaxBytes,
			Replicas:          cfg.Replicas,
			SubjectTransform:  cfg.partitions().transform(),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: history stream %s: %w", name, err)
	}
	if sc := stream.CachedInfo().Config; !slices.ContainsFunc(sc.Subjects, func(s string) bool { return covers(s, cfg.Subject) }) {
		return nil, fmt.Errorf("fleet: history stream %s holds %s, not the samples' subject %s", name, strings.Join(sc.Subjects, ", "), cfg.Subject)
	}
	limit := cfg.MaxMsgsPerSubject
	if sc := stream.CachedInfo().Config; sc.MaxMsgsPerSubject <= 0 {
		sc.MaxMsgsPerSubject = cfg.MaxMsgsPerSubject
		if stream, err = js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("fleet: history stream %s: set the per-subject limit: %w", name, err)
		}
	} else {
		limit = sc.MaxMsgsPerSubject
	}
	if p := cfg.partitions(); p.N >= 2 {
		if stream, _, err = EnsurePartitions(ctx, js, stream, p); err != nil {
			return nil, err
		}
	}
	h := &History{js: js, stream: stream, name: name, prefix: strings.TrimSuffix(cfg.Subject, ".>"), limit: int(limit)}
	h.follow(stream.CachedInfo().Config)
	return h, nil
}

// partitions returns the partitioning cfg asks for; N < 2 is none.
func (c HistoryConfig) partitions() Partitions {
	return Partitions{Prefix: strings.TrimSuffix(c.Subject, ".>"), N: c.Partitions}
}

// transform is p's subject transform, or nil when p partitions nothing.
func (p Partitions) transform() *jetstream.SubjectTransformConfig {
	if p.N < 2 {
		return nil
	}
	return p.Transform()
}

// follow notes whether the stream configured by sc partitions the history.
func (h *History) follow(sc jetstream.StreamConfig) {
	p, ok := PartitionsOf(sc)
	h.parts.Store(ok && p.Prefix == h.prefix)
}

// refresh reads the stream's configuration again, for follow.
func (h *History) refresh(ctx context.Context) error {
	info, err := h.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("history stream %s: %w", h.name, err)
	}
	h.follow(info.Config)
	return nil
}

// Stream returns the name of the stream bound.
func (h *History) Stream() string { return h.name }

// Subject returns the subject host's samples are published on.
func (h *History) Subject(host string) string { return h.prefix + "." + ingest.HostToken(host) }

// stored returns the subjects a host token's samples are stored on: in a
// partitioned stream, a wildcard over the partition token, so that the
// samples stored under another number of partitions are read too, then
// the host's subject, which holds those stored before the stream was
// partitioned (every later one is stored with a partition).
func (h *History) stored(token string) []string {
	if h.parts.Load() {
		return []string{h.prefix + ".*." + token, h.prefix + "." + token}
	}
	return []string{h.prefix + "." + token}
}

// Limit returns the window: the most samples [History.Window] returns, the
// stream's per-subject limit.
func (h *History) Limit() int { return h.limit }

// Counts returns the number of messages the stream holds per host token
// (the last token of each host's subject; in a partitioned stream, summed
// over the partitions and the subject from before it was partitioned).
func (h *History) Counts(ctx context.Context) (map[string]uint64, error) {
	info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter(h.prefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("fleet: history stream %s: %w", h.name, err)
	}
	h.follow(info.Config)
	parts := h.parts.Load()
	counts := make(map[string]uint64, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		tok, ok := strings.CutPrefix(subj, h.prefix+".")
		if part, rest, cut := strings.Cut(tok, "."); ok && parts && cut && isPartition(part) {
			tok = rest
		}
		if !ok || strings.Contains(tok, ".") {
			continue // not one host's subject
		}
		counts[tok] += n
	}
	return counts, nil
}

// isPartition reports whether tok is a partition number.
func isPartition(tok string) bool {
	_, err := strconv.ParseUint(tok, 10, 31)
	return err == nil
}

// HostOf returns the host name of the samples with the given host token:
// the "host" member of the latest one, or the token when it has none (as
// the service names a sample without a host after its subject).
func (h *History) HostOf(ctx context.Context, token string) (string, error) {
	var (
		m   *jetstream.RawStreamMsg
		err error
	)
	for _, subj := range h.stored(token) {
		if m, err = h.stream.GetLastMsgForSubject(ctx, subj); !errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("fleet: history of %s: %w", token, err)
	}
	samples, err := decodeSamples(m.Data, m.Time)
	if err != nil || len(samples) == 0 || samples[len(samples)-1].Host == "" {
		return token, nil
	}
	return samples[len(samples)-1].Host, nil
}

// covers reports whether every subject that matches sub also matches
// pattern, token by token ("metrics.>" covers itself, ">" covers all).
func covers(pattern, sub string) bool {
	p, q := strings.Split(pattern, "."), strings.Split(sub, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return i < len(q)
		case i >= len(q):
			return false
		case tok == "*" && q[i] != ">":
		case tok != q[i]:
			return false
		}
	}
	return len(p) == len(q)
}
