// Package dashpic runs a scenario through a real dagmm serve and reads back
// the per-host series its /metrics exports, as Prometheus would scrape them,
// and draws the main panels of the Grafana dashboard
// (deploy/grafana/dashboard.json) from them: the README's picture of what
// the dashboard shows, drawn from dagmm's own series rather than a Grafana
// screenshot. The tests of deploy/prometheus and deploy/grafana start the
// service with it too.
package dashpic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dagmm/dagmm/serve"
)

// Service is a running dagmm serve: HTTP only, on a free loopback port.
type Service struct {
	// URL is its base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Serve is the service itself.
	Serve  *serve.Service
	cancel context.CancelFunc
	done   chan error
}

// Start starts dagmm serve with the model at modelPath, HTTP only on a
// free loopback port; edit, when not nil, changes the configuration first.
// Close stops it.
func Start(ctx context.Context, modelPath string, edit func(*serve.Config)) (*Service, error) {
	cfg := serve.DefaultConfig()
	cfg.Model.Path = modelPath
	cfg.Model.PollInterval = -1
	cfg.NATS.Disabled = true
	cfg.HTTP.Addr = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	s, err := serve.New(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("dashpic: start dagmm serve: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Service{Serve: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-r.done:
		cancel()
		return nil, fmt.Errorf("dashpic: dagmm serve stopped: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		return nil, errors.New("dashpic: dagmm serve not ready after 30s")
	}
	r.URL = "http://" + s.HTTPAddr()
	return r, nil
}

// Close stops the service and waits for it.
func (s *Service) Close() error {
	s.cancel()
	if err := <-s.done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Score posts body (a sample or a batch of dagmm's JSON samples) to
// /v1/score and returns the response body.
func (s *Service) Score(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/score", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dashpic: score: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("dashpic: score: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dashpic: score: %s: %s", resp.Status, out)
	}
	return out, nil
}

// Metrics scrapes the service's /metrics in the text format, as
// Prometheus does, and returns the metric families by name.
func (s *Service) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dashpic: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("dashpic: scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("dashpic: scrape: %w", err)
	}
	return mfs, nil
}
