package dashpic

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

const modelPath = "../../model/testdata/metrics4.dagmm.json"

// TestScenario: the default scenario scored through a real dagmm serve
// leaves in the scraped series what it injected: anomalies on db-1 and
// web-2 during their incidents only, explained by the broken feature, and
// none on web-1; the picture is drawn in both formats.
func TestScenario(t *testing.T) {
	ctx := context.Background()
	s := StartTest(t, modelPath, nil)
	sc := DefaultScenario()
	frames, err := sc.Run(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != sc.Steps {
		t.Fatalf("%d frames, want %d", len(frames), sc.Steps)
	}
	for _, in := range sc.Incidents {
		for k, f := range frames {
			st, ok := f.Hosts[in.Host]
			if !ok {
				t.Fatalf("step %d: no series of %s", k, in.Host)
			}
			during := k >= in.From && k < in.To
			if st.Anomaly != during || (st.Severity > 50) != during || (st.Energy > st.Threshold) != during {
				t.Errorf("%s step %d: anomaly %v severity %v energy %v threshold %v, incident %v",
					in.Host, k, st.Anomaly, st.Severity, st.Energy, st.Threshold, during)
			}
			if k >= in.To && st.Feature != in.Feature {
				t.Errorf("%s step %d: explanation %q, want %q", in.Host, k, st.Feature, in.Feature)
			}
		}
		if got := frames[len(frames)-1].Hosts[in.Host].Anomalies; got != float64(in.To-in.From) {
			t.Errorf("%s: %v anomalies, want %d", in.Host, got, in.To-in.From)
		}
	}
	if st := frames[len(frames)-1].Hosts["web-1"]; st.Anomalies != 0 || st.Feature != "" {
		t.Errorf("web-1: %v anomalies, explanation %q", st.Anomalies, st.Feature)
	}
	dir := t.TempDir()
	for _, name := range []string{"d.png", "d.svg"} {
		p := filepath.Join(dir, name)
		if err := Draw(p, frames); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 || (name == "d.png" && !bytes.HasPrefix(b, []byte("\x89PNG"))) || (name == "d.svg" && !bytes.Contains(b, []byte("<svg"))) {
			t.Errorf("%s: %d bytes, not the picture", name, len(b))
		}
	}
	if err := Draw(filepath.Join(dir, "d.gif"), frames); err == nil {
		t.Error("Draw wrote a .gif")
	}
}
