package train

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// adamOp is an optimiser step inside a training graph: from a step's
// parameter gradients and loss it checks the loss and the gradients
// (divergence), applies Adam to the float64 master weights and returns the
// parameters the next step computes with. Its value is the first parameter
// tensor; adamParamOp nodes give the others. A training graph chains
// several steps this way, so that one run of the tape machine trains
// several batches: a run's fixed cost (a goroutine and two thread
// hand-offs in Gorgonia's RunAll) is then paid once for all of them. The
// arithmetic is that of trainer.step, so the weights are bit for bit the
// same.
type adamOp struct {
	opBase
	tr     *trainer
	shapes []tensor.Shape // of the parameters, in lg.params order
	outs   []*tensor.Dense
}

// applyAdam adds an optimiser step after grads (one per parameter tensor)
// and loss, and returns the parameter nodes it gives.
func applyAdam(tr *trainer, lg *lossGraph, grads []*G.Node, loss *G.Node) ([]*G.Node, error) {
	op := &adamOp{tr: tr}
	for _, p := range lg.pVals {
		op.shapes = append(op.shapes, p.Shape().Clone())
		op.outs = append(op.outs, newTensor(lg.dt, p.Shape()...))
	}
	first, err := G.ApplyOp(op, append(append([]*G.Node{}, grads...), loss)...)
	if err != nil {
		return nil, err
	}
	out := []*G.Node{first}
	for i := 1; i < len(op.shapes); i++ {
		n, err := G.ApplyOp(&adamParamOp{adam: op, i: i}, first)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (op *adamOp) Arity() int { return len(op.shapes) + 1 }
func (op *adamOp) Type() hm.Type {
	dims := make([]int, 0, len(op.shapes)+2)
	for _, s := range op.shapes {
		dims = append(dims, s.Dims())
	}
	return fnType(append(dims, 0, op.shapes[0].Dims())...)
}
func (op *adamOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shapes[0].Clone(), nil }
func (op *adamOp) String() string                                 { return fmt.Sprintf("Adam{%v}", op.shapes) }
func (op *adamOp) WriteHash(h hash.Hash)                          { writeHash(h, op.String()) }
func (op *adamOp) Hashcode() uint32                               { return hashString(op.String()) }

func (op *adamOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	tr := op.tr
	loss, err := scalarOf(vs[len(vs)-1])
	if err != nil {
		return nil, err
	}
	if err := tr.checkLoss(loss); err != nil {
		return nil, err
	}
	for k, s := range tr.lg.slots {
		d, ok := vs[s.t].(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("train: gradient %d is %T", s.t, vs[s.t])
		}
		if err := getFloatsAt(tr.opt.g[k], d, s.off); err != nil {
			return nil, err
		}
	}
	if err := tr.opt.step(tr.layers); err != nil {
		tr.failed = err
		return nil, err
	}
	for i, l := range tr.layers {
		w, b := tr.lg.slots[2*i], tr.lg.slots[2*i+1]
		setFloatsAt(op.outs[w.t], w.off, l.W)
		setFloatsAt(op.outs[b.t], b.off, l.B)
	}
	return op.outs[0], nil
}

// adamParamOp gives parameter tensor i after its adamOp's step; its input
// is the adamOp's node.
type adamParamOp struct {
	opBase
	adam *adamOp
	i    int
}

func (op *adamParamOp) Arity() int { return 1 }
func (op *adamParamOp) Type() hm.Type {
	return fnType(op.adam.shapes[0].Dims(), op.adam.shapes[op.i].Dims())
}
func (op *adamParamOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.adam.shapes[op.i].Clone(), nil
}
func (op *adamParamOp) String() string        { return fmt.Sprintf("AdamParam{%d, %v}", op.i, op.adam.shapes) }
func (op *adamParamOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *adamParamOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *adamParamOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return op.adam.outs[op.i], nil
}

// buildTrainGraph builds the training graph of tr: steps batches, each with
// its loss, its gradients and an optimiser step (adamOp) whose parameters
// the next batch uses; the first batch uses lg.params, loaded from the
// master weights.
func buildTrainGraph(tr *trainer, nw *network, d int, dt tensor.Dtype, batch, steps int, o graphOptions) (*lossGraph, error) {
	lg := newLossGraph(nw, dt, batch, o)
	tr.lg = lg
	params := lg.params
	for range steps {
		st, err := lg.addStep(nw, d, params, o)
		if err != nil {
			return nil, err
		}
		one := G.NewConstant(1.0)
		if dt == tensor.Float32 {
			one = G.NewConstant(float32(1))
		}
		// G.Grad differentiates with respect to inputs only; a later step's
		// parameters are the previous optimiser step's outputs.
		if st.grads, err = G.Backpropagate(G.Nodes{st.loss}, G.Nodes{lg.g.AddNode(one)}, params); err != nil {
			return nil, fmt.Errorf("train: differentiate the loss: %w", err)
		}
		if params, err = applyAdam(tr, lg, st.grads, st.loss); err != nil {
			return nil, err
		}
	}
	lg.vm = G.NewTapeMachine(lg.g)
	return lg, nil
}

// unrollSteps is the most optimiser steps one run of the training graph
// holds.
const unrollSteps = 8

// stepsPerRun returns how many of an epoch's steps one run of the training
// graph takes: the largest divisor of steps up to unrollSteps, so that every
// run is full.
func stepsPerRun(steps int) int {
	for s := min(steps, unrollSteps); s > 1; s-- {
		if steps%s == 0 {
			return s
		}
	}
	return 1
}

// checkLoss records the first batch loss and reports (and keeps in
// tr.failed) a divergence.
func (tr *trainer) checkLoss(loss float64) error {
	if math.IsNaN(tr.first) {
		tr.first = loss
	}
	if why := diverged(loss, tr.first); why != "" {
		tr.failed = &divergence{why: why}
		return tr.failed
	}
	return nil
}
