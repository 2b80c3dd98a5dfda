package serve

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// APIError is the JSON body of every error response:
//
//	{"error":"ingest: sample 3 (offset 412): feature \"disk_busy\": value is not a number: got a string","sample":3,"feature":"disk_busy","offset":412}
//
// Sample, Feature and Offset are set when the problem is in one sample,
// one feature or at one byte of the body.
type APIError struct {
	Error   string `json:"error"`
	Sample  *int   `json:"sample,omitempty"`
	Feature string `json:"feature,omitempty"`
	Offset  *int   `json:"offset,omitempty"`
}

// badRequest turns a decode or scoring error into a 400 naming the sample
// and feature.
func badRequest(err error) *echo.HTTPError {
	ae := APIError{Error: err.Error()}
	if se, ok := errors.AsType[*ingest.SampleError](err); ok {
		if se.Index >= 0 {
			ae.Sample = new(se.Index)
		}
		ae.Feature = se.Feature
		ae.Offset = new(se.Offset)
	} else if ie, ok := errors.AsType[*model.InputError](err); ok {
		if ie.Sample >= 0 {
			ae.Sample = new(ie.Sample)
		}
		ae.Feature = ie.Feature
	}
	return echo.NewHTTPError(http.StatusBadRequest, ae)
}

// routes builds the Echo instance.
func (s *Service) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	e.Use(s.observe, s.recover)
	e.POST("/v1/score", s.handleScore)
	e.GET("/v1/model", s.handleModel)
	e.POST("/v1/model/reload", s.handleReload, s.requireAdmin)
	if s.marks != nil {
		e.POST("/v1/false-alarms", s.handleFalseAlarm, s.requireAdmin)
	}
	if s.rw != nil {
		e.POST(RemoteWritePath, s.handleRemoteWrite)
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		Registry:          s.reg,
		EnableOpenMetrics: true,
	})))
	e.GET("/v2", s.handleServerMetadata)
	e.GET("/v2/health/live", s.handleLive)
	e.GET("/v2/health/ready", s.handleReady)
	e.GET("/v2/models/:name", s.handleModelMetadata)
	e.GET("/v2/models/:name/ready", s.handleModelReady)
	e.POST("/v2/models/:name/infer", s.handleInfer)
	e.GET("/v2/models/:name/versions/:version", s.handleModelMetadata)
	e.GET("/v2/models/:name/versions/:version/ready", s.handleModelReady)
	e.POST("/v2/models/:name/versions/:version/infer", s.handleInfer)
	return e
}

// routeLabels maps registered paths to themselves: the bounded set of
// handler label values.
func routeLabels(e *echo.Echo) map[string]string {
	m := make(map[string]string)
	for _, r := range e.Routes() {
		m[r.Path] = r.Path
	}
	return m
}

// observe counts requests and times them. It turns a handler's error into
// its response first, so that the status code is known.
func (s *Service) observe(next echo.HandlerFunc) echo.HandlerFunc {
	var once sync.Once
	var labels map[string]string
	return func(c echo.Context) error {
		once.Do(func() { labels = routeLabels(c.Echo()) })
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		handler, ok := labels[c.Path()]
		if !ok {
			handler = "unmatched"
		}
		s.met.httpRequests.WithLabelValues(handler, strconv.Itoa(c.Response().Status)).Inc()
		s.met.httpDuration.WithLabelValues(handler).Observe(since(start))
		return nil
	}
}

// recover turns a panic into a 500: a bug, never a reaction to input.
func (s *Service) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.met.httpPanics.Inc()
				s.log.Error("http handler panicked", "path", c.Path(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = echo.NewHTTPError(http.StatusInternalServerError, "internal error")
			}
		}()
		return next(c)
	}
}

// httpError writes every error as a JSON [APIError].
func (s *Service) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	body := APIError{Error: "internal error"}
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		code = he.Code
		switch m := he.Message.(type) {
		case APIError:
			body = m
		case string:
			body.Error = m
		default:
			body.Error = fmt.Sprint(m)
		}
		if code == http.StatusNotFound && body.Error == "Not Found" {
			body.Error = "not found: " + c.Request().Method + " " + c.Request().URL.Path
		}
		if code == http.StatusMethodNotAllowed {
			body.Error = "method " + c.Request().Method + " not allowed on " + c.Request().URL.Path
		}
	} else {
		s.log.Error("http handler failed", "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(code)
	} else {
		err = c.JSON(code, body)
	}
	if err != nil {
		s.log.Debug("writing an error response failed", "err", err)
	}
}

// requireAdmin lets a request through only when an admin token is
// configured and the request carries it as a bearer token. The scheme is
// matched without regard to case (RFC 9110, section 11.1) and the token in
// constant time.
func (s *Service) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		want := s.cfg.HTTP.AdminToken
		if want == "" {
			return echo.NewHTTPError(http.StatusForbidden,
				"admin endpoints are disabled: start dagmm serve with --admin-token (or DAGMM_ADMIN_TOKEN) and send Authorization: Bearer TOKEN")
		}
		if !bearerMatches(c.Request().Header.Get(echo.HeaderAuthorization), want) {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="dagmm"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "a valid admin token is required: Authorization: Bearer TOKEN")
		}
		return next(c)
	}
}

// bearerMatches reports whether the Authorization header value h carries
// the bearer token want.
func bearerMatches(h, want string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing first keeps the comparison's time independent of the
	// lengths too.
	got, exp := sha256.Sum256([]byte(strings.TrimLeft(token, " "))), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}

// readBody reads the request body within Config.HTTP.MaxBodyBytes into a pooled
// buffer, once the body's bytes are taken from the budget of bytes in
// flight; release returns both.
func (s *Service) readBody(c echo.Context) (body []byte, release func(), err error) {
	r := c.Request()
	if r.ContentLength > s.cfg.HTTP.MaxBodyBytes {
		return nil, func() {}, echo.NewHTTPError(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, s.cfg.HTTP.MaxBodyBytes))
	}
	reserved, err := s.reserveBody(c)
	if err != nil {
		return nil, func() {}, err
	}
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	release = func() {
		if buf.Cap() <= 16<<20 {
			s.bodies.Put(buf)
		}
		s.budget.release(reserved)
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err = buf.ReadFrom(http.MaxBytesReader(c.Response(), r.Body, s.cfg.HTTP.MaxBodyBytes))
	if err != nil {
		release()
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, func() {}, echo.NewHTTPError(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.HTTP.MaxBodyBytes))
		}
		return nil, func() {}, echo.NewHTTPError(http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	if r.ContentLength < 0 { // the largest body was taken: give back the rest
		s.budget.release(reserved - int64(buf.Len()))
		reserved = int64(buf.Len())
	}
	return buf.Bytes(), release, nil
}

// responseSize estimates the bytes of a POST /v1/score response to
// samples of d features, with an explanation for each when all is set:
// about 200 bytes a result, its host, and 90 a feature explained.
func responseSize(samples []ingest.Sample, d int, all bool) int {
	per := 200
	if all {
		per += 90 * d
	}
	n := 100 + len(samples)*per
	for i := range samples {
		n += len(samples[i].Host)
	}
	return n
}

// maxKeptBuffer bounds the response buffer a pooled HTTP worker keeps, so
// that the memory of one large response is not held after it is written.
const maxKeptBuffer = 1 << 20

// keepBuffer returns b emptied, or nil when it is too large to keep.
func keepBuffer(b []byte) []byte {
	if cap(b) > maxKeptBuffer {
		return nil
	}
	return b[:0]
}

// Explanation modes of POST /v1/score (query parameter "explain").
const (
	explainAll       = "all"       // every sample
	explainAnomalies = "anomalies" // anomalies only (default)
	explainNone      = "none"      // no explanation
)

// ScoreResponse is the body of a successful POST /v1/score: one result per
// sample, in request order (each an [Event] without the model fields and
// the source).
type ScoreResponse struct {
	Model        string  `json:"model"`
	ModelVersion string  `json:"model_version"`
	Threshold    Float   `json:"threshold"`
	Results      []Event `json:"results"`
}

// handleScore serves POST /v1/score: a sample or a batch in the JSON
// format of package ingest. The query parameter explain is anomalies
// (default), all or none, and method the explanation method (default
// Config.Scoring.ExplainMethod).
func (s *Service) handleScore(c echo.Context) error {
	start := time.Now()
	explain := c.QueryParam("explain")
	switch explain {
	case "":
		explain = explainAnomalies
	case explainAll, explainAnomalies, explainNone:
	default:
		return echo.NewHTTPError(http.StatusBadRequest,
			fmt.Sprintf("query parameter explain is %q, want anomalies, all or none", explain))
	}
	method := s.method
	if q := c.QueryParam("method"); q != "" {
		m, err := model.ParseMethod(q)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "query parameter method: "+err.Error())
		}
		method = m
	}
	body, release, err := s.readBody(c)
	if err != nil {
		return err
	}
	defer release()
	st := s.models.def()
	samples, err := st.dec.Decode(body, start)
	if err != nil {
		return badRequest(err)
	}
	w := s.workers.Get().(*worker)
	defer s.workers.Put(w)
	// Sized once from the samples: growing by doubling would leave about
	// as much garbage as the response itself.
	b := slices.Grow(w.buf[:0], responseSize(samples, st.d, explain == explainAll))
	b = append(b, `{"model":`...)
	b = append(b, st.nameJSON...)
	b = append(b, `,"model_version":`...)
	b = append(b, st.versionJSON...)
	b = append(b, `,"threshold":`...)
	b = appendFloat(b, st.threshold)
	b = append(b, `,"results":[`...)
	anomalies := 0
	w.learning = 0
	err = w.score(s.models, st, samples, func(hst *modelState, i int, r *model.Result) error {
		if i > 0 {
			b = append(b, ',')
		}
		if r == nil { // the host has no model yet
			b = append(b, `{"host":`...)
			b = appendString(b, samples[i].Host)
			b = append(b, `,"ts":`...)
			b = appendTime(b, samples[i].TS)
			b = append(b, `,"learning":true}`...)
			return nil
		}
		var ex *model.Explanation
		if explain == explainAll || (explain == explainAnomalies && r.Anomaly) {
			var err error
			if ex, err = w.explain(hst, i, method); err != nil {
				return err
			}
		}
		// A result scored by another model than the response's names it.
		b = hst.appendScore(b, samples[i].Host, samples[i].TS, r, hst != st, ex, nil)
		if r.Anomaly {
			anomalies++
		}
		return nil
	})
	w.buf = keepBuffer(b)
	if err != nil {
		return badRequest(err)
	}
	b = append(b, "]}\n"...)
	if w.learning > 0 {
		s.met.samplesLearning.Add(float64(w.learning))
	}
	s.met.samplesHTTP.Add(float64(len(samples) - w.learning))
	if anomalies > 0 {
		s.met.anomaliesHTTP.Add(float64(anomalies))
	}
	s.met.scoreHTTP.Observe(since(start))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// handleModel serves GET /v1/model.
func (s *Service) handleModel(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.models.def().info())
}

// ReloadResponse is the body of POST /v1/model/reload.
type ReloadResponse struct {
	// Changed reports whether a new model is serving.
	Changed bool `json:"changed"`
	// Version is the version serving now; Previous the one before.
	Version  string `json:"version"`
	Previous string `json:"previous"`
	// Error says why the new model was refused (the status is then 500 and
	// the previous model keeps serving).
	Error string `json:"error,omitempty"`
}

// handleReload serves POST /v1/model/reload.
func (s *Service) handleReload(c echo.Context) error {
	// Drain a body, if any, so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Request().Body, 1<<16))
	prev := s.Model()
	l, changed, err := s.Reload(c.Request().Context(), "http")
	resp := ReloadResponse{Changed: changed, Version: l.Version, Previous: prev.Version}
	if err != nil {
		resp.Error = "reload failed, the previous model keeps serving: " + redactPaths(err.Error(), s.cfg.Model.Path, prev.Origin)
		return c.JSON(http.StatusInternalServerError, resp)
	}
	return c.JSON(http.StatusOK, resp)
}
