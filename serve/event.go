package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Event is a scored sample as published on NATS: to "anomalies.<host>" for
// an anomaly, and to "scores.<host>" for every sample when scores are
// published. The HTTP score endpoint returns the same fields per sample,
// without Model, ModelVersion, Threshold and Source.
//
// Example:
//
//	{"host":"web-1","ts":"2026-11-24T10:00:00Z","model":"dagmm","model_version":"3f2a9c0d1b4e",
//	 "energy":14.2,"threshold":9.87,"anomaly":true,"severity":72.4,"band":"medium",
//	 "explanation_method":"counterfactual",
//	 "explanation":[{"feature":"cpu_usage","actual":97,"expected":41.5,"share":0.82}, ...],
//	 "source":{"subject":"metrics.web-1","stream":"DAGMM_METRICS","seq":1042,"index":0,"id":"DAGMM_METRICS:1042:0"}}
type Event struct {
	// Host is the sample's host (see the package documentation).
	Host string `json:"host"`
	// TS is the sample's time.
	TS time.Time `json:"ts"`
	// Model and ModelVersion identify the model that scored the sample.
	Model        string `json:"model,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	// Energy is the sample energy; higher is more unusual.
	Energy Float `json:"energy"`
	// Score is what Anomaly and Severity are judged on when the model
	// scores over a window of each host's samples: the larger of Energy
	// and the mean energy of the host's last samples ([model.Model.Window]).
	// Absent for a model without a window, whose score is Energy.
	Score Float `json:"score,omitzero"`
	// Threshold is the model's anomaly threshold.
	Threshold Float `json:"threshold,omitzero"`
	// Anomaly reports Energy > Threshold, or a value of a feature that was
	// constant in training other than that constant
	// ([model.Model.Departures]), which the explanation then names first.
	Anomaly bool `json:"anomaly"`
	// Learning, only in HTTP responses in fleet mode, marks a sample not
	// scored because its host has no model yet (and no fleet model scores
	// it); the scoring fields are then zero.
	Learning bool `json:"learning,omitempty"`
	// Severity places the energy among the training energies on a scale
	// of 0 to 100, above 50 exactly for an anomaly, and Band names its
	// range: normal, low, medium, high or critical (see
	// [model.Calibration.Severity]).
	Severity float64 `json:"severity"`
	Band     string  `json:"band"`
	// ExplanationMethod is how the explanation was computed (see
	// [model.Method]); Explanation has one entry per feature, largest
	// share first. Anomaly events always have them; scores and HTTP
	// results as asked.
	ExplanationMethod string               `json:"explanation_method,omitempty"`
	Explanation       []FeatureExplanation `json:"explanation,omitempty"`
	// Source identifies the message the sample came from (NATS only). It
	// is absent from the events of vectors assembled from Telegraf's
	// measurements, which come from several messages: Host and TS identify
	// them.
	Source *Source `json:"source,omitempty"`
}

// FeatureExplanation is one feature's part in a score.
type FeatureExplanation struct {
	Feature string `json:"feature"`
	// Actual is the sample's value.
	Actual Float `json:"actual"`
	// Expected is the model's reconstruction of it, in the feature's units.
	Expected Float `json:"expected"`
	// Share is the feature's share of the anomaly (0 to 1; the shares of
	// a sample sum to 1), by the explanation method.
	Share Float `json:"share"`
}

// Source identifies where a sample came from, so that a consumer can drop
// the duplicates that at-least-once delivery brings.
type Source struct {
	// Subject is the subject of the message.
	Subject string `json:"subject"`
	// Stream and Seq are the JetStream stream and sequence of the message
	// (durable mode only).
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	// Index is the sample's position in the message (0 for a single
	// sample).
	Index int `json:"index"`
	// ID is a key unique per sample: "<stream>:<seq>:<index>" in durable
	// mode, "<Nats-Msg-Id>:<index>" when the producer set that header, and
	// empty otherwise.
	ID string `json:"id,omitempty"`
}

// Float is a float64 that encodes NaN and ±Inf, which JSON numbers cannot
// hold, as the strings "NaN", "+Inf" and "-Inf" (as Prometheus does), and
// decodes them back. An energy is +Inf when a sample is so far from the
// training data that every density underflows.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) { return appendFloat(nil, float64(f)), nil }

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = Float(math.NaN())
		case "+Inf", "Inf":
			*f = Float(math.Inf(1))
		case "-Inf":
			*f = Float(math.Inf(-1))
		default:
			return fmt.Errorf("serve: %q is not a number", s)
		}
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New("serve: " + string(b) + " is not a number")
	}
	*f = Float(v)
	return nil
}

// appendFloat appends v as a JSON number, or as a string for NaN and ±Inf.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigit = "0123456789abcdef"

// appendTime appends t as a JSON RFC 3339 string with nanoseconds.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
