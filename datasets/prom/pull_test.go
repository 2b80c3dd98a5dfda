package prom_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dagmm/dagmm/datasets"
	"github.com/dagmm/dagmm/datasets/prom"
	"github.com/dagmm/dagmm/internal/promtest"
)

func TestChunks(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		span  time.Duration
		step  time.Duration
		want  int
		lastN int // points in the last chunk
	}{
		{"one point", 0, time.Second, 1, 1},
		{"exactly the limit", (prom.MaxPoints - 1) * time.Second, time.Second, 1, prom.MaxPoints},
		{"one over", prom.MaxPoints * time.Second, time.Second, 2, 1},
		{"a week at 15s", 7 * 24 * time.Hour, 15 * time.Second, 4, 7*24*240 + 1 - 3*prom.MaxPoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := prom.Range{Start: t0, End: t0.Add(tt.span), Step: tt.step}
			cs := r.Chunks()
			if len(cs) != tt.want {
				t.Fatalf("%d chunks, want %d", len(cs), tt.want)
			}
			total := 0
			for i, c := range cs {
				n := int(c.End.Sub(c.Start)/c.Step) + 1
				if n > prom.MaxPoints {
					t.Errorf("chunk %d has %d points", i, n)
				}
				if i > 0 && !c.Start.Equal(cs[i-1].End.Add(tt.step)) {
					t.Errorf("chunk %d starts at %v, previous ends at %v", i, c.Start, cs[i-1].End)
				}
				total += n
			}
			if got := int(cs[len(cs)-1].End.Sub(cs[len(cs)-1].Start)/tt.step) + 1; got != tt.lastN {
				t.Errorf("last chunk has %d points, want %d", got, tt.lastN)
			}
			if want := int(tt.span/tt.step) + 1; total != want || !cs[len(cs)-1].End.Equal(r.End) {
				t.Errorf("%d points ending %v, want %d ending %v", total, cs[len(cs)-1].End, want, r.End)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t0 := time.Now()
	ok := prom.Range{Features: prom.NodeExporter("", 0), Start: t0, End: t0.Add(time.Hour), Step: time.Second}
	bad := map[string]func(*prom.Range){
		"no features":  func(r *prom.Range) { r.Features = nil },
		"zero step":    func(r *prom.Range) { r.Step = 0 },
		"end <= start": func(r *prom.Range) { r.End = r.Start },
		"dup feature":  func(r *prom.Range) { r.Features = append(r.Features, r.Features[0]) },
		"host feature": func(r *prom.Range) { r.Features = []prom.Feature{{Name: "host", Expr: "up"}} },
		"one point":    func(r *prom.Range) { r.MaxPoints = 1 },
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range bad {
		r := ok
		mutate(&r)
		if r.Validate() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNodeExporterHostLabel(t *testing.T) {
	for _, f := range prom.NodeExporter("node", 30*time.Second) {
		if !strings.Contains(f.Expr, "by (node)") || strings.Contains(f.Expr, "instance") {
			t.Errorf("%s: %s does not aggregate by node only", f.Name, f.Expr)
		}
		if strings.Contains(f.Expr, "rate(") && !strings.Contains(f.Expr, "[30s]") {
			t.Errorf("%s: %s without the 30s window", f.Name, f.Expr)
		}
	}
}

// TestPullNodeExporter pulls the four features from a real Prometheus
// scraping a real node_exporter every second.
func TestPullNodeExporter(t *testing.T) {
	node := promtest.StartNodeExporter(t)
	p := promtest.Start(t, promtest.Options{Targets: []string{node}})
	a, err := prom.NewAPI(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	time.Sleep(6 * time.Second)
	// End 1.5 s ago, so that no scrape lands in the range between pulls.
	r := prom.Range{Features: prom.NodeExporter("", 0), Start: start, End: time.Now().Add(-1500 * time.Millisecond), Step: time.Second}
	tab, err := prom.Pull(ctx, a, r, func(w string) { t.Log("warning:", w) })
	if err != nil {
		t.Fatal(err)
	}
	// The same range in queries of 3 points gives the same table.
	split := r
	split.MaxPoints = 3
	if n := len(split.Chunks()); n < 2 {
		t.Fatalf("%d chunks", n)
	}
	tab2, err := prom.Pull(ctx, a, split, nil)
	if err != nil {
		t.Fatal(err)
	}
	var csv1, csv2 bytes.Buffer
	if err := datasets.WriteCSV(&csv1, tab); err != nil {
		t.Fatal(err)
	}
	if err := datasets.WriteCSV(&csv2, tab2); err != nil {
		t.Fatal(err)
	}
	if csv1.String() != csv2.String() {
		t.Errorf("split pull differs:\n%s\nwhole:\n%s", &csv2, &csv1)
	}
	want := []string{"timestamp", "host", "cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}
	if got := tab.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("columns %v, want %v", got, want)
	}
	if tab.Len() < 3 {
		t.Fatalf("%d rows after 4.5s at 1s steps, want at least 3", tab.Len())
	}
	hosts, _ := tab.Column("host")
	mem, _ := tab.Column("mem_usage")
	for i := range tab.Len() {
		if h := hosts.Text(i); h != node {
			t.Fatalf("row %d: host %q, want %q", i+1, h, node)
		}
		if v, _ := mem.Float64(i); v <= 0 || v >= 100 {
			t.Errorf("row %d: mem_usage %v outside (0, 100)", i+1, v)
		}
	}

	errs := []struct {
		name string
		f    prom.Feature
		want error
	}{
		{"several series", prom.Feature{Name: "x", Expr: `node_cpu_seconds_total`}, prom.ErrSeveralSeries},
		{"no data", prom.Feature{Name: "x", Expr: `no_such_metric`}, prom.ErrNoData},
		{"no host label", prom.Feature{Name: "x", Expr: `sum(up)`}, prom.ErrNoHostLabel},
	}
	for _, tt := range errs {
		r := r
		r.Features = []prom.Feature{tt.f}
		if _, err := prom.Pull(ctx, a, r, nil); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "feature x") {
			t.Errorf("%s: %v, want %v naming the feature", tt.name, err, tt.want)
		}
	}

	down, err := prom.NewAPI("http://" + promtest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prom.Pull(ctx, down, r, nil); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("unreachable server: %v, want connection refused", err)
	}
}
