package natsconn

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dagmm/dagmm/internal/natstest"
)

func TestConnRedialsWhenClosed(t *testing.T) {
	srv := natstest.StartServer(t, natstest.Options{})

	var st natstest.Recorder[State]
	got := make(chan string, 16)
	var setups atomic.Int32
	c, err := Dial(Options{
		URL:      srv.ClientURL(),
		NATS:     []nats.Option{nats.Name("test")},
		OnChange: func(s State, _ error) { st.Add(s) },
		Setup: func(nc *nats.Conn) error {
			setups.Add(1)
			_, err := nc.Subscribe("in", func(m *nats.Msg) { got <- string(m.Data) })
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	pub := natstest.Connect(t, srv.ClientURL())

	// A protocol line over the server's limit: the server refuses it and
	// the client closes the connection for good.
	first := c.NC()
	if err := first.Publish("x."+strings.Repeat("y", 5000), nil); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, func() error {
		if c.NC() == first || !c.NC().IsConnected() {
			return errors.New("no new connection yet")
		}
		return nil
	})
	if !first.IsClosed() {
		t.Errorf("the first connection is %v, want closed", first.Status())
	}
	// The new connection is subscribed again.
	natstest.WaitFor(t, 5*time.Second, func() error {
		if err := pub.Publish("in", []byte("after")); err != nil {
			return err
		}
		select {
		case m := <-got:
			if m == "after" {
				return nil
			}
		case <-time.After(50 * time.Millisecond):
		}
		return errors.New("nothing received on the new connection")
	})
	want := []State{Connected, Closed, Connected}
	if l := st.List(); len(l) != len(want) || l[0] != want[0] || l[1] != want[1] || l[2] != want[2] || setups.Load() != 2 {
		t.Errorf("states %v, %d set-ups; want %v and 2", l, setups.Load(), want)
	}

	// Drain ends it: no new connection after.
	if err := c.Drain(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !c.NC().IsClosed() {
		t.Errorf("after Drain the connection is %v", c.NC().Status())
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(st.List()); n != 3 || setups.Load() != 2 {
		t.Errorf("after Drain: %d changes, %d set-ups; want 3 and 2", n, setups.Load())
	}
}

func TestDialFails(t *testing.T) {
	if _, err := Dial(Options{URL: "nats://127.0.0.1:1"}); err == nil {
		t.Error("Dial to a closed port succeeded")
	}
	srv := natstest.StartServer(t, natstest.Options{})
	boom := errors.New("boom")
	if _, err := Dial(Options{URL: srv.ClientURL(), Setup: func(*nats.Conn) error { return boom }}); !errors.Is(err, boom) {
		t.Errorf("Dial with a failing set-up: %v, want boom", err)
	}
}

func TestDeadLetter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		max       int64
		truncated bool
	}{
		{"small", 10, 1 << 20, false},
		{"just fits", (1 << 20) - headerRoom, 1 << 20, false},
		{"too large", 1 << 20, 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(strings.Repeat("d", tc.size))
			m := DeadLetter("dl", data, tc.max, "metrics.h", "decode", errors.New("bad\r\nthing"))
			if m.Subject != "dl" || m.Header.Get(HeaderReason) != "bad  thing" || m.Header.Get(HeaderReasonKind) != "decode" ||
				m.Header.Get(HeaderSubject) != "metrics.h" {
				t.Errorf("headers %v", m.Header)
			}
			if tc.truncated != (m.Header.Get(HeaderTruncated) != "") || (tc.truncated && len(m.Data) != int(tc.max)-headerRoom) ||
				(!tc.truncated && len(m.Data) != tc.size) {
				t.Errorf("%d bytes, truncated header %q", len(m.Data), m.Header.Get(HeaderTruncated))
			}
		})
	}
}
