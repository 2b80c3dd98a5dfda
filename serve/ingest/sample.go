package ingest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Errors a [SampleDecoder] wraps in a [*SampleError]; match them with
// errors.Is. Malformed JSON wraps [ErrSyntax].
var (
	ErrInvalidSample    = errors.New("ingest: invalid sample")    // wrong shape: values not an object, host not a string, ...
	ErrMissingFeature   = errors.New("ingest: missing feature")   // a model feature has no value
	ErrUnknownFeature   = errors.New("ingest: unknown feature")   // a value names no model feature
	ErrDuplicateFeature = errors.New("ingest: duplicate feature") // a feature has two values in one sample
	ErrNotNumber        = errors.New("ingest: value is not a number")
	ErrNotFinite        = errors.New("ingest: value is not finite") // "NaN", "Inf", or a number beyond float64
	ErrTimestamp        = errors.New("ingest: invalid timestamp")
	ErrTooManySamples   = errors.New("ingest: too many samples")
)

// Sample is one feature vector from dagmm's own JSON format.
type Sample struct {
	// Host is the sample's "host" member, empty when the message has none
	// (the service may take it from the subject instead).
	Host string
	// TS is the sample's time: its "ts" member, or the receive time given
	// to [SampleDecoder.Decode] when "ts" is absent or null.
	TS time.Time
	// Values holds one value per feature, in the decoder's feature order.
	// All are finite.
	Values []float64
	// Optional holds the values of the decoder's optional names, in the
	// order given to [NewSampleDecoderOptional], NaN for one the sample
	// does not carry; nil when the decoder has none.
	Optional []float64
}

// SampleError says why a message of samples was refused, and where.
type SampleError struct {
	// Index is the position of the offending sample in a batch (from 0),
	// or -1 when the message is a single sample or is malformed as a whole.
	Index int
	// Offset is the byte offset in the message where the problem was found.
	Offset int
	// Feature is the feature concerned, when there is one.
	Feature string
	// Err is one of the Err* sentinels of this package, possibly wrapped
	// with detail.
	Err error
}

// Error implements error, e.g.
// `ingest: sample 3 (offset 412): feature "disk_busy": value is not a number: the value is a string, want a number`.
func (e *SampleError) Error() string {
	var b strings.Builder
	b.WriteString("ingest: ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "sample %d ", e.Index)
	}
	fmt.Fprintf(&b, "(offset %d): ", e.Offset)
	if e.Feature != "" {
		fmt.Fprintf(&b, "feature %q: ", e.Feature)
	}
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "ingest: "))
	return b.String()
}

// Unwrap returns e.Err.
func (e *SampleError) Unwrap() error { return e.Err }

// SampleDecoder decodes dagmm's JSON samples for a fixed list of features.
//
// A message is one sample,
//
//	{"host":"web-1","ts":"2026-11-24T10:00:00Z","values":{"cpu_usage":37.5,...}}
//
// or a batch: a JSON array of samples, or {"samples":[...]}. In a sample:
//
//   - "values" is required and must give a finite JSON number for every
//     feature; a value for a name that is not a feature is an error unless
//     IgnoreUnknown is set. A string such as "NaN" or "12" is refused
//     ([ErrNotFinite] or [ErrNotNumber]): JSON has no NaN, and quoting
//     numbers hides producer bugs.
//   - "ts" is an RFC 3339 string or a JSON number of Unix seconds (fractions
//     allowed); when it is absent or null the sample gets the receive time
//     passed to Decode.
//   - "host" is a string, optional (empty when absent, or when ""). The
//     service puts it in NATS subjects, so a host [CheckHost] refuses (too
//     long, white space, control characters, wildcards) is an error
//     wrapping [ErrInvalidHost].
//   - Other members are ignored, so producers may add an "id" or labels.
//     A member given twice is an error.
//
// Member names are matched exactly (case-sensitive). The whole message is
// refused on the first error; the [*SampleError] gives the sample's index in
// the batch, the byte offset and the feature.
//
// A SampleDecoder is safe for concurrent use once its fields are set.
type SampleDecoder struct {
	// IgnoreUnknown makes Decode skip values whose name is not a feature
	// instead of refusing the message.
	IgnoreUnknown bool
	// MaxSamples, when positive, refuses a batch of more samples with
	// [ErrTooManySamples].
	MaxSamples int

	features []string
	names    []string // features, then the optional names
	index    map[string]int
}

// NewSampleDecoder returns a decoder for the given features, in the order
// Sample.Values will hold them. It refuses an empty list, an empty name or
// a duplicate.
func NewSampleDecoder(features []string) (*SampleDecoder, error) {
	return NewSampleDecoderOptional(features, nil)
}

// NewSampleDecoderOptional is [NewSampleDecoder] with names a sample may
// carry besides the features, such as the columns a model found constant
// in training: their values, checked as feature values are, go to
// [Sample.Optional], NaN standing for one the sample does not carry.
func NewSampleDecoderOptional(features, optional []string) (*SampleDecoder, error) {
	if len(features) == 0 {
		return nil, errors.New("ingest: sample decoder: no features")
	}
	names := slices.Concat(features, optional)
	d := &SampleDecoder{
		features: names[:len(features):len(features)],
		names:    names,
		index:    make(map[string]int, len(names)),
	}
	for i, f := range names {
		if f == "" {
			return nil, fmt.Errorf("ingest: sample decoder: feature %d has an empty name", i)
		}
		if _, dup := d.index[f]; dup {
			return nil, fmt.Errorf("ingest: sample decoder: feature %q given twice", f)
		}
		d.index[f] = i
	}
	return d, nil
}

// Features returns the feature names in Values order. The caller must not
// modify the slice.
func (d *SampleDecoder) Features() []string { return d.features }

// Decode decodes one message: a single sample or a batch. received is the
// time given to samples without "ts". The samples' Values share one
// allocation per 64 samples (the first ones fewer); the message bytes are not retained.
func (d *SampleDecoder) Decode(data []byte, received time.Time) ([]Sample, error) {
	dec := sampleDecoding{d: d, s: scanner{data: data}, received: received}
	out, err := dec.message()
	if err != nil {
		return nil, err
	}
	if !dec.s.eof() {
		return nil, dec.fail(-1, "", dec.s.errAt(dec.s.pos, "unexpected data after the top-level value"))
	}
	return out, nil
}

// sampleDecoding is the state of one Decode call.
type sampleDecoding struct {
	d        *SampleDecoder
	s        scanner
	received time.Time
	arena    []float64 // spare room for Values
	chunk    int       // samples in the last arena allocated
	seen     []uint64  // bitset: features seen in the current sample
	lastHost string
}

// fail wraps err (a syntax error or a sentinel) in a SampleError.
func (dd *sampleDecoding) fail(index int, feature string, err error) error {
	off := dd.s.pos
	var se *syntaxError
	if errors.As(err, &se) {
		off = se.off
	}
	return &SampleError{Index: index, Offset: off, Feature: feature, Err: err}
}

// failAt is fail with an explicit offset.
func (dd *sampleDecoding) failAt(off, index int, feature string, err error) error {
	return &SampleError{Index: index, Offset: off, Feature: feature, Err: err}
}

// wrongKind reports that the value at s.pos (what) is not the kind wanted,
// or a syntax error when no value starts there.
func (dd *sampleDecoding) wrongKind(index int, feature string, sentinel error, what, want string) error {
	kind := dd.s.kindAt()
	if kind == "" {
		return dd.fail(index, feature, dd.s.unexpected("value"))
	}
	off := dd.s.pos
	if err := dd.s.skip(0); err != nil { // malformed is the better reason
		return dd.fail(index, feature, err)
	}
	return dd.failAt(off, index, feature, fmt.Errorf("%w: %s is %s, want %s", sentinel, what, kind, want))
}

func (dd *sampleDecoding) message() ([]Sample, error) {
	switch dd.s.peek() {
	case '[':
		return dd.array(nil)
	case '{':
		var smp Sample
		batch, isBatch, err := dd.object(&smp, -1)
		if err != nil {
			return nil, err
		}
		if isBatch {
			return batch, nil
		}
		return []Sample{smp}, nil
	default:
		if dd.s.pos >= len(dd.s.data) {
			return nil, dd.fail(-1, "", dd.s.errAt(dd.s.pos, "empty message"))
		}
		return nil, dd.wrongKind(-1, "", ErrInvalidSample, "the message", "a sample object or an array of samples")
	}
}

// array decodes a JSON array of samples, appending them to out.
func (dd *sampleDecoding) array(out []Sample) ([]Sample, error) {
	more, err := dd.s.arrayStart()
	if err != nil {
		return nil, dd.fail(-1, "", err)
	}
	for i := 0; more; i++ {
		if dd.d.MaxSamples > 0 && i >= dd.d.MaxSamples {
			return nil, dd.fail(i, "", fmt.Errorf("%w: more than %d in one message", ErrTooManySamples, dd.d.MaxSamples))
		}
		if dd.s.peek() != '{' {
			return nil, dd.wrongKind(i, "", ErrInvalidSample, "the sample", "an object")
		}
		out = append(out, Sample{})
		_, isBatch, err := dd.object(&out[len(out)-1], i)
		if err != nil {
			return nil, err
		}
		if isBatch {
			return nil, dd.fail(i, "", fmt.Errorf("%w: a batch inside a batch", ErrInvalidSample))
		}
		if more, err = dd.s.more(']'); err != nil {
			return nil, dd.fail(-1, "", err)
		}
	}
	if out == nil {
		out = []Sample{}
	}
	return out, nil
}

// Member bits for duplicate and presence checks.
const (
	memHost = 1 << iota
	memTS
	memValues
	memSamples
)

// object decodes an object at s.pos: a sample (into smp) or, when index is -1
// and it has a "samples" member, a batch (returned, isBatch true).
func (dd *sampleDecoding) object(smp *Sample, index int) (batch []Sample, isBatch bool, err error) {
	s := &dd.s
	objStart := s.pos
	more, err := s.objectStart()
	if err != nil {
		return nil, false, dd.fail(index, "", err)
	}
	var members int
	for more {
		keyOff := s.pos
		k, err := s.key()
		if err != nil {
			return nil, false, dd.fail(index, "", err)
		}
		var bit int
		switch string(k) {
		case "host":
			bit = memHost
		case "ts":
			bit = memTS
		case "values":
			bit = memValues
		case "samples":
			if index < 0 {
				bit = memSamples
			}
		}
		if bit != 0 {
			if members&bit != 0 {
				return nil, false, dd.failAt(keyOff, index, "", fmt.Errorf("%w: member %q given twice", ErrInvalidSample, k))
			}
			members |= bit
		}
		switch bit {
		case memHost:
			if s.peek() != '"' {
				return nil, false, dd.wrongKind(index, "", ErrInvalidSample, `"host"`, "a string")
			}
			off := s.pos
			h, err := s.str()
			if err != nil {
				return nil, false, dd.fail(index, "", err)
			}
			if string(h) != dd.lastHost {
				if len(h) > 0 {
					if err := CheckHost(string(h)); err != nil {
						return nil, false, dd.failAt(off, index, "", err)
					}
				}
				dd.lastHost = string(h)
			}
			smp.Host = dd.lastHost
		case memTS:
			if err := dd.timestamp(smp, index); err != nil {
				return nil, false, err
			}
		case memValues:
			if err := dd.values(smp, index); err != nil {
				return nil, false, err
			}
		case memSamples:
			if s.peek() != '[' {
				return nil, false, dd.wrongKind(index, "", ErrInvalidSample, `"samples"`, "an array of samples")
			}
			if batch, err = dd.array(nil); err != nil {
				return nil, false, err
			}
		default:
			if err := s.skip(0); err != nil {
				return nil, false, dd.fail(index, "", err)
			}
		}
		if more, err = s.more('}'); err != nil {
			return nil, false, dd.fail(index, "", err)
		}
	}
	if members&memSamples != 0 {
		if members&(memHost|memTS|memValues) != 0 {
			return nil, false, dd.failAt(objStart, -1, "", fmt.Errorf("%w: an object with \"samples\" is a batch and cannot also have \"host\", \"ts\" or \"values\"", ErrInvalidSample))
		}
		return batch, true, nil
	}
	if members&memValues == 0 {
		return nil, false, dd.failAt(objStart, index, "", fmt.Errorf("%w: no \"values\" member", ErrInvalidSample))
	}
	if members&memTS == 0 {
		smp.TS = dd.received
	}
	return nil, false, nil
}

// timestamp reads "ts": an RFC 3339 string, a number of Unix seconds or null.
func (dd *sampleDecoding) timestamp(smp *Sample, index int) error {
	s := &dd.s
	off := s.pos
	switch c := s.peek(); {
	case c == 'n':
		if err := s.literal("null"); err != nil {
			return dd.fail(index, "", err)
		}
		smp.TS = dd.received
	case c == '"':
		b, err := s.str()
		if err != nil {
			return dd.fail(index, "", err)
		}
		t, err := time.Parse(time.RFC3339Nano, string(b))
		if err != nil {
			return dd.failAt(off, index, "", fmt.Errorf("%w: \"ts\" %q is not an RFC 3339 time", ErrTimestamp, b))
		}
		smp.TS = t
	case c == '-' || isDigit(c):
		f, err := s.float()
		if err != nil && !errors.Is(err, errRange) {
			return dd.fail(index, "", err)
		}
		t, ok := unixSeconds(f)
		if err != nil || !ok {
			return dd.failAt(off, index, "", fmt.Errorf("%w: \"ts\" %s is out of range for Unix seconds", ErrTimestamp, s.data[off:s.pos]))
		}
		smp.TS = t
	default:
		return dd.wrongKind(index, "", ErrTimestamp, `"ts"`, "an RFC 3339 string or Unix seconds")
	}
	return nil
}

// maxUnixSeconds bounds numeric timestamps (about the year 5138).
const maxUnixSeconds = 1e11

// unixSeconds converts a number of Unix seconds to a time, rounding to the
// nanosecond.
func unixSeconds(f float64) (time.Time, bool) {
	if math.IsNaN(f) || math.Abs(f) >= maxUnixSeconds {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	ns := math.Round((f - sec) * 1e9)
	return time.Unix(int64(sec), int64(ns)).UTC(), true
}

// values reads the "values" object into smp.Values.
func (dd *sampleDecoding) values(smp *Sample, index int) error {
	s := &dd.s
	nf, nt := len(dd.d.features), len(dd.d.names)
	if s.peek() != '{' {
		return dd.wrongKind(index, "", ErrInvalidSample, `"values"`, "an object of feature values")
	}
	if len(dd.arena) < nt {
		// Chunks of 1, 8, then 64 samples: a single sample allocates only
		// its own values.
		dd.chunk = min(max(dd.chunk*8, 1), 64)
		dd.arena = make([]float64, dd.chunk*nt)
	}
	vals := dd.arena[:nt:nt]
	dd.arena = dd.arena[nt:]
	smp.Values = vals[:nf:nf]
	if nt > nf {
		smp.Optional = vals[nf:nt:nt]
		for i := range smp.Optional {
			smp.Optional[i] = math.NaN()
		}
	}
	words := (nt + 63) / 64
	if cap(dd.seen) < words {
		dd.seen = make([]uint64, words)
	}
	seen := dd.seen[:words]
	clear(seen)
	more, err := s.objectStart()
	if err != nil {
		return dd.fail(index, "", err)
	}
	for more {
		keyOff := s.pos
		k, err := s.key()
		if err != nil {
			return dd.fail(index, "", err)
		}
		fi, ok := dd.d.index[string(k)]
		if !ok {
			if !dd.d.IgnoreUnknown {
				return dd.failAt(keyOff, index, string(k), fmt.Errorf("%w (the model's features are %s)", ErrUnknownFeature, strings.Join(dd.d.features, ", ")))
			}
			if err := s.skip(0); err != nil {
				return dd.fail(index, "", err)
			}
		} else {
			if seen[fi/64]&(1<<(fi%64)) != 0 {
				return dd.failAt(keyOff, index, dd.d.names[fi], ErrDuplicateFeature)
			}
			seen[fi/64] |= 1 << (fi % 64)
			v, err := dd.value(index, fi)
			if err != nil {
				return err
			}
			vals[fi] = v
		}
		if more, err = s.more('}'); err != nil {
			return dd.fail(index, "", err)
		}
	}
	for fi := range nf {
		if seen[fi/64]&(1<<(fi%64)) == 0 {
			return dd.failAt(s.pos-1, index, dd.d.features[fi], ErrMissingFeature)
		}
	}
	return nil
}

// value reads one feature value.
func (dd *sampleDecoding) value(index, fi int) (float64, error) {
	s := &dd.s
	name := dd.d.names[fi]
	c := s.peek()
	off := s.pos
	switch {
	case c == '-' || isDigit(c):
		v, err := s.float()
		if errors.Is(err, errRange) {
			return 0, dd.failAt(off, index, name, fmt.Errorf("%w: %s is beyond the range of float64", ErrNotFinite, s.data[off:s.pos]))
		}
		if err != nil {
			return 0, dd.fail(index, name, err)
		}
		return v, nil
	case c == '"':
		b, err := s.str()
		if err != nil {
			return 0, dd.fail(index, name, err)
		}
		if isNonFiniteWord(b) {
			return 0, dd.failAt(off, index, name, fmt.Errorf("%w: got the string %q; JSON numbers cannot be NaN or infinite", ErrNotFinite, b))
		}
		return 0, dd.failAt(off, index, name, fmt.Errorf("%w: got a string", ErrNotNumber))
	default:
		return 0, dd.wrongKind(index, name, ErrNotNumber, "the value", "a number")
	}
}

// isNonFiniteWord reports whether b spells NaN or an infinity, as a producer
// might write them.
func isNonFiniteWord(b []byte) bool {
	w := strings.ToLower(strings.TrimSpace(string(b)))
	w = strings.TrimLeft(w, "+-")
	return w == "nan" || w == "inf" || w == "infinity"
}
