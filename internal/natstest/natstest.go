// Package natstest runs a real in-process nats-server for tests, connects
// clients to it, records what callbacks report, and polls until a
// condition holds. Everything it starts is stopped by the test's cleanup.
package natstest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	srvtest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options are the server settings a test chooses; the zero value is a
// core NATS server on a free port with the test defaults of
// nats-server/v2/test.
type Options struct {
	// Port is the client port; 0 picks a free one.
	Port int
	// JetStream turns JetStream on, with its store in StoreDir.
	JetStream bool
	// StoreDir is the JetStream store; empty means a new t.TempDir().
	StoreDir string
	// MaxPayload is the largest message in bytes; 0 keeps the default.
	MaxPayload int32
	// Edit, if set, changes the server options last (users, limits).
	Edit func(*server.Options)
}

// StartServer starts a nats-server with o and returns it; its client URL
// is srv.ClientURL(). The server is shut down, and waited for, when the
// test ends.
func StartServer(t testing.TB, o Options) *server.Server {
	t.Helper()
	opts := srvtest.DefaultTestOptions
	opts.Port = o.Port
	if o.Port == 0 {
		opts.Port = -1
	}
	if o.JetStream {
		opts.JetStream, opts.StoreDir = true, o.StoreDir
		if o.StoreDir == "" {
			opts.StoreDir = t.TempDir()
		}
	}
	if o.MaxPayload != 0 {
		opts.MaxPayload = o.MaxPayload
	}
	if o.Edit != nil {
		o.Edit(&opts)
	}
	srv := srvtest.RunServer(&opts)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// Connect connects a client to url with opts, failing t if it cannot; the
// connection is closed when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ConnectJS is [Connect] that also returns the connection's JetStream
// context.
func ConnectJS(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := Connect(t, url, opts...)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Recorder collects the values a callback reports, such as a client's
// changes of state or a worker's results, from any goroutine. The zero
// value is empty and ready; it is safe for concurrent use.
type Recorder[T any] struct {
	mu   sync.Mutex
	list []T
}

// Add appends v; as a method value it is the callback to record.
func (r *Recorder[T]) Add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, v)
}

// List returns a copy of the values added so far, in the order added.
func (r *Recorder[T]) List() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// PollInterval is how long [WaitFor] sleeps between two checks.
const PollInterval = 20 * time.Millisecond

// WaitFor calls check every [PollInterval] until it returns nil. If it
// still fails once timeout has passed, WaitFor fails t with the last
// error, from the goroutine that called it (as t.Fatal does).
func WaitFor(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(PollInterval)
	}
}
