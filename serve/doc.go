// Package serve is dagmm's real-time service: it scores live metrics with a
// trained model, from a NATS subject and over HTTP, in one process.
//
// A [Service] is built with [New] from a [Config] and run with
// [Service.Run] until its context is cancelled. It takes its models from a
// [ModelSource], which names the model of each sample's host
// ([Models.ForHost]; [FileSource] reads one artifact file, serves it to
// every host and reloads it when the file changes; [RegistrySource] gives
// each host its own model from a fleet.Registry, see Fleet mode below);
// [Service.Reload] reloads on demand
// (SIGHUP, the admin endpoint). Each model is prepared for serving once,
// and each scoring goroutine keeps a workspace for each of its last few
// models, so that hosts of different models cost no allocation. A reload
// validates the new model before it swaps it in with an atomic pointer:
// requests and messages in flight finish with the model they started
// with, new ones get the new model, and a bad file leaves the old model
// serving.
//
// # NATS
//
// The scorer subscribes to [NATSConfig.Subject] (default "metrics.>"). A message
// holds one JSON sample or a batch, in the format of package ingest:
//
//	{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,"mem_usage":61.2,"disk_busy":12.0,"net_in_bps":1.2e6}}
//
// For each sample above the model's threshold it publishes an [Event] to
// "<AnomalyPrefix>.<host>" (default "anomalies.web-1"), with the energy, the
// threshold, the severity and the per-feature explanation ranked by share
// ([model.Scorer.Explain], method [ScoringConfig.ExplainMethod]); with
// [NATSConfig.PublishScores] every sample's score goes to "<ScorePrefix>.<host>"
// too. The host is the sample's "host" member, or else the last token of
// the message subject; a '.' (fully qualified names) becomes '_' in the
// subject. A host that cannot be a subject token ([ingest.CheckHost]: more
// than 255 bytes, white space or control characters, '*' or '>', invalid
// UTF-8) makes the message a dead letter.
//
// A message that cannot be decoded or scored, or whose events cannot be
// published, goes to [NATSConfig.DeadLetterSubject] unchanged, with the reason
// in the [HeaderReason] header (and others); bad input never stops the
// scorer.
//
// The connection is kept up: the client reconnects without limit, with
// backoff, and when it closes a connection for good (nats.go does on some
// server errors) the service dials a new one and subscribes again. While
// the connection is lost the service is not ready (/v2/health/ready
// answers 503, dagmm_ready is 0) and dagmm_nats_connected is 0;
// dagmm_nats_disconnects_total counts the losses by reason.
//
// In core mode the scorer's subscriptions join the queue group
// [NATSConfig.QueueGroup], so that replicas share the subject. In durable mode
// ([JetStreamConfig.Enabled]) it creates or binds the stream [JetStreamConfig.Stream] and
// the durable pull consumer [JetStreamConfig.Consumer], and acknowledges a message
// only after its events are published: a scorer killed mid-stream and
// restarted scores every sample at least once. A message that fails for a
// reason that will not change (it cannot be decoded, a host is invalid,
// the model refuses a value) is dead-lettered and terminated on its first
// delivery; one whose events cannot be published is delivered again after
// a growing wait, up to [JetStreamConfig.MaxDeliver] times, then dead-lettered and
// terminated. Neither holds back the messages behind it. Events then carry the source
// message's stream sequence ([Source]) so that a consumer can drop
// duplicates. Events go out on the same connection, and so reach the
// server, before the acknowledgement; with [JetStreamConfig.EventStream] they are
// stored in a stream and the scorer waits for the stream's acknowledgement
// of every event before it acknowledges the message.
//
// With no [NATSConfig.URL] the service starts an embedded nats-server on
// 127.0.0.1 (JetStream enabled), so that one machine works out of the box.
//
// # Telegraf
//
// With [TelegrafConfig.Enabled] the scorer takes what Telegraf's outputs.nats
// plugin publishes on [NATSConfig.Subject] (default "telegraf"): one message per
// measurement (cpu, mem, diskio, net, ...) or a batch, in influx line
// protocol or JSON ([TelegrafConfig.Format]). An [ingest.Assembler] joins
// the measurements per host (the "host" tag) and collection interval into
// the model's vectors, as [TelegrafConfig.Mapping] says (by default
// [ingest.DefaultConfig]: cpu_usage, mem_usage, disk_busy and net_in_bps,
// with the counters turned into rates); the vectors are scored like samples,
// and anomalies go to "<AnomalyPrefix>.<host>". Their events have no
// source: host and ts identify them (and, with an event stream, make their
// message ids).
//
// One goroutine decodes and assembles the messages in the order they
// arrive, so that each host's counters are seen in order, and scores and
// publishes the vectors each message completes; another finalises every
// [TelegrafConfig.Flush] the intervals whose deadline passed, so that a host
// that stopped sending never holds the others back. A message with a bad
// metric goes to the dead-letter subject with the reason (naming the
// metric, line and column), and its good metrics are still used. Intervals
// finalised without a vector (a counter's first observation or reset, a
// measurement that never came) and measurements that came too late are
// counted in the dagmm_telegraf_* metrics and logged at debug level
// (dagmm_nats_messages_total counts a message as scored once assembled). At
// shutdown, once the subscription is drained, every open interval is
// finalised and the events of its vectors are published.
//
// Durable mode with Telegraf acknowledges a message once it is assembled:
// its measurements are in the assembler, its dead letter is published, and
// so are the events of the vectors it completed. Acknowledging later, when
// every interval a message touched is finalised, would hold about two
// intervals of the whole fleet unacknowledged (beyond MaxAckPending for a
// large one) and could not make a redelivery useful, since rates need the
// counter history of the intervals before. So at-least-once means: every
// message stored in the stream is assembled at least once, those published
// while the scorer was down included (the durable consumer resumes where
// it stopped; intervals are built from the measurements' timestamps). What
// a crash loses is what was in memory: the intervals open at that moment
// (at most the last Wait of each host) and the counter history, so each
// host's first interval after a restart has no rate and gives no vector. A
// message delivered twice does no harm: a measurement repeated in an open
// interval replaces itself, and one for a finalised interval is late and
// dropped.
//
// Replicas: all of a host's measurements must reach the same scorer, so
// Telegraf mode subscribes without a queue group (and one durable consumer
// must not be shared). To spread a fleet over several scorers, put the host
// in the subject (Telegraf's subject template, e.g. 'telegraf.{{ .Tag "host" }}')
// and give each scorer its own partition, for instance with NATS subject
// mapping partition().
//
// # Prometheus remote write
//
// With [RemoteWriteConfig.Enabled] the service takes Prometheus remote write
// 1.0 at POST /api/v1/write: a protobuf WriteRequest in snappy's block
// format, decoded by [ingest.RemoteWriteDecoder] (protowire and
// klauspost/compress/snappy; the github.com/prometheus/prometheus module is
// not imported: hundreds of modules, not meant as a library, for four small
// messages whose wire format is stable). The samples go to the same
// assembly stage as Telegraf's measurements (an [ingest.Assembler] of its
// own, with the mapping of [RemoteWriteConfig.Mapping], by default feature f
// from the series dagmm:f of deploy/prometheus/rules.yaml, the host in the
// label instance): joined per host and evaluation, scored, anomalies
// published on NATS as usual (counted as source="http"), and
// dagmm_remote_write_* metrics. A stale marker ends its series: the host's
// open intervals no longer wait for it and are never scored with it, and a
// host whose every series ended is finalised and forgotten.
//
// The answers follow the remote write specification, under which a sender
// retries 5xx and 429 and drops what got another 4xx: 204 once the samples
// are assembled (the vectors they completed scored and published); 400 for
// a body that is not snappy or not a WriteRequest, or samples whose host
// label cannot name a host (the others are taken); 413 for a body too large
// ([HTTPConfig.MaxBodyBytes]) or too large once decompressed
// ([RemoteWriteConfig.MaxDecodedBytes]); 415 for another Content-Type or
// Content-Encoding (remote write 2.0 among them); 429 with Retry-After when
// the request bytes in flight are at their limit (the decoded samples are
// reserved too); 503 with Retry-After while the service is not ready
// (starting, stopping, NATS down), or the model's features are not in the
// mapping. What was answered 204 is scored: at shutdown the open intervals
// are finalised and published after the last request.
//
// # Fleet mode
//
// With a [RegistrySource] ([OpenFleet] sets it up with the history stream,
// the false-alarm marks and the job queue), each sample is scored by its
// host's model, loaded on first use into a least-recently-used cache
// bounded by memory ([RegistrySourceConfig.CacheBytes], [ModelBytes] a
// model) and replaced while serving when the registry's current version changes (a
// publish, a rollback) and the new version validates. A host without a
// model is scored by the fleet model, or is learning: its samples are not
// scored, are not dead letters, and are counted in
// dagmm_samples_learning_total; over NATS nothing is published for them,
// and an HTTP result says "learning":true. Events name the host's model and
// its registry version.
//
// # HTTP
//
// The Echo server answers:
//
//	POST /v1/score                       one sample or many, by feature name (the NATS JSON format);
//	                                     ?explain=anomalies|all|none (default anomalies), ?method=<explanation method>
//	GET  /v1/model                       the model's metadata
//	POST /v1/model/reload                reload the model (403 unless Config.HTTP.AdminToken is set, then its bearer token)
//	GET  /metrics                        Prometheus metrics: dagmm_*, and the Go and process collectors
//	GET  /v2                             Open Inference Protocol v2 (KServe): server metadata
//	GET  /v2/health/live, /v2/health/ready
//	GET  /v2/models/{name}, /v2/models/{name}/ready
//	POST /v2/models/{name}/infer         an FP64 tensor of shape [n, d]
//	POST /api/v1/write                   Prometheus remote write 1.0 (with Config.RemoteWrite.Enabled; see above)
//
// Bad input gets a 4xx status and a JSON body {"error": "..."} that names the
// problem (the sample, the feature); the service never answers 500 to input.
// Responses name the model file by its base name, never by its path.
//
// # Memory
//
// The request body bytes held by all requests in flight are capped by
// [HTTPConfig.MaxInFlightBytes]: a request is counted by its Content-Length
// before its body is read, and one that would go over the cap is answered
// 429 Too Many Requests with a Retry-After header. By default the cap is
// derived from the Go memory limit ([InFlightBytesFor]): a request needs at
// most [BytesPerBodyByte] bytes of memory per byte of body, so the process
// stays near [MemoryReserve] + BytesPerBodyByte × MaxInFlightBytes.
//
// # Shutdown
//
// When the context of [Service.Run] is cancelled the service reports not
// ready, drains its NATS subscriptions (finishing the messages in flight),
// shuts the HTTP server down (finishing the requests in flight, up to
// [Config.ShutdownTimeout]), drains the NATS connection and stops the
// embedded server.
//
// # Stages
//
// Scoring is split in two stages: a decode stage that turns a message or a
// request body into samples (dagmm's JSON, or Telegraf's formats and
// Prometheus remote write through package ingest's assembler), and one
// scoring stage that scores
// samples in batches with a per-worker [model.Workspace] and publishes the
// events. A new input format adds a decode stage and reuses the rest.
package serve
