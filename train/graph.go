package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// network holds the three networks' layers; the model.Layer values carry the
// float64 master copy of the weights.
type network struct {
	enc, dec, est []model.Layer
}

// all returns the layers in parameter order: encoder, decoder, estimator.
func (nw *network) all() []*model.Layer {
	var out []*model.Layer
	for _, ls := range [][]model.Layer{nw.enc, nw.dec, nw.est} {
		for i := range ls {
			out = append(out, &ls[i])
		}
	}
	return out
}

// newNetwork lays out the networks for d input features: encoder
// d-e1-...-code (tanh, code linear), decoder mirrored (tanh, output linear),
// estimator (code+2)-h1-...-K (tanh, softmax). Weights are zero.
func newNetwork(d int, cfg *Config) network {
	chain := func(sizes []int, hidden, last model.Activation) []model.Layer {
		ls := make([]model.Layer, len(sizes)-1)
		for i := range ls {
			act := hidden
			if i == len(ls)-1 {
				act = last
			}
			in, out := sizes[i], sizes[i+1]
			ls[i] = model.Layer{In: in, Out: out, Activation: act, W: make([]float64, in*out), B: make([]float64, out)}
		}
		return ls
	}
	enc := append([]int{d}, cfg.Encoder...)
	dec := make([]int, len(enc))
	for i, s := range enc {
		dec[len(enc)-1-i] = s
	}
	code := enc[len(enc)-1]
	est := append(append([]int{code + 2}, cfg.Estimator...), cfg.K)
	return network{
		enc: chain(enc, model.Tanh, model.Linear),
		dec: chain(dec, model.Tanh, model.Linear),
		est: chain(est, model.Tanh, model.Softmax),
	}
}

// initWeights draws every weight from Glorot's uniform distribution
// U(−a, a), a = sqrt(6/(in+out)), in parameter order from rng; biases are 0.
func (nw *network) initWeights(rng *rand.Rand) {
	for _, l := range nw.all() {
		a := math.Sqrt(6 / float64(l.In+l.Out))
		for i := range l.W {
			l.W[i] = (2*rng.Float64() - 1) * a
		}
		clear(l.B)
	}
}

// lossGraph is the DAGMM loss over one batch, with its gradients, or, for
// training, several optimiser steps one after the other (buildTrainGraph).
type lossGraph struct {
	g     *G.ExprGraph
	dt    tensor.Dtype
	batch int

	params []*G.Node // the parameter inputs: W, b of each layer, or one vector per network
	pVals  []*tensor.Dense
	// slots locates W and b of each layer, in network.all() order, in pVals
	// and gVals.
	slots []paramSlot

	steps     []*lossStep
	*lossStep // the first step

	vm G.VM
}

// lossStep is one batch's part of a loss graph: its inputs, the loss and
// its parts, and the gradients.
type lossStep struct {
	x     *G.Node
	xVal  *tensor.Dense
	masks []*G.Node // one per estimator hidden layer; nil without dropout
	mVals []*tensor.Dense

	grads []*G.Node
	gVals []G.Value // read after each run (buildLossGraph only)

	recon, energy, penalty, loss *G.Node
	reconV, energyV, penaltyV    G.Value
	lossV                        G.Value
}

// paramSlot is where a layer's W or b lives: tensor t of the parameters,
// from element off.
type paramSlot struct{ t, off int }

// graphOptions selects how the loss graph is built.
type graphOptions struct {
	dropout          bool    // add mask inputs to the estimator's hidden layers
	fused            bool    // custom ops (fast) or Gorgonia primitives (reference)
	lambda1, lambda2 float64 // loss weights
	jitter           float64
}

// newTensor allocates a zero tensor of dtype dt.
func newTensor(dt tensor.Dtype, shape ...int) *tensor.Dense {
	return tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
}

// setFloats copies src into a tensor of either float type.
func setFloats(t *tensor.Dense, src []float64) { setFloatsAt(t, 0, src) }

// setFloatsAt copies src into a tensor of either float type from element off.
func setFloatsAt(t *tensor.Dense, off int, src []float64) {
	switch t.Dtype() {
	case tensor.Float64:
		copy(t.Float64s()[off:], src)
	case tensor.Float32:
		d := t.Float32s()[off:]
		for i, v := range src {
			d[i] = float32(v)
		}
	}
}

// getFloats copies a float tensor's data into dst.
func getFloats(dst []float64, v G.Value) error {
	if d, ok := v.(*tensor.Dense); ok && !d.IsScalar() {
		return getFloatsAt(dst, d, 0)
	}
	t, ok := v.(tensor.Tensor)
	if !ok {
		return fmt.Errorf("train: value %T is not a tensor", v)
	}
	switch d := t.Data().(type) {
	case []float64:
		copy(dst, d)
	case []float32:
		for i, x := range d {
			dst[i] = float64(x)
		}
	default:
		return fmt.Errorf("train: tensor holds %T", t.Data())
	}
	return nil
}

// getFloatsAt copies len(dst) values of a float tensor from element off into dst.
func getFloatsAt(dst []float64, d *tensor.Dense, off int) error {
	switch d.Dtype() {
	case tensor.Float64:
		copy(dst, d.Float64s()[off:])
	case tensor.Float32:
		for i, x := range d.Float32s()[off : off+len(dst)] {
			dst[i] = float64(x)
		}
	default:
		return fmt.Errorf("train: tensor holds %v", d.Dtype())
	}
	return nil
}

// buildLossGraph builds the DAGMM loss over batches of `batch` rows of d
// features, with parameters initialised from nw, and its gradients with
// respect to the parameters, and compiles it into a tape machine.
func buildLossGraph(nw *network, d int, dt tensor.Dtype, batch int, o graphOptions) (*lossGraph, error) {
	lg := newLossGraph(nw, dt, batch, o)
	st, err := lg.addStep(nw, d, lg.params, o)
	if err != nil {
		return nil, err
	}
	if st.grads, err = G.Grad(st.loss, lg.params...); err != nil {
		return nil, fmt.Errorf("train: differentiate the loss: %w", err)
	}
	st.gVals = make([]G.Value, len(st.grads))
	for i, gn := range st.grads {
		st.gVals[i] = newTensor(dt, gn.Shape()...)
		G.Read(gn, &st.gVals[i])
	}
	lg.vm = G.NewTapeMachine(lg.g)
	return lg, nil
}

// newLossGraph starts a loss graph: the parameter inputs, initialised from nw.
func newLossGraph(nw *network, dt tensor.Dtype, batch int, o graphOptions) *lossGraph {
	lg := &lossGraph{g: G.NewGraph(), dt: dt, batch: batch}
	if o.fused {
		lg.addChainParams(nw)
	} else {
		lg.addLayerParams(nw)
	}
	lg.load(nw.all())
	return lg
}

// addStep adds one batch's loss, computed with the parameter nodes params
// (laid out as lg.params), and its own batch and mask inputs.
func (lg *lossGraph) addStep(nw *network, d int, params []*G.Node, o graphOptions) (*lossStep, error) {
	g, dt, batch := lg.g, lg.dt, lg.batch
	k := len(lg.steps)
	st := &lossStep{xVal: newTensor(dt, batch, d)}
	st.x = G.NewMatrix(g, dt, G.WithShape(batch, d), G.WithName(fmt.Sprintf("x%d", k)), G.WithValue(st.xVal))
	if o.dropout {
		for i, l := range nw.est[:len(nw.est)-1] {
			m := newTensor(dt, batch, l.Out)
			st.mVals = append(st.mVals, m)
			st.masks = append(st.masks, G.NewMatrix(g, dt, G.WithShape(batch, l.Out), G.WithName(fmt.Sprintf("mask%d.%d", k, i)), G.WithValue(m)))
		}
	}
	var xr, z, gamma *G.Node
	var err error
	if o.fused {
		xr, z, gamma, err = chains(nw, st, params)
	} else {
		xr, z, gamma, err = layers(nw, st, params)
	}
	if err != nil {
		return nil, err
	}
	if o.fused {
		if st.recon, err = reconstructionError(st.x, xr); err != nil {
			return nil, err
		}
		gmm, err := GMMEnergy(z, gamma, o.jitter)
		if err != nil {
			return nil, err
		}
		if st.loss, err = lossNode(st.recon, gmm, o.lambda1, o.lambda2); err != nil {
			return nil, err
		}
		st.energy = gmm // energies and penalty in one vector
	} else {
		if st.recon, err = primitiveReconstructionError(st.x, xr); err != nil {
			return nil, err
		}
		if st.energy, st.penalty, err = referenceGMMEnergy(z, gamma, o.jitter); err != nil {
			return nil, err
		}
		if st.loss, err = primitiveLoss(st.recon, st.energy, st.penalty, o.lambda1, o.lambda2); err != nil {
			return nil, err
		}
	}
	G.Read(st.loss, &st.lossV)
	G.Read(st.recon, &st.reconV)
	G.Read(st.energy, &st.energyV)
	if st.penalty != nil {
		G.Read(st.penalty, &st.penaltyV)
	}
	lg.steps = append(lg.steps, st)
	if k == 0 {
		lg.lossStep = st
	}
	return st, nil
}

// addLayerParams gives each layer's W and b a parameter node.
func (lg *lossGraph) addLayerParams(nw *network) {
	for i, l := range nw.all() {
		lg.pVals = append(lg.pVals, newTensor(lg.dt, l.In, l.Out), newTensor(lg.dt, l.Out))
		lg.params = append(lg.params,
			G.NewMatrix(lg.g, lg.dt, G.WithShape(l.In, l.Out), G.WithName(fmt.Sprintf("w%d", i)), G.WithValue(lg.pVals[2*i])),
			G.NewVector(lg.g, lg.dt, G.WithShape(l.Out), G.WithName(fmt.Sprintf("b%d", i)), G.WithValue(lg.pVals[2*i+1])))
		lg.slots = append(lg.slots, paramSlot{2 * i, 0}, paramSlot{2*i + 1, 0})
	}
}

// addChainParams gives each network one parameter vector: W, b of each of
// its layers one after the other (see mlpChain).
func (lg *lossGraph) addChainParams(nw *network) {
	for t, ls := range [][]model.Layer{nw.enc, nw.dec, nw.est} {
		off := 0
		for _, l := range ls {
			lg.slots = append(lg.slots, paramSlot{t, off}, paramSlot{t, off + l.In*l.Out})
			off += l.In*l.Out + l.Out
		}
		lg.pVals = append(lg.pVals, newTensor(lg.dt, off))
		lg.params = append(lg.params, G.NewVector(lg.g, lg.dt, G.WithShape(off), G.WithName(fmt.Sprintf("theta%d", t)), G.WithValue(lg.pVals[t])))
	}
}

// chainLayers describes the layers for mlpChain, the first masked ones
// masked.
func chainLayers(ls []model.Layer, masked int) []chainLayer {
	out := make([]chainLayer, len(ls))
	for i, l := range ls {
		out[i] = chainLayer{in: l.In, out: l.Out, act: l.Activation, masked: i < masked}
	}
	return out
}

// chains builds the three networks as one node each (addChainParams) on
// the step's batch and returns the reconstruction, z and the memberships.
func chains(nw *network, st *lossStep, params []*G.Node) (xr, z, gamma *G.Node, err error) {
	var zc *G.Node
	if zc, err = mlpChain(st.x, params[0], nil, chainLayers(nw.enc, 0), false); err != nil {
		return
	}
	if xr, err = mlpChain(zc, params[1], nil, chainLayers(nw.dec, 0), true); err != nil {
		return
	}
	if z, err = estimationInput(st.x, zc, xr); err != nil {
		return
	}
	gamma, err = mlpChain(z, params[2], st.masks, chainLayers(nw.est, len(st.masks)), true)
	return
}

// layers builds the three networks from Gorgonia's primitives, a node per
// layer (addLayerParams), on the step's batch and returns the
// reconstruction, z and the memberships.
func layers(nw *network, st *lossStep, params []*G.Node) (xr, z, gamma *G.Node, err error) {
	h, p := st.x, 0
	stack := func(ls []model.Layer, masks []*G.Node) error {
		for i := range ls {
			var mask *G.Node
			if i < len(masks) {
				mask = masks[i]
			}
			if h, err = primitiveDense(h, params[2*p], params[2*p+1], mask, ls[i].Activation); err != nil {
				return err
			}
			p++
		}
		return nil
	}
	if err = stack(nw.enc, nil); err != nil {
		return
	}
	zc := h
	if err = stack(nw.dec, nil); err != nil {
		return
	}
	xr = h
	if z, err = primitiveEstimationInput(st.x, zc, xr); err != nil {
		return
	}
	h = z
	if err = stack(nw.est, st.masks); err != nil {
		return
	}
	return xr, z, h, nil
}

// readGrads copies the gradient of each layer's W and b, in network.all()
// order, into dst after run.
func (lg *lossGraph) readGrads(dst [][]float64) error {
	for k, s := range lg.slots {
		d, ok := lg.gVals[s.t].(*tensor.Dense)
		if !ok {
			return fmt.Errorf("train: gradient %d is %T", s.t, lg.gVals[s.t])
		}
		if err := getFloatsAt(dst[k], d, s.off); err != nil {
			return err
		}
	}
	return nil
}

// run executes one forward and backward pass over the bound batch and masks.
func (lg *lossGraph) run() error {
	defer lg.vm.Reset()
	return lg.vm.RunAll()
}

// parts returns the loss and its parts after run.
func (st *lossStep) parts() (loss, recon, energy, penalty float64, err error) {
	if loss, err = scalarOf(st.lossV); err != nil {
		return
	}
	if recon, err = scalarOf(st.reconV); err != nil {
		return
	}
	if st.penalty == nil {
		energy, penalty, err = energyParts(st.energyV)
		return
	}
	t, ok := st.energyV.(tensor.Tensor)
	if !ok {
		return 0, 0, 0, 0, fmt.Errorf("train: energy value %T", st.energyV)
	}
	e := make([]float64, t.Shape().TotalSize())
	if err = getFloats(e, t); err != nil {
		return
	}
	for _, v := range e {
		energy += v
	}
	energy /= float64(len(e))
	penalty, err = scalarOf(st.penaltyV)
	return
}

// close releases the machine.
func (lg *lossGraph) close() error { return lg.vm.Close() }

// primitiveDense is act(x·W + b) [⊙ mask] from Gorgonia's own ops.
func primitiveDense(x, w, b, mask *G.Node, act model.Activation) (*G.Node, error) {
	xw, err := G.Mul(x, w)
	if err != nil {
		return nil, err
	}
	b2, err := G.Reshape(b, tensor.Shape{1, b.Shape()[0]})
	if err != nil {
		return nil, err
	}
	h, err := G.BroadcastAdd(xw, b2, nil, []byte{0})
	if err != nil {
		return nil, err
	}
	switch act {
	case model.Tanh:
		h, err = G.Tanh(h)
	case model.Softmax:
		h, err = G.SoftMax(h)
	}
	if err != nil || mask == nil {
		return h, err
	}
	return G.HadamardProd(h, mask)
}

// constant returns a scalar constant of the graph's dtype.
func constant(dt tensor.Dtype, v float64) *G.Node {
	if dt == tensor.Float32 {
		return G.NewConstant(float32(v))
	}
	return G.NewConstant(v)
}

// rowNorm returns sqrt(Σ_j a_ij²) per row of a matrix node.
func rowNorm(a *G.Node) (*G.Node, error) {
	sq, err := G.Square(a)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(sq, 1)
	if err != nil {
		return nil, err
	}
	return G.Sqrt(s)
}

// primitiveEstimationInput is estimationInput from Gorgonia's own ops.
func primitiveEstimationInput(x, zc, xr *G.Node) (*G.Node, error) {
	n := x.Shape()[0]
	dt := x.Dtype()
	eps := constant(dt, model.DistanceEpsilon)
	diff, err := G.Sub(x, xr)
	if err != nil {
		return nil, err
	}
	nd, err := rowNorm(diff)
	if err != nil {
		return nil, err
	}
	nx, err := rowNorm(x)
	if err != nil {
		return nil, err
	}
	nr, err := rowNorm(xr)
	if err != nil {
		return nil, err
	}
	den, err := G.Add(nx, eps)
	if err != nil {
		return nil, err
	}
	rel, err := G.HadamardDiv(nd, den)
	if err != nil {
		return nil, err
	}
	prod, err := G.HadamardProd(x, xr)
	if err != nil {
		return nil, err
	}
	dot, err := G.Sum(prod, 1)
	if err != nil {
		return nil, err
	}
	q, err := G.HadamardProd(nx, nr)
	if err != nil {
		return nil, err
	}
	if q, err = G.Add(q, eps); err != nil {
		return nil, err
	}
	cos, err := G.HadamardDiv(dot, q)
	if err != nil {
		return nil, err
	}
	rel2, err := G.Reshape(rel, tensor.Shape{n, 1})
	if err != nil {
		return nil, err
	}
	cos2, err := G.Reshape(cos, tensor.Shape{n, 1})
	if err != nil {
		return nil, err
	}
	return G.Concat(1, zc, rel2, cos2)
}

// primitiveReconstructionError is reconstructionError from Gorgonia's own ops.
func primitiveReconstructionError(x, xr *G.Node) (*G.Node, error) {
	diff, err := G.Sub(x, xr)
	if err != nil {
		return nil, err
	}
	sq, err := G.Square(diff)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(sq, 1)
	if err != nil {
		return nil, err
	}
	return G.Mean(s)
}

// primitiveLoss is recon + λ1·mean(energy) + λ2·penalty from Gorgonia's own ops.
func primitiveLoss(recon, energy, penalty *G.Node, l1, l2 float64) (*G.Node, error) {
	dt := recon.Dtype()
	me, err := G.Mean(energy)
	if err != nil {
		return nil, err
	}
	a, err := G.Mul(constant(dt, l1), me)
	if err != nil {
		return nil, err
	}
	b, err := G.Mul(constant(dt, l2), penalty)
	if err != nil {
		return nil, err
	}
	s, err := G.Add(recon, a)
	if err != nil {
		return nil, err
	}
	return G.Add(s, b)
}

// referenceGMMEnergy builds the mixture block of [GMMEnergy] from Gorgonia's
// primitive ops plus [BatchedInverse] and [BatchedLogDet] (about 40 nodes per
// component instead of one): it returns the n sample energies and the
// covariance penalty as separate nodes. It is the slow, obviously correct
// version the fused op is tested against.
func referenceGMMEnergy(z, gamma *G.Node, jitter float64) (energy, penalty *G.Node, err error) {
	zs, gs := z.Shape(), gamma.Shape()
	if len(zs) != 2 || len(gs) != 2 || zs[0] != gs[0] {
		return nil, nil, fmt.Errorf("train: reference gmm energy: shapes z %v and gamma %v, want (n, D) and (n, K)", zs, gs)
	}
	n, dim, k := zs[0], zs[1], gs[1]
	dt := z.Dtype()
	nk, err := G.Sum(gamma, 0) // (K)
	if err != nil {
		return nil, nil, err
	}
	phi, err := G.Mul(nk, constant(dt, 1/float64(n)))
	if err != nil {
		return nil, nil, err
	}
	gammaT, err := G.Transpose(gamma)
	if err != nil {
		return nil, nil, err
	}
	muNum, err := G.Mul(gammaT, z) // (K, D)
	if err != nil {
		return nil, nil, err
	}
	nk2, err := G.Reshape(nk, tensor.Shape{k, 1})
	if err != nil {
		return nil, nil, err
	}
	mu, err := G.BroadcastHadamardDiv(muNum, nk2, nil, []byte{1})
	if err != nil {
		return nil, nil, err
	}
	eye := make([]float64, dim*dim)
	for i := range dim {
		eye[i*dim+i] = 1
	}
	eyeT := newTensor(dt, dim, dim)
	setFloats(eyeT, eye)
	jitterT := newTensor(dt, dim, dim)
	for i := range eye {
		eye[i] *= jitter
	}
	setFloats(jitterT, eye)
	eyeN := G.NewConstant(eyeT, G.WithName("eye"))
	jitterN := G.NewConstant(jitterT, G.WithName("jitterI"))

	sigmas := make([]*G.Node, k)
	penalty = nil
	for c := range k {
		dc, err := centred(z, mu, c)
		if err != nil {
			return nil, nil, err
		}
		gc, err := G.Slice(gamma, nil, G.S(c)) // (n)
		if err != nil {
			return nil, nil, err
		}
		gc2, err := G.Reshape(gc, tensor.Shape{n, 1})
		if err != nil {
			return nil, nil, err
		}
		wd, err := G.BroadcastHadamardProd(dc, gc2, nil, []byte{1})
		if err != nil {
			return nil, nil, err
		}
		wdT, err := G.Transpose(wd)
		if err != nil {
			return nil, nil, err
		}
		s, err := G.Mul(wdT, dc) // (D, D)
		if err != nil {
			return nil, nil, err
		}
		nc, err := G.Slice(nk, G.S(c))
		if err != nil {
			return nil, nil, err
		}
		if s, err = G.HadamardDiv(s, nc); err != nil {
			return nil, nil, err
		}
		if s, err = G.Add(s, jitterN); err != nil {
			return nil, nil, err
		}
		diagM, err := G.HadamardProd(s, eyeN)
		if err != nil {
			return nil, nil, err
		}
		diag, err := G.Sum(diagM, 1)
		if err != nil {
			return nil, nil, err
		}
		inv, err := G.Inverse(diag)
		if err != nil {
			return nil, nil, err
		}
		pc, err := G.Sum(inv)
		if err != nil {
			return nil, nil, err
		}
		if penalty == nil {
			penalty = pc
		} else if penalty, err = G.Add(penalty, pc); err != nil {
			return nil, nil, err
		}
		if sigmas[c], err = G.Reshape(s, tensor.Shape{1, dim, dim}); err != nil {
			return nil, nil, err
		}
	}
	sigma := sigmas[0]
	if k > 1 {
		if sigma, err = G.Concat(0, sigmas...); err != nil {
			return nil, nil, err
		}
	}
	prec, err := BatchedInverse(sigma)
	if err != nil {
		return nil, nil, err
	}
	logdet, err := BatchedLogDet(sigma)
	if err != nil {
		return nil, nil, err
	}
	energy, err = mixtureEnergy(z, phi, mu, prec, logdet)
	if err != nil {
		return nil, nil, err
	}
	return energy, penalty, nil
}

// centred returns z − μ_c (n×D) for component c of mu (K×D).
func centred(z, mu *G.Node, c int) (*G.Node, error) {
	dim := z.Shape()[1]
	mc, err := G.Slice(mu, G.S(c)) // (D)
	if err != nil {
		return nil, err
	}
	mc2, err := G.Reshape(mc, tensor.Shape{1, dim})
	if err != nil {
		return nil, err
	}
	return G.BroadcastSub(z, mc2, nil, []byte{0})
}

// mixtureEnergy builds the sample energies (n) of z (n×D) under the mixture
// phi (K), mu (K×D), precisions prec = Σ⁻¹ (K×D×D) and log-determinants
// logdet (K), from Gorgonia's primitive ops with a stable log-sum-exp:
// max, subtract, exp, sum, log, add the max back.
func mixtureEnergy(z, phi, mu, prec, logdet *G.Node) (*G.Node, error) {
	n, dim := z.Shape()[0], z.Shape()[1]
	k := phi.Shape()[0]
	dt := z.Dtype()
	half := constant(dt, -0.5)
	cst := constant(dt, float64(dim)*math.Log(2*math.Pi))
	terms := make([]*G.Node, k)
	for c := range k {
		dc, err := centred(z, mu, c)
		if err != nil {
			return nil, err
		}
		pc, err := G.Slice(prec, G.S(c)) // (D, D)
		if err != nil {
			return nil, err
		}
		dp, err := G.Mul(dc, pc)
		if err != nil {
			return nil, err
		}
		dpd, err := G.HadamardProd(dp, dc)
		if err != nil {
			return nil, err
		}
		q, err := G.Sum(dpd, 1) // (n)
		if err != nil {
			return nil, err
		}
		phic, err := G.Slice(phi, G.S(c))
		if err != nil {
			return nil, err
		}
		logphi, err := G.Log(phic)
		if err != nil {
			return nil, err
		}
		ldc, err := G.Slice(logdet, G.S(c))
		if err != nil {
			return nil, err
		}
		norm, err := G.Add(ldc, cst)
		if err != nil {
			return nil, err
		}
		if norm, err = G.Mul(half, norm); err != nil {
			return nil, err
		}
		cc, err := G.Add(logphi, norm) // log φ_c − ½(D log 2π + log det Σ_c)
		if err != nil {
			return nil, err
		}
		a, err := G.Mul(q, half)
		if err != nil {
			return nil, err
		}
		if a, err = G.Add(a, cc); err != nil {
			return nil, err
		}
		if terms[c], err = G.Reshape(a, tensor.Shape{n, 1}); err != nil {
			return nil, err
		}
	}
	all := terms[0]
	var err error
	if k > 1 {
		if all, err = G.Concat(1, terms...); err != nil { // (n, K)
			return nil, err
		}
	}
	mx, err := G.Max(all, 1) // (n)
	if err != nil {
		return nil, err
	}
	mx2, err := G.Reshape(mx, tensor.Shape{n, 1})
	if err != nil {
		return nil, err
	}
	sh, err := G.BroadcastSub(all, mx2, nil, []byte{1})
	if err != nil {
		return nil, err
	}
	ex, err := G.Exp(sh)
	if err != nil {
		return nil, err
	}
	s, err := G.Sum(ex, 1)
	if err != nil {
		return nil, err
	}
	ls, err := G.Log(s)
	if err != nil {
		return nil, err
	}
	if ls, err = G.Add(ls, mx); err != nil {
		return nil, err
	}
	return G.Neg(ls)
}
