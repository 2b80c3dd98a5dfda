package model

import "fmt"

// RecentWindow is the number of a series' samples, the explained one
// included, over which [MethodRecent] averages each feature's squared
// reconstruction error by default: an hour at one sample a minute. On the
// real server metrics of docs/real-metrics.md a longer window names more
// of the metrics operators named (HitRate@150% over 10 samples 0.665, 30:
// 0.726, 60: 0.776, 120: 0.792), because operators name the metrics of a
// whole incident, and incidents there last from a few minutes to many
// hours; the gain slows beyond an hour, and a longer window is slower to
// let go of an incident that has ended.
const RecentWindow = 60

// Recent holds the per-feature squared reconstruction errors of one
// series' last samples (one host's samples in time order), for
// [Scorer.ExplainRecent]: feed it every sample of the series after scoring
// (and explaining) it. It holds window − 1 samples, d values each; adding
// does not allocate. It belongs to the Scorer that made it and is not safe
// for concurrent use.
type Recent struct {
	s    *Scorer
	buf  []float64 // (window−1)×d, a ring of squared errors
	n    int       // samples held
	next int       // the ring slot the next sample goes to
}

// NewRecent returns an empty history for [Scorer.ExplainRecent] averaging
// over window samples, the explained one included ([RecentWindow] when
// window < 1; 1 ranks by the explained sample alone).
func (s *Scorer) NewRecent(window int) *Recent {
	if window < 1 {
		window = RecentWindow
	}
	return &Recent{s: s, buf: make([]float64, (window-1)*s.d)}
}

// Window returns the number of samples explanations average over, the
// explained one included.
func (r *Recent) Window() int { return len(r.buf)/r.s.d + 1 }

// Len returns the number of earlier samples r holds (at most Window − 1).
func (r *Recent) Len() int { return r.n }

// Reset forgets every sample, as after a gap in the series.
func (r *Recent) Reset() { r.n, r.next = 0, 0 }

// Add records sample i of the last batch scored with ws as the series'
// newest sample, dropping the oldest when r is full. It returns an
// [*InputError] when ws is nil or belongs to another Scorer than r, or when
// i is not a sample of the last batch.
func (r *Recent) Add(ws *Workspace, i int) error {
	if err := r.s.checkSample(ws, i); err != nil {
		return err
	}
	if len(r.buf) == 0 {
		return nil
	}
	d := r.s.d
	r.s.squaredErrors(ws, i, r.buf[r.next*d:(r.next+1)*d])
	r.next = (r.next + 1) % (len(r.buf) / d)
	r.n = min(r.n+1, len(r.buf)/d)
	return nil
}

// ExplainRecent explains sample i of the last batch scored with ws by
// [MethodRecent]: it ranks the features by the larger of their squared
// reconstruction error (x_j − x'_j)² in the sample and its mean over the
// sample and the samples r holds (the series' samples before it; nil for
// none). Attribution is that value in units of the feature's training
// spread, ((x_j − x'_j)·Scale_j/Spread_j)² ([Transform.Spread]; in
// normalised units for a model without spreads, written before they
// existed), Share its part of the sum over features, Expected the sample's
// reconstruction; Set is 0
// and RepairedEnergy the energy, as for [MethodShare]. Explaining into the
// same dst again does not allocate.
//
// The mean over the last samples explains an incident rather than one
// sample: operators name the metrics that misbehaved over the incident,
// and a metric that spikes now and then within it, normal in between, is
// among them. The sample's own error keeps a single far-out sample
// explained by its own broken feature, which the window's mean would
// dilute: the same max(now, mean of the window) as a smoothed score's
// max(energy, mean energy of the last samples). Measured in each
// feature's spread rather than in the normalisation's units, a metric that
// is flat but for its spikes, or whose values barely move, weighs by how
// far it left its usual values, and the weights do not depend on how the
// model scales its inputs. The errors are those of [Scorer.Explain], plus
// an [*InputError] when r belongs to another Scorer.
func (s *Scorer) ExplainRecent(ws *Workspace, i int, r *Recent, dst *Explanation) error {
	if r != nil && r.s != s {
		return &InputError{Sample: -1, Problem: "recent history belongs to another scorer"}
	}
	if err := s.checkSample(ws, i); err != nil {
		return err
	}
	return s.explainRecent(ws, i, r, dst)
}

// explainRecent is ExplainRecent with its arguments checked.
func (s *Scorer) explainRecent(ws *Workspace, i int, r *Recent, dst *Explanation) error {
	d, dim := s.d, s.dim
	ex := ws.explainScratch()
	attr, now := ex.attr[:d], ex.gx[:d]
	s.squaredErrors(ws, i, now)
	copy(attr, now)
	if r != nil && r.n > 0 {
		for k := range r.n {
			for j, v := range r.buf[k*d : (k+1)*d] {
				attr[j] += v
			}
		}
		for j, v := range now {
			attr[j] = max(v, attr[j]/float64(r.n+1))
		}
	}
	if s.errWeight != nil {
		for j, w := range s.errWeight {
			attr[j] *= w
		}
	}
	e0 := s.energy(s.mix.energy(ws.z[i*dim:(i+1)*dim], ex.mix), ws.sdd[i])
	s.fill(ws, i, MethodRecent, e0, dst)
	return nil
}

// squaredErrors writes sample i's squared reconstruction error per
// feature, (x_j − x'_j)² in normalised units, into dst: its share of the
// total times the total (0 when the reconstruction is exact).
func (s *Scorer) squaredErrors(ws *Workspace, i int, dst []float64) {
	d := s.d
	sdd := ws.sdd[i]
	for j, sh := range ws.share[i*d : (i+1)*d] {
		dst[j] = sh * sdd
	}
}

// checkSample reports whether i is a sample of ws's last batch.
func (s *Scorer) checkSample(ws *Workspace, i int) error {
	if ws == nil || ws.s != s {
		return &InputError{Sample: -1, Problem: "workspace is nil or belongs to another scorer"}
	}
	if i < 0 || i >= ws.n {
		return &InputError{Sample: i, Problem: fmt.Sprintf("no such sample in the last batch (it had %d)", ws.n)}
	}
	return nil
}

// DefaultSeriesMethod returns the method [Scorer.ExplainSeries] uses for
// the zero Method, chosen by measurement: [MethodRecent] above
// [RepairMaxFeatures] features (on real server metrics of 31 to 34
// features it names more of the operators' metrics than any one-sample
// method, docs/real-metrics.md), [Scorer.DefaultMethod] up to it (on the
// generated four-feature series of docs/explanations.md repair names the
// broken metric of a one-sample anomaly first far more often).
func (s *Scorer) DefaultSeriesMethod() Method {
	if s.d <= RepairMaxFeatures {
		return s.DefaultMethod()
	}
	return MethodRecent
}

// ExplainSeries explains sample i of the last batch scored with ws, a
// sample of the series whose earlier samples r holds (nil for none), with
// method (the zero Method means [Scorer.DefaultSeriesMethod]):
// [MethodRecent] as [Scorer.ExplainRecent] does, any other method as
// [Scorer.Explain] does, without r. A service keeps one Recent per series
// (host), explains a flagged sample with ExplainSeries and then adds the
// sample to r with [Recent.Add]. Its errors are those of ExplainRecent.
func (s *Scorer) ExplainSeries(ws *Workspace, i int, r *Recent, method Method, dst *Explanation) error {
	if method == "" {
		method = s.DefaultMethod()
		if r != nil && r.n > 0 {
			method = s.DefaultSeriesMethod()
		}
	}
	if method == MethodRecent {
		return s.ExplainRecent(ws, i, r, dst)
	}
	if r != nil && r.s != s {
		return &InputError{Sample: -1, Problem: "recent history belongs to another scorer"}
	}
	return s.Explain(ws, i, method, dst)
}
