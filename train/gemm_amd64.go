//go:build amd64 && !purego

package train

import "golang.org/x/sys/cpu"

// haveFMA reports whether the AVX2/FMA kernels of gemm_amd64.s can run.
var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func gemm4x8F64(k int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int)

//go:noescape
func gemm4x4F64(k int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int)

//go:noescape
func gemm4x16F32(k int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func gemm4x8F32(k int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int)
