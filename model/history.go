package model

import "math"

// MaxWindow is the largest [Model.Window] a model may have.
const MaxWindow = 1 << 16

// History holds the sample energies of one series (one host's samples, in
// time order) that [Scorer.Smooth] needs for a model with a window
// ([Model.Window] > 1). Make one per series with [Scorer.NewHistory], or
// in place with [Scorer.InitHistory]; it is not safe for concurrent use. It
// allocates nothing after creation.
type History struct {
	e    []float64 // ring of the last len(e) energies
	next int       // where the next energy goes
	n    int       // energies held, up to len(e)
	// small holds the ring of a window of up to 16 samples, so that a
	// History inside a larger struct takes no memory of its own: one cache
	// miss fewer for a service that holds many series.
	small [16]float64
}

// NewHistory returns an empty history for one series scored with s.
func (s *Scorer) NewHistory() *History {
	h := new(History)
	s.InitHistory(h)
	return h
}

// InitHistory makes *h an empty history for one series scored with s, in
// place. A History made so must not be copied afterwards: its ring may be
// inside it.
func (s *Scorer) InitHistory(h *History) {
	w := max(1, s.window)
	h.next, h.n = 0, 0
	if w <= len(h.small) {
		h.e = h.small[:w:w]
		clear(h.e)
		return
	}
	h.e = make([]float64, w)
}

// Window returns the number of consecutive samples whose energies the model
// averages: [Model.Window], or 1 for a model without a window.
func (s *Scorer) Window() int { return max(1, s.window) }

// Reset empties h, as for a new series (a host that was restarted, or a gap
// in its samples).
func (h *History) Reset() { h.next, h.n = 0, 0 }

// Len returns the number of energies h holds: the series' samples so far, up
// to the window.
func (h *History) Len() int { return h.n }

// push adds e and returns the mean of the energies held, e included.
func (h *History) push(e float64) float64 {
	h.e[h.next] = e
	h.next = (h.next + 1) % len(h.e)
	h.n = min(h.n+1, len(h.e))
	sum := 0.0
	for _, v := range h.e[:h.n] { // the ring's first n slots are the ones in use
		sum += v
	}
	return sum / float64(h.n)
}

// WindowScore returns a sample's score from its energy e and the mean m of
// the energies of the window ending with it: max(e, m). A lasting anomaly
// raises the mean of its window; a single far-out sample keeps its own
// energy. Each energy counts in the mean at most as the highest training
// energy ([Model.WindowLimit]), so that one far-out sample does not flag
// the samples after it.
func WindowScore(e, m float64) float64 { return max(e, m) }

// WindowScores returns the score of each of the energies of one series, in
// order, as [Scorer.Smooth] computes them sample by sample with a window of
// w (w ≤ 1: the energies themselves) and each energy counted in the mean
// at most as limit ([Model.WindowLimit]): the first w−1 samples use the
// window of the samples so far.
func WindowScores(energies []float64, w int, limit float64) []float64 {
	out := make([]float64, len(energies))
	if w <= 1 {
		copy(out, energies)
		return out
	}
	h := History{e: make([]float64, w)}
	for i, e := range energies {
		out[i] = WindowScore(e, h.push(min(e, limit)))
	}
	return out
}

// Smooth turns the stateless score of one sample in r (from
// [Scorer.ScoreBatch] or [Scorer.ScoreParallel]) into its series score: it
// adds r.Energy to h, sets r.Score to [WindowScore] of it and the mean of the
// window, and sets r.Anomaly, r.Severity and r.Band from r.Score. Call it
// once per sample, in the series' time order, with that series' history.
// For a model without a window it leaves r as it is (and h unused).
func (s *Scorer) Smooth(h *History, r *Result) {
	if s.window <= 1 {
		return
	}
	r.Score = WindowScore(r.Energy, h.push(min(r.Energy, s.windowLimit)))
	r.Anomaly = r.Score > s.cal.Threshold
	r.Severity = s.cal.Severity(r.Score)
	r.Band = BandOf(r.Severity)
}

// ScoreSeries scores the samples in x as the next samples of the series
// whose history is h, in order: [Scorer.ScoreBatch], then [Scorer.Smooth] on
// each result. It does not allocate. Use one History per host.
func (s *Scorer) ScoreSeries(ws *Workspace, h *History, x []float64, out []Result) error {
	if h == nil || len(h.e) != max(1, s.window) {
		return &InputError{Sample: -1, Problem: "history is nil or was made for a model with another window"}
	}
	if err := s.ScoreBatch(ws, x, out); err != nil {
		return err
	}
	for i := range ws.n {
		s.Smooth(h, &out[i])
	}
	return nil
}

// WindowLimit returns the most a sample's energy counts in the mean of its
// window: the highest training energy (+Inf for a model without
// calibration quantiles).
func (m *Model) WindowLimit() float64 {
	if q := m.Calibration.Quantiles; len(q) > 0 {
		return q[len(q)-1]
	}
	return math.Inf(1)
}
