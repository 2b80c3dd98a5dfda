package serve

import (
	"net/http"
	"testing"

	"github.com/dagmm/dagmm/fleet"
)

// TestFalseAlarmsNeedAdminToken: without an admin token the false-alarm
// endpoint is disabled, as the reload endpoint is, and nothing is marked.
func TestFalseAlarmsNeedAdminToken(t *testing.T) {
	e := newFleetEnv(t)
	e.publish(t, "fleet", hostModel(t, 11, 0))
	cfg := testConfig("")
	cfg.NATS.URL = e.srv.ClientURL()
	cfg.Fleet = FleetConfig{Enabled: true, Marks: fleet.MarksConfig{Memory: true}}
	f, err := OpenFleet(fleetCtx(t), e.nc, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	r := start(t, cfg, f.Options()...)
	for _, path := range []string{"/v1/false-alarms", "/v1/model/reload"} {
		code, resp := r.post(t, path, `{"host":"web-1","ts":"2026-12-05T20:00:00Z"}`, "Authorization", "Bearer anything")
		if code != http.StatusForbidden {
			t.Errorf("POST %s without an admin token set: %d %s, want 403", path, code, resp)
		}
	}
	if marked, err := f.Marks.Marked(fleetCtx(t), "web-1"); err != nil || len(marked) != 0 {
		t.Errorf("marks of web-1: %v %v, want none", marked, err)
	}
}
