// Package prefetch asks the CPU to bring memory into its cache without
// waiting for it: a service that moves among thousands of models, each cold,
// starts the fetch of a model's memory early and computes while it arrives,
// instead of stalling on one cache miss after another. Go has no prefetch
// built-in, hence the few lines of assembly (amd64 and arm64; elsewhere the
// functions do nothing, which is always correct: a prefetch is only a hint).
package prefetch

import "unsafe"

// Float64s asks for the memory of xs.
func Float64s(xs []float64) {
	if len(xs) > 0 {
		Range(unsafe.Pointer(unsafe.SliceData(xs)), uintptr(len(xs))*8)
	}
}

// Struct asks for the memory of *p.
func Struct[T any](p *T) {
	Range(unsafe.Pointer(p), unsafe.Sizeof(*p))
}
