package train

import (
	"fmt"
	"hash"
	"math"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// denseLayer applies one fully connected layer as a single node:
// y = act(x·W + b), times mask elementwise when mask is not nil (dropout:
// the mask holds 0 or 1/(1-p)). x is n×in, w in×out, b a vector of out and
// mask n×out. act is model.Linear, model.Tanh or model.Softmax (over each
// row). The gradient flows to w and b, to mask never, and to x only when
// gradX is set (leave it off for the network's input, whose gradient nobody
// needs).
func denseLayer(x, w, b, mask *G.Node, act model.Activation, gradX bool) (*G.Node, error) {
	xs, ws, bs := x.Shape(), w.Shape(), b.Shape()
	if len(xs) != 2 || len(ws) != 2 || len(bs) != 1 || xs[1] != ws[0] || bs[0] != ws[1] {
		return nil, fmt.Errorf("train: dense layer: shapes x %v, w %v, b %v do not fit x·w + b", xs, ws, bs)
	}
	switch act {
	case model.Linear, model.Tanh, model.Softmax:
	default:
		return nil, fmt.Errorf("train: dense layer: activation %q, want linear, tanh or softmax", act)
	}
	op := &denseOp{act: act, masked: mask != nil, gradX: gradX}
	if mask == nil {
		return G.ApplyOp(op, x, w, b)
	}
	if ms := mask.Shape(); len(ms) != 2 || ms[0] != xs[0] || ms[1] != ws[1] {
		return nil, fmt.Errorf("train: dense layer: mask shape %v, want (%d, %d)", ms, xs[0], ws[1])
	}
	return G.ApplyOp(op, x, w, b, mask)
}

// denseOp is y = act(x·W + b) [⊙ mask].
type denseOp struct {
	opBase
	act    model.Activation
	masked bool
	gradX  bool
	out    outBuf
	gw     gemmScratch
}

func (op *denseOp) Arity() int {
	if op.masked {
		return 4
	}
	return 3
}

func (op *denseOp) Type() hm.Type {
	if op.masked {
		return fnType(2, 2, 1, 2, 2)
	}
	return fnType(2, 2, 1, 2)
}

func (op *denseOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	w, err := shapeOf(ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{x[0], w[1]}, nil
}

func (op *denseOp) String() string {
	return fmt.Sprintf("Dense{%s, masked=%t, gradX=%t}", op.act, op.masked, op.gradX)
}
func (op *denseOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *denseOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *denseOp) DiffWRT(n int) []bool {
	d := []bool{op.gradX, true, true, false}
	return d[:n]
}

func (op *denseOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return denseDo[float64](op, vs) },
		func() (G.Value, error) { return denseDo[float32](op, vs) })
}

func denseDo[T float](op *denseOp, vs []G.Value) (G.Value, error) {
	n, in, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	win, out, err := dims2(vs[1])
	if err != nil {
		return nil, err
	}
	if win != in {
		return nil, fmt.Errorf("train: dense layer: x has %d columns, w %d rows", in, win)
	}
	x, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	w, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	b, err := sliceOf[T](vs[2])
	if err != nil {
		return nil, err
	}
	if len(b) != out {
		return nil, fmt.Errorf("train: dense layer: %d biases for %d outputs", len(b), out)
	}
	var mask []T
	if op.masked {
		if mask, err = sliceOf[T](vs[3]); err != nil {
			return nil, err
		}
		if len(mask) != n*out {
			return nil, fmt.Errorf("train: dense layer: mask has %d values, want %d", len(mask), n*out)
		}
	}
	y := getBuf[T](&op.out, n*out)
	gemmWith(scratchOf[T](&op.gw), false, false, n, out, in, x, in, w, out, 0, y, out)
	if workers(n, rowsPerTask(out)) <= 1 {
		denseAct(op.act, y, b, mask, n, out)
		return wrap(&op.out, y, n, out), nil
	}
	parallelRows(n, rowsPerTask(out), func(lo, hi int) {
		var m []T
		if mask != nil {
			m = mask[lo*out : hi*out]
		}
		denseAct(op.act, y[lo*out:hi*out], b, m, hi-lo, out)
	})
	return wrap(&op.out, y, n, out), nil
}

// denseAct adds the bias to each row of y (n×out), applies act and the mask.
func denseAct[T float](act model.Activation, y, b, mask []T, n, out int) {
	if act == model.Tanh {
		denseTanh(y[:n*out], b[:out], mask, out)
		return
	}
	for i := range n {
		row := y[i*out : (i+1)*out]
		for j := range row {
			row[j] += b[j]
		}
		switch act {
		case model.Tanh:
			for j, v := range row {
				row[j] = T(math.Tanh(float64(v)))
			}
		case model.Softmax:
			softmaxRow(row)
		}
		if mask != nil {
			m := mask[i*out : (i+1)*out]
			for j := range row {
				row[j] *= m[j]
			}
		}
	}
}

// denseTanh is denseAct for tanh in one pass over y: bias, tanh and mask
// per element, the same operations as the three passes.
func denseTanh[T float](y, b, mask []T, out int) {
	if mask != nil {
		mask = mask[:len(y)]
	}
	for r := 0; r < len(y); r += out {
		row := y[r : r+out]
		if mask == nil {
			for j, v := range row {
				row[j] = T(math.Tanh(float64(v + b[j])))
			}
			continue
		}
		m := mask[r : r+out]
		for j, v := range row {
			row[j] = T(math.Tanh(float64(v+b[j]))) * m[j]
		}
	}
}

// rowsPerTask is the least number of rows of the given width worth a
// goroutine for an elementwise pass.
func rowsPerTask(width int) int { return max(16, 4096/max(width, 1)) }

// softmaxRow replaces row by its softmax, computed stably in float64.
func softmaxRow[T float](row []T) {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = max(mx, float64(v))
	}
	s := 0.0
	for j, v := range row {
		e := math.Exp(float64(v) - mx)
		row[j] = T(e)
		s += e
	}
	for j := range row {
		row[j] = T(float64(row[j]) / s)
	}
}

// SymDiff returns the gradients of x (nil unless gradX), W and b (and nil
// for the mask): δ = g ⊙ act'(y), dx = δ·Wᵀ, dW = xᵀ·δ, db = Σ_rows δ.
func (op *denseOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	delta := grad
	if op.act != model.Linear || op.masked {
		dop := &deltaOp{act: op.act, masked: op.masked}
		var err error
		if op.masked {
			delta, err = G.ApplyOp(dop, output, grad, inputs[3])
		} else {
			delta, err = G.ApplyOp(dop, output, grad)
		}
		if err != nil {
			return nil, err
		}
	}
	out := make(G.Nodes, len(inputs))
	var err error
	if op.gradX {
		if out[0], err = G.ApplyOp(&matMulNTOp{}, delta, inputs[1]); err != nil {
			return nil, err
		}
	}
	if out[1], err = G.ApplyOp(&matMulTNOp{}, inputs[0], delta); err != nil {
		return nil, err
	}
	if out[2], err = G.ApplyOp(&colSumOp{}, delta); err != nil {
		return nil, err
	}
	return out, nil
}

// deltaOp computes δ = g ⊙ act'(pre-activation) from the layer's output y,
// the output gradient g and, when masked, the dropout mask.
type deltaOp struct {
	opBase
	act    model.Activation
	masked bool
	out    outBuf
}

func (op *deltaOp) Arity() int {
	if op.masked {
		return 3
	}
	return 2
}

func (op *deltaOp) Type() hm.Type {
	if op.masked {
		return fnType(2, 2, 2, 2)
	}
	return fnType(2, 2, 2)
}

func (op *deltaOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) { return shapeOf(ds, 0) }
func (op *deltaOp) String() string {
	return fmt.Sprintf("DenseDelta{%s, masked=%t}", op.act, op.masked)
}
func (op *deltaOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *deltaOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *deltaOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return deltaDo[float64](op, vs) },
		func() (G.Value, error) { return deltaDo[float32](op, vs) })
}

func deltaDo[T float](op *deltaOp, vs []G.Value) (G.Value, error) {
	n, out, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	y, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	g, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	if len(g) != len(y) {
		return nil, fmt.Errorf("train: dense gradient: %d gradient values for %d outputs", len(g), len(y))
	}
	var mask []T
	if op.masked {
		if mask, err = sliceOf[T](vs[2]); err != nil {
			return nil, err
		}
		if len(mask) != len(y) {
			return nil, fmt.Errorf("train: dense gradient: mask has %d values, want %d", len(mask), len(y))
		}
	}
	d := getBuf[T](&op.out, n*out)
	if workers(n, rowsPerTask(out)) <= 1 {
		if err := deltaRows(op.act, d, y, g, mask, n, out); err != nil {
			return nil, err
		}
		return wrap(&op.out, d, n, out), nil
	}
	var failed atomic.Pointer[error]
	parallelRows(n, rowsPerTask(out), func(lo, hi int) {
		var m []T
		if mask != nil {
			m = mask[lo*out : hi*out]
		}
		if err := deltaRows(op.act, d[lo*out:hi*out], y[lo*out:hi*out], g[lo*out:hi*out], m, hi-lo, out); err != nil {
			failed.Store(&err)
		}
	})
	if err := failed.Load(); err != nil {
		return nil, *err
	}
	return wrap(&op.out, d, n, out), nil
}

// deltaRows computes δ for n rows of width out (see deltaOp).
func deltaRows[T float](act model.Activation, d, y, g, mask []T, n, out int) error {
	switch act {
	case model.Linear:
		for i := range d {
			d[i] = g[i] * mask[i]
		}
	case model.Tanh:
		if mask == nil {
			for i, v := range y {
				d[i] = g[i] * (1 - v*v)
			}
			break
		}
		// y = tanh(a)·m, so tanh(a) = y/m where m ≠ 0 and δ = g·m·(1 - (y/m)²).
		if d64, ok := any(d).([]float64); ok {
			maskedTanhDelta(d64, any(y).([]float64), any(g).([]float64), any(mask).([]float64))
			break
		}
		for i, v := range y {
			m := mask[i]
			if m == 0 {
				d[i] = 0
				continue
			}
			t := v / m
			d[i] = g[i] * m * (1 - t*t)
		}
	case model.Softmax:
		// δ = s ⊙ (g - Σ_j g_j s_j) per row, with s = y/m where masked.
		for i := range n {
			s := y[i*out : (i+1)*out]
			gr := g[i*out : (i+1)*out]
			dr := d[i*out : (i+1)*out]
			var mr []T
			if mask != nil {
				mr = mask[i*out : (i+1)*out]
			}
			dot := 0.0
			for j := range s {
				sj, gj := float64(s[j]), float64(gr[j])
				if mr != nil {
					if mr[j] == 0 {
						return fmt.Errorf("train: dense gradient: a dropout mask on a softmax layer must not hold zeros")
					}
					sj /= float64(mr[j])
					gj *= float64(mr[j])
				}
				dot += gj * sj
			}
			for j := range s {
				sj, gj := float64(s[j]), float64(gr[j])
				if mr != nil {
					sj /= float64(mr[j])
					gj *= float64(mr[j])
				}
				dr[j] = T(sj * (gj - dot))
			}
		}
	}
	return nil
}

// maskedTanhDelta is δ of a masked tanh layer in float64 without a branch
// per unit: half the mask is zero at random, and a branch on it would be
// mispredicted half the time. Where m = 0 the formula gives NaN (0/0); the
// bit mask keeps +0 there instead, so δ is what the branch gave.
func maskedTanhDelta(d, y, g, mask []float64) {
	y, g, mask = y[:len(d)], g[:len(d)], mask[:len(d)]
	for i := range d {
		m := mask[i]
		t := y[i] / m
		r := g[i] * m * (1 - t*t)
		var keep uint64
		if m != 0 {
			keep = ^uint64(0)
		}
		d[i] = math.Float64frombits(math.Float64bits(r) & keep)
	}
}

// matMulNTOp computes a·bᵀ (the input gradient δ·Wᵀ).
type matMulNTOp struct {
	opBase
	out outBuf
	bt  outBuf // bᵀ
	gw  gemmScratch
}

func (op *matMulNTOp) Arity() int    { return 2 }
func (op *matMulNTOp) Type() hm.Type { return fnType(2, 2, 2) }
func (op *matMulNTOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{a[0], b[0]}, nil
}
func (op *matMulNTOp) String() string        { return "MatMulNT" }
func (op *matMulNTOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *matMulNTOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *matMulNTOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return matMulNTDo[float64](op, vs) },
		func() (G.Value, error) { return matMulNTDo[float32](op, vs) })
}

func matMulNTDo[T float](op *matMulNTOp, vs []G.Value) (G.Value, error) {
	m, k, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	n, kb, err := dims2(vs[1])
	if err != nil {
		return nil, err
	}
	if k != kb {
		return nil, fmt.Errorf("train: a·bᵀ: a has %d columns, b %d", k, kb)
	}
	a, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	b, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	c := getBuf[T](&op.out, m*n)
	var bt []T
	if haveFMA {
		bt = getBuf[T](&op.bt, k*n)
	}
	mulNT(scratchOf[T](&op.gw), bt, m, n, k, a, b, c)
	return wrap(&op.out, c, m, n), nil
}

// mulNT computes c = a·bᵀ for a (m×k) and b (n×k); bt (k×n) is scratch for
// bᵀ, needed with the assembly kernels only.
func mulNT[T float](g *fmaGemm[T], bt []T, m, n, k int, a, b, c []T) {
	if !haveFMA {
		gemm(false, true, m, n, k, a, k, b, k, 0, c, n)
		return
	}
	// The kernels read B by rows: transpose b (n×k, small: a weight matrix).
	for i := range n {
		for j := range k {
			bt[j*n+i] = b[i*k+j]
		}
	}
	gemmWith(g, false, false, m, n, k, a, k, bt, n, 0, c, n)
}

// matMulTNOp computes aᵀ·b (the weight gradient xᵀ·δ).
type matMulTNOp struct {
	opBase
	out  outBuf
	work outBuf // partial products
	gw   gemmScratch
}

func (op *matMulTNOp) Arity() int    { return 2 }
func (op *matMulTNOp) Type() hm.Type { return fnType(2, 2, 2) }
func (op *matMulTNOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{a[1], b[1]}, nil
}
func (op *matMulTNOp) String() string        { return "MatMulTN" }
func (op *matMulTNOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *matMulTNOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *matMulTNOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return matMulTNDo[float64](op, vs) },
		func() (G.Value, error) { return matMulTNDo[float32](op, vs) })
}

func matMulTNDo[T float](op *matMulTNOp, vs []G.Value) (G.Value, error) {
	k, m, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	kb, n, err := dims2(vs[1])
	if err != nil {
		return nil, err
	}
	if k != kb {
		return nil, fmt.Errorf("train: aᵀ·b: a has %d rows, b %d", k, kb)
	}
	a, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	b, err := sliceOf[T](vs[1])
	if err != nil {
		return nil, err
	}
	c := getBuf[T](&op.out, m*n)
	work := getBuf[T](&op.work, max(0, (k+tnChunk-1)/tnChunk-1)*m*n)
	gemmTN(scratchOf[T](&op.gw), m, n, k, a, b, c, work)
	return wrap(&op.out, c, m, n), nil
}

// colSumOp sums a matrix over its rows: (n, m) -> (m).
type colSumOp struct {
	opBase
	out outBuf
}

func (op *colSumOp) Arity() int    { return 1 }
func (op *colSumOp) Type() hm.Type { return fnType(2, 1) }
func (op *colSumOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	a, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{a[1]}, nil
}
func (op *colSumOp) String() string        { return "ColSum" }
func (op *colSumOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *colSumOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *colSumOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return colSumDo[float64](op, vs) },
		func() (G.Value, error) { return colSumDo[float32](op, vs) })
}

func colSumDo[T float](op *colSumOp, vs []G.Value) (G.Value, error) {
	n, m, err := dims2(vs[0])
	if err != nil {
		return nil, err
	}
	a, err := sliceOf[T](vs[0])
	if err != nil {
		return nil, err
	}
	s := getBuf[T](&op.out, m)
	clear(s)
	for i := range n {
		for j, v := range a[i*m : (i+1)*m] {
			s[j] += v
		}
	}
	return wrap(&op.out, s, m), nil
}
