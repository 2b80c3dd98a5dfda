package model

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
