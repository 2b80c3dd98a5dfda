// Package grafana holds dagmm's Grafana dashboard (dashboard.json; the
// Helm chart ships a copy, charts/dagmm/files/dashboard.json, which
// charts/check keeps equal). Its tests check the dashboard against the
// series a real dagmm serve exports.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dagmm/dagmm/internal/dashpic"
	"github.com/dagmm/dagmm/internal/promtest"
)

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      string `json:"query"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// target is one query of the dashboard: a panel's target or a variable's.
type target struct {
	where string // panel and refId, or variable
	expr  string // PromQL, with Grafana's variables
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// targets returns every query of d: each panel's targets (rows' panels
// included), and each query variable's selector.
func targets(t *testing.T, d dashboard) []target {
	t.Helper()
	var out []target
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, target{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Query)
			continue
		}
		out = append(out, target{"variable " + v.Name, m[1]})
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

// instantiate replaces Grafana's variables in expr by what they are with
// All selected, and the rate interval by 1m.
func instantiate(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1m",
		"$namespace", ".*", "$job", ".*", "$host", ".*",
	).Replace(expr)
}

var (
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	reMatchers = regexp.MustCompile(`\{[^}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	keywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names expr selects: the identifiers left
// once strings, label matchers, ranges and grouping clauses are taken out,
// other than functions (followed by a parenthesis) and keywords.
func metricNames(expr string) []string {
	e := reString.ReplaceAllString(expr, `""`)
	e = reMatchers.ReplaceAllString(e, " ")
	e = reRange.ReplaceAllString(e, " ")
	e = reGrouping.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range reIdent.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.") {
			continue // part of a number, such as 1e3
		}
		if strings.HasPrefix(strings.TrimSpace(e[loc[1]:]), "(") || slices.Contains(keywords, strings.ToLower(id)) {
			continue
		}
		names = append(names, id)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`dagmm_host_energy`, []string{"dagmm_host_energy"}},
		{`max by (host) (dagmm_host_energy{job=~"a}b", host=~"$host"})`, []string{"dagmm_host_energy"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))`, []string{"x_bucket"}},
		{`a / on (host) group_left (feature) b > 1e3 and c offset 5m`, []string{"a", "b", "c"}},
		{`sum without (instance) (rate(y_total[5m])) * 100`, []string{"y_total"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// exported starts a real dagmm serve with the trained four-metric model,
// scores the scenario of the README's picture through it (anomalies
// included, so that every per-host series exists), and returns the
// service and the names it exports: each family's, and a histogram's
// _bucket, _sum and _count series.
func exported(t *testing.T) (*dashpic.Service, map[string]bool) {
	t.Helper()
	ctx := context.Background()
	s := dashpic.StartTest(t, filepath.Join("..", "..", "model", "testdata", "metrics4.dagmm.json"), nil)
	if _, err := dashpic.DefaultScenario().Run(ctx, s); err != nil {
		t.Fatal(err)
	}
	mfs, err := s.Serve.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
		}
	}
	return s, names
}

// TestDashboard: the variables are those a user picks a data source and
// hosts with; every query names only series a real dagmm serve exports,
// and the per-host series of the contract all have a panel; with promtool,
// every query parses as PromQL; with Prometheus, every query of a real
// Prometheus scraping the real service returns data.
func TestDashboard(t *testing.T) {
	d := load(t)
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("variable datasource %+v, want a prometheus data source variable", v)
	}
	if v := vars["host"]; v.Type != "query" || !strings.HasPrefix(v.Query, "label_values(dagmm_host_energy") ||
		!strings.HasSuffix(v.Query, ", host)") || !v.Multi || !v.IncludeAll {
		t.Errorf("variable host %+v, want label_values(dagmm_host_energy..., host), multi, include all", v)
	}
	svc, names := exported(t)
	tgs := targets(t, d)
	used := map[string]bool{}
	for _, tg := range tgs {
		ms := metricNames(instantiate(tg.expr))
		if len(ms) == 0 {
			t.Errorf("%s: %q names no metric", tg.where, tg.expr)
		}
		for _, m := range ms {
			used[m] = true
			if !names[m] {
				t.Errorf("%s: %q reads %s, which dagmm serve does not export", tg.where, tg.expr, m)
			}
		}
	}
	for _, m := range []string{"dagmm_host_energy", "dagmm_host_threshold", "dagmm_host_severity",
		"dagmm_host_anomaly", "dagmm_host_anomalies_total", "dagmm_host_explanation"} {
		if !used[m] {
			t.Errorf("no panel reads %s", m)
		}
	}
	t.Run("promtool", func(t *testing.T) { checkPromQL(t, tgs) })
	t.Run("prometheus", func(t *testing.T) { checkData(t, svc, tgs) })
}

// checkPromQL has promtool parse every query, as recording rules.
func checkPromQL(t *testing.T, tgs []target) {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, tg := range tgs {
		q, _ := json.Marshal(instantiate(tg.expr)) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dagmm_dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtest.Promtool(t, "check", "rules", path); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, b.String())
	}
}

// checkData has a real Prometheus scrape the service and answer every
// query: each must return data.
func checkData(t *testing.T, svc *dashpic.Service, tgs []target) {
	p := promtest.Start(t, promtest.Options{Targets: []string{strings.TrimPrefix(svc.URL, "http://")}})
	// Rates and increases need two scrapes in their range.
	deadline := time.Now().Add(20 * time.Second)
	for _, tg := range tgs {
		q := instantiate(tg.expr)
		for {
			res, err := p.Query(q)
			if err == nil && len(res) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %s: no data (%v)", tg.where, q, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The host variable lists the scenario's hosts.
	res, err := p.Query(`group by (host) (dagmm_host_energy)`)
	var hosts []string
	for _, r := range res {
		hosts = append(hosts, r.Metric["host"])
	}
	slices.Sort(hosts)
	if want := slices.Sorted(slices.Values(dashpic.DefaultScenario().Hosts)); err != nil || !slices.Equal(hosts, want) {
		t.Errorf("hosts %v (%v), want %v", hosts, err, want)
	}
}
