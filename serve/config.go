package serve

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/dagmm/dagmm/internal/natsauth"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// Config configures a [Service], in parts: the model, the scoring, NATS,
// JetStream, the Telegraf input and HTTP. The zero value is usable once
// defaults are applied: [New] fills every zero field with its value from
// [DefaultConfig], then calls [Config.Validate].
type Config struct {
	Model     ModelConfig
	Scoring   ScoringConfig
	NATS      NATSConfig
	JetStream JetStreamConfig
	Telegraf  TelegrafConfig
	HTTP      HTTPConfig
	// RemoteWrite is the Prometheus remote write input (POST /api/v1/write).
	RemoteWrite RemoteWriteConfig
	// Fleet is fleet mode, set up by [OpenFleet] (which the service does
	// not call itself: it needs the NATS connection before the models).
	Fleet FleetConfig
	// ShutdownTimeout bounds the graceful shutdown of each part.
	// Default 10s.
	ShutdownTimeout time.Duration
}

// ModelConfig says which model the service serves.
type ModelConfig struct {
	// Path is the model artifact to serve. Required unless a
	// [ModelSource] is given to [New] with [WithModelSource].
	Path string
	// Name is the model's name in the Open Inference Protocol paths
	// (/v2/models/{name}) and in events. Default "dagmm".
	Name string
	// PollInterval is how often the model file's modification time and
	// size are checked; a change triggers a reload. Default 2s; negative
	// disables the check.
	PollInterval time.Duration
}

// ScoringConfig sizes the scoring and says how anomalies are explained,
// for NATS and HTTP alike.
type ScoringConfig struct {
	// Workers is the number of NATS scoring goroutines, each with its own
	// subscription (core) or pull loop (JetStream) and workspaces.
	// Default GOMAXPROCS. With Telegraf, one goroutine decodes, assembles
	// and scores in message order, and Workers is not used.
	Workers int
	// Batch is the largest number of samples scored at once: the size of
	// each workspace. Larger messages are scored in pieces. Default 1024.
	Batch int
	// MaxSamples bounds the samples of one request or one NATS message.
	// Default 10000.
	MaxSamples int
	// ExplainMethod is how anomalies are explained: one of
	// [model.Methods], such as "repair" or "share"; empty means the
	// scorer's default ([model.Scorer.DefaultMethod]).
	ExplainMethod string
	// HostSeriesMax bounds the hosts with dagmm_host_* series on /metrics
	// (deploy/prometheus/README.md); the samples of further new hosts are
	// counted in dagmm_host_series_dropped_total. Default 10000; -1
	// exports no per-host series.
	HostSeriesMax int
	// HostSeriesTTL is how long a host keeps its series after its last
	// scored sample. Default 10m.
	HostSeriesTTL time.Duration
}

// NATSConfig is the NATS connection, and the subjects samples come in on
// and events go out to.
type NATSConfig struct {
	// Disabled runs the HTTP server only: no NATS connection, no embedded
	// server.
	Disabled bool
	// URL is the NATS server to connect to, e.g. "nats://nats:4222";
	// several may be given separated by commas. Empty: start an embedded
	// nats-server.
	URL string
	// Name is the client connection name shown by the server.
	// Default "dagmm-serve".
	Name string
	// EmbeddedHost is the interface the embedded server listens on.
	// Default "127.0.0.1".
	EmbeddedHost string
	// EmbeddedPort is the embedded server's client port. Default 4222;
	// -1 picks a free port (see [Service.NATSURL]).
	EmbeddedPort int
	// StoreDir is the embedded server's JetStream store. Empty: a
	// temporary directory removed at shutdown, so durable consumers do not
	// survive a restart of the embedded server; give a directory to keep
	// them.
	StoreDir string
	// Auth are the credentials and TLS settings for the server at URL
	// (not used with the embedded server).
	Auth natsauth.Config

	// Subject is the subject samples arrive on; wildcards allowed.
	// Default "metrics.>", or [DefaultTelegrafSubject] with Telegraf.
	Subject string
	// AnomalyPrefix is the subject prefix of anomaly events, published to
	// "<AnomalyPrefix>.<host>". Default "anomalies".
	AnomalyPrefix string
	// ScorePrefix is the subject prefix of score events, published to
	// "<ScorePrefix>.<host>" for every sample when PublishScores is set.
	// Default "scores".
	ScorePrefix string
	// PublishScores publishes every sample's score, not only anomalies.
	PublishScores bool
	// DeadLetterSubject receives the messages that cannot be scored.
	// Default "dagmm.deadletter".
	DeadLetterSubject string
	// QueueGroup is the core-NATS queue group the scorer joins, so that
	// replicas share the subject. Default "dagmm". Not used with Telegraf,
	// whose measurements must all reach the replica that assembles their
	// host (see the package documentation).
	QueueGroup string
	// Partitions, 2 or more, splits the hosts over that many scorer
	// replicas, Partition (0 to Partitions-1) being this one's; 0 or 1 is
	// not partitioned. It needs durable mode and a subject "<prefix>.>"
	// whose last token names the host: see [Config.Partitioning].
	Partitions, Partition int
}

// JetStreamConfig is durable mode (a JetStream pull consumer instead of a
// core subscription) and the stream that stores events.
type JetStreamConfig struct {
	// Enabled consumes through a durable JetStream pull consumer instead
	// of a core subscription: at-least-once scoring across restarts.
	Enabled bool
	// Stream is the JetStream stream that holds the samples; it is created
	// on the NATS subject when it does not exist, and bound as it is when
	// it does. Default "DAGMM_METRICS".
	Stream string
	// StreamMaxAge bounds how long the streams created by the service
	// keep messages. Default 24h.
	StreamMaxAge time.Duration
	// StreamMaxBytes bounds the size of a stream created by the service;
	// the oldest messages are discarded beyond it. Default 1 GiB; -1 for
	// no limit.
	StreamMaxBytes int64
	// Consumer is the durable consumer's name. Default "dagmm-scorer".
	Consumer string
	// AckWait is how long the server waits for an acknowledgement before
	// it delivers a message again. Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one message whose events (or
	// dead letter) cannot be published, a failure that may pass (the
	// connection, the event stream). The waits between deliveries grow
	// from 1s, doubling, to 30s; on the last delivery the message goes to
	// the dead-letter subject (reason kind "publish") and is terminated.
	// A message that fails for a reason that will not change (it cannot be
	// decoded, its host cannot go in a subject, the model refuses a value)
	// is dead-lettered and terminated on its first delivery. Default 10,
	// about 2.5 minutes of retries; -1 for no limit.
	MaxDeliver int
	// MaxAckPending bounds the messages delivered and not yet
	// acknowledged. Default 20000.
	MaxAckPending int
	// EventStream, when set, names a JetStream stream that stores the
	// events (the anomaly, score and dead-letter subjects); it is created
	// when it does not exist. Events are then published with JetStream
	// acknowledgements and message ids for deduplication. It needs no
	// durable mode.
	EventStream string
}

// TelegrafConfig is the Telegraf input.
type TelegrafConfig struct {
	// Enabled makes the NATS scorer take what Telegraf's outputs.nats
	// plugin publishes on the NATS subject (influx line protocol or JSON,
	// one measurement per message or a batch) instead of dagmm samples,
	// and join the measurements per host and collection interval into the
	// model's vectors with an [ingest.Assembler] (see the package
	// documentation). It needs NATS.
	Enabled bool
	// Format is Telegraf's data_format: [ingest.FormatAuto] (the default:
	// JSON when a message starts with '{'), [ingest.FormatInflux] or
	// [ingest.FormatJSON].
	Format ingest.Format
	// Mapping says how each model feature is made from Telegraf's
	// measurements, and sets the collection interval and the deadlines.
	// Nil means [ingest.DefaultConfig], the mapping of the seed's four
	// metrics. It must map every feature of the model.
	Mapping *ingest.Config
	// Flush is how often intervals whose deadline passed are finalised,
	// so that a host that stopped sending does not keep its last interval
	// open. Default 1s.
	Flush time.Duration
}

// HTTPConfig is the HTTP server.
type HTTPConfig struct {
	// Addr is the listen address. Default ":8080"; port 0 picks a free
	// port (see [Service.HTTPAddr]).
	Addr string
	// MaxBodyBytes bounds a request body. Default 8 MiB.
	MaxBodyBytes int64
	// MaxInFlightBytes bounds the request body bytes held by all the HTTP
	// requests in flight: a request whose body would go over it is
	// answered 429 Too Many Requests with a Retry-After header. It must be
	// at least MaxBodyBytes. Default: from the Go memory limit in effect
	// when [New] is called (see [InFlightBytesFor]), 64 MiB when there is
	// none.
	MaxInFlightBytes int64
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// server's. Defaults 5s, 10s, 10s and 60s.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// AdminToken, when set, protects the admin endpoints
	// (POST /v1/model/reload): a request must carry
	// "Authorization: Bearer <AdminToken>".
	AdminToken string
}

// DefaultConfig returns the configuration [New] starts from: every default
// filled in, no model path. MaxInFlightBytes depends on the Go memory limit
// in effect at the call.
func DefaultConfig() Config {
	return Config{
		Model: ModelConfig{
			Name:         "dagmm",
			PollInterval: 2 * time.Second,
		},
		Scoring: ScoringConfig{
			Workers:    runtime.GOMAXPROCS(0),
			Batch:      1024,
			MaxSamples: 10000,

			HostSeriesMax: DefaultHostSeriesMax,
			HostSeriesTTL: DefaultHostSeriesTTL,
		},
		NATS: NATSConfig{
			Name:              "dagmm-serve",
			EmbeddedHost:      "127.0.0.1",
			EmbeddedPort:      4222,
			Subject:           "metrics.>",
			AnomalyPrefix:     "anomalies",
			ScorePrefix:       "scores",
			DeadLetterSubject: "dagmm.deadletter",
			QueueGroup:        "dagmm",
		},
		JetStream: JetStreamConfig{
			Stream:         "DAGMM_METRICS",
			StreamMaxAge:   24 * time.Hour,
			StreamMaxBytes: 1 << 30,
			Consumer:       "dagmm-scorer",
			AckWait:        30 * time.Second,
			MaxDeliver:     10,
			MaxAckPending:  20000,
		},
		Telegraf: TelegrafConfig{
			Flush: time.Second,
		},
		RemoteWrite: RemoteWriteConfig{}.withDefaults(),
		HTTP: HTTPConfig{
			Addr:              ":8080",
			MaxBodyBytes:      8 << 20,
			MaxInFlightBytes:  InFlightBytesFor(GoMemoryLimit(), 8<<20),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
		},
		ShutdownTimeout: 10 * time.Second,
	}
}

// DefaultTelegrafSubject is the default subject with Telegraf: the default
// subject of Telegraf's outputs.nats plugin.
const DefaultTelegrafSubject = "telegraf"

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.Model.Name, d.Model.Name)
	setDefault(&c.Model.PollInterval, d.Model.PollInterval)
	setDefault(&c.NATS.Name, d.NATS.Name)
	setDefault(&c.NATS.EmbeddedHost, d.NATS.EmbeddedHost)
	setDefault(&c.NATS.EmbeddedPort, d.NATS.EmbeddedPort)
	if c.Telegraf.Enabled {
		setDefault(&c.NATS.Subject, DefaultTelegrafSubject)
	}
	setDefault(&c.NATS.Subject, d.NATS.Subject)
	setDefault(&c.NATS.AnomalyPrefix, d.NATS.AnomalyPrefix)
	setDefault(&c.NATS.ScorePrefix, d.NATS.ScorePrefix)
	setDefault(&c.NATS.DeadLetterSubject, d.NATS.DeadLetterSubject)
	setDefault(&c.NATS.QueueGroup, d.NATS.QueueGroup)
	setDefault(&c.Scoring.Workers, d.Scoring.Workers)
	setDefault(&c.Scoring.Batch, d.Scoring.Batch)
	setDefault(&c.JetStream.Stream, d.JetStream.Stream)
	setDefault(&c.JetStream.StreamMaxAge, d.JetStream.StreamMaxAge)
	setDefault(&c.JetStream.StreamMaxBytes, d.JetStream.StreamMaxBytes)
	setDefault(&c.JetStream.Consumer, d.JetStream.Consumer)
	setDefault(&c.JetStream.AckWait, d.JetStream.AckWait)
	setDefault(&c.JetStream.MaxDeliver, d.JetStream.MaxDeliver)
	setDefault(&c.JetStream.MaxAckPending, d.JetStream.MaxAckPending)
	setDefault(&c.HTTP.Addr, d.HTTP.Addr)
	setDefault(&c.HTTP.MaxBodyBytes, d.HTTP.MaxBodyBytes)
	if c.HTTP.MaxInFlightBytes == 0 {
		c.HTTP.MaxInFlightBytes = InFlightBytesFor(httpMemoryLimit(c, GoMemoryLimit()), c.HTTP.MaxBodyBytes)
	}
	setDefault(&c.Scoring.MaxSamples, d.Scoring.MaxSamples)
	setDefault(&c.Scoring.HostSeriesMax, d.Scoring.HostSeriesMax)
	setDefault(&c.Scoring.HostSeriesTTL, d.Scoring.HostSeriesTTL)
	setDefault(&c.HTTP.ReadHeaderTimeout, d.HTTP.ReadHeaderTimeout)
	setDefault(&c.HTTP.ReadTimeout, d.HTTP.ReadTimeout)
	setDefault(&c.HTTP.WriteTimeout, d.HTTP.WriteTimeout)
	setDefault(&c.HTTP.IdleTimeout, d.HTTP.IdleTimeout)
	setDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	setDefault(&c.Telegraf.Flush, d.Telegraf.Flush)
	c.RemoteWrite = c.RemoteWrite.withDefaults()
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// ErrConfig is wrapped by every error [Config.Validate] returns.
var ErrConfig = errors.New("serve: invalid config")

// Validate reports the first setting that cannot work, naming it. Call it
// on a configuration with defaults applied ([Config.WithDefaults]); a zero
// duration or size is refused.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if err := checkToken(c.Model.Name); err != nil {
		return bad("model name", "%q %v", c.Model.Name, err)
	}
	if _, err := model.ParseMethod(c.Scoring.ExplainMethod); err != nil {
		return bad("explain method", "%v", err)
	}
	if !c.NATS.Disabled {
		if err := checkSubject(c.NATS.Subject, true); err != nil {
			return bad("subject", "%q: %v", c.NATS.Subject, err)
		}
		for _, p := range []struct{ name, v string }{
			{"anomaly prefix", c.NATS.AnomalyPrefix},
			{"score prefix", c.NATS.ScorePrefix},
			{"dead-letter subject", c.NATS.DeadLetterSubject},
		} {
			if err := checkSubject(p.v, false); err != nil {
				return bad(p.name, "%q: %v", p.v, err)
			}
			if len(p.v) > maxPrefixLen {
				return bad(p.name, "%d bytes long, longer than %d: with a host a subject must stay well under the 4,096-byte protocol line a NATS server accepts", len(p.v), maxPrefixLen)
			}
		}
		if subjectsOverlap(c.NATS.Subject, c.NATS.DeadLetterSubject) || subjectsOverlap(c.NATS.Subject, c.NATS.AnomalyPrefix+".x") ||
			(c.NATS.PublishScores && subjectsOverlap(c.NATS.Subject, c.NATS.ScorePrefix+".x")) {
			return bad("subject", "%q would receive the service's own events or dead letters", c.NATS.Subject)
		}
		if err := checkToken(c.NATS.QueueGroup); err != nil {
			return bad("queue group", "%q %v", c.NATS.QueueGroup, err)
		}
		if c.NATS.URL != "" {
			if err := c.NATS.Auth.Validate(); err != nil {
				return bad("auth", "%v", err)
			}
		}
		if c.NATS.URL == "" {
			if c.NATS.EmbeddedPort < -1 || c.NATS.EmbeddedPort > 65535 {
				return bad("embedded port", "%d is not a port (1-65535, or -1 for any free port)", c.NATS.EmbeddedPort)
			}
			if net.ParseIP(c.NATS.EmbeddedHost) == nil && c.NATS.EmbeddedHost != "localhost" {
				return bad("embedded host", "%q is not an IP address", c.NATS.EmbeddedHost)
			}
		}
		if c.JetStream.Enabled {
			if err := checkToken(c.JetStream.Stream); err != nil {
				return bad("stream", "%q %v", c.JetStream.Stream, err)
			}
			if err := checkToken(c.JetStream.Consumer); err != nil {
				return bad("consumer", "%q %v", c.JetStream.Consumer, err)
			}
			if c.JetStream.StreamMaxBytes < -1 || c.JetStream.StreamMaxBytes == 0 {
				return bad("stream max bytes", "%d: want a positive size, or -1 for no limit", c.JetStream.StreamMaxBytes)
			}
			if c.JetStream.MaxDeliver < -1 || c.JetStream.MaxDeliver == 0 {
				return bad("max deliver", "%d: want a positive number, or -1 for no limit", c.JetStream.MaxDeliver)
			}
		}
		if c.JetStream.EventStream != "" {
			if err := checkToken(c.JetStream.EventStream); err != nil {
				return bad("event stream", "%q %v", c.JetStream.EventStream, err)
			}
			if c.JetStream.Enabled && c.JetStream.EventStream == c.JetStream.Stream {
				return bad("event stream", "%q is also the sample stream", c.JetStream.EventStream)
			}
		}
	}
	if c.Scoring.HostSeriesMax < -1 {
		return bad("host series max", "%d: want a positive number, or -1 for no per-host series", c.Scoring.HostSeriesMax)
	}
	if err := c.RemoteWrite.validate(c.NATS.Disabled); err != nil {
		return err
	}
	if err := c.validatePartitions(); err != nil {
		return bad("partitions", "%v", err)
	}
	if c.Telegraf.Enabled {
		if c.NATS.Disabled {
			return bad("telegraf", "Telegraf's messages come over NATS: it cannot be used without NATS")
		}
		if c.Telegraf.Format > ingest.FormatJSON {
			return bad("telegraf format", "%d is not a format", c.Telegraf.Format)
		}
		if c.Telegraf.Mapping != nil {
			if err := c.Telegraf.Mapping.Validate(); err != nil {
				return bad("telegraf mapping", "%v", err)
			}
		}
		if c.Telegraf.Flush <= 0 {
			return bad("telegraf flush", "%v: want a positive duration", c.Telegraf.Flush)
		}
	}
	for _, p := range []struct {
		name string
		v    int64
	}{
		{"workers", int64(c.Scoring.Workers)},
		{"batch", int64(c.Scoring.Batch)},
		{"max body bytes", c.HTTP.MaxBodyBytes},
		{"max samples", int64(c.Scoring.MaxSamples)},
		{"max ack pending", int64(c.JetStream.MaxAckPending)},
	} {
		if p.v <= 0 {
			return bad(p.name, "%d: want a positive number", p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    time.Duration
	}{
		{"read header timeout", c.HTTP.ReadHeaderTimeout},
		{"read timeout", c.HTTP.ReadTimeout},
		{"write timeout", c.HTTP.WriteTimeout},
		{"idle timeout", c.HTTP.IdleTimeout},
		{"shutdown timeout", c.ShutdownTimeout},
		{"ack wait", c.JetStream.AckWait},
		{"stream max age", c.JetStream.StreamMaxAge},
		{"host series ttl", c.Scoring.HostSeriesTTL},
	} {
		if p.v <= 0 {
			return bad(p.name, "%v: want a positive duration", p.v)
		}
	}
	if c.HTTP.MaxInFlightBytes < c.HTTP.MaxBodyBytes {
		return bad("max in-flight bytes", "%d is less than the largest body (%d bytes): a request of that size would always be refused", c.HTTP.MaxInFlightBytes, c.HTTP.MaxBodyBytes)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		return bad("http address", "%q: %v", c.HTTP.Addr, err)
	}
	if strings.ContainsAny(c.HTTP.AdminToken, " \t\r\n") {
		return bad("admin token", "contains white space")
	}
	return nil
}

// maxPrefixLen bounds the event subject prefixes and the dead-letter
// subject: with a host of at most [ingest.MaxHostLen] bytes and a
// JetStream reply subject, a protocol line stays under 1,500 bytes.
const maxPrefixLen = 1024

// checkToken checks a name that must be one subject token without
// wildcards: a stream, consumer, queue group or model name.
func checkToken(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.ContainsAny(s, ".*> \t\r\n/\\"):
		return errors.New(`must not contain '.', '*', '>', '/', '\' or white space`)
	}
	return nil
}

// checkSubject checks a NATS subject; wildcards are allowed only when
// wild is true.
func checkSubject(s string, wild bool) error {
	if s == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("contains white space")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("token %d is empty", i+1)
		case t == "*" || t == ">":
			if !wild {
				return errors.New("wildcards are not allowed here")
			}
			if t == ">" && i != len(toks)-1 {
				return errors.New("'>' must be the last token")
			}
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("token %q mixes a wildcard with other characters", t)
		}
	}
	return nil
}

// subjectsOverlap reports whether the pattern pat (wildcards allowed)
// matches the literal subject s.
func subjectsOverlap(pat, s string) bool {
	pt, st := strings.Split(pat, "."), strings.Split(s, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}
