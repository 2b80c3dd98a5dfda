package main

import (
	"bytes"
	"flag"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/internal/promtest"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve"
)

func TestServeRemoteWriteFlags(t *testing.T) {
	dir := t.TempDir()
	mapping := filepath.Join(dir, "m.json")
	if err := os.WriteFile(mapping, []byte(`{"host_tag":"node","interval":"30s","features":[`+
		`{"name":"cpu_usage","measurement":"cpu","field":"value","kind":"gauge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	checkServeFlags(t, []serveFlagCase{
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
	}, func(fs *flag.FlagSet, cfg *serve.Config) func() error {
		var m string
		remoteWriteFlags(fs, cfg, &m)
		return func() error { return applyRemoteWrite(fs, cfg, m) }
	})
}

func TestServeRemoteWrite(t *testing.T) {
	// dagmm serve --remote-write takes a remote write body at
	// /api/v1/write and scores its vector once the interval's deadline
	// passed; what is not remote write 1.0 gets a 4xx.
	dir := t.TempDir()
	modelPath := filepath.Join(dir, "model.json")
	if err := model.Save(modelPath, modeltest.Metrics4(1)); err != nil {
		t.Fatal(err)
	}
	addr := promtest.FreeAddr(t)
	srv := startCommand(t, runServe, "--model", modelPath, "--nats-port", "-1", "--http", addr, "--poll", "0",
		"--remote-write", "--remote-write-interval", "1s")
	srv.stderr.waitFor(t, `msg=serving`, 10*time.Second)

	var req []byte
	for j, f := range modeltest.Metrics4Features {
		var ts []byte
		for _, l := range [][2]string{{"__name__", "dagmm:" + f}, {"instance", "web-1:9100"}} {
			var lb []byte
			lb = protowire.AppendTag(lb, 1, protowire.BytesType)
			lb = protowire.AppendString(lb, l[0])
			lb = protowire.AppendTag(lb, 2, protowire.BytesType)
			lb = protowire.AppendString(lb, l[1])
			ts = protowire.AppendTag(ts, 1, protowire.BytesType)
			ts = protowire.AppendBytes(ts, lb)
		}
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.Fixed64Type)
		sb = protowire.AppendFixed64(sb, math.Float64bits(float64(10*(j+1))))
		sb = protowire.AppendTag(sb, 2, protowire.VarintType)
		sb = protowire.AppendVarint(sb, uint64(time.Now().UnixMilli()))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, sb)
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, ts)
	}
	post := func(body []byte, contentType string) int {
		r, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/write", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(snappy.Encode(nil, req), "application/x-protobuf"); code != http.StatusNoContent {
		t.Fatalf("remote write: %d, want 204", code)
	}
	if code := post(req, "application/x-protobuf"); code != http.StatusBadRequest {
		t.Errorf("not snappy: %d, want 400", code)
	}
	if code := post(snappy.Encode(nil, req), "text/plain"); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(`dagmm_samples_scored_total{source="http"} 1`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no vector scored after 10s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
}
