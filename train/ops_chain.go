package train

import (
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// chainLayer is one layer of a chain: in→out, its activation, and whether
// a dropout mask multiplies its output.
type chainLayer struct {
	in, out int
	act     model.Activation
	masked  bool
}

// chainSize returns the number of parameters of the layers: W (in×out) and
// b (out) of each, in order.
func chainSize(layers []chainLayer) int {
	p := 0
	for _, l := range layers {
		p += l.in*l.out + l.out
	}
	return p
}

// mlpChain applies a chain of fully connected layers as one node: h_0 = x,
// h_l = act_l(h_{l−1}·W_l + b_l) [⊙ mask], where theta holds W_1, b_1,
// W_2, b_2, ... one after the other (row-major W) and masks the masked
// layers' masks in order. It computes what a sequence of [denseLayer] nodes
// computes, with the same kernels in the same order (so bit for bit the
// same values), in one node forward and two backward: a graph's fixed cost
// per node is most of a small network's step. The gradient flows to theta,
// to the masks never, and to x only when gradX is set.
func mlpChain(x, theta *G.Node, masks []*G.Node, layers []chainLayer, gradX bool) (*G.Node, error) {
	xs, ts := x.Shape(), theta.Shape()
	if len(layers) == 0 || len(xs) != 2 || xs[1] != layers[0].in {
		return nil, fmt.Errorf("train: layer chain: input shape %v does not fit the first layer", xs)
	}
	if len(ts) != 1 || ts[0] != chainSize(layers) {
		return nil, fmt.Errorf("train: layer chain: %v parameters, want %d", ts, chainSize(layers))
	}
	nm := 0
	for i, l := range layers {
		switch l.act {
		case model.Linear, model.Tanh, model.Softmax:
		default:
			return nil, fmt.Errorf("train: layer chain: layer %d activation %q, want linear, tanh or softmax", i, l.act)
		}
		if i > 0 && l.in != layers[i-1].out {
			return nil, fmt.Errorf("train: layer chain: layer %d takes %d inputs, layer %d gives %d", i, l.in, i-1, layers[i-1].out)
		}
		if l.masked {
			if nm >= len(masks) {
				return nil, fmt.Errorf("train: layer chain: layer %d is masked but only %d masks given", i, len(masks))
			}
			if ms := masks[nm].Shape(); len(ms) != 2 || ms[0] != xs[0] || ms[1] != l.out {
				return nil, fmt.Errorf("train: layer chain: mask %d shape %v, want (%d, %d)", nm, ms, xs[0], l.out)
			}
			nm++
		}
	}
	if nm != len(masks) {
		return nil, fmt.Errorf("train: layer chain: %d masks for %d masked layers", len(masks), nm)
	}
	op := &chainOp{layers: layers, gradX: gradX, nMasks: nm}
	return G.ApplyOp(op, append([]*G.Node{x, theta}, masks...)...)
}

// chainSpec describes the layers for an op's name and hash.
func chainSpec(layers []chainLayer) string {
	parts := make([]string, len(layers))
	for i, l := range layers {
		parts[i] = fmt.Sprintf("%d-%d %s", l.in, l.out, l.act)
		if l.masked {
			parts[i] += " masked"
		}
	}
	return strings.Join(parts, ", ")
}

// chainOp is the forward pass of [mlpChain]. It keeps every layer's output
// for its gradient op, which reads them in the same run.
type chainOp struct {
	opBase
	layers []chainLayer
	gradX  bool
	nMasks int
	st     any // *chainState[T]
}

// chainState is a chain's buffers: the layer outputs of the last forward
// pass and the gradient's scratch.
type chainState[T float] struct {
	runs   int // forward passes so far
	masks  [][]T
	ys     [][]T
	fwd    []fmaGemm[T]
	out    outBuf // the last layer's output
	dxOut  outBuf // ∂x
	dtOut  outBuf // ∂theta
	deltas [][]T
	gins   [][]T // gradient with respect to each layer's input
	bt     [][]T // Wᵀ
	work   [][]T
	nt, tn []fmaGemm[T]
	dTheta []T
}

// stateOf returns the op's state for element type T.
func stateOf[T float](st *any, layers int) *chainState[T] {
	if s, ok := (*st).(*chainState[T]); ok {
		return s
	}
	s := &chainState[T]{
		masks: make([][]T, layers), ys: make([][]T, layers), fwd: make([]fmaGemm[T], layers),
		deltas: make([][]T, layers), gins: make([][]T, layers), bt: make([][]T, layers), work: make([][]T, layers),
		nt: make([]fmaGemm[T], layers), tn: make([]fmaGemm[T], layers),
	}
	*st = s
	return s
}

func (op *chainOp) Arity() int { return 2 + op.nMasks }

func (op *chainOp) Type() hm.Type {
	dims := []int{2, 1}
	for range op.nMasks {
		dims = append(dims, 2)
	}
	return fnType(append(dims, 2)...)
}

func (op *chainOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{x[0], op.layers[len(op.layers)-1].out}, nil
}

func (op *chainOp) String() string {
	return fmt.Sprintf("Chain{%s, gradX=%t}", chainSpec(op.layers), op.gradX)
}
func (op *chainOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *chainOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *chainOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	d[0] = op.gradX
	if n > 1 {
		d[1] = true
	}
	return d
}

func (op *chainOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return chainDo[float64](op, vs) },
		func() (G.Value, error) { return chainDo[float32](op, vs) })
}

// chainInputs returns the rows, x and theta from a chain's input values,
// and sets masks[i] to layer i's mask (nil when unmasked).
func chainInputs[T float](layers []chainLayer, vs []G.Value, masks [][]T) (n int, x, theta []T, err error) {
	n, in, err := dims2(vs[0])
	if err != nil {
		return 0, nil, nil, err
	}
	if in != layers[0].in {
		return 0, nil, nil, fmt.Errorf("train: layer chain: x has %d columns, want %d", in, layers[0].in)
	}
	if x, err = sliceOf[T](vs[0]); err != nil {
		return 0, nil, nil, err
	}
	if theta, err = sliceOf[T](vs[1]); err != nil {
		return 0, nil, nil, err
	}
	if len(theta) != chainSize(layers) {
		return 0, nil, nil, fmt.Errorf("train: layer chain: %d parameters, want %d", len(theta), chainSize(layers))
	}
	m := 2
	for i, l := range layers {
		masks[i] = nil
		if !l.masked {
			continue
		}
		if masks[i], err = sliceOf[T](vs[m]); err != nil {
			return 0, nil, nil, err
		}
		if len(masks[i]) != n*l.out {
			return 0, nil, nil, fmt.Errorf("train: layer chain: mask of layer %d has %d values, want %d", i, len(masks[i]), n*l.out)
		}
		m++
	}
	return n, x, theta, nil
}

func chainDo[T float](op *chainOp, vs []G.Value) (G.Value, error) {
	st := stateOf[T](&op.st, len(op.layers))
	masks := st.masks
	n, x, theta, err := chainInputs[T](op.layers, vs, masks)
	if err != nil {
		return nil, err
	}
	h, off := x, 0
	last := len(op.layers) - 1
	for i, l := range op.layers {
		w, b := theta[off:off+l.in*l.out], theta[off+l.in*l.out:off+l.in*l.out+l.out]
		off += l.in*l.out + l.out
		var y []T
		if i == last {
			y = getBuf[T](&st.out, n*l.out)
			st.ys[i] = y
		} else {
			st.ys[i] = grow(st.ys[i], n*l.out)
			y = st.ys[i]
		}
		gemmWith(&st.fwd[i], false, false, n, l.out, l.in, h, l.in, w, l.out, 0, y, l.out)
		activate(l.act, y, b, masks[i], n, l.out)
		h = y
	}
	st.runs++
	return wrap(&st.out, h, n, op.layers[last].out), nil
}

// activate is denseAct over n rows, split over the cores when worth it.
func activate[T float](act model.Activation, y, b, mask []T, n, out int) {
	if workers(n, rowsPerTask(out)) <= 1 {
		denseAct(act, y, b, mask, n, out)
		return
	}
	parallelRows(n, rowsPerTask(out), func(lo, hi int) {
		var m []T
		if mask != nil {
			m = mask[lo*out : hi*out]
		}
		denseAct(act, y[lo*out:hi*out], b, m, hi-lo, out)
	})
}

// SymDiff returns the gradient op's node for theta (and for x when gradX).
func (op *chainOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	gop := &chainGradOp{fwd: op}
	back, err := G.ApplyOp(gop, append(append(G.Nodes{}, inputs...), output, grad)...)
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, len(inputs))
	if !op.gradX {
		out[1] = back
		return out, nil
	}
	out[0] = back
	if out[1], err = G.ApplyOp(&chainThetaOp{grad: gop}, back); err != nil {
		return nil, err
	}
	return out, nil
}

// chainGradOp is the backward pass of a chain: from its inputs, its output
// and the output's gradient g it computes, layer by layer from the last,
// δ = g ⊙ act'(·), ∂W = h_{l−1}ᵀ·δ, ∂b = Σ_rows δ and g ← δ·Wᵀ. Its value is
// ∂x when the chain has gradX and ∂theta otherwise; chainThetaOp reads
// ∂theta in the first case.
type chainGradOp struct {
	opBase
	fwd      *chainOp
	consumed int // the forward run last differentiated
}

func (op *chainGradOp) Arity() int { return op.fwd.Arity() + 2 }
func (op *chainGradOp) Type() hm.Type {
	dims := []int{2, 1}
	for range op.fwd.nMasks {
		dims = append(dims, 2)
	}
	if op.fwd.gradX {
		return fnType(append(dims, 2, 2, 2)...)
	}
	return fnType(append(dims, 2, 2, 1)...)
}

func (op *chainGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	if op.fwd.gradX {
		return x.Clone(), nil
	}
	return tensor.Shape{chainSize(op.fwd.layers)}, nil
}

func (op *chainGradOp) String() string        { return "ChainGrad{" + op.fwd.String() + "}" }
func (op *chainGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *chainGradOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *chainGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return chainGradDo[float64](op, vs) },
		func() (G.Value, error) { return chainGradDo[float32](op, vs) })
}

// errChainStale: the gradient op ran without a forward pass before it.
var errChainStale = errors.New("train: layer chain gradient: no forward pass since the last gradient")

func chainGradDo[T float](op *chainGradOp, vs []G.Value) (G.Value, error) {
	layers := op.fwd.layers
	k := len(vs)
	st := stateOf[T](&op.fwd.st, len(layers))
	masks := st.masks
	n, x, theta, err := chainInputs[T](layers, vs[:k-2], masks)
	if err != nil {
		return nil, err
	}
	if st.runs == op.consumed {
		return nil, errChainStale
	}
	op.consumed = st.runs
	g, err := sliceOf[T](vs[k-1])
	if err != nil {
		return nil, err
	}
	last := len(layers) - 1
	if len(g) != n*layers[last].out {
		return nil, fmt.Errorf("train: layer chain gradient: %d gradient values, want %d", len(g), n*layers[last].out)
	}
	st.dTheta = getBuf[T](&st.dtOut, len(theta))
	off := len(theta)
	for i := last; i >= 0; i-- {
		l := layers[i]
		off -= l.in*l.out + l.out
		w := theta[off : off+l.in*l.out]
		dw := st.dTheta[off : off+l.in*l.out]
		db := st.dTheta[off+l.in*l.out : off+l.in*l.out+l.out]
		delta := g
		if l.act != model.Linear || l.masked {
			st.deltas[i] = grow(st.deltas[i], n*l.out)
			delta = st.deltas[i]
			if err := deltaRows(l.act, delta, st.ys[i], g, masks[i], n, l.out); err != nil {
				return nil, err
			}
		}
		h := x
		if i > 0 {
			h = st.ys[i-1]
		}
		st.work[i] = grow(st.work[i], max(0, (n+tnChunk-1)/tnChunk-1)*l.in*l.out)
		gemmTN(&st.tn[i], l.in, l.out, n, h, delta, dw, st.work[i])
		clear(db)
		for r := range n {
			for j, v := range delta[r*l.out : (r+1)*l.out] {
				db[j] += v
			}
		}
		if i == 0 && !op.fwd.gradX {
			break
		}
		if i == 0 {
			st.gins[i] = getBuf[T](&st.dxOut, n*l.in)
		} else {
			st.gins[i] = grow(st.gins[i], n*l.in)
		}
		st.bt[i] = grow(st.bt[i], l.in*l.out)
		mulNT(&st.nt[i], st.bt[i], n, l.in, l.out, delta, w, st.gins[i])
		g = st.gins[i]
	}
	if op.fwd.gradX {
		return wrap(&st.dxOut, g, n, layers[0].in), nil
	}
	return wrap(&st.dtOut, st.dTheta, len(st.dTheta)), nil
}

// chainThetaOp returns ∂theta of its chain gradient op, which is its input.
type chainThetaOp struct {
	opBase
	grad *chainGradOp
}

func (op *chainThetaOp) Arity() int    { return 1 }
func (op *chainThetaOp) Type() hm.Type { return fnType(2, 1) }
func (op *chainThetaOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{chainSize(op.grad.fwd.layers)}, nil
}
func (op *chainThetaOp) String() string        { return "ChainTheta{" + op.grad.fwd.String() + "}" }
func (op *chainThetaOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *chainThetaOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *chainThetaOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return chainThetaDo[float64](op) },
		func() (G.Value, error) { return chainThetaDo[float32](op) })
}

func chainThetaDo[T float](op *chainThetaOp) (G.Value, error) {
	st := stateOf[T](&op.grad.fwd.st, len(op.grad.fwd.layers))
	return wrap(&st.dtOut, st.dTheta, len(st.dTheta)), nil
}
