package train

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"slices"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds what the custom Gorgonia ops share. Every op here works on
// float64 and float32 tensors (the kernels are generic over [float]) and
// keeps its output buffer between runs: the graph is built for one batch
// size, so an op's output has the same shape on every run, and reusing the
// buffer spares the allocation Gorgonia's own ops pay on every step. An op
// always overwrites its whole output and never reads its previous output, so
// an in-place write by a later op between runs is harmless. Each op value
// belongs to one node of one graph.

// float is the element type of a graph.
type float interface{ ~float32 | ~float64 }

// opBase gives the methods every op here has in common.
type opBase struct{}

func (opBase) ReturnsPtr() bool     { return false }
func (opBase) CallsExtern() bool    { return false }
func (opBase) OverwritesInput() int { return -1 }

// DiffWRT and SymDiff make every op here a symbolic-differentiation op
// that no gradient flows back through unless it says otherwise (the forward
// ops do). In a training graph of several steps (buildTrainGraph), a step's
// parameters are the previous optimiser step's outputs, and Gorgonia's
// gradient analysis asks every op on the way for them.
func (opBase) DiffWRT(n int) []bool { return make([]bool, n) }
func (opBase) SymDiff(inputs G.Nodes, _, _ *G.Node) (G.Nodes, error) {
	return make(G.Nodes, len(inputs)), nil
}

// hashString hashes an op's description for Hashcode.
func hashString(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// writeHash writes an op's description for WriteHash.
func writeHash(h hash.Hash, s string) { fmt.Fprint(h, s) }

// tt is the type of a tensor of the given number of dimensions over the
// type variable a; dims 0 is a scalar of type a.
func tt(dims int) hm.Type {
	a := hm.TypeVariable('a')
	if dims == 0 {
		return a
	}
	return G.TensorType{Dims: dims, Of: a}
}

// fnType is the type of an op from the dimensions of its inputs and output.
func fnType(dims ...int) hm.Type {
	ts := make([]hm.Type, len(dims))
	for i, d := range dims {
		ts[i] = tt(d)
	}
	return hm.NewFnType(ts...)
}

// shapeOf returns the shape of input i given to InferShape.
func shapeOf(ds []G.DimSizer, i int) (tensor.Shape, error) {
	if i >= len(ds) {
		return nil, fmt.Errorf("train: op input %d missing", i)
	}
	s, ok := ds[i].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("train: op input %d: shape is %T, want tensor.Shape", i, ds[i])
	}
	return s, nil
}

// outBuf is an op's reusable output storage.
type outBuf struct {
	data any           // []float64 or []float32
	t    *tensor.Dense // data as the op's last output, nil after data changes
}

// gemmScratch keeps an op's matrix-product scratch between runs.
type gemmScratch struct {
	g any // *fmaGemm[T] for the graph's element type
}

// scratchOf returns s's scratch for element type T.
func scratchOf[T float](s *gemmScratch) *fmaGemm[T] {
	if g, ok := s.g.(*fmaGemm[T]); ok {
		return g
	}
	g := new(fmaGemm[T])
	s.g = g
	return g
}

// getBuf returns a slice of n elements of type T, reusing the previous one
// when it fits. Its contents are unspecified.
func getBuf[T float](b *outBuf, n int) []T {
	if s, ok := b.data.([]T); ok && len(s) == n {
		return s
	}
	s := make([]T, n)
	b.data, b.t = s, nil
	return s
}

// wrap returns data, the slice getBuf returned for b, as a tensor of the
// given shape: the tensor of the previous run when its shape still holds, so
// that a training step allocates no tensor headers.
func wrap[T float](b *outBuf, data []T, shape ...int) *tensor.Dense {
	if b.t != nil && b.t.Shape().Eq(tensor.Shape(shape)) {
		return b.t
	}
	b.t = dense(data, slices.Clone(shape)...)
	return b.t
}

// dense wraps a slice as a tensor of the given shape without copying.
func dense[T float](data []T, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// sliceOf returns the backing slice of a tensor value of element type T.
func sliceOf[T float](v G.Value) ([]T, error) {
	if d, ok := v.(*tensor.Dense); ok && !d.IsScalar() {
		// Dense.Data builds an interface value, an allocation per call.
		var zero T
		switch any(zero).(type) {
		case float64:
			if d.Dtype() == tensor.Float64 {
				s := d.Float64s()
				return *(*[]T)(unsafe.Pointer(&s)), nil
			}
		case float32:
			if d.Dtype() == tensor.Float32 {
				s := d.Float32s()
				return *(*[]T)(unsafe.Pointer(&s)), nil
			}
		}
	}
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("train: value is %T, want a tensor", v)
	}
	s, ok := t.Data().([]T)
	if !ok {
		return nil, fmt.Errorf("train: tensor holds %T, want %T", t.Data(), s)
	}
	return s, nil
}

// scalarOf returns the value of a scalar (or one-element tensor) value.
func scalarOf(v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F64:
		return float64(*s), nil
	case *G.F32:
		return float64(*s), nil
	case tensor.Tensor:
		switch d := s.Data().(type) {
		case float64:
			return d, nil
		case float32:
			return float64(d), nil
		case []float64:
			if len(d) == 1 {
				return d[0], nil
			}
		case []float32:
			if len(d) == 1 {
				return float64(d[0]), nil
			}
		}
	}
	return 0, fmt.Errorf("train: value %T is not a scalar", v)
}

// newScalar returns a scalar value of the given dtype.
func newScalar(dt tensor.Dtype, v float64) G.Value {
	if dt == tensor.Float32 {
		return G.NewF32(float32(v))
	}
	return G.NewF64(v)
}

// dims2 returns the two dimensions of a matrix value.
func dims2(v G.Value) (int, int, error) {
	s := v.Shape()
	if len(s) != 2 {
		return 0, 0, fmt.Errorf("train: value has shape %v, want a matrix", s)
	}
	return s[0], s[1], nil
}

// dispatch runs f64 or f32 after the element type of v.
func dispatch(v G.Value, f64, f32 func() (G.Value, error)) (G.Value, error) {
	switch v.Dtype() {
	case tensor.Float64:
		return f64()
	case tensor.Float32:
		return f32()
	}
	return nil, fmt.Errorf("train: element type %v, want float64 or float32", v.Dtype())
}

// isFinite reports whether x is neither NaN nor ±Inf.
func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// checkArity reports a wrong number of inputs.
func checkArity(op G.Op, n int) error {
	if n != op.Arity() {
		return fmt.Errorf("train: %v takes %d inputs, got %d", op, op.Arity(), n)
	}
	return nil
}
