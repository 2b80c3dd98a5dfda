package model

import (
	"unsafe"

	"github.com/dagmm/dagmm/internal/prefetch"
)

// Prefetch asks the CPU to bring the scorer's memory into its cache, and
// returns at once. A service that scores with many models in turn calls it
// when it moves to a model whose memory has gone cold: the memory then
// arrives while the service works, instead of one cache miss after
// another as the forward pass reaches each layer.
func (s *Scorer) Prefetch() {
	prefetch.Range(unsafe.Pointer(s), unsafe.Offsetof(s.meta))
	s.Memory().Prefetch()
	prefetch.Range(unsafe.Pointer(unsafe.SliceData(s.enc)), uintptr(len(s.enc)+len(s.dec))*unsafe.Sizeof(dense{}))
}

// Memory is a scorer's parameters, to prefetch without reading the
// [Scorer] first: kept beside a service's other data about the model, it
// lets the cache misses on the Scorer and on its parameters overlap.
type Memory struct {
	params []float64
}

// Memory returns the scorer's Memory.
func (s *Scorer) Memory() Memory { return Memory{params: s.params} }

// Prefetch asks the CPU for the parameters, as [Scorer.Prefetch] does.
func (m Memory) Prefetch() { prefetch.Float64s(m.params) }
