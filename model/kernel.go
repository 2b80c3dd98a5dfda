package model

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// blockRows is how many samples go through the network together. Together
// with gemmMaxOut it keeps gonum's Dgemm on its serial path (fewer than 4
// blocks of 64×64 in the output), which neither allocates nor starts
// goroutines; parallelism comes from the callers (see [Scorer.ScoreParallel]).
const blockRows = 64

// gemmMaxOut is the widest layer handed to blas64.Gemm (3 blocks of 64).
const gemmMaxOut = 192

// gemmMinWork is the smallest layer (In×Out) handed to blas64.Gemm; smaller
// layers run plain loops, which cost less per call.
const gemmMinWork = 512

// dense is one fully connected layer, prepared for the forward pass.
type dense struct {
	in, out int
	tanh    bool
	gemm    bool      // use blas64.Gemm, else plain loops
	wt      []float64 // out×in, row-major: W transposed, one row per output
	b       []float64 // out
}

// newDense prepares l in wt (len(l.W)) and b (len(l.B)).
func newDense(l Layer, wt, b []float64) dense {
	d := dense{
		in:   l.In,
		out:  l.Out,
		tanh: l.Activation == Tanh,
		gemm: l.In*l.Out >= gemmMinWork && l.Out <= gemmMaxOut,
		wt:   wt,
		b:    b,
	}
	copy(b, l.B)
	for i := range l.In {
		for j := range l.Out {
			d.wt[j*l.In+i] = l.W[i*l.Out+j]
		}
	}
	return d
}

// layer returns the encoder or decoder layer d was made from: the inverse
// of newDense (such layers are tanh or linear).
func (d *dense) layer() Layer {
	l := Layer{In: d.in, Out: d.out, Activation: Linear, W: make([]float64, d.in*d.out), B: slices.Clone(d.b)}
	if d.tanh {
		l.Activation = Tanh
	}
	for i := range d.in {
		for j := range d.out {
			l.W[i*d.out+j] = d.wt[j*d.in+i]
		}
	}
	return l
}

// forward computes out[r] = act(in[r]·W + b) for the first rows rows of in
// (rows×in) into out (rows×out), with rows ≤ blockRows. Each output is the
// bias plus a dot product of the input row with a row of W transposed: the
// plain loops sum in input order, Gemm (gonum's SSE2 DotUnitary) in pairs.
// Which path a layer takes depends only on its shape, never on the batch, so
// a sample scores the same alone or in any batch.
func (l *dense) forward(in []float64, rows int, out []float64) {
	in = in[:rows*l.in]
	out = out[:rows*l.out]
	if l.gemm {
		for r := range rows {
			copy(out[r*l.out:(r+1)*l.out], l.b)
		}
		blas64.Gemm(blas.NoTrans, blas.Trans, 1,
			blas64.General{Rows: rows, Cols: l.in, Stride: l.in, Data: in},
			blas64.General{Rows: l.out, Cols: l.in, Stride: l.in, Data: l.wt},
			1,
			blas64.General{Rows: rows, Cols: l.out, Stride: l.out, Data: out})
	} else {
		nIn, nOut := l.in, l.out
		wt, b := l.wt[:nIn*nOut], l.b[:nOut]
		for r := range rows {
			x := in[r*nIn : (r+1)*nIn]
			o := out[r*nOut : (r+1)*nOut]
			for j := range o {
				o[j] = dotAdd(b[j], x, wt[j*nIn:(j+1)*nIn])
			}
		}
	}
	if l.tanh {
		for i, v := range out {
			out[i] = math.Tanh(v)
		}
	}
}

// dotAdd returns s + Σ x[i]·w[i], adding in index order (unrolled by four
// without reassociating, so the result is the plain loop's to the bit).
func dotAdd(s float64, x, w []float64) float64 {
	w = w[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s += x[i] * w[i]
		s += x[i+1] * w[i+1]
		s += x[i+2] * w[i+2]
		s += x[i+3] * w[i+3]
	}
	for ; i < len(x); i++ {
		s += x[i] * w[i]
	}
	return s
}
