package train

import (
	"errors"
	"slices"
	"testing"
)

func TestPresets(t *testing.T) {
	want := []struct {
		name, file string
		inputs     int // features of the data set
		code       int
		k          int
		paperF1    float64
	}{
		{"kddcup", "kddcup99.parquet", 118, 1, 4, 0.9369},
		{"thyroid", "thyroid.parquet", 6, 1, 2, 0.4782},
		{"arrhythmia", "arrhythmia.parquet", 274, 2, 2, 0.4983},
	}
	ps := Presets()
	if len(ps) != len(want) {
		t.Fatalf("%d presets, want %d", len(ps), len(want))
	}
	for i, w := range want {
		p := ps[i]
		t.Run(w.name, func(t *testing.T) {
			if p.Name != w.name || p.File != w.file {
				t.Errorf("preset %d is %q (%s), want %q (%s)", i, p.Name, p.File, w.name, w.file)
			}
			for _, c := range []struct {
				which string
				cfg   Config
			}{{"ours", p.Config}, {"paper", p.Paper.Config}} {
				if err := c.cfg.Validate(); err != nil {
					t.Errorf("%s: %v", c.which, err)
				}
				if got := c.cfg.Encoder[len(c.cfg.Encoder)-1]; got != w.code {
					t.Errorf("%s: code size %d, want %d", c.which, got, w.code)
				}
			}
			// Presets keep the paper's scoring and epochs, whatever the defaults.
			if c := p.Config; c.ReconWeight != 0 || c.MaxSamples != 0 || c.Window != 0 {
				t.Errorf("recon weight %v, max samples %d, window %d; want 0, 0 and 0", c.ReconWeight, c.MaxSamples, c.Window)
			}
			pc := p.Paper.Config
			if pc.K != w.k || pc.LearningRate != 1e-4 || pc.Lambda1 != 0.1 || pc.Lambda2 != 0.005 || pc.Dropout != 0.5 {
				t.Errorf("paper settings K %d, lr %v, λ1 %v, λ2 %v, dropout %v; want K %d, 1e-4, 0.1, 0.005, 0.5",
					pc.K, pc.LearningRate, pc.Lambda1, pc.Lambda2, pc.Dropout, w.k)
			}
			if p.Paper.F1 != w.paperF1 {
				t.Errorf("paper F1 %v, want %v", p.Paper.F1, w.paperF1)
			}
			pr, rc := p.Paper.Precision, p.Paper.Recall
			if f1 := 2 * pr * rc / (pr + rc); f1 < p.Paper.F1-0.002 || f1 > p.Paper.F1+0.002 {
				t.Errorf("paper precision %v and recall %v give F1 %.4f, not the %v reported", pr, rc, f1, p.Paper.F1)
			}
			if r := p.Paper.AnomalyRatio; !(r > 0 && r < 1) {
				t.Errorf("paper anomaly ratio %v, want a share in (0, 1)", r)
			}
			if p.Why == "" {
				t.Error("no reason given for the departures from the paper's settings")
			}
		})
	}
}

func TestLookupPreset(t *testing.T) {
	for _, name := range []string{"kddcup", "Thyroid", "ARRHYTHMIA"} {
		p, err := LookupPreset(name)
		if err != nil {
			t.Errorf("LookupPreset(%q): %v", name, err)
			continue
		}
		if !slices.Contains(PresetNames(), p.Name) {
			t.Errorf("LookupPreset(%q) = %q, not among %v", name, p.Name, PresetNames())
		}
	}
	for _, name := range []string{"", "kdd", "default", "thyroid "} {
		if _, err := LookupPreset(name); !errors.Is(err, ErrConfig) {
			t.Errorf("LookupPreset(%q): err = %v, want ErrConfig", name, err)
		}
	}
	// Each call returns fresh values: changing one does not change the next.
	p, _ := LookupPreset("thyroid")
	p.Config.Encoder[0] = 999
	p.Paper.Config.Estimator[0] = 999
	again, _ := LookupPreset("thyroid")
	if again.Config.Encoder[0] == 999 || again.Paper.Config.Estimator[0] == 999 {
		t.Error("a change to one preset's slices showed in the next lookup")
	}
}
