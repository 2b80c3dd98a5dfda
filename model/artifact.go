package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FormatName is the "format" field of every artifact this package writes.
const FormatName = "dagmm-model"

// MaxArtifactSize is the largest artifact [Decode] reads (1 GiB).
const MaxArtifactSize = 1 << 30

// envelope is the artifact's top-level JSON document. Model holds the exact
// bytes that SHA256 digests.
type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	SHA256  string          `json:"sha256"`
	Model   json.RawMessage `json:"model"`
}

// Encode validates m and writes it to w as one JSON document:
//
//	{"format":"dagmm-model","version":1,"sha256":"<hex>","model":{...}}
//
// where sha256 is the SHA-256 digest of the exact bytes of the model field,
// followed by a newline. The encoding is deterministic (the same Model always
// gives the same bytes) and float64 values round-trip exactly.
func Encode(w io.Writer, m *Model) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("model: encode: %w", err)
	}
	sum := sha256.Sum256(body)
	// The envelope is written by hand: json.Marshal would re-compact the raw
	// model bytes, and they must stay exactly the bytes the digest covers.
	var buf bytes.Buffer
	buf.Grow(len(body) + 160)
	fmt.Fprintf(&buf, `{"format":%q,"version":%d,"sha256":%q,"model":`, FormatName, FormatVersion, hex.EncodeToString(sum[:]))
	buf.Write(body)
	buf.WriteString("}\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("model: encode: %w", err)
	}
	return nil
}

// Decode reads one artifact from r and returns the model it holds. It
// refuses, with an error that matches the sentinel in brackets: an empty
// input [ErrEmpty]; one that ends early [ErrTruncated]; one that is not JSON
// or not a dagmm model [ErrNotModel]; another format version [ErrVersion];
// model bytes that do not match the digest [ErrChecksum]; and a model that
// fails [Model.Validate] [ErrInvalid].
func Decode(r io.Reader) (*Model, error) {
	m, _, err := DecodeDigest(r)
	return m, err
}

// DecodeDigest is [Decode] that also returns the artifact's digest: the
// lower-case hex SHA-256 of the model's bytes, checked against the one the
// artifact records. The digest is the model's identity; equal digests are
// the same model.
func DecodeDigest(r io.Reader) (*Model, string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxArtifactSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("model: read artifact: %w", err)
	}
	if len(data) > MaxArtifactSize {
		return nil, "", fmt.Errorf("%w: larger than %d bytes", ErrNotModel, MaxArtifactSize)
	}
	env, err := decodeEnvelope(data)
	if err != nil {
		return nil, "", err
	}
	m := new(Model)
	dec := json.NewDecoder(bytes.NewReader(env.Model))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, "", fmt.Errorf("%w: model field: %v", ErrNotModel, err)
	}
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	return m, env.SHA256, nil
}

// decodeEnvelope parses the artifact's envelope and checks its format,
// version and digest.
func decodeEnvelope(data []byte) (*envelope, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, ErrEmpty
	}
	if trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object (starts with %q)", ErrNotModel, preview(trimmed))
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			if endsEarly(trimmed) {
				return nil, fmt.Errorf("%w: the JSON document ends early after %d bytes", ErrTruncated, len(data))
			}
			return nil, fmt.Errorf("%w: malformed JSON at byte %d: %v", ErrNotModel, se.Offset, se)
		}
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, fmt.Errorf("%w: field %q is a JSON %s, want %s", ErrNotModel, te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotModel, err)
	}
	switch {
	case env.Format == "":
		return nil, fmt.Errorf("%w: no \"format\" field (want %q)", ErrNotModel, FormatName)
	case env.Format != FormatName:
		return nil, fmt.Errorf("%w: format is %q, want %q", ErrNotModel, env.Format, FormatName)
	case env.Version != FormatVersion:
		return nil, fmt.Errorf("%w: the artifact has version %d, this build reads version %d", ErrVersion, env.Version, FormatVersion)
	case len(env.Model) == 0 || string(env.Model) == "null":
		return nil, fmt.Errorf("%w: no \"model\" field", ErrNotModel)
	}
	sum := sha256.Sum256(env.Model)
	if got := hex.EncodeToString(sum[:]); got != env.SHA256 {
		return nil, fmt.Errorf("%w (sha256 of the model is %s, the artifact records %q)", ErrChecksum, got, env.SHA256)
	}
	return &env, nil
}

// endsEarly reports whether data is a well-formed prefix of a JSON document
// that ends while still inside a value: what a truncated file looks like.
func endsEarly(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return errors.Is(err, io.ErrUnexpectedEOF) || (err == io.EOF && depth > 0)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// preview returns the first few bytes of data for an error message.
func preview(data []byte) string {
	if len(data) > 16 {
		data = data[:16]
	}
	return string(data)
}

// Save writes m to path atomically: it encodes m to a temporary file in the
// same directory, syncs it, and renames it over path, so that a reader sees
// either the old artifact or the new one, never a partial file. The file is
// created with mode 0644.
func Save(path string, m *Model) error {
	if err := save(path, m); err != nil {
		return fmt.Errorf("save model %s: %w", path, err)
	}
	return nil
}

func save(path string, m *Model) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = Encode(f, m)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Load reads and decodes the artifact at path (see [Decode] for what it
// refuses). Errors name the path: "load model <path>: ...".
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}
