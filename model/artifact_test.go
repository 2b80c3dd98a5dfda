package model_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

func encode(t testing.TB, m *model.Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := model.Encode(&buf, m); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// TestGoldenArtifact: testdata/tiny.dagmm.json is what Encode writes for
// tinyModel (-update rewrites it), and it decodes back to tinyModel: files
// written by earlier builds of this format version keep loading.
func TestGoldenArtifact(t *testing.T) {
	path := filepath.Join("testdata", "tiny.dagmm.json")
	got := encode(t, tinyModel())
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./model -run TestGoldenArtifact -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode(tinyModel) differs from %s:\n got %s\nwant %s", path, got, want)
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, tinyModel()) {
		t.Errorf("Load(%s) = %+v, want tinyModel", path, m)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *model.Model
	}{
		{"tiny", tinyModel()},
		{"metrics4", modeltest.Metrics4(2)},
		{"kddcup", modeltest.KDDCup(2)},
		{"spreads", func() *model.Model {
			m := tinyModel()
			for j := range m.Norm {
				m.Norm[j].Spread = 0.25 * float64(j+1)
			}
			return m
		}()},
		{"awkward floats", func() *model.Model {
			m := tinyModel()
			m.Encoder[0].W[0] = math.Copysign(0, -1)
			m.Encoder[0].W[1] = 5e-324 // smallest subnormal
			m.Encoder[0].W[2] = math.MaxFloat64
			m.Encoder[0].W[3] = 0.1 + 0.2
			m.Encoder[0].W[4] = 1e21
			m.Encoder[0].W[5] = -1.0000000000000002
			m.Provenance.Losses = nil
			m.Provenance.Input = "weird \"name\"\n\u2028.parquet"
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.json")
			if err := model.Save(path, tc.m); err != nil {
				t.Fatal(err)
			}
			got, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Errorf("loaded model differs from the saved one")
			}
			// Bit-exact floats, including the sign of zero.
			if a, b := math.Float64bits(got.Encoder[0].W[0]), math.Float64bits(tc.m.Encoder[0].W[0]); a != b {
				t.Errorf("w[0] bits %x, saved %x", a, b)
			}
			// Deterministic: the same model always gives the same bytes.
			first, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if again := encode(t, got); !bytes.Equal(first, again) {
				t.Error("encoding the loaded model gives other bytes than the file")
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", info.Mode().Perm())
			}
		})
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.json")
	if err := model.Save(path, tinyModel()); err != nil {
		t.Fatal(err)
	}
	// Overwrite with another model, then fail to save an invalid one: the
	// file holds the last good model and no temporary file is left behind.
	m2 := modeltest.Metrics4(3)
	if err := model.Save(path, m2); err != nil {
		t.Fatal(err)
	}
	bad := modeltest.Metrics4(4)
	bad.GMM.Phi[0] = -1
	if err := model.Save(path, bad); !errors.Is(err, model.ErrInvalid) || !strings.Contains(err.Error(), "save model "+path) {
		t.Errorf("Save(invalid) = %v, want ErrInvalid naming the path", err)
	}
	got, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m2) {
		t.Error("the file does not hold the last model saved")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only model.json", names)
	}
	if err := model.Save(filepath.Join(dir, "missing", "model.json"), m2); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

// reseal replaces the model field of a valid artifact with body and
// recomputes the digest, as a careful forger would.
func reseal(t testing.TB, body string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	return []byte(`{"format":"dagmm-model","version":1,"sha256":"` + hex.EncodeToString(sum[:]) + `","model":` + body + "}\n")
}

// modelJSON returns tinyModel as JSON after edit.
func modelJSON(t testing.TB, edit func(map[string]any)) string {
	t.Helper()
	b, err := json.Marshal(tinyModel())
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if b, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeRefuses(t *testing.T) {
	good := encode(t, tinyModel())
	body := string(good[strings.Index(string(good), `"model":`)+len(`"model":`) : len(good)-2])
	replace := func(old, new string) []byte {
		if !strings.Contains(string(good), old) {
			t.Fatalf("the artifact has no %q", old)
		}
		return []byte(strings.Replace(string(good), old, new, 1))
	}
	for _, tc := range []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"empty", nil, model.ErrEmpty, "empty"},
		{"whitespace", []byte(" \n\t"), model.ErrEmpty, "empty"},
		{"truncated header", good[:20], model.ErrTruncated, "ends early after 20 bytes"},
		{"truncated in number", good[:len(good)/2], model.ErrTruncated, "truncated"},
		{"truncated before last brace", good[:len(good)-2], model.ErrTruncated, "truncated"},
		{"not json", []byte("PAR1\x00\x01binary"), model.ErrNotModel, `not a JSON object (starts with "PAR1`},
		{"json array", []byte(`[1,2,3]`), model.ErrNotModel, "not a JSON object"},
		{"malformed", []byte(`{"format": dagmm}`), model.ErrNotModel, "malformed JSON at byte"},
		{"trailing garbage", append(bytes.Clone(good), "xyz"...), model.ErrNotModel, "malformed JSON"},
		{"nan literal", replace(`"threshold":`, `"threshold":NaN,"x":`), model.ErrNotModel, "malformed JSON"},
		{"no format", []byte(`{"version":1}`), model.ErrNotModel, `no "format" field`},
		{"other format", replace(`"format":"dagmm-model"`, `"format":"onnx"`), model.ErrNotModel, `format is "onnx", want "dagmm-model"`},
		{"format wrong type", []byte(`{"format":7}`), model.ErrNotModel, `field "format" is a JSON number`},
		{"other version", replace(`"version":1`, `"version":2`), model.ErrVersion, "the artifact has version 2, this build reads version 1"},
		{"no model", []byte(`{"format":"dagmm-model","version":1,"sha256":""}`), model.ErrNotModel, `no "model" field`},
		{"edited byte", replace(`"threshold":3.95`, `"threshold":3.96`), model.ErrChecksum, "edited or corrupted"},
		{"edited digest", replace(`"sha256":"`, `"sha256":"0`), model.ErrChecksum, "edited or corrupted"},
		{"reformatted", func() []byte {
			var buf bytes.Buffer
			json.Indent(&buf, good, "", "  ")
			return buf.Bytes()
		}(), model.ErrChecksum, "edited or corrupted"},
		{"unknown field", reseal(t, modelJSON(t, func(v map[string]any) { v["severity"] = 1 })), model.ErrNotModel, `unknown field "severity"`},
		{"model wrong type", reseal(t, `{"features":"cpu"}`), model.ErrNotModel, "model field"},
		{"non-PD sigma", reseal(t, strings.Replace(body, `"sigma":[0.5,`, `"sigma":[-0.5,`, 1)), model.ErrInvalid, "gmm sigma 0: diagonal (0, 0) is -0.5"},
		{"shape mismatch", reseal(t, modelJSON(t, func(v map[string]any) {
			enc := v["encoder"].([]any)
			l := enc[0].(map[string]any)
			l["w"] = l["w"].([]any)[:4]
		})), model.ErrInvalid, "encoder layer 0: w has 4 values, want 6 (in 2 × out 3)"},
		{"missing features", reseal(t, modelJSON(t, func(v map[string]any) { delete(v, "features") })), model.ErrInvalid, "features: none given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Decode(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatalf("Decode succeeded (%d features), want an error", len(m.Features))
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q does not match %q", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "model: ") {
				t.Errorf("error %q does not start with \"model: \"", err)
			}
			// Load says which file.
			path := filepath.Join(t.TempDir(), "bad.json")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = model.Load(path)
			if !errors.Is(err, tc.is) || !strings.HasPrefix(err.Error(), "load model "+path+": ") {
				t.Errorf("Load error %q: want %q first and %q wrapped", err, "load model "+path+": ", tc.is)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.json")
	_, err := model.Load(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want ErrNotExist naming the path", err)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		m := tinyModel()
		tc.edit(m)
		var buf bytes.Buffer
		err := model.Encode(&buf, m)
		if !errors.Is(err, model.ErrInvalid) {
			t.Errorf("%s: Encode = %v, want ErrInvalid", tc.name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Encode wrote %d bytes of an invalid model", tc.name, buf.Len())
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestEncodeWriteError(t *testing.T) {
	if err := model.Encode(failingWriter{}, tinyModel()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Encode to a failing writer = %v, want the write error", err)
	}
}

// TestDecodeDigest: the digest is the SHA-256 of the model field's bytes,
// the same for the same model, and different once the model changes.
func TestDecodeDigest(t *testing.T) {
	data := encode(t, tinyModel())
	m, digest, err := model.DecodeDigest(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, tinyModel()) {
		t.Errorf("DecodeDigest returned %+v, want tinyModel", m)
	}
	var env struct{ Model json.RawMessage }
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(env.Model)
	if want := hex.EncodeToString(sum[:]); digest != want {
		t.Errorf("digest = %s, want %s", digest, want)
	}
	other := tinyModel()
	other.Calibration.Threshold++
	_, d2, err := model.DecodeDigest(bytes.NewReader(encode(t, other)))
	if err != nil {
		t.Fatal(err)
	}
	if d2 == digest {
		t.Errorf("a changed model kept the digest %s", digest)
	}
	if _, _, err := model.DecodeDigest(bytes.NewReader(data[:len(data)/2])); !errors.Is(err, model.ErrTruncated) {
		t.Errorf("half an artifact: err = %v, want ErrTruncated", err)
	}
}
