package natstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartServer(t *testing.T) {
	store := t.TempDir()
	for _, tc := range []struct {
		name       string
		opts       Options
		jetStream  bool
		storeDir   string // "" when any
		maxPayload int64
		auth       bool
	}{
		{name: "core", maxPayload: 1 << 20},
		{name: "jetstream temp store", opts: Options{JetStream: true}, jetStream: true, maxPayload: 1 << 20},
		{name: "jetstream given store", opts: Options{JetStream: true, StoreDir: store}, jetStream: true, storeDir: store, maxPayload: 1 << 20},
		{name: "max payload", opts: Options{MaxPayload: 8 << 20}, maxPayload: 8 << 20},
		{name: "edit", opts: Options{Edit: func(o *server.Options) { o.Username, o.Password = "u", "p" }}, maxPayload: 1 << 20, auth: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := StartServer(t, tc.opts)
			if got := srv.JetStreamEnabled(); got != tc.jetStream {
				t.Errorf("JetStream enabled %v, want %v", got, tc.jetStream)
			}
			url := srv.ClientURL()
			if tc.auth {
				if nc, err := nats.Connect(url); err == nil {
					nc.Close()
					t.Fatal("connected without the user Edit set")
				}
				url = strings.Replace(url, "nats://", "nats://u:p@", 1)
			}
			nc := Connect(t, url)
			if got := nc.MaxPayload(); got != tc.maxPayload {
				t.Errorf("max payload %d, want %d", got, tc.maxPayload)
			}
			if !tc.jetStream {
				return
			}
			_, js := ConnectJS(t, url)
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "s", Subjects: []string{"s"}}); err != nil {
				t.Fatal(err)
			}
			if tc.storeDir != "" {
				if _, err := os.Stat(filepath.Join(tc.storeDir, "jetstream")); err != nil {
					t.Errorf("store not in %s: %v", tc.storeDir, err)
				}
			}
		})
	}
}

func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		name string
		adds int // values added, one per goroutine
	}{
		{name: "none", adds: 0},
		{name: "one", adds: 1},
		{name: "many", adds: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Recorder[int]
			var wg sync.WaitGroup
			for i := range tc.adds {
				wg.Go(func() { r.Add(i) })
			}
			wg.Wait()
			got := r.List()
			slices.Sort(got)
			if len(got) != tc.adds {
				t.Fatalf("%d values, want %d", len(got), tc.adds)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("values %v, want 0 to %d once each", got, tc.adds-1)
				}
			}
			if tc.adds > 0 {
				got[0] = -1
				if r.List()[0] == -1 {
					t.Error("List shares its slice with the recorder")
				}
			}
		})
	}
}

// fatalCatcher is a testing.TB whose Fatalf keeps the message and stops the
// goroutine, as testing's does, so that a failing WaitFor can be checked.
type fatalCatcher struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *fatalCatcher) Helper() {}

func (r *fatalCatcher) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int // calls of check that fail before it succeeds
		timeout   time.Duration
		wantFatal string
	}{
		{name: "at once", failures: 0, timeout: time.Second},
		{name: "after three", failures: 3, timeout: 5 * time.Second},
		{name: "never", failures: 1 << 30, timeout: 100 * time.Millisecond, wantFatal: "after 100ms: not yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fatalCatcher{TB: t}
			calls := 0
			done := make(chan bool)
			go func() {
				returned := false
				defer func() { done <- returned }()
				WaitFor(r, tc.timeout, func() error {
					calls++
					if calls <= tc.failures {
						return errors.New("not yet")
					}
					return nil
				})
				returned = true
			}()
			returned := <-done
			if returned != (tc.wantFatal == "") || r.fatal != tc.wantFatal {
				t.Errorf("returned %v, fatal %q; want fatal %q", returned, r.fatal, tc.wantFatal)
			}
			if tc.wantFatal == "" && calls != tc.failures+1 {
				t.Errorf("%d calls, want %d", calls, tc.failures+1)
			}
		})
	}
}
