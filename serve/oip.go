package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/labstack/echo/v4"

	"github.com/dagmm/dagmm/internal/buildinfo"
	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// The Open Inference Protocol v2 (KServe) over REST:
// https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol

// InferRequest is the body of POST /v2/models/{name}/infer.
//
// The samples come either as one input tensor of shape [n, d] (any name)
// whose columns are the model's features in order, or as d inputs named
// after the features, each of shape [n] or [n, 1]. Data may be flat (row
// major) or nested. Datatype FP64 or FP32. Parameters, of the request and
// of its tensors, are accepted and ignored (not decoded).
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []InferTensor     `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// InferTensor is one input or output tensor.
type InferTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// RequestedOutput names an output the client wants.
type RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// Outputs of the infer endpoint. Without "outputs" in the request, all are
// returned. Energies that are +Inf (and expected values that overflow) are
// clamped to ±math.MaxFloat64, since FP64 tensors in JSON cannot hold
// infinities.
const (
	OutputEnergy   = "energy"   // FP64 [n]
	OutputAnomaly  = "anomaly"  // BOOL [n]
	OutputSeverity = "severity" // FP64 [n]: 0 to 100, above 50 for an anomaly (see model.Calibration.Severity)
	OutputExpected = "expected" // FP64 [n, d]: reconstruction in feature units
	OutputShare    = "share"    // FP64 [n, d]: share of the reconstruction error (model.MethodShare)
)

var allOutputs = []string{OutputEnergy, OutputAnomaly, OutputSeverity, OutputExpected, OutputShare}

// errInfer is wrapped by every error decodeInfer returns.
var errInfer = errors.New("serve: invalid inference request")

// inferBatch is a decoded inference request: n samples row-major in x,
// and the outputs wanted.
type inferBatch struct {
	id      string
	n       int
	x       []float64
	outputs []string
}

func inferErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInfer, fmt.Sprintf(format, args...))
}

// decodeInfer decodes an inference request body for a model with the
// given features, accepting at most maxSamples samples, appending the
// samples (row-major, n × len(features)) to buf[:0]. Errors wrap errInfer
// and name the input, the element and the feature.
func decodeInfer(body []byte, features []string, maxSamples int, buf []float64) (*inferBatch, *InferRequest, error) {
	d := len(features)
	req, err := readInfer(body, max(d, 1))
	if err != nil {
		return nil, nil, err
	}
	if len(req.Inputs) == 0 {
		return nil, nil, inferErr(`no "inputs": want one tensor of shape [n, %d], or one input per feature`, d)
	}
	b := &inferBatch{id: req.ID}
	for _, in := range req.Inputs {
		switch in.Datatype {
		case "FP64", "FP32":
		default:
			return nil, nil, inferErr("input %q: datatype %q, want FP64 (or FP32)", in.Name, in.Datatype)
		}
		for _, s := range in.Shape {
			if s < 0 {
				return nil, nil, inferErr("input %q: shape %v has a negative dimension", in.Name, in.Shape)
			}
		}
	}
	if len(req.Inputs) == 1 {
		in := &req.Inputs[0]
		if len(in.Shape) != 2 || in.Shape[1] != int64(d) {
			return nil, nil, inferErr("input %q: shape %v, want [n, %d] (n samples of the model's %d features: %s)",
				in.Name, in.Shape, d, d, strings.Join(features, ", "))
		}
		if in.Shape[0] > int64(maxSamples) {
			return nil, nil, inferErr("input %q: %d samples, more than the limit of %d", in.Name, in.Shape[0], maxSamples)
		}
		b.n = int(in.Shape[0])
		x, err := parseTensor(in.Data, []int{b.n, d}, buf[:0])
		if err != nil {
			return nil, nil, inferErr("input %q: %v", in.Name, tensorProblem(err, d, features))
		}
		b.x = x
	} else {
		if err := b.columns(req.Inputs, features, maxSamples, buf); err != nil {
			return nil, nil, err
		}
	}
	seen := make(map[string]bool)
	for _, o := range req.Outputs {
		if !isOutput(o.Name) {
			return nil, nil, inferErr("output %q is unknown; this model gives %s", o.Name, strings.Join(allOutputs, ", "))
		}
		if seen[o.Name] {
			return nil, nil, inferErr("output %q requested twice", o.Name)
		}
		seen[o.Name] = true
		b.outputs = append(b.outputs, o.Name)
	}
	if len(b.outputs) == 0 {
		b.outputs = allOutputs
	}
	return b, req, nil
}

// The wire forms decodeInfer reads: parameters are skipped, shapes are
// short, and inputs and outputs are read one at a time up to a bound, so
// that no body makes the decoder allocate much more than its own size (a
// parameters member of 8 MiB decoded as map[string]any took 400 MB).
type (
	inferWire struct {
		ID      string          `json:"id"`
		Inputs  json.RawMessage `json:"inputs"`
		Outputs json.RawMessage `json:"outputs"`
	}
	tensorWire struct {
		Name     string          `json:"name"`
		Shape    json.RawMessage `json:"shape"`
		Datatype string          `json:"datatype"`
		Data     json.RawMessage `json:"data"`
	}
	outputWire struct {
		Name string `json:"name"`
	}
)

// maxShapeBytes bounds the JSON of a tensor's shape: two dimensions.
const maxShapeBytes = 64

// readInfer decodes an inference request of at most maxInputs inputs.
// Parameters are not kept.
func readInfer(body []byte, maxInputs int) (*InferRequest, error) {
	var w inferWire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, inferErr("%s", jsonProblem(err))
	}
	req := &InferRequest{ID: w.ID}
	inputs, err := readArray[tensorWire](w.Inputs, maxInputs, "inputs")
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		t := InferTensor{Name: in.Name, Datatype: in.Datatype, Data: in.Data}
		if len(in.Shape) > maxShapeBytes {
			return nil, inferErr("input %q: shape of %d bytes: want [n, d] or [n]", in.Name, len(in.Shape))
		}
		if len(in.Shape) > 0 {
			if err := json.Unmarshal(in.Shape, &t.Shape); err != nil {
				return nil, inferErr("input %q: shape: %s", in.Name, jsonProblem(err))
			}
		}
		req.Inputs = append(req.Inputs, t)
	}
	outputs, err := readArray[outputWire](w.Outputs, len(allOutputs), "outputs")
	if err != nil {
		return nil, err
	}
	for _, o := range outputs {
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name})
	}
	return req, nil
}

// readArray decodes the JSON array raw (absent or null: none) of at most
// limit elements.
func readArray[T any](raw json.RawMessage, limit int, what string) ([]T, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, inferErr("%q is not an array", what)
	}
	var out []T
	for dec.More() {
		if len(out) == limit {
			return nil, inferErr("more than %d %s", limit, what)
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return nil, inferErr("%s element %d: %s", what, len(out), jsonProblem(err))
		}
		out = append(out, v)
	}
	return out, nil
}

// columns decodes the form with one input per feature.
func (b *inferBatch) columns(inputs []InferTensor, features []string, maxSamples int, buf []float64) error {
	d := len(features)
	if len(inputs) != d {
		return inferErr("%d inputs: want one tensor of shape [n, %d], or %d inputs named after the features (%s)",
			len(inputs), d, d, strings.Join(features, ", "))
	}
	index := make(map[string]int, d)
	for j, f := range features {
		index[f] = j
	}
	cols := make([][]float64, d)
	n := -1
	for _, in := range inputs {
		j, ok := index[in.Name]
		if !ok {
			return inferErr("input %q is not a feature of the model (%s)", in.Name, strings.Join(features, ", "))
		}
		if cols[j] != nil {
			return inferErr("input %q given twice", in.Name)
		}
		if !(len(in.Shape) == 1 || (len(in.Shape) == 2 && in.Shape[1] == 1)) {
			return inferErr("input %q: shape %v, want [n] or [n, 1]", in.Name, in.Shape)
		}
		if n >= 0 && in.Shape[0] != int64(n) {
			return inferErr("input %q: %d samples, other inputs have %d", in.Name, in.Shape[0], n)
		}
		if in.Shape[0] > int64(maxSamples) {
			return inferErr("input %q: %d samples, more than the limit of %d", in.Name, in.Shape[0], maxSamples)
		}
		n = int(in.Shape[0])
		shape := []int{n}
		if len(in.Shape) == 2 {
			shape = append(shape, 1)
		}
		col, err := parseTensor(in.Data, shape, nil)
		if err != nil {
			return inferErr("input %q: %v", in.Name, err)
		}
		cols[j] = col
	}
	x := buf[:0]
	if cap(x) < n*d {
		x = make([]float64, 0, n*d)
	}
	for i := range n {
		for j := range d {
			x = append(x, cols[j][i])
		}
	}
	b.n, b.x = n, x
	return nil
}

func isOutput(name string) bool {
	for _, o := range allOutputs {
		if o == name {
			return true
		}
	}
	return false
}

// jsonProblem describes an encoding/json error.
func jsonProblem(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at offset %d: %v", se.Offset, se)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return fmt.Sprintf("the body is a JSON %s, want an object", te.Value)
		}
		return fmt.Sprintf("field %q is a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	if err.Error() == "unexpected end of JSON input" {
		return "malformed JSON: unexpected end of input"
	}
	return err.Error()
}

// tensorError locates a problem in tensor data.
type tensorError struct {
	elem    int // element index in row-major order, or -1
	problem string
}

// Error implements error.
func (e *tensorError) Error() string {
	if e.elem >= 0 {
		return fmt.Sprintf("data element %d: %s", e.elem, e.problem)
	}
	return "data: " + e.problem
}

// tensorProblem adds the sample and feature to an element error of a
// [n, d] tensor.
func tensorProblem(err error, d int, features []string) error {
	te, ok := errors.AsType[*tensorError](err)
	if !ok || te.elem < 0 || d == 0 {
		return err
	}
	return fmt.Errorf("data element %d (sample %d, feature %q): %s", te.elem, te.elem/d, features[te.elem%d], te.problem)
}

// parseTensor parses tensor data of the given shape, flat or fully nested,
// appending the values in row-major order to dst. Every value must be a
// finite JSON number.
func parseTensor(data []byte, shape []int, dst []float64) ([]float64, error) {
	total := 1
	for _, s := range shape {
		total *= s
	}
	if cap(dst)-len(dst) < total {
		dst = append(make([]float64, 0, len(dst)+total), dst...)
	}
	p := tensorParser{data: data, out: dst, start: len(dst)}
	p.ws()
	if p.pos >= len(p.data) {
		return nil, &tensorError{-1, `no "data"`}
	}
	if p.data[p.pos] != '[' {
		return nil, &tensorError{-1, "want an array of numbers, got " + p.kind()}
	}
	// Flat when the first element is not an array.
	q := p.pos + 1
	for q < len(data) && isSpace(data[q]) {
		q++
	}
	var err error
	if q < len(data) && data[q] == '[' && len(shape) > 1 {
		err = p.nested(shape, 0)
	} else {
		err = p.flat(total)
	}
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return nil, &tensorError{-1, "unexpected data after the array"}
	}
	return p.out, nil
}

type tensorParser struct {
	data  []byte
	pos   int
	out   []float64
	start int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *tensorParser) ws() {
	for p.pos < len(p.data) && isSpace(p.data[p.pos]) {
		p.pos++
	}
}

// kind names the JSON value at p.pos for an error message.
func (p *tensorParser) kind() string {
	if p.pos >= len(p.data) {
		return "the end of the data"
	}
	switch c := p.data[p.pos]; {
	case c == '[':
		return "an array"
	case c == '{':
		return "an object"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return fmt.Sprintf("%q", c)
	}
}

// flat parses an array of total numbers.
func (p *tensorParser) flat(total int) error {
	p.pos++ // '['
	for i := 0; ; i++ {
		p.ws()
		if p.pos < len(p.data) && p.data[p.pos] == ']' && i == 0 {
			p.pos++
			break
		}
		if i >= total {
			return &tensorError{-1, fmt.Sprintf("more than the %d elements the shape holds", total)}
		}
		if err := p.number(); err != nil {
			return err
		}
		p.ws()
		if p.pos < len(p.data) && p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			break
		}
		return &tensorError{-1, "want ',' or ']' after element " + strconv.Itoa(len(p.out)-p.start-1) + ", got " + p.kind()}
	}
	if got := len(p.out) - p.start; got != total {
		return &tensorError{-1, fmt.Sprintf("%d elements, the shape holds %d", got, total)}
	}
	return nil
}

// nested parses an array of shape[level] elements, each an array of the
// remaining shape, down to numbers.
func (p *tensorParser) nested(shape []int, level int) error {
	if p.pos >= len(p.data) || p.data[p.pos] != '[' {
		return &tensorError{-1, fmt.Sprintf("want an array at nesting level %d, got %s", level+1, p.kind())}
	}
	p.pos++
	want := shape[level]
	count := 0
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
	} else {
		for {
			p.ws()
			if count >= want {
				return &tensorError{-1, fmt.Sprintf("an array at nesting level %d has more than %d elements", level+1, want)}
			}
			var err error
			if level+1 < len(shape) {
				err = p.nested(shape, level+1)
			} else {
				err = p.number()
			}
			if err != nil {
				return err
			}
			count++
			p.ws()
			if p.pos < len(p.data) && p.data[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.data) && p.data[p.pos] == ']' {
				p.pos++
				break
			}
			return &tensorError{-1, fmt.Sprintf("want ',' or ']' in an array at nesting level %d, got %s", level+1, p.kind())}
		}
	}
	if count != want {
		return &tensorError{-1, fmt.Sprintf("an array at nesting level %d has %d elements, the shape wants %d", level+1, count, want)}
	}
	return nil
}

// number parses one finite JSON number.
func (p *tensorParser) number() error {
	elem := len(p.out) - p.start
	start := p.pos
	d := p.data
	i := p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i - j
	}
	if n := digits(); n == 0 || (n > 1 && d[i-n] == '0') {
		if i == start || (i == start+1 && d[start] == '-') {
			return &tensorError{elem, "want a number, got " + p.kind()}
		}
		return &tensorError{elem, "malformed number"}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			return &tensorError{elem, "malformed number"}
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			return &tensorError{elem, "malformed number"}
		}
	}
	tok := d[start:i]
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil || math.IsInf(v, 0) {
		return &tensorError{elem, fmt.Sprintf("%s is beyond the range of float64", tok)}
	}
	p.out = append(p.out, v)
	p.pos = i
	return nil
}

// oipMetadata encodes the model metadata of GET /v2/models/{name}.
func oipMetadata(l *Loaded, d int) ([]byte, error) {
	type tensorMeta struct {
		Name     string  `json:"name"`
		Datatype string  `json:"datatype"`
		Shape    []int64 `json:"shape"`
	}
	meta := struct {
		Name       string         `json:"name"`
		Versions   []string       `json:"versions"`
		Platform   string         `json:"platform"`
		Inputs     []tensorMeta   `json:"inputs"`
		Outputs    []tensorMeta   `json:"outputs"`
		Parameters map[string]any `json:"parameters"`
	}{
		Name:     l.Name,
		Versions: []string{l.Version},
		Platform: "dagmm",
		Inputs:   []tensorMeta{{"input-0", "FP64", []int64{-1, int64(d)}}},
		Outputs: []tensorMeta{
			{OutputEnergy, "FP64", []int64{-1}},
			{OutputAnomaly, "BOOL", []int64{-1}},
			{OutputSeverity, "FP64", []int64{-1}},
			{OutputExpected, "FP64", []int64{-1, int64(d)}},
			{OutputShare, "FP64", []int64{-1, int64(d)}},
		},
		Parameters: map[string]any{
			"features":  l.Scorer.Features(),
			"threshold": Float(l.Scorer.Threshold()),
		},
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("serve: encode model metadata: %w", err)
	}
	return b, nil
}

// checkModel answers 404 unless the path names the serving model (and its
// version, when given).
func (s *Service) checkModel(c echo.Context) (*modelState, error) {
	st := s.models.def()
	name := c.Param("name")
	if name != st.l.Name {
		return nil, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("model %q not found; this server serves %q", name, st.l.Name))
	}
	if v := c.Param("version"); v != "" && v != st.l.Version {
		return nil, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("model %q has no version %q; the serving version is %q", name, v, st.l.Version))
	}
	return st, nil
}

func (s *Service) handleServerMetadata(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"name": "dagmm", "version": buildinfo.String(), "extensions": []string{}})
}

func (s *Service) handleLive(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"live": true})
}

func (s *Service) handleReady(c echo.Context) error {
	if !s.ready.Load() {
		return c.JSON(http.StatusServiceUnavailable, map[string]bool{"ready": false})
	}
	return c.JSON(http.StatusOK, map[string]bool{"ready": true})
}

func (s *Service) handleModelMetadata(c echo.Context) error {
	st, err := s.checkModel(c)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, st.oipMeta())
}

func (s *Service) handleModelReady(c echo.Context) error {
	if _, err := s.checkModel(c); err != nil {
		return err
	}
	return s.handleReady(c)
}

// handleInfer serves POST /v2/models/{name}/infer.
func (s *Service) handleInfer(c echo.Context) error {
	st, err := s.checkModel(c)
	if err != nil {
		return err
	}
	t0 := time.Now()
	body, release, err := s.readBody(c)
	if err != nil {
		return err
	}
	defer release()
	w := s.workers.Get().(*worker)
	defer s.workers.Put(w)
	b, _, err := decodeInfer(body, st.features, s.cfg.Scoring.MaxSamples, w.inferX)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	w.inferX = b.x[:0]
	d := st.d
	energy := grow(&w.energy, b.n)
	anomaly := growBool(&w.anomaly, b.n)
	expected := grow(&w.expected, b.n*d)
	share := grow(&w.share, b.n*d)
	samples := w.samplesView(b.x, b.n, d)
	anomalies := 0
	severity := grow(&w.pct, b.n)
	err = w.scoreWith(st, samples, func(_ *modelState, i int, r *model.Result) error {
		energy[i] = r.Energy
		anomaly[i] = r.Anomaly
		severity[i] = r.Severity
		copy(expected[i*d:(i+1)*d], r.Expected)
		copy(share[i*d:(i+1)*d], r.Share)
		if r.Anomaly {
			anomalies++
		}
		return nil
	})
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, strings.Replace(err.Error(), errScore.Error()+": ", "", 1))
	}
	// Sized once: about 25 bytes a number, 3 + 2d numbers a sample.
	out := slices.Grow(w.buf[:0], 300+b.n*25*(3+2*d))
	out = append(out, `{"model_name":`...)
	out = append(out, st.nameJSON...)
	out = append(out, `,"model_version":`...)
	out = append(out, st.versionJSON...)
	if b.id != "" {
		out = append(out, `,"id":`...)
		out = appendString(out, b.id)
	}
	out = append(out, `,"outputs":[`...)
	for k, name := range b.outputs {
		if k > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"name":"`...)
		out = append(out, name...)
		switch name {
		case OutputEnergy:
			out = appendTensor(out, "FP64", energy, b.n, 0)
		case OutputAnomaly:
			out = append(out, `","datatype":"BOOL","shape":[`...)
			out = strconv.AppendInt(out, int64(b.n), 10)
			out = append(out, `],"data":[`...)
			for i, a := range anomaly {
				if i > 0 {
					out = append(out, ',')
				}
				out = strconv.AppendBool(out, a)
			}
			out = append(out, "]}"...)
		case OutputSeverity:
			out = appendTensor(out, "FP64", severity, b.n, 0)
		case OutputExpected:
			out = appendTensor(out, "FP64", expected, b.n, d)
		case OutputShare:
			out = appendTensor(out, "FP64", share, b.n, d)
		}
	}
	out = append(out, "]}\n"...)
	w.buf = keepBuffer(out)
	s.met.samplesHTTP.Add(float64(b.n))
	if anomalies > 0 {
		s.met.anomaliesHTTP.Add(float64(anomalies))
	}
	s.met.scoreHTTP.Observe(since(t0))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, out)
}

// appendTensor appends the rest of an output tensor after its name: shape
// [n] when d is 0, else [n, d]; values clamped to ±MaxFloat64.
func appendTensor(b []byte, datatype string, v []float64, n, d int) []byte {
	b = append(b, `","datatype":"`...)
	b = append(b, datatype...)
	b = append(b, `","shape":[`...)
	b = strconv.AppendInt(b, int64(n), 10)
	if d > 0 {
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(d), 10)
	}
	b = append(b, `],"data":[`...)
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(x):
			x = 0
		case x > math.MaxFloat64:
			x = math.MaxFloat64
		case x < -math.MaxFloat64:
			x = -math.MaxFloat64
		}
		b = strconv.AppendFloat(b, x, 'g', -1, 64)
	}
	return append(b, "]}"...)
}

func grow(p *[]float64, n int) []float64 {
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	*p = (*p)[:n]
	return *p
}

func growBool(p *[]bool, n int) []bool {
	if cap(*p) < n {
		*p = make([]bool, n)
	}
	*p = (*p)[:n]
	return *p
}

// samplesView wraps the rows of x as samples for worker.score, reusing the
// worker's slice.
func (w *worker) samplesView(x []float64, n, d int) []ingest.Sample {
	if cap(w.samples) < n {
		w.samples = make([]ingest.Sample, n)
	}
	s := w.samples[:n]
	for i := range s {
		s[i] = ingest.Sample{Values: x[i*d : (i+1)*d : (i+1)*d]}
	}
	return s
}
