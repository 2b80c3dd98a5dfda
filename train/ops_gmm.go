package train

import (
	"errors"
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GMMEnergy is the fused mixture block of the DAGMM loss as one node. From
// the estimation input z (n×D) and the memberships gamma (n×K) it fits, for
// the batch,
//
//	φ_k = mean_i γ_ik,  μ_k = Σ_i γ_ik z_i / Σ_i γ_ik,
//	Σ_k = Σ_i γ_ik (z_i−μ_k)(z_i−μ_k)ᵀ / Σ_i γ_ik + jitter·I,
//
// and returns a vector of n+1 values: the sample energies
//
//	E_i = −log Σ_k φ_k exp(−½ (z_i−μ_k)ᵀ Σ_k⁻¹ (z_i−μ_k)) / sqrt(det(2π Σ_k))
//
// (a stable log-sum-exp) followed by the penalty P = Σ_k Σ_j 1/Σ_k[j,j].
// Its gradient with respect to z and gamma is written by hand (see
// gmmState.backward); referenceGMMEnergy builds the same function from
// Gorgonia's primitives and the batched inverse and log-determinant ops, and
// the tests compare the two. The arithmetic is float64 whatever the graph's
// type. A degenerate batch mixture (a component without membership, a
// covariance that is not positive definite) gives NaN energies and
// gradients rather than an error, so that training reports it as divergence.
func GMMEnergy(z, gamma *G.Node, jitter float64) (*G.Node, error) {
	zs, gs := z.Shape(), gamma.Shape()
	if len(zs) != 2 || len(gs) != 2 || zs[0] != gs[0] {
		return nil, fmt.Errorf("train: gmm energy: shapes z %v and gamma %v, want (n, D) and (n, K)", zs, gs)
	}
	return G.ApplyOp(&gmmOp{jitter: jitter}, z, gamma)
}

// errNumeric marks a mixture that cannot be fitted: a component without
// membership or a covariance that is not positive definite.
var errNumeric = errors.New("degenerate mixture")

// gmmState holds the batch's mixture and what the gradient needs, in float64.
type gmmState struct {
	n, dim, k int
	jitter    float64
	z, gamma  []float64 // n×D, n×K
	nk, phi   []float64 // K
	mu        []float64 // K×D
	sigma     []float64 // K×D×D, jitter included
	prec      []float64 // K×D×D, Σ⁻¹
	logdet    []float64 // K
	diff      []float64 // n×K×D, z_i − μ_k
	pd        []float64 // n×K×D, Σ_k⁻¹ (z_i − μ_k)
	resp      []float64 // n×K, softmax over k of the log terms
	energy    []float64 // n
	penalty   float64
	ok        bool      // forward succeeded on z and gamma
	runs      int       // forward passes so far
	work      []float64 // D×D
	logPhi    []float64 // K
	// gradient scratch
	gPhi, gMu, gSigma, m, tmp, wsum, c []float64
}

// setup sizes the state for n×D inputs and K components.
func (s *gmmState) setup(n, dim, k int, jitter float64) {
	s.n, s.dim, s.k, s.jitter = n, dim, k, jitter
	s.z = grow(s.z, n*dim)
	s.gamma = grow(s.gamma, n*k)
	s.nk = grow(s.nk, k)
	s.phi = grow(s.phi, k)
	s.mu = grow(s.mu, k*dim)
	s.sigma = grow(s.sigma, k*dim*dim)
	s.prec = grow(s.prec, k*dim*dim)
	s.logdet = grow(s.logdet, k)
	s.diff = grow(s.diff, n*k*dim)
	s.pd = grow(s.pd, n*k*dim)
	s.resp = grow(s.resp, n*k)
	s.energy = grow(s.energy, n)
	s.work = grow(s.work, dim*dim)
	s.logPhi = grow(s.logPhi, k)
}

// forward computes the mixture, the energies and the penalty from s.z and
// s.gamma.
func (s *gmmState) forward() error {
	s.ok = false
	s.runs++
	if err := s.fit(); err != nil {
		return err
	}
	s.ok = true
	return nil
}

// fit is forward without the bookkeeping.
func (s *gmmState) fit() error {
	n, dim, k := s.n, s.dim, s.k
	z, gamma := s.z, s.gamma
	clear(s.nk)
	clear(s.mu)
	for i := range n {
		zi := z[i*dim : (i+1)*dim]
		for c := range k {
			g := gamma[i*k+c]
			s.nk[c] += g
			mu := s.mu[c*dim : (c+1)*dim]
			for j, v := range zi {
				mu[j] += g * v
			}
		}
	}
	for c := range k {
		if !(s.nk[c] > 0) || math.IsInf(s.nk[c], 0) {
			return fmt.Errorf("%w: component %d has total membership %v", errNumeric, c, s.nk[c])
		}
		s.phi[c] = s.nk[c] / float64(n)
		mu := s.mu[c*dim : (c+1)*dim]
		for j := range mu {
			mu[j] /= s.nk[c]
		}
	}
	clear(s.sigma)
	if dim == 3 {
		s.scatter3()
	} else {
		for i := range n {
			zi := z[i*dim : (i+1)*dim]
			for c := range k {
				g := gamma[i*k+c]
				mu := s.mu[c*dim : (c+1)*dim]
				d := s.diff[(i*k+c)*dim : (i*k+c+1)*dim]
				for j := range d {
					d[j] = zi[j] - mu[j]
				}
				sg := s.sigma[c*dim*dim : (c+1)*dim*dim]
				for a := range dim {
					ga := g * d[a]
					for b := 0; b <= a; b++ {
						sg[a*dim+b] += ga * d[b]
					}
				}
			}
		}
	}
	s.penalty = 0
	const log2Pi = 1.8378770664093453 // log(2π)
	for c := range k {
		sg := s.sigma[c*dim*dim : (c+1)*dim*dim]
		for a := range dim {
			for b := 0; b <= a; b++ {
				v := sg[a*dim+b] / s.nk[c]
				sg[a*dim+b] = v
				sg[b*dim+a] = v
			}
			sg[a*dim+a] += s.jitter
			s.penalty += 1 / sg[a*dim+a]
		}
		ld, err := cholInverse(sg, dim, s.prec[c*dim*dim:(c+1)*dim*dim], s.work)
		if err != nil {
			return fmt.Errorf("%w: component %d: %w", errNumeric, c, err)
		}
		s.logdet[c] = ld
		s.logPhi[c] = math.Log(s.phi[c])
	}
	for i := range n {
		best := math.Inf(-1)
		r := s.resp[i*k : (i+1)*k]
		if dim == 3 {
			best = s.logTerms3(i, r)
		} else {
			for c := range k {
				d := s.diff[(i*k+c)*dim : (i*k+c+1)*dim]
				pd := s.pd[(i*k+c)*dim : (i*k+c+1)*dim]
				p := s.prec[c*dim*dim : (c+1)*dim*dim]
				q := 0.0
				for a := range dim {
					t := 0.0
					for b, v := range d {
						t += p[a*dim+b] * v
					}
					pd[a] = t
					q += d[a] * t
				}
				t := s.logPhi[c] - 0.5*q - 0.5*(float64(dim)*log2Pi+s.logdet[c])
				r[c] = t
				best = max(best, t)
			}
		}
		sum := 0.0
		for c := range r {
			e := math.Exp(r[c] - best)
			r[c] = e
			sum += e
		}
		for c := range r {
			r[c] /= sum
		}
		s.energy[i] = -(best + math.Log(sum))
	}
	return nil
}

// backward computes the gradients gz (n×D) and gg (n×K) of
// Σ_i gE_i·E_i + gP·P after forward. With a_ik the log term of sample i and
// component k, r_ik its softmax over k and d_ik = z_i − μ_k:
//
//	A_ik = ∂/∂a_ik = −gE_i r_ik,  s_k = Σ_i A_ik
//	∂/∂φ_k = s_k / φ_k
//	∂/∂Σ_k = ½ Σ_k⁻¹ (Σ_i A_ik d_ik d_ikᵀ) Σ_k⁻¹ − ½ s_k Σ_k⁻¹ − gP·diag(1/Σ_k[j,j]²)
//	∂/∂μ_k = Σ_i A_ik Σ_k⁻¹ d_ik − 2 (∂/∂Σ_k) Σ_i γ_ik d_ik / N_k
//
// and then, through φ_k = N_k/n, μ_k = Σ_i γ_ik z_i/N_k and
// Σ_k = Σ_i γ_ik d_ik d_ikᵀ/N_k + jitter·I (N_k = Σ_i γ_ik):
//
//	gz_i  = Σ_k −A_ik Σ_k⁻¹ d_ik + (2γ_ik/N_k)(∂/∂Σ_k) d_ik + (γ_ik/N_k) ∂/∂μ_k
//	gγ_ik = (∂/∂φ_k)/n + d_ik·(∂/∂μ_k)/N_k + (d_ikᵀ(∂/∂Σ_k)d_ik − (∂/∂Σ_k):(Σ_k − jitter·I))/N_k
func (s *gmmState) backward(gE []float64, gP float64, gz, gg []float64) {
	n, dim, k := s.n, s.dim, s.k
	s.gPhi = grow(s.gPhi, k)
	s.gMu = grow(s.gMu, k*dim)
	s.gSigma = grow(s.gSigma, k*dim*dim)
	s.m = grow(s.m, k*dim*dim)
	s.tmp = grow(s.tmp, dim*dim)
	s.wsum = grow(s.wsum, k*dim)
	s.c = grow(s.c, k)
	clear(s.gPhi)
	clear(s.gMu)
	clear(s.m)
	clear(s.wsum)
	// Accumulate s_k (in gPhi), Σ_i A_ik Σ⁻¹d_ik (in gMu), M_k = Σ_i A_ik d dᵀ
	// and Σ_i γ_ik d_ik.
	if dim == 3 {
		s.accumulate3(gE)
	} else {
		for i := range n {
			for c := range k {
				a := -gE[i] * s.resp[i*k+c]
				g := s.gamma[i*k+c]
				d := s.diff[(i*k+c)*dim : (i*k+c+1)*dim]
				pd := s.pd[(i*k+c)*dim : (i*k+c+1)*dim]
				s.gPhi[c] += a
				mu := s.gMu[c*dim : (c+1)*dim]
				ws := s.wsum[c*dim : (c+1)*dim]
				m := s.m[c*dim*dim : (c+1)*dim*dim]
				for p := range dim {
					mu[p] += a * pd[p]
					ws[p] += g * d[p]
					ap := a * d[p]
					for q := range dim {
						m[p*dim+q] += ap * d[q]
					}
				}
			}
		}
	}
	for c := range k {
		sk := s.gPhi[c]
		s.gPhi[c] = sk / s.phi[c]
		p := s.prec[c*dim*dim : (c+1)*dim*dim]
		m := s.m[c*dim*dim : (c+1)*dim*dim]
		gs := s.gSigma[c*dim*dim : (c+1)*dim*dim]
		sg := s.sigma[c*dim*dim : (c+1)*dim*dim]
		// tmp = M·P; gs = ½ P·tmp − ½ s_k P
		for a := range dim {
			for b := range dim {
				t := 0.0
				for q := range dim {
					t += m[a*dim+q] * p[q*dim+b]
				}
				s.tmp[a*dim+b] = t
			}
		}
		for a := range dim {
			for b := range dim {
				t := 0.0
				for q := range dim {
					t += p[a*dim+q] * s.tmp[q*dim+b]
				}
				gs[a*dim+b] = 0.5*t - 0.5*sk*p[a*dim+b]
			}
			gs[a*dim+a] -= gP / (sg[a*dim+a] * sg[a*dim+a])
		}
		// symmetrise: Σ is symmetric by construction, so only the symmetric
		// part of its gradient matters.
		for a := range dim {
			for b := range a {
				v := 0.5 * (gs[a*dim+b] + gs[b*dim+a])
				gs[a*dim+b], gs[b*dim+a] = v, v
			}
		}
		// ∂/∂μ_k gets −2 (∂/∂Σ_k) Σ_i γ_ik d_ik / N_k (zero up to rounding).
		mu := s.gMu[c*dim : (c+1)*dim]
		ws := s.wsum[c*dim : (c+1)*dim]
		for a := range dim {
			t := 0.0
			for b := range dim {
				t += gs[a*dim+b] * ws[b]
			}
			mu[a] -= 2 * t / s.nk[c]
		}
		// c_k = (∂/∂Σ_k):(Σ_k − jitter·I)
		ck := 0.0
		for a := range dim {
			for b := range dim {
				v := sg[a*dim+b]
				if a == b {
					v -= s.jitter
				}
				ck += gs[a*dim+b] * v
			}
		}
		s.c[c] = ck
	}
	clear(gz[:n*dim])
	if dim == 3 {
		s.inputGrads3(gE, gz, gg)
		return
	}
	for i := range n {
		gzi := gz[i*dim : (i+1)*dim]
		for c := range k {
			a := -gE[i] * s.resp[i*k+c]
			g := s.gamma[i*k+c]
			inv := 1 / s.nk[c]
			d := s.diff[(i*k+c)*dim : (i*k+c+1)*dim]
			pd := s.pd[(i*k+c)*dim : (i*k+c+1)*dim]
			gs := s.gSigma[c*dim*dim : (c+1)*dim*dim]
			mu := s.gMu[c*dim : (c+1)*dim]
			dgd, dmu := 0.0, 0.0
			for p := range dim {
				t := 0.0
				for q := range dim {
					t += gs[p*dim+q] * d[q]
				}
				dgd += d[p] * t
				dmu += d[p] * mu[p]
				gzi[p] += -a*pd[p] + 2*g*inv*t + g*inv*mu[p]
			}
			gg[i*k+c] = s.gPhi[c]/float64(n) + dmu*inv + (dgd-s.c[c])*inv
		}
	}
}

// scatter3 is fit's second pass for D = 3, written out: d_ik = z_i − μ_k
// into s.diff and the lower triangle of Σ_i γ_ik d_ik d_ikᵀ into s.sigma,
// the same operations in the same order as the general loop.
func (s *gmmState) scatter3() {
	n, k := s.n, s.k
	z, gamma, diff := s.z[:n*3], s.gamma[:n*k], s.diff[:n*k*3]
	for i := range n {
		z0, z1, z2 := z[i*3], z[i*3+1], z[i*3+2]
		for c := range k {
			g := gamma[i*k+c]
			mu := s.mu[c*3 : c*3+3 : c*3+3]
			o := (i*k + c) * 3
			d0, d1, d2 := z0-mu[0], z1-mu[1], z2-mu[2]
			diff[o], diff[o+1], diff[o+2] = d0, d1, d2
			sg := s.sigma[c*9 : c*9+9 : c*9+9]
			ga := g * d0
			sg[0] += ga * d0
			ga = g * d1
			sg[3] += ga * d0
			sg[4] += ga * d1
			ga = g * d2
			sg[6] += ga * d0
			sg[7] += ga * d1
			sg[8] += ga * d2
		}
	}
}

// logTerms3 writes sample i's log terms log φ_k − ½ dᵀΣ_k⁻¹d − ½ log det(2πΣ_k)
// into r (and Σ_k⁻¹d into s.pd) for D = 3, written out: the same operations
// in the same order as fit's general loop. It returns the largest term.
func (s *gmmState) logTerms3(i int, r []float64) float64 {
	const log2Pi = 1.8378770664093453 // log(2π)
	k := s.k
	best := math.Inf(-1)
	for c := range k {
		o := (i*k + c) * 3
		d := s.diff[o : o+3 : o+3]
		pd := s.pd[o : o+3 : o+3]
		p := s.prec[c*9 : c*9+9 : c*9+9]
		d0, d1, d2 := d[0], d[1], d[2]
		q := 0.0
		t := 0.0
		t += p[0] * d0
		t += p[1] * d1
		t += p[2] * d2
		pd[0] = t
		q += d0 * t
		t = 0.0
		t += p[3] * d0
		t += p[4] * d1
		t += p[5] * d2
		pd[1] = t
		q += d1 * t
		t = 0.0
		t += p[6] * d0
		t += p[7] * d1
		t += p[8] * d2
		pd[2] = t
		q += d2 * t
		t = s.logPhi[c] - 0.5*q - 0.5*(float64(s.dim)*log2Pi+s.logdet[c])
		r[c] = t
		best = max(best, t)
	}
	return best
}

// accumulate3 is backward's first pass for D = 3 (the code size 1 and the
// two distances), written out: the same operations in the same order as the
// general loop, without its inner loops and slices.
func (s *gmmState) accumulate3(gE []float64) {
	n, k := s.n, s.k
	resp, gamma := s.resp[:n*k], s.gamma[:n*k]
	diff, pd := s.diff[:n*k*3], s.pd[:n*k*3]
	gPhi, gMu, ws, m := s.gPhi[:k], s.gMu[:k*3], s.wsum[:k*3], s.m[:k*9]
	for i := range n {
		e := -gE[i]
		for c := range k {
			a := e * resp[i*k+c]
			g := gamma[i*k+c]
			o := (i*k + c) * 3
			d0, d1, d2 := diff[o], diff[o+1], diff[o+2]
			p0, p1, p2 := pd[o], pd[o+1], pd[o+2]
			gPhi[c] += a
			u, w, mm := gMu[c*3:c*3+3], ws[c*3:c*3+3], m[c*9:c*9+9]
			u[0] += a * p0
			w[0] += g * d0
			ap := a * d0
			mm[0] += ap * d0
			mm[1] += ap * d1
			mm[2] += ap * d2
			u[1] += a * p1
			w[1] += g * d1
			ap = a * d1
			mm[3] += ap * d0
			mm[4] += ap * d1
			mm[5] += ap * d2
			u[2] += a * p2
			w[2] += g * d2
			ap = a * d2
			mm[6] += ap * d0
			mm[7] += ap * d1
			mm[8] += ap * d2
		}
	}
}

// inputGrads3 is backward's last pass for D = 3, written out like
// accumulate3.
func (s *gmmState) inputGrads3(gE, gz, gg []float64) {
	n, k := s.n, s.k
	resp, gamma := s.resp[:n*k], s.gamma[:n*k]
	diff, pd := s.diff[:n*k*3], s.pd[:n*k*3]
	gz, gg = gz[:n*3], gg[:n*k]
	fn := float64(n)
	for i := range n {
		gzi := gz[i*3 : i*3+3]
		for c := range k {
			a := -gE[i] * resp[i*k+c]
			g := gamma[i*k+c]
			inv := 1 / s.nk[c]
			o := (i*k + c) * 3
			d0, d1, d2 := diff[o], diff[o+1], diff[o+2]
			gs := s.gSigma[c*9 : c*9+9]
			mu := s.gMu[c*3 : c*3+3]
			dgd, dmu := 0.0, 0.0
			t := 0.0
			t += gs[0] * d0
			t += gs[1] * d1
			t += gs[2] * d2
			dgd += d0 * t
			dmu += d0 * mu[0]
			gzi[0] += -a*pd[o] + 2*g*inv*t + g*inv*mu[0]
			t = 0.0
			t += gs[3] * d0
			t += gs[4] * d1
			t += gs[5] * d2
			dgd += d1 * t
			dmu += d1 * mu[1]
			gzi[1] += -a*pd[o+1] + 2*g*inv*t + g*inv*mu[1]
			t = 0.0
			t += gs[6] * d0
			t += gs[7] * d1
			t += gs[8] * d2
			dgd += d2 * t
			dmu += d2 * mu[2]
			gzi[2] += -a*pd[o+2] + 2*g*inv*t + g*inv*mu[2]
			gg[i*k+c] = s.gPhi[c]/fn + dmu*inv + (dgd-s.c[c])*inv
		}
	}
}

// gmmOp is the fused mixture energy (z, γ) -> [E_1..E_n, P].
type gmmOp struct {
	opBase
	jitter float64
	st     gmmState
	out    outBuf
}

func (op *gmmOp) Arity() int    { return 2 }
func (op *gmmOp) Type() hm.Type { return fnType(2, 2, 1) }
func (op *gmmOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	z, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{z[0] + 1}, nil
}
func (op *gmmOp) String() string        { return fmt.Sprintf("GMMEnergy{%v}", op.jitter) }
func (op *gmmOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *gmmOp) Hashcode() uint32      { return hashString(op.String()) }
func (op *gmmOp) DiffWRT(int) []bool    { return []bool{true, true} }

func (op *gmmOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return gmmDo[float64](op, vs) },
		func() (G.Value, error) { return gmmDo[float32](op, vs) })
}

// loadGMM fills st from the z and gamma values and runs its forward pass.
func loadGMM[T float](st *gmmState, jitter float64, zv, gv G.Value) error {
	n, dim, err := dims2(zv)
	if err != nil {
		return err
	}
	ng, k, err := dims2(gv)
	if err != nil {
		return err
	}
	if ng != n {
		return fmt.Errorf("train: gmm energy: %d membership rows for %d samples", ng, n)
	}
	z, err := sliceOf[T](zv)
	if err != nil {
		return err
	}
	g, err := sliceOf[T](gv)
	if err != nil {
		return err
	}
	st.setup(n, dim, k, jitter)
	toF64(st.z, z)
	toF64(st.gamma, g)
	if err := st.forward(); err != nil {
		return fmt.Errorf("train: gmm energy: %w", err)
	}
	return nil
}

func gmmDo[T float](op *gmmOp, vs []G.Value) (G.Value, error) {
	err := loadGMM[T](&op.st, op.jitter, vs[0], vs[1])
	n := op.st.n
	if errors.Is(err, errNumeric) {
		// A degenerate mixture makes the loss NaN; the training loop reports
		// it as divergence.
		out := getBuf[T](&op.out, n+1)
		for i := range out {
			out[i] = T(math.NaN())
		}
		return wrap(&op.out, out, n+1), nil
	}
	if err != nil {
		return nil, err
	}
	out := getBuf[T](&op.out, n+1)
	for i, e := range op.st.energy {
		out[i] = T(e)
	}
	out[n] = T(op.st.penalty)
	return wrap(&op.out, out, n+1), nil
}

func (op *gmmOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if err := checkArity(op, len(inputs)); err != nil {
		return nil, err
	}
	both, err := G.ApplyOp(&gmmGradOp{jitter: op.jitter, fwd: &op.st}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	dim, k := inputs[0].Shape()[1], inputs[1].Shape()[1]
	gz, err := G.ApplyOp(&colsOp{from: 0, to: dim}, both)
	if err != nil {
		return nil, err
	}
	gg, err := G.ApplyOp(&colsOp{from: dim, to: dim + k}, both)
	if err != nil {
		return nil, err
	}
	return G.Nodes{gz, gg}, nil
}

// gmmGradOp computes [∂/∂z | ∂/∂γ] (n×(D+K)) from (z, γ, g). It reads the
// mixture from its forward op's state when the forward op has run since the
// gradient last did (in a graph, the forward pass of the same run, on the
// same z and γ), and repeats the forward pass otherwise.
type gmmGradOp struct {
	opBase
	jitter   float64
	fwd      *gmmState // the forward op's state; nil: always repeat
	consumed int       // fwd.runs when the gradient last read it
	st       gmmState
	gE       []float64
	gz, gg   []float64
	out      outBuf
}

func (op *gmmGradOp) Arity() int    { return 3 }
func (op *gmmGradOp) Type() hm.Type { return fnType(2, 2, 1, 2) }
func (op *gmmGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	z, err := shapeOf(ds, 0)
	if err != nil {
		return nil, err
	}
	g, err := shapeOf(ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{z[0], z[1] + g[1]}, nil
}
func (op *gmmGradOp) String() string        { return fmt.Sprintf("GMMEnergyGrad{%v}", op.jitter) }
func (op *gmmGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *gmmGradOp) Hashcode() uint32      { return hashString(op.String()) }

func (op *gmmGradOp) Do(vs ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vs)); err != nil {
		return nil, err
	}
	return dispatch(vs[0], func() (G.Value, error) { return gmmGradDo[float64](op, vs) },
		func() (G.Value, error) { return gmmGradDo[float32](op, vs) })
}

func gmmGradDo[T float](op *gmmGradOp, vs []G.Value) (G.Value, error) {
	st := &op.st
	var err error
	if op.fwd != nil && op.fwd.ok && op.fwd.runs != op.consumed {
		// The forward op ran on the same z and γ earlier in this run.
		st = op.fwd
		op.consumed = op.fwd.runs
	} else {
		err = loadGMM[T](st, op.jitter, vs[0], vs[1])
	}
	n, dim, k := st.n, st.dim, st.k
	if errors.Is(err, errNumeric) {
		out := getBuf[T](&op.out, n*(dim+k))
		for i := range out {
			out[i] = T(math.NaN())
		}
		return wrap(&op.out, out, n, dim+k), nil
	}
	if err != nil {
		return nil, err
	}
	g, err := sliceOf[T](vs[2])
	if err != nil {
		return nil, err
	}
	if len(g) != n+1 {
		return nil, fmt.Errorf("train: gmm energy gradient: %d gradient values, want %d", len(g), n+1)
	}
	op.gE = grow(op.gE, n)
	toF64(op.gE, g[:n])
	op.gz = grow(op.gz, n*dim)
	op.gg = grow(op.gg, n*k)
	st.backward(op.gE, float64(g[n]), op.gz, op.gg)
	w := dim + k
	out := getBuf[T](&op.out, n*w)
	for i := range n {
		o := out[i*w : (i+1)*w]
		for j := range dim {
			o[j] = T(op.gz[i*dim+j])
		}
		for j := range k {
			o[dim+j] = T(op.gg[i*k+j])
		}
	}
	return wrap(&op.out, out, n, w), nil
}
