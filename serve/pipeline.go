package serve

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dagmm/dagmm/model"
	"github.com/dagmm/dagmm/serve/ingest"
)

// pipeline turns a message into events, knowing nothing of the transport:
// it decodes the samples, resolves each host's model, scores, explains
// the anomalies and encodes the events, leaving them in the worker for
// the caller to publish. It is safe for concurrent use, each goroutine
// with its own worker.
type pipeline struct {
	models *modelSet
	method model.Method // explanation method
	ev     eventConfig
	// samples and anomalies count what was scored.
	samples, anomalies prometheus.Counter
	// learning counts the samples of hosts without a model (fleet mode).
	learning prometheus.Counter
}

// eventConfig says which events a scored sample makes and where they go.
type eventConfig struct {
	anomalyPrefix string // anomalies go to "<anomalyPrefix>.<host>"
	scorePrefix   string // with publishScores, every score to "<scorePrefix>.<host>"
	publishScores bool
	ids           bool // events carry message ids: they go to an event stream
}

// Dead-letter reason kinds (the HeaderReasonKind values and the reason
// label of dagmm_dead_letters_total).
const (
	reasonDecode  = "decode"
	reasonScore   = "score"
	reasonPublish = "publish"
)

// scoreMessage decodes one message and scores its samples, leaving the
// events to publish in w. On failure it returns the dead-letter reason
// kind and the error.
func (p *pipeline) scoreMessage(w *worker, data []byte, src *Source, received time.Time) (string, error) {
	dec := p.models.def()
	samples, err := dec.dec.Decode(data, received)
	if err != nil {
		return reasonDecode, err
	}
	// The decoder checked the hosts the samples give; one taken from the
	// subject goes into event subjects too, and picks the model.
	fromSubject := ""
	for i := range samples {
		if samples[i].Host != "" {
			continue
		}
		if fromSubject == "" {
			fromSubject = hostOf("", src.Subject)
			if err := ingest.CheckHost(fromSubject); err != nil {
				return reasonDecode, fmt.Errorf("serve: sample %d has no host, and the subject's last token cannot stand for one: %w", i, err)
			}
		}
		samples[i].Host = fromSubject
	}
	if err := p.scoreSamples(w, dec, samples, src); err != nil {
		return reasonScore, err
	}
	return "", nil
}

// scoreSamples scores samples decoded with dec's decoder and leaves the
// events to publish in w. src is the message the samples came from; it is
// nil for vectors assembled from several messages (Telegraf), whose events
// then carry no source. On failure w holds no events.
func (p *pipeline) scoreSamples(w *worker, dec *modelState, samples []ingest.Sample, src *Source) error {
	w.buf, w.msgs = w.buf[:0], w.msgs[:0]
	baseID := ""
	if src != nil {
		baseID = src.ID
	}
	withID := p.ev.ids && (baseID != "" || src == nil)
	anomalies := 0
	w.learning = 0
	err := w.score(p.models, dec, samples, func(st *modelState, i int, r *model.Result) error {
		if r == nil || (!r.Anomaly && !p.ev.publishScores) {
			return nil
		}
		host := samples[i].Host
		id := ""
		if src != nil {
			src.Index = i
			if baseID != "" {
				src.ID = baseID + ":" + strconv.Itoa(i)
				id = src.ID
			}
		} else if withID {
			// An assembled vector is one host's interval: that is its key.
			id = ingest.HostToken(host) + ":" + strconv.FormatInt(samples[i].TS.UnixNano(), 10)
		}
		if r.Anomaly {
			anomalies++
			ex, err := w.explain(st, i, p.method)
			if err != nil {
				return err
			}
			w.event(st, p.ev.anomalyPrefix, "a:", id, withID, &samples[i], r, ex, src)
		}
		if p.ev.publishScores {
			w.event(st, p.ev.scorePrefix, "s:", id, withID, &samples[i], r, nil, src)
		}
		return nil
	})
	if src != nil {
		src.ID = baseID
	}
	if err != nil {
		w.msgs = w.msgs[:0]
		return err
	}
	if w.learning > 0 && p.learning != nil {
		p.learning.Add(float64(w.learning))
	}
	p.samples.Add(float64(len(samples) - w.learning))
	if anomalies > 0 {
		p.anomalies.Add(float64(anomalies))
	}
	return nil
}

// event encodes one event of sample x into w's buffer, for
// "<prefix>.<host>", with the message id kind+id when withID.
func (w *worker) event(st *modelState, prefix, kind, id string, withID bool, x *ingest.Sample, r *model.Result, ex *model.Explanation, src *Source) {
	start := len(w.buf)
	w.buf = st.appendScore(w.buf, x.Host, x.TS, r, true, ex, src)
	om := outMsg{subject: w.subj.get(prefix, x.Host), start: start, end: len(w.buf)}
	if withID {
		om.id = kind + id
	}
	w.msgs = append(w.msgs, om)
}
