// Package report draws the pictures and writes the numbers of a training
// report: the loss per epoch ([LossCurve]), the distribution of the training
// energies with the anomaly threshold ([EnergyHistogram]), and a scatter matrix
// of the features with the flagged samples in red ([ScatterMatrix]). [Write]
// puts all three, plus a report.json with the figures, into one directory.
//
// The inputs are plain Go values (slices and numbers), so the package depends
// on neither package train nor package model; cmd/dagmm gathers them.
//
// # Formats
//
// The picture format follows the file extension: .png (150 dots per inch) or
// .svg. Any other extension is refused with [ErrFormat].
//
// # Axes
//
// Metric values are often heavy-tailed (network rates from 1e5 to 1e8 bps,
// energies of a few outliers far above the bulk). An axis whose values are all
// positive and span more than three decades is drawn on a log scale;
// otherwise one whose full range is more than 20 times the width of its
// central 98% is drawn on a symmetric log scale (linear near zero,
// logarithmic beyond). The axis label says which scale is used. Counts of a
// histogram of energies go on a log axis, so single samples in the tail
// remain visible.
//
// # Errors
//
// Data that are empty, have mismatched lengths, or hold NaN or ±Inf are
// refused before anything is drawn ([ErrNoData], [ErrShape], [ErrNotFinite]);
// the error names the series, row or feature at fault, and no file is
// written. All functions are safe for concurrent use.
package report
