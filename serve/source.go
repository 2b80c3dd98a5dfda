package serve

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dagmm/dagmm/internal/prefetch"
	"github.com/dagmm/dagmm/model"
)

// Loaded is one model ready to serve: its scorer and what identifies it.
// It is immutable once made.
type Loaded struct {
	// Scorer scores with the model; it is safe for concurrent use.
	Scorer *model.Scorer
	// Name is the model's name in the Open Inference Protocol paths and in
	// events.
	Name string
	// Version identifies the model's content: the first 12 hex digits of
	// the SHA-256 digest recorded in the artifact; for a model from a
	// registry ([RegistrySource]), its version number there.
	Version string
	// Origin says where the model came from, e.g. its file path.
	Origin string
	// LoadedAt is when the model was loaded.
	LoadedAt time.Time

	// state is the serving state a service prepared for the model, found
	// without a map look-up: a fleet's host model is read cold, and each
	// look-up costs cache misses.
	state atomic.Pointer[modelState]
	// promoted is when [CachedModel] last moved the model to the front of
	// its cache (Unix nanoseconds): beside state, the two are read from
	// one cache line.
	promoted atomic.Int64
	// own holds the first state prepared for the model, once claimed:
	// inside the Loaded, it costs no cache miss of its own.
	own     modelState
	claimed atomic.Bool
}

// Models resolves the model that scores a host's samples: what the scoring
// pipeline asks of a model source, once per sample. [FileSource] and
// [StaticSource] serve one model to every host; a per-host registry
// implements the same methods. Both must be safe for concurrent use and
// cheap: a single model's are one atomic load.
type Models interface {
	// ForHost returns the model that scores host's samples; host is ""
	// for a sample without one. An error wrapping [ErrLearning] (the host
	// has no model yet) leaves the sample unscored and counted; any other
	// error makes the sample's message a dead letter.
	ForHost(host string) (*Loaded, error)
	// Default returns the model the service describes (GET /v1/model, the
	// Open Inference Protocol paths) and decodes samples for: the models
	// of every host take its features. It is never nil.
	Default() *Loaded
}

// ModelSource owns the models a service scores with, and reloads them.
// All methods must be safe for concurrent use.
type ModelSource interface {
	Models
	// Reload reads the source again. When the new model is valid it
	// becomes current; otherwise the current model stays and the error
	// says why. It returns the default model afterwards (the same pointer
	// when nothing changed).
	Reload(ctx context.Context) (*Loaded, error)
	// Watch blocks until ctx is done, sending on changed (without
	// blocking: the channel should have a buffer of one) each time the
	// source changes upstream; the service then calls Reload. It returns
	// nil when ctx is done. A source that never changes may return nil at
	// once.
	Watch(ctx context.Context, changed chan<- struct{}) error
}

// FileSource is a [ModelSource] that serves one artifact file. Reload
// re-reads the file and swaps the new model in only when it loads and
// validates; Watch polls the file's modification time and size.
type FileSource struct {
	path string
	name string
	poll time.Duration

	cur atomic.Pointer[Loaded]

	mu    sync.Mutex // serialises Reload
	stamp fileStamp  // of the file the current model was read from
}

// fileStamp is what Watch compares to notice a change.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func stampOf(fi os.FileInfo) fileStamp { return fileStamp{fi.ModTime(), fi.Size()} }

// NewFileSource loads the artifact at path and returns a source serving it
// under the given name. poll is Watch's interval; zero or negative makes
// Watch return at once. It fails when the file does not load.
func NewFileSource(path, name string, poll time.Duration) (*FileSource, error) {
	f := &FileSource{path: path, name: name, poll: poll}
	l, st, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cur.Store(l)
	f.stamp = st
	return f, nil
}

// Path returns the artifact's path.
func (f *FileSource) Path() string { return f.path }

// Default returns the model serving now.
func (f *FileSource) Default() *Loaded { return f.cur.Load() }

// ForHost returns the model serving now, whatever the host.
func (f *FileSource) ForHost(string) (*Loaded, error) { return f.cur.Load(), nil }

// Reload re-reads the file. A file whose model has the same version as the
// current one changes nothing (the current pointer is returned).
func (f *FileSource) Reload(ctx context.Context) (*Loaded, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return f.cur.Load(), err
	}
	l, st, err := f.load()
	if err != nil {
		return f.cur.Load(), err
	}
	f.stamp = st
	if cur := f.cur.Load(); cur.Version == l.Version {
		return cur, nil
	}
	f.cur.Store(l)
	return l, nil
}

// Watch polls the file every poll interval and notifies changed when its
// modification time or size differs from the last seen. It notifies once
// per change, so a bad file is retried only when it changes again.
func (f *FileSource) Watch(ctx context.Context, changed chan<- struct{}) error {
	if f.poll <= 0 {
		return nil
	}
	f.mu.Lock()
	seen := f.stamp
	f.mu.Unlock()
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			continue // a file being replaced may be missing for a moment
		}
		if st := stampOf(fi); st != seen {
			seen = st
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}

// load reads, decodes and validates the file, and prepares its scorer.
func (f *FileSource) load() (*Loaded, fileStamp, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("serve: load model %s: %w", f.path, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("serve: load model %s: %w", f.path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(file); err != nil {
		return nil, fileStamp{}, fmt.Errorf("serve: load model %s: %w", f.path, err)
	}
	l, err := LoadArtifact(buf.Bytes(), f.name, f.path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("serve: load model %s: %w", f.path, err)
	}
	return l, stampOf(fi), nil
}

// LoadArtifact decodes and validates an artifact (see [model.Decode]) and
// prepares it to serve under name; origin says where it came from.
func LoadArtifact(data []byte, name, origin string) (*Loaded, error) {
	m, digest, err := model.DecodeDigest(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	s, err := model.NewScorer(m)
	if err != nil {
		return nil, err
	}
	return &Loaded{Scorer: s, Name: name, Version: digest[:12], Origin: origin, LoadedAt: time.Now()}, nil
}

// StaticSource is a [ModelSource] that always serves the same model: for
// tests and embedding.
type StaticSource struct{ l *Loaded }

// NewStaticSource returns a source serving l. It panics if l or its
// Scorer is nil.
func NewStaticSource(l *Loaded) *StaticSource {
	if l == nil || l.Scorer == nil {
		panic("serve: NewStaticSource: nil model")
	}
	return &StaticSource{l: l}
}

// Default returns the model.
func (s *StaticSource) Default() *Loaded { return s.l }

// ForHost returns the model, whatever the host.
func (s *StaticSource) ForHost(string) (*Loaded, error) { return s.l, nil }

// Reload does nothing and returns the model.
func (s *StaticSource) Reload(context.Context) (*Loaded, error) { return s.l, nil }

// Watch returns nil at once: the source never changes.
func (s *StaticSource) Watch(context.Context, chan<- struct{}) error { return nil }

// promoteEvery is how often at most a cached model's use moves it to the
// front of its least-recently-used cache ([CachedModel]). A move takes the
// cache's exclusive lock and reads its neighbours' entries, cold in a
// large fleet; hosts report every 10 s to a minute, so a minute makes a
// busy host's model move once in several samples. The cost: the cache's
// order is that of each model's last move, up to a minute older than its
// last use.
const promoteEvery = time.Minute

// CachedModel looks host's model up in c, a least-recently-used cache of
// models as [RegistrySource] keeps them, and reports whether it is there. A
// hit moves the model to the front of c at most once a minute: the look-up
// is otherwise a read, which workers make at the same time without
// waiting for each other, and eviction follows use to within a minute.
func CachedModel(c *lru.Cache[string, *Loaded], host string) (*Loaded, bool) {
	l, ok := c.Peek(host)
	if !ok {
		return nil, false
	}
	prefetch.Struct(l) // a host model's Loaded, its serving state inside, is read cold
	now := time.Now().UnixNano()
	if last := l.promoted.Load(); now-last >= int64(promoteEvery) && l.promoted.CompareAndSwap(last, now) {
		c.Get(host)
	}
	return l, true
}
