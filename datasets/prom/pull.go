package prom

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	pmodel "github.com/prometheus/common/model"

	"github.com/dagmm/dagmm/datasets"
)

// MaxPoints is the most points Prometheus returns per series for one
// query_range; [Pull] splits a longer range into several queries.
const MaxPoints = 11_000

// Errors of [Pull], wrapped with the feature and host they concern.
var (
	// ErrNoData: a feature's query returned no sample, or no timestamp
	// has every feature for any host.
	ErrNoData = errors.New("prom: no data")
	// ErrSeveralSeries: a feature's query returned more than one series
	// for one host; its expression must aggregate by the host label.
	ErrSeveralSeries = errors.New("prom: several series for one host")
	// ErrNoHostLabel: a series lacks the host label.
	ErrNoHostLabel = errors.New("prom: series without the host label")
)

// Range is what [Pull] fetches.
type Range struct {
	// Features are the columns, in order, each from its expression.
	Features []Feature
	// HostLabel is the label naming the host (DefaultHostLabel when
	// empty).
	HostLabel string
	// Start, End and Step are the query_range parameters: samples at
	// Start, Start+Step, ... up to End.
	Start, End time.Time
	Step       time.Duration
	// MaxPoints bounds the points of one query (MaxPoints, the server's
	// limit, when zero): longer ranges are split.
	MaxPoints int
}

// Validate reports what is wrong with r.
func (r Range) Validate() error {
	switch {
	case len(r.Features) == 0:
		return errors.New("prom: no features")
	case r.MaxPoints < 0 || r.MaxPoints == 1:
		return fmt.Errorf("prom: %d points per query: want 2 or more", r.MaxPoints)
	case r.Step <= 0:
		return fmt.Errorf("prom: step %v: want a positive duration", r.Step)
	case !r.End.After(r.Start):
		return fmt.Errorf("prom: range %s to %s: the end must be after the start", r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339))
	}
	seen := map[string]bool{"timestamp": true, "host": true}
	for _, f := range r.Features {
		if f.Name == "" || f.Expr == "" || seen[f.Name] {
			return fmt.Errorf("prom: feature %q: want a unique name other than timestamp and host, and an expression", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// Chunks splits [Start, End] into ranges of at most r.MaxPoints points
// each, every one starting one step after the previous one's end.
func (r Range) Chunks() []v1.Range {
	limit := r.MaxPoints
	if limit == 0 {
		limit = MaxPoints
	}
	span := time.Duration(limit-1) * r.Step
	var out []v1.Range
	for s := r.Start; !s.After(r.End); {
		e := s.Add(span)
		if e.After(r.End) {
			e = r.End
		}
		out = append(out, v1.Range{Start: s, End: e, Step: r.Step})
		s = e.Add(r.Step)
	}
	return out
}

// NewAPI returns a Prometheus HTTP API client for the server at url.
func NewAPI(url string) (v1.API, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prom: client for %s: %w", url, err)
	}
	return v1.NewAPI(c), nil
}

// Pull runs each feature's expression over r with query_range and joins the
// results per host and timestamp: one row for each host and timestamp at
// which every feature has a value (other timestamps are dropped), sorted by
// host then time. warn, when not nil, receives the server's warnings.
func Pull(ctx context.Context, a v1.API, r Range, warn func(string)) (*datasets.Table, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.HostLabel == "" {
		r.HostLabel = DefaultHostLabel
	}
	j := joiner{d: len(r.Features), rows: map[key][]float64{}}
	for i, f := range r.Features {
		n := 0
		for _, c := range r.Chunks() {
			got, err := queryRange(ctx, a, f, c, warn)
			if err != nil {
				return nil, err
			}
			k, err := j.add(i, f, r.HostLabel, got)
			if err != nil {
				return nil, err
			}
			n += k
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: feature %s: %s returned no sample from %s to %s", ErrNoData, f.Name, f.Expr,
				r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339))
		}
	}
	return j.table(r.Features)
}

func queryRange(ctx context.Context, a v1.API, f Feature, c v1.Range, warn func(string)) (pmodel.Matrix, error) {
	v, warnings, _, err := a.QueryRange(ctx, f.Expr, c)
	if err != nil {
		return nil, fmt.Errorf("prom: feature %s: query_range %s from %s to %s: %w", f.Name, f.Expr,
			c.Start.Format(time.RFC3339), c.End.Format(time.RFC3339), err)
	}
	if warn != nil {
		for _, w := range warnings {
			warn(fmt.Sprintf("feature %s: %s", f.Name, w))
		}
	}
	m, ok := v.(pmodel.Matrix)
	if !ok {
		return nil, fmt.Errorf("prom: feature %s: query_range returned a %s, want a matrix", f.Name, v.Type())
	}
	return m, nil
}

type key struct {
	host string
	ms   int64
}

// joiner gathers feature values per host and timestamp.
type joiner struct {
	d    int
	rows map[key][]float64
	// owner is the label set that gave each host its values of the current
	// feature, to report a second one.
	owner map[string]pmodel.Metric
	cur   int
}

func (j *joiner) add(fi int, f Feature, hostLabel string, m pmodel.Matrix) (int, error) {
	if j.owner == nil || j.cur != fi {
		j.owner, j.cur = map[string]pmodel.Metric{}, fi
	}
	n := 0
	for _, s := range m {
		host := string(s.Metric[pmodel.LabelName(hostLabel)])
		if host == "" {
			return 0, fmt.Errorf("%w %q: feature %s: series %s", ErrNoHostLabel, hostLabel, f.Name, s.Metric)
		}
		if prev, ok := j.owner[host]; ok && !prev.Equal(s.Metric) {
			return 0, fmt.Errorf("%w: feature %s, host %s: %s and %s (aggregate by %s in the expression)",
				ErrSeveralSeries, f.Name, host, prev, s.Metric, hostLabel)
		}
		j.owner[host] = s.Metric
		for _, p := range s.Values {
			k := key{host, int64(p.Timestamp)}
			row := j.rows[k]
			if row == nil {
				row = make([]float64, j.d)
				for i := range row {
					row[i] = math.NaN()
				}
				j.rows[k] = row
			}
			row[fi] = float64(p.Value)
			n++
		}
	}
	return n, nil
}

func (j *joiner) table(fs []Feature) (*datasets.Table, error) {
	keys := make([]key, 0, len(j.rows))
	for k, row := range j.rows {
		if !slices.ContainsFunc(row, math.IsNaN) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no host has every feature at one timestamp (%d host-timestamps with some)", ErrNoData, len(j.rows))
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.ms, b.ms)) })
	times := make([]time.Time, len(keys))
	hosts := make([]string, len(keys))
	cols := make([][]float64, j.d)
	for i := range cols {
		cols[i] = make([]float64, len(keys))
	}
	for r, k := range keys {
		times[r], hosts[r] = time.UnixMilli(k.ms).UTC(), k.host
		for i, v := range j.rows[k] {
			cols[i][r] = v
		}
	}
	out := []*datasets.Column{datasets.TimeColumn("timestamp", times), datasets.StringColumn("host", hosts)}
	for i, f := range fs {
		out = append(out, datasets.FloatColumn(f.Name, cols[i]))
	}
	return datasets.NewTable(out...)
}
