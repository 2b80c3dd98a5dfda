package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// TestServeReloadsOnSIGHUP runs dagmm serve in this process, replaces its
// model file and sends the process SIGHUP: the new model must be served.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.json")
	if err := model.Save(path, modeltest.Metrics4(1)); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, newCLIEnv(io.Discard, io.Discard),
			[]string{"--model", path, "--no-nats", "--poll", "0", "--http", addr, "--log-level", "error"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	first := waitVersion(t, addr, "")
	if err := model.Save(path, modeltest.Metrics4(2)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if second := waitVersion(t, addr, first); second == first {
		t.Fatalf("still serving version %s after SIGHUP", first)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitVersion polls GET /v1/model until it answers with a version other than
// not, and returns it.
func waitVersion(t *testing.T, addr, not string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1/model")
		if err == nil {
			var info struct{ Version string }
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err == nil && info.Version != "" && info.Version != not {
				return info.Version
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no model version other than %q from %s", not, addr)
	return ""
}
