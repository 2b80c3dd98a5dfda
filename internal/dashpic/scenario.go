package dashpic

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dagmm/dagmm/datasets"
)

// Incident breaks one feature of one host for a run of steps: the feature
// is set to Value while the host's other metrics stay normal, so the
// correlation the model learnt breaks.
type Incident struct {
	Host     string
	Feature  string
	From, To int // steps From to To-1
	Value    float64
}

// Scenario is a few hosts sending the generator's four metrics (dagmm gen's
// formulas, datasets.Generate) one sample per Interval, with incidents.
type Scenario struct {
	Hosts     []string
	Steps     int
	Interval  time.Duration
	Start     time.Time
	Incidents []Incident
}

// DefaultScenario is the picture's: three hosts for 20 minutes, one sample
// each every 15 s; db-1's disk pinned busy for two minutes, web-2's CPU
// pegged for 45 s later on.
func DefaultScenario() Scenario {
	return Scenario{
		Hosts:    []string{"web-1", "web-2", "db-1"},
		Steps:    80,
		Interval: 15 * time.Second,
		Start:    time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		Incidents: []Incident{
			{Host: "db-1", Feature: "disk_busy", From: 30, To: 38, Value: 70},
			{Host: "web-2", Feature: "cpu_usage", From: 58, To: 61, Value: 99},
		},
	}
}

// Sample is one of dagmm's JSON samples.
type Sample struct {
	Host   string             `json:"host"`
	TS     time.Time          `json:"ts"`
	Values map[string]float64 `json:"values"`
}

// Samples returns the samples of each step, every host's, incidents applied.
func (sc Scenario) Samples() ([][]Sample, error) {
	steps := make([][]Sample, sc.Steps)
	features := datasets.GenFeatures()
	for h, host := range sc.Hosts {
		tab, err := datasets.Generate(datasets.GenConfig{N: sc.Steps, Anomalies: 0, MinBroken: 1, MaxBroken: 1,
			Seed: uint64(h + 1), Host: host, Start: sc.Start, Interval: sc.Interval})
		if err != nil {
			return nil, fmt.Errorf("dashpic: generate %s: %w", host, err)
		}
		for k := range sc.Steps {
			s := Sample{Host: host, TS: sc.Start.Add(time.Duration(k) * sc.Interval), Values: map[string]float64{}}
			for _, f := range features {
				col, ok := tab.Column(f)
				if !ok {
					return nil, fmt.Errorf("dashpic: generated table has no column %s", f)
				}
				v, _ := col.Float64(k)
				s.Values[f] = v
			}
			for _, in := range sc.Incidents {
				if in.Host == host && k >= in.From && k < in.To {
					if _, ok := s.Values[in.Feature]; !ok {
						return nil, fmt.Errorf("dashpic: incident on %s: no feature %q (want one of %v)", host, in.Feature, features)
					}
					s.Values[in.Feature] = in.Value
				}
			}
			steps[k] = append(steps[k], s)
		}
	}
	return steps, nil
}

// HostState is one host's series in one scrape.
type HostState struct {
	Energy, Threshold, Severity float64
	Anomaly                     bool
	Anomalies                   float64 // dagmm_host_anomalies_total
	Feature                     string  // dagmm_host_explanation's feature, "" when absent
	Share                       float64
}

// Frame is one scrape of the host series, after a step was scored.
type Frame struct {
	T     time.Time // the step's sample time
	Hosts map[string]HostState
}

// Run scores the scenario through s, one step (a batch of every host's
// sample) at a time, and scrapes /metrics after each: a frame a step.
func (sc Scenario) Run(ctx context.Context, s *Service) ([]Frame, error) {
	steps, err := sc.Samples()
	if err != nil {
		return nil, err
	}
	frames := make([]Frame, 0, len(steps))
	for k, batch := range steps {
		body, err := json.Marshal(batch)
		if err != nil {
			return nil, err
		}
		if _, err := s.Score(ctx, body); err != nil {
			return nil, fmt.Errorf("step %d: %w", k, err)
		}
		mfs, err := s.Metrics(ctx)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", k, err)
		}
		frames = append(frames, Frame{T: batch[0].TS, Hosts: HostStates(mfs)})
	}
	return frames, nil
}

// HostStates reads the dagmm_host_* series of a scrape, by host.
func HostStates(mfs map[string]*dto.MetricFamily) map[string]HostState {
	hosts := map[string]HostState{}
	set := func(name string, f func(*HostState, *dto.Metric)) {
		mf := mfs[name]
		if mf == nil {
			return
		}
		for _, m := range mf.GetMetric() {
			host := label(m, "host")
			st := hosts[host]
			f(&st, m)
			hosts[host] = st
		}
	}
	set("dagmm_host_energy", func(s *HostState, m *dto.Metric) { s.Energy = m.GetGauge().GetValue() })
	set("dagmm_host_threshold", func(s *HostState, m *dto.Metric) { s.Threshold = m.GetGauge().GetValue() })
	set("dagmm_host_severity", func(s *HostState, m *dto.Metric) { s.Severity = m.GetGauge().GetValue() })
	set("dagmm_host_anomaly", func(s *HostState, m *dto.Metric) { s.Anomaly = m.GetGauge().GetValue() == 1 })
	set("dagmm_host_anomalies_total", func(s *HostState, m *dto.Metric) { s.Anomalies = m.GetCounter().GetValue() })
	set("dagmm_host_explanation", func(s *HostState, m *dto.Metric) {
		s.Feature, s.Share = label(m, "feature"), m.GetGauge().GetValue()
	})
	return hosts
}

func label(m *dto.Metric, name string) string {
	i := slices.IndexFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == name })
	if i < 0 {
		return ""
	}
	return m.GetLabel()[i].GetValue()
}
