//go:build !amd64 && !arm64

package prefetch

import "unsafe"

// Range asks for the n bytes from p; on this architecture it does nothing.
func Range(p unsafe.Pointer, n uintptr) {}
