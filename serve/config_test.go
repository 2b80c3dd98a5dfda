package serve

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	var zero Config
	c := zero.WithDefaults()
	if c != DefaultConfig() {
		t.Errorf("zero config with defaults %+v, want %+v", c, DefaultConfig())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	// Set fields are kept.
	c = Config{
		Model: ModelConfig{
			PollInterval: -1,
		},
		Scoring: ScoringConfig{
			Workers: 3,
		},
		NATS: NATSConfig{
			Subject: "m.*",
		},
	}.WithDefaults()
	if c.NATS.Subject != "m.*" || c.Scoring.Workers != 3 || c.Model.PollInterval != -1 || c.Scoring.Batch != 1024 {
		t.Errorf("WithDefaults changed set fields: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // in the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"wildcard subject", func(c *Config) { c.NATS.Subject = "metrics.*.cpu" }, ""},
		{"jetstream", func(c *Config) { c.JetStream.Enabled = true; c.JetStream.EventStream = "EV" }, ""},
		{"no nats skips subjects", func(c *Config) { c.NATS.Disabled = true; c.NATS.Subject = "bad subject" }, ""},
		{"empty subject token", func(c *Config) { c.NATS.Subject = "metrics..x" }, "subject"},
		{"subject space", func(c *Config) { c.NATS.Subject = "metrics x" }, "white space"},
		{"gt not last", func(c *Config) { c.NATS.Subject = "metrics.>.x" }, "last token"},
		{"mixed wildcard", func(c *Config) { c.NATS.Subject = "metrics.a*" }, "mixes"},
		{"wildcard prefix", func(c *Config) { c.NATS.AnomalyPrefix = "anomalies.*" }, "anomaly prefix"},
		{"long prefix", func(c *Config) { c.NATS.ScorePrefix = strings.Repeat("s", 1025) }, "score prefix"},
		{"loop", func(c *Config) { c.NATS.Subject = ">" }, "own events"},
		{"score loop", func(c *Config) { c.NATS.Subject = "scores.>"; c.NATS.PublishScores = true }, "own events"},
		{"dead letter loop", func(c *Config) { c.NATS.Subject = "dagmm.*" }, "own events"},
		{"stream name", func(c *Config) { c.JetStream.Enabled = true; c.JetStream.Stream = "a.b" }, "stream"},
		{"consumer name", func(c *Config) { c.JetStream.Enabled = true; c.JetStream.Consumer = "" }, "consumer"},
		{"max deliver", func(c *Config) { c.JetStream.Enabled = true; c.JetStream.MaxDeliver = -5 }, "max deliver"},
		{"same streams", func(c *Config) { c.JetStream.Enabled = true; c.JetStream.EventStream = c.JetStream.Stream }, "event stream"},
		{"port", func(c *Config) { c.NATS.EmbeddedPort = 70000 }, "embedded port"},
		{"host", func(c *Config) { c.NATS.EmbeddedHost = "not an ip" }, "embedded host"},
		{"workers", func(c *Config) { c.Scoring.Workers = -1 }, "workers"},
		{"body", func(c *Config) { c.HTTP.MaxBodyBytes = -1 }, "max body bytes"},
		{"timeout", func(c *Config) { c.HTTP.ReadTimeout = -time.Second }, "read timeout"},
		{"http addr", func(c *Config) { c.HTTP.Addr = "8080" }, "http address"},
		{"token", func(c *Config) { c.HTTP.AdminToken = "a b" }, "admin token"},
		{"in-flight below body", func(c *Config) { c.HTTP.MaxInFlightBytes = c.HTTP.MaxBodyBytes - 1 }, "max in-flight bytes"},
		{"in-flight equal to body", func(c *Config) { c.HTTP.MaxInFlightBytes = c.HTTP.MaxBodyBytes }, ""},
		{"model name", func(c *Config) { c.Model.Name = "a/b" }, "model name"},
		{"explain method", func(c *Config) { c.Scoring.ExplainMethod = "magic" }, "explain method"},
		{"explain share", func(c *Config) { c.Scoring.ExplainMethod = "share" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"metrics.>", "metrics.a", true}, {"metrics.>", "metrics", false}, {"metrics.>", "anomalies.x", false},
		{"*.x", "a.x", true}, {"*.x", "a.y", false}, {">", "a.b.c", true}, {"a.b", "a.b", true}, {"a.b", "a.b.c", false},
	} {
		if got := subjectsOverlap(tc.pat, tc.s); got != tc.want {
			t.Errorf("subjectsOverlap(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}
