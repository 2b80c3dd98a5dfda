// Package model holds a trained DAGMM model as data and scores samples with it.
//
// A [Model] is everything the scorer needs and nothing it does not: the feature
// names and their normalisation, the compression network's weights, the
// Gaussian mixture (phi, mu, Sigma) fitted on the whole training set, and the
// anomaly threshold. It is written to and read from one versioned file
// ([Save], [Load]); loading validates shapes, finiteness and positive-definite
// covariances and refuses a truncated or edited file.
//
// A [Scorer] runs the forward pass in plain Go (gonum, no Gorgonia): for each
// sample it gives the energy, whether it is above the threshold, and for each
// feature the actual value, the expected value (the de-normalised
// reconstruction) and its share of the reconstruction error.
//
// This package imports only the standard library and gonum, so that scoring
// stays small and fast; training (package train) and serving (package serve)
// meet only in the artifact.
package model
