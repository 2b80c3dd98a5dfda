package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dagmm/dagmm/internal/modeltest"
	"github.com/dagmm/dagmm/model"
)

// modelFile saves the four-metric test model of seed in dir.
func modelFile(t *testing.T, dir string, seed uint64) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("model-%d.json", seed))
	if err := model.Save(path, modeltest.Metrics4(seed)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestModelsCommand(t *testing.T) {
	url := runNATSServer(t, true)
	dir := t.TempDir()
	m1, m2, m3 := modelFile(t, dir, 1), modelFile(t, dir, 2), modelFile(t, dir, 3)
	bad := writeFile(t, dir, "bad.json", `{"format":"dagmm-model","version":1}`)
	nu := "--nats-url=" + url
	// The steps run in order against one server: each sees what the
	// previous ones did.
	for _, step := range []struct {
		args     []string
		env      map[string]string
		code     int
		out, err []string // substrings of stdout and stderr
	}{
		{args: []string{"list", nu}, code: 1, err: []string{"no model registry on " + url, "dagmm-models"}},
		// A bad file is refused before the registry is created.
		{args: []string{"publish", "web-1", bad, nu}, code: 1, err: []string{"publish host web-1: " + bad + " is not a valid model artifact"}},
		{args: []string{"list", nu}, code: 1, err: []string{"no model registry on " + url}},
		{args: []string{"publish", "web-1", m1, nu}, out: []string{"host web-1: published " + m1 + " as version 1", "it is current"}},
		{args: []string{nu, "publish", "web-1", m2}, out: []string{"as version 2"}},
		{args: []string{"publish", "db.eu", m3}, env: map[string]string{"DAGMM_NATS_URL": url}, out: []string{"host db.eu: published", "as version 1"}},
		{args: []string{"list", nu}, out: []string{"HOST", "db.eu", "web-1"}},
		{args: []string{"show", "web-1", nu}, out: []string{"host web-1\ncurrent: version 2", "versions kept:", "  *  2", "publish (was version 1)"}},
		{args: []string{"rollback", "web-1", nu}, out: []string{"host web-1: rolled back from version 2 to version 1"}},
		{args: []string{"rollback", "web-1", nu}, code: 1, err: []string{`host "web-1"`, "no version kept below the current version 1"}},
		{args: []string{"rollback", "web-1", "--to", "2", nu}, out: []string{"rolled back from version 1 to version 2"}},
		{args: []string{"rollback", "web-1", "--to", "9", nu}, code: 1, err: []string{`host "web-1" version 9`, "no model", "versions kept: [1 2]"}},
		{args: []string{"show", "web-9", nu}, code: 1, err: []string{`host "web-9"`, "no model"}},
		{args: []string{"publish", "web-1", filepath.Join(dir, "missing.json"), nu}, code: 1, err: []string{"publish host web-1", "missing.json"}},
		{args: []string{"publish", "web 1", m1, nu}, code: 1, err: []string{"white space"}},
		{args: []string{nu}, code: 2, err: []string{"which action?"}},
		{args: []string{"frob", nu}, code: 2, err: []string{`unknown action "frob"`}},
		{args: []string{"show", nu}, code: 2, err: []string{"show takes 1 argument(s), got 0"}},
		{args: []string{"list", "--to", "3", nu}, code: 2, err: []string{"--to is for rollback"}},
		{args: []string{"list", "--nats-url", "nats://127.0.0.1:1", "--timeout", "2s"}, code: 1, err: []string{"nats connect nats://127.0.0.1:1"}},
	} {
		for k, v := range step.env {
			t.Setenv(k, v)
		}
		code, out, errOut := dagmm(t, append([]string{"models"}, step.args...)...)
		if code != step.code {
			t.Fatalf("dagmm models %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", step.args, code, step.code, out, errOut)
		}
		for _, s := range step.out {
			if !strings.Contains(out, s) {
				t.Errorf("dagmm models %q: stdout lacks %q:\n%s", step.args, s, out)
			}
		}
		for _, s := range step.err {
			if !strings.Contains(errOut, s) {
				t.Errorf("dagmm models %q: stderr lacks %q:\n%s", step.args, s, errOut)
			}
		}
	}

	// The JSON outputs, after the steps: web-1 at version 2 (rolled back
	// twice), db.eu at version 1.
	code, out, errOut := dagmm(t, "models", "list", "--json", nu)
	var list []struct {
		Host    string `json:"host"`
		Version uint64 `json:"version"`
		Digest  string `json:"digest"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list --json: exit %d, %s%s", code, out, errOut)
	}
	if len(list) != 2 || list[0].Host != "db.eu" || list[0].Version != 1 || list[1].Host != "web-1" || list[1].Version != 2 || len(list[1].Digest) != 64 {
		t.Fatalf("list --json: %+v", list)
	}
	code, out, errOut = dagmm(t, "models", "show", "--json", "web-1", nu)
	var show struct {
		Current  struct{ Version uint64 }
		Versions []struct{ Version uint64 }
		History  []struct {
			Version uint64
			From    uint64
			Cause   string
			At      string
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &show) != nil {
		t.Fatalf("show --json: exit %d, %s%s", code, out, errOut)
	}
	if show.Current.Version != 2 || len(show.Versions) != 2 || len(show.History) != 4 ||
		show.History[2].Cause != "rollback" || show.History[2].From != 2 || show.History[2].Version != 1 || show.History[3].At == "" {
		t.Fatalf("show --json: %+v", show)
	}
}
