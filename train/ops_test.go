package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/dagmm/dagmm/model"
)

// fdInput is one input of an op under a finite-difference check.
type fdInput struct {
	name  string
	shape []int // nil for a scalar
	vals  []float64
	diff  bool // check the gradient with respect to this input
}

// fdGraph is a float64 graph computing obj = Σ w ⊙ f(inputs) (or f itself
// when f is a scalar) and its gradients.
type fdGraph struct {
	vm      G.VM
	nodes   []*G.Node
	tensors []*tensor.Dense // nil for scalar inputs
	objV    G.Value
	gradV   []G.Value // per differentiable input, in order
	diffIdx []int
}

func newFDGraph(t *testing.T, ins []fdInput, build func(ins []*G.Node) (*G.Node, error), seed uint64) *fdGraph {
	t.Helper()
	g := G.NewGraph()
	fg := &fdGraph{}
	var wrt []*G.Node
	for i, in := range ins {
		var n *G.Node
		if in.shape == nil {
			n = G.NewScalar(g, tensor.Float64, G.WithName(in.name), G.WithValue(in.vals[0]))
			fg.tensors = append(fg.tensors, nil)
		} else {
			v := dense(append([]float64(nil), in.vals...), in.shape...)
			n = G.NewTensor(g, tensor.Float64, len(in.shape), G.WithShape(in.shape...), G.WithName(in.name), G.WithValue(v))
			fg.tensors = append(fg.tensors, v)
		}
		fg.nodes = append(fg.nodes, n)
		if in.diff {
			wrt = append(wrt, n)
			fg.diffIdx = append(fg.diffIdx, i)
		}
	}
	out, err := build(fg.nodes)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	obj := out
	if !out.IsScalar() {
		rng := rand.New(rand.NewPCG(seed, 99))
		w := make([]float64, out.Shape().TotalSize())
		for i := range w {
			w[i] = rng.Float64()*2 - 1
		}
		wn := G.NewTensor(g, tensor.Float64, out.Dims(), G.WithShape(out.Shape()...), G.WithName("w"), G.WithValue(dense(w, out.Shape()...)))
		prod, err := G.HadamardProd(out, wn)
		if err != nil {
			t.Fatal(err)
		}
		if obj, err = G.Sum(prod); err != nil {
			t.Fatal(err)
		}
	}
	grads, err := G.Grad(obj, wrt...)
	if err != nil {
		t.Fatalf("grad: %v", err)
	}
	G.Read(obj, &fg.objV)
	fg.gradV = make([]G.Value, len(grads))
	for i, gn := range grads {
		G.Read(gn, &fg.gradV[i])
	}
	fg.vm = G.NewTapeMachine(g)
	t.Cleanup(func() { fg.vm.Close() })
	return fg
}

func (fg *fdGraph) run(t *testing.T) float64 {
	t.Helper()
	err := fg.vm.RunAll()
	fg.vm.Reset()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	v, err := scalarOf(fg.objV)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// set changes element j of input i.
func (fg *fdGraph) set(t *testing.T, i, j int, v float64) {
	t.Helper()
	if fg.tensors[i] == nil {
		if err := G.Let(fg.nodes[i], v); err != nil {
			t.Fatal(err)
		}
		return
	}
	fg.tensors[i].Data().([]float64)[j] = v
}

// fdStep is the central-difference step, relative to max(1, |x|).
const fdStep = 1e-5

// checkFD compares the analytic gradient of every differentiable input
// with central finite differences and returns the largest relative error,
// |fd − g| / max(|fd|, |g|, floor) with floor = 1e-3·max|g| over the input
// (so that entries that are zero up to rounding do not count as large
// relative errors), and the norm-wise relative error ‖fd − g‖ / ‖g‖.
func checkFD(t *testing.T, ins []fdInput, build func([]*G.Node) (*G.Node, error), tol float64) {
	t.Helper()
	fg := newFDGraph(t, ins, build, 1)
	fg.run(t)
	an := make([][]float64, len(fg.gradV))
	for k, gv := range fg.gradV {
		an[k] = make([]float64, gv.Shape().TotalSize())
		if err := getFloats(an[k], gv); err != nil {
			if s, err2 := scalarOf(gv); err2 == nil {
				an[k] = []float64{s}
			} else {
				t.Fatal(err)
			}
		}
	}
	for k, i := range fg.diffIdx {
		in := ins[i]
		fd := make([]float64, len(in.vals))
		for j, x := range in.vals {
			h := fdStep * max(1, math.Abs(x))
			fg.set(t, i, j, x+h)
			fp := fg.run(t)
			fg.set(t, i, j, x-h)
			fm := fg.run(t)
			fg.set(t, i, j, x)
			fd[j] = (fp - fm) / (2 * h)
		}
		maxAbs := 0.0
		for _, v := range an[k] {
			maxAbs = max(maxAbs, math.Abs(v))
		}
		worst, num, den := 0.0, 0.0, 0.0
		for j := range fd {
			e := math.Abs(fd[j] - an[k][j])
			r := e / max(math.Abs(fd[j]), math.Abs(an[k][j]), 1e-3*maxAbs, 1e-12)
			worst = max(worst, r)
			num += e * e
			den += an[k][j] * an[k][j]
		}
		norm := math.Sqrt(num / max(den, 1e-300))
		t.Logf("%s: max relative error %.2e, norm-wise %.2e (max |g| %.3g)", in.name, worst, norm, maxAbs)
		if worst > tol || norm > tol || maxAbs == 0 {
			t.Errorf("%s: gradient differs from finite differences: max relative error %.2e, norm-wise %.2e, max |g| %v (tolerance %.0e)\nanalytic %v\nfd       %v",
				in.name, worst, norm, maxAbs, tol, an[k], fd)
		}
	}
}

func randVals(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * scale
	}
	return v
}

// wellConditioned returns k random d×d matrices R + d·I (positive determinant).
func wellConditioned(rng *rand.Rand, k, d int) []float64 {
	v := randVals(rng, k*d*d, 1)
	for c := range k {
		for i := range d {
			v[c*d*d+i*d+i] += float64(d) + 1
		}
	}
	return v
}

// memberships returns n random softmax rows over k.
func memberships(rng *rand.Rand, n, k int) []float64 {
	v := randVals(rng, n*k, 1)
	for i := range n {
		softmaxRow(v[i*k : (i+1)*k])
	}
	return v
}

// masks returns n×m dropout masks with values 0 or 2 (p = 0.5), never a
// whole row of zeros.
func masks(rng *rand.Rand, n, m int) []float64 {
	v := make([]float64, n*m)
	for i := range v {
		if rng.Float64() < 0.6 {
			v[i] = 2
		}
	}
	return v
}

func TestCustomOpsFiniteDifferences(t *testing.T) {
	const tol = 1e-6
	rng := rand.New(rand.NewPCG(7, 7))
	n, in, out := 6, 4, 3
	denseCase := func(act model.Activation, masked bool) ([]fdInput, func([]*G.Node) (*G.Node, error)) {
		ins := []fdInput{
			{"x", []int{n, in}, randVals(rng, n*in, 1), true},
			{"w", []int{in, out}, randVals(rng, in*out, 0.7), true},
			{"b", []int{out}, randVals(rng, out, 0.3), true},
		}
		if masked {
			ins = append(ins, fdInput{"mask", []int{n, out}, masks(rng, n, out), false})
		}
		return ins, func(ns []*G.Node) (*G.Node, error) {
			var m *G.Node
			if masked {
				m = ns[3]
			}
			return denseLayer(ns[0], ns[1], ns[2], m, act, true)
		}
	}
	type tc struct {
		name  string
		ins   []fdInput
		build func([]*G.Node) (*G.Node, error)
	}
	var cases []tc
	for _, act := range []model.Activation{model.Linear, model.Tanh, model.Softmax} {
		for _, masked := range []bool{false, true} {
			if act == model.Softmax && masked {
				continue // a softmax layer is never masked (a zero would lose its input)
			}
			ins, b := denseCase(act, masked)
			cases = append(cases, tc{fmt.Sprintf("Dense/%s/masked=%t", act, masked), ins, b})
		}
	}
	for _, cc := range []struct {
		name   string
		layers []chainLayer
		gradX  bool
	}{
		{"Chain/tanh-tanh-linear", []chainLayer{{4, 5, model.Tanh, false}, {5, 3, model.Tanh, false}, {3, 2, model.Linear, false}}, true},
		{"Chain/tanh-tanh-linear/no-gradX", []chainLayer{{4, 5, model.Tanh, false}, {5, 3, model.Tanh, false}, {3, 2, model.Linear, false}}, false},
		{"Chain/tanh-masked-softmax", []chainLayer{{3, 5, model.Tanh, true}, {5, 4, model.Softmax, false}}, true},
		{"Chain/linear-masked", []chainLayer{{3, 4, model.Linear, true}}, true},
	} {
		ins := []fdInput{
			{"x", []int{n, cc.layers[0].in}, randVals(rng, n*cc.layers[0].in, 1), cc.gradX},
			{"theta", []int{chainSize(cc.layers)}, randVals(rng, chainSize(cc.layers), 0.7), true},
		}
		nm := 0
		for _, l := range cc.layers {
			if l.masked {
				ins = append(ins, fdInput{fmt.Sprintf("mask%d", nm), []int{n, l.out}, masks(rng, n, l.out), false})
				nm++
			}
		}
		cases = append(cases, tc{cc.name, ins, func(ns []*G.Node) (*G.Node, error) {
			return mlpChain(ns[0], ns[1], ns[2:], cc.layers, cc.gradX)
		}})
	}
	{
		d, c := 4, 2
		xv := randVals(rng, n*d, 1)
		xr := make([]float64, n*d)
		for i := range xr {
			xr[i] = xv[i] + 0.3*rng.NormFloat64()
		}
		cases = append(cases, tc{"EstimationInput", []fdInput{
			{"x", []int{n, d}, xv, false},
			{"zc", []int{n, c}, randVals(rng, n*c, 1), true},
			{"xr", []int{n, d}, xr, true},
		}, func(ns []*G.Node) (*G.Node, error) { return estimationInput(ns[0], ns[1], ns[2]) }})
		cases = append(cases, tc{"ReconstructionError", []fdInput{
			{"x", []int{n, d}, xv, false},
			{"xr", []int{n, d}, append([]float64(nil), xr...), true},
		}, func(ns []*G.Node) (*G.Node, error) { return reconstructionError(ns[0], ns[1]) }})
	}
	cases = append(cases, tc{"Loss", []fdInput{
		{"recon", nil, []float64{0.7}, true},
		{"gmm", []int{n + 1}, randVals(rng, n+1, 2), true},
	}, func(ns []*G.Node) (*G.Node, error) { return lossNode(ns[0], ns[1], 0.1, 0.005) }})
	{
		k, d := 3, 4
		cases = append(cases, tc{"BatchedInverse", []fdInput{
			{"a", []int{k, d, d}, wellConditioned(rng, k, d), true},
		}, func(ns []*G.Node) (*G.Node, error) { return BatchedInverse(ns[0]) }})
		cases = append(cases, tc{"BatchedLogDet", []fdInput{
			{"a", []int{k, d, d}, wellConditioned(rng, k, d), true},
		}, func(ns []*G.Node) (*G.Node, error) { return BatchedLogDet(ns[0]) }})
	}
	for _, jitter := range []float64{1e-6, 1e-2} {
		nz, dim, k := 12, 3, 3
		cases = append(cases, tc{fmt.Sprintf("GMMEnergy/jitter=%g", jitter), []fdInput{
			{"z", []int{nz, dim}, randVals(rng, nz*dim, 1), true},
			{"gamma", []int{nz, k}, memberships(rng, nz, k), true},
		}, func(ns []*G.Node) (*G.Node, error) { return GMMEnergy(ns[0], ns[1], jitter) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkFD(t, c.ins, c.build, tol) })
	}
}

// TestFusedGMMMatchesReference runs the fused mixture op and the graph built
// from Gorgonia primitives on the same inputs and compares the energies, the
// penalty and both gradients.
func TestFusedGMMMatchesReference(t *testing.T) {
	const tol = 1e-10
	for _, tc := range []struct {
		n, dim, k int
		jitter    float64
	}{
		{n: 16, dim: 3, k: 4, jitter: 1e-6},
		{n: 40, dim: 4, k: 2, jitter: 1e-4},
		{n: 9, dim: 3, k: 1, jitter: 1e-6},
	} {
		t.Run(fmt.Sprintf("n=%d,D=%d,K=%d", tc.n, tc.dim, tc.k), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.k)))
			z := randVals(rng, tc.n*tc.dim, 1)
			gam := memberships(rng, tc.n, tc.k)
			ge := randVals(rng, tc.n, 1) // weights of the energies in the objective
			gp := 0.37                   // weight of the penalty
			type result struct {
				e      []float64
				p      float64
				gz, gg []float64
			}
			run := func(fused bool) result {
				g := G.NewGraph()
				zn := G.NewMatrix(g, tensor.Float64, G.WithShape(tc.n, tc.dim), G.WithName("z"), G.WithValue(dense(append([]float64(nil), z...), tc.n, tc.dim)))
				gn := G.NewMatrix(g, tensor.Float64, G.WithShape(tc.n, tc.k), G.WithName("gamma"), G.WithValue(dense(append([]float64(nil), gam...), tc.n, tc.k)))
				var e, p, obj *G.Node
				var err error
				if fused {
					var out *G.Node
					if out, err = GMMEnergy(zn, gn, tc.jitter); err != nil {
						t.Fatal(err)
					}
					e = out
					w := G.NewVector(g, tensor.Float64, G.WithShape(tc.n+1), G.WithName("w"), G.WithValue(dense(append(append([]float64(nil), ge...), gp), tc.n+1)))
					obj = G.Must(G.Sum(G.Must(G.HadamardProd(out, w))))
				} else {
					if e, p, err = referenceGMMEnergy(zn, gn, tc.jitter); err != nil {
						t.Fatal(err)
					}
					w := G.NewVector(g, tensor.Float64, G.WithShape(tc.n), G.WithName("w"), G.WithValue(dense(append([]float64(nil), ge...), tc.n)))
					obj = G.Must(G.Add(G.Must(G.Sum(G.Must(G.HadamardProd(e, w)))), G.Must(G.Mul(p, constant(tensor.Float64, gp)))))
				}
				grads, err := G.Grad(obj, zn, gn)
				if err != nil {
					t.Fatal(err)
				}
				var ev, pv, gzv, ggv G.Value
				G.Read(e, &ev)
				if p != nil {
					G.Read(p, &pv)
				}
				G.Read(grads[0], &gzv)
				G.Read(grads[1], &ggv)
				vm := G.NewTapeMachine(g)
				defer vm.Close()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				r := result{e: make([]float64, ev.Shape().TotalSize()), gz: make([]float64, tc.n*tc.dim), gg: make([]float64, tc.n*tc.k)}
				for _, c := range []struct {
					dst []float64
					v   G.Value
				}{{r.e, ev}, {r.gz, gzv}, {r.gg, ggv}} {
					if err := getFloats(c.dst, c.v); err != nil {
						t.Fatal(err)
					}
				}
				if fused {
					r.p = r.e[tc.n]
					r.e = r.e[:tc.n]
				} else if r.p, err = scalarOf(pv); err != nil {
					t.Fatal(err)
				}
				return r
			}
			f, ref := run(true), run(false)
			cmp := func(what string, a, b []float64) {
				t.Helper()
				scale := 0.0
				for _, v := range b {
					scale = max(scale, math.Abs(v))
				}
				for i := range a {
					if d := math.Abs(a[i] - b[i]); d > tol*max(scale, 1) {
						t.Errorf("%s[%d]: fused %v, reference %v (difference %.2e)", what, i, a[i], b[i], d)
						return
					}
				}
			}
			cmp("energy", f.e, ref.e)
			cmp("penalty", []float64{f.p}, []float64{ref.p})
			cmp("dz", f.gz, ref.gz)
			cmp("dgamma", f.gg, ref.gg)
			t.Logf("energy[0] %v, penalty %v, dz[0] %v, dgamma[0] %v", f.e[0], f.p, f.gz[0], f.gg[0])
		})
	}
}

// smallNetwork returns a small initialised network for the loss tests.
func smallNetwork(d int, seed uint64) (network, Config) {
	cfg := DefaultConfig()
	cfg.Encoder = []int{6, 3, 1}
	cfg.Estimator = []int{5}
	cfg.K = 3
	nw := newNetwork(d, &cfg)
	nw.initWeights(rand.New(rand.NewPCG(seed, streamInit)))
	// non-zero biases exercise their gradients
	rng := rand.New(rand.NewPCG(seed, 42))
	for _, l := range nw.all() {
		for i := range l.B {
			l.B[i] = 0.1 * rng.NormFloat64()
		}
	}
	return nw, cfg
}

// bindBatch fills a loss graph's input and masks.
func bindBatch(lg *lossGraph, x []float64, seed uint64) {
	setFloats(lg.xVal, x)
	rng := rand.New(rand.NewPCG(seed, 5))
	for _, m := range lg.mVals {
		setFloats(m, masks(rng, m.Shape()[0], m.Shape()[1]))
	}
}

// layerGrads returns the gradient of each layer's W and b, in
// network.all() order, after lg's run, whatever lg's parameter layout.
func layerGrads(t *testing.T, lg *lossGraph, nw *network) [][]float64 {
	t.Helper()
	var g [][]float64
	for _, l := range nw.all() {
		g = append(g, make([]float64, len(l.W)), make([]float64, len(l.B)))
	}
	if err := lg.readGrads(g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestLossFiniteDifferences checks the gradient of the whole DAGMM loss, as
// the training graph computes it, against central differences.
func TestLossFiniteDifferences(t *testing.T) {
	const tol = 1e-6
	d, batch := 4, 16
	nw, cfg := smallNetwork(d, 3)
	rng := rand.New(rand.NewPCG(11, 11))
	x := randVals(rng, batch*d, 1)
	lg, err := buildLossGraph(&nw, d, tensor.Float64, batch, graphOptions{dropout: true, fused: true, lambda1: cfg.Lambda1, lambda2: 0.005, jitter: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.close()
	bindBatch(lg, x, 1)
	loss := func() float64 {
		t.Helper()
		if err := lg.run(); err != nil {
			t.Fatal(err)
		}
		l, _, _, _, err := lg.parts()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	loss()
	// Keep the gradients at the unperturbed point: every run overwrites them.
	grads := make([][]float64, len(lg.pVals))
	for p, pv := range lg.pVals {
		grads[p] = make([]float64, pv.Shape().TotalSize())
		if err := getFloats(grads[p], lg.gVals[p]); err != nil {
			t.Fatal(err)
		}
	}
	for p, pv := range lg.pVals {
		an := grads[p]
		data := pv.Data().([]float64)
		maxAbs, worst, num, den := 0.0, 0.0, 0.0, 0.0
		for _, v := range an {
			maxAbs = max(maxAbs, math.Abs(v))
		}
		for j, x := range data {
			h := fdStep * max(1, math.Abs(x))
			data[j] = x + h
			fp := loss()
			data[j] = x - h
			fm := loss()
			data[j] = x
			fd := (fp - fm) / (2 * h)
			e := math.Abs(fd - an[j])
			worst = max(worst, e/max(math.Abs(fd), math.Abs(an[j]), 1e-3*maxAbs, 1e-12))
			num += e * e
			den += an[j] * an[j]
		}
		norm := math.Sqrt(num / max(den, 1e-300))
		if worst > tol || norm > tol {
			t.Errorf("parameter %d (%v): max relative error %.2e, norm-wise %.2e (tolerance %.0e)", p, pv.Shape(), worst, norm, tol)
		} else {
			t.Logf("parameter %d (%v): max relative error %.2e, norm-wise %.2e", p, pv.Shape(), worst, norm)
		}
	}
}

// TestFusedGraphMatchesPrimitives builds the loss twice, once from the
// custom ops and once from Gorgonia's primitives, and compares the loss,
// its parts and every gradient.
func TestFusedGraphMatchesPrimitives(t *testing.T) {
	const tol = 1e-10
	for _, dropout := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropout=%t", dropout), func(t *testing.T) {
			d, batch := 5, 24
			nw, _ := smallNetwork(d, 9)
			x := randVals(rand.New(rand.NewPCG(2, 2)), batch*d, 1.5)
			type res struct {
				parts [4]float64
				grads [][]float64
			}
			run := func(fused bool) res {
				lg, err := buildLossGraph(&nw, d, tensor.Float64, batch, graphOptions{dropout: dropout, fused: fused, lambda1: 0.1, lambda2: 0.005, jitter: 1e-6})
				if err != nil {
					t.Fatal(err)
				}
				defer lg.close()
				bindBatch(lg, x, 4)
				if err := lg.run(); err != nil {
					t.Fatal(err)
				}
				var r res
				l, rc, e, p, err := lg.parts()
				if err != nil {
					t.Fatal(err)
				}
				r.parts = [4]float64{l, rc, e, p}
				r.grads = layerGrads(t, lg, &nw)
				return r
			}
			f, p := run(true), run(false)
			for i, name := range []string{"loss", "recon", "energy", "penalty"} {
				if d := math.Abs(f.parts[i] - p.parts[i]); d > tol*max(1, math.Abs(p.parts[i])) {
					t.Errorf("%s: fused %v, primitives %v", name, f.parts[i], p.parts[i])
				}
			}
			for k := range f.grads {
				for j := range f.grads[k] {
					a, b := f.grads[k][j], p.grads[k][j]
					if d := math.Abs(a - b); d > tol*max(1, math.Abs(b)) {
						t.Errorf("gradient %d[%d]: fused %v, primitives %v", k, j, a, b)
						break
					}
				}
			}
			t.Logf("loss %v (recon %v, energy %v, penalty %v)", f.parts[0], f.parts[1], f.parts[2], f.parts[3])
		})
	}
}

// TestFloat32Graph checks that the float32 training graph computes the same
// loss and gradients as the float64 one, to float32 precision.
func TestFloat32Graph(t *testing.T) {
	d, batch := 4, 32
	nw, _ := smallNetwork(d, 5)
	x := randVals(rand.New(rand.NewPCG(8, 8)), batch*d, 1)
	var losses [2]float64
	var grads [2][][]float64
	for i, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		lg, err := buildLossGraph(&nw, d, dt, batch, graphOptions{dropout: true, fused: true, lambda1: 0.1, lambda2: 0.005, jitter: 1e-4})
		if err != nil {
			t.Fatal(err)
		}
		bindBatch(lg, x, 2)
		if err := lg.run(); err != nil {
			t.Fatal(err)
		}
		if losses[i], _, _, _, err = lg.parts(); err != nil {
			t.Fatal(err)
		}
		grads[i] = layerGrads(t, lg, &nw)
		lg.close()
	}
	if d := math.Abs(losses[0] - losses[1]); d > 1e-4*max(1, math.Abs(losses[0])) {
		t.Errorf("loss: float64 %v, float32 %v", losses[0], losses[1])
	}
	for k := range grads[0] {
		num, den := 0.0, 0.0
		for j := range grads[0][k] {
			e := grads[0][k][j] - grads[1][k][j]
			num += e * e
			den += grads[0][k][j] * grads[0][k][j]
		}
		if r := math.Sqrt(num / max(den, 1e-300)); r > 1e-3 {
			t.Errorf("gradient %d: float32 differs from float64 by %.2e (norm-wise)", k, r)
		}
	}
}

// TestGMMEnergyDegenerate checks that a batch mixture that cannot be fitted
// (a component without membership) gives NaN energies and gradients, which
// the training loop reports as divergence, rather than failing the run.
func TestGMMEnergyDegenerate(t *testing.T) {
	n, dim, k := 6, 3, 2
	rng := rand.New(rand.NewPCG(1, 3))
	gam := make([]float64, n*k)
	for i := range n {
		gam[i*k] = 1 // component 1 has no membership
	}
	fg := newFDGraph(t, []fdInput{
		{"z", []int{n, dim}, randVals(rng, n*dim, 1), true},
		{"gamma", []int{n, k}, gam, true},
	}, func(ns []*G.Node) (*G.Node, error) { return GMMEnergy(ns[0], ns[1], 1e-6) }, 1)
	if v := fg.run(t); !math.IsNaN(v) {
		t.Errorf("objective %v, want NaN", v)
	}
	g := make([]float64, n*dim)
	if err := getFloats(g, fg.gradV[0]); err != nil {
		t.Fatal(err)
	}
	for i, v := range g {
		if !math.IsNaN(v) {
			t.Fatalf("dz[%d] = %v, want NaN", i, v)
		}
	}
}

// TestGMMGradReusesForward checks that the gradient op reads the forward
// op's mixture once per forward pass, and repeats the pass otherwise.
func TestGMMGradReusesForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n, dim, k = 12, 3, 2
	z := dense(randVals(rng, n*dim, 1), n, dim)
	gam := dense(memberships(rng, n, k), n, k)
	g := dense(randVals(rng, n+1, 1), n+1)
	fwd := &gmmOp{jitter: 1e-6}
	grad := &gmmGradOp{jitter: 1e-6, fwd: &fwd.st}
	for _, step := range []struct {
		name    string
		forward bool
		reuse   bool
	}{
		{"after a forward pass", true, true},
		{"again without one", false, false},
		{"after the next forward pass", true, true},
	} {
		if step.forward {
			if _, err := fwd.Do(z, gam); err != nil {
				t.Fatal(err)
			}
		}
		grad.st = gmmState{}
		if _, err := grad.Do(z, gam, g); err != nil {
			t.Fatal(err)
		}
		if reused := grad.st.n == 0; reused != step.reuse {
			t.Errorf("%s: reused the forward pass %v, want %v", step.name, reused, step.reuse)
		}
	}
}

// TestChainMatchesDenseLayers checks that a layer chain computes bit for bit
// what a stack of dense-layer nodes computes, forward and backward.
func TestChainMatchesDenseLayers(t *testing.T) {
	const n = 37 // not a multiple of the kernels' 4 rows
	layers := []chainLayer{{4, 16, model.Tanh, false}, {16, 8, model.Tanh, true}, {8, 3, model.Softmax, false}}
	rng := rand.New(rand.NewPCG(5, 6))
	x := randVals(rng, n*4, 1)
	theta := randVals(rng, chainSize(layers), 0.5)
	mask := masks(rng, n, 8)
	wout := randVals(rng, n*3, 1)
	run := func(chain bool) (out []float64, grads [][]float64) {
		g := G.NewGraph()
		xn := G.NewMatrix(g, tensor.Float64, G.WithShape(n, 4), G.WithName("x"), G.WithValue(dense(append([]float64(nil), x...), n, 4)))
		mn := G.NewMatrix(g, tensor.Float64, G.WithShape(n, 8), G.WithName("mask"), G.WithValue(dense(append([]float64(nil), mask...), n, 8)))
		var y *G.Node
		var wrt []*G.Node
		var err error
		if chain {
			th := G.NewVector(g, tensor.Float64, G.WithShape(len(theta)), G.WithName("theta"), G.WithValue(dense(append([]float64(nil), theta...), len(theta))))
			wrt = []*G.Node{xn, th}
			if y, err = mlpChain(xn, th, []*G.Node{mn}, layers, true); err != nil {
				t.Fatal(err)
			}
		} else {
			wrt = []*G.Node{xn}
			y = xn
			off := 0
			for i, l := range layers {
				w := G.NewMatrix(g, tensor.Float64, G.WithShape(l.in, l.out), G.WithName(fmt.Sprint("w", i)), G.WithValue(dense(append([]float64(nil), theta[off:off+l.in*l.out]...), l.in, l.out)))
				b := G.NewVector(g, tensor.Float64, G.WithShape(l.out), G.WithName(fmt.Sprint("b", i)), G.WithValue(dense(append([]float64(nil), theta[off+l.in*l.out:off+l.in*l.out+l.out]...), l.out)))
				off += l.in*l.out + l.out
				wrt = append(wrt, w, b)
				var m *G.Node
				if l.masked {
					m = mn
				}
				if y, err = denseLayer(y, w, b, m, l.act, true); err != nil {
					t.Fatal(err)
				}
			}
		}
		return runObjective(t, g, y, wout, wrt)
	}
	cy, cg := run(true)
	dy, dg := run(false)
	for i := range cy {
		if cy[i] != dy[i] {
			t.Fatalf("output[%d]: chain %v, dense layers %v", i, cy[i], dy[i])
		}
	}
	flat := []float64{}
	for _, g := range dg[1:] {
		flat = append(flat, g...)
	}
	for _, c := range []struct {
		name      string
		got, want []float64
	}{{"dx", cg[0], dg[0]}, {"dtheta", cg[1], flat}} {
		for i := range c.want {
			if c.got[i] != c.want[i] {
				t.Fatalf("%s[%d]: chain %v, dense layers %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
}

// runObjective runs Σ w ⊙ y on g and returns y and the gradients of wrt.
func runObjective(t *testing.T, g *G.ExprGraph, y *G.Node, w []float64, wrt []*G.Node) ([]float64, [][]float64) {
	t.Helper()
	wn := G.NewMatrix(g, tensor.Float64, G.WithShape(y.Shape()...), G.WithName("wobj"), G.WithValue(dense(append([]float64(nil), w...), y.Shape()...)))
	obj := G.Must(G.Sum(G.Must(G.HadamardProd(y, wn))))
	grads, err := G.Grad(obj, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	var yv G.Value
	G.Read(y, &yv)
	gv := make([]G.Value, len(grads))
	for i, gn := range grads {
		G.Read(gn, &gv[i])
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(w))
	if err := getFloats(out, yv); err != nil {
		t.Fatal(err)
	}
	res := make([][]float64, len(gv))
	for i, v := range gv {
		res[i] = make([]float64, v.Shape().TotalSize())
		if err := getFloats(res[i], v); err != nil {
			t.Fatal(err)
		}
	}
	return out, res
}
