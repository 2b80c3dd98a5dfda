// Package natsconn keeps a NATS client connection up for a long-running
// consumer, and builds the dead letters dagmm publishes.
//
// nats.go reconnects by itself when the link drops, but it closes a
// connection for good on some server errors (a protocol line over the
// server's limit, an unknown protocol error, an authorization failure on
// reconnect); a closed connection is never used again. A [Conn] reconnects
// without limit, with backoff, and when the client closes its connection it
// dials a new one and runs the caller's set-up (the subscriptions) on it,
// so that nothing but the caller's own [Conn.Close] or [Conn.Drain] ends
// the consumer.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// State is what happened to the connection.
type State int

// States reported to [Options.OnChange].
const (
	// Connected: a connection is up and set up (the first, or one dialled
	// after a close).
	Connected State = iota
	// Disconnected: the link dropped; the client reconnects by itself.
	Disconnected
	// Reconnected: the client reconnected after Disconnected.
	Reconnected
	// Closed: the client closed the connection for good; a new one is
	// dialled.
	Closed
)

// String returns the state's name: connected, disconnected, reconnected
// or closed.
func (s State) String() string {
	switch s {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Reconnected:
		return "reconnected"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Up reports whether the state is one where messages flow.
func (s State) Up() bool { return s == Connected || s == Reconnected }

// Options configure [Dial].
type Options struct {
	// URL is the server URL, or several separated by commas.
	URL string
	// NATS are more client options (a name, an in-process server, an
	// error handler). Dial adds those for reconnection and connection
	// events after them.
	NATS []nats.Option
	// Setup runs on every new connection, the first included, before it
	// is reported Connected: it subscribes. It must replace what it set up
	// on a previous connection (closed by then). An error on the first
	// connection fails Dial; on a later one that connection is closed and
	// another dialled.
	Setup func(nc *nats.Conn) error
	// OnChange, when set, is called on every change of state, one call at
	// a time, in order; err is the cause, when known.
	OnChange func(s State, err error)
	// Log receives a line per change of state; nil logs nothing.
	Log *slog.Logger
	// MaxWait bounds the wait between attempts (reconnects and dials).
	// Default 5s; the first waits are shorter.
	MaxWait time.Duration
}

// Conn is a NATS connection kept up. Its methods are safe for concurrent
// use.
type Conn struct {
	o   Options
	cur atomic.Pointer[nats.Conn]

	mu        sync.Mutex
	stopped   bool
	redialing bool
	stop      chan struct{}
	wg        sync.WaitGroup

	changeMu sync.Mutex // serialises OnChange
}

// Dial connects to o.URL and runs o.Setup on the connection. It fails when
// the server cannot be reached or Setup fails: a consumer that cannot start
// should say so. Later losses are repaired in the background.
func Dial(o Options) (*Conn, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Second
	}
	c := &Conn{o: o, stop: make(chan struct{}), redialing: true}
	if _, err := c.connect(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.redialing = false
	c.mu.Unlock()
	c.change(Connected, nil)
	return c, nil
}

// NC returns the connection in use now. It may be closed or disconnected
// (a publish then fails, or is buffered until the client reconnects);
// call NC again for each operation rather than keeping it.
func (c *Conn) NC() *nats.Conn { return c.cur.Load() }

// connect dials one connection, makes it current and sets it up.
func (c *Conn) connect() (*nats.Conn, error) {
	opts := append(append([]nats.Option(nil), c.o.NATS...),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(c.wait),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				c.change(Disconnected, err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.change(Reconnected, nil) }),
		nats.ClosedHandler(c.closed),
	)
	nc, err := nats.Connect(c.o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", c.o.URL, err)
	}
	c.cur.Store(nc)
	if c.o.Setup != nil {
		if err := c.o.Setup(nc); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return nc, nil
}

// wait is the backoff between attempts: 100 ms doubling up to MaxWait,
// with up to 20% of jitter so that a fleet of scorers does not come back
// in step.
func (c *Conn) wait(attempt int) time.Duration {
	d := c.o.MaxWait
	if attempt < 16 {
		d = min(d, 100*time.Millisecond<<max(attempt-1, 0))
	}
	return d + rand.N(d/5+1)
}

// closed runs when the client closed a connection. When it is the current
// one and nobody asked for it, another is dialled.
func (c *Conn) closed(nc *nats.Conn) {
	c.mu.Lock()
	if c.stopped || c.redialing || c.cur.Load() != nc {
		c.mu.Unlock()
		return
	}
	c.redialing = true
	c.wg.Add(1)
	c.mu.Unlock()
	c.change(Closed, nc.LastError())
	go c.redial()
}

// redial dials until a connection is up and set up, or Close is called.
func (c *Conn) redial() {
	defer c.wg.Done()
	for attempt := 1; ; attempt++ {
		select {
		case <-c.stop:
			return
		case <-time.After(c.wait(attempt)):
		}
		nc, err := c.connect()
		if err != nil {
			c.o.Log.Warn("nats: dialling a new connection failed; trying again", "attempt", attempt, "err", err)
			continue
		}
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			nc.Close()
			return
		}
		c.redialing = false
		c.mu.Unlock()
		c.change(Connected, nil)
		return
	}
}

// change reports a change of state.
func (c *Conn) change(s State, err error) {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	switch s {
	case Connected:
		c.o.Log.Info("nats connected", "url", c.NC().ConnectedUrl())
	case Reconnected:
		c.o.Log.Info("nats reconnected", "url", c.NC().ConnectedUrl())
	case Disconnected:
		c.o.Log.Warn("nats disconnected; reconnecting", "err", err)
	case Closed:
		c.o.Log.Error("nats connection closed by the client; dialling a new one", "err", err)
	}
	if c.o.OnChange != nil {
		c.o.OnChange(s, err)
	}
}

// Stop ends the repairs: no new connection is dialled after it returns
// (it waits for a dial in progress). The connection in use stays as it is,
// for the caller to drain.
func (c *Conn) Stop() {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.stop)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Drain stops the repairs, then drains the connection in use (its
// subscriptions finish the messages delivered, what is buffered is
// flushed) and waits up to timeout for it to close, closing it then.
func (c *Conn) Drain(timeout time.Duration) error {
	c.Stop()
	nc := c.NC()
	closed := nc.StatusChanged(nats.CLOSED)
	if nc.IsClosed() {
		return nil
	}
	var errs []error
	if err := nc.Drain(); err != nil {
		errs = append(errs, fmt.Errorf("nats drain: %w", err))
		nc.Close()
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		errs = append(errs, fmt.Errorf("nats connection not drained within %v", timeout))
		nc.Close()
	}
	return errors.Join(errs...)
}

// Close stops the repairs and closes the connection at once.
func (c *Conn) Close() {
	c.Stop()
	if nc := c.NC(); nc != nil {
		nc.Close()
	}
}
