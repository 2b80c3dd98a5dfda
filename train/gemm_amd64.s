//go:build amd64 && !purego

// AVX2/FMA micro-kernels for gemmFMA (kernels.go): each adds the product of
// a 4×k block of A (any row and column strides) and a k×w block of B (rows
// contiguous) to a 4×w block of C, keeping the 4×w accumulators in YMM
// registers. Callers check the bounds; the kernels trust their arguments.

#include "textflag.h"

// func gemm4x8F64(k int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int)
//
// c[r*ldc+j] += Σ_l a[r*rsA+l*csA]·b[l*ldb+j] for r < 4, j < 8, l < k.
TEXT ·gemm4x8F64(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), R8
	MOVQ csA+24(FP), R12
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R13
	SHLQ $3, R8
	SHLQ $3, R12
	SHLQ $3, R11
	SHLQ $3, R13
	LEAQ (R8)(R8*2), R10 // 3·rsA
	LEAQ (R13)(R13*2), SI // 3·ldc
	VMOVUPD (DX), Y0
	VMOVUPD 32(DX), Y1
	VMOVUPD (DX)(R13*1), Y2
	VMOVUPD 32(DX)(R13*1), Y3
	VMOVUPD (DX)(R13*2), Y4
	VMOVUPD 32(DX)(R13*2), Y5
	VMOVUPD (DX)(SI*1), Y6
	VMOVUPD 32(DX)(SI*1), Y7
	TESTQ CX, CX
	JZ store
loop:
	VMOVUPD (BX), Y8
	VMOVUPD 32(BX), Y9
	VBROADCASTSD (AX), Y10
	VFMADD231PD Y8, Y10, Y0
	VFMADD231PD Y9, Y10, Y1
	VBROADCASTSD (AX)(R8*1), Y11
	VFMADD231PD Y8, Y11, Y2
	VFMADD231PD Y9, Y11, Y3
	VBROADCASTSD (AX)(R8*2), Y12
	VFMADD231PD Y8, Y12, Y4
	VFMADD231PD Y9, Y12, Y5
	VBROADCASTSD (AX)(R10*1), Y13
	VFMADD231PD Y8, Y13, Y6
	VFMADD231PD Y9, Y13, Y7
	ADDQ R12, AX
	ADDQ R11, BX
	DECQ CX
	JNZ loop
store:
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, 32(DX)
	VMOVUPD Y2, (DX)(R13*1)
	VMOVUPD Y3, 32(DX)(R13*1)
	VMOVUPD Y4, (DX)(R13*2)
	VMOVUPD Y5, 32(DX)(R13*2)
	VMOVUPD Y6, (DX)(SI*1)
	VMOVUPD Y7, 32(DX)(SI*1)
	VZEROUPPER
	RET

// func gemm4x4F64(k int, a *float64, rsA, csA int, b *float64, ldb int, c *float64, ldc int)
//
// c[r*ldc+j] += Σ_l a[r*rsA+l*csA]·b[l*ldb+j] for r < 4, j < 4, l < k.
TEXT ·gemm4x4F64(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), R8
	MOVQ csA+24(FP), R12
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R13
	SHLQ $3, R8
	SHLQ $3, R12
	SHLQ $3, R11
	SHLQ $3, R13
	LEAQ (R8)(R8*2), R10 // 3·rsA
	LEAQ (R13)(R13*2), SI // 3·ldc
	VMOVUPD (DX), Y0
	VMOVUPD (DX)(R13*1), Y1
	VMOVUPD (DX)(R13*2), Y2
	VMOVUPD (DX)(SI*1), Y3
	TESTQ CX, CX
	JZ store
loop:
	VMOVUPD (BX), Y8
	VBROADCASTSD (AX), Y10
	VFMADD231PD Y8, Y10, Y0
	VBROADCASTSD (AX)(R8*1), Y11
	VFMADD231PD Y8, Y11, Y1
	VBROADCASTSD (AX)(R8*2), Y12
	VFMADD231PD Y8, Y12, Y2
	VBROADCASTSD (AX)(R10*1), Y13
	VFMADD231PD Y8, Y13, Y3
	ADDQ R12, AX
	ADDQ R11, BX
	DECQ CX
	JNZ loop
store:
	VMOVUPD Y0, (DX)
	VMOVUPD Y1, (DX)(R13*1)
	VMOVUPD Y2, (DX)(R13*2)
	VMOVUPD Y3, (DX)(SI*1)
	VZEROUPPER
	RET

// func gemm4x16F32(k int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int)
//
// c[r*ldc+j] += Σ_l a[r*rsA+l*csA]·b[l*ldb+j] for r < 4, j < 16, l < k.
TEXT ·gemm4x16F32(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), R8
	MOVQ csA+24(FP), R12
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R13
	SHLQ $2, R8
	SHLQ $2, R12
	SHLQ $2, R11
	SHLQ $2, R13
	LEAQ (R8)(R8*2), R10 // 3·rsA
	LEAQ (R13)(R13*2), SI // 3·ldc
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS (DX)(R13*1), Y2
	VMOVUPS 32(DX)(R13*1), Y3
	VMOVUPS (DX)(R13*2), Y4
	VMOVUPS 32(DX)(R13*2), Y5
	VMOVUPS (DX)(SI*1), Y6
	VMOVUPS 32(DX)(SI*1), Y7
	TESTQ CX, CX
	JZ store
loop:
	VMOVUPS (BX), Y8
	VMOVUPS 32(BX), Y9
	VBROADCASTSS (AX), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS (AX)(R8*1), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS (AX)(R8*2), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VBROADCASTSS (AX)(R10*1), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ R12, AX
	ADDQ R11, BX
	DECQ CX
	JNZ loop
store:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R13*1)
	VMOVUPS Y3, 32(DX)(R13*1)
	VMOVUPS Y4, (DX)(R13*2)
	VMOVUPS Y5, 32(DX)(R13*2)
	VMOVUPS Y6, (DX)(SI*1)
	VMOVUPS Y7, 32(DX)(SI*1)
	VZEROUPPER
	RET

// func gemm4x8F32(k int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int)
//
// c[r*ldc+j] += Σ_l a[r*rsA+l*csA]·b[l*ldb+j] for r < 4, j < 8, l < k.
TEXT ·gemm4x8F32(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), R8
	MOVQ csA+24(FP), R12
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R11
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R13
	SHLQ $2, R8
	SHLQ $2, R12
	SHLQ $2, R11
	SHLQ $2, R13
	LEAQ (R8)(R8*2), R10 // 3·rsA
	LEAQ (R13)(R13*2), SI // 3·ldc
	VMOVUPS (DX), Y0
	VMOVUPS (DX)(R13*1), Y1
	VMOVUPS (DX)(R13*2), Y2
	VMOVUPS (DX)(SI*1), Y3
	TESTQ CX, CX
	JZ store
loop:
	VMOVUPS (BX), Y8
	VBROADCASTSS (AX), Y10
	VFMADD231PS Y8, Y10, Y0
	VBROADCASTSS (AX)(R8*1), Y11
	VFMADD231PS Y8, Y11, Y1
	VBROADCASTSS (AX)(R8*2), Y12
	VFMADD231PS Y8, Y12, Y2
	VBROADCASTSS (AX)(R10*1), Y13
	VFMADD231PS Y8, Y13, Y3
	ADDQ R12, AX
	ADDQ R11, BX
	DECQ CX
	JNZ loop
store:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, (DX)(R13*1)
	VMOVUPS Y2, (DX)(R13*2)
	VMOVUPS Y3, (DX)(SI*1)
	VZEROUPPER
	RET

