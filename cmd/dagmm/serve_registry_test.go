package main

import (
	"strings"
	"testing"
)

// TestServeModelFromRegistry publishes a model with dagmm models, serves it
// with dagmm serve --model-from-registry and publishes another: the service
// takes it up without a restart.
func TestServeModelFromRegistry(t *testing.T) {
	url := runNATSServer(t, true)
	dir := t.TempDir()
	nu := "--nats-url=" + url
	if code, _, stderr := dagmm(t, "models", "publish", "prod", modelFile(t, dir, 1), nu); code != 0 {
		t.Fatalf("models publish: %s", stderr)
	}
	addr := freeAddr(t)
	b := startCommand(t, runServe, nu, "--model-from-registry", "prod", "--http", addr, "--subject", "metrics.>")
	if v := waitVersion(t, addr, ""); v != "1" {
		t.Fatalf("serving version %s, want 1", v)
	}
	if code, _, stderr := dagmm(t, "models", "publish", "prod", modelFile(t, dir, 2), nu); code != 0 {
		t.Fatalf("models publish: %s", stderr)
	}
	if v := waitVersion(t, addr, "1"); v != "2" {
		t.Fatalf("serving version %s after a publish, want 2", v)
	}
	if err := b.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model-from-registry", "prod", "--model", "m.json", nu}, 2, "not with --model or --fleet"},
		{[]string{"--model-from-registry", "prod"}, 2, "--model-from-registry needs --nats-url"},
		{[]string{"--model-from-registry", "staging", nu, "--http", "127.0.0.1:0"}, 1, `no model for host "staging"`},
	} {
		code, _, stderr := dagmm(t, append([]string{"serve"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("dagmm serve %q: exit %d, %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
