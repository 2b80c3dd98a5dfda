package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dagmm/dagmm/serve"
)

// ExampleService runs the service until SIGINT or SIGTERM, reloading the
// model on SIGHUP. Without a NATS URL it starts an embedded NATS server.
func ExampleService() {
	cfg := serve.DefaultConfig()
	cfg.Model.Path = "model.json"
	cfg.JetStream.Enabled = true // durable: a restart loses no sample
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	svc, err := serve.New(cfg, logger)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			svc.Reload(ctx, "SIGHUP")
		}
	}()
	if err := svc.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// ExampleEvent decodes an anomaly event as a consumer of anomalies.> does.
func ExampleEvent() {
	msg := []byte(`{"host":"web-1","ts":"2026-11-24T10:00:00Z","model":"dagmm","model_version":"3f2a9c0d1b4e",
		"energy":"+Inf","threshold":9.87,"anomaly":true,"severity":100,"band":"critical",
		"explanation_method":"counterfactual",
		"explanation":[{"feature":"cpu_usage","actual":97,"expected":41.5,"share":0.82},{"feature":"mem_usage","actual":30,"expected":31,"share":0.18}],
		"source":{"subject":"metrics.web-1","stream":"DAGMM_METRICS","seq":1042,"index":0,"id":"DAGMM_METRICS:1042:0"}}`)
	var e serve.Event
	if err := json.Unmarshal(msg, &e); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s at %s: energy %v above %v (%s)\n", e.Host, e.TS.Format("15:04"), float64(e.Energy), float64(e.Threshold), e.Band)
	top := e.Explanation[0]
	fmt.Printf("mostly %s: %v, expected about %v (%.0f%%)\n", top.Feature, float64(top.Actual), float64(top.Expected), 100*float64(top.Share))
	fmt.Println("deduplicate on", e.Source.ID)
	// Output:
	// web-1 at 10:00: energy +Inf above 9.87 (critical)
	// mostly cpu_usage: 97, expected about 41.5 (82%)
	// deduplicate on DAGMM_METRICS:1042:0
}
