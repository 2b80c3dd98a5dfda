package model_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/dagmm/dagmm/model"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to an
// artifact that decodes to the same model and encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	good := encode(f, tinyModel())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte(`{"format":"dagmm-model","version":1,"sha256":"","model":{}}`))
	f.Add(reseal(f, `{"features":["a"],"norm":[{"kind":"none","offset":0,"scale":1}],"encoder":[{"in":1,"out":1,"activation":"linear","w":[1],"b":[0]}]}`))
	f.Add(reseal(f, `{"encoder":[{"in":1,"out":4611686018427387904}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		var first bytes.Buffer
		if err := model.Encode(&first, m); err != nil {
			t.Fatalf("decoded model does not encode: %v", err)
		}
		m2, err := model.Decode(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("re-encoded artifact does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatal("decode→encode→decode changed the model")
		}
		var second bytes.Buffer
		if err := model.Encode(&second, m2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatal("encoding is not stable")
		}
		// A decoded model is valid, so it must make a scorer that scores.
		s, err := model.NewScorer(m)
		if err != nil {
			t.Fatalf("decoded model makes no scorer: %v", err)
		}
		if _, err := s.Score(make([]float64, s.NumFeatures())); err != nil {
			t.Fatalf("scoring zeros: %v", err)
		}
	})
}

// FuzzDecodeModel fuzzes the model field behind a correct digest, so that
// the mutations reach validation and the scorer instead of stopping at the
// checksum.
func FuzzDecodeModel(f *testing.F) {
	good := encode(f, tinyModel())
	body := good[bytes.Index(good, []byte(`"model":`))+len(`"model":`) : len(good)-2]
	f.Add(body)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"features":["a"],"norm":[{"kind":"none","offset":0,"scale":1}],"encoder":[{"in":1,"out":1,"activation":"linear","w":[1],"b":[0]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := model.Decode(bytes.NewReader(reseal(t, string(body))))
		if err != nil {
			return
		}
		s, err := model.NewScorer(m)
		if err != nil {
			t.Fatalf("decoded model makes no scorer: %v", err)
		}
		x := make([]float64, 3*s.NumFeatures())
		for i := range x {
			x[i] = float64(i%7) - 3
		}
		ws := s.NewWorkspace(3)
		if err := s.ScoreBatch(ws, x, make([]model.Result, 3)); err != nil {
			t.Fatalf("scoring: %v", err)
		}
		var buf bytes.Buffer
		if err := model.Encode(&buf, m); err != nil {
			t.Fatalf("decoded model does not encode: %v", err)
		}
	})
}
