package train

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BatchedInverse returns the inverses of a stack of square matrices a of
// shape (K, d, d). Its gradient is -A⁻ᵀ·G·A⁻ᵀ for each matrix. Running it
// fails on a singular matrix.
func BatchedInverse(a *G.Node) (*G.Node, error) {
	if err := checkStack(a); err != nil {
		return nil, err
	}
	return G.ApplyOp(&invOp{}, a)
}

// BatchedLogDet returns the log-determinants of a stack of square matrices a
// of shape (K, d, d), as a vector of K. Its gradient is g_k·A_k⁻ᵀ. Running it
// fails on a matrix whose determinant is not positive.
func BatchedLogDet(a *G.Node) (*G.Node, error) {
	if err := checkStack(a); err != nil {
		return nil, err
	}
	return G.ApplyOp(&logdetOp{}, a)
}

func checkStack(a *G.Node) error {
	s := a.Shape()
	if len(s) != 3 || s[1] != s[2] {
		return fmt.Errorf("train: batched matrix op: shape %v, want (K, d, d)", s)
	}
	return nil
}

// stackDims returns K and d of a (K, d, d) value.
func stackDims(v G.Value) (int, int, error) {
	s := v.Shape()
	if len(s) != 3 || s[1] != s[2] {
		return 0, 0, fmt.Errorf("train: shape %v, want (K, d, d)", s)
	}
	return s[0], s[1], nil
}

// toF64 converts src into dst (len(src) elements).
func toF64[T float](dst []float64, src []T) {
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// invOp is the batched inverse (K,d,d) -> (K,d,d).
type invOp struct {
	opBase
	out outBuf
	a64 []float64
	i64 []float64
	wrk []float64
	piv []int
}

func (op *invOp) Arity() int                                        { return 1 }
func (op *invOp) Type() hm.Type                                     { return fnType(3, 3) }
func (op *invOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return shapeOf(ds, 0) }
func (op *invOp) String() string                                    { return "BatchedInverse" }
func (op *invOp) WriteHash(h hash.Hash)                             { writeHash(h, op.String()) }
func (op *invOp) Hashcode() uint32                                  { return hashString(op.String()) }
func (op *invOp) DiffWRT(int) []bool                                { return []bool{true} }

func (op *invOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return invDo[float64](op, vs[0]) },
		func() (G.Value, error) { return invDo[float32](op, vs[0]) })
}

func invDo[T float](op *invOp, v G.Value) (G.Value, error) {
	k, d, err := stackDims(v)
	if err != nil {
		return nil, err
	}
	a, err := sliceOf[T](v)
	if err != nil {
		return nil, err
	}
	out := getBuf[T](&op.out, k*d*d)
	op.a64 = grow(op.a64, d*d)
	op.i64 = grow(op.i64, d*d)
	op.wrk = grow(op.wrk, d*d)
	if len(op.piv) < d {
		op.piv = make([]int, d)
	}
	for m := range k {
		toF64(op.a64, a[m*d*d:(m+1)*d*d])
		if _, _, err := luInverse(op.a64, d, op.i64, op.wrk, op.piv); err != nil {
			return nil, fmt.Errorf("train: batched inverse: matrix %d: %w", m, err)
		}
		for i, x := range op.i64 {
			out[m*d*d+i] = T(x)
		}
	}
	return wrap(&op.out, out, k, d, d), nil
}

// SymDiff: d(A⁻¹) = -A⁻¹ dA A⁻¹, so the gradient is -A⁻ᵀ G A⁻ᵀ.
func (op *invOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	d, err := G.ApplyOp(&invGradOp{}, output, grad)
	return G.Nodes{d}, err
}

// invGradOp computes -A⁻ᵀ·G·A⁻ᵀ from (A⁻¹, G).
type invGradOp struct {
	opBase
	out outBuf
}

func (op *invGradOp) Arity() int                                        { return 2 }
func (op *invGradOp) Type() hm.Type                                     { return fnType(3, 3, 3) }
func (op *invGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return shapeOf(ds, 0) }
func (op *invGradOp) String() string                                    { return "BatchedInverseGrad" }
func (op *invGradOp) WriteHash(h hash.Hash)                             { writeHash(h, op.String()) }
func (op *invGradOp) Hashcode() uint32                                  { return hashString(op.String()) }

func (op *invGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return invGradDo[float64](op, vs) },
		func() (G.Value, error) { return invGradDo[float32](op, vs) })
}

func invGradDo[T float](op *invGradOp, vs []G.Value) (G.Value, error) {
	k, d, err := stackDims(vs[0])
	if err != nil {
		return nil, err
	}
	inv, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	g, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	if len(g) != len(inv) {
		return nil, fmt.Errorf("train: batched inverse gradient: %d gradient values for %d matrix values", len(g), len(inv))
	}
	out := getBuf[T](&op.out, k*d*d)
	for m := range k {
		b := inv[m*d*d : (m+1)*d*d]
		gm := g[m*d*d : (m+1)*d*d]
		o := out[m*d*d : (m+1)*d*d]
		// o[i][j] = -Σ_pq B[p][i] G[p][q] B[j][q]   (B = A⁻¹, so B[p][i] = Bᵀ[i][p])
		for i := range d {
			for j := range d {
				s := 0.0
				for p := range d {
					bpi := float64(b[p*d+i])
					if bpi == 0 {
						continue
					}
					t := 0.0
					for q := range d {
						t += float64(gm[p*d+q]) * float64(b[j*d+q])
					}
					s += bpi * t
				}
				o[i*d+j] = T(-s)
			}
		}
	}
	return wrap(&op.out, out, k, d, d), nil
}

// logdetOp is the batched log-determinant (K,d,d) -> (K).
type logdetOp struct {
	opBase
	out outBuf
	a64 []float64
	i64 []float64
	wrk []float64
	piv []int
}

func (op *logdetOp) Arity() int    { return 1 }
func (op *logdetOp) Type() hm.Type { return fnType(3, 1) }
func (op *logdetOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0]}, nil
}
func (op *logdetOp) String() string        { return "BatchedLogDet" }
func (op *logdetOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *logdetOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *logdetOp) DiffWRT(int) []bool    { return []bool{true} }

func (op *logdetOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return logdetDo[float64](op, vs[0]) },
		func() (G.Value, error) { return logdetDo[float32](op, vs[0]) })
}

func logdetDo[T float](op *logdetOp, v G.Value) (G.Value, error) {
	k, d, err := stackDims(v)
	if err != nil {
		return nil, err
	}
	a, err := sliceOf[T](v)
	if err != nil {
		return nil, err
	}
	out := getBuf[T](&op.out, k)
	op.a64 = grow(op.a64, d*d)
	op.i64 = grow(op.i64, d*d)
	op.wrk = grow(op.wrk, d*d)
	if len(op.piv) < d {
		op.piv = make([]int, d)
	}
	for m := range k {
		toF64(op.a64, a[m*d*d:(m+1)*d*d])
		ld, sign, err := luInverse(op.a64, d, op.i64, op.wrk, op.piv)
		if err != nil {
			return nil, fmt.Errorf("train: batched log-determinant: matrix %d: %w", m, err)
		}
		if sign <= 0 {
			return nil, fmt.Errorf("train: batched log-determinant: matrix %d: determinant is negative", m)
		}
		out[m] = T(ld)
	}
	return wrap(&op.out, out, k), nil
}

// SymDiff: d log det A = tr(A⁻¹ dA), so the gradient is g·A⁻ᵀ.
func (op *logdetOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	d, err := G.ApplyOp(&logdetGradOp{}, inputs[0], grad)
	return G.Nodes{d}, err
}

// logdetGradOp computes g_k·A_k⁻ᵀ from (A, g).
type logdetGradOp struct {
	opBase
	out outBuf
	a64 []float64
	i64 []float64
	wrk []float64
	piv []int
}

func (op *logdetGradOp) Arity() int                                        { return 2 }
func (op *logdetGradOp) Type() hm.Type                                     { return fnType(3, 1, 3) }
func (op *logdetGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return shapeOf(ds, 0) }
func (op *logdetGradOp) String() string                                    { return "BatchedLogDetGrad" }
func (op *logdetGradOp) WriteHash(h hash.Hash)                             { writeHash(h, op.String()) }
func (op *logdetGradOp) Hashcode() uint32                                  { return hashString(op.String()) }

func (op *logdetGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return logdetGradDo[float64](op, vs) },
		func() (G.Value, error) { return logdetGradDo[float32](op, vs) })
}

func logdetGradDo[T float](op *logdetGradOp, vs []G.Value) (G.Value, error) {
	k, d, err := stackDims(vs[0])
	if err != nil {
		return nil, err
	}
	a, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	g, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	if len(g) != k {
		return nil, fmt.Errorf("train: batched log-determinant gradient: %d gradient values for %d matrices", len(g), k)
	}
	out := getBuf[T](&op.out, k*d*d)
	op.a64 = grow(op.a64, d*d)
	op.i64 = grow(op.i64, d*d)
	op.wrk = grow(op.wrk, d*d)
	if len(op.piv) < d {
		op.piv = make([]int, d)
	}
	for m := range k {
		toF64(op.a64, a[m*d*d:(m+1)*d*d])
		if _, _, err := luInverse(op.a64, d, op.i64, op.wrk, op.piv); err != nil {
			return nil, fmt.Errorf("train: batched log-determinant gradient: matrix %d: %w", m, err)
		}
		gm := float64(g[m])
		for i := range d {
			for j := range d {
				out[m*d*d+i*d+j] = T(gm * op.i64[j*d+i])
			}
		}
	}
	return wrap(&op.out, out, k, d, d), nil
}

// grow returns s with length n, reusing its storage when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
