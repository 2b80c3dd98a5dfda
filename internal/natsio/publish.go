package natsio

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Link is one connection and its JetStream context (nil when nothing on
// the connection needs JetStream).
type Link struct {
	NC *nats.Conn
	JS jetstream.JetStream
}

// NewLink returns nc's link, with a JetStream context when withJS.
func NewLink(nc *nats.Conn, withJS bool) (*Link, error) {
	l := &Link{NC: nc}
	if withJS {
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		l.JS = js
	}
	return l, nil
}

// Publisher publishes on the link in use: plain publishes, or, when
// Acked, JetStream publishes with message ids whose acknowledgements it
// waits for, so that what it returns nil for is stored. Set the link
// (SetLink) before publishing, and again on each new connection. Its
// methods are safe for concurrent use.
type Publisher struct {
	// Acked publishes to a stream and waits for its acknowledgements, at
	// most Timeout.
	Acked   bool
	Timeout time.Duration

	link atomic.Pointer[Link]
}

// SetLink makes l the link publishes go out on.
func (p *Publisher) SetLink(l *Link) { p.link.Store(l) }

// Link returns the link in use (nil before SetLink).
func (p *Publisher) Link() *Link { return p.link.Load() }

// PublishAll publishes n messages, message i being msg(i): its subject,
// its data and, when Acked, its message id ("" for none). It returns the
// first error; with Acked, after every acknowledgement came or the
// timeout passed.
func (p *Publisher) PublishAll(n int, msg func(i int) (subject string, data []byte, id string)) error {
	if n == 0 {
		return nil
	}
	link := p.link.Load()
	if !p.Acked {
		for i := range n {
			subject, data, _ := msg(i)
			if err := link.NC.Publish(subject, data); err != nil {
				return err
			}
		}
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		subject, data, id := msg(i)
		m := &nats.Msg{Subject: subject, Data: data}
		if id != "" {
			m.Header = nats.Header{nats.MsgIdHdr: []string{id}}
		}
		f, err := link.JS.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	return p.wait(futures)
}

// PublishMsg publishes m, with the message id id when Acked and id is not
// "" (its headers must then be set), and waits for its acknowledgement
// when Acked.
func (p *Publisher) PublishMsg(m *nats.Msg, id string) error {
	link := p.link.Load()
	if !p.Acked {
		return link.NC.PublishMsg(m)
	}
	if id != "" {
		m.Header.Set(nats.MsgIdHdr, id)
	}
	f, err := link.JS.PublishMsgAsync(m)
	if err != nil {
		return err
	}
	return p.wait([]jetstream.PubAckFuture{f})
}

// MaxPayload returns the largest message the server takes.
func (p *Publisher) MaxPayload() int64 { return p.link.Load().NC.MaxPayload() }

// wait waits for every future's acknowledgement and returns the first
// error.
func (p *Publisher) wait(futures []jetstream.PubAckFuture) error {
	t := time.NewTimer(p.Timeout)
	defer t.Stop()
	var first error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		case <-t.C:
			return fmt.Errorf("no acknowledgement from the stream within %v", p.Timeout)
		}
	}
	return first
}
