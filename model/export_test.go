package model

import (
	"fmt"
	"slices"
	"unsafe"
)

// EnergyGradient exposes the explainers' backward pass to the tests: it
// returns the energy at the normalised sample xn and the gradient with
// respect to xn of the energy (energy true) or of the squared
// reconstruction error.
func (s *Scorer) EnergyGradient(xn []float64, energy bool) (float64, []float64) {
	ex := s.newExplainScratch()
	x := append([]float64(nil), xn...)
	gx := make([]float64, s.d)
	e := s.gradient(ex, x, gx, energy)
	return e, gx
}

// EnergyAt returns the energy and the squared reconstruction error at the
// normalised sample xn.
func (s *Scorer) EnergyAt(xn []float64) (e, sdd float64) {
	ex := s.newExplainScratch()
	xr, e := s.pass(append([]float64(nil), xn...), ex.acts, ex.z, ex.mix)
	_, _, sdd, _ = reconStats(xn, xr)
	return e, sdd
}

// MixtureGradient returns ∂E/∂z.
func (mx *Mixture) MixtureGradient(z []float64) []float64 {
	gz := make([]float64, mx.dim)
	mx.energyGrad(z, gz, make([]float64, mx.k*mx.dim+mx.dim+mx.k))
	return gz
}

// Unprefetched names the arrays a forward pass reads that lie outside the
// numbers its Memory asks for, and the explainers' arrays that lie inside
// them (they are not the forward pass's).
func (s *Scorer) Unprefetched() []string {
	m := s.Memory()
	inside := func(x []float64) bool {
		if len(x) == 0 {
			return true
		}
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(m.params)))
		p := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
		return p >= lo && p+uintptr(len(x))*8 <= lo+uintptr(len(m.params))*8
	}
	forward := map[string][]float64{"offset": s.offset, "scale": s.scale, "mu": s.mix.mu, "l": s.mix.l,
		"invDiag": s.mix.invDiag, "logc": s.mix.logc, "quantiles": s.cal.Quantiles}
	for i, l := range slices.Concat(s.enc, s.dec) {
		forward[fmt.Sprintf("layer %d weights", i)], forward[fmt.Sprintf("layer %d biases", i)] = l.wt, l.b
	}
	var bad []string
	for name, x := range forward {
		if !inside(x) {
			bad = append(bad, name+" outside")
		}
	}
	for name, x := range map[string][]float64{"searchLo": s.searchLo, "searchHi": s.searchHi, "trainLo": s.trainLo, "trainHi": s.trainHi, "errWeight": s.errWeight} {
		if len(x) > 0 && inside(x) {
			bad = append(bad, name+" inside")
		}
	}
	slices.Sort(bad)
	return bad
}
