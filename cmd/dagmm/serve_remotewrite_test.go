package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/serve"
)

func TestServeRemoteWriteFlags(t *testing.T) {
	dir := t.TempDir()
	mapping := filepath.Join(dir, "m.json")
	if err := os.WriteFile(mapping, []byte(`{"host_tag":"node","interval":"30s","features":[`+
		`{"name":"cpu_usage","measurement":"cpu","field":"value","kind":"gauge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(serve.Config) bool
		wantErr string
	}{
		{"off", nil, nil, func(c serve.Config) bool { return !c.RemoteWrite.Enabled }, ""},
		{"defaults", []string{"--remote-write"}, nil, func(c serve.Config) bool {
			rw := c.RemoteWrite
			return rw.Enabled && rw.HostLabel == "instance" && rw.Interval == 15*time.Second && rw.Mapping == nil && rw.MaxDecodedBytes == 32<<20
		}, ""},
		{"env", nil, map[string]string{"DAGMM_REMOTE_WRITE": "true", "DAGMM_REMOTE_WRITE_HOST_LABEL": "node", "DAGMM_REMOTE_WRITE_INTERVAL": "1m", "DAGMM_REMOTE_WRITE_MAX_DECODED": "1MiB"},
			func(c serve.Config) bool {
				rw := c.RemoteWrite
				return rw.Enabled && rw.HostLabel == "node" && rw.Interval == time.Minute && rw.MaxDecodedBytes == 1<<20
			}, ""},
		{"mapping", []string{"--remote-write", "--remote-write-mapping", mapping}, nil, func(c serve.Config) bool {
			m := c.RemoteWrite.Mapping
			return m != nil && m.HostTag == "node" && m.Interval == 30*time.Second && len(m.Features) == 1
		}, ""},
		{"mapping and interval", []string{"--remote-write", "--remote-write-mapping", mapping, "--remote-write-interval", "5s"}, nil, func(c serve.Config) bool {
			return c.RemoteWrite.Mapping.Interval == 5*time.Second
		}, ""},
		{"interval without remote write", []string{"--remote-write-interval", "5s"}, nil, nil, "--remote-write-interval needs --remote-write"},
		{"missing mapping", []string{"--remote-write", "--remote-write-mapping", "/nonexistent/m.json"}, nil, nil, "/nonexistent/m.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCLIEnv(io.Discard, io.Discard)
			cfg := serve.DefaultConfig()
			fs := newFlagSet(env, "serve", "", "", "")
			poll, _ := serveFlags(fs, &cfg)
			var m string
			remoteWriteFlags(fs, &cfg, &m)
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := parseServeFlags(fs, &cfg, poll, tc.args, lookup)
			if err == nil {
				err = applyRemoteWrite(fs, &cfg, m)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("config %+v", cfg.RemoteWrite)
			}
		})
	}
}
