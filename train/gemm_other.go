//go:build !amd64 || purego

package train

// haveFMA is false: there are no assembly kernels for this platform.
const haveFMA = false

func gemm4x8F64(int, *float64, int, int, *float64, int, *float64, int)  { panic("unreachable") }
func gemm4x4F64(int, *float64, int, int, *float64, int, *float64, int)  { panic("unreachable") }
func gemm4x16F32(int, *float32, int, int, *float32, int, *float32, int) { panic("unreachable") }
func gemm4x8F32(int, *float32, int, int, *float32, int, *float32, int)  { panic("unreachable") }
