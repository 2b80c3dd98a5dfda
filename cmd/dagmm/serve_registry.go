package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/fleet"
	"github.com/dagmm/dagmm/serve"
)

// registryModelSetup serves the registry's current model of key to every
// host (--model-from-registry) and follows its new versions: it returns
// the service options and a function that closes the connection it opened.
func registryModelSetup(ctx context.Context, cfg *serve.Config, key string, logger *slog.Logger) ([]serve.Option, func(), error) {
	if cfg.NATS.URL == "" {
		return nil, nil, usagef("--model-from-registry needs --nats-url: the registry is on the NATS server's JetStream")
	}
	auth, err := cfg.NATS.Auth.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(cfg.NATS.URL, append(auth, nats.Name(cfg.NATS.Name+"-registry"), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: model registry: connect %s: %w", cfg.NATS.URL, err)
	}
	fail := func(err error) ([]serve.Option, func(), error) {
		nc.Close()
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(fmt.Errorf("serve: model registry: %w", err))
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc := cfg.Fleet.Registry
	rc.Log = logger
	reg, err := fleet.NewRegistry(octx, js, rc)
	if err != nil {
		return fail(fmt.Errorf("serve: model registry: %w", err))
	}
	src, err := serve.NewRegistryModel(octx, reg, key, cfg.Model.Name)
	if err != nil {
		return fail(fmt.Errorf("%w (publish one with: dagmm models publish %s model.json)", err, key))
	}
	return []serve.Option{serve.WithModelSource(src)}, nc.Close, nil
}
