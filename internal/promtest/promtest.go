// Package promtest runs a real Prometheus and a real node_exporter for
// tests: Debian's prometheus and prometheus-node-exporter packages (.ci/run
// installs them), each started on a free loopback port with a temporary
// storage directory and killed when the test ends. A test calling [Start]
// or [StartNodeExporter] is skipped, with a message naming the package to
// install, when the binary is absent.
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary paths of Debian's packages; the PATH is searched too.
const (
	PrometheusBinary   = "prometheus"
	NodeExporterBinary = "prometheus-node-exporter"
	PromtoolBinary     = "promtool"
)

// Interval is the scrape and rule evaluation interval [Start] configures.
const Interval = time.Second

// Options configures [Start].
type Options struct {
	// Targets are host:port addresses scraped as job "node" every
	// Interval (typically a node_exporter from [StartNodeExporter]).
	Targets []string
	// RuleFiles are paths of rule files Prometheus loads, evaluated every
	// Interval.
	RuleFiles []string
	// RemoteWrite is the remote_write section of prometheus.yml, YAML
	// indented as a top-level key's value (a list), or empty for none.
	RemoteWrite string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// URL is its base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Config is the prometheus.yml it runs with.
	Config string
}

// Lookup returns the path of a binary, or "" when it is not installed.
func Lookup(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// Require returns the path of a binary, skipping t when it is absent.
func Require(t testing.TB, name string) string {
	t.Helper()
	p := Lookup(name)
	if p == "" {
		pkg := name
		if name == PromtoolBinary {
			pkg = "prometheus"
		}
		t.Skipf("%s is not installed (apt-get install -y %s; .ci/run does)", name, pkg)
	}
	return p
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// StartNodeExporter starts node_exporter on a free loopback port and
// returns its address.
func StartNodeExporter(t testing.TB) string {
	t.Helper()
	addr, _ := StartNodeExporterStop(t)
	return addr
}

// StartNodeExporterStop is [StartNodeExporter] that also returns a function
// killing node_exporter before the test ends (its series then go stale).
func StartNodeExporterStop(t testing.TB) (addr string, stop func()) {
	t.Helper()
	bin := Require(t, NodeExporterBinary)
	addr = FreeAddr(t)
	stop = run(t, "node_exporter", bin, "http://"+addr+"/metrics",
		"--web.listen-address="+addr,
		// The collectors below are slow or noisy in containers and feed
		// none of dagmm's features.
		"--no-collector.hwmon", "--no-collector.thermal_zone", "--no-collector.rapl",
		"--no-collector.systemd", "--no-collector.btrfs", "--no-collector.zfs")
	return addr, stop
}

// StartNodeExporterArgs starts node_exporter on a free loopback port with
// args added to the listen address (e.g. --path.procfs to read a /proc the
// test writes), and returns its address.
func StartNodeExporterArgs(t testing.TB, args ...string) string {
	t.Helper()
	bin := Require(t, NodeExporterBinary)
	addr := FreeAddr(t)
	run(t, "node_exporter", bin, "http://"+addr+"/metrics", append([]string{"--web.listen-address=" + addr}, args...)...)
	return addr
}

// Start starts Prometheus on a free loopback port with the given options,
// a 1 s scrape and evaluation interval and a temporary storage directory,
// and returns once every target has been scraped.
func Start(t testing.TB, o Options) *Prometheus {
	t.Helper()
	bin := Require(t, PrometheusBinary)
	dir := t.TempDir()
	cfg := Config(o)
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	base := "http://" + addr
	run(t, "prometheus", bin, base+"/-/ready",
		"--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	p := &Prometheus{URL: base, Config: cfg}
	if len(o.Targets) > 0 {
		p.waitUp(t, len(o.Targets))
	}
	return p
}

// waitUp waits until n targets have been scraped: Prometheus hands its
// first targets to the scrapers about 5 s after it is ready.
func (p *Prometheus) waitUp(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	q := p.URL + "/api/v1/query?query=" + url.QueryEscape("count(up == 1)")
	want := fmt.Sprintf(`"%d"]`, n)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(q); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(want)) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus at %s: %d targets not up after 30s", p.URL, n)
}

// Config returns the prometheus.yml [Start] writes for o.
func Config(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", Interval, Interval)
	if len(o.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range o.RuleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	if len(o.Targets) > 0 {
		b.WriteString("scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets:\n")
		for _, tg := range o.Targets {
			fmt.Fprintf(&b, "          - %q\n", tg)
		}
	}
	if o.RemoteWrite != "" {
		b.WriteString("remote_write:\n" + o.RemoteWrite)
		if !strings.HasSuffix(o.RemoteWrite, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// run starts bin with args, waits until ready answers 200 and has the
// process killed at cleanup, or earlier by the function it returns. Its
// output is logged when the test fails.
func run(t testing.TB, name, bin, ready string, args ...string) (stop func()) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if err := get(ctx, ready); err == nil {
			return stop
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before it was ready (%v):\n%s", name, err, out.String())
		case <-ctx.Done():
			t.Fatalf("%s not ready at %s after 30s", name, ready)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// Promtool runs promtool with args and returns its combined output,
// skipping t when promtool is absent.
func Promtool(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := Require(t, PromtoolBinary)
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// RemoteWriteFeatures returns a remote_write section for [Options] sending
// only dagmm's recorded feature series to url, with the relabelling of
// deploy/prometheus/prometheus.yml and a 1 s batch deadline.
func RemoteWriteFeatures(url string) string {
	return `  - url: ` + url + `
    write_relabel_configs:
      - source_labels: [__name__]
        regex: 'dagmm:(cpu_usage|mem_usage|disk_busy|net_in_bps)'
        action: keep
    queue_config:
      batch_send_deadline: 1s
    metadata_config:
      send: false
`
}

// Capture is a loopback HTTP server keeping the remote write request
// bodies it receives (answering 204), for tests of what Prometheus sends.
type Capture struct {
	// URL is where Prometheus should write, e.g.
	// http://127.0.0.1:40123/api/v1/write.
	URL string

	mu     sync.Mutex
	bodies [][]byte
	header http.Header
}

// CaptureRemoteWrite starts a [Capture], closed at cleanup.
func CaptureRemoteWrite(t testing.TB) *Capture {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Capture{URL: "http://" + l.Addr().String() + "/api/v1/write"}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(c.serve)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *Capture) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.bodies, c.header = append(c.bodies, b), r.Header.Clone()
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Take returns the bodies received since the last call, and the headers of
// the latest request.
func (c *Capture) Take() ([][]byte, http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bodies
	c.bodies = nil
	return b, c.header
}
