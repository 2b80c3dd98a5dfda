package serve

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dagmm/dagmm/model"
)

// versionOf returns the version a model gets when saved.
func versionOf(t testing.TB, m *model.Model) string {
	t.Helper()
	var b bytes.Buffer
	if err := model.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	l, err := LoadArtifact(b.Bytes(), "x", "mem")
	if err != nil {
		t.Fatal(err)
	}
	return l.Version
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	path, m1 := writeModel(t, dir, 1)
	_, m2 := writeModel(t, dir, 2)
	src, err := NewFileSource(path, "dagmm", 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	l1 := src.Default()
	if l1.Version != versionOf(t, m1) || l1.Name != "dagmm" || l1.Origin != path || l1.Scorer.Threshold() != m1.Calibration.Threshold {
		t.Fatalf("loaded %+v", l1)
	}
	ctx := context.Background()
	// Unchanged file: same pointer.
	if l, err := src.Reload(ctx); err != nil || l != l1 {
		t.Errorf("reload of the same file: %v %v", l, err)
	}
	// Bad files are refused and the current model stays.
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, model.ErrEmpty},
		{"truncated", []byte(`{"format":"dagmm-model","version":1,"sha256":"00","model":{"features":[`), model.ErrTruncated},
		{"not a model", []byte(`{"hello":1}`), model.ErrNotModel},
	} {
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := src.Reload(ctx)
		if !errors.Is(err, tc.want) || l != l1 || src.Default() != l1 {
			t.Errorf("%s: %v (current %p), want %v and the old model", tc.name, err, l, tc.want)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Reload(ctx); !errors.Is(err, os.ErrNotExist) || src.Default() != l1 {
		t.Errorf("missing file: %v", err)
	}
	// The watcher notices a new file.
	wctx, cancel := context.WithCancel(ctx)
	changed := make(chan struct{}, 1)
	done := make(chan error)
	go func() { done <- src.Watch(wctx, changed) }()
	saveModelAt(t, path, m2)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notified")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	l2, err := src.Reload(ctx)
	if err != nil || l2 == l1 || l2.Version != versionOf(t, m2) || src.Default() != l2 {
		t.Errorf("reload of a new model: %+v %v", l2, err)
	}
	if _, err := NewFileSource(filepath.Join(dir, "none.json"), "dagmm", 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewFileSource of a missing file: %v", err)
	}
}

func TestStaticSource(t *testing.T) {
	path, _ := writeModel(t, t.TempDir(), 1)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := LoadArtifact(data, "custom", "memory")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpOnly("")
	cfg.Model.Name = "custom"
	r := start(t, cfg, WithModelSource(NewStaticSource(l)))
	if code, body := r.get(t, "/v2/models/custom/ready"); code != 200 {
		t.Errorf("%d %s", code, body)
	}
	if _, _, err := r.Reload(context.Background(), "test"); err != nil {
		t.Error(err)
	}
	if _, err := New(httpOnly(""), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New without a model: %v", err)
	}
}
