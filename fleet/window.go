package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/serve/ingest"
)

// Flags tells which of a host's samples dagmm flagged as anomalies. The
// events' store is the caller's choice: [EventFlags] reads the service's
// event stream.
type Flags interface {
	// Flagged returns the sample times (the events' ts) of the host's
	// anomaly events published at or after since.
	Flagged(ctx context.Context, host string, since time.Time) ([]time.Time, error)
}

// WindowOptions say which samples [History.Window] removes besides those
// whose "event" member raised an event. Nil fields remove nothing more.
type WindowOptions struct {
	// Flags gives the samples dagmm flagged: they are removed, unless
	// FalseAlarms gives them too (an operator marked them as false
	// alarms), and then kept.
	Flags       Flags
	FalseAlarms FalseAlarms
}

// Window is one host's training window: its latest samples from the
// history stream, without those that raised events.
type Window struct {
	Host string
	// Subject is the subject read: in a partitioned stream, a wildcard
	// over the partition token (and the host's subject is read too, for
	// the samples stored before the stream was partitioned).
	Subject string
	// Features are the feature names, in the order of the latest sample's
	// "values"; X holds len(TS) rows of len(Features) values, row-major.
	Features []string
	TS       []time.Time
	X        []float64
	// Messages and Samples count what was read (a message may hold a
	// batch of samples); Samples is at most the history's limit, the
	// latest kept.
	Messages, Samples int
	// Events counts the samples removed for their "event" member, Flagged
	// those removed for dagmm's own anomaly events, FalseAlarms the flagged
	// ones kept because an operator marked them, and Incomplete those
	// removed for lacking a feature of the window or for a value that is
	// not a number, and the messages that could not be decoded.
	Events, Flagged, FalseAlarms, Incomplete int
	// LastSeq is the stream sequence of the last message read.
	LastSeq uint64
}

// Rows returns the number of samples kept.
func (w *Window) Rows() int { return len(w.TS) }

// Window reads host's window back from the history stream: the latest
// [History.Limit] samples on its subject, in order, less those whose
// "event" member is an event (a non-zero number, true, or a string other
// than "", "0", "false" and "no", as dagmm train treats its event column)
// and those opt.Flags gives, unless opt.FalseAlarms marks them. A host
// without samples gets an empty window, not an error.
func (h *History) Window(ctx context.Context, host string, opt WindowOptions) (*Window, error) {
	if err := checkHostName(host); err != nil {
		return nil, err
	}
	if err := h.refresh(ctx); err != nil {
		return nil, fmt.Errorf("fleet: window of %s: %w", host, err)
	}
	subjects := h.stored(ingest.HostToken(host))
	w := &Window{Host: host, Subject: subjects[0]}
	samples, first, err := h.read(ctx, w, subjects)
	if err != nil {
		return nil, fmt.Errorf("fleet: window of %s: %w", host, err)
	}
	flagged, err := h.exclusions(ctx, host, first, opt)
	if err != nil {
		return nil, fmt.Errorf("fleet: window of %s: %w", host, err)
	}
	w.Samples = len(samples)
	kept := samples[:0]
	for _, s := range samples {
		switch mark, ok := flagged[s.TS.UnixNano()]; {
		case s.Event:
			w.Events++
		case ok && !mark:
			w.Flagged++
		default:
			if ok {
				w.FalseAlarms++
			}
			kept = append(kept, s)
		}
	}
	// The features are the latest readable sample's.
	i := len(kept) - 1
	for i >= 0 && kept[i].bad {
		i--
	}
	if i < 0 {
		w.Incomplete += len(kept)
		return w, nil
	}
	w.Features = kept[i].Names
	w.X = make([]float64, 0, len(kept)*len(w.Features))
	row := make([]float64, len(w.Features))
	for _, s := range kept {
		if !s.pick(w.Features, row) {
			w.Incomplete++
			continue
		}
		w.X = append(w.X, row...)
		w.TS = append(w.TS, s.TS)
	}
	return w, nil
}

// read returns the latest h.limit samples of subjects and the stream time
// of the first message read.
func (h *History) read(ctx context.Context, w *Window, subjects []string) ([]sample, time.Time, error) {
	var (
		samples []sample
		first   time.Time
	)
	err := readSubject(ctx, h.js, h.stream, subjects, time.Time{}, func(data []byte, meta *jetstream.MsgMetadata) {
		if w.Messages == 0 {
			first = meta.Timestamp
		}
		w.Messages++
		w.LastSeq = meta.Sequence.Stream
		s, err := decodeSamples(data, meta.Timestamp)
		if err != nil {
			w.Incomplete++ // a message the scorer refuses too: nothing to learn from
			return
		}
		samples = append(samples, s...)
		if len(samples) > 2*h.limit {
			samples = append(samples[:0], samples[len(samples)-h.limit:]...)
		}
	})
	if len(samples) > h.limit {
		samples = samples[len(samples)-h.limit:]
	}
	return samples, first, err
}

// readSubject calls fn with every message of subjects (which must not
// overlap) in stream, in order, from the first one stored at or after
// since (all of them when since is zero), through an ordered consumer.
func readSubject(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, subjects []string, since time.Time, fn func([]byte, *jetstream.MsgMetadata)) error {
	fresh := false
	for _, subj := range subjects {
		last, err := stream.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return err
		case !last.Time.Before(since):
			fresh = true
		}
	}
	if !fresh {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, stream.CachedInfo().Config.Name, cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return nil // the subject's last messages went away while reading
		case err != nil:
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		fn(m.Data(), meta)
		if meta.NumPending == 0 {
			return nil
		}
	}
}

// exclusions returns dagmm's flagged sample times (as Unix nanoseconds)
// since the window's first message, each mapped to whether an operator
// marked it as a false alarm.
func (h *History) exclusions(ctx context.Context, host string, since time.Time, opt WindowOptions) (map[int64]bool, error) {
	if opt.Flags == nil {
		return nil, nil
	}
	ts, err := opt.Flags.Flagged(ctx, host, since)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	flagged := make(map[int64]bool, len(ts))
	for _, t := range ts {
		flagged[t.UnixNano()] = false
	}
	if opt.FalseAlarms == nil {
		return flagged, nil
	}
	marked, err := opt.FalseAlarms.Marked(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, t := range marked {
		if _, ok := flagged[t.UnixNano()]; ok {
			flagged[t.UnixNano()] = true
		}
	}
	return flagged, nil
}

// sample is one decoded sample of the history.
type sample struct {
	Host   string
	TS     time.Time
	Names  []string
	Values []float64
	Event  bool
	bad    bool // a value is not a number
}

// pick copies s's values of the given features into row, and reports
// whether s has them all.
func (s *sample) pick(features []string, row []float64) bool {
	if s.bad {
		return false
	}
	if slices.Equal(s.Names, features) {
		copy(row, s.Values)
		return true
	}
	for i, f := range features {
		j := slices.Index(s.Names, f)
		if j < 0 {
			return false
		}
		row[i] = s.Values[j]
	}
	return true
}

// wireSample is dagmm's JSON sample (see serve/ingest), with the members
// the history needs.
type wireSample struct {
	Host   string          `json:"host"`
	TS     json.RawMessage `json:"ts"`
	Values json.RawMessage `json:"values"`
	Event  json.RawMessage `json:"event"`
}

// decodeSamples decodes one message: a sample, an array of samples or
// {"samples":[...]}. received is the time of a sample without "ts".
func decodeSamples(data []byte, received time.Time) ([]sample, error) {
	data = bytes.TrimSpace(data)
	var wire []wireSample
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &wire); err != nil {
			return nil, err
		}
	default:
		var m struct {
			wireSample
			Samples []wireSample `json:"samples"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		wire = m.Samples
		if wire == nil {
			wire = []wireSample{m.wireSample}
		}
	}
	out := make([]sample, len(wire))
	for i, ws := range wire {
		s := &out[i]
		s.Host = ws.Host
		ts, err := decodeTS(ws.TS, received)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		s.TS = ts
		s.Event = truthy(ws.Event)
		s.Names, s.Values, err = decodeValues(ws.Values)
		if err != nil {
			s.bad = true
		}
	}
	return out, nil
}

// decodeTS reads "ts": RFC 3339, Unix seconds, or absent for received.
func decodeTS(raw json.RawMessage, received time.Time) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return received, nil
	}
	if raw[0] == '"' {
		var t time.Time
		err := json.Unmarshal(raw, &t)
		return t, err
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, fmt.Errorf("ts %s: %w", raw, err)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64(math.Round((f-sec)*1e9))).UTC(), nil
}

// decodeValues reads "values" keeping the names' order.
func decodeValues(raw json.RawMessage) ([]string, []float64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("values: not an object")
	}
	var (
		names []string
		vals  []float64
	)
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		v, err := dec.Token()
		f, ok := v.(float64)
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("values: %v is not a number", k)
		}
		names = append(names, k.(string))
		vals = append(vals, f)
	}
	return names, vals, nil
}

// truthy reports whether an "event" member is an event, as
// datasets.Flagged reads the event column: a non-zero number, true, a
// string other than "", "0", "false" and "no", any other non-null value.
func truthy(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null", string(raw) == "false":
		return false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return true
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "", "0", "false", "no":
			return false
		}
		return true
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		var f float64
		return json.Unmarshal(raw, &f) != nil || f != 0
	}
	return true
}

// EventFlags reads the anomalies dagmm flagged from the stream that keeps
// the service's events (dagmm serve --event-stream): the events on
// "<Prefix>.<host token>". Without an event stream the service's events
// are not kept, and nothing can tell a trainer which samples were flagged.
type EventFlags struct {
	JS jetstream.JetStream
	// Stream is the event stream's name.
	Stream string
	// Prefix is the anomaly subject prefix. Default "anomalies".
	Prefix string
}

// Flagged implements [Flags]: the ts of the host's anomaly events stored
// since the given time.
func (f EventFlags) Flagged(ctx context.Context, host string, since time.Time) ([]time.Time, error) {
	prefix := f.Prefix
	if prefix == "" {
		prefix = "anomalies"
	}
	stream, err := f.JS.Stream(ctx, f.Stream)
	if err != nil {
		return nil, fmt.Errorf("fleet: event stream %s: %w", f.Stream, err)
	}
	var out []time.Time
	err = readSubject(ctx, f.JS, stream, []string{prefix + "." + ingest.HostToken(host)}, since, func(data []byte, _ *jetstream.MsgMetadata) {
		var ev struct {
			TS      time.Time `json:"ts"`
			Anomaly *bool     `json:"anomaly"`
		}
		// An event that cannot be read names no sample to remove.
		if json.Unmarshal(data, &ev) == nil && (ev.Anomaly == nil || *ev.Anomaly) {
			out = append(out, ev.TS)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: event stream %s: %w", f.Stream, err)
	}
	return out, nil
}
