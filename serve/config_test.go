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
	c = Config{Subject: "m.*", Workers: 3, PollInterval: -1}.WithDefaults()
	if c.Subject != "m.*" || c.Workers != 3 || c.PollInterval != -1 || c.Batch != 1024 {
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
		{"wildcard subject", func(c *Config) { c.Subject = "metrics.*.cpu" }, ""},
		{"jetstream", func(c *Config) { c.JetStream = true; c.EventStream = "EV" }, ""},
		{"no nats skips subjects", func(c *Config) { c.NoNATS = true; c.Subject = "bad subject" }, ""},
		{"empty subject token", func(c *Config) { c.Subject = "metrics..x" }, "subject"},
		{"subject space", func(c *Config) { c.Subject = "metrics x" }, "white space"},
		{"gt not last", func(c *Config) { c.Subject = "metrics.>.x" }, "last token"},
		{"mixed wildcard", func(c *Config) { c.Subject = "metrics.a*" }, "mixes"},
		{"wildcard prefix", func(c *Config) { c.AnomalyPrefix = "anomalies.*" }, "anomaly prefix"},
		{"long prefix", func(c *Config) { c.ScorePrefix = strings.Repeat("s", 1025) }, "score prefix"},
		{"loop", func(c *Config) { c.Subject = ">" }, "own events"},
		{"score loop", func(c *Config) { c.Subject = "scores.>"; c.PublishScores = true }, "own events"},
		{"dead letter loop", func(c *Config) { c.Subject = "dagmm.*" }, "own events"},
		{"stream name", func(c *Config) { c.JetStream = true; c.Stream = "a.b" }, "stream"},
		{"consumer name", func(c *Config) { c.JetStream = true; c.Consumer = "" }, "consumer"},
		{"max deliver", func(c *Config) { c.JetStream = true; c.MaxDeliver = -5 }, "max deliver"},
		{"same streams", func(c *Config) { c.JetStream = true; c.EventStream = c.Stream }, "event stream"},
		{"port", func(c *Config) { c.EmbeddedPort = 70000 }, "embedded port"},
		{"host", func(c *Config) { c.EmbeddedHost = "not an ip" }, "embedded host"},
		{"workers", func(c *Config) { c.Workers = -1 }, "workers"},
		{"body", func(c *Config) { c.MaxBodyBytes = -1 }, "max body bytes"},
		{"timeout", func(c *Config) { c.ReadTimeout = -time.Second }, "read timeout"},
		{"http addr", func(c *Config) { c.HTTPAddr = "8080" }, "http address"},
		{"token", func(c *Config) { c.AdminToken = "a b" }, "admin token"},
		{"in-flight below body", func(c *Config) { c.MaxInFlightBytes = c.MaxBodyBytes - 1 }, "max in-flight bytes"},
		{"in-flight equal to body", func(c *Config) { c.MaxInFlightBytes = c.MaxBodyBytes }, ""},
		{"model name", func(c *Config) { c.ModelName = "a/b" }, "model name"},
		{"explain method", func(c *Config) { c.ExplainMethod = "magic" }, "explain method"},
		{"explain share", func(c *Config) { c.ExplainMethod = "share" }, ""},
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
