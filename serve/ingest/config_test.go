package ingest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range c.Features {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, seedFeatures) || c.Interval != 10*time.Second || c.HostTag != "host" {
		t.Errorf("default config %+v", c)
	}
	cpu := c.Features[0]
	if cpu.Measurement != "cpu" || cpu.Field != "usage_idle" || cpu.Offset != 100 || cpu.Scale != -1 || !slices.Equal(cpu.Tags["cpu"].Include, []string{"cpu-total"}) {
		t.Errorf("cpu_usage mapping %+v", cpu)
	}
	disk := c.Features[2]
	if disk.Kind != Rate || disk.Aggregate != Max || disk.Scale != 0.1 || !slices.Contains(disk.Tags["name"].Exclude, "loop*") {
		t.Errorf("disk_busy mapping %+v", disk)
	}
	// DefaultConfigJSON is a copy.
	j := DefaultConfigJSON()
	j[0] = 'x'
	if DefaultConfigJSON()[0] != '{' {
		t.Error("DefaultConfigJSON shares the embedded bytes")
	}
}

func TestParseConfigErrors(t *testing.T) {
	feature := func(extra string) string {
		return `{"features":[{"name":"mem_usage","measurement":"mem","field":"used_percent"},{"name":"disk_busy","measurement":"diskio","field":"io_time"` + extra + `}]}`
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"not JSON", `{"features":`, "unexpected EOF"},
		{"unknown option", `{"intervall":"10s","features":[]}`, `unknown field "intervall"`},
		{"unknown feature field", feature(`,"agregate":"max"`), `features[1]: json: unknown field "agregate"`},
		{"bad duration", `{"interval":"10","features":[]}`, "interval: time: missing unit"},
		{"no features", `{}`, "no features"},
		{"short interval", `{"interval":"1us","features":[{"name":"a","measurement":"m","field":"f"}]}`, "interval 1µs is outside 1ms..24h"},
		{"lateness", `{"max_late_intervals":17,"features":[{"name":"a","measurement":"m","field":"f"}]}`, "max_late_intervals 17 is outside 0..16"},
		{"kind", feature(`,"kind":"counter"`), `features[1] "disk_busy": kind: unknown kind "counter" (want gauge or rate)`},
		{"aggregate", feature(`,"aggregate":"maxx"`), `features[1] "disk_busy": aggregate: unknown aggregate "maxx"`},
		{"empty name", `{"features":[{"measurement":"m","field":"f"}]}`, `features[0] "": name: empty`},
		{"no measurement", `{"features":[{"name":"a","field":"f"}]}`, `features[0] "a": measurement: empty`},
		{"no field", `{"features":[{"name":"a","measurement":"m"}]}`, `features[0] "a": field: empty`},
		{"duplicate", `{"features":[{"name":"a","measurement":"m","field":"f"},{"name":"a","measurement":"m","field":"g"}]}`, `features[1] "a": name: also the name of features[0]`},
		{"empty filter", feature(`,"tags":{"name":{}}`), `features[1] "disk_busy": tags.name: neither include nor exclude`},
		{"empty pattern", feature(`,"tags":{"name":{"exclude":[""]}}`), `tags.name: empty pattern`},
		{"host filter", feature(`,"tags":{"host":{"include":["a*"]}}`), `the host tag "host" cannot be filtered`},
		{"trailing", feature(``) + `{}`, "unexpected data after the JSON value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaultsAndFile(t *testing.T) {
	in := `{"interval":"30s","features":[{"name":"load","measurement":"system","field":"load1"}]}`
	path := filepath.Join(t.TempDir(), "mapping.json")
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAssembler(c, []string{"load"})
	if err != nil {
		t.Fatal(err)
	}
	got := a.Config()
	// HostTTL: (3 + 3 + 1) × 30 s + 30 s.
	if got.Interval != 30*time.Second || got.Wait != 30*time.Second || got.HostTTL != 240*time.Second ||
		got.MaxLateIntervals != 3 || got.MaxGapIntervals != 3 || got.MaxHosts != DefaultMaxHosts || got.MaxSeries != DefaultMaxSeries || got.HostTag != "host" {
		t.Errorf("defaults %+v", got)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("missing file: %v", err)
	}
	// The embedded file is what DefaultConfig parses.
	var raw map[string]any
	if err := json.Unmarshal(DefaultConfigJSON(), &raw); err != nil || raw["interval"] != "10s" {
		t.Errorf("DefaultConfigJSON: %v %v", raw, err)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"loop*", "loop0", true},
		{"loop*", "loop", true},
		{"loop*", "xloop0", false},
		{"lo", "lo", true},
		{"lo", "lo0", false},
		{"sd?", "sda", true},
		{"sd?", "sda1", false},
		{"*", "", true},
		{"a.b", "axb", false}, // '.' is literal
		{"dm-*", "dm-0", true},
		{"/dev/*", "/dev/mapper/x", true}, // '*' crosses '/'
		{"[a]", "[a]", true},
	}
	for _, tc := range tests {
		if got := glob(tc.pattern).MatchString(tc.value); got != tc.want {
			t.Errorf("glob %q on %q = %v, want %v", tc.pattern, tc.value, got, tc.want)
		}
	}
}

// Filters, aggregates, scale and offset on one host's series.
func TestFeatureMapping(t *testing.T) {
	cfg := Config{
		Interval: 10 * time.Second,
		Features: []Feature{
			{Name: "sum", Measurement: "disk", Field: "used", Aggregate: Sum},
			{Name: "max", Measurement: "disk", Field: "used", Aggregate: Max},
			{Name: "min", Measurement: "disk", Field: "used", Aggregate: Min},
			{Name: "mean", Measurement: "disk", Field: "used", Scale: 2, Offset: 1}, // 1 + 2 × mean
			{Name: "only_sd", Measurement: "disk", Field: "used", Aggregate: Sum, Tags: map[string]TagFilter{"device": {Include: []string{"sd*"}}}},
			{Name: "not_sda", Measurement: "disk", Field: "used", Aggregate: Sum, Tags: map[string]TagFilter{"device": {Include: []string{"sd*"}, Exclude: []string{"sda"}}}},
			{Name: "rw", Measurement: "disk", Field: "used", Aggregate: Sum, Tags: map[string]TagFilter{"mode": {Exclude: []string{"ro"}}}}, // no mode tag: kept
		},
	}
	names := []string{"sum", "max", "min", "mean", "only_sd", "not_sda", "rw"}
	a, err := NewAssembler(cfg, names)
	if err != nil {
		t.Fatal(err)
	}
	var got []Vector
	for _, d := range []struct {
		dev  string
		used float64
	}{{"sda", 10}, {"sdb", 20}, {"nvme0n1", 60}} {
		m := Measurement{Name: "disk", Tags: []Tag{{"device", d.dev}, {"host", "h"}}, Fields: []Field{{"used", d.used}}, Time: t0}
		got = append(got, a.Add(m, t0)...)
	}
	got = append(got, a.Drain()...)
	want := []float64{90, 60, 10, 1 + 2*30, 30, 20, 90}
	if len(got) != 1 || !slices.Equal(got[0].Values, want) {
		t.Errorf("got %v, want one vector %v", got, want)
	}
}
