package serve

import (
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dagmm/dagmm/model"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "web-1", `a"b\c`, "tab\there\nnew\r", "\x00\x01\x1f\x7f", "héllo wörld ✓", "bad \xff utf8", "<&>", "\u2028"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q encodes to invalid JSON %s: %v", s, got, err)
			continue
		}
		want := s
		if !utf8.ValidString(s) {
			want = string([]rune(s)) // invalid bytes become U+FFFD
		}
		if back != want {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "web-1", "a\"\\\n", "\xff\xfe", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, got, err)
		}
		if want := string([]rune(s)); back != want {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	})
}

// FuzzFloat checks the Float decoder: it never panics, and what it
// accepts encodes back to an equal value.
func FuzzFloat(f *testing.F) {
	for _, s := range []string{"1", "-2.5e-300", `"+Inf"`, `"-Inf"`, `"NaN"`, `"x"`, "null", "1e999", `"\u0049nf"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Float
		if err := v.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := v.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var w Float
		if err := w.UnmarshalJSON(out); err != nil {
			t.Fatalf("%s -> %s does not decode: %v", b, out, err)
		}
		if !(w == v || (math.IsNaN(float64(w)) && math.IsNaN(float64(v)))) {
			t.Fatalf("%s -> %v -> %s -> %v", b, v, out, w)
		}
	})
}

func TestFloatJSON(t *testing.T) {
	for _, v := range []float64{0, 1.5, -2e-300, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN()} {
		b, err := json.Marshal(Float(v))
		if err != nil {
			t.Fatal(err)
		}
		var back Float
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%v: %s: %v", v, b, err)
		}
		if float64(back) != v && !(math.IsNaN(v) && math.IsNaN(float64(back))) {
			t.Errorf("%v -> %s -> %v", v, b, back)
		}
	}
}

func TestHost(t *testing.T) {
	for _, tc := range []struct{ host, subject, want string }{
		{"h", "metrics.x", "h"}, {"", "metrics.web-2", "web-2"}, {"", "metrics", "metrics"},
	} {
		if got := hostOf(tc.host, tc.subject); got != tc.want {
			t.Errorf("hostOf(%q, %q) = %q", tc.host, tc.subject, got)
		}
	}
}

func TestAppendScoreMatchesEvent(t *testing.T) {
	// The hand-written encoder agrees with encoding/json on Event.
	path, m := writeModel(t, t.TempDir(), 1)
	src, err := NewFileSource(path, "dagmm", 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := newModelState(src.Default(), 10, "")
	if err != nil {
		t.Fatal(err)
	}
	_, anomalies := testData(t, m, 1, 1, 1)
	sc := src.Default().Scorer
	r, ex := scoreExplain(t, sc, anomalies, model.MethodCounterfactual)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	source := &Source{Subject: "metrics.h", Stream: "S", Seq: 7, Index: 2, ID: "S:7:2"}
	b := st.appendScore(nil, "h\"1", ts, &r, true, &ex, source)
	var got Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := Event{
		Host: "h\"1", TS: ts, Model: "dagmm", ModelVersion: src.Default().Version,
		Energy: Float(r.Energy), Threshold: Float(m.Calibration.Threshold), Anomaly: true,
		Severity: r.Severity, Band: r.Band.String(), ExplanationMethod: "counterfactual",
		Source: source,
	}
	for _, c := range ex.Features {
		want.Explanation = append(want.Explanation, FeatureExplanation{c.Feature, Float(c.Actual), Float(c.Expected), Float(c.Share)})
	}
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if string(wb) != string(gb) {
		t.Errorf("encoded\n%s\nwant\n%s", gb, wb)
	}
	if r.Severity <= 50 || r.Band == model.BandNormal {
		t.Errorf("anomaly with severity %v band %v", r.Severity, r.Band)
	}
}

// scoreExplain scores one sample and explains it with method.
func scoreExplain(t testing.TB, s *model.Scorer, x []float64, method model.Method) (model.Result, model.Explanation) {
	t.Helper()
	ws := s.NewWorkspace(1)
	out := make([]model.Result, 1)
	if err := s.ScoreBatch(ws, x, out); err != nil {
		t.Fatal(err)
	}
	var ex model.Explanation
	if err := s.Explain(ws, 0, method, &ex); err != nil {
		t.Fatal(err)
	}
	r := out[0]
	r.Actual, r.Expected, r.Share = nil, nil, nil // views into ws
	return r, ex
}
