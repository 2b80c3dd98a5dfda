package train

import "github.com/dagmm/dagmm/model"

// SplitConstant separates the features of the n×d row-major raw values x
// (d = len(features)) that hold one value in every row from those that vary.
// It returns the varying features in their order, x restricted to them (a
// new slice), and the constant ones with their value, ready for
// model.Model.Constant. Such a column carries nothing to learn from and
// min-max or z-score normalisation cannot scale it, so [Train] refuses it:
// callers that take whatever columns a file has train on the varying ones and
// record the rest in the model. With fewer than two rows every feature counts
// as varying, so that Train reports the rows.
func SplitConstant(features []string, x []float64) (varying []string, xv []float64, constant []model.ConstantFeature) {
	d := len(features)
	if d == 0 || len(x) < 2*d {
		return features, x, nil
	}
	n := len(x) / d
	keep := make([]int, 0, d)
	for j := range d {
		first, same := x[j], true
		for i := 1; i < n && same; i++ {
			same = x[i*d+j] == first
		}
		if same {
			constant = append(constant, model.ConstantFeature{Name: features[j], Value: first})
		} else {
			keep = append(keep, j)
		}
	}
	if len(constant) == 0 {
		return features, x, nil
	}
	varying = make([]string, len(keep))
	for c, j := range keep {
		varying[c] = features[j]
	}
	xv = make([]float64, n*len(keep))
	for i := range n {
		for c, j := range keep {
			xv[i*len(keep)+c] = x[i*d+j]
		}
	}
	return varying, xv, constant
}
