//go:build amd64 || arm64

package prefetch

import "unsafe"

// Range asks for the n bytes from p, a cache line at a time. It never
// faults: a prefetch of memory that is not mapped is dropped.
//
//go:noescape
func Range(p unsafe.Pointer, n uintptr)
