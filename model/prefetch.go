package model

import (
	"unsafe"

	"github.com/dagmm/dagmm/internal/prefetch"
)

// Prefetch asks the CPU to bring the memory the scorer's forward pass reads
// into its cache, and returns at once. A service that scores with many
// models in turn calls it when it moves to a model whose memory has gone
// cold: the memory then arrives while the service works, instead of one
// cache miss after another as the forward pass reaches each layer.
func (s *Scorer) Prefetch() { s.Memory().Prefetch() }

// Memory is where a scorer's forward pass reads, to prefetch without
// reading the [Scorer] first: kept beside a service's other data about the
// model, it lets every cache miss of a cold model start at once.
type Memory struct {
	s      *Scorer
	codes  []normCode
	layers *dense // the encoder's, the decoder's following them
	nl     int
	params []float64
}

// Memory returns the scorer's Memory.
func (s *Scorer) Memory() Memory {
	return Memory{s: s, codes: s.codes, layers: unsafe.SliceData(s.enc), nl: len(s.enc) + len(s.dec), params: s.params[:s.hot]}
}

// Prefetch asks the CPU for the memory, as [Scorer.Prefetch] does.
func (m Memory) Prefetch() {
	if m.s == nil {
		return
	}
	prefetch.Range(unsafe.Pointer(m.s), unsafe.Offsetof(m.s.meta))
	prefetch.Range(unsafe.Pointer(unsafe.SliceData(m.codes)), uintptr(len(m.codes)))
	prefetch.Range(unsafe.Pointer(m.layers), uintptr(m.nl)*unsafe.Sizeof(dense{}))
	prefetch.Float64s(m.params)
}
