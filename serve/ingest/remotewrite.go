package ingest

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Errors of [RemoteWriteDecoder.Decode], each a request the sender must not
// retry (an HTTP 400 or 413): the body is refused whole.
var (
	// ErrNotSnappy: the body is not in snappy's block format (remote write
	// 1.0 does not use the framed format).
	ErrNotSnappy = errors.New("ingest: remote write body is not snappy block-compressed")
	// ErrNotWriteRequest: the decompressed body is not a valid protobuf
	// WriteRequest, or a series in it breaks the remote write 1.0 rules.
	ErrNotWriteRequest = errors.New("ingest: remote write body is not a valid WriteRequest")
	// ErrTooLarge: the body, compressed or not, is larger than the limit.
	ErrTooLarge = errors.New("ingest: remote write body too large")
)

// StaleNaN is the bit pattern of the NaN Prometheus sends as a stale
// marker: the series ended (its target or rule stopped giving it).
const StaleNaN uint64 = 0x7ff0000000000002

// IsStaleNaN reports whether v is Prometheus's stale marker.
func IsStaleNaN(v float64) bool { return math.Float64bits(v) == StaleNaN }

// Remote write limits: the default of [RemoteWriteDecoder.MaxSize] and the
// field name given to every sample's value.
const (
	DefaultMaxRemoteWriteSize = 32 << 20
	RemoteWriteField          = "value"
)

// RemoteWriteDecoder decodes the bodies of Prometheus remote write 1.0
// requests: a protobuf WriteRequest compressed with snappy's block format.
//
// It is written with google.golang.org/protobuf/encoding/protowire and
// github.com/klauspost/compress/snappy rather than with the
// github.com/prometheus/prometheus module's prompb package: that module
// brings hundreds of modules and is not meant to be imported as a library,
// while a WriteRequest has four small messages (WriteRequest, TimeSeries,
// Label, Sample) whose wire format is stable. Metadata, exemplars and native
// histograms are skipped.
//
// A decoder reuses its buffers: it is not safe for concurrent use, and what
// Decode returns is valid until its next call.
type RemoteWriteDecoder struct {
	// MaxSize bounds the body and its decompressed size, in bytes
	// (DefaultMaxRemoteWriteSize when zero).
	MaxSize int

	raw     []byte
	out     RemoteWrite
	tags    []Tag
	fields  []Field
	samples [][]byte          // one series' samples, scratch
	strs    map[string]string // label names and values seen, so that each is allocated once
}

// Bounds on the label strings a decoder keeps (hosts and series names
// repeat from one request to the next; a request of 500 hosts has about a
// thousand): how many, and the longest, so that a decoder holds at most
// about 3 MB of them.
const (
	maxInterned    = 1 << 14
	maxInternedLen = 128
)

// RemoteWrite is one decoded remote write request. Each sample is a
// [Measurement] named after the series' __name__ label, with its other
// labels as tags (in the sender's order, sorted by name as the protocol
// requires), one field named [RemoteWriteField] and the sample's timestamp.
type RemoteWrite struct {
	// Samples are the samples with a value, NaN included.
	Samples []Measurement
	// Ends are the stale markers, as measurements with the marker's
	// timestamp and a NaN value: each says its series ended then, so it
	// must not be scored nor waited for.
	Ends []Measurement
	// Series is the number of time series in the request.
	Series int
}

// Decode decodes body. The request is checked whole before anything is
// returned, so an error means nothing of it was taken. Errors wrap
// [ErrNotSnappy], [ErrNotWriteRequest] or [ErrTooLarge].
func (d *RemoteWriteDecoder) Decode(body []byte) (*RemoteWrite, error) {
	limit := d.MaxSize
	if limit <= 0 {
		limit = DefaultMaxRemoteWriteSize
	}
	if len(body) > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), limit)
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSnappy, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes decompressed, limit %d", ErrTooLarge, n, limit)
	}
	if cap(d.raw) < n {
		d.raw = make([]byte, n)
	}
	raw, err := snappy.Decode(d.raw[:cap(d.raw)], body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSnappy, err)
	}
	d.out.Samples, d.out.Ends, d.out.Series = d.out.Samples[:0], d.out.Ends[:0], 0
	d.tags, d.fields = d.tags[:0], d.fields[:0]
	if err := d.writeRequest(raw); err != nil {
		d.out.Samples, d.out.Ends = d.out.Samples[:0], d.out.Ends[:0]
		return nil, fmt.Errorf("%w: %v", ErrNotWriteRequest, err)
	}
	return &d.out, nil
}

// writeRequest reads message WriteRequest { repeated TimeSeries timeseries
// = 1; repeated MetricMetadata metadata = 3; }.
func (d *RemoteWriteDecoder) writeRequest(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("timeseries %d: wire type %d, want bytes", d.out.Series+1, typ)
		}
		d.out.Series++
		if err := d.timeSeries(v); err != nil {
			return fmt.Errorf("timeseries %d: %w", d.out.Series, err)
		}
		return nil
	})
}

// timeSeries reads message TimeSeries { repeated Label labels = 1;
// repeated Sample samples = 2; ... } and appends its samples.
func (d *RemoteWriteDecoder) timeSeries(b []byte) error {
	name, start := "", len(d.tags)
	d.samples = d.samples[:0]
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: wire type %d, want bytes", num, typ)
		}
		if num == 2 {
			d.samples = append(d.samples, v)
			return nil
		}
		k, val, err := d.label(v)
		switch {
		case err != nil:
			return err
		case k == "__name__":
			name = val
		default:
			d.tags = append(d.tags, Tag{Key: k, Value: val})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("no __name__ label")
	}
	tags := d.tags[start:len(d.tags):len(d.tags)]
	for i, s := range d.samples {
		v, ts, err := sample(s)
		if err != nil {
			return fmt.Errorf("series %s, sample %d: %w", name, i+1, err)
		}
		d.fields = append(d.fields, Field{Key: RemoteWriteField, Value: v})
		f := d.fields[len(d.fields)-1 : len(d.fields) : len(d.fields)]
		m := Measurement{Name: name, Tags: tags, Fields: f, Time: time.UnixMilli(ts)}
		if IsStaleNaN(v) {
			d.out.Ends = append(d.out.Ends, m)
		} else {
			d.out.Samples = append(d.out.Samples, m)
		}
	}
	return nil
}

// label reads message Label { string name = 1; string value = 2; }.
func (d *RemoteWriteDecoder) label(b []byte) (name, value string, err error) {
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("label field %d: wire type %d, want bytes", num, typ)
		}
		if !utf8.Valid(v) {
			return fmt.Errorf("label field %d: invalid UTF-8", num)
		}
		if num == 1 {
			name = d.intern(v)
		} else {
			value = d.intern(v)
		}
		return nil
	})
	if err == nil && name == "" {
		err = errors.New("label with an empty name")
	}
	return name, value, err
}

// intern returns b as a string, the same one for the same short bytes while
// at most maxInterned are kept.
func (d *RemoteWriteDecoder) intern(b []byte) string {
	if len(b) > maxInternedLen {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if d.strs == nil || len(d.strs) >= maxInterned {
		d.strs = make(map[string]string)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// sample reads message Sample { double value = 1; int64 timestamp = 2; }.
func sample(b []byte) (v float64, ts int64, err error) {
	err = fields(b, func(num protowire.Number, typ protowire.Type, raw []byte) error {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			u, _ := protowire.ConsumeFixed64(raw)
			v = math.Float64frombits(u)
		case num == 2 && typ == protowire.VarintType:
			u, _ := protowire.ConsumeVarint(raw)
			ts = int64(u)
		case num == 1 || num == 2:
			return fmt.Errorf("sample field %d: wire type %d", num, typ)
		}
		return nil
	})
	return v, ts, err
}

// fields calls fn for each field of the protobuf message b with its number,
// wire type and value: a length-delimited field's contents, or the raw
// bytes of any other. Groups are refused.
func fields(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			c, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
			v, n = c, m
		case protowire.VarintType, protowire.Fixed64Type, protowire.Fixed32Type:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			v = b[:n]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, typ)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Prometheus defaults: the label naming the host, and the prefix of the
// recording rules computing dagmm's features (deploy/prometheus/rules.yaml).
const (
	PrometheusHostLabel    = "instance"
	PrometheusRecordPrefix = "dagmm:"
)

// PrometheusConfig returns the mapping of features from remote-written
// recorded series: feature f is the gauge series PrometheusRecordPrefix+f
// (dagmm:cpu_usage, ...), one per host, the host in the label
// PrometheusHostLabel; interval is Prometheus's rule evaluation interval.
func PrometheusConfig(features []string, interval time.Duration) Config {
	c := Config{HostTag: PrometheusHostLabel, Interval: interval}
	for _, f := range features {
		c.Features = append(c.Features, Feature{Name: f, Measurement: PrometheusRecordPrefix + f, Field: RemoteWriteField, Kind: Gauge})
	}
	return c
}
