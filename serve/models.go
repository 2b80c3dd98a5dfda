package serve

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/dagmm/dagmm/model"
)

// modelSet is the one owner of a service's models: it asks the source
// which model scores a host, and prepares each model for serving once
// ([modelState]: its decoder, its pre-encoded JSON, its hosts' series),
// however many hosts it scores. It is safe for concurrent use.
//
// A state is kept until retain drops it, which [Service.Reload] does for
// every model but the source's new default: a source whose models come and
// go while serving (a registry's least-recently-used cache) must have the
// service drop the states of the models it evicts, or they stay in memory.
type modelSet struct {
	src        ModelSource
	maxSamples int
	method     model.Method
	log        *slog.Logger
	series     *seriesBudget // shared by the hosts' series of every model
	hosts      *hostGauges   // the per-host series on /metrics, or nil

	// last is the state prepared last: with a single model, the only one,
	// found without a map look-up. Hits on other models do not move it, so
	// that workers alternating models do not write to it.
	last   atomic.Pointer[modelState]
	states sync.Map // *Loaded -> *modelState
	mu     sync.Mutex
}

// newModelSet prepares the source's default model; it fails when that
// model cannot be served.
func newModelSet(src ModelSource, maxSamples int, method model.Method, log *slog.Logger) (*modelSet, error) {
	ms := &modelSet{src: src, maxSamples: maxSamples, method: method, log: log, series: newSeriesBudget(seriesBudgetBytes)}
	st, err := ms.prepare(src.Default())
	if err != nil {
		return nil, err
	}
	ms.states.Store(st.l, st)
	ms.last.Store(st)
	return ms, nil
}

// forHost returns the state of the model that scores host's samples.
func (ms *modelSet) forHost(host string) (*modelState, error) {
	l, err := ms.src.ForHost(host)
	if err != nil {
		return nil, fmt.Errorf("serve: model for host %q: %w", host, err)
	}
	return ms.stateOf(l), nil
}

// def returns the state of the source's default model.
func (ms *modelSet) def() *modelState { return ms.stateOf(ms.src.Default()) }

// stateOf returns l's state, preparing it on first use. A model that
// cannot be prepared is logged and served by the state used last (the
// previous model), as a reload refuses a bad file.
func (ms *modelSet) stateOf(l *Loaded) *modelState {
	last := ms.last.Load()
	if last.l == l {
		return last
	}
	if st := l.state.Load(); st != nil && st.set == ms {
		return st
	}
	if v, ok := ms.states.Load(l); ok {
		return v.(*modelState)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if v, ok := ms.states.Load(l); ok {
		return v.(*modelState)
	}
	st, err := ms.prepare(l)
	if err != nil {
		ms.log.Error("model from the source cannot be served; keeping the previous one", "version", l.Version, "err", err)
		st = last
	}
	ms.states.Store(l, st)
	l.state.Store(st)
	ms.last.Store(st)
	return st
}

// prepare builds l's state, its hosts' series drawing on the shared budget.
func (ms *modelSet) prepare(l *Loaded) (*modelState, error) {
	var dst *modelState // the first state of l goes in l's memory
	if l.claimed.CompareAndSwap(false, true) {
		dst = &l.own
	}
	st, err := newModelStateLike(dst, l, ms.maxSamples, ms.method, ms.last.Load())
	if err != nil {
		return nil, err
	}
	if st.series != nil {
		st.series.budget = ms.series
	}
	st.set = ms
	return st, nil
}

// retain forgets the states of the models keep does not want (a reload
// replaced them), returning their hosts' series to the budget unless a
// kept model is served by the same state (a model that could not be
// prepared is served by the previous one). Workers scoring with a
// forgotten state finish with it.
func (ms *modelSet) retain(keep func(*Loaded) bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	kept := map[*modelState]bool{}
	var gone []*modelState
	ms.states.Range(func(k, v any) bool {
		st := v.(*modelState)
		if keep(k.(*Loaded)) {
			kept[st] = true
		} else {
			ms.states.Delete(k)
			k.(*Loaded).state.CompareAndSwap(st, nil)
			gone = append(gone, st)
		}
		return true
	})
	for _, st := range gone {
		if !kept[st] && st.series != nil {
			st.series.release()
		}
	}
}

// drop forgets l's state: its source no longer serves it (an evicted or
// replaced registry model).
func (ms *modelSet) drop(l *Loaded) {
	ms.retain(func(m *Loaded) bool { return m != l })
}
