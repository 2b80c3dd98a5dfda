package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
)

// FleetConfig is fleet mode: each host scored by its own model from a
// [fleet.Registry] (see [RegistrySource]), the hosts' history kept in a
// stream for the trainers, and false-alarm marks that queue a host for
// retraining. [OpenFleet] sets it up; the zero value of each field takes
// the fleet package's default.
type FleetConfig struct {
	// Enabled turns fleet mode on.
	Enabled bool
	// Registry names the registry's buckets (Objects, Index); the
	// defaults are [fleet.DefaultRegistryConfig]'s.
	Registry fleet.RegistryConfig
	// Models configures the host models' cache, the fleet model's key
	// and the look-ups.
	Models RegistrySourceConfig
	// History is the stream that keeps each host's latest samples, created
	// or bound at start. Its subject defaults to the service's NATS
	// subject; MaxMsgsPerSubject defaults to 1,000.
	History fleet.HistoryConfig
	// Marks is the false-alarm marks' KV bucket.
	Marks fleet.MarksConfig
	// MarksSubject is the NATS subject mark requests are answered on.
	// Default [fleet.DefaultMarksSubject].
	MarksSubject string
	// Jobs is the retraining job queue a mark puts its host on.
	Jobs fleet.JobsConfig
}

// Fleet is the fleet side of a service: the registry source, the history
// stream, the marks and the job queue. Give [Fleet.Options] to [New], and
// Close the Fleet after the service stopped.
type Fleet struct {
	Source  *RegistrySource
	History *fleet.History
	Marks   *fleet.Marks
	Jobs    *fleet.Jobs

	stop context.CancelFunc
}

// OpenFleet sets fleet mode up on nc for a service configured with cfg:
// it opens (or creates) the registry, creates or binds the history stream
// over the service's subject and the job queue, opens the marks and
// answers mark requests on cfg.Fleet.MarksSubject. base, which may be nil
// when the registry has a fleet model, gives the features samples are
// decoded with (see [NewRegistrySource]).
func OpenFleet(ctx context.Context, nc *nats.Conn, cfg Config, base *Loaded, log *slog.Logger) (*Fleet, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fc := cfg.Fleet
	dc := cfg.WithDefaults()
	if err := dc.validatePartitions(); err != nil {
		return nil, fmt.Errorf("%w: partitions: %v", ErrConfig, err)
	}
	part, partitioned := dc.Partitioning()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	rc := fc.Registry
	rc.Log = log
	reg, err := fleet.NewRegistry(ctx, js, rc)
	if err != nil {
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	hc := fc.History
	if hc.Subject == "" {
		hc.Subject = dc.NATS.Subject
	}
	if partitioned && hc.Subject == dc.NATS.Subject && hc.Partitions == 0 {
		hc.Partitions = part.N
	}
	f := &Fleet{}
	if f.History, err = fleet.EnsureHistory(ctx, js, hc); err != nil {
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	if f.Jobs, err = fleet.EnsureJobs(ctx, js, fc.Jobs); err != nil {
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	if f.Marks, err = fleet.NewMarks(ctx, js, fc.Marks, f.Jobs); err != nil {
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	mc := fc.Models
	if mc.Log == nil {
		mc.Log = log
	}
	if partitioned && mc.Partitions.N == 0 {
		mc.Partitions, mc.Partition = part, dc.NATS.Partition
	}
	if f.Source, err = NewRegistrySource(ctx, reg, base, mc); err != nil {
		return nil, err
	}
	subject := fc.MarksSubject
	if subject == "" {
		subject = fleet.DefaultMarksSubject
	}
	mctx, stop := context.WithCancel(context.Background())
	f.stop = func() { stop(); f.Source.Close() }
	if _, err := fleet.ServeMarks(mctx, nc, subject, f.Marks, 0); err != nil {
		f.stop()
		return nil, fmt.Errorf("serve: fleet: %w", err)
	}
	return f, nil
}

// Options returns the service options of fleet mode: the registry source
// and the POST /v1/false-alarms endpoint.
func (f *Fleet) Options() []Option {
	return []Option{WithModelSource(f.Source), withMarks(f.Marks)}
}

// Close stops answering mark requests and watching the registry.
func (f *Fleet) Close() { f.stop() }

// withMarks adds POST /v1/false-alarms, served by m.
func withMarks(m *fleet.Marks) Option { return func(s *Service) { s.marks = m } }

// handleFalseAlarm serves POST /v1/false-alarms: a [fleet.MarkRequest]
// (an event as published is one), answered with a [fleet.MarkReply]: 200
// when the mark is kept, 400 when it cannot be. Like the reload endpoint,
// it needs the admin token (403 when none is set): a mark puts flagged
// samples back into a host's training and queues it for retraining.
func (s *Service) handleFalseAlarm(c echo.Context) error {
	body, release, err := s.readBody(c)
	if err != nil {
		return err
	}
	defer release()
	var req fleet.MarkRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "false-alarm mark: want a JSON object with host and ts: "+err.Error())
	}
	reply := s.marks.Handle(c.Request().Context(), req)
	code := http.StatusOK
	if !reply.OK {
		code = http.StatusBadRequest
	}
	return c.JSON(code, reply)
}
