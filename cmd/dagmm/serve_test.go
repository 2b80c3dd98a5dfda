package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/serve"
)

func TestServeFlagsPrecedence(t *testing.T) {
	// flag > environment > default.
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(serve.Config) bool
		wantErr string
	}{
		{"default", nil, nil, func(c serve.Config) bool {
			return c.HTTPAddr == ":8080" && c.PollInterval == 2*time.Second && !c.JetStream
		}, ""},
		{"env", nil, map[string]string{"DAGMM_HTTP": ":9000", "DAGMM_JETSTREAM": "true", "DAGMM_MAX_SAMPLES": "7", "DAGMM_NATS_URL": "nats://x:4222"},
			func(c serve.Config) bool {
				return c.HTTPAddr == ":9000" && c.JetStream && c.MaxSamples == 7 && c.NATSURL == "nats://x:4222"
			}, ""},
		{"flag wins", []string{"--http", ":7000", "--jetstream=false"}, map[string]string{"DAGMM_HTTP": ":9000", "DAGMM_JETSTREAM": "true"},
			func(c serve.Config) bool { return c.HTTPAddr == ":7000" && !c.JetStream }, ""},
		{"poll 0 disables", []string{"--poll", "0"}, nil, func(c serve.Config) bool { return c.PollInterval < 0 }, ""},
		{"admin token from env", nil, map[string]string{"DAGMM_ADMIN_TOKEN": "s3cret"}, func(c serve.Config) bool { return c.AdminToken == "s3cret" }, ""},
		{"bad env", nil, map[string]string{"DAGMM_WORKERS": "many"}, nil, "DAGMM_WORKERS"},
		{"bad flag", []string{"--workers", "many"}, nil, nil, "workers"},
		{"extra argument", []string{"model.json"}, nil, nil, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCLIEnv(io.Discard, io.Discard)
			cfg := serve.DefaultConfig()
			fs := newFlagSet(env, "serve", "", "", "")
			poll, _ := serveFlags(fs, &cfg)
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := parseServeFlags(fs, &cfg, poll, tc.args, lookup)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, new(usageError)) {
					t.Fatalf("error %v, want a usage error mentioning %q", err, tc.wantErr)
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
