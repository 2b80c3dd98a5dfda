package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/dagmm/dagmm/internal/natstest"
)

// TestNATSAuthFlags runs every command that connects to NATS against a
// server that wants a user and password: with the right ones (flags or
// DAGMM_NATS_* variables) the command connects, with a wrong password it
// stops with the server's refusal. internal/natsauth tests each way of
// authenticating; this shows the flags reach every command's connection.
func TestNATSAuthFlags(t *testing.T) {
	srv := natstest.StartServer(t, natstest.Options{JetStream: true, Edit: func(o *server.Options) {
		o.Username, o.Password = "dagmm", "pa55"
	}})
	url := "--nats-url=" + srv.ClientURL()
	model := modelFile(t, t.TempDir(), 1)
	commands := []struct {
		name string
		run  func(context.Context, *cliEnv, []string) error
		args []string
		up   string // logged once it is connected and set up
	}{
		{"serve", runServe, []string{url, "--model", model, "--http", "127.0.0.1:0", "--jetstream"}, "msg=serving"},
		{"serve --fleet", runServe, []string{url, "--fleet", "--model", model, "--http", "127.0.0.1:0"}, "msg=serving"},
		{"trainer", runTrainer, []string{url, "--schedule"}, `msg="trainer running"`},
		{"collect", runCollect, []string{url, "-o", t.TempDir()}, "msg=collecting"},
	}
	for _, c := range commands {
		t.Run(c.name+" wrong password", func(t *testing.T) {
			b := startCommand(t, c.run, append(c.args, "--nats-user=dagmm", "--nats-password=guess")...)
			select {
			case err := <-b.done:
				b.done <- err
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
					t.Fatalf("error %v; want the server's authorization violation", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10s after a refused connection")
			}
		})
		t.Run(c.name+" right password", func(t *testing.T) {
			t.Setenv("DAGMM_NATS_PASSWORD", "pa55")
			b := startCommand(t, c.run, append(c.args, "--nats-user=dagmm")...)
			waitLog(t, b, c.up)
			if err := b.stop(t); err != nil {
				t.Fatalf("stopped with %v\n%s", err, b.stderr.String())
			}
		})
	}
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"list", url, "--nats-user=dagmm", "--nats-password=pa55"}, 0, ""}, // the registry the trainer made
		{[]string{"list", url, "--nats-user=dagmm", "--nats-password=guess"}, 1, "Authorization Violation"},
		{[]string{"list", url, "--nats-token=t", "--nats-user=dagmm"}, 1, "a token and a user: give one way"},
		{[]string{"list", url, "--nats-tls-key=k.pem"}, 1, "a TLS client key without its certificate"},
		{[]string{"list", url, "--nats-creds=/nonexistent.creds"}, 1, "creds file: open /nonexistent.creds"},
	} {
		code, _, stderr := dagmm(t, append([]string{"models"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.err) {
			t.Errorf("dagmm models %q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.err)
		}
	}
	for _, args := range [][]string{
		{"serve", "--model", model, "--nats-token=t"},
		{"collect", "-o", t.TempDir(), "--nats-token=t"},
	} {
		code, _, stderr := dagmm(t, args...)
		if code != 2 || !strings.Contains(stderr, "not the embedded one") {
			t.Errorf("dagmm %q: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}

// waitLog waits until the command b logs want, failing if it returns
// first.
func waitLog(t *testing.T, b *background, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.stderr.String(), want) {
		select {
		case err := <-b.done:
			b.done <- err
			t.Fatalf("command returned %v before connecting\n%s", err, b.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q logged after 10s:\n%s", want, b.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
