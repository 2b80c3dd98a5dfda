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
// sample it gives the energy, whether it is above the threshold, a severity
// from 0 to 100 with its band, and for each feature the actual value, the
// expected value (the de-normalised reconstruction) and its share of the
// reconstruction error. [Scorer.Explain] explains the samples you report
// (the anomalies) better, at the cost of a few more passes.
//
// This package imports only the standard library and gonum, so that scoring
// stays small and fast; training (package train) and serving (package serve)
// meet only in the artifact.
//
// # The formulas
//
// Package train implements the same formulas in its Gorgonia graph, and its
// tests compare both to a relative error of 1e-9. For a raw sample r with d
// features:
//
//   - Normalisation, per feature ([Transform.Apply]): x_j = (f(r_j) − Offset_j) / Scale_j,
//     with f the identity, or f(v) = sign(v)·log1p(|v|) for [NormLog] and
//     [NormLogMinSD].
//   - Compression network: z_c = encoder(x), x' = decoder(z_c), each layer
//     act(in·W + B) with W row-major In×Out ([Layer]).
//   - Estimation input, computed on the normalised x and x':
//     z = [z_c, rel, cos] with rel = ‖x − x'‖₂ / (‖x‖₂ + ε) and
//     cos = x·x' / (‖x‖₂·‖x'‖₂ + ε), ε = [DistanceEpsilon]
//     ([RelativeDistance], [CosineSimilarity]).
//   - Energy ([Mixture.Energy]): E(z) = −log Σ_k φ_k · exp(−½ (z−μ_k)ᵀ Σ_k⁻¹ (z−μ_k)) / sqrt(det(2π Σ_k)),
//     evaluated as −logsumexp_k(log φ_k − ½ Dim·log 2π − ½ log det Σ_k − ½ ‖L_k⁻¹(z−μ_k)‖²)
//     with Σ_k = L_k L_kᵀ (Cholesky) and the largest term subtracted before exp.
//   - Sample energy ([Result.Energy]): E(z) + ReconWeight·‖x − x'‖²
//     ([Model.ReconWeight]; 0 in models written before it existed).
//   - Score ([Result.Score]): the energy, or, for a model with a window
//     ([Model.Window] = w > 1) scoring a series ([Scorer.Smooth],
//     [Scorer.ScoreSeries], one [History] per host), max(energy, mean
//     energy of the series' last w samples, this one included; fewer at the
//     series' start).
//   - Anomaly: Score > Calibration.Threshold, the configured percentile of the
//     training energies ([Calibrate]).
//   - Explanation, per feature: Expected_j = f⁻¹(x'_j·Scale_j + Offset_j)
//     ([Transform.Invert]) and Share_j = (x_j − x'_j)² / Σ_i (x_i − x'_i)².
//   - Severity ([Calibration.Severity]): 50·F(E)/P for E ≤ Threshold, with
//     F(E) the energy's percentile among the training energies (interpolated
//     between Quantiles) and P = Percentile; above, min(100, 50 + 10·(E −
//     Threshold)/s) with s = Threshold − q(100 − 10·(100 − P)) (q99 − q90
//     for P = 99): 10 points per tenfold rarer energy. Bands ([BandOf]):
//     normal ≤ 50 < low ≤ 60 < medium ≤ 75 < high ≤ 90 < critical.
//
// # Explaining anomalies
//
// [Scorer.Explain] explains one sample of the last batch with a [Method],
// into a caller-owned [Explanation]: per feature the actual value, the
// expected value and a share of the anomaly (non-negative, summing to 1),
// ranked. With x the normalised sample, x' its reconstruction,
// T(x) = ‖x − x'(x)‖² and x⁽ʲ⁾ the sample with x_j replaced by x'_j:
//
//   - [MethodRepair] (default up to [RepairMaxFeatures] features):
//     a_j = T(x) − T(x⁽ʲ⁾).
//   - [MethodCounterfactual]: a_j = E(x) − E(x⁽ʲ⁾).
//   - [MethodRepairGradient] (default above) and [MethodGradient]:
//     integrated gradients of T or E from x' to x, a_j = (x_j − x'_j)·
//     mean_k ∂/∂x_j at x' + α_k(x − x'), α_k = (k + ½)/m; ∂E/∂x runs back
//     through ∂E/∂z = Σ_k γ_k Σ_k⁻¹(z − μ_k) (γ the component posteriors),
//     the derivatives of rel and cos, and the decoder and encoder.
//   - [MethodSearch]: a_j = E(x) − min over v of E(x with x_j = v), v
//     within the values the decoder gives for normal codes; a pair (a, b)
//     takes the whole drop when min over (v_a, v_b) beats the best single
//     feature by [SearchPairMargin]·(q99 − q50).
//   - [MethodShare]: a_j = Share_j.
//   - [MethodRecent]: a_j = w_j·max((x_j − x'_j)², its mean over the
//     sample and the series' samples before it, [RecentWindow] in all),
//     with the history a [Recent] holds ([Scorer.ExplainRecent],
//     [Scorer.ExplainSeries]) and w_j = (Scale_j/Spread_j)², which
//     measures the error in the feature's training spread
//     ([Transform.Spread]; w_j = 1 for models without spreads).
//
// Share_j = max(a_j, 0) / Σ_i max(a_i, 0) (1/d each when no a_j is
// positive). The expected value of the top-ranked feature (or of the pair)
// is its repaired value: the fixed point of v ↦ x'_j(x with x_j = v), two
// secant steps from x_j and x'_j, or the searched minimum; the other
// features' expected values are the reconstruction of the sample so
// repaired, and [Explanation.Resolved] says whether that repaired sample's
// energy is at or below the threshold. docs/explanations.md compares the
// methods on generated anomalies with known causes.
//
// # Scoring many samples
//
// [Scorer.ScoreBatch] scores a row-major batch into a caller-owned []Result
// using a [Workspace] for all its memory; it does not allocate once the
// workspace has held a batch that large (a workspace grows to the batches
// it scores, so a service can keep one per model), and the
// per-feature explanations in the results are views into the workspace,
// valid until its next use. A Scorer is safe for concurrent use; a Workspace
// is not, so each goroutine keeps its own. To use several cores, either run
// one goroutine per core, each scoring its own batches with its own
// workspace (what a stream consumer does), or call [Scorer.ScoreParallel]
// with one workspace per core. [Scorer.Score] scores a single sample and
// allocates its result.
//
// A Scorer keeps what scoring and explaining need, and the model's
// description, but not its training's loss history: about 8 KB for a
// four-metric host model (README, "Speed"), so 100,000 of them fit in
// under 1 GB.
//
// # The artifact
//
// An artifact is one JSON document:
//
//	{"format":"dagmm-model","version":1,"sha256":"<hex>","model":{...}}
//
// where sha256 is the digest of the exact bytes of the model field. The
// encoding is deterministic and float64 values round-trip exactly, so two
// trainings with the same seed write identical files. Errors match the
// sentinels [ErrEmpty], [ErrTruncated], [ErrNotModel], [ErrVersion],
// [ErrChecksum], [ErrInvalid] (a [*ValidationError] naming the field) and
// [ErrInput] (an [*InputError] naming the sample and feature).
package model
