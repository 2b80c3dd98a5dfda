package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// modelState is everything derived from one [Loaded] that the hot paths
// need: the sample decoder for its features and pre-encoded JSON pieces.
// It is immutable and shared by all workers.
type modelState struct {
	l        *Loaded
	set      *modelSet // the set that prepared it
	dec      *ingest.SampleDecoder
	d        int
	features []string
	featJSON [][]byte // each feature name, then each constant one, as a JSON string
	// constantNames are the names of the model's constant features.
	constantNames []string
	// constant is the model when it has constant features (nil otherwise),
	// and depSeverity its departure severity: see [model.Model.Departures].
	constant    *model.Model
	depSeverity float64
	// series holds each host's recent samples when the model scores over a
	// window of them or explains with them (nil otherwise).
	series      *hostSeries
	mem         model.Memory // the scorer's
	threshold   float64
	nameJSON    []byte
	versionJSON []byte
	// describe encodes GET /v1/model and GET /v2/models/{name} on first
	// use: only the default model is described, and a fleet's host models
	// should not each hold their descriptions.
	describe func() modelDescription
}

// modelDescription is a model's pre-encoded descriptions.
type modelDescription struct {
	info    []byte // GET /v1/model
	oipMeta []byte // GET /v2/models/{name}
}

// info returns the body of GET /v1/model.
func (st *modelState) info() []byte { return st.describe().info }

// oipMeta returns the body of GET /v2/models/{name}.
func (st *modelState) oipMeta() []byte { return st.describe().oipMeta }

// newModelState prepares l for serving with at most maxSamples samples per
// message or request, explaining with method by default.
func newModelState(l *Loaded, maxSamples int, method model.Method) (*modelState, error) {
	return newModelStateLike(nil, l, maxSamples, method, nil)
}

// newModelStateLike is newModelState sharing like's decoder and encoded
// feature names when l takes the same features (like may be nil): the
// host models of a fleet then hold one copy. It makes the state in dst,
// or in new memory when dst is nil.
func newModelStateLike(dst *modelState, l *Loaded, maxSamples int, method model.Method, like *modelState) (*modelState, error) {
	s := l.Scorer
	var constant []string // a host model's state is made on its first sample: no copy of the model
	for _, c := range s.Constant() {
		constant = append(constant, c.Name)
	}
	if like != nil && (!slices.Equal(like.features, s.Features()) || !slices.Equal(like.constantNames, constant) || like.dec.MaxSamples != maxSamples) {
		like = nil
	}
	var dec *ingest.SampleDecoder
	if like != nil {
		dec = like.dec
	} else {
		var err error
		if dec, err = ingest.NewSampleDecoderOptional(s.Features(), constant); err != nil {
			return nil, fmt.Errorf("serve: model %s: %w", l.Version, err)
		}
		dec.MaxSamples = maxSamples
	}
	st := dst
	if st == nil {
		st = new(modelState)
	}
	*st = modelState{
		l:           l,
		dec:         dec,
		d:           s.NumFeatures(),
		features:    s.Features(),
		threshold:   s.Threshold(),
		nameJSON:    appendString(nil, l.Name),
		versionJSON: appendString(nil, l.Version),
		series:      newHostSeries(s, method),
		mem:         s.Memory(),
	}
	st.constantNames = constant
	if like != nil {
		// Shared, the features compare equal without reading a host
		// model's own copy, which is not in the CPU cache when thousands
		// of models take turns.
		st.features, st.featJSON, st.constantNames = like.features, like.featJSON, like.constantNames
	} else {
		for _, f := range slices.Concat(st.features, constant) {
			st.featJSON = append(st.featJSON, appendString(nil, f))
		}
	}
	if len(constant) > 0 {
		m := s.Model()
		st.constant, st.depSeverity = m, m.DepartureSeverity()
	}
	st.describe = sync.OnceValue(func() modelDescription {
		var d modelDescription
		var err error
		if d.info, err = modelInfo(l, l.Scorer.Model()); err != nil {
			d.info = errorJSON(err)
		}
		if d.oipMeta, err = oipMetadata(l, st.d); err != nil {
			d.oipMeta = errorJSON(err)
		}
		return d
	})
	return st, nil
}

// errorJSON is {"error": err} for a description that cannot be encoded
// (a model whose values JSON cannot hold).
func errorJSON(err error) []byte {
	return append(appendString([]byte(`{"error":`), err.Error()), '}')
}

// ModelInfo is the body of GET /v1/model. Origin and Provenance.Input hold
// base names only: no response shows a path of the serving machine.
type ModelInfo struct {
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	Origin        string            `json:"origin"`
	LoadedAt      time.Time         `json:"loaded_at"`
	Features      []string          `json:"features"`
	Normalisation []model.Transform `json:"normalisation"`
	// Constant lists the features constant in training: samples may carry
	// them, and one that departs from its value is an anomaly.
	Constant   []model.ConstantFeature `json:"constant,omitempty"`
	Threshold  Float                   `json:"threshold"`
	Percentile float64                 `json:"percentile"` // of the training energies, where the threshold is
	Encoder    []int                   `json:"encoder"`
	Estimator  []int                   `json:"estimator"`
	Components int                     `json:"components"`
	Provenance model.Provenance        `json:"provenance"`
}

func modelInfo(l *Loaded, m *model.Model) ([]byte, error) {
	sizes := func(ls []model.Layer) []int {
		if len(ls) == 0 {
			return []int{}
		}
		out := []int{ls[0].In}
		for _, x := range ls {
			out = append(out, x.Out)
		}
		return out
	}
	prov := m.Provenance
	if prov.Input != "" {
		prov.Input = filepath.Base(prov.Input)
	}
	info := ModelInfo{
		Name:          l.Name,
		Version:       l.Version,
		Origin:        baseName(l.Origin),
		LoadedAt:      l.LoadedAt.UTC(),
		Features:      m.Features,
		Normalisation: m.Norm,
		Constant:      m.Constant,
		Threshold:     Float(m.Calibration.Threshold),
		Percentile:    m.Calibration.Percentile,
		Encoder:       sizes(m.Encoder),
		Estimator:     sizes(m.Estimator),
		Components:    m.GMM.K,
		Provenance:    prov,
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("serve: encode model info: %w", err)
	}
	return b, nil
}

// appendScore appends one scored sample as a JSON object: the fields of
// [Event]. withModel adds model, model_version and threshold; ex, when not
// nil, adds the explanation; src, when not nil, adds the source.
func (st *modelState) appendScore(b []byte, host string, ts time.Time, r *model.Result, withModel bool, ex *model.Explanation, src *Source) []byte {
	b = append(b, `{"host":`...)
	b = appendString(b, host)
	b = append(b, `,"ts":`...)
	b = appendTime(b, ts)
	if withModel {
		b = append(b, `,"model":`...)
		b = append(b, st.nameJSON...)
		b = append(b, `,"model_version":`...)
		b = append(b, st.versionJSON...)
	}
	b = append(b, `,"energy":`...)
	b = appendFloat(b, r.Energy)
	if st.l.Scorer.Window() > 1 {
		b = append(b, `,"score":`...)
		b = appendFloat(b, r.Score)
	}
	if withModel {
		b = append(b, `,"threshold":`...)
		b = appendFloat(b, st.threshold)
	}
	if r.Anomaly {
		b = append(b, `,"anomaly":true`...)
	} else {
		b = append(b, `,"anomaly":false`...)
	}
	b = append(b, `,"severity":`...)
	b = appendFloat(b, r.Severity)
	b = append(b, `,"band":"`...)
	b = append(b, r.Band.String()...)
	b = append(b, '"')
	if ex != nil {
		b = append(b, `,"explanation_method":"`...)
		b = append(b, ex.Method...)
		b = append(b, `","explanation":[`...)
		for k := range ex.Features {
			c := &ex.Features[k]
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"feature":`...)
			b = append(b, st.featJSON[c.Index]...)
			b = append(b, `,"actual":`...)
			b = appendFloat(b, c.Actual)
			b = append(b, `,"expected":`...)
			b = appendFloat(b, c.Expected)
			b = append(b, `,"share":`...)
			b = appendFloat(b, c.Share)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if src != nil {
		b = append(b, `,"source":{"subject":`...)
		b = appendString(b, src.Subject)
		if src.Stream != "" {
			b = append(b, `,"stream":`...)
			b = appendString(b, src.Stream)
			b = append(b, `,"seq":`...)
			b = appendUint(b, src.Seq)
		}
		b = append(b, `,"index":`...)
		b = appendUint(b, uint64(src.Index))
		if src.ID != "" {
			b = append(b, `,"id":`...)
			b = appendString(b, src.ID)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// worker is one goroutine's scoring state: a workspace for each model it
// scored with lately, the batch buffers, and the outgoing events of one
// message. It is not safe for concurrent use.
type worker struct {
	batch  int
	spaces []workspace // the most recently used first
	x      []float64
	out    []model.Result
	lo     int                 // index of out[0] in the samples being scored
	deps   [][]model.Departure // each sample's departures from constant features, like out
	ser    []*series           // each sample's host series, like out (nil: scored alone)
	ex     model.Explanation   // reused by explain
	buf    []byte              // encoded events of the current message
	msgs   []outMsg            // their subjects and spans in buf
	subj   subjectCache
	cur    *model.Workspace // the workspace of the piece being scored
	// learning counts the samples of learning hosts that score passed
	// over; its callers reset it.
	learning int
	// explained is the index of the sample w.ex explains, set by explain
	// (-1: none), and hostScores the results score notes for the host
	// gauges ([hostGauges]).
	explained  int
	hostScores []hostScore

	// Inference endpoint buffers.
	inferX, energy, expected, share, pct []float64
	anomaly                              []bool
	samples                              []ingest.Sample
}

// workspace is a worker's workspace for one model.
type workspace struct {
	s  *model.Scorer
	ws *model.Workspace
}

// maxWorkspaces bounds the models a worker keeps a workspace for: enough
// for the hosts of a message or two, few enough that a worker's memory
// does not grow with a fleet's models.
const maxWorkspaces = 8

// outMsg is one event waiting to be published: buf[start:end] to subject.
type outMsg struct {
	subject    string
	start, end int
	id         string // Nats-Msg-Id, when publishing to an event stream
}

func newWorker(batch int) *worker {
	return &worker{
		batch: batch,
		out:   make([]model.Result, batch),
		deps:  make([][]model.Departure, batch),
		ser:   make([]*series, batch),
	}
}

// use makes the worker's buffers fit st, and returns st's workspace:
// kept from an earlier use when the worker scored with st's model lately,
// so that alternating models allocates nothing.
func (w *worker) use(st *modelState) *model.Workspace {
	if need := w.batch * st.d; len(w.x) < need {
		w.x = make([]float64, need)
	}
	sc := st.l.Scorer
	for i, e := range w.spaces {
		if e.s == sc {
			copy(w.spaces[1:i+1], w.spaces[:i]) // most recent first
			w.spaces[0] = e
			return e.ws
		}
	}
	// A model not used lately is cold: its memory is asked for at once.
	st.mem.Prefetch()
	st.series.prefetch()
	var e workspace
	if len(w.spaces) < maxWorkspaces {
		e = workspace{s: sc, ws: sc.NewWorkspace(w.batch)}
		w.spaces = append(w.spaces, workspace{})
	} else {
		// The least recently used one's memory serves: a fleet's host
		// models share an architecture, so a worker moving through
		// thousands of them allocates nothing.
		e = workspace{s: sc, ws: sc.Reuse(w.spaces[len(w.spaces)-1].ws)}
	}
	copy(w.spaces[1:], w.spaces[:len(w.spaces)-1])
	w.spaces[0] = e
	return e.ws
}

// explain explains sample i of the samples being scored (valid only inside
// the callback of score) with method.
func (w *worker) explain(st *modelState, i int, method model.Method) (*model.Explanation, error) {
	if err := w.ser[i-w.lo].explain(st.l.Scorer, w.cur, i-w.lo, method, &w.ex); err != nil {
		return nil, fmt.Errorf("%w: explain sample %d: %w", errScore, i, err)
	}
	if st.constant != nil {
		st.constant.AddDepartures(&w.ex, w.deps[i-w.lo])
	}
	w.explained = i
	return &w.ex, nil
}

// errScore marks an error from the model rather than the decoder.
var errScore = errors.New("serve: sample cannot be scored")

// scoreFunc receives each scored sample: its index in the samples, the
// state of the model that scored it and the result. It may call w.explain
// for the sample; the result's slices are valid only during the call. A
// sample whose host is learning ([ErrLearning]) is not scored: st and r
// are nil.
type scoreFunc func(st *modelState, i int, r *model.Result) error

// score scores samples, each with its host's model from ms, in pieces of
// consecutive samples of one model of at most the worker's batch size,
// and calls fn for each result in order. dec is the state whose decoder
// read the samples: a host's model must take the same features. It stops
// at the first piece that fails, or the first error fn returns, with an
// error naming the sample's index in samples. Once all are scored, the
// results go to ms's host gauges: every path that scores a host's samples
// comes through here.
func (w *worker) score(ms *modelSet, dec *modelState, samples []ingest.Sample, fn scoreFunc) error {
	w.hostScores = w.hostScores[:0]
	if err := w.scoreHosts(ms, dec, samples, fn); err != nil {
		return err
	}
	if ms.hosts != nil {
		ms.hosts.record(w.hostScores)
	}
	clear(w.hostScores) // hosts may point into the message
	return nil
}

func (w *worker) scoreHosts(ms *modelSet, dec *modelState, samples []ingest.Sample, fn scoreFunc) error {
	// A host's model is looked up once for a run of its samples, and the
	// look-up that ends a piece starts the next one.
	var (
		st     *modelState
		err    error
		looked bool
	)
	for lo := 0; lo < len(samples); {
		if !looked {
			st, err = ms.forHost(samples[lo].Host)
		}
		looked = false
		if errors.Is(err, ErrLearning) {
			if err := fn(nil, lo, nil); err != nil {
				return err
			}
			w.learning++
			lo++
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: sample %d: %w", errScore, lo, err)
		}
		if st != dec && !slices.Equal(st.features, dec.features) {
			return fmt.Errorf("%w: sample %d: host %q's model %s takes the features %v, not %v", errScore, lo,
				samples[lo].Host, st.l.Version, st.features, dec.features)
		}
		hi := lo + 1
		var next *modelState
		var nextErr error
		for hi < len(samples) && hi-lo < w.batch {
			if samples[hi].Host != samples[hi-1].Host {
				next, nextErr = ms.forHost(samples[hi].Host)
				if nextErr != nil || next != st {
					looked = true
					break
				}
			}
			hi++
		}
		if err := w.scorePiece(st, samples, lo, hi, fn); err != nil {
			return err
		}
		st, err, lo = next, nextErr, hi
	}
	return nil
}

// scoreWith scores samples with st alone, in pieces of the worker's batch
// size, and calls fn for each result in order, like score.
func (w *worker) scoreWith(st *modelState, samples []ingest.Sample, fn scoreFunc) error {
	w.hostScores = w.hostScores[:0]
	for lo := 0; lo < len(samples); lo += w.batch {
		if err := w.scorePiece(st, samples, lo, min(lo+w.batch, len(samples)), fn); err != nil {
			return err
		}
	}
	return nil
}

// scorePiece scores samples[lo:hi], at most the worker's batch, with st.
func (w *worker) scorePiece(st *modelState, samples []ingest.Sample, lo, hi int, fn scoreFunc) error {
	ws := w.use(st)
	w.cur = ws
	d := st.d
	x := w.x[:(hi-lo)*d]
	for i := lo; i < hi; i++ {
		v := samples[i].Values
		if len(v) != d {
			return fmt.Errorf("%w: sample %d has %d values, the model takes %d", errScore, i, len(v), d)
		}
		copy(x[(i-lo)*d:], v)
	}
	out := w.out[:hi-lo]
	w.lo = lo
	if err := st.l.Scorer.ScoreBatch(ws, x, out); err != nil {
		if ie, ok := errors.AsType[*model.InputError](err); ok && ie.Sample >= 0 {
			shifted := *ie
			shifted.Sample += lo
			err = &shifted
		}
		return fmt.Errorf("%w: %w", errScore, err)
	}
	ser := w.ser[:hi-lo]
	clear(ser)
	if st.series != nil {
		for i := range out {
			ser[i] = st.series.of(samples[lo+i].Host)
			if ser[i] != nil && st.l.Scorer.Window() > 1 {
				ser[i].smooth(st.l.Scorer, &out[i])
			}
		}
	}
	if st.constant != nil {
		w.departures(st, samples[lo:hi], out)
	}
	for i := range out {
		w.explained = -1
		if err := fn(st, lo+i, &out[i]); err != nil {
			return err
		}
		w.noteHost(st, samples[lo+i].Host, lo+i, &out[i])
		if err := ser[i].add(ws, i); err != nil {
			return fmt.Errorf("%w: sample %d: %w", errScore, lo+i, err)
		}
	}
	return nil
}

// departures flags the samples that depart from a constant feature of the
// model (st.constant not nil): each becomes an anomaly with at least the
// model's departure severity, and w.explain names the departed features.
func (w *worker) departures(st *modelState, samples []ingest.Sample, out []model.Result) {
	for i := range out {
		w.deps[i] = w.deps[i][:0]
		vals := samples[i].Optional
		if vals == nil {
			continue
		}
		w.deps[i] = st.constant.Departures(w.deps[i], vals)
		if len(w.deps[i]) == 0 {
			continue
		}
		r := &out[i]
		r.Anomaly = true
		if r.Severity < st.depSeverity {
			r.Severity, r.Band = st.depSeverity, model.BandOf(st.depSeverity)
		}
	}
}

// subjectCache maps hosts to their event subjects, so that a busy host
// does not cost an allocation per event.
type subjectCache struct {
	m map[[2]string]string
}

// get returns prefix + "." + the host as a subject token.
func (c *subjectCache) get(prefix, host string) string {
	k := [2]string{prefix, host}
	if s, ok := c.m[k]; ok {
		return s
	}
	if c.m == nil || len(c.m) >= 4096 {
		c.m = make(map[[2]string]string)
	}
	s := prefix + "." + ingest.HostToken(host)
	c.m[k] = s
	return s
}

// hostOf returns the sample's host, or else the subject's last token.
func hostOf(sampleHost, subject string) string {
	if sampleHost != "" {
		return sampleHost
	}
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return subject[i+1:]
		}
	}
	return subject
}

// baseName returns the last element of a file path or URL, so that a
// response names a model file without showing where it lives.
func baseName(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Base(strings.TrimRight(p, "/"))
}

// redactPaths replaces, in msg, each of paths (and its absolute form) by
// its base name, and any remaining mention of their directories by
// nothing: error messages from the file system name the full path.
func redactPaths(msg string, paths ...string) string {
	var forms, dirs []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		forms = append(forms, p)
		if abs, err := filepath.Abs(p); err == nil && abs != p {
			forms = append(forms, abs)
		}
	}
	for _, f := range forms {
		if d := filepath.Dir(f); d != "." && d != string(filepath.Separator) {
			dirs = append(dirs, d+string(filepath.Separator))
		}
	}
	// Longest first, so that a relative path does not spoil the absolute
	// form that contains it.
	longestFirst := func(a, b string) int { return len(b) - len(a) }
	slices.SortFunc(forms, longestFirst)
	slices.SortFunc(dirs, longestFirst)
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, filepath.Base(f))
	}
	for _, d := range dirs {
		msg = strings.ReplaceAll(msg, d, "")
	}
	return msg
}
