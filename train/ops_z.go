package train

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// estimationInput returns z = [zc, rel, cos] as one node: for each row of
// the normalised input x (n×d) and its reconstruction xr (n×d),
// rel = ‖x − xr‖ / (‖x‖ + ε) and cos = x·xr / (‖x‖·‖xr‖ + ε), with
// ε = model.DistanceEpsilon; zc is the code (n×c) and z is n×(c+2). The
// gradient flows to zc and xr.
func estimationInput(x, zc, xr *G.Node) (*G.Node, error) {
	xs, cs, rs := x.Shape(), zc.Shape(), xr.Shape()
	if len(xs) != 2 || len(cs) != 2 || !xs.Eq(rs) || cs[0] != xs[0] {
		return nil, fmt.Errorf("train: estimation input: shapes x %v, code %v, reconstruction %v do not fit", xs, cs, rs)
	}
	return G.ApplyOp(&zOp{}, x, zc, xr)
}

// zOp is (x, zc, xr) -> [zc, rel, cos].
type zOp struct {
	opBase
	out outBuf
}

func (op *zOp) Arity() int    { return 3 }
func (op *zOp) Type() hm.Type { return fnType(2, 2, 2, 2) }
func (op *zOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	c, err := shapeOf(ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{c[0], c[1] + 2}, nil
}
func (op *zOp) String() string        { return "EstimationInput" }
func (op *zOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *zOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *zOp) DiffWRT(int) []bool    { return []bool{false, true, true} }

func (op *zOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return zDo[float64](op, vs) },
		func() (G.Value, error) { return zDo[float32](op, vs) })
}

// rowStats returns ‖x‖, ‖xr‖, ‖x−xr‖ and x·xr of one row, summed in float64.
func rowStats[T float](x, xr []T) (nx, nr, nd, s float64) {
	var sxx, srr, sdd float64
	for j, a := range x {
		av, bv := float64(a), float64(xr[j])
		e := av - bv
		sxx += av * av
		srr += bv * bv
		sdd += e * e
		s += av * bv
	}
	return math.Sqrt(sxx), math.Sqrt(srr), math.Sqrt(sdd), s
}

func zDo[T float](op *zOp, vs []G.Value) (G.Value, error) {
	n, d, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	nc, c, err := dims2(vs[1])
	if err != nil {
		return nil, err
	}
	if nc != n {
		return nil, fmt.Errorf("train: estimation input: %d code rows for %d input rows", nc, n)
	}
	x, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	zc, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	xr, err := sliceOf[T](vs[2])
	if err != nil {
		return nil, err
	}
	if len(xr) != n*d {
		return nil, fmt.Errorf("train: estimation input: reconstruction has %d values, want %d", len(xr), n*d)
	}
	w := c + 2
	z := getBuf[T](&op.out, n*w)
	for i := range n {
		copy(z[i*w:i*w+c], zc[i*c:(i+1)*c])
		nx, nr, nd, s := rowStats(x[i*d:(i+1)*d], xr[i*d:(i+1)*d])
		z[i*w+c] = T(nd / (nx + model.DistanceEpsilon))
		z[i*w+c+1] = T(s / (nx*nr + model.DistanceEpsilon))
	}
	return wrap(&op.out, z, n, w), nil
}

// SymDiff: the code's gradient is the first c columns of g; the
// reconstruction's comes from rel and cos (zGradOp).
func (op *zOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	c := inputs[1].Shape()[1]
	gzc, err := G.ApplyOp(&colsOp{from: 0, to: c}, grad)
	if err != nil {
		return nil, err
	}
	gxr, err := G.ApplyOp(&zGradOp{}, inputs[0], inputs[2], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{nil, gzc, gxr}, nil
}

// zGradOp computes the gradient of z's last two columns with respect to xr
// from (x, xr, g).
type zGradOp struct {
	opBase
	out outBuf
}

func (op *zGradOp) Arity() int    { return 3 }
func (op *zGradOp) Type() hm.Type { return fnType(2, 2, 2, 2) }
func (op *zGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(ds, 1)
}
func (op *zGradOp) String() string        { return "EstimationInputGrad" }
func (op *zGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *zGradOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *zGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return zGradDo[float64](op, vs) },
		func() (G.Value, error) { return zGradDo[float32](op, vs) })
}

func zGradDo[T float](op *zGradOp, vs []G.Value) (G.Value, error) {
	n, d, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	_, w, err := dims2(vs[2])
	if err != nil {
		return nil, err
	}
	x, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	xr, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	g, err := sliceOf[T](vs[2])
	if err != nil {
		return nil, err
	}
	if len(xr) != n*d || len(g) != n*w || w < 2 {
		return nil, fmt.Errorf("train: estimation input gradient: shapes do not fit")
	}
	out := getBuf[T](&op.out, n*d)
	const eps = model.DistanceEpsilon
	for i := range n {
		xi, ri, oi := x[i*d:(i+1)*d], xr[i*d:(i+1)*d], out[i*d:(i+1)*d]
		nx, nr, nd, s := rowStats(xi, ri)
		gRel, gCos := float64(g[i*w+w-2]), float64(g[i*w+w-1])
		// rel = nd/(nx+ε): ∂rel/∂xr = (xr−x)/(nd·(nx+ε)), taken as 0 when nd = 0.
		a := 0.0
		if nd > 0 {
			a = gRel / (nd * (nx + eps))
		}
		// cos = s/q, q = nx·nr + ε: ∂cos/∂xr = x/q − s·nx·xr/(nr·q²).
		q := nx*nr + eps
		bx := gCos / q
		br := 0.0
		if nr > 0 {
			br = -gCos * s * nx / (nr * q * q)
		}
		for j := range oi {
			xv, rv := float64(xi[j]), float64(ri[j])
			oi[j] = T(a*(rv-xv) + bx*xv + br*rv)
		}
	}
	return wrap(&op.out, out, n, d), nil
}

// colsOp takes the columns [from, to) of a matrix. It is used in gradient
// graphs only and is not differentiable.
type colsOp struct {
	opBase
	from, to int
	out      outBuf
}

func (op *colsOp) Arity() int    { return 1 }
func (op *colsOp) Type() hm.Type { return fnType(2, 2) }
func (op *colsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{a[0], op.to - op.from}, nil
}
func (op *colsOp) String() string        { return fmt.Sprintf("Cols{%d:%d}", op.from, op.to) }
func (op *colsOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *colsOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *colsOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return colsDo[float64](op, vs) },
		func() (G.Value, error) { return colsDo[float32](op, vs) })
}

func colsDo[T float](op *colsOp, vs []G.Value) (G.Value, error) {
	n, w, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	if op.from < 0 || op.to > w || op.from >= op.to {
		return nil, fmt.Errorf("train: columns %d:%d of a matrix with %d", op.from, op.to, w)
	}
	a, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	c := op.to - op.from
	out := getBuf[T](&op.out, n*c)
	for i := range n {
		copy(out[i*c:(i+1)*c], a[i*w+op.from:i*w+op.to])
	}
	return wrap(&op.out, out, n, c), nil
}

// reconstructionError returns mean_i ‖x_i − xr_i‖² as a scalar node for the
// normalised input x and its reconstruction xr (both n×d). The gradient
// flows to xr.
func reconstructionError(x, xr *G.Node) (*G.Node, error) {
	if xs, rs := x.Shape(), xr.Shape(); len(xs) != 2 || !xs.Eq(rs) {
		return nil, fmt.Errorf("train: reconstruction error: shapes %v and %v differ", xs, rs)
	}
	return G.ApplyOp(&reconOp{}, x, xr)
}

// reconOp is mean_i ‖x_i − xr_i‖².
type reconOp struct{ opBase }

func (op *reconOp) Arity() int    { return 2 }
func (op *reconOp) Type() hm.Type { return fnType(2, 2, 0) }
func (op *reconOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op *reconOp) String() string        { return "ReconstructionError" }
func (op *reconOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reconOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *reconOp) DiffWRT(int) []bool    { return []bool{false, true} }

func (op *reconOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return reconDo[float64](vs) },
		func() (G.Value, error) { return reconDo[float32](vs) })
}

func reconDo[T float](vs []G.Value) (G.Value, error) {
	n, _, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	x, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	xr, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	if len(xr) != len(x) {
		return nil, fmt.Errorf("train: reconstruction error: %d values against %d", len(xr), len(x))
	}
	s := 0.0
	for i, v := range x {
		e := float64(v) - float64(xr[i])
		s += e * e
	}
	return newScalar(vs[0].Dtype(), s/float64(n)), nil
}

func (op *reconOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	g, err := G.ApplyOp(&reconGradOp{}, inputs[0], inputs[1], grad)
	return G.Nodes{nil, g}, err
}

// reconGradOp is g·2(xr − x)/n from (x, xr, g).
type reconGradOp struct {
	opBase
	out outBuf
}

func (op *reconGradOp) Arity() int    { return 3 }
func (op *reconGradOp) Type() hm.Type { return fnType(2, 2, 0, 2) }
func (op *reconGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(ds, 0)
}
func (op *reconGradOp) String() string        { return "ReconstructionErrorGrad" }
func (op *reconGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reconGradOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *reconGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return reconGradDo[float64](op, vs) },
		func() (G.Value, error) { return reconGradDo[float32](op, vs) })
}

func reconGradDo[T float](op *reconGradOp, vs []G.Value) (G.Value, error) {
	n, d, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	x, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	xr, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	g, err := scalarOf(vs[2])
	if err != nil {
		return nil, err
	}
	out := getBuf[T](&op.out, n*d)
	f := T(2 * g / float64(n))
	for i, v := range xr {
		out[i] = f * (v - x[i])
	}
	return wrap(&op.out, out, n, d), nil
}

// lossNode returns recon + λ1·mean(E) + λ2·P as a scalar node, from the
// reconstruction error (a scalar node) and the output of [GMMEnergy] (n
// energies followed by the covariance penalty P).
func lossNode(recon, gmm *G.Node, lambda1, lambda2 float64) (*G.Node, error) {
	if !recon.IsScalar() || len(gmm.Shape()) != 1 {
		return nil, fmt.Errorf("train: loss: shapes %v and %v, want a scalar and a vector", recon.Shape(), gmm.Shape())
	}
	return G.ApplyOp(&lossOp{l1: lambda1, l2: lambda2}, recon, gmm)
}

// lossOp is recon + λ1·mean(E) + λ2·P.
type lossOp struct {
	opBase
	l1, l2 float64
}

func (op *lossOp) Arity() int    { return 2 }
func (op *lossOp) Type() hm.Type { return fnType(0, 1, 0) }
func (op *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op *lossOp) String() string        { return fmt.Sprintf("Loss{%v, %v}", op.l1, op.l2) }
func (op *lossOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *lossOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *lossOp) DiffWRT(int) []bool    { return []bool{true, true} }

func (op *lossOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	r, err := scalarOf(vs[0])
	if err != nil {
		return nil, err
	}
	e, p, err := energyParts(vs[1])
	if err != nil {
		return nil, err
	}
	return newScalar(vs[1].Dtype(), r+op.l1*e+op.l2*p), nil
}

// energyParts returns the mean energy and the penalty of a [GMMEnergy] value.
func energyParts(v G.Value) (meanE, penalty float64, err error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return 0, 0, fmt.Errorf("train: gmm output is %T, want a tensor", v)
	}
	switch d := t.Data().(type) {
	case []float64:
		return meanPenalty(d)
	case []float32:
		return meanPenalty(d)
	}
	return 0, 0, fmt.Errorf("train: gmm output holds %T", t.Data())
}

func meanPenalty[T float](d []T) (float64, float64, error) {
	n := len(d) - 1
	if n < 1 {
		return 0, 0, fmt.Errorf("train: gmm output has %d values, want n+1 with n >= 1", len(d))
	}
	s := 0.0
	for _, v := range d[:n] {
		s += float64(v)
	}
	return s / float64(n), float64(d[n]), nil
}

func (op *lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	g, err := G.ApplyOp(&lossGradOp{l1: op.l1, l2: op.l2}, inputs[1], grad)
	return G.Nodes{grad, g}, err
}

// lossGradOp is g·[λ1/n, ..., λ1/n, λ2] from (gmm output, g).
type lossGradOp struct {
	opBase
	l1, l2 float64
	out    outBuf
}

func (op *lossGradOp) Arity() int    { return 2 }
func (op *lossGradOp) Type() hm.Type { return fnType(1, 0, 1) }
func (op *lossGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return shapeOf(ds, 0)
}
func (op *lossGradOp) String() string        { return fmt.Sprintf("LossGrad{%v, %v}", op.l1, op.l2) }
func (op *lossGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *lossGradOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *lossGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return lossGradDo[float64](op, vs) },
		func() (G.Value, error) { return lossGradDo[float32](op, vs) })
}

func lossGradDo[T float](op *lossGradOp, vs []G.Value) (G.Value, error) {
	m := vs[0].Shape().TotalSize()
	if m < 2 {
		return nil, fmt.Errorf("train: loss gradient: gmm output has %d values", m)
	}
	g, err := scalarOf(vs[1])
	if err != nil {
		return nil, err
	}
	out := getBuf[T](&op.out, m)
	e := T(g * op.l1 / float64(m-1))
	for i := range out[:m-1] {
		out[i] = e
	}
	out[m-1] = T(g * op.l2)
	return wrap(&op.out, out, m), nil
}
