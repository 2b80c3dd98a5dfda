package serve

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/dagmm/dagmm/fleet"
)

// RegistryModel is a [ModelSource] that serves one key's current model in
// a fleet registry to every host: single-model mode with the model kept in
// the NATS object store (dagmm models publish KEY model.json). Watch follows
// the registry, so a publish or a rollback of the key is served at once; a
// version that does not load leaves the current one serving.
type RegistryModel struct {
	reg       *fleet.Registry
	key, name string

	cur atomic.Pointer[Loaded]
	mu  sync.Mutex // serialises Reload
}

// NewRegistryModel loads key's current model from reg, to serve under
// name. It fails when the key has no model or its model does not load.
func NewRegistryModel(ctx context.Context, reg *fleet.Registry, key, name string) (*RegistryModel, error) {
	r := &RegistryModel{reg: reg, key: key, name: name}
	l, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	r.cur.Store(l)
	return r, nil
}

// Default returns the model serving now.
func (r *RegistryModel) Default() *Loaded { return r.cur.Load() }

// ForHost returns the model serving now, whatever the host.
func (r *RegistryModel) ForHost(string) (*Loaded, error) { return r.cur.Load(), nil }

// Reload reads the key's current version; the same version as the one
// serving changes nothing (the current pointer is returned).
func (r *RegistryModel) Reload(ctx context.Context) (*Loaded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, err := r.load(ctx)
	if err != nil {
		return r.cur.Load(), err
	}
	if cur := r.cur.Load(); cur.Version == l.Version {
		return cur, nil
	}
	r.cur.Store(l)
	return l, nil
}

// Watch notifies changed once when its watch of the registry starts, then
// on each change of the key's current version, until ctx is done.
func (r *RegistryModel) Watch(ctx context.Context, changed chan<- struct{}) error {
	ch, err := r.reg.Watch(ctx)
	if err != nil {
		return fmt.Errorf("serve: registry model %q: %w", r.key, err)
	}
	// The watch sees changes from now on: one made since the model was
	// loaded is read by a reload, which changes nothing if none was made.
	select {
	case changed <- struct{}{}:
	default:
	}
	for c := range ch {
		if c.Host != r.key {
			continue
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if ctx.Err() == nil {
		return fmt.Errorf("serve: registry model %q: %w", r.key, errors.New("the registry watch ended"))
	}
	return nil
}

// load reads and prepares the key's current version.
func (r *RegistryModel) load(ctx context.Context) (*Loaded, error) {
	origin := "nats:" + r.reg.Config().Objects + "/" + r.key
	data, info, err := r.reg.Get(ctx, r.key)
	if err != nil {
		return nil, fmt.Errorf("serve: load model %s: %w", origin, err)
	}
	l, err := LoadArtifact(data, r.name, origin)
	if err != nil {
		return nil, fmt.Errorf("serve: load model %s version %d: %w", origin, info.Version, err)
	}
	l.Version = strconv.FormatUint(info.Version, 10)
	return l, nil
}
