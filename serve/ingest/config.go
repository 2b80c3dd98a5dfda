package ingest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"time"
)

//go:embed config.json
var defaultConfigJSON []byte

// ErrConfig is wrapped by every error about an invalid [Config].
var ErrConfig = errors.New("ingest: invalid config")

// Kind says how a feature's field becomes a value.
type Kind string

// Feature kinds.
const (
	// Gauge takes the field's value as it is.
	Gauge Kind = "gauge"
	// Rate takes a counter's increase per second since the series'
	// previous observation.
	Rate Kind = "rate"
)

// Aggregate says how the values of several series (tag sets) of one host
// are combined into one feature value.
type Aggregate string

// Aggregates.
const (
	Sum  Aggregate = "sum"
	Max  Aggregate = "max"
	Min  Aggregate = "min"
	Mean Aggregate = "mean"
)

// Defaults applied by [Config] for zero fields.
const (
	DefaultHostTag          = "host"
	DefaultInterval         = 10 * time.Second
	DefaultMaxLateIntervals = 3
	DefaultMaxGapIntervals  = 3
	DefaultMaxHosts         = 100_000
	DefaultMaxSeries        = 1024
)

// maxLateLimit bounds MaxLateIntervals, and with it the open intervals and
// the counter history kept per host.
const maxLateLimit = 16

// Config says how an [Assembler] builds vectors from Telegraf measurements.
// Zero fields take the defaults documented on each; [ParseConfig] reads it
// from JSON (durations as strings such as "10s") and [DefaultConfig] returns
// the mapping of the seed's four metrics.
type Config struct {
	// HostTag is the tag naming the host (default "host").
	HostTag string
	// Interval is Telegraf's collection interval (default 10s): a
	// measurement belongs to the interval its timestamp falls in, the
	// timestamp truncated to a multiple of Interval since the Unix epoch.
	// It should equal Telegraf's agent interval, with round_interval = true
	// (Telegraf's default) so that collections start on multiples of it.
	Interval time.Duration
	// Wait is how long, counted in receive time from an interval's first
	// measurement, the interval may stay open waiting for the rest
	// (default Interval). Then it is finalised: emitted if complete,
	// counted as incomplete otherwise.
	Wait time.Duration
	// MaxLateIntervals: a measurement whose interval is more than this many
	// intervals behind the newest interval of its host is late, and so is
	// one for an interval already finalised (default 3, at most 16).
	MaxLateIntervals int
	// MaxGapIntervals: a counter observed again after more than this many
	// intervals gives no rate (its rate restarts from the new value)
	// (default 3).
	MaxGapIntervals int
	// HostTTL: a host that sent nothing for this long is forgotten, its
	// counters included (default (MaxLateIntervals+MaxGapIntervals+1) ×
	// Interval + Wait, after which nothing kept for it would be used).
	HostTTL time.Duration
	// MaxHosts bounds the hosts tracked at once (default 100,000):
	// measurements of further hosts are dropped and counted.
	MaxHosts int
	// MaxSeries bounds the series (tag sets) tracked per host and feature
	// (default 1024): further series are dropped and counted.
	MaxSeries int
	// Features maps feature names to measurements. It may hold more
	// features than a model uses; [NewAssembler] takes those it is asked for.
	Features []Feature
}

// Feature maps one feature to one field of one Telegraf measurement.
//
// The feature's value for a host and interval is
//
//	Offset + Scale × aggregate(value of each series)
//
// where a series is one tag set of the measurement (the host tag left out)
// that passes Tags, and its value is the field (Gauge) or the field's
// increase per second (Rate). For example cpu_usage = 100 − usage_idle is
// Offset 100, Scale −1; disk_busy as a percentage of wall time from the
// io_time counter in milliseconds is Rate with Scale 0.1.
type Feature struct {
	// Name is the feature name, as in the model.
	Name string `json:"name"`
	// Measurement is the measurement name, e.g. "cpu".
	Measurement string `json:"measurement"`
	// Field is the field key, e.g. "usage_idle".
	Field string `json:"field"`
	// Kind is Gauge (the default when empty) or Rate.
	Kind Kind `json:"kind,omitempty"`
	// Scale multiplies the aggregate; 0 means 1.
	Scale float64 `json:"scale,omitempty"`
	// Offset is added after scaling.
	Offset float64 `json:"offset,omitempty"`
	// Aggregate combines the series: Sum, Max, Min or Mean (the default
	// when empty; the mean of one series is its value).
	Aggregate Aggregate `json:"aggregate,omitempty"`
	// Tags filters series by tag value, by tag key.
	Tags map[string]TagFilter `json:"tags,omitempty"`
}

// TagFilter selects the series of a feature by the value of one tag.
// Patterns are globs: '*' matches any run of characters (including none),
// '?' any one character, everything else itself.
type TagFilter struct {
	// Include, when not empty, keeps only series whose tag matches one of
	// the patterns; a series without the tag is left out.
	Include []string `json:"include,omitempty"`
	// Exclude leaves out series whose tag matches one of the patterns.
	Exclude []string `json:"exclude,omitempty"`
}

// DefaultConfig returns the mapping of the seed's four metrics from
// Telegraf's cpu, mem, diskio and net inputs (the file config.json beside
// this package, embedded):
//
//   - cpu_usage = 100 − cpu.usage_idle, tag cpu=cpu-total
//   - mem_usage = mem.used_percent
//   - disk_busy = max over devices of the rate of diskio.io_time (ms per
//     second) × 0.1, a percentage of wall time; devices loop*, ram*, sr*
//     and fd* left out
//   - net_in_bps = sum over interfaces of the rate of net.bytes_recv × 8;
//     interface lo left out
func DefaultConfig() Config {
	c, err := ParseConfig(defaultConfigJSON)
	if err != nil {
		panic("ingest: embedded config.json: " + err.Error()) // a bug, caught by the tests
	}
	return c
}

// DefaultConfigJSON returns the embedded default mapping as JSON, a starting
// point for a file of one's own.
func DefaultConfigJSON() []byte { return bytes.Clone(defaultConfigJSON) }

// configFile is Config as written in JSON.
type configFile struct {
	HostTag          string            `json:"host_tag,omitempty"`
	Interval         string            `json:"interval,omitempty"`
	Wait             string            `json:"wait,omitempty"`
	MaxLateIntervals int               `json:"max_late_intervals,omitempty"`
	MaxGapIntervals  int               `json:"max_gap_intervals,omitempty"`
	HostTTL          string            `json:"host_ttl,omitempty"`
	MaxHosts         int               `json:"max_hosts,omitempty"`
	MaxSeries        int               `json:"max_series,omitempty"`
	Features         []json.RawMessage `json:"features"`
}

// ParseConfig reads a Config from JSON and validates it. Unknown members
// are errors, so that a misspelt option does not pass silently. Durations
// are strings such as "10s" or "1m30s".
func ParseConfig(data []byte) (Config, error) {
	var f configFile
	if err := strictJSON(data, &f); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c := Config{
		HostTag:          f.HostTag,
		MaxLateIntervals: f.MaxLateIntervals,
		MaxGapIntervals:  f.MaxGapIntervals,
		MaxHosts:         f.MaxHosts,
		MaxSeries:        f.MaxSeries,
	}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"interval", f.Interval, &c.Interval},
		{"wait", f.Wait, &c.Wait},
		{"host_ttl", f.HostTTL, &c.HostTTL},
	} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %s: %v", ErrConfig, d.name, err)
		}
		*d.dst = v
	}
	for i, raw := range f.Features {
		var ft Feature
		if err := strictJSON(raw, &ft); err != nil {
			return Config{}, fmt.Errorf("%w: features[%d]: %v", ErrConfig, i, err)
		}
		c.Features = append(c.Features, ft)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads a Config from a JSON file; see [ParseConfig].
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("ingest: load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// strictJSON decodes one JSON value, refusing unknown members and trailing
// data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.HostTag == "" {
		c.HostTag = DefaultHostTag
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Wait == 0 {
		c.Wait = c.Interval
	}
	if c.MaxLateIntervals == 0 {
		c.MaxLateIntervals = DefaultMaxLateIntervals
	}
	if c.MaxGapIntervals == 0 {
		c.MaxGapIntervals = DefaultMaxGapIntervals
	}
	if c.HostTTL == 0 {
		c.HostTTL = time.Duration(c.MaxLateIntervals+c.MaxGapIntervals+1)*c.Interval + c.Wait
	}
	if c.MaxHosts == 0 {
		c.MaxHosts = DefaultMaxHosts
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = DefaultMaxSeries
	}
	return c
}

// Validate reports the first problem of c (with defaults applied), naming
// the option, or for a feature its position, name and field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Interval < time.Millisecond || c.Interval > 24*time.Hour:
		return fmt.Errorf("%w: interval %v is outside 1ms..24h", ErrConfig, c.Interval)
	case c.Wait < 0:
		return fmt.Errorf("%w: wait %v is negative", ErrConfig, c.Wait)
	case c.MaxLateIntervals < 0 || c.MaxLateIntervals > maxLateLimit:
		return fmt.Errorf("%w: max_late_intervals %d is outside 0..%d", ErrConfig, c.MaxLateIntervals, maxLateLimit)
	case c.MaxGapIntervals < 1:
		return fmt.Errorf("%w: max_gap_intervals %d is below 1", ErrConfig, c.MaxGapIntervals)
	case c.HostTTL < 0:
		return fmt.Errorf("%w: host_ttl %v is negative", ErrConfig, c.HostTTL)
	case c.MaxHosts < 0:
		return fmt.Errorf("%w: max_hosts %d is negative", ErrConfig, c.MaxHosts)
	case c.MaxSeries < 0:
		return fmt.Errorf("%w: max_series %d is negative", ErrConfig, c.MaxSeries)
	case len(c.Features) == 0:
		return fmt.Errorf("%w: no features", ErrConfig)
	}
	names := make(map[string]int, len(c.Features))
	for i, f := range c.Features {
		bad := func(field, format string, a ...any) error {
			return fmt.Errorf("%w: features[%d] %q: %s: %s", ErrConfig, i, f.Name, field, fmt.Sprintf(format, a...))
		}
		if f.Name == "" {
			return bad("name", "empty")
		}
		if j, dup := names[f.Name]; dup {
			return bad("name", "also the name of features[%d]", j)
		}
		names[f.Name] = i
		if f.Measurement == "" {
			return bad("measurement", "empty")
		}
		if f.Field == "" {
			return bad("field", "empty")
		}
		switch f.Kind {
		case "", Gauge, Rate:
		default:
			return bad("kind", "unknown kind %q (want gauge or rate)", f.Kind)
		}
		switch f.Aggregate {
		case "", Sum, Max, Min, Mean:
		default:
			return bad("aggregate", "unknown aggregate %q (want sum, max, min or mean)", f.Aggregate)
		}
		if math.IsNaN(f.Scale) || math.IsInf(f.Scale, 0) {
			return bad("scale", "%v is not finite", f.Scale)
		}
		if math.IsNaN(f.Offset) || math.IsInf(f.Offset, 0) {
			return bad("offset", "%v is not finite", f.Offset)
		}
		for key, tf := range f.Tags {
			if key == "" {
				return bad("tags", "empty tag key")
			}
			if key == c.HostTag {
				return bad("tags", "the host tag %q cannot be filtered; every host has its own vectors", key)
			}
			if len(tf.Include) == 0 && len(tf.Exclude) == 0 {
				return bad("tags."+key, "neither include nor exclude")
			}
			for _, p := range append(append([]string(nil), tf.Include...), tf.Exclude...) {
				if p == "" {
					return bad("tags."+key, "empty pattern")
				}
			}
		}
	}
	return nil
}

// glob compiles a pattern of '*' and '?' into an anchored regexp.
func glob(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String()) // cannot fail: every other rune is quoted
}
