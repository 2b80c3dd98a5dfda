package promtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStartScrapesNodeExporter starts both binaries and waits until
// Prometheus reports the node_exporter target up.
func TestStartScrapesNodeExporter(t *testing.T) {
	node := StartNodeExporter(t)
	p := Start(t, Options{Targets: []string{node}})
	if !strings.Contains(p.Config, "scrape_interval: 1s") {
		t.Fatalf("config without a 1s scrape interval:\n%s", p.Config)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if v := instant(t, p.URL, `up{job="node"}`); v == "1" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("node_exporter at %s never up in %s", node, p.URL)
}

func instant(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Data.Result) != 1 {
		return ""
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return s
}

func TestConfig(t *testing.T) {
	cfg := Config(Options{Targets: []string{"127.0.0.1:1"}, RuleFiles: []string{"/r.yaml"}, RemoteWrite: "  - url: http://127.0.0.1:2/w"})
	for _, want := range []string{"evaluation_interval: 1s", `- "/r.yaml"`, `- "127.0.0.1:1"`, "remote_write:\n  - url: http://127.0.0.1:2/w\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
