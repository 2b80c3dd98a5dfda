package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/serve"
)

func TestServeFlagsPrecedence(t *testing.T) {
	// flag > environment > default.
	checkServeFlags(t, []serveFlagCase{
		{"default", nil, nil, func(c serve.Config) bool {
			return c.HTTP.Addr == ":8080" && c.Model.PollInterval == 2*time.Second && !c.JetStream.Enabled
		}, ""},
		{"env", nil, map[string]string{"DAGMM_HTTP": ":9000", "DAGMM_JETSTREAM": "true", "DAGMM_MAX_SAMPLES": "7", "DAGMM_NATS_URL": "nats://x:4222"},
			func(c serve.Config) bool {
				return c.HTTP.Addr == ":9000" && c.JetStream.Enabled && c.Scoring.MaxSamples == 7 && c.NATS.URL == "nats://x:4222"
			}, ""},
		{"flag wins", []string{"--http", ":7000", "--jetstream=false"}, map[string]string{"DAGMM_HTTP": ":9000", "DAGMM_JETSTREAM": "true"},
			func(c serve.Config) bool { return c.HTTP.Addr == ":7000" && !c.JetStream.Enabled }, ""},
		{"poll 0 disables", []string{"--poll", "0"}, nil, func(c serve.Config) bool { return c.Model.PollInterval < 0 }, ""},
		{"derived in-flight bound", nil, nil, func(c serve.Config) bool { return c.HTTP.MaxInFlightBytes == 0 }, ""},
		{"in-flight bound from env", nil, map[string]string{"DAGMM_MAX_INFLIGHT_BYTES": "256MiB"}, func(c serve.Config) bool { return c.HTTP.MaxInFlightBytes == 256<<20 }, ""},
		{"in-flight bound flag", []string{"--max-inflight-bytes", "100000000"}, nil, func(c serve.Config) bool { return c.HTTP.MaxInFlightBytes == 1e8 }, ""},
		{"bad in-flight bound", []string{"--max-inflight-bytes", "lots"}, nil, nil, "max-inflight-bytes"},
		{"admin token from env", nil, map[string]string{"DAGMM_ADMIN_TOKEN": "s3cret"}, func(c serve.Config) bool { return c.HTTP.AdminToken == "s3cret" }, ""},
		{"fleet defaults", []string{"--fleet"}, nil, func(c serve.Config) bool {
			f := c.Fleet
			return f.Enabled && f.Registry.Objects == "dagmm-models" && f.Registry.Index == "dagmm-registry" && f.Models.FleetKey == "fleet" &&
				f.Models.CacheSize == 0 && f.Models.CacheBytes == 0 && f.History.Stream == "DAGMM_METRICS" && f.History.MaxMsgsPerSubject == 1000 && f.MarksSubject == "dagmm.marks"
		}, ""},
		{"fleet from env", []string{"--model-cache", "3"}, map[string]string{"DAGMM_FLEET": "true", "DAGMM_MODEL_CACHE": "9", "DAGMM_FLEET_MODEL": "group-a", "DAGMM_HISTORY_MAX": "500", "DAGMM_MODEL_CACHE_BYTES": "512MiB"},
			func(c serve.Config) bool {
				f := c.Fleet
				return f.Enabled && f.Models.CacheSize == 3 && f.Models.CacheBytes == 512<<20 && f.Models.FleetKey == "group-a" && f.History.MaxMsgsPerSubject == 500
			}, ""},
		{"partitions from env", []string{"--jetstream"}, map[string]string{"DAGMM_PARTITIONS": "4", "DAGMM_PARTITION": "3"},
			func(c serve.Config) bool {
				d := c.WithDefaults()
				return c.NATS.Partitions == 4 && c.NATS.Partition == 3 && d.Validate() == nil
			}, ""},
		{"partition flag wins", []string{"--partition", "1"}, map[string]string{"DAGMM_PARTITIONS": "2", "DAGMM_PARTITION": "0"},
			func(c serve.Config) bool { return c.NATS.Partitions == 2 && c.NATS.Partition == 1 }, ""},
		{"bad env", nil, map[string]string{"DAGMM_WORKERS": "many"}, nil, "DAGMM_WORKERS"},
		{"bad flag", []string{"--workers", "many"}, nil, nil, "workers"},
		{"extra argument", []string{"model.json"}, nil, nil, "unexpected arguments"},
	}, nil)
}

// serveFlagCase is a row of the tables that check how dagmm serve's flags
// and DAGMM_* variables set its configuration: check the configuration
// parsed, or the error wanted.
type serveFlagCase struct {
	name    string
	args    []string
	env     map[string]string
	check   func(serve.Config) bool
	wantErr string
}

// checkServeFlags parses each case's arguments and variables with serve's
// flags, plus, when extra is not nil, the flags it registers, whose apply
// then completes the configuration (the Telegraf and remote write inputs').
// A parsing error must be a usage error.
func checkServeFlags(t *testing.T, cases []serveFlagCase, extra func(*flag.FlagSet, *serve.Config) (apply func() error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newCLIEnv(io.Discard, io.Discard)
			cfg := serve.DefaultConfig()
			fs := newFlagSet(env, "serve", "", "", "")
			poll, _ := serveFlags(fs, &cfg)
			var apply func() error
			if extra != nil {
				apply = extra(fs, &cfg)
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := parseServeFlags(fs, &cfg, poll, tc.args, lookup)
			switch {
			case err != nil && !errors.As(err, new(usageError)):
				t.Fatalf("error %v is not a usage error", err)
			case err == nil && apply != nil:
				err = apply()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

func TestServeHelp(t *testing.T) {
	var out bytes.Buffer
	env := newCLIEnv(&out, io.Discard)
	err := runServe(t.Context(), env, []string{"--help"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	// Every flag is documented with its environment variable, and there
	// are examples.
	cfg := serve.DefaultConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	serveFlags(fs, &cfg)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(help, "-"+f.Name) || !strings.Contains(help, "$"+envName(f.Name)) {
			t.Errorf("--help does not document -%s and $%s", f.Name, envName(f.Name))
		}
	})
	if !strings.Contains(help, "Examples:") || !strings.Contains(help, "SIGHUP") {
		t.Errorf("--help lacks examples or the SIGHUP note:\n%s", help)
	}
	if err := runServe(t.Context(), env, nil); err == nil || !strings.Contains(err.Error(), "model is required") {
		t.Errorf("no model: %v", err)
	}
}

// TestServePartitionErrors: a bad partitioning is refused with its reason
// before anything starts (no NATS server here: fleet mode would start one).
func TestServePartitionErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fleet", "--jetstream", "--partitions", "2", "--partition", "2"}, "partition 2 out of range: want 0 to 1 with 2 partitions"},
		{[]string{"--fleet", "--partitions", "2"}, "durable mode"},
		{[]string{"--fleet", "--jetstream", "--partition", "1"}, "partition 1 without partitions"},
		{[]string{"--fleet", "--jetstream", "--telegraf", "--partitions", "3"}, "not with Telegraf"},
	} {
		err := runServe(t.Context(), newCLIEnv(io.Discard, io.Discard), append(tc.args, "--nats-port", "-1", "--http", "127.0.0.1:0"))
		if err == nil || !errors.Is(err, serve.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a config error with %q", tc.args, err, tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"-1", -1, ""},
		{"8388608", 8 << 20, ""},
		{"512MiB", 512 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"64 KiB", 64 << 10, ""},
		{"2GB", 2e9, ""},
		{"100B", 100, ""},
		{"1.5GiB", 0, "not a size"},
		{"GiB", 0, "not a size"},
		{"lots", 0, "not a size"},
		{"9000000000GiB", 0, "too large"},
	} {
		var got int64
		err := byteSize{&got}.Set(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %d %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	none := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name   string
		flag   int64
		lookup func(string) (string, bool)
		want   int64 // -1: whatever the cgroup says
		source string
	}{
		{"flag", 300 << 20, none, 300 << 20, "--memory-limit"},
		{"off", -1, none, math.MaxInt64, "none"},
		{"GOMEMLIMIT kept", 0, func(k string) (string, bool) { return "123MiB", k == "GOMEMLIMIT" }, 300 << 20, "GOMEMLIMIT"},
		{"cgroup", 0, none, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "GOMEMLIMIT kept" {
				debug.SetMemoryLimit(300 << 20) // what the runtime would have set from GOMEMLIMIT
			}
			limit, source, err := setMemoryLimit(tc.flag, tc.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if got := debug.SetMemoryLimit(-1); got != limit {
				t.Errorf("returned %d, the runtime has %d", limit, got)
			}
			if tc.want >= 0 && (limit != tc.want || !strings.HasPrefix(source, tc.source)) {
				t.Errorf("limit %d from %q, want %d from %q", limit, source, tc.want, tc.source)
			}
			if tc.want < 0 && source != "cgroup" && !strings.HasPrefix(source, "none") {
				t.Errorf("limit %d from %q", limit, source)
			}
			t.Logf("%d from %s", limit, source)
		})
	}
}
